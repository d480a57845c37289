//! The `devstack` command: `up` runs the local stack until Ctrl-C, SIGTERM or (with
//! `--exit-with-parent`) the parent's exit; `demo` runs it for one pass over the sample
//! capture requests. Logs go to stderr; stdout carries only the READY line (`up`) or the
//! result table (`demo`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use devstack::scheduler;
use devstack::stack::Stack;
use devstack::{StackOptions, demo, functions};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// Runs the capture pipeline on loopback: moto, the PeekShot simulator, the functions under
/// cargo lambda watch, and stand-ins for Lambda's SQS event source mapping and the
/// reconciler's schedule.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the stack, print one `DEVSTACK_READY {json}` line, run until stopped.
    Up(UpArgs),
    /// Start the stack, send the sample capture requests, print how each ended, stop.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// moto's port (DynamoDB, SQS, SSM); 0 picks a free one.
    #[arg(long, env = "DEVSTACK_MOTO_PORT", default_value_t = 5050)]
    moto_port: u16,

    /// The PeekShot simulator's port; 0 picks a free one.
    #[arg(long, env = "DEVSTACK_SIM_PORT", default_value_t = 8700)]
    sim_port: u16,

    /// The port of cargo lambda watch (invoke API and function URLs); 0 picks a free one.
    #[arg(long, env = "DEVSTACK_LAMBDA_PORT", default_value_t = 9000)]
    lambda_port: u16,

    /// Milliseconds the simulator takes to finish a capture.
    #[arg(long, env = "DEVSTACK_SIM_COMPLETE_AFTER_MS", default_value_t = 1500)]
    sim_complete_after_ms: u64,

    /// Seconds between two runs of the reconciler (the template's schedule); 0 never runs it.
    #[arg(
        long,
        env = "DEVSTACK_RECONCILE_EVERY_SECS",
        default_value_t = scheduler::LOCAL_RECONCILE_EVERY.as_secs()
    )]
    reconcile_every_secs: u64,

    /// Seconds a capture waits for its webhook before the reconciler asks the simulator.
    #[arg(
        long,
        env = "DEVSTACK_RECONCILE_AFTER_SECS",
        default_value_t = scheduler::LOCAL_RECONCILE_AFTER.as_secs()
    )]
    reconcile_after_secs: u64,

    /// Seconds after which the reconciler fails a capture whose outcome is still unknown.
    #[arg(
        long,
        env = "DEVSTACK_RECONCILE_GIVE_UP_SECS",
        default_value_t = scheduler::LOCAL_RECONCILE_GIVE_UP.as_secs()
    )]
    reconcile_give_up_secs: u64,

    /// A variable for the functions, `NAME=VALUE`, winning over the template's and the local
    /// stack's own; repeatable.
    #[arg(long = "function-env", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    function_env: Vec<(String, String)>,

    /// The share (0 to 1) of messages the submitter finished that the event source delivers
    /// a second time anyway, as SQS's at-least-once delivery sometimes does.
    #[arg(long, env = "DEVSTACK_REDELIVER_RATE", default_value_t = 0.0)]
    redeliver_rate: f64,

    /// The seed that picks which messages are delivered a second time.
    #[arg(long, env = "DEVSTACK_REDELIVER_SEED", default_value_t = 1)]
    redeliver_seed: u64,

    /// The webhook secret instead of a random one, e.g. `sample-webhook-secret-0123456789`,
    /// which the sample webhook events in events/ carry (at least 16 characters: letters, digits
    /// and - . _ ~, since it travels in the webhook URL).
    #[arg(long, env = "DEVSTACK_WEBHOOK_SECRET")]
    webhook_secret: Option<String>,

    /// The stack name `${AWS::StackName}` stands for in template.yaml.
    #[arg(long, env = "DEVSTACK_STACK_NAME", default_value = "peekshot-local")]
    stack_name: String,

    /// Stop everything and exit when the parent process exits (for test harnesses).
    #[arg(long, env = "DEVSTACK_EXIT_WITH_PARENT")]
    exit_with_parent: bool,

    /// Where to write the endpoints and secrets as KEY=VALUE lines (relative to the workspace).
    #[arg(long, env = "DEVSTACK_ENV_FILE", default_value = ".devstack/stack.env")]
    env_file: PathBuf,

    /// The workspace root (template.yaml, .venv, crates/).
    #[arg(long, env = "DEVSTACK_WORKSPACE", default_value_os_t = default_workspace())]
    workspace: PathBuf,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    stack: UpArgs,

    /// The SQS event whose record bodies are sent as capture requests.
    #[arg(
        long,
        env = "DEVSTACK_DEMO_EVENTS",
        default_value = "events/sqs-capture-batch.json"
    )]
    events: PathBuf,

    /// Seconds to wait for every capture to reach COMPLETE or FAILED.
    #[arg(long, env = "DEVSTACK_DEMO_TIMEOUT_SECS", default_value_t = 120)]
    timeout_secs: u64,
}

impl UpArgs {
    fn options(&self) -> StackOptions {
        StackOptions {
            workspace: self.workspace.clone(),
            moto_port: self.moto_port,
            sim_port: self.sim_port,
            lambda_port: self.lambda_port,
            sim_complete_after_ms: self.sim_complete_after_ms,
            stack_name: self.stack_name.clone(),
            env_file: self.env_file.clone(),
            reconcile_every: Duration::from_secs(self.reconcile_every_secs),
            reconcile_after: Duration::from_secs(self.reconcile_after_secs),
            reconcile_give_up: Duration::from_secs(self.reconcile_give_up_secs),
            function_env: self.function_env.clone(),
            redelivery: (self.redeliver_rate > 0.0)
                .then_some((self.redeliver_rate, self.redeliver_seed)),
            webhook_secret: self.webhook_secret.clone(),
        }
    }
}

/// `NAME=VALUE` as a pair; the name must be a plausible variable name.
fn parse_assignment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let plausible = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !plausible {
        return Err(format!(
            "{name:?} is not an environment variable name (A-Z, 0-9, _)"
        ));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// The workspace this binary was built from: two levels above this crate.
fn default_workspace() -> PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest).to_owned()
}

fn main() -> ExitCode {
    // cargo lambda watch runs this binary as its `cargo` (see devstack::functions).
    if let Some(real_cargo) = std::env::var_os(functions::CARGO_SHIM_ENV) {
        return functions::run_cargo_shim(real_cargo);
    }
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("devstack: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    // Colours only on a terminal: a log file (the test harness's) stays plain text to grep.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")),
        )
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up(args).await,
        Command::Demo(args) => run_demo(args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("devstack: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Why the stack is being stopped.
enum Stop {
    /// Ctrl-C, SIGTERM, SIGHUP, or the parent's exit: a normal end.
    Requested(&'static str),
    /// A child died.
    Failed(devstack::process::ExitReport),
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let stop_request = stop_requested(args.exit_with_parent)?;
    tokio::pin!(stop_request);

    let options = args.options();
    let stack = tokio::select! {
        stack = Stack::up(&options) => stack?,
        reason = &mut stop_request => {
            // Dropping the half-started stack kills whatever had started.
            tracing::info!(reason, "stopped while starting");
            return Ok(ExitCode::SUCCESS);
        }
    };

    let line = stack.info.ready_line()?;
    let mut stdout = std::io::stdout().lock();
    // A reader that went away is no reason to stop; --exit-with-parent handles that case.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    drop(stdout);

    let stop = tokio::select! {
        reason = &mut stop_request => Stop::Requested(reason),
        report = stack.failed() => Stop::Failed(report),
    };
    finish(stack, stop).await
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let stop_request = stop_requested(args.stack.exit_with_parent)?;
    tokio::pin!(stop_request);

    let options = args.stack.options();
    let stack = tokio::select! {
        stack = Stack::up(&options) => stack?,
        reason = &mut stop_request => {
            tracing::info!(reason, "stopped while starting");
            return Ok(ExitCode::FAILURE);
        }
    };

    let events = args.stack.workspace.join(&args.events);
    let limit = Duration::from_secs(args.timeout_secs);
    let report = tokio::select! {
        report = demo::run(&stack.info, &stack.clients, &events, limit) => report,
        reason = &mut stop_request => return finish(stack, Stop::Requested(reason)).await.map(|_| ExitCode::FAILURE),
        report = stack.failed() => return finish(stack, Stop::Failed(report)).await,
    };
    stack.down().await;
    let report = report?;

    println!("{}", report.table());
    let stragglers = report.stragglers();
    if stragglers.is_empty() {
        eprintln!("devstack: every sample capture reached COMPLETE or FAILED");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "devstack: {} of {} captures did not finish within {}s: {}",
            stragglers.len(),
            report.rows.len(),
            args.timeout_secs,
            stragglers.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}

async fn finish(stack: Stack, stop: Stop) -> anyhow::Result<ExitCode> {
    let code = match &stop {
        Stop::Requested(reason) => {
            tracing::info!(reason, "stopping the local stack");
            ExitCode::SUCCESS
        }
        Stop::Failed(_) => ExitCode::FAILURE,
    };
    stack.down().await;
    if let Stop::Failed(report) = stop {
        eprintln!("devstack: the stack failed: {report}");
    }
    Ok(code)
}

/// Resolves with a reason when the stack should stop: Ctrl-C, SIGTERM, SIGHUP, or, when
/// `watch_parent` is set, the parent process's exit (seen as a change of parent id, since an
/// orphan is adopted by init or a subreaper).
fn stop_requested(
    watch_parent: bool,
) -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let parent = std::os::unix::process::parent_id();
    Ok(async move {
        let parent_gone = async {
            if !watch_parent {
                return std::future::pending().await;
            }
            loop {
                if std::os::unix::process::parent_id() != parent {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = terminate.recv() => "terminated",
            _ = hangup.recv() => "hung up",
            () = parent_gone => "the parent process exited",
        }
    })
}

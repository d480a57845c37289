//! The Lambda functions under one `cargo lambda watch` (from the project's `.venv`), which
//! emulates Lambda's invoke API and function URLs on one loopback port.
//!
//! The addresses it serves, checked against cargo-lambda 1.9.2:
//! - `POST /2015-03-31/functions/{name}/invocations` invokes a function with a raw event (the
//!   event source sends SQS events to `submitter` this way). A function error comes back as
//!   status 500.
//! - `/lambda-url/{name}/{path}` wraps the HTTP request into an API Gateway HTTP API (payload
//!   2.0) event with `rawPath` = `/{path}` and the query string kept, so
//!   `/lambda-url/webhook/webhooks/peekshot?secret=…` reaches the webhook function as
//!   `POST /webhooks/peekshot?secret=…`, the route the template's HTTP API gives it.
//!
//! Watch starts each function with `$CARGO run --manifest-path Cargo.toml --bin NAME` on its
//! first invocation (and again after a change). In this workspace that command fails ("no bin
//! target named `submitter` in default-run packages"), because the root manifest is itself a
//! package (the end-to-end tests), and `cargo run` without `--package` looks for binaries in
//! that package only. So watch gets `CARGO` pointing at the `devstack` binary itself, which in
//! that role (see [`run_cargo_shim`]) builds and runs the function.
//!
//! Every build of the stack, the end-to-end tests' ([`crate::harness`]), [`prebuild`]'s and
//! the shim's, is the one command [`build_args`]: `cargo build --workspace --all-targets`.
//! Cargo picks the features of shared dependencies from what a command builds, and building a
//! test turns on the features dev-dependencies ask for (tokio's `test-util`, say), so any
//! narrower selection (`cargo run -p NAME`, the stack's packages without their tests) would
//! compile the dependency tree a second time with other features: minutes on two cores, and
//! gigabytes of disk, which once filled a CI machine. Building what `cargo test --workspace`
//! builds makes the test command's build and the stack's one and the same, and the first
//! build the only one. Watch runs with `--ignore-changes`, so it starts an instance only on
//! demand; the shim's build then takes a fraction of a second and picks up any source changed
//! since the stack started. The shim runs `<target>/debug/NAME`, so a cargo configuration
//! that sets `build.target` (binaries under `<target>/<triple>/`) is not supported.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{ChildCommand, ChildError, ChildProcess};

/// The SQS-triggered function (binary and watch function name).
pub const SUBMITTER: &str = "submitter";
/// The HTTP function PeekShot calls.
pub const WEBHOOK: &str = "webhook";
/// The scheduled function that settles captures whose webhook was lost.
pub const RECONCILER: &str = "reconciler";
/// The webhook's route in the template's HTTP API.
pub const WEBHOOK_PATH: &str = "/webhooks/peekshot";
/// Instances watch may run of each function at once, matching the template's
/// `MaximumConcurrency` default and the event source's two pollers.
pub const FUNCTION_CONCURRENCY: usize = 2;

/// Set in watch's environment to the real cargo; its presence makes `devstack` act as the
/// cargo shim instead of parsing its own command line.
pub const CARGO_SHIM_ENV: &str = "DEVSTACK_REAL_CARGO";
/// Set in watch's environment to cargo's target directory, where the shim finds the binaries.
pub const TARGET_DIR_ENV: &str = "DEVSTACK_TARGET_DIR";

/// Watch's own log filter: its messages at info, its file watcher's (which print whole
/// environments) only from warn up.
pub const WATCH_LOG_FILTER: &str =
    "info,watchexec=warn,watchexec_supervisor=warn,watchexec_events=warn";

/// How long the watch server may take to listen.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long the first invocation of a function may take (it may start `cargo run`).
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

/// Watch's invoke URL for `function`.
pub fn invoke_url(lambda_url: &str, function: &str) -> String {
    format!("{lambda_url}/2015-03-31/functions/{function}/invocations")
}

/// The webhook function's URL under watch, without the secret.
pub fn webhook_url(lambda_url: &str) -> String {
    format!("{lambda_url}/lambda-url/{WEBHOOK}{WEBHOOK_PATH}")
}

/// Where `scripts/setup.sh` puts `cargo-lambda`, relative to the workspace root.
pub fn cargo_lambda_path(workspace: &Path) -> PathBuf {
    workspace.join(".venv/bin/cargo-lambda")
}

/// The `cargo` to build with: the one running us (`CARGO`) if any, else the one on `PATH`.
pub fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// The arguments of the one build command of the stack (see the module documentation).
pub fn build_args() -> Vec<&'static str> {
    vec!["build", "--quiet", "--workspace", "--all-targets"]
}

/// Builds the workspace in the dev profile, with cargo's progress on our stderr (stdout is kept
/// for the READY line).
pub async fn prebuild(workspace: &Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(cargo_program())
        .args(build_args())
        .current_dir(workspace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .status()
        .await
        .context("running cargo build for the stack")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", build_args().join(" "));
    }
    Ok(())
}

/// Starts `cargo lambda watch` on `127.0.0.1:port` from the workspace root and waits until it
/// accepts connections. The functions inherit its environment, so `function_env` (their
/// configuration, secrets included: an environment, unlike a command line, is not readable by
/// other users) is set on watch itself, except `RUST_LOG`: watch reads that too, and at info
/// its file watcher logs every command it spawns with the whole environment. Watch gets
/// [`WATCH_LOG_FILTER`] and passes the functions their own `RUST_LOG` with `--env-var`.
/// `redact` lists the secrets to keep out of the output we copy.
pub async fn start_watch(
    workspace: &Path,
    target_dir: &Path,
    port: u16,
    function_env: Vec<(String, String)>,
    redact: Vec<String>,
) -> Result<ChildProcess, ChildError> {
    let (function_log, mut env): (Vec<_>, Vec<_>) = function_env
        .into_iter()
        .partition(|(key, _)| key == "RUST_LOG");
    env.push(("RUST_LOG".to_owned(), WATCH_LOG_FILTER.to_owned()));
    if let Some(shim) = own_executable() {
        env.push(("CARGO".to_owned(), shim));
        env.push((
            CARGO_SHIM_ENV.to_owned(),
            cargo_program().display().to_string(),
        ));
        env.push((TARGET_DIR_ENV.to_owned(), target_dir.display().to_string()));
    }

    let mut args: Vec<OsString> = [
        "lambda",
        "watch",
        "--invoke-address",
        "127.0.0.1",
        "--invoke-port",
        &port.to_string(),
        "--ignore-changes",
        "--concurrency",
        &FUNCTION_CONCURRENCY.to_string(),
    ]
    .iter()
    .map(Into::into)
    .collect();
    for (key, value) in function_log {
        args.push("--env-var".into());
        args.push(format!("{key}={value}").into());
    }

    let (process, _) = ChildProcess::spawn(ChildCommand {
        name: "functions",
        program: cargo_lambda_path(workspace),
        args,
        envs: env,
        current_dir: workspace.to_owned(),
        echo: true,
        ready_line: None,
        redact,
    })?;

    let deadline = tokio::time::Instant::now() + START_LIMIT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(process);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(process.not_ready(START_LIMIT));
        }
        tokio::select! {
            report = process.exited() => return Err(ChildError::Exited(report)),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// This binary's path, for watch to run as its cargo. When cargo rebuilds `devstack` while a
/// stack runs, Linux reports the running binary as `PATH (deleted)`; the rebuilt binary at
/// `PATH` serves as well.
fn own_executable() -> Option<String> {
    let path = std::env::current_exe().ok()?.display().to_string();
    Some(
        path.strip_suffix(" (deleted)")
            .map(str::to_owned)
            .unwrap_or(path),
    )
}

/// What the shim does for the arguments watch gave it.
#[derive(Debug, PartialEq, Eq)]
pub enum ShimAction {
    /// `run … --bin NAME [-- ARGS]`: build the stack, then run the binary `NAME` with `ARGS`.
    Run {
        /// The binary.
        bin: String,
        /// The arguments after `--`.
        args: Vec<OsString>,
    },
    /// Anything else: hand the arguments to the real cargo unchanged.
    PassThrough(Vec<OsString>),
}

/// Reads watch's cargo command line.
pub fn shim_action(args: Vec<OsString>) -> ShimAction {
    if args.first().and_then(|a| a.to_str()) != Some("run") {
        return ShimAction::PassThrough(args);
    }
    let texts: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    let ends = texts.iter().position(|a| *a == "--").unwrap_or(texts.len());
    let options = &texts[..ends];
    let bin = options
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--bin=") {
            Some(name) => Some(name.to_owned()),
            None if *a == "--bin" => options.get(i + 1).map(|n| (*n).to_owned()),
            None => None,
        });
    match bin {
        Some(bin) => ShimAction::Run {
            bin,
            args: args.into_iter().skip(ends + 1).collect(),
        },
        None => ShimAction::PassThrough(args),
    }
}

/// Runs as watch's `cargo` ([`shim_action`]): builds the stack with [`build_args`] and
/// replaces this process with the function's binary from [`TARGET_DIR_ENV`], or replaces it
/// with the real cargo (from [`CARGO_SHIM_ENV`]) for any other command. Returns only on
/// failure.
pub fn run_cargo_shim(real_cargo: OsString) -> ExitCode {
    let fail = |what: String| {
        eprintln!("devstack (as cargo for watch): {what}");
        ExitCode::FAILURE
    };
    let (bin, args) = match shim_action(std::env::args_os().skip(1).collect()) {
        ShimAction::Run { bin, args } => (bin, args),
        ShimAction::PassThrough(args) => {
            let error = std::process::Command::new(&real_cargo)
                .args(args)
                .env_remove(CARGO_SHIM_ENV)
                .env("CARGO", &real_cargo)
                .exec();
            return fail(format!(
                "cannot run {}: {error}",
                PathBuf::from(real_cargo).display()
            ));
        }
    };
    let Some(target_dir) = std::env::var_os(TARGET_DIR_ENV) else {
        return fail(format!("{TARGET_DIR_ENV} is not set"));
    };

    let built = std::process::Command::new(&real_cargo)
        .args(build_args())
        .env_remove(CARGO_SHIM_ENV)
        .env("CARGO", &real_cargo)
        .status();
    match built {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return fail(format!(
                "cargo {} failed ({status})",
                build_args().join(" ")
            ));
        }
        Err(error) => return fail(format!("cannot run cargo: {error}")),
    }

    let binary = PathBuf::from(target_dir).join("debug").join(&bin);
    let error = std::process::Command::new(&binary)
        .args(args)
        .env_remove(CARGO_SHIM_ENV)
        .env_remove(TARGET_DIR_ENV)
        .exec();
    fail(format!("cannot run {}: {error}", binary.display()))
}

/// Invokes each function once so that watch starts them now rather than on the first
/// capture. A function that does not answer is reported, not fatal: the stack still runs,
/// and whatever is wrong shows up again in the function's own log.
pub async fn warm_up(lambda_url: &str) {
    let client = reqwest::Client::new();
    let submitter = client
        .post(invoke_url(lambda_url, SUBMITTER))
        .json(&serde_json::json!({ "Records": [] }))
        .timeout(WARM_UP_LIMIT)
        .send();
    let webhook = client
        .get(format!("{lambda_url}/lambda-url/{WEBHOOK}/"))
        .timeout(WARM_UP_LIMIT)
        .send();
    let reconciler = client
        .post(invoke_url(lambda_url, RECONCILER))
        .json(&crate::scheduler::scheduled_event(
            crate::aws::LOCAL_REGION,
            "warm-up",
            std::time::SystemTime::now(),
        ))
        .timeout(WARM_UP_LIMIT)
        .send();
    let (submitter, webhook, reconciler) = tokio::join!(submitter, webhook, reconciler);
    for (function, answer) in [
        (SUBMITTER, submitter),
        (WEBHOOK, webhook),
        (RECONCILER, reconciler),
    ] {
        match answer {
            Ok(response) if !response.status().is_server_error() => {
                tracing::debug!(function, status = %response.status(), "function warmed up");
            }
            Ok(response) => {
                tracing::warn!(function, status = %response.status(), "function failed its warm-up call");
            }
            Err(error) => {
                tracing::warn!(function, %error, "function did not answer its warm-up call");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn cargo_run_of_a_bin_runs_that_binary_with_the_arguments_after_the_separator() {
        assert_eq!(
            shim_action(args(
                "run --color auto --manifest-path Cargo.toml --bin webhook"
            )),
            ShimAction::Run {
                bin: "webhook".into(),
                args: vec![]
            }
        );
        assert_eq!(
            shim_action(args("run --bin=submitter -- --flag x")),
            ShimAction::Run {
                bin: "submitter".into(),
                args: args("--flag x")
            }
        );
    }

    #[test]
    fn other_commands_pass_to_cargo_unchanged() {
        for text in ["build --bin webhook", "run -- --bin x", "metadata"] {
            assert_eq!(
                shim_action(args(text)),
                ShimAction::PassThrough(args(text)),
                "{text}"
            );
        }
    }

    #[test]
    fn the_stack_build_builds_every_binary_the_stack_runs() {
        assert_eq!(
            build_args(),
            ["build", "--quiet", "--workspace", "--all-targets"]
        );
        let metadata = std::process::Command::new(cargo_program())
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo metadata runs");
        assert!(metadata.status.success(), "cargo metadata failed");
        let metadata: serde_json::Value =
            serde_json::from_slice(&metadata.stdout).expect("cargo metadata prints JSON");
        let binaries: Vec<&str> = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .flat_map(|package| package["targets"].as_array().expect("targets"))
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .expect("kind")
                    .iter()
                    .any(|k| k == "bin")
            })
            .map(|target| target["name"].as_str().expect("name"))
            .collect();
        // What the stack runs from the target directory: the functions, the simulator,
        // devstack itself, and capturectl, the operator's tool.
        for binary in [
            SUBMITTER,
            WEBHOOK,
            RECONCILER,
            "peekshot-sim",
            "devstack",
            "capturectl",
        ] {
            assert!(
                binaries.contains(&binary),
                "no workspace binary named {binary}"
            );
        }
    }

    #[test]
    fn the_scripts_build_the_stack_with_the_same_command() {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
        let expected = format!("cargo {}", build_args().join(" "));
        for script in ["devstack.sh", "capturectl.sh"] {
            let text = std::fs::read_to_string(scripts.join(script)).expect("the script");
            assert!(
                text.lines().any(|line| line == expected),
                "scripts/{script} must build with `{expected}`"
            );
        }
    }

    #[test]
    fn the_webhook_url_is_watchs_function_url_for_the_templates_route() {
        assert_eq!(
            webhook_url("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000/lambda-url/webhook/webhooks/peekshot"
        );
        assert_eq!(
            invoke_url("http://127.0.0.1:9000", SUBMITTER),
            "http://127.0.0.1:9000/2015-03-31/functions/submitter/invocations"
        );
    }
}

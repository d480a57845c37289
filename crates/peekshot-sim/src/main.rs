//! The `peekshot-sim` command: reads flags (each also an environment
//! variable), binds, prints one line `peekshot-sim listening on
//! http://HOST:PORT` to stdout so that a parent process can read the port,
//! and serves until Ctrl-C or SIGTERM. Logs go to stderr (`RUST_LOG` filters
//! them), keeping stdout for that one line.

use std::io::IsTerminal;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use peekshot_sim::config::{DEFAULT_API_KEY, DEFAULT_FIRST_REQUEST_ID, DEFAULT_PROJECT_ID};
use peekshot_sim::{Faults, RunningSimulator, SimConfig, SimError};
use tracing_subscriber::EnvFilter;
use url::Url;

/// A PeekShot API simulator for loopback tests and the local stack.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "PEEKSHOT_SIM_HOST", default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on; 0 lets the system pick a free one.
    #[arg(long, env = "PEEKSHOT_SIM_PORT", default_value_t = 8700)]
    port: u16,

    /// The only `x-api-key` accepted.
    #[arg(long, env = "PEEKSHOT_SIM_API_KEY", default_value = DEFAULT_API_KEY, hide_env_values = true)]
    api_key: String,

    /// The only `project_id` accepted on create.
    #[arg(long, env = "PEEKSHOT_SIM_PROJECT_ID", default_value = DEFAULT_PROJECT_ID)]
    project_id: String,

    /// Where completion webhooks are POSTed, verbatim; none are sent without it.
    #[arg(long, env = "PEEKSHOT_SIM_WEBHOOK_URL", value_parser = parse_http_url, hide_env_values = true)]
    webhook_url: Option<Url>,

    /// Milliseconds from acceptance to COMPLETE or FAILED.
    #[arg(long, env = "PEEKSHOT_SIM_COMPLETE_AFTER_MS", default_value_t = 1_500)]
    complete_after_ms: u64,

    /// Base of reported file URLs [default: http://HOST:PORT as bound].
    #[arg(long, env = "PEEKSHOT_SIM_PUBLIC_URL", value_parser = parse_http_url)]
    public_url: Option<Url>,

    /// Re-deliveries of a webhook after a non-2xx answer or connection error.
    #[arg(long, env = "PEEKSHOT_SIM_WEBHOOK_RETRIES", default_value_t = 3)]
    webhook_retries: u32,

    /// Milliseconds before the first webhook re-delivery; doubles each time.
    #[arg(long, env = "PEEKSHOT_SIM_WEBHOOK_BACKOFF_MS", default_value_t = 200)]
    webhook_backoff_ms: u64,

    /// Milliseconds a webhook receiver has to answer one delivery.
    #[arg(
        long,
        env = "PEEKSHOT_SIM_WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    webhook_timeout_ms: u64,

    /// The first request id handed out.
    #[arg(long, env = "PEEKSHOT_SIM_FIRST_REQUEST_ID", default_value_t = DEFAULT_FIRST_REQUEST_ID)]
    first_request_id: u64,

    /// Seed of the fault dice, to repeat a run's faults [default: random, logged].
    #[arg(long, env = "PEEKSHOT_SIM_SEED")]
    seed: Option<u64>,

    #[command(flatten)]
    faults: Faults,
}

impl Cli {
    fn into_config(self) -> SimConfig {
        SimConfig {
            api_key: self.api_key,
            project_id: self.project_id,
            webhook_url: self.webhook_url,
            complete_after: Duration::from_millis(self.complete_after_ms),
            public_url: self.public_url,
            webhook_retries: self.webhook_retries,
            webhook_backoff: Duration::from_millis(self.webhook_backoff_ms),
            webhook_timeout: Duration::from_millis(self.webhook_timeout_ms),
            first_request_id: self.first_request_id,
            faults: self.faults,
            seed: self.seed,
        }
    }
}

/// Only http(s) URLs make sense for webhooks and file links. An empty value,
/// as an env file leaves behind, is refused with a hint rather than read as
/// "none", so a misconfigured stack fails at start-up.
fn parse_http_url(text: &str) -> Result<Url, String> {
    if text.trim().is_empty() {
        return Err("is empty; leave the flag and its variable unset to go without".to_owned());
    }
    let url = Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if matches!(url.scheme(), "http" | "https") {
        Ok(url)
    } else {
        Err(format!(
            "must be http:// or https://, not {}://",
            url.scheme()
        ))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peekshot-sim: {}", peekshot_sim::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), SimError> {
    let listener = peekshot_sim::bind(&cli.host, cli.port).await?;
    let simulator = RunningSimulator::start(cli.into_config(), listener)?;

    let mut stdout = std::io::stdout().lock();
    // A parent that stopped reading is no reason to stop serving.
    let _ = writeln!(
        stdout,
        "peekshot-sim listening on {}",
        simulator.base_url().as_str().trim_end_matches('/')
    );
    let _ = stdout.flush();
    drop(stdout);
    tracing::info!(base_url = %simulator.base_url(), "serving");

    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

/// Completes on Ctrl-C or, on Unix, SIGTERM (what process supervisors send).
/// A signal that cannot be listened for never completes, rather than
/// stopping the simulator at once.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

//! Both Lambda functions under one `cargo lambda watch` (from the project's `.venv`), which
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
//! Watch starts each function with `cargo run --bin NAME` on its first invocation. To keep
//! that from compiling, [`prebuild`] builds each function the same way first (one `cargo
//! build` per package, since building several packages in one command can unify their
//! dependencies' features differently and so produce other artifacts than `cargo run` wants).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::process::{ChildCommand, ChildError, ChildProcess};

/// The SQS-triggered function (binary and watch function name).
pub const SUBMITTER: &str = "submitter";
/// The HTTP function PeekShot calls.
pub const WEBHOOK: &str = "webhook";
/// The webhook's route in the template's HTTP API.
pub const WEBHOOK_PATH: &str = "/webhooks/peekshot";
/// The packages the stack runs: both functions and the simulator.
pub const STACK_PACKAGES: &[&str] = &[SUBMITTER, WEBHOOK, "peekshot-sim"];
/// Instances watch may run of each function at once, matching the template's
/// `MaximumConcurrency` default and the event source's two pollers.
pub const FUNCTION_CONCURRENCY: usize = 2;

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

/// Builds each of `packages` in the dev profile, one `cargo build -p` at a time, with cargo's
/// progress on our stderr (stdout is kept for the READY line).
pub async fn prebuild(workspace: &Path, packages: &[&str]) -> anyhow::Result<()> {
    for package in packages {
        let status = tokio::process::Command::new(cargo_program())
            .args(["build", "--quiet", "-p", package])
            .current_dir(workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .await
            .with_context(|| format!("running cargo build -p {package}"))?;
        if !status.success() {
            bail!("cargo build -p {package} failed ({status})");
        }
    }
    Ok(())
}

/// Starts `cargo lambda watch` on `127.0.0.1:port` from the workspace root with `env` (the
/// functions' configuration, secrets included: an environment, unlike a command line, is
/// not readable by other users), and waits until it accepts connections.
pub async fn start_watch(
    workspace: &Path,
    port: u16,
    env: Vec<(String, String)>,
) -> Result<ChildProcess, ChildError> {
    let args = [
        "lambda",
        "watch",
        "--invoke-address",
        "127.0.0.1",
        "--invoke-port",
        &port.to_string(),
        "--ignore-changes",
        "--concurrency",
        &FUNCTION_CONCURRENCY.to_string(),
    ];
    let (process, _) = ChildProcess::spawn(ChildCommand {
        name: "functions",
        program: cargo_lambda_path(workspace),
        args: args.iter().map(Into::into).collect(),
        envs: env,
        current_dir: workspace.to_owned(),
        echo: true,
        ready_line: None,
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
    let (submitter, webhook) = tokio::join!(submitter, webhook);
    for (function, answer) in [(SUBMITTER, submitter), (WEBHOOK, webhook)] {
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

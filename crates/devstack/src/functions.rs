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
//! first invocation. In this workspace that command fails ("no bin target named `submitter` in
//! default-run packages"), because the root manifest is itself a package (the end-to-end
//! tests), and `cargo run` without `--package` looks for binaries in that package only. So
//! watch gets `CARGO` pointing at the `devstack` binary itself, which in that role (see
//! [`run_cargo_shim`]) adds `--package NAME` and replaces itself with the real cargo.
//!
//! To keep that `cargo run` from compiling, [`prebuild`] builds each function the same way
//! first: one `cargo build -p NAME` per package, because building several packages in one
//! command can unify their dependencies' features differently and so produce other artifacts
//! than `cargo run -p NAME` wants.

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
/// The packages the stack runs: the functions and the simulator.
pub const STACK_PACKAGES: &[&str] = &[SUBMITTER, WEBHOOK, RECONCILER, "peekshot-sim"];
/// Instances watch may run of each function at once, matching the template's
/// `MaximumConcurrency` default and the event source's two pollers.
pub const FUNCTION_CONCURRENCY: usize = 2;

/// Set in watch's environment to the real cargo; its presence makes `devstack` act as the
/// cargo shim instead of parsing its own command line.
pub const CARGO_SHIM_ENV: &str = "DEVSTACK_REAL_CARGO";

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
            .kill_on_drop(true)
            .status()
            .await
            .with_context(|| format!("running cargo build -p {package}"))?;
        if !status.success() {
            bail!("cargo build -p {package} failed ({status})");
        }
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

/// The real cargo's arguments for the ones watch gave: `run … --bin NAME` gains
/// `--package NAME` unless it names a package already; anything else passes unchanged.
pub fn shim_arguments(args: Vec<OsString>) -> Vec<OsString> {
    if args.first().and_then(|a| a.to_str()) != Some("run") {
        return args;
    }
    let texts: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    let ends = texts.iter().position(|a| *a == "--").unwrap_or(texts.len());
    let options = &texts[..ends];
    if options
        .iter()
        .any(|a| *a == "-p" || *a == "--package" || a.starts_with("--package="))
    {
        return args;
    }
    let bin = options
        .iter()
        .enumerate()
        .find_map(|(i, a)| match a.strip_prefix("--bin=") {
            Some(name) => Some(name.to_owned()),
            None if *a == "--bin" => options.get(i + 1).map(|n| (*n).to_owned()),
            None => None,
        });
    let Some(bin) = bin else { return args };

    let mut rewritten = Vec::with_capacity(args.len() + 2);
    let mut rest = args.into_iter();
    rewritten.extend(rest.next());
    rewritten.push("--package".into());
    rewritten.push(bin.into());
    rewritten.extend(rest);
    rewritten
}

/// Runs as watch's `cargo`: replaces this process with the real cargo (from
/// [`CARGO_SHIM_ENV`]) and the arguments from [`shim_arguments`]. Returns only on failure.
pub fn run_cargo_shim(real_cargo: OsString) -> ExitCode {
    let args = shim_arguments(std::env::args_os().skip(1).collect());
    let error = std::process::Command::new(&real_cargo)
        .args(args)
        .env_remove(CARGO_SHIM_ENV)
        .env("CARGO", &real_cargo)
        .exec();
    eprintln!(
        "devstack (as cargo for watch): cannot run {}: {error}",
        PathBuf::from(real_cargo).display()
    );
    ExitCode::FAILURE
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
    fn cargo_run_of_a_bin_gains_its_package() {
        assert_eq!(
            shim_arguments(args(
                "run --color auto --manifest-path Cargo.toml --bin webhook"
            )),
            args("run --package webhook --color auto --manifest-path Cargo.toml --bin webhook")
        );
        assert_eq!(
            shim_arguments(args("run --bin=submitter -- --flag")),
            args("run --package submitter --bin=submitter -- --flag")
        );
    }

    #[test]
    fn other_commands_and_explicit_packages_pass_unchanged() {
        for text in [
            "build --bin webhook",
            "run -p webhook --bin webhook",
            "run -- --bin x",
            "metadata",
        ] {
            assert_eq!(shim_arguments(args(text)), args(text), "{text}");
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

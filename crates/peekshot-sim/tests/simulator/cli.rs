//! The built `peekshot-sim` binary as a parent process runs it: it announces
//! its address on stdout, reads its settings from the environment, says which
//! flag to change when its port is taken, and keeps secrets out of its logs.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::PATIENCE;

/// The binary with an empty environment, so that no PEEKSHOT_SIM_* variable
/// of the developer's shell leaks in.
fn simulator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_peekshot-sim"));
    command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads the announcement line and returns the base URL it names.
async fn announced_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    tokio::time::timeout(PATIENCE, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the simulator announces itself in time")
        .expect("stdout is readable");
    let url = line
        .trim_end()
        .strip_prefix("peekshot-sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    url.to_owned()
}

#[tokio::test]
async fn binary_announces_its_port_and_reads_settings_from_the_environment() {
    let mut child = simulator()
        .env("PEEKSHOT_SIM_PORT", "0")
        .env("PEEKSHOT_SIM_API_KEY", "key-from-env")
        .env("PEEKSHOT_SIM_PROJECT_ID", "project-from-env")
        .spawn()
        .expect("the binary starts");
    let base = announced_url(&mut child).await;

    let client = reqwest::Client::new();
    let health = client
        .get(format!("{base}/_sim/health"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(health.status(), StatusCode::OK);
    let created = client
        .post(format!("{base}/api/v1/screenshots"))
        .header("x-api-key", "key-from-env")
        .json(&json!({"project_id": "project-from-env", "url": "https://example.com"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(created.status(), StatusCode::CREATED);

    child.kill().await.expect("the child stops");
}

#[tokio::test]
async fn busy_port_exits_non_zero_naming_the_port_and_the_flag() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port to occupy");
    let port = taken.local_addr().expect("its address").port();

    let run = simulator().arg("--port").arg(port.to_string()).output();
    let output = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("the binary exits in time")
        .expect("the binary runs");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&port.to_string()), "{stderr}");
    assert!(
        stderr.contains("--port") && stderr.contains("PEEKSHOT_SIM_PORT"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing announced on stdout");
}

#[tokio::test]
async fn logs_never_show_the_api_key_or_the_webhook_secret() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let mut child = simulator()
        .env("RUST_LOG", "trace")
        .args([
            "--port",
            "0",
            "--api-key",
            "api-key-s3cret",
            "--complete-after-ms",
            "10",
        ])
        .args(["--webhook-retries", "1", "--webhook-backoff-ms", "10"])
        .arg("--webhook-url")
        .arg(format!("http://{closed}/hooks/peekshot?token=hook-s3cret"))
        .spawn()
        .expect("the binary starts");
    let base = announced_url(&mut child).await;

    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/v1/screenshots"))
        .header("x-api-key", "api-key-s3cret")
        .json(&json!({"project_id": "sim-project", "url": "https://example.com"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(created.status(), StatusCode::CREATED);
    let refused = client
        .get(format!("{base}/api/v1/screenshots"))
        .header("x-api-key", "wrong-key-s3cret")
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let stats: Value = client
            .get(format!("{base}/_sim/stats"))
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        if stats["webhooksFailed"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    child.kill().await.expect("the child stops");
    let mut logs = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr
            .read_to_string(&mut logs)
            .await
            .expect("stderr is readable");
    }
    assert!(
        logs.contains("webhook given up"),
        "the logs were captured: {logs}"
    );
    assert!(
        logs.contains("/hooks/peekshot"),
        "the webhook is named without its query"
    );
    assert!(
        !logs.contains("s3cret"),
        "a secret leaked into the logs:\n{logs}"
    );
}

//! moto, the local endpoint for DynamoDB, SQS and SSM: one `moto_server` process from the
//! project's `.venv` (installed by `scripts/setup.sh`), listening on 127.0.0.1.

use std::path::Path;
use std::time::Duration;

use crate::process::{ChildCommand, ChildError, ChildProcess};

/// How long moto may take to answer its first request; it starts in about a second.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    /// The process.
    pub process: ChildProcess,
    /// `http://127.0.0.1:PORT`, the endpoint for every AWS client of the stack.
    pub url: String,
}

/// Where `scripts/setup.sh` puts `moto_server`, relative to the workspace root.
pub fn moto_server_path(workspace: &Path) -> std::path::PathBuf {
    workspace.join(".venv/bin/moto_server")
}

/// Starts `moto_server` on `port` and waits until it answers HTTP. Its request log is kept
/// for error reports but not echoed: the event source polls twice a second.
pub async fn start(workspace: &Path, port: u16, echo: bool) -> Result<Moto, ChildError> {
    let program = moto_server_path(workspace);
    let (process, _) = ChildProcess::spawn(ChildCommand {
        name: "moto",
        program,
        args: vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string().into(),
        ],
        envs: Vec::new(),
        current_dir: workspace.to_owned(),
        echo,
        ready_line: None,
        redact: Vec::new(),
    })?;
    let url = format!("http://127.0.0.1:{port}");

    tokio::select! {
        answered = wait_until_answering(&url) => {
            if answered {
                Ok(Moto { process, url })
            } else {
                Err(process.not_ready(START_LIMIT))
            }
        }
        report = process.exited() => Err(ChildError::Exited(report)),
    }
}

/// Polls moto's own API until it answers, or gives up after [`START_LIMIT`].
async fn wait_until_answering(url: &str) -> bool {
    let client = reqwest::Client::new();
    let probe = format!("{url}/moto-api/");
    let deadline = tokio::time::Instant::now() + START_LIMIT;
    while tokio::time::Instant::now() < deadline {
        let answer = client
            .get(&probe)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

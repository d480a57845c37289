//! The PeekShot simulator (`crates/peekshot-sim`), started from its dev build in the target
//! directory. It prints `peekshot-sim listening on http://127.0.0.1:PORT` once it listens,
//! which is how we learn the port it picked when asked for port 0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{ChildCommand, ChildError, ChildProcess};

/// The line prefix the simulator prints on stdout when it listens.
pub const READY_PREFIX: &str = "peekshot-sim listening on ";
/// The PeekShot project id of the local stack.
pub const LOCAL_PROJECT_ID: &str = "local-project";

/// How long the simulator may take to listen.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running simulator.
#[derive(Debug)]
pub struct Simulator {
    /// The process.
    pub process: ChildProcess,
    /// `http://127.0.0.1:PORT`, PeekShot's base URL for the submitter.
    pub url: String,
}

/// What the simulator is started with.
#[derive(Debug, Clone)]
pub struct SimulatorSettings {
    /// Port to listen on; 0 lets it pick.
    pub port: u16,
    /// The only API key it accepts.
    pub api_key: String,
    /// Where it POSTs completion webhooks, secret included.
    pub webhook_url: String,
    /// Milliseconds from accepting a capture to finishing it.
    pub complete_after_ms: u64,
}

impl SimulatorSettings {
    /// The values its output must not show: the API key and the webhook URL's secret.
    fn secrets(&self) -> Vec<String> {
        let query = self.webhook_url.split_once('?').map(|(_, q)| q.to_owned());
        std::iter::once(self.api_key.clone()).chain(query).collect()
    }
}

/// The simulator binary, which the stack's one build ([`crate::functions::build_args`]) makes.
pub fn simulator_path(target_dir: &Path) -> PathBuf {
    target_dir.join("debug/peekshot-sim")
}

/// Starts the simulator and waits for its listening line. The API key and the webhook URL
/// (which carries the webhook secret) go through its environment, not its command line.
pub async fn start(
    workspace: &Path,
    target_dir: &Path,
    settings: &SimulatorSettings,
) -> Result<Simulator, ChildError> {
    let args = [
        "--host".to_owned(),
        "127.0.0.1".to_owned(),
        "--port".to_owned(),
        settings.port.to_string(),
        "--project-id".to_owned(),
        LOCAL_PROJECT_ID.to_owned(),
        "--complete-after-ms".to_owned(),
        settings.complete_after_ms.to_string(),
    ];
    let (process, ready) = ChildProcess::spawn(ChildCommand {
        name: "simulator",
        program: simulator_path(target_dir),
        args: args.iter().map(Into::into).collect(),
        envs: vec![
            ("PEEKSHOT_SIM_API_KEY".to_owned(), settings.api_key.clone()),
            (
                "PEEKSHOT_SIM_WEBHOOK_URL".to_owned(),
                settings.webhook_url.clone(),
            ),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ],
        current_dir: workspace.to_owned(),
        echo: true,
        ready_line: Some(READY_PREFIX.to_owned()),
        redact: settings.secrets(),
    })?;
    let Some(ready) = ready else {
        return Err(process.not_ready(Duration::ZERO));
    };

    let line = process.ready(ready, START_LIMIT).await?;
    let url = line
        .trim_start_matches(READY_PREFIX)
        .trim()
        .trim_end_matches('/')
        .to_owned();
    Ok(Simulator { process, url })
}

//! Starting and stopping the whole local stack, in dependency order: moto and the resources,
//! then the simulator (which needs the webhook URL), then the functions (which need the
//! simulator's URL), then the event source. [`StackInfo`] is what a user or a test needs to
//! reach it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::event_source::{EventSource, EventSourceSettings};
use crate::functions;
use crate::moto::{self, Moto};
use crate::ports::{PortRequest, resolve_ports};
use crate::process::{ChildProcess, ExitReport};
use crate::resources::{self, Clients};
use crate::secrets::LocalSecrets;
use crate::simulator::{self, LOCAL_PROJECT_ID, Simulator, SimulatorSettings};
use crate::template::{Template, TemplateContext};

/// The prefix of the one line `devstack up` prints on stdout when the stack is ready; the
/// rest of the line is [`StackInfo`] as JSON.
pub const READY_PREFIX: &str = "DEVSTACK_READY ";

/// How long each child gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The workspace root: `template.yaml`, `.venv` and the crates are found from here.
    pub workspace: PathBuf,
    /// moto's port (0 picks a free one).
    pub moto_port: u16,
    /// The simulator's port (0 picks a free one).
    pub sim_port: u16,
    /// The port of `cargo lambda watch` (0 picks a free one).
    pub lambda_port: u16,
    /// How long the simulator takes to finish a capture.
    pub sim_complete_after_ms: u64,
    /// The stack name that `${AWS::StackName}` resolves to.
    pub stack_name: String,
    /// Where to write the env file; relative paths are taken from the workspace root.
    pub env_file: PathBuf,
}

impl StackOptions {
    fn port_requests(&self) -> [PortRequest; 3] {
        [
            PortRequest {
                port: self.moto_port,
                role: "moto",
                flag: "--moto-port",
                env: "DEVSTACK_MOTO_PORT",
            },
            PortRequest {
                port: self.sim_port,
                role: "the PeekShot simulator",
                flag: "--sim-port",
                env: "DEVSTACK_SIM_PORT",
            },
            PortRequest {
                port: self.lambda_port,
                role: "cargo lambda watch",
                flag: "--lambda-port",
                env: "DEVSTACK_LAMBDA_PORT",
            },
        ]
    }
}

/// Everything needed to use a running stack; printed as JSON after [`READY_PREFIX`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackInfo {
    /// The AWS Region of every resource.
    pub region: String,
    /// moto's endpoint, for every AWS client.
    pub moto_url: String,
    /// The capture queue producers send to.
    pub queue_url: String,
    /// Its ARN.
    pub queue_arn: String,
    /// The dead-letter queue.
    pub dead_letter_queue_url: String,
    /// The capture table.
    pub table_name: String,
    /// The PeekShot simulator's base URL.
    pub simulator_url: String,
    /// `cargo lambda watch`'s base URL (invoke API and function URLs).
    pub lambda_url: String,
    /// The webhook function's URL, without the `secret` query parameter.
    pub webhook_url: String,
    /// The webhook secret of this run.
    pub webhook_secret: String,
    /// The PeekShot API key of this run.
    pub api_key: String,
    /// The PeekShot project id.
    pub project_id: String,
}

impl StackInfo {
    /// The READY line.
    pub fn ready_line(&self) -> anyhow::Result<String> {
        Ok(format!("{READY_PREFIX}{}", serde_json::to_string(self)?))
    }

    /// Parses a READY line.
    pub fn from_ready_line(line: &str) -> Option<Self> {
        serde_json::from_str(line.strip_prefix(READY_PREFIX)?).ok()
    }
}

/// A running stack. Dropping it kills every child at once; [`Stack::down`] stops them
/// gracefully.
pub struct Stack {
    /// How to reach it.
    pub info: StackInfo,
    /// Clients for moto.
    pub clients: Clients,
    event_source: EventSource,
    functions: ChildProcess,
    simulator: Simulator,
    moto: Moto,
    env_file: Option<PathBuf>,
}

impl Stack {
    /// Starts everything and returns once the event source is polling.
    pub async fn up(options: &StackOptions) -> anyhow::Result<Self> {
        let started = Instant::now();
        let workspace = options.workspace.as_path();
        check_tools(workspace)?;

        // Everything that can fail without starting a process is checked first.
        let context = TemplateContext::local(&options.stack_name, crate::aws::LOCAL_REGION);
        let template_path = workspace.join("template.yaml");
        let resources = Template::from_path(&template_path)?.local_resources(&context)?;
        resolve_ports(&options.port_requests())?;

        tracing::info!("building the functions and the simulator");
        functions::prebuild(workspace, functions::STACK_PACKAGES).await?;
        let target_dir = target_dir(workspace).await?;
        // Checked again after the build, which may have taken minutes.
        let [moto_port, _, lambda_port] =
            <[u16; 3]>::try_from(resolve_ports(&options.port_requests())?)
                .map_err(|_| anyhow::anyhow!("expected three ports"))?;

        let moto = moto::start(workspace, moto_port, false).await?;
        tracing::info!(url = %moto.url, "moto is up");
        let sdk = crate::aws::moto_config(&moto.url, &context.region).await;
        let clients = Clients::new(&sdk);
        let secrets = LocalSecrets::generate();
        let created = resources::create(&clients, &resources, &context, &secrets).await?;
        tracing::info!(queue = %created.queue_url, table = %created.table_name, "queues and table created from template.yaml");

        let lambda_url = format!("http://127.0.0.1:{lambda_port}");
        let webhook_url = functions::webhook_url(&lambda_url);
        let simulator = simulator::start(
            workspace,
            &target_dir,
            &SimulatorSettings {
                port: options.sim_port,
                api_key: secrets.api_key().to_owned(),
                webhook_url: format!("{webhook_url}?secret={}", secrets.webhook_secret()),
                complete_after_ms: options.sim_complete_after_ms,
            },
        )
        .await?;
        tracing::info!(url = %simulator.url, "the PeekShot simulator is up");

        let info = StackInfo {
            region: context.region.clone(),
            moto_url: moto.url.clone(),
            queue_url: created.queue_url.clone(),
            queue_arn: created.queue_arn.clone(),
            dead_letter_queue_url: created.dead_letter_queue_url.clone(),
            table_name: created.table_name.clone(),
            simulator_url: simulator.url.clone(),
            lambda_url: lambda_url.clone(),
            webhook_url,
            webhook_secret: secrets.webhook_secret().to_owned(),
            api_key: secrets.api_key().to_owned(),
            project_id: LOCAL_PROJECT_ID.to_owned(),
        };

        let env = function_environment(&info, &resources.secret_parameters);
        let redact = vec![info.api_key.clone(), info.webhook_secret.clone()];
        let functions = functions::start_watch(workspace, lambda_port, env, redact).await?;
        functions::warm_up(&lambda_url).await;
        tracing::info!(url = %lambda_url, "both functions are up under cargo lambda watch");

        let event_source = EventSource::start(
            clients.sqs.clone(),
            EventSourceSettings::local(
                &info.queue_url,
                &info.queue_arn,
                &info.region,
                &functions::invoke_url(&lambda_url, functions::SUBMITTER),
            ),
        );

        let env_path = workspace.join(&options.env_file);
        crate::env_file::write(&env_path, &info)?;
        tracing::info!(
            env_file = %env_path.display(),
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "the local stack is ready"
        );

        Ok(Self {
            info,
            clients,
            event_source,
            functions,
            simulator,
            moto,
            env_file: Some(env_path),
        })
    }

    /// Resolves when any child exits; while the stack runs, that is always a failure.
    pub async fn failed(&self) -> ExitReport {
        tokio::select! {
            report = self.moto.process.exited() => report,
            report = self.simulator.process.exited() => report,
            report = self.functions.exited() => report,
        }
    }

    /// Stops the event source, then the functions, the simulator and moto, and removes the
    /// env file.
    pub async fn down(mut self) {
        self.event_source.stop();
        self.functions.stop(STOP_GRACE).await;
        self.simulator.process.stop(STOP_GRACE).await;
        self.moto.process.stop(STOP_GRACE).await;
        if let Some(path) = self.env_file.take() {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("the local stack has stopped");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(path) = self.env_file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The functions' environment, as the template sets it in AWS, with local endpoints and the
/// secrets given directly (the functions prefer those to the SSM parameter names, which are
/// set too and hold the same values in moto).
pub fn function_environment(
    info: &StackInfo,
    parameters: &crate::template::SecretParameterNames,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("CAPTURE_TABLE", info.table_name.clone()),
        ("CAPTURE_QUEUE_URL", info.queue_url.clone()),
        ("PEEKSHOT_BASE_URL", info.simulator_url.clone()),
        ("PEEKSHOT_PROJECT_ID", info.project_id.clone()),
        ("PEEKSHOT_API_KEY", info.api_key.clone()),
        ("WEBHOOK_SECRET", info.webhook_secret.clone()),
        ("SUBMIT_CONCURRENCY", "10".to_owned()),
        ("CAPTURE_RETENTION_DAYS", "30".to_owned()),
        ("AWS_ENDPOINT_URL", info.moto_url.clone()),
        ("AWS_REGION", info.region.clone()),
        (
            "AWS_ACCESS_KEY_ID",
            crate::aws::LOCAL_ACCESS_KEY_ID.to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            crate::aws::LOCAL_SECRET_ACCESS_KEY.to_owned(),
        ),
        ("RUST_LOG", "info".to_owned()),
    ];
    if let Some(name) = &parameters.api_key {
        env.push(("PEEKSHOT_API_KEY_PARAMETER", name.clone()));
    }
    if let Some(name) = &parameters.webhook_secret {
        env.push(("WEBHOOK_SECRET_PARAMETER", name.clone()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Fails with the fix when `scripts/setup.sh` has not installed the Python tools.
fn check_tools(workspace: &Path) -> anyhow::Result<()> {
    for tool in [
        moto::moto_server_path(workspace),
        functions::cargo_lambda_path(workspace),
    ] {
        if !tool.exists() {
            bail!("{} is missing: run scripts/setup.sh first", tool.display());
        }
    }
    Ok(())
}

/// The cargo target directory as cargo sees it (`CARGO_TARGET_DIR`, configuration, or
/// `target/` in the workspace).
pub async fn target_dir(workspace: &Path) -> anyhow::Result<PathBuf> {
    let output = tokio::process::Command::new(functions::cargo_program())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    parse_target_dir(&output.stdout)
}

/// Reads `target_directory` from `cargo metadata` output.
pub fn parse_target_dir(metadata: &[u8]) -> anyhow::Result<PathBuf> {
    #[derive(Deserialize)]
    struct Metadata {
        target_directory: PathBuf,
    }
    let metadata: Metadata =
        serde_json::from_slice(metadata).context("reading cargo metadata's target_directory")?;
    Ok(metadata.target_directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> StackInfo {
        StackInfo {
            region: "us-east-1".into(),
            moto_url: "http://127.0.0.1:1".into(),
            queue_url: "http://127.0.0.1:1/123456789012/q".into(),
            queue_arn: "arn:aws:sqs:us-east-1:123456789012:q".into(),
            dead_letter_queue_url: "http://127.0.0.1:1/123456789012/q-dlq".into(),
            table_name: "t".into(),
            simulator_url: "http://127.0.0.1:2".into(),
            lambda_url: "http://127.0.0.1:3".into(),
            webhook_url: "http://127.0.0.1:3/lambda-url/webhook/webhooks/peekshot".into(),
            webhook_secret: "s".repeat(32),
            api_key: "local-k".into(),
            project_id: "local-project".into(),
        }
    }

    #[test]
    fn the_ready_line_round_trips_with_camel_case_fields() {
        let line = info().ready_line().expect("serialises");
        assert!(
            line.starts_with("DEVSTACK_READY {\"region\":\"us-east-1\",\"motoUrl\""),
            "{line}"
        );
        assert!(line.contains("\"deadLetterQueueUrl\"") && line.contains("\"webhookSecret\""));
        assert_eq!(StackInfo::from_ready_line(&line), Some(info()));
    }

    #[test]
    fn functions_get_local_endpoints_and_direct_secrets() {
        let names = crate::template::SecretParameterNames {
            api_key: Some("/p/key".into()),
            webhook_secret: None,
        };
        let env = function_environment(&info(), &names);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:1"));
        assert_eq!(get("PEEKSHOT_BASE_URL"), Some("http://127.0.0.1:2"));
        assert_eq!(get("WEBHOOK_SECRET"), Some("s".repeat(32).as_str()));
        assert_eq!(get("PEEKSHOT_API_KEY_PARAMETER"), Some("/p/key"));
        assert_eq!(get("WEBHOOK_SECRET_PARAMETER"), None);
    }
}

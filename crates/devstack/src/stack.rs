//! Starting and stopping the whole local stack, in dependency order: moto and the resources,
//! then the simulator (which needs the webhook URL), then the functions (which need the
//! simulator's URL), then the event source. [`StackInfo`] is what a user or a test needs to
//! reach it.

use std::collections::BTreeMap;
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
use crate::scheduler::{ScheduleSettings, Scheduler};
use crate::secrets::LocalSecrets;
use crate::simulator::{self, LOCAL_PROJECT_ID, Simulator, SimulatorSettings};
use crate::template::{self, Template, TemplateContext};

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
    /// How often the reconciler runs; zero runs it never.
    pub reconcile_every: Duration,
    /// The reconciler's `RECONCILE_AFTER_SECONDS`.
    pub reconcile_after: Duration,
    /// The reconciler's `RECONCILE_GIVE_UP_SECONDS`.
    pub reconcile_give_up: Duration,
    /// Variables for the functions that win over every other source (`--function-env`).
    pub function_env: Vec<(String, String)>,
    /// The share of succeeded messages the event source delivers a second time, and the seed
    /// that picks them (`--redeliver-rate`, `--redeliver-seed`).
    pub redelivery: Option<(f64, u64)>,
    /// The webhook secret to use instead of a random one (`--webhook-secret`).
    pub webhook_secret: Option<String>,
}

/// The ports the stack listens on.
#[derive(Debug, Clone, Copy)]
struct StackPorts {
    moto: u16,
    /// 0 when the simulator is to pick its own, which it reports when it listens.
    simulator: u16,
    lambda: u16,
}

impl StackOptions {
    /// Checks the requested ports and picks free ones for moto and watch where 0 was asked.
    fn ports(&self) -> Result<StackPorts, crate::ports::PortError> {
        let requests = self.port_requests();
        let resolved = resolve_ports(&requests)?;
        let port = |i: usize| resolved.get(i).copied().unwrap_or(requests[i].port);
        Ok(StackPorts {
            moto: port(0),
            simulator: self.sim_port,
            lambda: port(2),
        })
    }

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
    scheduler: Option<Scheduler>,
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
        let template = Template::from_path(&template_path)?;
        let resources = template.local_resources(&context)?;
        options.ports()?;

        tracing::info!("building the functions and the simulator");
        functions::prebuild(workspace).await?;
        let target_dir = target_dir(workspace).await?;
        // Checked again after the build, which may have taken minutes.
        let ports = options.ports()?;

        let moto = moto::start(workspace, ports.moto, false).await?;
        tracing::info!(url = %moto.url, "moto is up");
        let sdk = crate::aws::moto_config(&moto.url, &context.region).await;
        let clients = Clients::new(&sdk);
        let secrets = match &options.webhook_secret {
            Some(chosen) => LocalSecrets::generate()
                .with_webhook_secret(chosen)
                .map_err(|reason| anyhow::anyhow!("--webhook-secret: {reason}"))?,
            None => LocalSecrets::generate(),
        };
        let created = resources::create(&clients, &resources, &context, &secrets).await?;
        tracing::info!(
            queue = %created.queue_url,
            table = %created.table_name,
            "queues and table created from template.yaml"
        );

        let lambda_url = format!("http://127.0.0.1:{}", ports.lambda);
        let webhook_url = functions::webhook_url(&lambda_url);
        let simulator = simulator::start(
            workspace,
            &target_dir,
            &SimulatorSettings {
                port: ports.simulator,
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

        let env = function_environment(&template, &context, &info)?;
        let env = crate::scheduler::reconciler_environment(
            env,
            options.reconcile_after,
            options.reconcile_give_up,
        );
        let env = with_overrides(env, &options.function_env);
        let redact = vec![info.api_key.clone(), info.webhook_secret.clone()];
        let functions =
            functions::start_watch(workspace, &target_dir, ports.lambda, env, redact).await?;
        functions::warm_up(&lambda_url).await;
        tracing::info!(url = %lambda_url, "the functions are up under cargo lambda watch");

        let mut event_source_settings = EventSourceSettings::local(
            &info.queue_url,
            &info.queue_arn,
            &info.region,
            &functions::invoke_url(&lambda_url, functions::SUBMITTER),
        );
        event_source_settings.redelivery = options
            .redelivery
            .map(|(rate, seed)| crate::event_source::Redelivery::new(rate, seed));
        let event_source = EventSource::start(clients.sqs.clone(), event_source_settings);

        let scheduler = (!options.reconcile_every.is_zero()).then(|| {
            Scheduler::start(ScheduleSettings {
                invoke_url: functions::invoke_url(&lambda_url, functions::RECONCILER),
                every: options.reconcile_every,
                region: info.region.clone(),
                stack_name: options.stack_name.clone(),
            })
        });

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
            scheduler,
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

    /// Stops the event source and the schedule, then the functions, the simulator and moto, and removes the
    /// env file.
    pub async fn down(mut self) {
        self.event_source.stop();
        if let Some(scheduler) = &self.scheduler {
            scheduler.stop();
        }
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

/// The functions' environment: the variables `template.yaml` gives `SubmitterFunction` and
/// `WebhookFunction`, resolved for the local stack (parameter defaults, the local queue URLs
/// and table name), with the local PeekShot simulator and project, this run's secrets as
/// direct values (the functions prefer them to the SSM parameter names, which moto holds
/// too), moto as the AWS endpoint, and retry delays of seconds instead of minutes
/// ([`LOCAL_RETRY`]). One watch runs both functions, so both get the union of the two; where
/// they disagree on a variable, the webhook's value wins.
/// The submitter's retry delays on the local stack: a first retry within a second, a cap of
/// ten seconds, so that a message that keeps failing reaches the dead-letter queue in about
/// twenty seconds rather than the deployed defaults' minutes.
pub const LOCAL_RETRY: [(&str, &str); 3] = [
    ("RETRY_BASE_SECONDS", "1"),
    ("RETRY_MAX_SECONDS", "10"),
    ("DEPLOYMENT_RETRY_SECONDS", "10"),
];

/// `env` with each of `overrides` replacing the variable of its name, or added.
pub fn with_overrides(
    mut env: Vec<(String, String)>,
    overrides: &[(String, String)],
) -> Vec<(String, String)> {
    env.retain(|(name, _)| !overrides.iter().any(|(o, _)| o == name));
    env.extend(overrides.iter().cloned());
    env
}

pub fn function_environment(
    template: &Template,
    context: &TemplateContext,
    info: &StackInfo,
) -> anyhow::Result<Vec<(String, String)>> {
    let references = BTreeMap::from([
        (template::CAPTURE_QUEUE.to_owned(), info.queue_url.clone()),
        (
            template::DEAD_LETTER_QUEUE.to_owned(),
            info.dead_letter_queue_url.clone(),
        ),
        (template::CAPTURE_TABLE.to_owned(), info.table_name.clone()),
    ]);
    let mut env = BTreeMap::new();
    let mut unresolved = BTreeMap::new();
    for function in [template::SUBMITTER_FUNCTION, template::WEBHOOK_FUNCTION] {
        let declared = template.function_environment(function, context, &references)?;
        env.extend(declared.resolved);
        unresolved.extend(declared.unresolved);
    }

    let local = [
        ("PEEKSHOT_BASE_URL", info.simulator_url.clone()),
        ("PEEKSHOT_PROJECT_ID", info.project_id.clone()),
        ("PEEKSHOT_API_KEY", info.api_key.clone()),
        ("WEBHOOK_SECRET", info.webhook_secret.clone()),
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
    ];
    let retry = LOCAL_RETRY.map(|(name, value)| (name, value.to_owned()));
    for (name, value) in local.into_iter().chain(retry) {
        unresolved.remove(name);
        env.insert(name.to_owned(), value);
    }
    if !unresolved.is_empty() {
        let reasons: Vec<String> = unresolved.into_values().collect();
        bail!(
            "template.yaml gives the functions variables the local stack has no value for: {}",
            reasons.join("; ")
        );
    }
    Ok(env.into_iter().collect())
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
    fn functions_get_the_templates_variables_with_local_values() {
        let text = r#"
Parameters:
  ProjectId: {Type: String}
  Concurrency: {Type: Number, Default: 10}
  KeyName: {Type: String, Default: /p/key}
Resources:
  SubmitterFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          CAPTURE_TABLE: !Ref CaptureTable
          CAPTURE_QUEUE_URL: !Ref CaptureQueue
          PEEKSHOT_PROJECT_ID: !Ref ProjectId
          PEEKSHOT_API_KEY_PARAMETER: !Ref KeyName
          SUBMIT_CONCURRENCY: !Ref Concurrency
  WebhookFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          RUST_LOG: info
"#;
        let template = Template::parse(text, "inline").expect("parses");
        let context = TemplateContext::local("t", "us-east-1");

        let env = function_environment(&template, &context, &info()).expect("resolves");

        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("CAPTURE_TABLE"), Some("t"));
        assert_eq!(
            get("CAPTURE_QUEUE_URL"),
            Some("http://127.0.0.1:1/123456789012/q")
        );
        assert_eq!(get("PEEKSHOT_PROJECT_ID"), Some("local-project"));
        assert_eq!(get("PEEKSHOT_API_KEY_PARAMETER"), Some("/p/key"));
        assert_eq!(get("SUBMIT_CONCURRENCY"), Some("10"));
        assert_eq!(get("RUST_LOG"), Some("info"));
        assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:1"));
        assert_eq!(get("PEEKSHOT_BASE_URL"), Some("http://127.0.0.1:2"));
        assert_eq!(get("WEBHOOK_SECRET"), Some("s".repeat(32).as_str()));
    }

    #[test]
    fn a_variable_without_a_local_value_is_named() {
        let text = r#"
Parameters:
  Mystery: {Type: String}
Resources:
  SubmitterFunction:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {Variables: {MYSTERY: !Ref Mystery}}
  WebhookFunction:
    Type: AWS::Serverless::Function
"#;
        let template = Template::parse(text, "inline").expect("parses");
        let context = TemplateContext::local("t", "us-east-1");
        let err = function_environment(&template, &context, &info()).expect_err("unresolved");
        assert!(err.to_string().contains("MYSTERY"), "{err}");
    }
}

//! What the functions run against during the bench, all on 127.0.0.1: moto with the capture
//! table and queues created from `template.yaml` (through devstack, as the local stack does),
//! one counting proxy per caller in front of moto, and the PeekShot simulator in-process.
//! Everything started here stops when the [`Stack`] is dropped: moto's process group is
//! killed, the proxies' and the simulator's tasks are aborted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use devstack::moto::Moto;
use devstack::secrets::LocalSecrets;
use devstack::template::{Template, TemplateContext};
use peekshot_sim::{RunningSimulator, SimConfig};

use crate::function::{FunctionProcess, FunctionSpec};
use crate::parallel_dynamo::ParallelDynamo;
use crate::proxy::{CountingProxy, Ledger};

/// The stack name the bench's resources are named after.
const STACK_NAME: &str = "peekshot-bench";

/// Callers, as the ledger names them.
pub const SUBMITTER: &str = "submitter";
/// See [`SUBMITTER`].
pub const WEBHOOK: &str = "webhook";
/// See [`SUBMITTER`].
pub const RECONCILER: &str = "reconciler";
/// The bench sending capture requests, as a producer does.
pub const PRODUCER: &str = "producer";
/// The bench receiving and deleting messages, as Lambda's SQS event source mapping does.
pub const EVENT_SOURCE: &str = "event-source";

/// The running stack.
pub struct Stack {
    /// The workspace root.
    pub workspace: PathBuf,
    /// Where function logs go.
    pub log_dir: PathBuf,
    /// Every AWS request of the functions and of the bench's producer and event source.
    pub ledger: Ledger,
    /// The capture table's name.
    pub table: String,
    /// The capture queue's URL.
    pub queue_url: String,
    /// DynamoDB straight to moto, not counted: the bench's own checks and reads.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS through the producer's proxy.
    pub producer_sqs: aws_sdk_sqs::Client,
    /// SQS through the event source's proxy.
    pub event_source_sqs: aws_sdk_sqs::Client,
    /// This run's API key and webhook secret.
    pub secrets: LocalSecrets,
    /// The simulator the submitter calls, without webhooks.
    pub simulator: RunningSimulator,
    lambda_dir: PathBuf,
    submitter_proxy: CountingProxy,
    webhook_proxy: CountingProxy,
    reconciler_proxy: CountingProxy,
    _producer_proxy: CountingProxy,
    _event_source_proxy: CountingProxy,
    /// The submitter's proxy in front of the parallel DynamoDB stand-in.
    parallel_proxy: CountingProxy,
    _parallel_dynamo: ParallelDynamo,
    moto: Moto,
    launches: AtomicUsize,
    extra_env: Vec<(String, String)>,
}

impl Stack {
    /// Starts moto, creates the resources, and starts the proxies and the simulator. Every
    /// function started later also gets `extra_env` (an experiment's setting).
    pub async fn start(
        workspace: &Path,
        lambda_dir: &Path,
        log_dir: &Path,
        extra_env: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
        let moto = devstack::moto::start(workspace, free_port()?, false)
            .await
            .context("starting moto (run scripts/setup.sh first)")?;

        let region = devstack::aws::LOCAL_REGION;
        let direct = devstack::aws::moto_config(&moto.url, region).await;
        let context = TemplateContext::local(STACK_NAME, region);
        let resources =
            Template::from_path(&workspace.join("template.yaml"))?.local_resources(&context)?;
        let sqs = aws_sdk_sqs::Client::new(&direct);
        let dynamodb = aws_sdk_dynamodb::Client::new(&direct);
        devstack::resources::create_queue(&sqs, &resources.dead_letter_queue, &context).await?;
        let (queue_url, _) =
            devstack::resources::create_queue(&sqs, &resources.capture_queue, &context).await?;
        devstack::resources::create_table(&dynamodb, &resources.capture_table).await?;

        let ledger = Ledger::default();
        let submitter_proxy = CountingProxy::start(SUBMITTER, &moto.url, &ledger).await?;
        let webhook_proxy = CountingProxy::start(WEBHOOK, &moto.url, &ledger).await?;
        let reconciler_proxy = CountingProxy::start(RECONCILER, &moto.url, &ledger).await?;
        let producer_proxy = CountingProxy::start(PRODUCER, &moto.url, &ledger).await?;
        let event_source_proxy = CountingProxy::start(EVENT_SOURCE, &moto.url, &ledger).await?;
        let parallel_dynamo = ParallelDynamo::start().await?;
        let parallel_proxy =
            CountingProxy::start(SUBMITTER, parallel_dynamo.url(), &ledger).await?;
        let producer_sqs = aws_sdk_sqs::Client::new(
            &devstack::aws::moto_config(producer_proxy.url(), region).await,
        );
        let event_source_sqs = aws_sdk_sqs::Client::new(
            &devstack::aws::moto_config(event_source_proxy.url(), region).await,
        );

        let secrets = LocalSecrets::generate();
        let simulator = start_simulator(
            &secrets,
            None,
            peekshot_sim::config::DEFAULT_FIRST_REQUEST_ID,
        )
        .await?;

        Ok(Self {
            workspace: workspace.to_owned(),
            log_dir: log_dir.to_owned(),
            ledger,
            table: resources.capture_table.table_name.clone(),
            queue_url,
            dynamodb,
            producer_sqs,
            event_source_sqs,
            secrets,
            simulator,
            lambda_dir: lambda_dir.to_owned(),
            submitter_proxy,
            webhook_proxy,
            reconciler_proxy,
            _producer_proxy: producer_proxy,
            _event_source_proxy: event_source_proxy,
            parallel_proxy,
            _parallel_dynamo: parallel_dynamo,
            moto,
            launches: AtomicUsize::new(0),
            extra_env,
        })
    }

    /// The submitter as the template configures it (the global pace included), calling
    /// `peekshot` (default: the stack's simulator) with the default concurrency.
    pub fn submitter(&self, peekshot: Option<&str>) -> FunctionSpec {
        let base_url = peekshot
            .map(str::to_owned)
            .unwrap_or_else(|| self.simulator.base_url().to_string());
        FunctionSpec {
            name: SUBMITTER,
            binary: self.binary(SUBMITTER),
            env: owned(&[
                ("CAPTURE_TABLE", &self.table),
                ("CAPTURE_QUEUE_URL", &self.queue_url),
                (
                    "PEEKSHOT_PROJECT_ID",
                    peekshot_sim::config::DEFAULT_PROJECT_ID,
                ),
                ("PEEKSHOT_API_KEY", self.secrets.api_key()),
                ("PEEKSHOT_BASE_URL", &base_url),
                ("SUBMIT_CONCURRENCY", "10"),
                ("SUBMIT_RATE_PER_SECOND", "5"),
                ("SUBMIT_BURST", "5"),
                ("CAPTURE_RETENTION_DAYS", "30"),
                ("RUST_LOG", "info"),
                ("AWS_ENDPOINT_URL", self.submitter_proxy.url()),
            ]),
        }
    }

    /// The submitter without the global pace, for the scenarios that measure how fast the
    /// function itself goes: at the template's five creates a second a batch of 100 would take
    /// 20 seconds by design, whatever the function does.
    pub fn unpaced_submitter(&self) -> FunctionSpec {
        self.submitter(None).with_env("SUBMIT_RATE_PER_SECOND", "0")
    }

    /// The unpaced submitter talking to the parallel DynamoDB stand-in (through a counting
    /// proxy of its own) instead of moto, for the one scenario that stand-in can serve.
    pub fn submitter_against_parallel_dynamo(&self) -> FunctionSpec {
        self.unpaced_submitter()
            .with_env("AWS_ENDPOINT_URL", self.parallel_proxy.url())
    }

    /// The webhook as the template configures it.
    pub fn webhook(&self) -> FunctionSpec {
        FunctionSpec {
            name: WEBHOOK,
            binary: self.binary(WEBHOOK),
            env: owned(&[
                ("CAPTURE_TABLE", &self.table),
                ("WEBHOOK_SECRET", self.secrets.webhook_secret()),
                ("CAPTURE_RETENTION_DAYS", "30"),
                ("RUST_LOG", "info"),
                ("AWS_ENDPOINT_URL", self.webhook_proxy.url()),
            ]),
        }
    }

    /// The reconciler with the template's defaults, reading from the stack's simulator.
    pub fn reconciler(&self) -> FunctionSpec {
        FunctionSpec {
            name: RECONCILER,
            binary: self.binary(RECONCILER),
            env: owned(&[
                ("CAPTURE_TABLE", &self.table),
                (
                    "PEEKSHOT_PROJECT_ID",
                    peekshot_sim::config::DEFAULT_PROJECT_ID,
                ),
                ("PEEKSHOT_API_KEY", self.secrets.api_key()),
                ("PEEKSHOT_BASE_URL", self.simulator.base_url().as_str()),
                ("CAPTURE_RETENTION_DAYS", "30"),
                ("RUST_LOG", "info"),
                ("AWS_ENDPOINT_URL", self.reconciler_proxy.url()),
            ]),
        }
    }

    fn binary(&self, function: &str) -> PathBuf {
        self.lambda_dir.join(function).join("bootstrap")
    }

    /// Starts a function process with its own numbered log file.
    pub async fn launch(&self, spec: &FunctionSpec) -> anyhow::Result<FunctionProcess> {
        let n = self.launches.fetch_add(1, Ordering::Relaxed);
        let log = self.log_dir.join(format!("{:03}-{}.log", n, spec.name));
        let mut spec = spec.clone();
        for (name, value) in &self.extra_env {
            spec = spec.with_env(name, value);
        }
        FunctionProcess::start(&spec, &log).await
    }

    /// Stops moto; the rest stops when the stack is dropped.
    pub async fn stop(mut self) {
        self.moto.process.stop(Duration::from_secs(5)).await;
    }
}

/// A simulator on a free loopback port with this run's API key, sending webhooks to
/// `webhook_url` if given. It finishes captures after 100 ms so that the end-to-end path
/// completes quickly, and uses a fixed seed so that every run sees the same dice. Its request
/// ids start at `first_request_id`, so that two simulators never hand out the same id to
/// captures in the same table.
pub async fn start_simulator(
    secrets: &LocalSecrets,
    webhook_url: Option<&str>,
    first_request_id: u64,
) -> anyhow::Result<RunningSimulator> {
    let webhook_url = webhook_url
        .map(url::Url::parse)
        .transpose()
        .context("the webhook URL is not a URL")?;
    let config = SimConfig {
        api_key: secrets.api_key().to_owned(),
        webhook_url,
        complete_after: Duration::from_millis(100),
        first_request_id,
        seed: Some(5),
        ..SimConfig::default()
    };
    Ok(RunningSimulator::start_on_loopback(config).await?)
}

/// A port nobody listens on right now. Another program could take it before moto binds it;
/// moto's start then fails with a clear error, which on a bench machine is rare enough.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("looking for a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

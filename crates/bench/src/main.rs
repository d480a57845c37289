//! `bench`: measures what Lambda bills and what users feel, for each function, on loopback.
//!
//! It builds the functions in release mode as `sam build` does ([`artifacts`]), zips them,
//! starts moto, counting proxies and the PeekShot simulator ([`stack`]), then starts each
//! function's `bootstrap` as Lambda would, against a runtime API stand-in ([`runtime_api`],
//! [`function`]), and measures ([`scenarios`]):
//!
//! 1. cold start: process start to first poll for work, over many starts;
//! 2. peak memory while handling batches of 10 and 100, and 1,000 webhooks;
//! 3. artifact size, zipped;
//! 4. batch wall time against a PeekShot that answers after a fixed delay, with the default
//!    concurrency and one message at a time, and CPU time per message;
//! 5. webhook throughput and latency, with our own code timed apart ([`micro`]);
//! 6. AWS requests per capture on the real path, counted by the proxies ([`proxy`],
//!    [`gateway`]);
//! 7. cost per million captures from those figures ([`cost`], [`capacity`]).
//!
//! The results are printed as Markdown tables ([`report`]) and written as JSON. Everything the
//! bench starts is stopped when it ends, whether it succeeded or not.

mod artifacts;
mod capacity;
mod cost;
mod events;
mod function;
mod gateway;
mod micro;
mod parallel_dynamo;
mod proxy;
mod report;
mod runtime_api;
mod scenarios;
mod stack;
mod stats;

use std::path::{Path, PathBuf};

use anyhow::Context;
use capture_adapters::Secret;
use clap::Parser;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::events::WebhookEvents;
use crate::report::{Environment, OwnCode, Results};
use crate::scenarios::DynamoBehind;
use crate::stack::Stack;

/// Measures cold start, memory, artifact size, batch concurrency, webhook throughput, AWS
/// calls and cost per capture of the functions, on loopback.
#[derive(Debug, Parser)]
struct Options {
    /// Cold starts per function.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Webhook deliveries for throughput, latency and memory.
    #[arg(long, default_value_t = 1000)]
    webhooks: usize,
    /// The simulator's delay on every PeekShot answer in the concurrency runs, ms.
    #[arg(long, default_value_t = 200)]
    delay_ms: u64,
    /// Runs per batch size at the default concurrency (one at a time, each size runs once).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Passes over the webhook payloads in the in-process timing of our own code.
    #[arg(long, default_value_t = 20)]
    micro_passes: usize,
    /// Measure the functions already built in the lambda directory.
    #[arg(long)]
    skip_build: bool,
    /// Where the functions are built to (`<dir>/<function>/bootstrap`); relative to the
    /// workspace root.
    #[arg(long, default_value = "target/bench/lambda")]
    lambda_dir: PathBuf,
    /// A Cargo `--config` override for the functions' build, e.g.
    /// `profile.release.opt-level=3`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    build_overrides: Vec<String>,
    /// An environment variable for every function process, e.g.
    /// `SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt`; repeatable.
    #[arg(long = "function-env", value_name = "NAME=VALUE", value_parser = name_value)]
    function_env: Vec<(String, String)>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/results.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .context("finding the workspace root")?;
    let bench_dir = workspace.join("target/bench");
    let lambda_dir = workspace.join(&options.lambda_dir);
    let started = OffsetDateTime::now_utc();

    let build_seconds = if options.skip_build {
        None
    } else {
        let took = artifacts::build(&workspace, &lambda_dir, &options.build_overrides)?;
        Some(took.as_secs_f64())
    };
    let artifacts = artifacts::FUNCTIONS
        .into_iter()
        .map(|function| artifacts::package(&lambda_dir, function))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let load_before = load_average();
    let stack = Stack::start(
        &workspace,
        &lambda_dir,
        &bench_dir.join("logs"),
        options.function_env.clone(),
    )
    .await?;
    let measured = measure(&stack, &options).await;
    stack.stop().await;
    let measured = measured?;
    let load_after = load_average();

    let environment = Environment {
        started: started.format(&Rfc3339)?,
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_mib: memory_mib(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        load_before,
        load_after,
        commit: commit(&workspace),
        build_overrides: options.build_overrides.clone(),
        function_env: options
            .function_env
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect(),
        build_seconds,
    };
    let results = measured.into_results(environment, artifacts)?;

    println!("{}", report::markdown(&results));
    let out = workspace.join(&options.out);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench: results written to {}", out.display());
    Ok(())
}

/// Everything measured against the stack.
struct Measured {
    cold_starts: Vec<scenarios::ColdStarts>,
    submitter_memory: Vec<scenarios::BatchRun>,
    tuned: scenarios::ConcurrencyRuns,
    one_at_a_time: scenarios::ConcurrencyRuns,
    parallel: scenarios::ConcurrencyRuns,
    webhook: scenarios::WebhookThroughput,
    own_code: OwnCode,
    calls: Vec<scenarios::CallsPerCapture>,
}

async fn measure(stack: &Stack, options: &Options) -> anyhow::Result<Measured> {
    let events = WebhookEvents::from_workspace(&stack.workspace)?;

    eprintln!("bench: cold starts ({} per function)", options.starts);
    let cold_starts = vec![
        scenarios::cold_starts(stack, &stack.submitter(None), options.starts).await?,
        scenarios::cold_starts(stack, &stack.webhook(), options.starts).await?,
        scenarios::cold_starts(stack, &stack.reconciler(), options.starts).await?,
    ];

    eprintln!("bench: submitter memory, batches of 10 and 100");
    let submitter_memory = vec![
        scenarios::submitter_memory(stack, 10).await?,
        scenarios::submitter_memory(stack, 100).await?,
    ];

    eprintln!(
        "bench: batch concurrency, PeekShot answering after {} ms",
        options.delay_ms
    );
    let sizes = [1, 10, 100];
    let moto = stack.unpaced_submitter();
    let tuned = scenarios::batch_concurrency(
        stack,
        &moto,
        DynamoBehind::Moto,
        10,
        &sizes,
        options.repeats,
        options.delay_ms,
    )
    .await?;
    let one_at_a_time = scenarios::batch_concurrency(
        stack,
        &moto,
        DynamoBehind::Moto,
        1,
        &sizes,
        1,
        options.delay_ms,
    )
    .await?;
    let parallel = scenarios::batch_concurrency(
        stack,
        &stack.submitter_against_parallel_dynamo(),
        DynamoBehind::Parallel,
        10,
        &sizes,
        options.repeats,
        options.delay_ms,
    )
    .await?;

    eprintln!(
        "bench: submitting {} captures for the webhook",
        options.webhooks
    );
    let request_ids = scenarios::submitted_captures(stack, options.webhooks).await?;
    eprintln!("bench: {} webhook deliveries", request_ids.len());
    let webhook = scenarios::webhook_throughput(stack, &events, &request_ids).await?;

    eprintln!("bench: AWS requests per capture on the real path");
    let calls = vec![
        scenarios::calls_per_capture(stack, &events, 1).await?,
        scenarios::calls_per_capture(stack, &events, 10).await?,
    ];

    eprintln!("bench: our own webhook code, in-process");
    let bodies: Vec<String> = request_ids
        .iter()
        .map(|id| events::completed_body(*id))
        .collect();
    let secret = Secret::new(stack.secrets.webhook_secret().to_owned());
    let samples = micro::own_webhook_code(
        &bodies,
        &secret,
        stack.secrets.webhook_secret(),
        options.micro_passes,
    );
    let own_code = OwnCode {
        calls: samples.len(),
        per_call: stats::Summary::of(&samples).context("no calls timed")?,
    };

    Ok(Measured {
        cold_starts,
        submitter_memory,
        tuned,
        one_at_a_time,
        parallel,
        webhook,
        own_code,
        calls,
    })
}

impl Measured {
    fn into_results(
        self,
        environment: Environment,
        artifacts: Vec<artifacts::Artifact>,
    ) -> anyhow::Result<Results> {
        let batch_of_ten = self
            .calls
            .iter()
            .find(|c| c.captures == 10)
            .context("the real path with ten captures was not measured")?;
        let cost_inputs = report::cost_inputs(&self.tuned, &self.webhook, batch_of_ten)?;
        let cost_per_million = cost::per_million_captures(&cost_inputs);
        let total = cost_per_million.iter().map(|line| line.usd).sum();
        let mut results = Results {
            environment,
            artifacts,
            cold_starts: self.cold_starts,
            submitter_memory: self.submitter_memory,
            concurrency: vec![
                self.tuned.clone(),
                self.one_at_a_time,
                self.parallel.clone(),
            ],
            webhook: self.webhook,
            own_webhook_code: self.own_code,
            calls_per_capture: self.calls,
            cost_inputs,
            cost_per_million,
            cost_per_million_total_usd: total,
            prices_source: cost::PRICES_SOURCE,
            targets: Vec::new(),
        };
        results.targets = report::check_targets(&results, &self.tuned, &self.parallel);
        Ok(results)
    }
}

/// Parses `NAME=VALUE`.
fn name_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    read_trimmed("/proc/cpuinfo")
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn memory_mib() -> u64 {
    read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// The commit measured, marked `-dirty` when the working tree differs from it.
fn commit(workspace: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(workspace)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

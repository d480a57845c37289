//! The bench's results: one serialisable record (written as JSON) and the same figures as
//! Markdown tables (printed, and pasted into `docs/performance.md`), with each target marked
//! met or missed.

use std::fmt::Write as _;

use serde::Serialize;

use crate::artifacts::Artifact;
use crate::cost::{self, CostInputs, CostLine};
use crate::scenarios::{BatchRun, CallsPerCapture, ColdStarts, ConcurrencyRuns, WebhookThroughput};
use crate::stack;
use crate::stats::Summary;

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// UTC date and time the run started.
    pub started: String,
    /// CPU model.
    pub cpu: String,
    /// Cores the bench could use.
    pub cores: usize,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` when the measurements began and ended: other work on the machine.
    pub load_before: String,
    /// See `load_before`.
    pub load_after: String,
    /// The commit measured, with `-dirty` when the working tree had changes.
    pub commit: String,
    /// Cargo `--config` overrides of the functions' build, if any.
    pub build_overrides: Vec<String>,
    /// Extra environment of every function process, if any.
    pub function_env: Vec<String>,
    /// How long the functions' release build took (absent with `--skip-build`).
    pub build_seconds: Option<f64>,
}

/// Own webhook code, timed in-process.
#[derive(Debug, Clone, Serialize)]
pub struct OwnCode {
    /// Calls timed.
    pub calls: usize,
    /// Per call.
    pub per_call: Summary,
}

/// One target and how the run did against it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What is measured.
    pub name: String,
    /// The limit, in words.
    pub target: String,
    /// The measured figure, in words.
    pub measured: String,
    /// Whether it is within the limit.
    pub met: bool,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Where and how.
    pub environment: Environment,
    /// Deployment packages.
    pub artifacts: Vec<Artifact>,
    /// Cold starts per function.
    pub cold_starts: Vec<ColdStarts>,
    /// Submitter memory for batches of 10 and 100.
    pub submitter_memory: Vec<BatchRun>,
    /// Batch wall times, tuned and one at a time.
    pub concurrency: Vec<ConcurrencyRuns>,
    /// Webhook deliveries one after another.
    pub webhook: WebhookThroughput,
    /// Our own webhook code apart.
    pub own_webhook_code: OwnCode,
    /// AWS requests of captures on the real path (one capture alone, and a batch of ten).
    pub calls_per_capture: Vec<CallsPerCapture>,
    /// What the cost model was fed.
    pub cost_inputs: CostInputs,
    /// The bill for a million captures.
    pub cost_per_million: Vec<CostLine>,
    /// Its total, USD.
    pub cost_per_million_total_usd: f64,
    /// Where the prices come from.
    pub prices_source: &'static str,
    /// Met or missed, per target.
    pub targets: Vec<TargetCheck>,
}

/// A design minimum of AWS requests per capture, at a batch size of `batch`.
struct Minimum {
    caller: &'static str,
    service: &'static str,
    operation: &'static str,
    per_capture: fn(f64) -> f64,
}

/// What the design allows at the least: the submitter claims, links the request id and
/// updates the capture, and takes the batch's pace slots in one write; the webhook records the
/// outcome and finishes the capture; the producer sends once; the event source receives and
/// deletes once per batch.
const MINIMUMS: [Minimum; 5] = [
    Minimum {
        caller: stack::SUBMITTER,
        service: "dynamodb",
        operation: "UpdateItem",
        per_capture: |batch| 3.0 + 1.0 / batch,
    },
    Minimum {
        caller: stack::WEBHOOK,
        service: "dynamodb",
        operation: "UpdateItem",
        per_capture: |_| 2.0,
    },
    Minimum {
        caller: stack::PRODUCER,
        service: "sqs",
        operation: "SendMessage",
        per_capture: |_| 1.0,
    },
    Minimum {
        caller: stack::EVENT_SOURCE,
        service: "sqs",
        operation: "ReceiveMessage",
        per_capture: |batch| 1.0 / batch,
    },
    Minimum {
        caller: stack::EVENT_SOURCE,
        service: "sqs",
        operation: "DeleteMessageBatch",
        per_capture: |batch| 1.0 / batch,
    },
];

/// The median wall time of the runs of `size` messages, if any.
pub fn median_run(runs: &ConcurrencyRuns, size: usize) -> Option<BatchRun> {
    let mut matching: Vec<BatchRun> = runs
        .runs
        .iter()
        .filter(|r| r.messages == size)
        .cloned()
        .collect();
    matching.sort_by(|a, b| a.duration_ms.total_cmp(&b.duration_ms));
    let middle = matching.len().checked_sub(1)? / 2;
    matching.get(middle).cloned()
}

/// The batch targets for one set of runs: a batch of 10 within 1.3 x PeekShot's delay, and a
/// batch of 100 within what the concurrency limit implies: `ceil(100 / concurrency)` waves
/// of 10 in a row, each within the batch of 10's allowance.
fn batch_targets(checks: &mut Vec<TargetCheck>, runs: &ConcurrencyRuns) {
    let delay = runs.peekshot_delay_ms as f64;
    let against = runs.dynamodb.label();
    if let Some(run) = median_run(runs, 10) {
        checks.push(TargetCheck {
            name: format!("batch of 10, wall time (DynamoDB: {against})"),
            target: format!("<= 1.3 x {delay:.0} ms = {:.0} ms", 1.3 * delay),
            measured: format!(
                "{:.0} ms ({:.2}x)",
                run.duration_ms,
                run.duration_ms / delay
            ),
            met: run.duration_ms <= 1.3 * delay,
        });
    }
    if let Some(run) = median_run(runs, 100) {
        let waves = 100usize.div_ceil(runs.concurrency) as f64;
        let limit = waves * 1.3 * delay;
        checks.push(TargetCheck {
            name: format!("batch of 100, wall time (DynamoDB: {against})"),
            target: format!(
                "<= ceil(100/{}) x 1.3 x {delay:.0} ms = {limit:.0} ms",
                runs.concurrency
            ),
            measured: format!(
                "{:.0} ms ({:.2}x)",
                run.duration_ms,
                run.duration_ms / delay
            ),
            met: run.duration_ms <= limit,
        });
    }
}

/// The targets of issue 5, checked against `results`; `parallel` is the tuned submitter's runs
/// against the parallel DynamoDB stand-in.
pub fn check_targets(
    results: &Results,
    tuned: &ConcurrencyRuns,
    parallel: &ConcurrencyRuns,
) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    for cold in &results.cold_starts {
        checks.push(TargetCheck {
            name: format!("{} cold start, median", cold.function),
            target: "<= 15 ms".into(),
            measured: format!("{:.1} ms", cold.cold_start.p50_ms),
            met: cold.cold_start.p50_ms <= 15.0,
        });
    }
    if let Some(run) = results.submitter_memory.iter().find(|r| r.messages == 10) {
        checks.push(TargetCheck {
            name: "submitter peak memory, batch of 10".into(),
            target: "<= 32 MiB".into(),
            measured: format!("{:.1} MiB", mib(run.peak_rss_bytes)),
            met: run.peak_rss_bytes <= 32 * 1024 * 1024,
        });
    }
    for artifact in &results.artifacts {
        checks.push(TargetCheck {
            name: format!("{} zipped artifact", artifact.function),
            target: "<= 4 MiB".into(),
            measured: format!("{:.2} MiB", mib(artifact.zip_bytes)),
            met: artifact.zip_bytes <= 4 * 1024 * 1024,
        });
    }
    for runs in [tuned, parallel] {
        batch_targets(&mut checks, runs);
    }
    checks.push(TargetCheck {
        name: "own webhook code, p99 per call".into(),
        target: "<= 1 ms".into(),
        measured: format!("{:.4} ms", results.own_webhook_code.per_call.p99_ms),
        met: results.own_webhook_code.per_call.p99_ms <= 1.0,
    });
    checks
}

/// The results as Markdown.
pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let env = &results.environment;
    let _ = writeln!(
        out,
        "Run {} on {} ({} cores, {} MiB, Linux {}), commit {}; load average before {} / after {}.",
        env.started,
        env.cpu,
        env.cores,
        env.memory_mib,
        env.kernel,
        env.commit,
        env.load_before,
        env.load_after
    );
    if !env.build_overrides.is_empty() {
        let _ = writeln!(
            out,
            "Build overrides: `{}`.",
            env.build_overrides.join("`, `")
        );
    }

    section(
        &mut out,
        "Artifact size (bootstrap zipped with deflate, as `sam deploy` uploads it)",
    );
    row(&mut out, &["function", "bootstrap", "zipped"]);
    rule(&mut out, 3);
    for a in &results.artifacts {
        row(
            &mut out,
            &[
                a.function,
                &format!("{:.2} MiB", mib(a.bootstrap_bytes)),
                &format!("{:.2} MiB", mib(a.zip_bytes)),
            ],
        );
    }

    let starts = results
        .cold_starts
        .first()
        .map(|c| c.cold_start.count)
        .unwrap_or(0);
    section(
        &mut out,
        &format!("Cold start (process start to first `next` poll), {starts} starts each"),
    );
    row(
        &mut out,
        &[
            "function",
            "median",
            "min",
            "p90",
            "max",
            "peak RSS after init",
            "AWS calls in init",
        ],
    );
    rule(&mut out, 7);
    for c in &results.cold_starts {
        row(
            &mut out,
            &[
                c.function,
                &format!("{:.1} ms", c.cold_start.p50_ms),
                &format!("{:.1} ms", c.cold_start.min_ms),
                &format!("{:.1} ms", c.cold_start.p90_ms),
                &format!("{:.1} ms", c.cold_start.max_ms),
                &format!("{:.1} MiB", mib(c.peak_rss_after_init_bytes)),
                &c.aws_calls_during_init.to_string(),
            ],
        );
    }

    section(
        &mut out,
        "Peak memory (VmHWM of the function process, from its start)",
    );
    row(&mut out, &["scenario", "peak RSS", "duration", "CPU"]);
    rule(&mut out, 4);
    for run in &results.submitter_memory {
        row(
            &mut out,
            &[
                &format!("submitter, one batch of {}", run.messages),
                &format!("{:.1} MiB", mib(run.peak_rss_bytes)),
                &format!("{:.0} ms", run.duration_ms),
                &format!("{:.1} ms", run.cpu_ms),
            ],
        );
    }
    let w = &results.webhook;
    row(
        &mut out,
        &[
            &format!("webhook, {} deliveries", w.deliveries),
            &format!("{:.1} MiB", mib(w.peak_rss_bytes)),
            &format!("{:.0} ms (sum)", w.latency.mean_ms * w.deliveries as f64),
            &format!("{:.1} ms", w.cpu_ms_per_delivery * w.deliveries as f64),
        ],
    );

    concurrency_table(&mut out, &results.concurrency);
    webhook_table(&mut out, results);
    calls_table(&mut out, &results.calls_per_capture);

    section(
        &mut out,
        &format!(
            "Cost per million captures at list prices ({} MB functions)",
            results.cost_inputs.memory_mb
        ),
    );
    row(&mut out, &["item", "formula", "USD"]);
    rule(&mut out, 3);
    for line in &results.cost_per_million {
        row(
            &mut out,
            &[line.item, &line.formula, &format!("{:.4}", line.usd)],
        );
    }
    row(
        &mut out,
        &[
            "**total**",
            "",
            &format!("**{:.4}**", results.cost_per_million_total_usd),
        ],
    );
    let _ = writeln!(out, "\nPrices: {}", results.prices_source);

    section(&mut out, "Targets");
    row(&mut out, &["target", "limit", "measured", "result"]);
    rule(&mut out, 4);
    for t in &results.targets {
        row(
            &mut out,
            &[
                &t.name,
                &t.target,
                &t.measured,
                if t.met { "met" } else { "**missed**" },
            ],
        );
    }
    out
}

fn concurrency_table(out: &mut String, all: &[ConcurrencyRuns]) {
    let Some(first) = all.first() else {
        return;
    };
    let delay = first.peekshot_delay_ms as f64;
    section(
        out,
        &format!(
            "Batch concurrency: one submitter invocation, every PeekShot answer delayed {delay:.0} ms (median run)"
        ),
    );
    row(
        out,
        &[
            "DynamoDB",
            "SUBMIT_CONCURRENCY",
            "batch",
            "runs",
            "wall time",
            "x delay",
            "DynamoDB requests",
            "DynamoDB busy",
            "p50 per request",
            "CPU per message",
        ],
    );
    rule(out, 10);
    for runs in all {
        let mut sizes: Vec<usize> = runs.runs.iter().map(|r| r.messages).collect();
        sizes.dedup();
        for size in sizes {
            let count = runs.runs.iter().filter(|r| r.messages == size).count();
            let Some(run) = median_run(runs, size) else {
                continue;
            };
            row(
                out,
                &[
                    runs.dynamodb.label(),
                    &runs.concurrency.to_string(),
                    &size.to_string(),
                    &count.to_string(),
                    &format!("{:.0} ms", run.duration_ms),
                    &format!("{:.2}", run.duration_ms / delay),
                    &run.dynamodb_calls.to_string(),
                    &format!("{:.0} ms", run.dynamodb_busy_ms),
                    &format!("{:.1} ms", run.dynamodb_call_p50_ms),
                    &format!("{:.2} ms", run.cpu_ms / size as f64),
                ],
            );
        }
    }
}

fn webhook_table(out: &mut String, results: &Results) {
    let w = &results.webhook;
    let own = &results.own_webhook_code;
    section(
        out,
        &format!(
            "Webhook, {} deliveries one after another (API Gateway v2 events through the runtime API)",
            w.deliveries
        ),
    );
    row(out, &["figure", "p50", "p99", "max"]);
    rule(out, 4);
    for (name, s) in [
        ("function duration per delivery", &w.latency),
        ("of which waiting for DynamoDB (proxy-timed)", &w.dynamodb),
        ("of which outside DynamoDB", &w.outside_dynamodb),
    ] {
        row(
            out,
            &[
                name,
                &format!("{:.2} ms", s.p50_ms),
                &format!("{:.2} ms", s.p99_ms),
                &format!("{:.2} ms", s.max_ms),
            ],
        );
    }
    row(
        out,
        &[
            &format!(
                "own code: secret check + parse + decide ({} in-process calls)",
                own.calls
            ),
            &format!("{:.4} ms", own.per_call.p50_ms),
            &format!("{:.4} ms", own.per_call.p99_ms),
            &format!("{:.4} ms", own.per_call.max_ms),
        ],
    );
    let _ = writeln!(
        out,
        "\nThroughput {:.0} webhooks/s on one instance; {} of {} answered `applied`; CPU {:.2} ms per delivery; mean billed duration {:.2} ms.",
        w.per_second, w.applied, w.deliveries, w.cpu_ms_per_delivery, w.mean_billed_ms
    );
}

fn calls_table(out: &mut String, all: &[CallsPerCapture]) {
    for calls in all {
        let batch = (calls.captures as f64 / calls.submitter_invocations.max(1) as f64).max(1.0);
        section(
            out,
            &format!(
                "AWS requests per capture, counted: {} capture{} from SendMessage to COMPLETE ({} submitter and {} webhook invocations)",
                calls.captures,
                if calls.captures == 1 { "" } else { "s" },
                calls.submitter_invocations,
                calls.webhook_invocations
            ),
        );
        row(
            out,
            &[
                "caller",
                "service",
                "operation",
                "counted per capture",
                "design minimum",
            ],
        );
        rule(out, 5);
        for count in &calls.counts {
            let minimum = MINIMUMS
                .iter()
                .find(|m| {
                    m.caller == count.caller
                        && m.service == count.service
                        && m.operation == count.operation
                })
                .map(|m| format!("{:.2}", (m.per_capture)(batch)))
                .unwrap_or_else(|| "0 (not needed)".to_owned());
            row(
                out,
                &[
                    &count.caller,
                    &count.service,
                    &count.operation,
                    &format!("{:.2}", count.count as f64 / calls.captures as f64),
                    &minimum,
                ],
            );
        }
        for m in MINIMUMS.iter().filter(|m| {
            !calls.counts.iter().any(|c| {
                c.caller == m.caller && c.service == m.service && c.operation == m.operation
            })
        }) {
            row(
                out,
                &[
                    m.caller,
                    m.service,
                    m.operation,
                    "0.00",
                    &format!("{:.2}", (m.per_capture)(batch)),
                ],
            );
        }
        let _ = writeln!(
            out,
            "\nDynamoDB: {:.2} write units and {:.2} read units per capture (items: {}).",
            calls.dynamodb_write_units as f64 / calls.captures as f64,
            calls.dynamodb_read_units as f64 / calls.captures as f64,
            item_size_summary(calls)
        );
    }
}

fn item_size_summary(calls: &CallsPerCapture) -> String {
    let capture = calls
        .item_sizes
        .iter()
        .filter(|(k, _)| k.starts_with("capture#"));
    let request = calls
        .item_sizes
        .iter()
        .filter(|(k, _)| k.starts_with("request#"));
    let range = |sizes: Vec<usize>| match (sizes.iter().min(), sizes.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => format!("{lo} B"),
        (Some(lo), Some(hi)) => format!("{lo}-{hi} B"),
        _ => "none".to_owned(),
    };
    format!(
        "capture records {}, request records {}",
        range(capture.map(|(_, s)| *s).collect()),
        range(request.map(|(_, s)| *s).collect())
    )
}

/// The cost model's inputs from the measurements: the template's batch size of 10, the
/// median batch-of-10 wall time at the default concurrency, the webhook's mean billed duration,
/// and the requests counted for the batch of ten on the real path.
pub fn cost_inputs(
    tuned: &ConcurrencyRuns,
    webhook: &WebhookThroughput,
    calls: &CallsPerCapture,
) -> anyhow::Result<CostInputs> {
    let batch =
        median_run(tuned, 10).ok_or_else(|| anyhow::anyhow!("no batch of 10 was measured"))?;
    let sqs =
        calls.per_capture(stack::PRODUCER, "sqs") + calls.per_capture(stack::EVENT_SOURCE, "sqs");
    Ok(CostInputs {
        memory_mb: crate::function::MEMORY_SIZE_MB,
        batch_size: 10.0,
        submitter_billed_ms: cost::billed_ms(batch.duration_ms),
        webhooks_per_capture: calls.webhook_invocations as f64 / calls.captures as f64,
        webhook_billed_ms: webhook.mean_billed_ms,
        sqs_requests: sqs,
        dynamodb_write_units: calls.dynamodb_write_units as f64 / calls.captures as f64,
        dynamodb_read_units: calls.dynamodb_read_units as f64 / calls.captures as f64,
    })
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n#### {title}\n");
}

fn row(out: &mut String, cells: &[&str]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn rule(out: &mut String, columns: usize) {
    let _ = writeln!(out, "|{}", " --- |".repeat(columns));
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

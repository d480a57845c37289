//! The measurements, one function each. Every scenario starts the function processes it
//! needs, drives them through the runtime API stand-in, checks that the functions did what
//! they were asked (a measurement of a failing run would be worthless), and stops them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use peekshot_sim::Faults;
use serde::Serialize;
use serde_json::Value;

use crate::capacity;
use crate::events::{self, QueueMessage, WebhookEvents};
use crate::function::{FunctionProcess, FunctionSpec};
use crate::gateway::Gateway;
use crate::proxy::{Call, CallCount, Ledger};
use crate::runtime_api::Invocation;
use crate::stack::{self, Stack};
use crate::stats::Summary;

/// Cold starts of one function.
#[derive(Debug, Clone, Serialize)]
pub struct ColdStarts {
    /// Which function.
    pub function: &'static str,
    /// Process start to first poll of the runtime API.
    pub cold_start: Summary,
    /// Peak resident set right after the cold start, bytes (largest of the starts).
    pub peak_rss_after_init_bytes: u64,
    /// AWS requests made during all the cold starts together (secrets are given directly,
    /// so none are expected).
    pub aws_calls_during_init: usize,
}

/// Starts `spec` `starts` times, each time in a fresh process, and times each cold start.
pub async fn cold_starts(
    stack: &Stack,
    spec: &FunctionSpec,
    starts: usize,
) -> anyhow::Result<ColdStarts> {
    stack.ledger.clear();
    let mut samples = Vec::with_capacity(starts);
    let mut peak_rss = 0;
    for _ in 0..starts {
        let mut process = stack.launch(spec).await?;
        samples.push(process.cold_start());
        peak_rss = peak_rss.max(process.peak_rss()?);
        process.stop().await;
    }
    Ok(ColdStarts {
        function: spec.name,
        cold_start: Summary::of(&samples).context("no cold starts measured")?,
        peak_rss_after_init_bytes: peak_rss,
        aws_calls_during_init: stack.ledger.calls().len(),
    })
}

/// One submitter invocation, measured.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRun {
    /// Messages in the batch.
    pub messages: usize,
    /// `SUBMIT_CONCURRENCY`.
    pub concurrency: usize,
    /// Event handed out to answer received, ms.
    pub duration_ms: f64,
    /// CPU time of the process during the invocation, ms.
    pub cpu_ms: f64,
    /// Peak resident set of the process so far, bytes.
    pub peak_rss_bytes: u64,
    /// DynamoDB requests the invocation made.
    pub dynamodb_calls: usize,
    /// Time during the invocation when at least one of its DynamoDB requests was waiting
    /// for moto, ms. moto answers one request at a time, so this is the part of the wall
    /// time the local DynamoDB stand-in accounts for.
    pub dynamodb_busy_ms: f64,
    /// The median time moto took for one of those requests, ms.
    pub dynamodb_call_p50_ms: f64,
}

/// Invokes `process` with a batch of `messages` fresh capture requests and checks that every
/// one was submitted (none reported for retry).
async fn submit_batch(
    stack: &Stack,
    process: &mut FunctionProcess,
    prefix: &str,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<BatchRun> {
    let batch = events::fresh_messages(prefix, messages);
    let cpu_before = process.cpu_time()?;
    let invocation = process.invoke(events::sqs_event(&batch)).await?;
    let cpu_after = process.cpu_time()?;
    let failures = retried(&invocation)?;
    ensure!(
        failures.is_empty(),
        "the submitter asked to retry {} of {messages} messages ({prefix}); see its log",
        failures.len()
    );
    let calls: Vec<Call> = stack
        .ledger
        .calls()
        .into_iter()
        .filter(|call| call.caller == stack::SUBMITTER && call.service == "dynamodb")
        .filter(|call| call.started >= invocation.handed_out && call.started <= invocation.answered)
        .collect();
    let call_times: Vec<Duration> = calls.iter().map(|call| call.elapsed).collect();
    Ok(BatchRun {
        messages,
        concurrency,
        duration_ms: ms(invocation.duration()),
        cpu_ms: ms(cpu_after.saturating_sub(cpu_before)),
        peak_rss_bytes: process.peak_rss()?,
        dynamodb_calls: calls.len(),
        dynamodb_busy_ms: ms(busy_time(&calls)),
        dynamodb_call_p50_ms: Summary::of(&call_times).map_or(0.0, |s| s.p50_ms),
    })
}

/// The time covered by at least one of `calls`.
fn busy_time(calls: &[Call]) -> Duration {
    let mut spans: Vec<(Instant, Instant)> = calls
        .iter()
        .map(|call| (call.started, call.started + call.elapsed))
        .collect();
    spans.sort();
    let mut busy = Duration::ZERO;
    let mut current: Option<(Instant, Instant)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                busy += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        busy += e - s;
    }
    busy
}

/// Peak memory of a fresh submitter handling one batch of `messages`.
pub async fn submitter_memory(stack: &Stack, messages: usize) -> anyhow::Result<BatchRun> {
    let mut process = stack.launch(&stack.unpaced_submitter()).await?;
    let run = submit_batch(stack, &mut process, &format!("mem{messages}"), messages, 10).await;
    process.stop().await;
    run
}

/// Which DynamoDB a concurrency run's submitter talked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DynamoBehind {
    /// moto, which answers one request at a time.
    Moto,
    /// [`crate::parallel_dynamo`], which answers every request after 10 ms, in parallel.
    Parallel,
}

impl DynamoBehind {
    /// The name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            DynamoBehind::Moto => "moto",
            DynamoBehind::Parallel => "parallel, 10 ms",
        }
    }
}

/// Batch wall times at one concurrency setting.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencyRuns {
    /// The DynamoDB the submitter talked to.
    pub dynamodb: DynamoBehind,
    /// `SUBMIT_CONCURRENCY`.
    pub concurrency: usize,
    /// The simulator's extra delay on every API answer, ms.
    pub peekshot_delay_ms: u64,
    /// Every measured invocation, by batch size (a warm-up invocation of one message, which
    /// opens the connections, comes first and is not included).
    pub runs: Vec<BatchRun>,
}

/// Runs batches of each of `sizes` messages `repeats` times through one process of
/// `submitter` (which talks to `dynamodb`) with `SUBMIT_CONCURRENCY=concurrency`, while the
/// simulator delays every answer by `delay_ms`.
pub async fn batch_concurrency(
    stack: &Stack,
    submitter: &FunctionSpec,
    dynamodb: DynamoBehind,
    concurrency: usize,
    sizes: &[usize],
    repeats: usize,
    delay_ms: u64,
) -> anyhow::Result<ConcurrencyRuns> {
    stack
        .simulator
        .state()
        .set_faults(Faults {
            fault_slow_rate: 1.0,
            slow_ms: delay_ms,
            ..Faults::default()
        })
        .context("setting the simulator's delay")?;
    let spec = submitter.with_env("SUBMIT_CONCURRENCY", &concurrency.to_string());
    let mut process = stack.launch(&spec).await?;
    let result = async {
        submit_batch(
            stack,
            &mut process,
            &format!("warm-c{concurrency}"),
            1,
            concurrency,
        )
        .await?;
        let mut runs = Vec::new();
        for &size in sizes {
            for repeat in 0..repeats {
                let prefix = format!("conc-c{concurrency}-b{size}-r{repeat}");
                runs.push(submit_batch(stack, &mut process, &prefix, size, concurrency).await?);
            }
        }
        Ok(ConcurrencyRuns {
            dynamodb,
            concurrency,
            peekshot_delay_ms: delay_ms,
            runs,
        })
    }
    .await;
    process.stop().await;
    stack
        .simulator
        .state()
        .set_faults(Faults::default())
        .context("clearing the simulator's delay")?;
    result
}

/// Submits `count` captures through the submitter (batches of 100) and returns the request ids
/// PeekShot (the simulator) gave them, as the submitter stored them.
pub async fn submitted_captures(stack: &Stack, count: usize) -> anyhow::Result<Vec<u64>> {
    let mut process = stack.launch(&stack.unpaced_submitter()).await?;
    let result = async {
        for batch in 0..count.div_ceil(100) {
            let size = (count - batch * 100).min(100);
            submit_batch(stack, &mut process, &format!("hook{batch:02}"), size, 10).await?;
        }
        request_ids(stack, "capture#hook").await
    }
    .await;
    process.stop().await;
    let ids = result?;
    ensure!(
        ids.len() == count,
        "expected {count} submitted captures, found {}",
        ids.len()
    );
    Ok(ids)
}

/// The request ids of the SUBMITTED captures whose key starts with `prefix`.
async fn request_ids(stack: &Stack, prefix: &str) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = stack
            .dynamodb
            .scan()
            .table_name(&stack.table)
            .filter_expression("begins_with(pk, :prefix) AND #status = :submitted")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .expression_attribute_values(":submitted", AttributeValue::S("SUBMITTED".into()))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .context("scanning the capture table")?;
        for item in page.items() {
            let id = item
                .get("requestId")
                .and_then(|v| v.as_s().ok())
                .and_then(|s| s.parse().ok())
                .context("a SUBMITTED capture has no numeric requestId")?;
            ids.push(id);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The webhook answering deliveries one after another, as one Lambda instance does.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookThroughput {
    /// Deliveries.
    pub deliveries: usize,
    /// Deliveries per second of wall time over the whole run.
    pub per_second: f64,
    /// Function duration per delivery (event handed out to answer).
    pub latency: Summary,
    /// Time the function waited for DynamoDB per delivery, as the proxy saw it.
    pub dynamodb: Summary,
    /// Function duration minus DynamoDB time per delivery: runtime, event decoding, our code,
    /// logging, and the loopback hops.
    pub outside_dynamodb: Summary,
    /// Mean billed duration (each invocation rounded up to 1 ms).
    pub mean_billed_ms: f64,
    /// CPU time per delivery, ms.
    pub cpu_ms_per_delivery: f64,
    /// Peak resident set after all deliveries, bytes.
    pub peak_rss_bytes: u64,
    /// How many deliveries were answered `applied`.
    pub applied: usize,
}

/// Sends one completion webhook per request id through a fresh webhook process.
pub async fn webhook_throughput(
    stack: &Stack,
    events: &WebhookEvents,
    request_ids: &[u64],
) -> anyhow::Result<WebhookThroughput> {
    let mut process = stack.launch(&stack.webhook()).await?;
    let result = async {
        stack.ledger.clear();
        let cpu_before = process.cpu_time()?;
        let started = Instant::now();
        let mut invocations = Vec::with_capacity(request_ids.len());
        for (n, id) in request_ids.iter().enumerate() {
            let event = events.completed(n as u64, *id, stack.secrets.webhook_secret());
            invocations.push(process.invoke(event).await?);
        }
        let wall = started.elapsed();
        let cpu = process.cpu_time()?.saturating_sub(cpu_before);

        let mut applied = 0;
        for invocation in &invocations {
            let (status, result) = http_result(invocation)?;
            ensure!(
                status == 200,
                "a webhook delivery was answered {status}: {result}"
            );
            applied += usize::from(result == "applied");
        }
        let durations: Vec<Duration> = invocations.iter().map(Invocation::duration).collect();
        let dynamodb = time_in_calls(&stack.ledger, stack::WEBHOOK, &invocations);
        let outside: Vec<Duration> = durations
            .iter()
            .zip(&dynamodb)
            .map(|(total, db)| total.saturating_sub(*db))
            .collect();
        let billed: f64 = durations
            .iter()
            .map(|d| crate::cost::billed_ms(ms(*d)))
            .sum();
        Ok(WebhookThroughput {
            deliveries: invocations.len(),
            per_second: invocations.len() as f64 / wall.as_secs_f64(),
            latency: Summary::of(&durations).context("no deliveries")?,
            dynamodb: Summary::of(&dynamodb).context("no deliveries")?,
            outside_dynamodb: Summary::of(&outside).context("no deliveries")?,
            mean_billed_ms: billed / invocations.len() as f64,
            cpu_ms_per_delivery: ms(cpu) / invocations.len() as f64,
            peak_rss_bytes: process.peak_rss()?,
            applied,
        })
    }
    .await;
    process.stop().await;
    result
}

/// For each invocation, the total time of `caller`'s calls that started while it ran.
fn time_in_calls(ledger: &Ledger, caller: &str, invocations: &[Invocation]) -> Vec<Duration> {
    let calls: Vec<_> = ledger
        .calls()
        .into_iter()
        .filter(|call| call.caller == caller)
        .collect();
    invocations
        .iter()
        .map(|invocation| {
            calls
                .iter()
                .filter(|call| {
                    call.started >= invocation.handed_out && call.started <= invocation.answered
                })
                .map(|call| call.elapsed)
                .sum()
        })
        .collect()
}

/// AWS requests of captures that went the whole way through the real path.
#[derive(Debug, Clone, Serialize)]
pub struct CallsPerCapture {
    /// Captures sent.
    pub captures: usize,
    /// Submitter invocations the event source made.
    pub submitter_invocations: usize,
    /// Webhook invocations PeekShot's webhooks caused.
    pub webhook_invocations: usize,
    /// Every request, by caller, service and operation, for all the captures together.
    pub counts: Vec<CallCount>,
    /// DynamoDB write request units of those writes, for all the captures together.
    pub dynamodb_write_units: usize,
    /// DynamoDB read request units, for all the captures together.
    pub dynamodb_read_units: usize,
    /// Size of each item written, bytes (by DynamoDB's rules).
    pub item_sizes: Vec<(String, usize)>,
}

impl CallsPerCapture {
    /// Requests of `caller` to `service`, per capture.
    pub fn per_capture(&self, caller: &str, service: &str) -> f64 {
        let total: usize = self
            .counts
            .iter()
            .filter(|c| c.caller == caller && c.service == service)
            .map(|c| c.count)
            .sum();
        total as f64 / self.captures as f64
    }
}

/// Sends `captures` capture requests to the queue and takes them to COMPLETE the way AWS
/// would: the bench receives them as the event source does and invokes the submitter, the
/// simulator calls the webhook through the gateway stand-in, and the bench deletes what the
/// submitter finished. Every AWS request on that path is counted.
pub async fn calls_per_capture(
    stack: &Stack,
    events: &WebhookEvents,
    captures: usize,
) -> anyhow::Result<CallsPerCapture> {
    let webhook = stack.launch(&stack.webhook()).await?;
    let gateway = Gateway::start(webhook, events.clone()).await?;
    let webhook_url = gateway.webhook_url(stack.secrets.webhook_secret());
    let first_request_id = 10_000_000 * (captures as u64 + 1);
    let simulator =
        stack::start_simulator(&stack.secrets, Some(&webhook_url), first_request_id).await?;
    let mut submitter = stack
        .launch(&stack.submitter(Some(simulator.base_url().as_str())))
        .await?;

    let result = async {
        stack.ledger.clear();
        let prefix = format!("path{captures}");
        let sent = events::fresh_messages(&prefix, captures);
        for message in &sent {
            stack
                .producer_sqs
                .send_message()
                .queue_url(&stack.queue_url)
                .message_body(&message.body)
                .send()
                .await
                .context("sending a capture request")?;
        }
        let invocations = drain_queue(stack, &mut submitter, captures).await?;
        let keys: Vec<String> = (0..captures)
            .map(|n| format!("capture#{}", events::capture_id(&prefix, n)))
            .collect();
        wait_until_complete(stack, &keys, &gateway, captures).await?;

        let counts = stack.ledger.counts();
        let (write_units, read_units, item_sizes) = capacity_of(stack).await?;
        Ok(CallsPerCapture {
            captures,
            submitter_invocations: invocations,
            webhook_invocations: gateway.invocations().len(),
            counts,
            dynamodb_write_units: write_units,
            dynamodb_read_units: read_units,
            item_sizes,
        })
    }
    .await;
    submitter.stop().await;
    gateway.stop().await;
    drop(simulator);
    result
}

/// Receives batches of up to 10 from the queue until `expected` messages were handled, invokes
/// the submitter with each, and deletes the messages it did not report for retry. Returns the
/// number of invocations.
async fn drain_queue(
    stack: &Stack,
    submitter: &mut FunctionProcess,
    expected: usize,
) -> anyhow::Result<usize> {
    let sqs = &stack.event_source_sqs;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut handled = 0;
    let mut invocations = 0;
    while handled < expected {
        if Instant::now() > deadline {
            bail!("only {handled} of {expected} messages came off the queue within 60 s");
        }
        let received = sqs
            .receive_message()
            .queue_url(&stack.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .context("receiving from the capture queue")?;
        let batch: Vec<QueueMessage> = received
            .messages()
            .iter()
            .filter_map(|m| {
                Some(QueueMessage {
                    message_id: m.message_id.clone()?,
                    receipt_handle: m.receipt_handle.clone()?,
                    body: m.body.clone()?,
                })
            })
            .collect();
        if batch.is_empty() {
            continue;
        }
        let invocation = submitter.invoke(events::sqs_event(&batch)).await?;
        invocations += 1;
        let retry = retried(&invocation)?;
        ensure!(retry.is_empty(), "the submitter asked to retry {retry:?}");
        let entries = batch
            .iter()
            .enumerate()
            .map(|(n, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(&m.receipt_handle)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.delete_message_batch()
            .queue_url(&stack.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .context("deleting handled messages")?;
        handled += batch.len();
    }
    Ok(invocations)
}

/// Waits until every capture of `keys` is COMPLETE and the gateway has answered `webhooks`
/// deliveries.
async fn wait_until_complete(
    stack: &Stack,
    keys: &[String],
    gateway: &Gateway,
    webhooks: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for key in keys {
        loop {
            let item = stack
                .dynamodb
                .get_item()
                .table_name(&stack.table)
                .key("pk", AttributeValue::S(key.clone()))
                .consistent_read(true)
                .send()
                .await
                .context("reading a capture record")?;
            let status = item
                .item()
                .and_then(|i| i.get("status"))
                .and_then(|s| s.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if status == "COMPLETE" {
                break;
            }
            if Instant::now() > deadline {
                bail!("{key} is {status:?}, not COMPLETE, after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    while gateway.invocations().len() < webhooks {
        if Instant::now() > deadline {
            bail!(
                "the webhook was invoked {} times, expected {webhooks}",
                gateway.invocations().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Write and read request units of the DynamoDB calls in the ledger, each write priced by the
/// size of the item it names as that item is now.
async fn capacity_of(stack: &Stack) -> anyhow::Result<(usize, usize, Vec<(String, usize)>)> {
    const WRITES: [&str; 4] = ["UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem"];
    const READS: [&str; 4] = ["GetItem", "Query", "Scan", "BatchGetItem"];
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let mut write_units = 0;
    let mut read_units = 0;
    for call in stack.ledger.calls() {
        if call.service != "dynamodb" {
            continue;
        }
        let Some(key) = call.key else {
            bail!("a DynamoDB {} names no item key", call.operation);
        };
        if !sizes.contains_key(&key) {
            let item = stack
                .dynamodb
                .get_item()
                .table_name(&stack.table)
                .key("pk", AttributeValue::S(key.clone()))
                .consistent_read(true)
                .send()
                .await?;
            let size = item.item().map(capacity::item_size).unwrap_or_default();
            sizes.insert(key.clone(), size);
        }
        let size = sizes[&key];
        if WRITES.contains(&call.operation.as_str()) {
            write_units += capacity::write_units(size);
        } else if READS.contains(&call.operation.as_str()) {
            read_units += size.div_ceil(4096).max(1);
        }
    }
    let mut item_sizes: Vec<(String, usize)> = sizes.into_iter().collect();
    item_sizes.sort();
    Ok((write_units, read_units, item_sizes))
}

/// The message ids a submitter answer reports for retry.
fn retried(invocation: &Invocation) -> anyhow::Result<Vec<String>> {
    let body = invocation.response()?;
    let failures = body["batchItemFailures"]
        .as_array()
        .context("the submitter's answer has no batchItemFailures list")?;
    Ok(failures
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect())
}

/// The HTTP status and `result` field of a webhook answer.
fn http_result(invocation: &Invocation) -> anyhow::Result<(u64, String)> {
    let body = invocation.response()?;
    let status = body["statusCode"]
        .as_u64()
        .context("the webhook's answer has no statusCode")?;
    let inner: Value = body["body"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let result = inner["result"]
        .as_str()
        .or_else(|| inner["error"].as_str())
        .unwrap_or_default()
        .to_owned();
    Ok((status, result))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

//! The chaos run: hundreds of capture requests through the local stack while the PeekShot
//! simulator injects every fault it knows at a few percent each and the SQS event source
//! delivers some messages twice, then an account of where every request ended.
//!
//! Each round starts a stack of its own (fresh moto, queues and table), seeds the simulator's
//! fault dice and the event source's redeliveries with the round's seed, sends valid requests,
//! duplicates (the same `captureId` and page again), reused capture ids (the same `captureId`
//! for another page) and invalid messages, and waits until the queue is empty and no record is
//! open. While it runs it scans the table every two seconds to catch any record moving
//! backwards. Then it checks every message against the three places a request may end (a
//! COMPLETE record, a FAILED record with its reason, the dead-letter queue), every finished
//! record against the simulator's own record of the capture, and every page against the
//! number of captures PeekShot was asked to make of it, and prints one summary line.
//!
//! The figures that must be zero: lost requests, records that moved backwards, records that
//! disagree with PeekShot, and pages created twice that the pipeline did not count as an
//! ambiguous create.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use capturectl::dead_letters::Pipeline;
use devstack::harness::{OwnedStack, start_stack};
use devstack::stack::StackInfo;
use serde_json::{Value, json};

/// The rounds, one seed each.
const SEEDS: [u64; 3] = [11, 23, 47];
/// Valid, distinct capture requests per round; duplicates, reused ids and invalid messages
/// come on top.
const VALID: usize = 300;
/// How long a round may take to settle once everything is sent.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// How often the watcher scans the table.
const SCAN_EVERY: Duration = Duration::from_secs(2);

type Item = HashMap<String, AttributeValue>;

#[test]
fn chaos_runs_with_three_seeds_lose_no_capture_and_move_no_record_backwards() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let mut failures = Vec::new();
    for seed in SEEDS {
        let stack = start_stack(&stack_args(seed)).expect("the chaos stack starts");
        let summary = runtime.block_on(run_round(&stack, seed));
        // Written to stderr directly rather than with `println!`, which the test harness
        // captures: the summary lines belong in the test command's output, passed or failed.
        let _ = writeln!(std::io::stderr(), "{summary}");
        let problems = summary.problems();
        if !problems.is_empty() {
            failures.push(format!(
                "seed {seed}: {}\n  stack log: {}",
                problems.join("; "),
                stack.log_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `devstack up` flags of a round: SQS redelivers 3 % of the finished messages, the
/// reconciler looks every 3 s for captures 3 s without a webhook, and the submitter gives
/// PeekShot 2 s per call (so the simulator's 3-second hangs are timeouts) at up to 25 creates
/// a second.
fn stack_args(seed: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "--redeliver-rate",
        "0.03",
        "--redeliver-seed",
        &seed.to_string(),
        "--reconcile-every-secs",
        "3",
        "--reconcile-after-secs",
        "3",
        "--reconcile-give-up-secs",
        "120",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    for (name, value) in [
        ("PEEKSHOT_TIMEOUT_MS", "2000"),
        ("SUBMIT_RATE_PER_SECOND", "25"),
        ("SUBMIT_BURST", "10"),
    ] {
        args.push("--function-env".into());
        args.push(format!("{name}={value}"));
    }
    args
}

/// Every fault of the simulator, at a few percent each.
fn faults() -> Value {
    json!({
        "fault_5xx_rate": 0.03,
        "fault_429_rate": 0.02,
        "retry_after_secs": 1,
        "fault_slow_rate": 0.03,
        "slow_ms": 800,
        "fault_hang_rate": 0.02,
        "hang_ms": 3000,
        "fault_capture_failed_rate": 0.03,
        "fault_webhook_duplicate_rate": 0.03,
        "fault_webhook_delay_rate": 0.03,
        "webhook_delay_ms": 2000,
        "fault_webhook_early_rate": 0.03,
        "fault_webhook_lost_rate": 0.03,
        "fault_create_dropped_rate": 0.03,
        "fault_create_held_rate": 0.02,
    })
}

/// What a message is meant to test, and so where it should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A valid request with its own capture id: COMPLETE or FAILED (PeekShot's reason).
    Valid,
    /// The same capture id and page as an earlier message: ends with that capture.
    Duplicate,
    /// An earlier message's capture id for another page: FAILED under its own message id (or,
    /// when it reaches the submitter first, the owner of the capture id, and the other FAILED).
    ReusedId,
    /// Not a valid request: FAILED, with the reason, under its capture id or message id.
    Invalid,
}

/// One message as sent.
#[derive(Debug, Clone)]
struct Sent {
    kind: Kind,
    body: String,
    capture_id: Option<String>,
    url: Option<String>,
    message_id: String,
}

/// The requests of a round, in the order they are sent.
fn requests(seed: u64) -> Vec<Sent> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut planned = Vec::new();
    let valid = |i: usize, rng: &mut fastrand::Rng| {
        let capture_id = format!("chaos-{seed}-{i}");
        let url = format!("https://chaos-{seed}.example.com/page/{i}");
        let mut body =
            json!({"captureId": capture_id, "url": url, "metadata": {"round": seed.to_string()}});
        if rng.bool() {
            body["viewport"] = json!({"width": 1280, "height": 800});
        }
        if rng.u8(..10) == 0 {
            body["fullPage"] = json!(true);
        }
        (capture_id, url, body.to_string())
    };
    for i in 0..VALID {
        let (capture_id, url, body) = valid(i, &mut rng);
        planned.push(plan(Kind::Valid, body, Some(capture_id), Some(url)));
    }
    for _ in 0..15 {
        let original = planned[rng.usize(..VALID)].clone();
        planned.push(plan(
            Kind::Duplicate,
            original.body,
            original.capture_id,
            original.url,
        ));
    }
    for n in 0..5 {
        let original = planned[rng.usize(..VALID)].clone();
        let url = format!("https://chaos-{seed}.example.com/other/{n}");
        let body = json!({"captureId": original.capture_id, "url": url}).to_string();
        planned.push(plan(Kind::ReusedId, body, original.capture_id, Some(url)));
    }
    let invalid = [
        "this is not JSON".to_owned(),
        json!({"url": "http://localhost:8080/admin"}).to_string(),
        json!({"url": "http://10.0.0.7/"}).to_string(),
        json!({"url": "https://example.com", "fullpage": true}).to_string(),
        json!({"url": "https://example.com", "viewport": {"width": 10, "height": 800}}).to_string(),
        json!({"url": "ftp://example.com/file"}).to_string(),
        json!({"captureId": format!("chaos-{seed}-bad-delay"), "url": "https://example.com", "delay": 600}).to_string(),
        json!({"captureId": "has spaces", "url": "https://example.com"}).to_string(),
        "[]".to_owned(),
        json!({"viewport": {"width": 1280, "height": 800}}).to_string(),
    ];
    for body in invalid {
        let capture_id = capturectl::dead_letters::capture_id_of(&body);
        planned.push(plan(Kind::Invalid, body, capture_id, None));
    }
    rng.shuffle(&mut planned);
    planned
}

fn plan(kind: Kind, body: String, capture_id: Option<String>, url: Option<String>) -> Sent {
    Sent {
        kind,
        body,
        capture_id,
        url,
        message_id: String::new(),
    }
}

/// Everything a round found.
#[derive(Debug, Default)]
struct Summary {
    seed: u64,
    sent: usize,
    captures: usize,
    complete: usize,
    failed_by_kind: BTreeMap<String, usize>,
    dead_lettered: usize,
    dead_letter_reasons: BTreeMap<String, usize>,
    lost: Vec<String>,
    wrongly_failed: Vec<String>,
    unexplained_dead_letters: Vec<String>,
    settled: bool,
    double_creates_counted: usize,
    double_creates_uncounted: Vec<String>,
    backwards: Vec<String>,
    disagreeing: Vec<String>,
    redelivered: usize,
    faults_injected: BTreeMap<String, u64>,
    settled_in: Duration,
}

impl Summary {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.settled {
            problems.push(format!("did not settle within {SETTLE_LIMIT:?}"));
        }
        if self.dead_lettered * 100 > self.sent {
            problems.push(format!(
                "{} of {} requests dead-lettered, more than 1 %",
                self.dead_lettered, self.sent
            ));
        }
        for (what, list) in [
            ("lost", &self.lost),
            (
                "valid requests failed by the pipeline",
                &self.wrongly_failed,
            ),
            (
                "dead letters without a reason",
                &self.unexplained_dead_letters,
            ),
            ("moved backwards", &self.backwards),
            ("disagree with PeekShot", &self.disagreeing),
            ("created twice, uncounted", &self.double_creates_uncounted),
        ] {
            if !list.is_empty() {
                problems.push(format!("{} {what}: {}", list.len(), list.join(", ")));
            }
        }
        problems
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: usize = self.failed_by_kind.values().sum();
        let kinds: Vec<String> = self
            .failed_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let faults: u64 = self.faults_injected.values().sum();
        write!(
            f,
            "chaos seed={}: sent {} ({} captures), COMPLETE {}, FAILED {} ({}), dead-lettered {}, \
             lost {}, creates per capture > 1: {} (all counted ambiguous: {}), moved backwards {}, \
             disagreeing with PeekShot {}; {} faults injected, {} redeliveries, {} in {:.0} s",
            self.seed,
            self.sent,
            self.captures,
            self.complete,
            failed,
            kinds.join(", "),
            self.dead_lettered,
            self.lost.len(),
            self.double_creates_counted + self.double_creates_uncounted.len(),
            self.double_creates_uncounted.is_empty(),
            self.backwards.len(),
            self.disagreeing.len(),
            faults,
            self.redelivered,
            if self.settled {
                "settled"
            } else {
                "NOT settled"
            },
            self.settled_in.as_secs_f64(),
        )?;
        if !self.dead_letter_reasons.is_empty() {
            write!(f, "; dead letters: {:?}", self.dead_letter_reasons)?;
        }
        Ok(())
    }
}

async fn run_round(stack: &OwnedStack, seed: u64) -> Summary {
    let info = &stack.info;
    let aws = devstack::aws::moto_config(&info.moto_url, &info.region).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let http = reqwest::Client::new();
    configure_simulator(&http, info, seed).await;

    let watcher = Watcher::start(dynamodb.clone(), info.table_name.clone());
    let mut sent = requests(seed);
    send_all(&sqs, &info.queue_url, &mut sent).await;
    let started = Instant::now();
    let settled = wait_until_settled(&sqs, &dynamodb, info).await;
    let settled_in = started.elapsed();
    let backwards = watcher.stop().await;

    let records = scan(&dynamodb, &info.table_name).await;
    let dead_letters = Pipeline {
        sqs: sqs.clone(),
        dynamodb: dynamodb.clone(),
        table: info.table_name.clone(),
        queue_url: info.queue_url.clone(),
        dead_letter_queue_url: info.dead_letter_queue_url.clone(),
    }
    .list(10_000)
    .await
    .expect("the dead-letter queue can be listed");
    let truth = simulator_captures(&http, info).await;
    let stats = get_json(&http, &format!("{}/_sim/stats", info.simulator_url)).await;

    let mut summary = Summary {
        seed,
        sent: sent.len(),
        backwards,
        settled,
        settled_in,
        redelivered: redeliveries_in(&stack.log_path),
        ..Summary::default()
    };
    summary.faults_injected =
        serde_json::from_value(stats["faultsInjected"].clone()).unwrap_or_default();
    account_for_messages(&mut summary, &sent, &records, &dead_letters);
    count_outcomes(&mut summary, &records);
    compare_with_peekshot(&mut summary, &records, &truth);
    summary
}

async fn configure_simulator(http: &reqwest::Client, info: &StackInfo, seed: u64) {
    let faults = http
        .put(format!("{}/_sim/faults", info.simulator_url))
        .json(&faults())
        .send()
        .await
        .expect("the simulator takes the fault knobs");
    assert!(
        faults.status().is_success(),
        "fault knobs refused: {}",
        faults.text().await.unwrap_or_default()
    );
    let reset = http
        .post(format!("{}/_sim/reset", info.simulator_url))
        .json(&json!({"seed": seed}))
        .send()
        .await
        .expect("the simulator resets");
    assert!(reset.status().is_success());
}

/// Sends every message in batches of ten, a few batches at a time, noting each message id.
async fn send_all(sqs: &aws_sdk_sqs::Client, queue_url: &str, sent: &mut [Sent]) {
    for chunk in sent.chunks_mut(10) {
        let entries: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, message)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body)
                    .build()
                    .expect("a batch entry")
            })
            .collect();
        let answer = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("SendMessageBatch against moto");
        assert!(
            answer.failed.is_empty(),
            "sends failed: {:?}",
            answer.failed
        );
        for entry in answer.successful {
            let index: usize = entry.id.parse().expect("our own entry id");
            chunk[index].message_id = entry.message_id;
        }
    }
}

/// Waits until the capture queue is empty, no capture is SUBMITTED (waiting for its webhook or
/// the reconciler), and the QUEUED ones are no more than the messages in the dead-letter queue
/// (a dead-lettered capture stays QUEUED), twice in a row; `false` when that did not happen
/// within [`SETTLE_LIMIT`]. The final accounting matches dead letters to captures one by one.
async fn wait_until_settled(
    sqs: &aws_sdk_sqs::Client,
    dynamodb: &aws_sdk_dynamodb::Client,
    info: &StackInfo,
) -> bool {
    let started = Instant::now();
    let mut quiet_checks = 0;
    while started.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let in_queue = queue_depth(sqs, &info.queue_url).await;
        let dead_lettered = queue_depth(sqs, &info.dead_letter_queue_url).await;
        let records = scan(dynamodb, &info.table_name).await;
        let count = |status: &str| {
            records
                .values()
                .filter(|item| text(item, "status") == Some(status))
                .count() as u64
        };
        let (queued, submitted) = (count("QUEUED"), count("SUBMITTED"));
        quiet_checks = if in_queue == 0 && submitted == 0 && queued <= dead_lettered {
            quiet_checks + 1
        } else {
            0
        };
        if quiet_checks >= 2 {
            return true;
        }
    }
    false
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .map(|name| {
        attributes
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    })
    .sum()
}

/// Every capture item by capture id.
async fn scan(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> BTreeMap<String, Item> {
    let mut records = BTreeMap::new();
    let mut start = None;
    loop {
        let page = scan_page(dynamodb, table, start).await;
        for item in page.items.unwrap_or_default() {
            if text(&item, "kind") == Some("capture")
                && let Some(id) = text(&item, "captureId")
            {
                records.insert(id.to_owned(), item.clone());
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return records;
        }
    }
}

/// One page of a scan, tried a few times: moto under the chaos run's load may time out.
async fn scan_page(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    start: Option<Item>,
) -> aws_sdk_dynamodb::operation::scan::ScanOutput {
    let mut attempt = 0;
    loop {
        let answer = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.clone())
            .send()
            .await;
        match answer {
            Ok(page) => return page,
            Err(error) if attempt < 5 => {
                attempt += 1;
                eprintln!("scan failed ({error}), trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => panic!("Scan against moto failed five times: {error}"),
        }
    }
}

/// Scans the table while the round runs and notes every capture whose status went back: to
/// an earlier status of the lifecycle, or from one final status to the other.
struct Watcher {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Watcher {
    fn start(dynamodb: aws_sdk_dynamodb::Client, table: String) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut backwards = Vec::new();
            let mut seen: HashMap<String, &'static str> = HashMap::new();
            loop {
                for (id, item) in scan(&dynamodb, &table).await {
                    let status = status_of(&item);
                    if let Some(before) = seen.get(&id).copied()
                        && moved_backwards(before, status)
                    {
                        backwards.push(format!("{id}: {before} -> {status}"));
                    }
                    seen.insert(id, status);
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(SCAN_EVERY) => {}
                }
            }
            backwards
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<String> {
        let _ = self.stop.send(());
        self.task.await.expect("the watcher ran to the end")
    }
}

fn status_of(item: &Item) -> &'static str {
    match text(item, "status") {
        Some("QUEUED") => "QUEUED",
        Some("SUBMITTED") => "SUBMITTED",
        Some("COMPLETE") => "COMPLETE",
        Some("FAILED") => "FAILED",
        _ => "UNKNOWN",
    }
}

fn moved_backwards(before: &str, now: &str) -> bool {
    let rank = |status: &str| match status {
        "QUEUED" => 0,
        "SUBMITTED" => 1,
        _ => 2,
    };
    rank(now) < rank(before) || (rank(before) == 2 && before != now)
}

/// Finds where each message ended; a message found nowhere is lost.
fn account_for_messages(
    summary: &mut Summary,
    sent: &[Sent],
    records: &BTreeMap<String, Item>,
    dead_letters: &[capturectl::dead_letters::DeadLetter],
) {
    let dead: HashSet<&str> = dead_letters.iter().map(|d| d.message_id.as_str()).collect();
    summary.dead_lettered = dead_letters.len();
    for letter in dead_letters {
        *summary
            .dead_letter_reasons
            .entry(letter.reason.chars().take(60).collect())
            .or_default() += 1;
        if letter.status.is_none() {
            summary
                .unexplained_dead_letters
                .push(format!("{} ({})", letter.message_id, letter.reason));
        }
    }

    // Capture ids that more than one page was sent under: only for these may a request end
    // FAILED under its own message id, whichever of them reached the submitter first.
    let mut pages_by_capture_id: HashMap<&str, HashSet<&str>> = HashMap::new();
    for message in sent {
        if let (Some(id), Some(url)) = (message.capture_id.as_deref(), message.url.as_deref()) {
            pages_by_capture_id.entry(id).or_default().insert(url);
        }
    }
    let contested = |id: Option<&str>| id.is_some_and(|id| pages_by_capture_id[id].len() > 1);

    let final_record = |id: &str| {
        records
            .get(id)
            .filter(|item| matches!(text(item, "status"), Some("COMPLETE" | "FAILED")))
    };
    for message in sent {
        if dead.contains(message.message_id.as_str()) {
            continue;
        }
        let by_capture_id = message.capture_id.as_deref().and_then(final_record);
        let by_message_id = final_record(&message.message_id);
        let own_page = by_capture_id.filter(|item| text(item, "url") == message.url.as_deref());
        let ended = match message.kind {
            Kind::Valid | Kind::Duplicate | Kind::ReusedId => {
                own_page.is_some()
                    || (contested(message.capture_id.as_deref())
                        && by_message_id.is_some_and(|item| status_of(item) == "FAILED"))
            }
            Kind::Invalid => by_capture_id
                .or(by_message_id)
                .is_some_and(|item| status_of(item) == "FAILED"),
        };
        if message.kind != Kind::Invalid
            && let Some(item) = own_page
            && status_of(item) == "FAILED"
            && text(item, "errorKind") != Some("peekshot-failed")
        {
            summary.wrongly_failed.push(format!(
                "{}: {}",
                message.capture_id.as_deref().unwrap_or_default(),
                text(item, "error").unwrap_or_default()
            ));
        }
        if !ended {
            let id = message.capture_id.as_deref().unwrap_or(&message.message_id);
            let state = records.get(id).map_or("no record", status_of);
            summary.lost.push(format!(
                "{:?} {id} (message {}, {state})",
                message.kind, message.message_id
            ));
        }
    }
}

fn count_outcomes(summary: &mut Summary, records: &BTreeMap<String, Item>) {
    summary.captures = records.len();
    for item in records.values() {
        match status_of(item) {
            "COMPLETE" => summary.complete += 1,
            "FAILED" => {
                let kind = match (text(item, "errorKind"), text(item, "error")) {
                    (_, Some(capture::TIMED_OUT_REASON)) => "timed-out",
                    (Some(kind), _) => kind,
                    (None, _) => "unknown",
                };
                *summary.failed_by_kind.entry(kind.to_owned()).or_default() += 1;
            }
            _ => {}
        }
    }
}

/// Holds every finished record to the simulator's own record of its capture, and every page to
/// the number of captures PeekShot made of it.
fn compare_with_peekshot(summary: &mut Summary, records: &BTreeMap<String, Item>, truth: &[Value]) {
    let by_id: HashMap<String, &Value> = truth
        .iter()
        .map(|record| (record["id"].to_string(), record))
        .collect();
    let mut creates_by_url: HashMap<&str, usize> = HashMap::new();
    for record in truth {
        *creates_by_url
            .entry(record["url"].as_str().unwrap_or_default())
            .or_default() += 1;
    }

    for (id, item) in records {
        let Some(request_id) = text(item, "requestId") else {
            continue;
        };
        let Some(peekshot) = by_id.get(request_id) else {
            summary
                .disagreeing
                .push(format!("{id}: request id {request_id} unknown to PeekShot"));
            continue;
        };
        let ours = status_of(item);
        let theirs = peekshot["status"].as_str().unwrap_or_default();
        let timed_out = text(item, "error") == Some(capture::TIMED_OUT_REASON);
        let agrees = match ours {
            "COMPLETE" => {
                theirs == "COMPLETE" && text(item, "fileUrl") == peekshot["screenshotUrl"].as_str()
            }
            "FAILED" => theirs == "FAILED" || timed_out,
            _ => true,
        };
        if !agrees {
            summary
                .disagreeing
                .push(format!("{id}: {ours} here, {theirs} at PeekShot"));
        }
    }

    let ambiguous: HashMap<&str, bool> = records
        .values()
        .filter_map(|item| {
            let flagged = matches!(
                item.get("ambiguousCreate"),
                Some(AttributeValue::Bool(true))
            );
            Some((text(item, "url")?, flagged))
        })
        .collect();
    for (url, creates) in creates_by_url {
        if creates > 1 {
            if ambiguous.get(url).copied().unwrap_or(false) {
                summary.double_creates_counted += 1;
            } else {
                summary
                    .double_creates_uncounted
                    .push(format!("{url} ({creates} creates)"));
            }
        }
    }
}

async fn simulator_captures(http: &reqwest::Client, info: &StackInfo) -> Vec<Value> {
    let body = get_json(http, &format!("{}/_sim/captures", info.simulator_url)).await;
    body["captures"].as_array().cloned().unwrap_or_default()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url} is not JSON: {e}"))
}

/// How many messages the event source delivered a second time on purpose, from its log lines
/// (`batch processed ... redelivered=N`).
fn redeliveries_in(log: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains("batch processed"))
        .filter_map(|line| {
            let after = line.split("redelivered=").nth(1)?;
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .sum()
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

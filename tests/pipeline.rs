//! End-to-end tests of the capture pipeline against the local stack: moto (DynamoDB, SQS), the
//! PeekShot simulator, both functions under `cargo lambda watch`, and the stand-in for Lambda's
//! SQS event source mapping. One stack serves every test of this binary
//! (`devstack::harness::shared_stack`); each test uses its own capture ids and URLs, so tests
//! can run in parallel without seeing each other's records.
//!
//! The first group drives the DynamoDB store directly, to pin down the conditional writes that
//! make the pipeline idempotent; the second sends capture requests the way producers and
//! PeekShot do and checks where each one ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use capture::{
    CaptureId, CaptureRequest, CaptureStatus, CaptureStore, Claim, CreatedCapture, Failure,
    InvalidRequest, Outcome, Rejection, RequestId, Settlement,
};
use capture_adapters::DynamoStore;
use devstack::harness::shared_stack;
use devstack::stack::StackInfo;
use serde_json::{Value, json};

type Item = HashMap<String, AttributeValue>;

/// How long a capture may take from queue to final record on the local stack (the simulator
/// finishes captures after 300 ms; the event source polls every second).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// A name no other test (or earlier run against the same moto) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn aws(stack: &StackInfo) -> aws_config::SdkConfig {
    devstack::aws::moto_config(&stack.moto_url, &stack.region).await
}

async fn store(stack: &StackInfo) -> DynamoStore {
    DynamoStore::new(
        &aws(stack).await,
        &stack.table_name,
        Duration::from_secs(3600),
    )
}

async fn item(stack: &StackInfo, pk: &str) -> Option<Item> {
    aws_sdk_dynamodb::Client::new(&aws(stack).await)
        .get_item()
        .table_name(&stack.table_name)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem against moto")
        .item
}

async fn capture_item(stack: &StackInfo, capture_id: &str) -> Option<Item> {
    item(stack, &format!("capture#{capture_id}")).await
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn status(item: &Item) -> &str {
    text(item, "status").unwrap_or("<none>")
}

/// Waits until the capture's record has a final status and returns it.
async fn final_record(stack: &StackInfo, capture_id: &str) -> Item {
    let started = Instant::now();
    loop {
        if let Some(item) = capture_item(stack, capture_id).await
            && matches!(status(&item), "COMPLETE" | "FAILED")
        {
            return item;
        }
        assert!(
            started.elapsed() < SETTLE_LIMIT,
            "capture {capture_id} did not reach a final status in {SETTLE_LIMIT:?}: {:?}",
            capture_item(stack, capture_id).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn send_to_queue(stack: &StackInfo, body: &Value) -> String {
    aws_sdk_sqs::Client::new(&aws(stack).await)
        .send_message()
        .queue_url(&stack.queue_url)
        .message_body(body.to_string())
        .send()
        .await
        .expect("SendMessage against moto")
        .message_id
        .expect("SQS returns a message id")
}

/// An SQS event as Lambda's event source mapping sends it.
fn sqs_event(stack: &StackInfo, messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(message_id, body)| {
            json!({
                "messageId": message_id,
                "receiptHandle": format!("receipt-{message_id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1764780000000",
                    "SenderId": "AIDATESTPRODUCER",
                    "ApproximateFirstReceiveTimestamp": "1764780000100"
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": stack.queue_arn,
                "awsRegion": stack.region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Invokes the submitter through cargo lambda's invoke API, as the event source mapping does,
/// and returns the message ids it asked to have retried.
async fn invoke_submitter(stack: &StackInfo, event: &Value) -> Vec<String> {
    let url = devstack::functions::invoke_url(&stack.lambda_url, "submitter");
    let response = reqwest::Client::new()
        .post(url)
        .json(event)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("invoke the submitter");
    assert!(
        response.status().is_success(),
        "submitter invoke answered {}",
        response.status()
    );
    let answer: Value = response.json().await.expect("submitter answers JSON");
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not an SqsBatchResponse: {answer}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn post_webhook(stack: &StackInfo, secret: Option<&str>, body: &str) -> reqwest::StatusCode {
    let mut url = reqwest::Url::parse(&stack.webhook_url).expect("webhook URL");
    if let Some(secret) = secret {
        url.query_pairs_mut().append_pair("secret", secret);
    }
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("call the webhook function")
        .status()
}

async fn simulator_stats(stack: &StackInfo) -> Value {
    reqwest::get(format!("{}/_sim/stats", stack.simulator_url))
        .await
        .expect("simulator stats")
        .json()
        .await
        .expect("stats are JSON")
}

fn creates_for(stats: &Value, url: &str) -> u64 {
    stats["createsByUrl"][url].as_u64().unwrap_or(0)
}

fn request(capture_id: &str, url: &str) -> CaptureRequest {
    let body = json!({"captureId": capture_id, "url": url}).to_string();
    CaptureRequest::parse(&body, &CaptureId::parse("unused").unwrap()).expect("valid request")
}

fn created(request_id: &str) -> CreatedCapture {
    CreatedCapture {
        request_id: RequestId::parse(request_id).unwrap(),
        credits: Some(1.0),
    }
}

fn complete(file_url: &str) -> Outcome {
    Outcome::Complete {
        file_url: Some(file_url.into()),
        credits: Some(1.0),
        duration_seconds: None,
    }
}

// ---- The store's conditional writes, against DynamoDB in moto ----

#[tokio::test]
async fn claim_is_exclusive_until_it_is_released() {
    let stack = shared_stack();
    let store = store(stack).await;
    let request = request(&unique("claim"), "https://example.com/claim");

    assert_eq!(
        store.claim(&request, "m1").await.unwrap(),
        Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None
        }
    );
    assert_eq!(
        store.claim(&request, "m2").await.unwrap(),
        Claim::HeldElsewhere
    );

    store
        .release(&request.capture_id, &Failure::transient("PeekShot 503"))
        .await
        .unwrap();
    assert_eq!(
        store.claim(&request, "m3").await.unwrap(),
        Claim::Claimed {
            attempt: 2,
            maybe_created_since_ms: None
        }
    );

    let record = capture_item(stack, request.capture_id.as_str())
        .await
        .unwrap();
    assert_eq!(status(&record), "QUEUED");
    assert_eq!(
        text(&record, "messageId"),
        Some("m1"),
        "the first message id is kept"
    );
    assert_eq!(text(&record, "lastError"), Some("transient: PeekShot 503"));
}

#[tokio::test]
async fn claim_after_a_create_that_may_have_succeeded_says_since_when() {
    let stack = shared_stack();
    let store = store(stack).await;
    let request = request(&unique("maybe"), "https://example.com/maybe");
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    store.claim(&request, "m1").await.unwrap();
    let timeout = Failure::maybe_created("PeekShot create timed out");
    store.release(&request.capture_id, &timeout).await.unwrap();

    let Claim::Claimed {
        attempt,
        maybe_created_since_ms: Some(since),
    } = store.claim(&request, "m2").await.unwrap()
    else {
        panic!("the second claim must know an earlier create may exist");
    };
    assert_eq!(attempt, 2);
    assert!(since >= before_ms, "{since} < {before_ms}");
}

#[tokio::test]
async fn capture_id_reused_for_another_page_is_a_conflict() {
    let stack = shared_stack();
    let store = store(stack).await;
    let capture_id = unique("conflict");
    let first = request(&capture_id, "https://example.com/one");
    let second = request(&capture_id, "https://example.com/two");

    assert_eq!(
        store.claim(&first, "m1").await.unwrap(),
        Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None
        }
    );
    assert_eq!(store.claim(&second, "m2").await.unwrap(), Claim::Conflict);
    let record = capture_item(stack, &capture_id).await.unwrap();
    assert_eq!(text(&record, "url"), Some("https://example.com/one"));
}

#[tokio::test]
async fn capture_id_reused_after_the_first_request_was_submitted_or_failed_is_still_a_conflict() {
    let stack = shared_stack();
    let store = store(stack).await;
    let submitted = unique("conflict-submitted");
    store
        .claim(&request(&submitted, "https://example.com/one"), "m1")
        .await
        .unwrap();
    store
        .store_request_id(
            &CaptureId::parse(&submitted).unwrap(),
            &created(&unique("r")),
        )
        .await
        .unwrap();
    let invalid = unique("conflict-invalid");
    store
        .record_invalid(
            &InvalidRequest {
                capture_id: CaptureId::parse(&invalid).unwrap(),
                reason: "url: must be absolute".into(),
            },
            "m3",
            "{}",
        )
        .await
        .unwrap();

    for capture_id in [&submitted, &invalid] {
        let other_page = request(capture_id, "https://example.com/two");
        assert_eq!(
            store.claim(&other_page, "m2").await.unwrap(),
            Claim::Conflict,
            "{capture_id}"
        );
    }
}

#[tokio::test]
async fn stored_request_id_makes_every_later_claim_a_duplicate() {
    let stack = shared_stack();
    let store = store(stack).await;
    let request = request(&unique("stored"), "https://example.com/stored");
    let request_id = unique("r");

    store.claim(&request, "m1").await.unwrap();
    let status = store
        .store_request_id(&request.capture_id, &created(&request_id))
        .await
        .unwrap();
    assert_eq!(status, CaptureStatus::Submitted);
    assert_eq!(
        store.claim(&request, "m2").await.unwrap(),
        Claim::AlreadyHandled(CaptureStatus::Submitted)
    );
    let record = capture_item(stack, request.capture_id.as_str())
        .await
        .unwrap();
    assert_eq!(text(&record, "requestId"), Some(request_id.as_str()));
    assert!(record.contains_key("submittedAt"));
    assert!(
        !record.contains_key("claimUntil"),
        "the claim is dropped once submitted"
    );
}

#[tokio::test]
async fn outcome_that_arrives_first_is_applied_when_the_request_id_is_stored() {
    let stack = shared_stack();
    let store = store(stack).await;
    let request = request(&unique("early"), "https://example.com/early");
    let request_id = RequestId::parse(&unique("r")).unwrap();

    store.claim(&request, "m1").await.unwrap();
    let parked = store
        .record_outcome(&request_id, &complete("https://files/early.png"))
        .await;
    assert_eq!(parked.unwrap(), Settlement::Parked);
    assert_eq!(
        status(
            &capture_item(stack, request.capture_id.as_str())
                .await
                .unwrap()
        ),
        "QUEUED"
    );

    let created = CreatedCapture {
        request_id: request_id.clone(),
        credits: None,
    };
    let status = store
        .store_request_id(&request.capture_id, &created)
        .await
        .unwrap();
    assert_eq!(status, CaptureStatus::Complete);
    let record = capture_item(stack, request.capture_id.as_str())
        .await
        .unwrap();
    assert_eq!(text(&record, "fileUrl"), Some("https://files/early.png"));
    assert_eq!(text(&record, "requestId"), Some(request_id.as_str()));
}

#[tokio::test]
async fn final_record_is_unchanged_by_repeated_or_contradicting_outcomes() {
    let stack = shared_stack();
    let store = store(stack).await;
    let request = request(&unique("final"), "https://example.com/final");
    let request_id = RequestId::parse(&unique("r")).unwrap();
    store.claim(&request, "m1").await.unwrap();
    let created = CreatedCapture {
        request_id: request_id.clone(),
        credits: None,
    };
    store
        .store_request_id(&request.capture_id, &created)
        .await
        .unwrap();

    let outcome = complete("https://files/final.png");
    assert_eq!(
        store.record_outcome(&request_id, &outcome).await.unwrap(),
        Settlement::Applied(CaptureStatus::Complete)
    );
    let before = capture_item(stack, request.capture_id.as_str())
        .await
        .unwrap();

    assert_eq!(
        store.record_outcome(&request_id, &outcome).await.unwrap(),
        Settlement::AlreadyFinal(CaptureStatus::Complete)
    );
    let late_failure = Outcome::Failed {
        reason: "late".into(),
    };
    assert_eq!(
        store
            .record_outcome(&request_id, &late_failure)
            .await
            .unwrap(),
        Settlement::AlreadyFinal(CaptureStatus::Complete)
    );
    store
        .fail_unsubmitted(&request.capture_id, "too late")
        .await
        .unwrap();
    assert_eq!(
        store.claim(&request, "m2").await.unwrap(),
        Claim::AlreadyHandled(CaptureStatus::Complete)
    );

    let after = capture_item(stack, request.capture_id.as_str())
        .await
        .unwrap();
    assert_eq!(before, after, "a final record never changes");
}

#[tokio::test]
async fn invalid_message_is_recorded_once_and_never_overwrites_a_capture() {
    let stack = shared_stack();
    let store = store(stack).await;
    let capture_id = CaptureId::parse(&unique("invalid")).unwrap();
    let invalid = InvalidRequest {
        capture_id: capture_id.clone(),
        reason: "url: has no host".into(),
    };

    assert_eq!(
        store
            .record_invalid(&invalid, "m1", "{\"url\":\"http://\"}")
            .await
            .unwrap(),
        Rejection::Recorded
    );
    let record = capture_item(stack, capture_id.as_str()).await.unwrap();
    assert_eq!(status(&record), "FAILED");
    assert_eq!(text(&record, "error"), Some("url: has no host"));
    assert_eq!(text(&record, "rawBody"), Some("{\"url\":\"http://\"}"));
    assert_eq!(
        store
            .record_invalid(&invalid, "m1", "{\"url\":\"http://\"}")
            .await
            .unwrap(),
        Rejection::AlreadyRecorded,
        "the same message delivered again is recognised as itself"
    );

    let valid = request(&unique("valid"), "https://example.com/");
    store.claim(&valid, "m2").await.unwrap();
    let clash = InvalidRequest {
        capture_id: valid.capture_id.clone(),
        reason: "x".into(),
    };
    assert_eq!(
        store.record_invalid(&clash, "m3", "").await.unwrap(),
        Rejection::CaptureIdTaken
    );
    assert_eq!(
        status(
            &capture_item(stack, valid.capture_id.as_str())
                .await
                .unwrap()
        ),
        "QUEUED"
    );
}

// ---- The whole pipeline: queue, submitter, simulator, webhook, table ----

#[tokio::test]
async fn capture_sent_to_the_queue_ends_complete_with_the_simulators_file_url() {
    let stack = shared_stack();
    let capture_id = unique("e2e");
    let url = format!("https://example.com/{capture_id}");
    send_to_queue(
        stack,
        &json!({"captureId": capture_id, "url": url, "viewport": {"width": 1280, "height": 800},
                "metadata": {"team": "tests"}}),
    )
    .await;

    let record = final_record(stack, &capture_id).await;
    assert_eq!(status(&record), "COMPLETE", "{record:?}");
    let file_url = text(&record, "fileUrl").expect("a file URL");
    assert!(file_url.starts_with(&stack.simulator_url), "{file_url}");
    assert!(text(&record, "requestId").is_some());
    assert!(record.contains_key("completedAt") && record.contains_key("expiresAt"));
    assert_eq!(
        record["metadata"].as_m().unwrap()["team"].as_s().unwrap(),
        "tests"
    );

    let image = reqwest::get(file_url).await.expect("download the image");
    assert_eq!(image.headers()["content-type"], "image/png");
}

#[tokio::test]
async fn message_without_capture_id_is_keyed_by_its_sqs_message_id() {
    let stack = shared_stack();
    let url = format!("https://example.com/{}", unique("by-message-id"));
    let message_id = send_to_queue(stack, &json!({"url": url})).await;
    assert_eq!(status(&final_record(stack, &message_id).await), "COMPLETE");
}

#[tokio::test]
async fn a_second_page_under_a_used_capture_id_is_failed_under_its_message_id_and_never_created() {
    let stack = shared_stack();
    let capture_id = unique("reused");
    let first_url = format!("https://example.com/{capture_id}/first");
    let second_url = format!("https://example.com/{capture_id}/second");
    send_to_queue(stack, &json!({"captureId": capture_id, "url": first_url})).await;
    assert_eq!(status(&final_record(stack, &capture_id).await), "COMPLETE");

    let message_id =
        send_to_queue(stack, &json!({"captureId": capture_id, "url": second_url})).await;

    let rejected = final_record(stack, &message_id).await;
    assert_eq!(status(&rejected), "FAILED");
    assert_eq!(text(&rejected, "errorKind"), Some("invalid-request"));
    let error = text(&rejected, "error").unwrap();
    assert!(
        error.contains(&capture_id) && error.contains("different request"),
        "{error}"
    );
    let owner = capture_item(stack, &capture_id).await.unwrap();
    assert_eq!(text(&owner, "url"), Some(first_url.as_str()));
    assert_eq!(creates_for(&simulator_stats(stack).await, &second_url), 0);
}

#[tokio::test]
async fn bot_blocked_url_ends_failed_with_peekshots_reason() {
    let stack = shared_stack();
    let capture_id = unique("blocked");
    send_to_queue(
        stack,
        &json!({"captureId": capture_id, "url": "https://shop.bot-blocked.test/"}),
    )
    .await;

    let record = final_record(stack, &capture_id).await;
    assert_eq!(status(&record), "FAILED");
    assert!(
        text(&record, "error").unwrap().contains("bot protection"),
        "{record:?}"
    );
    assert_eq!(text(&record, "errorKind"), Some("peekshot-failed"));
}

#[tokio::test]
async fn invalid_messages_fail_with_a_named_reason_and_the_rest_of_the_batch_completes() {
    let stack = shared_stack();
    let good = unique("batch-good");
    let not_json = unique("batch-not-json");
    let local = unique("batch-local");
    let unknown = unique("batch-unknown");
    let event = sqs_event(
        stack,
        &[
            (
                &good,
                json!({"captureId": good, "url": format!("https://example.com/{good}")})
                    .to_string(),
            ),
            (&not_json, "this is not JSON {".to_owned()),
            (
                &local,
                json!({"captureId": local, "url": "http://localhost:8080/admin"}).to_string(),
            ),
            (
                &unknown,
                json!({"url": "https://example.com/", "fullpage": true}).to_string(),
            ),
        ],
    );

    let retried = invoke_submitter(stack, &event).await;
    assert!(retried.is_empty(), "nothing should be retried: {retried:?}");

    let record = capture_item(stack, &not_json)
        .await
        .expect("a record for the non-JSON message");
    assert_eq!(status(&record), "FAILED");
    assert!(
        text(&record, "error")
            .unwrap()
            .starts_with("body is not JSON")
    );
    let record = capture_item(stack, &local).await.unwrap();
    assert_eq!(status(&record), "FAILED");
    assert!(
        text(&record, "error")
            .unwrap()
            .starts_with("url: host \"localhost\""),
        "{record:?}"
    );
    let record = capture_item(stack, &unknown).await.unwrap();
    assert!(
        text(&record, "error").unwrap().contains("fullpage"),
        "{record:?}"
    );

    assert_eq!(status(&final_record(stack, &good).await), "COMPLETE");
}

#[tokio::test]
async fn redelivered_message_does_not_create_a_second_capture_at_peekshot() {
    let stack = shared_stack();
    let capture_id = unique("redelivered");
    let url = format!("https://example.com/{capture_id}");
    let body = json!({"captureId": capture_id, "url": url}).to_string();
    let message_id = unique("msg");

    let first = sqs_event(stack, &[(&message_id, body.clone())]);
    assert!(invoke_submitter(stack, &first).await.is_empty());
    assert!(
        invoke_submitter(stack, &first).await.is_empty(),
        "a redelivery is done, not retried"
    );

    let other_message = unique("msg");
    let duplicate = sqs_event(stack, &[(&other_message, body)]);
    assert!(invoke_submitter(stack, &duplicate).await.is_empty());

    assert_eq!(status(&final_record(stack, &capture_id).await), "COMPLETE");
    let stats = simulator_stats(stack).await;
    assert_eq!(creates_for(&stats, &url), 1, "PeekShot saw: {stats}");
}

#[tokio::test]
async fn webhook_delivered_before_the_request_id_is_stored_still_completes_the_capture() {
    let stack = shared_stack();
    let capture_id = unique("early-webhook");
    // The simulator finishes captures of this reserved host at once and delivers their webhook
    // before it answers the create, so the webhook always finds no stored request id.
    send_to_queue(
        stack,
        &json!({"captureId": capture_id, "url": format!("https://early-webhook.test/{capture_id}")}),
    )
    .await;

    let record = final_record(stack, &capture_id).await;
    assert_eq!(status(&record), "COMPLETE", "{record:?}");
    let request_id = text(&record, "requestId").expect("request id stored");
    let request_item = item(stack, &format!("request#{request_id}")).await.unwrap();
    let parked_at = text(&request_item, "outcomeAt").expect("an outcome time");
    let linked_at = text(&request_item, "linkedAt").expect("a link time");
    // Both are RFC 3339 UTC timestamps of the same shape, so they compare as text.
    assert!(
        parked_at <= linked_at,
        "the outcome ({parked_at}) must be parked before the link ({linked_at})"
    );
}

#[tokio::test]
async fn duplicate_webhook_changes_nothing() {
    let stack = shared_stack();
    let capture_id = unique("dup-webhook");
    send_to_queue(
        stack,
        &json!({"captureId": capture_id, "url": format!("https://example.com/{capture_id}")}),
    )
    .await;
    let before = final_record(stack, &capture_id).await;
    let request_id = text(&before, "requestId").unwrap();
    let body = json!({"data": {"requestId": request_id, "success": true,
                               "fileUrl": "https://elsewhere.example/other.png"}})
    .to_string();

    assert_eq!(
        post_webhook(stack, Some(&stack.webhook_secret), &body).await,
        200
    );
    assert_eq!(capture_item(stack, &capture_id).await.unwrap(), before);
}

#[tokio::test]
async fn complete_record_stays_complete_when_a_late_failed_webhook_arrives() {
    let stack = shared_stack();
    let capture_id = unique("late-failed");
    send_to_queue(
        stack,
        &json!({"captureId": capture_id, "url": format!("https://example.com/{capture_id}")}),
    )
    .await;
    let before = final_record(stack, &capture_id).await;
    assert_eq!(status(&before), "COMPLETE");
    let request_id = text(&before, "requestId").unwrap();
    let body =
        json!({"data": {"requestId": request_id, "success": false, "error": "late"}}).to_string();

    assert_eq!(
        post_webhook(stack, Some(&stack.webhook_secret), &body).await,
        200
    );
    assert_eq!(capture_item(stack, &capture_id).await.unwrap(), before);
}

#[tokio::test]
async fn webhook_with_a_wrong_or_missing_secret_gets_401_and_writes_nothing() {
    let stack = shared_stack();
    let request_id = unique("stranger");
    let body =
        json!({"data": {"requestId": request_id, "success": false, "error": "forged"}}).to_string();

    assert_eq!(post_webhook(stack, None, &body).await, 401);
    assert_eq!(
        post_webhook(stack, Some("not-the-secret"), &body).await,
        401
    );
    let almost = format!("{}x", stack.webhook_secret);
    assert_eq!(post_webhook(stack, Some(&almost), &body).await, 401);
    assert_eq!(item(stack, &format!("request#{request_id}")).await, None);

    // The same forged call naming a real capture leaves that capture as it was.
    let capture_id = unique("guarded");
    send_to_queue(
        stack,
        &json!({"captureId": capture_id, "url": format!("https://example.com/{capture_id}")}),
    )
    .await;
    let before = final_record(stack, &capture_id).await;
    let real_request_id = text(&before, "requestId").unwrap();
    let forged =
        json!({"data": {"requestId": real_request_id, "success": false, "error": "forged"}});
    assert_eq!(
        post_webhook(stack, Some("wrong"), &forged.to_string()).await,
        401
    );
    assert_eq!(capture_item(stack, &capture_id).await.unwrap(), before);
}

#[tokio::test]
async fn malformed_webhook_gets_400_and_writes_nothing() {
    let stack = shared_stack();
    assert_eq!(
        post_webhook(stack, Some(&stack.webhook_secret), "{not json").await,
        400
    );
    let request_id = unique("no-status");
    let body = json!({"data": {"success": true}, "requestIdentifier": request_id}).to_string();
    assert_eq!(
        post_webhook(stack, Some(&stack.webhook_secret), &body).await,
        400
    );
    assert_eq!(item(stack, &format!("request#{request_id}")).await, None);
}

// ---- The sample events in events/, as `cargo lambda invoke --data-file` sends them ----

/// An API Gateway HTTP API event from `events/`, with this stack's secret (unless it is the
/// bad-secret sample) and a fresh request id, so the test touches no other test's records.
fn sample_webhook_event(stack: &StackInfo, file: &str, request_id: &str) -> Value {
    let path = format!("{}/events/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if file != "webhook-bad-secret.json" {
        event["queryStringParameters"]["secret"] = json!(stack.webhook_secret);
        event["rawQueryString"] = json!(format!("secret={}", stack.webhook_secret));
    }
    let base64 = event["isBase64Encoded"].as_bool().unwrap_or(false);
    let body = event["body"].as_str().unwrap();
    let mut payload: Value = if base64 {
        serde_json::from_slice(&decode_base64(body)).unwrap()
    } else {
        serde_json::from_str(body).unwrap()
    };
    payload["data"]["requestId"] = json!(request_id);
    let body = payload.to_string();
    event["body"] = json!(if base64 {
        encode_base64(body.as_bytes())
    } else {
        body
    });
    event
}

async fn invoke_webhook(stack: &StackInfo, event: &Value) -> u64 {
    let url = devstack::functions::invoke_url(&stack.lambda_url, "webhook");
    let answer: Value = reqwest::Client::new()
        .post(url)
        .json(event)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("invoke the webhook")
        .json()
        .await
        .expect("an API Gateway response");
    answer["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("no statusCode in {answer}"))
}

#[tokio::test]
async fn sample_webhook_events_are_accepted_plain_and_base64_encoded() {
    let stack = shared_stack();
    for file in [
        "webhook-completed.json",
        "webhook-completed-base64.json",
        "webhook-failed.json",
    ] {
        let request_id = unique("sample");
        let event = sample_webhook_event(stack, file, &request_id);
        assert_eq!(invoke_webhook(stack, &event).await, 200, "{file}");
        let parked = item(stack, &format!("request#{request_id}"))
            .await
            .expect(file);
        let expected = if file.contains("failed") {
            "FAILED"
        } else {
            "COMPLETE"
        };
        assert_eq!(
            parked["outcome"].as_m().unwrap()["status"].as_s().unwrap(),
            expected,
            "{file}"
        );
    }
}

#[tokio::test]
async fn sample_bad_secret_event_gets_401_and_writes_nothing() {
    let stack = shared_stack();
    let request_id = unique("sample-bad");
    let event = sample_webhook_event(stack, "webhook-bad-secret.json", &request_id);
    assert_eq!(invoke_webhook(stack, &event).await, 401);
    assert_eq!(item(stack, &format!("request#{request_id}")).await, None);
}

#[tokio::test]
async fn sample_sqs_event_is_handled_without_retries() {
    let stack = shared_stack();
    let path = format!(
        "{}/events/sqs-capture-batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Fresh message ids and capture ids, so this run's records are its own.
    let suffix = unique("sample");
    for record in event["Records"].as_array_mut().unwrap() {
        let message_id = format!("{}-{suffix}", record["messageId"].as_str().unwrap());
        record["messageId"] = json!(message_id);
        if let Ok(mut body) = serde_json::from_str::<Value>(record["body"].as_str().unwrap()) {
            if let Some(id) = body.get("captureId").and_then(Value::as_str) {
                body["captureId"] = json!(format!("{id}-{suffix}"));
            }
            record["body"] = json!(body.to_string());
        }
    }
    assert!(invoke_submitter(stack, &event).await.is_empty());

    // What the demo shows: three captures complete, three fail with their reason.
    for (capture_id, expected) in [
        (format!("docs-home-full-{suffix}"), "COMPLETE"),
        (format!("pricing-table-{suffix}"), "COMPLETE"),
        (
            format!("b6c1c8a2-1f0e-4a51-9b7e-000000000001-{suffix}"),
            "COMPLETE",
        ),
        (format!("bot-protected-shop-{suffix}"), "FAILED"),
        (format!("admin-panel-localhost-{suffix}"), "FAILED"),
        (
            format!("b6c1c8a2-1f0e-4a51-9b7e-000000000006-{suffix}"),
            "FAILED",
        ),
    ] {
        let record = final_record(stack, &capture_id).await;
        assert_eq!(status(&record), expected, "{capture_id}: {record:?}");
        if expected == "FAILED" {
            assert!(
                text(&record, "error").is_some_and(|e| !e.is_empty()),
                "{record:?}"
            );
        }
    }
}

fn encode_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_base64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64")
}

// ---- Lost webhooks: the reconciler, which the local stack runs every few seconds ----

#[tokio::test]
async fn lost_webhook_is_recovered_by_the_reconciler() {
    let stack = shared_stack();
    let capture_id = unique("lost-webhook");
    // The simulator completes captures of this reserved host but never sends their webhook, so
    // only the reconciler, asking the read endpoint, can finish the record.
    let url = format!("https://lost-webhook.test/{capture_id}");
    send_to_queue(stack, &json!({"captureId": capture_id, "url": url})).await;

    let record = final_record(stack, &capture_id).await;
    assert_eq!(status(&record), "COMPLETE", "{record:?}");
    let request_id = text(&record, "requestId").expect("request id stored");
    let file_url = format!("{}/files/{request_id}.png", stack.simulator_url);
    assert_eq!(text(&record, "fileUrl"), Some(file_url.as_str()));
    assert!(
        !record.contains_key("awaitingShard") && !record.contains_key("submittedAtMs"),
        "a finished capture leaves the awaiting-webhook index: {record:?}"
    );

    let stats = simulator_stats(stack).await;
    assert_eq!(creates_for(&stats, &url), 1, "PeekShot saw: {stats}");
    assert_eq!(
        stats["webhooksSentByUrl"].get(&url),
        None,
        "no webhook was delivered for {url}: {stats}"
    );
    assert!(stats["webhooksWithheld"].as_u64() >= Some(1), "{stats}");
    assert!(
        stats["reads"].as_u64() >= Some(1),
        "the outcome came from the read endpoint: {stats}"
    );
}

#[tokio::test]
async fn sample_scheduled_event_runs_the_reconciler_and_answers_its_counts() {
    let stack = shared_stack();
    let path = format!(
        "{}/events/scheduled-reconcile.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    let url = devstack::functions::invoke_url(&stack.lambda_url, "reconciler");
    let response = reqwest::Client::new()
        .post(url)
        .json(&event)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("invoke the reconciler");
    assert!(
        response.status().is_success(),
        "reconciler invoke answered {}",
        response.status()
    );
    let report: Value = response.json().await.expect("the reconciler answers JSON");
    for count in [
        "found",
        "checked",
        "completed",
        "failed",
        "timedOut",
        "stillPending",
    ] {
        assert!(report[count].is_u64(), "no {count} in {report}");
    }
}

#[tokio::test]
async fn lost_create_answer_is_adopted_on_retry_instead_of_creating_twice() {
    let stack = shared_stack();
    let capture_id = unique("answer-lost");
    // The simulator creates captures of this reserved host but closes the connection instead
    // of answering, so the submitter cannot know the capture exists until it looks.
    let url = format!("https://answer-lost.test/{capture_id}");
    send_to_queue(stack, &json!({"captureId": capture_id, "url": url})).await;

    let record = final_record(stack, &capture_id).await;
    assert_eq!(status(&record), "COMPLETE", "{record:?}");
    let stats = simulator_stats(stack).await;
    assert_eq!(creates_for(&stats, &url), 1, "PeekShot saw: {stats}");
    assert!(
        !record.contains_key("ambiguousCreate"),
        "one candidate is not ambiguous"
    );
}

/// A table of its own for one pace test, so that the submitter's own pace item in the stack's
/// table (which the other tests' captures use) is left alone.
async fn pace_table(stack: &StackInfo) -> DynamoStore {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let aws = aws(stack).await;
    let table = unique("pace");
    aws_sdk_dynamodb::Client::new(&aws)
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateTable against moto");
    DynamoStore::new(&aws, &table, Duration::from_secs(3600))
}

#[tokio::test]
async fn pace_item_updates_hold_their_conditions_in_dynamodb() {
    use capture::{PaceAnswer, PaceStep, PaceStore, SlowDown};
    let store = pace_table(shared_stack()).await;
    let t0 = 1_800_000_000_000u64;

    let restart = PaceStep::Restart {
        below_ms: t0,
        tat_ms: t0 + 500,
        slowed_at_ms: None,
    };
    let PaceAnswer::Moved(after) = store.step(restart).await.unwrap() else {
        panic!("a missing item restarts");
    };
    assert_eq!(after.tat_ms, Some(t0 + 500));
    assert!(
        matches!(store.step(restart).await.unwrap(), PaceAnswer::Refused(s) if s.tat_ms == Some(t0 + 500)),
        "a bucket in use is not restarted"
    );

    let extend = |lowest_ms, slowed_at_ms| PaceStep::Extend {
        lowest_ms,
        highest_ms: t0 + 10_000,
        cost_ms: 300,
        slowed_at_ms,
    };
    let PaceAnswer::Moved(after) = store.step(extend(t0, None)).await.unwrap() else {
        panic!("a bucket in range extends");
    };
    assert_eq!(after.tat_ms, Some(t0 + 800));
    assert!(matches!(
        store.step(extend(t0 + 900, None)).await.unwrap(),
        PaceAnswer::Refused(_)
    ));

    let rise = SlowDown {
        expected_slowed_at_ms: None,
        level: 1,
        until_ms: t0 + 10_000,
        at_ms: t0,
    };
    let PaceAnswer::Moved(slowed) = store.slow_down(rise).await.unwrap() else {
        panic!("the first rise applies");
    };
    assert_eq!((slowed.slow_level, slowed.slowed_at_ms), (1, Some(t0)));
    assert!(
        matches!(store.slow_down(rise).await.unwrap(), PaceAnswer::Refused(s) if s.slow_level == 1),
        "a rise computed from an older state is refused"
    );
    assert!(
        matches!(store.step(extend(t0, None)).await.unwrap(), PaceAnswer::Refused(s) if s.slowed_at_ms == Some(t0)),
        "a step made before the slow-down is refused"
    );
    assert!(matches!(
        store.step(extend(t0, Some(t0))).await.unwrap(),
        PaceAnswer::Moved(s) if s.tat_ms == Some(t0 + 1_100)
    ));
}

#[tokio::test]
async fn concurrent_submitters_share_one_pace_in_dynamodb() {
    use capture::{PacePolicy, Pacer};
    let store = pace_table(shared_stack()).await;
    let policy = PacePolicy {
        rate_per_second: 20.0,
        burst: 2,
        max_wait: Duration::from_secs(10),
    };
    let pacers: Vec<Pacer<DynamoStore>> =
        (0..3).map(|_| Pacer::new(store.clone(), policy)).collect();
    let now = capture::pace::epoch_ms(SystemTime::now());

    let reservations = futures::future::join_all(
        pacers
            .iter()
            .map(|pacer| pacer.reserve_at(now, 10, Duration::from_secs(10))),
    )
    .await;

    let mut starts: Vec<u64> = reservations
        .into_iter()
        .flat_map(|r| r.expect("a reservation").starts_ms)
        .collect();
    starts.sort_unstable();
    assert_eq!(starts.len(), 30, "every slot fits in the wait");
    // GCRA's promise at 20 a second (50 ms apart) with a burst of 2: in any window of d ms
    // at most 2 + d / 50 starts.
    for (i, first) in starts.iter().enumerate() {
        let within = |ms: u64| starts[i..].iter().take_while(|s| **s < first + ms).count();
        for window_ms in [50, 1_000] {
            assert!(
                within(window_ms) <= 2 + (window_ms / 50) as usize,
                "{window_ms} ms from {first}: {starts:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_dead_letter_is_listed_with_its_reason_and_redriven_to_completion() {
    let stack = shared_stack();
    let store = store(stack).await;
    let aws = aws(stack).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let to_dead_letters = |body: Value| {
        let sqs = sqs.clone();
        async move {
            sqs.send_message()
                .queue_url(&stack.dead_letter_queue_url)
                .message_body(body.to_string())
                .send()
                .await
                .expect("SendMessage to the dead-letter queue")
                .message_id
                .expect("a message id")
        }
    };

    // A capture that met a broken deployment until its message was dead-lettered: its record
    // is QUEUED with the last error.
    let capture_id = unique("dead");
    let url = format!("https://example.com/{capture_id}");
    let stuck = request(&capture_id, &url);
    store.claim(&stuck, "m-dead").await.unwrap();
    store
        .release(
            &stuck.capture_id,
            &Failure::deployment("PeekShot rejected the API key (HTTP 403)"),
        )
        .await
        .unwrap();
    to_dead_letters(json!({"captureId": capture_id, "url": url})).await;
    // A message that never got a record and names no capture id.
    let orphan_url = format!("https://example.com/{}", unique("orphan"));
    let orphan_id = to_dead_letters(json!({"url": orphan_url})).await;

    let pipeline = capturectl::dead_letters::Pipeline {
        sqs: sqs.clone(),
        dynamodb: aws_sdk_dynamodb::Client::new(&aws),
        table: stack.table_name.clone(),
        queue_url: stack.queue_url.clone(),
        dead_letter_queue_url: stack.dead_letter_queue_url.clone(),
    };
    let letters = pipeline.list(100).await.expect("the listing");

    let listed = letters
        .iter()
        .find(|l| l.capture_id == capture_id)
        .expect("the stuck capture's message is listed");
    assert_eq!(listed.status.as_deref(), Some("QUEUED"));
    assert!(listed.reason.contains("HTTP 403"), "{}", listed.reason);
    let orphan = letters
        .iter()
        .find(|l| l.message_id == orphan_id)
        .expect("the orphan is listed");
    assert_eq!(orphan.status, None);
    assert!(orphan.reason.starts_with("no record"), "{}", orphan.reason);

    let redriven = pipeline.redrive(100).await.expect("the redrive");
    assert!(redriven.moved >= 2 && redriven.keyed >= 1, "{redriven:?}");
    assert_eq!(status(&final_record(stack, &capture_id).await), "COMPLETE");
    assert_eq!(
        status(&final_record(stack, &orphan_id).await),
        "COMPLETE",
        "the orphan keeps its original message id as its capture id"
    );
}

/// `CaptureQueue::requeue`, which the submitter uses to send a message the pace deferred again
/// as a new one: SQS gets it with its body, the producer's message id, the producer's own
/// attributes and its delay; a message that already has SQS's ten attributes is sent without
/// the producer's id.
#[tokio::test(flavor = "multi_thread")]
async fn a_deferred_message_is_sent_again_with_its_producers_attributes_and_id() {
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::MessageAttributeValue;
    use capture_adapters::queue::{CaptureQueue, FIRST_MESSAGE_ID_ATTRIBUTE, Requeue};
    use std::collections::HashSet;

    let stack = shared_stack();
    let aws = aws(stack).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("requeue"))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("a queue URL");
    let queue = CaptureQueue::new(&aws, &queue_url);
    let value = |data_type: &str, text: &str| {
        MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(text)
            .build()
            .unwrap()
    };
    let mut nine: HashMap<String, MessageAttributeValue> = (0..7)
        .map(|i| (format!("tag{i}"), value("String", &format!("v{i}"))))
        .collect();
    nine.insert("priority".into(), value("Number", "3"));
    nine.insert(
        "signature".into(),
        MessageAttributeValue::builder()
            .data_type("Binary")
            .binary_value(Blob::new(vec![0, 1, 254]))
            .build()
            .unwrap(),
    );
    let ten: HashMap<String, MessageAttributeValue> = (0..10)
        .map(|i| (format!("tag{i}"), value("String", "x")))
        .collect();
    let requeue = |message_id: &str, attributes, delay| Requeue {
        message_id: message_id.into(),
        first_message_id: "m-first".into(),
        body: format!(r#"{{"captureId":"m-first","url":"https://example.com/{message_id}"}}"#),
        attributes,
        delay: Duration::from_secs(delay),
    };
    let requeues = [
        requeue("m-now", nine.clone(), 0),
        requeue("m-crowded", ten, 0),
        requeue("m-later", HashMap::new(), 600),
    ];

    let sent = queue.requeue(&requeues).await;

    assert_eq!(
        sent,
        HashSet::from(["m-now", "m-crowded", "m-later"].map(str::to_owned))
    );
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .message_attribute_names("All")
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 2, "the delayed one is not visible yet");
    let with_body = |body: &str| {
        received
            .iter()
            .find(|m| m.body() == Some(body))
            .unwrap_or_else(|| panic!("no message with body {body}"))
    };
    let crowded = with_body(&requeues[1].body)
        .message_attributes
        .as_ref()
        .expect("attributes");
    assert_eq!(crowded.len(), 10);
    assert!(!crowded.contains_key(FIRST_MESSAGE_ID_ATTRIBUTE));
    let message = with_body(&requeues[0].body);
    let attributes = message.message_attributes.as_ref().expect("attributes");
    assert_eq!(attributes.len(), 10);
    assert_eq!(
        attributes[FIRST_MESSAGE_ID_ATTRIBUTE].string_value(),
        Some("m-first")
    );
    for (name, sent) in &nine {
        let got = &attributes[name];
        assert_eq!(
            (got.data_type(), got.string_value(), got.binary_value()),
            (sent.data_type(), sent.string_value(), sent.binary_value()),
            "{name}"
        );
    }
}

/// Lets DynamoDB apply the next `UpdateItem` and then turns its answer into an HTTP 500, the
/// way an answer lost on the network looks to the SDK, which then sends the request again.
/// Clones share their state, so the test keeps one and the client another.
#[derive(Debug, Clone, Default)]
struct LoseNextUpdateAnswer {
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lost: std::sync::Arc<AtomicU32>,
}

impl aws_sdk_dynamodb::config::Intercept for LoseNextUpdateAnswer {
    fn name(&self) -> &'static str {
        "LoseNextUpdateAnswer"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            *context.response_mut().status_mut() = 500.try_into()?;
            self.lost.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Claims through `store`, whose client carries `lose`, losing the first answer.
async fn claim_losing_its_answer(
    store: &DynamoStore,
    lose: &LoseNextUpdateAnswer,
    request: &CaptureRequest,
    message_id: &str,
) -> Claim {
    let lost_before = lose.lost.load(Ordering::SeqCst);
    lose.armed.store(true, Ordering::SeqCst);
    let claim = store.claim(request, message_id).await.expect("the claim");
    assert_eq!(
        lose.lost.load(Ordering::SeqCst),
        lost_before + 1,
        "the claim's first answer was lost"
    );
    claim
}

/// A claim whose write went through but whose answer was lost: the SDK's retry finds the lease
/// that write took, recognises it by its claim token as its own, and is granted as the attempt
/// it is, knowing (from what the first write kept) whether an earlier attempt may have created
/// the capture at PeekShot.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_whose_answer_was_lost_is_granted_to_the_sdks_retry() {
    let stack = shared_stack();
    let aws = aws(stack).await;
    let lose = LoseNextUpdateAnswer::default();
    let lossy = DynamoStore::with_client(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws)
                .interceptor(lose.clone())
                .build(),
        ),
        &stack.table_name,
        Duration::from_secs(3600),
    );
    let plain = store(stack).await;

    // A first claim.
    let first = request(&unique("lost-claim"), "https://example.com/lost-claim-1");
    assert_eq!(
        claim_losing_its_answer(&lossy, &lose, &first, "m-1").await,
        Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None
        }
    );
    assert_eq!(
        plain.claim(&first, "m-2").await.unwrap(),
        Claim::HeldElsewhere,
        "the lease the lost answer took is held"
    );

    // After a release that made no call to PeekShot: nothing to look for.
    let released = request(&unique("lost-claim"), "https://example.com/lost-claim-2");
    plain.claim(&released, "m-1").await.unwrap();
    plain
        .release(&released.capture_id, &Failure::transient("PeekShot 503"))
        .await
        .unwrap();
    assert_eq!(
        claim_losing_its_answer(&lossy, &lose, &released, "m-1").await,
        Claim::Claimed {
            attempt: 2,
            maybe_created_since_ms: None
        }
    );

    // After an attempt that died holding its lease, maybe mid-create: look since its claim.
    let abandoned = request(&unique("lost-claim"), "https://example.com/lost-claim-3");
    plain.claim(&abandoned, "m-1").await.unwrap();
    let record = capture_item(stack, abandoned.capture_id.as_str())
        .await
        .unwrap();
    let claimed_at: u64 = record["claimedAtMs"].as_n().unwrap().parse().unwrap();
    aws_sdk_dynamodb::Client::new(&aws)
        .update_item()
        .table_name(&stack.table_name)
        .key("pk", record["pk"].clone())
        .update_expression("SET claimUntil = :expired")
        .expression_attribute_values(":expired", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("the lease expires");
    assert_eq!(
        claim_losing_its_answer(&lossy, &lose, &abandoned, "m-1").await,
        Claim::Claimed {
            attempt: 2,
            maybe_created_since_ms: Some(claimed_at)
        }
    );
}

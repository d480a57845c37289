//! A stand-in for Lambda's SQS event source mapping, which `cargo lambda watch` does not
//! have: it polls the capture queue and invokes the submitter the way Lambda would for the
//! template's `CaptureRequests` event (`ReportBatchItemFailures`).
//!
//! Each of [`EventSourceSettings::pollers`] tasks, in a loop:
//! 1. receives up to [`EventSourceSettings::batch_size`] messages (long poll of
//!    [`EventSourceSettings::wait_time`], with every system and message attribute);
//! 2. turns them into one SQS event, record for record as Lambda builds it (`messageId`,
//!    `receiptHandle`, `body`, `md5OfBody`, `attributes`, `messageAttributes`, `eventSource`,
//!    `eventSourceARN`, `awsRegion`);
//! 3. invokes the submitter through watch's invoke API and reads its batch response;
//! 4. deletes every message the response does not list as failed. Failed ones stay in the
//!    queue and come back after their visibility timeout; after the redrive policy's
//!    `maxReceiveCount` receives, moto moves them to the dead-letter queue (moto applies the
//!    redrive policy when a message is received).
//!
//! With [`EventSourceSettings::redelivery`] set, it also leaves some of the messages that
//! succeeded undeleted and visible again a moment later, so that they are delivered a second
//! time: what SQS's at-least-once delivery does now and then, on purpose and seeded, for the
//! chaos run.
//!
//! As in Lambda, an empty or `null` answer, or one without `batchItemFailures`, means the whole
//! batch succeeded; a function error (non-2xx status, an `X-Amz-Function-Error` header) or an
//! answer that cannot be read (not JSON, a failure without a message id of this batch) means
//! the whole batch failed, and nothing is deleted.
//!
//! Lambda scales its pollers with the backlog and waits up to `MaximumBatchingWindowInSeconds`
//! to fill a batch; this stand-in keeps a fixed number of pollers and invokes with whatever
//! one receive returned, which is enough to exercise the function's contract.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageSystemAttributeName,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use tokio::task::JoinHandle;

/// The pause after a poll that failed (moto gone, for instance), so that errors do not spin.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How much of a failing function's answer goes into the log.
const ANSWER_EXCERPT: usize = 300;

/// What to poll and what to invoke.
#[derive(Debug, Clone)]
pub struct EventSourceSettings {
    /// The capture queue.
    pub queue_url: String,
    /// Its ARN, the records' `eventSourceARN`.
    pub queue_arn: String,
    /// The records' `awsRegion`.
    pub region: String,
    /// The submitter's invoke URL.
    pub invoke_url: String,
    /// Concurrent pollers, each with at most one invocation in flight.
    pub pollers: usize,
    /// Most messages per invocation (SQS allows at most 10 per receive).
    pub batch_size: i32,
    /// Long-poll time of one receive.
    pub wait_time: Duration,
    /// Longest an invocation may take before it counts as a function error.
    pub invoke_timeout: Duration,
    /// Deliveries made twice on purpose; `None` for none.
    pub redelivery: Option<Arc<Redelivery>>,
}

/// Which succeeded messages to deliver again: each with probability `rate`, drawn from a
/// generator seeded once, so that a run's redeliveries depend only on its seed and the order
/// in which batches come back.
#[derive(Debug)]
pub struct Redelivery {
    rate: f64,
    rng: Mutex<StdRng>,
}

/// How long a message picked for redelivery stays hidden before it comes back.
const REDELIVERY_DELAY_SECONDS: i32 = 1;

impl Redelivery {
    /// Redelivers each succeeded message with probability `rate` (0 to 1).
    pub fn new(rate: f64, seed: u64) -> Arc<Self> {
        Arc::new(Self {
            rate: rate.clamp(0.0, 1.0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        })
    }

    fn picks(&self) -> bool {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        rng.random_bool(self.rate)
    }
}

impl EventSourceSettings {
    /// The local stack's settings: two pollers (the template's `MaximumConcurrency`), batches
    /// of 10 (`BatchSize`), one-second long polls, and 60 seconds per invocation (twice the
    /// submitter's 30-second timeout, to allow for watch starting the function).
    pub fn local(queue_url: &str, queue_arn: &str, region: &str, invoke_url: &str) -> Self {
        Self {
            queue_url: queue_url.to_owned(),
            queue_arn: queue_arn.to_owned(),
            region: region.to_owned(),
            invoke_url: invoke_url.to_owned(),
            pollers: 2,
            batch_size: 10,
            wait_time: Duration::from_secs(1),
            invoke_timeout: Duration::from_secs(60),
            redelivery: None,
        }
    }
}

/// How one batch went.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// Messages received and sent to the function.
    pub received: usize,
    /// Message ids the function reported as failed (left in the queue).
    pub failed: Vec<String>,
    /// Messages deleted from the queue.
    pub deleted: usize,
    /// Succeeded messages left on the queue to be delivered again ([`Redelivery`]).
    pub redelivered: usize,
    /// Why the whole batch failed, when it did (then nothing was deleted).
    pub function_error: Option<String>,
}

/// What the function's answer means for the batch.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionAnswer {
    /// These message ids failed; every other message of the batch succeeded.
    Failures(Vec<String>),
    /// The whole batch failed, for this reason.
    Error(String),
}

/// The running pollers; dropping this stops them.
#[derive(Debug)]
pub struct EventSource {
    pollers: Vec<JoinHandle<()>>,
}

impl EventSource {
    /// Starts the pollers on the current Tokio runtime.
    pub fn start(sqs: aws_sdk_sqs::Client, settings: EventSourceSettings) -> Self {
        let settings = Arc::new(settings);
        let http = reqwest::Client::new();
        let pollers = (0..settings.pollers)
            .map(|poller| {
                let (sqs, settings, http) = (sqs.clone(), settings.clone(), http.clone());
                tokio::spawn(async move {
                    loop {
                        if let Err(error) = poll_once(&sqs, &settings, &http).await {
                            tracing::warn!(
                                poller,
                                error = format!("{error:#}"),
                                "polling the capture queue failed"
                            );
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                })
            })
            .collect();
        Self { pollers }
    }

    /// Stops the pollers; an invocation in flight is abandoned, and its messages come back
    /// after their visibility timeout, as after a Lambda timeout.
    pub fn stop(&self) {
        for poller in &self.pollers {
            poller.abort();
        }
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One round: receive, invoke, delete. Returns `None` when the queue had nothing.
#[tracing::instrument(name = "batch", skip_all)]
pub async fn poll_once(
    sqs: &aws_sdk_sqs::Client,
    settings: &EventSourceSettings,
    http: &reqwest::Client,
) -> anyhow::Result<Option<BatchOutcome>> {
    let wait_seconds = i32::try_from(settings.wait_time.as_secs()).unwrap_or(20);
    let received = sqs
        .receive_message()
        .queue_url(&settings.queue_url)
        .max_number_of_messages(settings.batch_size)
        .wait_time_seconds(wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .context("receiving from the capture queue")?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(None);
    }

    let event = sqs_event(&messages, &settings.queue_arn, &settings.region);
    let batch_ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m.message_id.as_deref())
        .collect();
    let answer = invoke(http, settings, &event, &batch_ids).await;

    let outcome = match answer {
        FunctionAnswer::Error(reason) => {
            tracing::error!(
                batch_size = messages.len(),
                reason = %reason,
                "the submitter failed the whole batch; its messages come back after their visibility timeout"
            );
            BatchOutcome {
                received: messages.len(),
                failed: Vec::new(),
                deleted: 0,
                redelivered: 0,
                function_error: Some(reason),
            }
        }
        FunctionAnswer::Failures(failed) => {
            let (again, done): (Vec<&Message>, Vec<&Message>) = messages
                .iter()
                .filter(|m| m.message_id.as_ref().is_none_or(|id| !failed.contains(id)))
                .partition(|_| settings.redelivery.as_ref().is_some_and(|r| r.picks()));
            let deleted = delete(sqs, &settings.queue_url, &done).await?;
            let redelivered = show_again_soon(sqs, &settings.queue_url, &again).await?;
            tracing::info!(
                batch_size = messages.len(),
                failures = failed.len(),
                deleted,
                redelivered,
                "batch processed"
            );
            BatchOutcome {
                received: messages.len(),
                failed,
                deleted,
                redelivered,
                function_error: None,
            }
        }
    };
    Ok(Some(outcome))
}

/// The SQS event Lambda would build for these messages.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|message| sqs_record(message, queue_arn, region))
        .collect();
    event
}

fn sqs_record(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
    record.attributes = message
        .attributes
        .iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
        .collect();
    record.message_attributes = message
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, value)| {
            let mut attribute = SqsMessageAttribute::default();
            attribute.string_value = value.string_value.clone();
            attribute.binary_value = value.binary_value.as_ref().map(base64_data);
            attribute.string_list_values = value.string_list_values.clone().unwrap_or_default();
            attribute.binary_list_values = value
                .binary_list_values
                .iter()
                .flatten()
                .map(base64_data)
                .collect();
            attribute.data_type = Some(value.data_type.clone());
            (name.clone(), attribute)
        })
        .collect();
    record.event_source = Some("aws:sqs".to_owned());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some(region.to_owned());
    record
}

/// SQS binary attribute bytes as the event's base64 field (a non-exhaustive tuple struct,
/// so it is filled through `DerefMut`).
fn base64_data(blob: &aws_sdk_sqs::primitives::Blob) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(blob.as_ref());
    data
}

/// Invokes the function with `event` and interprets its answer; a transport failure or a
/// timeout is a function error too.
async fn invoke(
    http: &reqwest::Client,
    settings: &EventSourceSettings,
    event: &SqsEvent,
    batch_ids: &HashSet<&str>,
) -> FunctionAnswer {
    let response = match http
        .post(&settings.invoke_url)
        .json(event)
        .timeout(settings.invoke_timeout)
        .send()
        .await
    {
        Ok(response) => response,
        Err(error) => return FunctionAnswer::Error(format!("the invocation failed: {error}")),
    };
    let status = response.status().as_u16();
    let function_error = response
        .headers()
        .get("x-amz-function-error")
        .map(|v| v.to_str().unwrap_or("(unreadable)").to_owned());
    match response.bytes().await {
        Ok(body) => interpret_answer(status, function_error.as_deref(), &body, batch_ids),
        Err(error) => {
            FunctionAnswer::Error(format!("reading the function's answer failed: {error}"))
        }
    }
}

/// The batch response as Lambda reads it: both the list and its items' ids may be absent.
#[derive(Deserialize)]
struct BatchResponse {
    #[serde(default, rename = "batchItemFailures")]
    batch_item_failures: Option<Vec<ItemFailure>>,
}

#[derive(Deserialize)]
struct ItemFailure {
    #[serde(default, rename = "itemIdentifier")]
    item_identifier: Option<String>,
}

/// Interprets a function's answer to a batch of messages with ids `batch_ids`, by the rules
/// Lambda applies with `ReportBatchItemFailures` (see the module documentation).
pub fn interpret_answer(
    status: u16,
    function_error: Option<&str>,
    body: &[u8],
    batch_ids: &HashSet<&str>,
) -> FunctionAnswer {
    let excerpt = || {
        let text = String::from_utf8_lossy(body);
        text.chars().take(ANSWER_EXCERPT).collect::<String>()
    };
    if !(200..300).contains(&status) {
        return FunctionAnswer::Error(format!("status {status}: {}", excerpt()));
    }
    if let Some(kind) = function_error {
        return FunctionAnswer::Error(format!("function error {kind}: {}", excerpt()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return FunctionAnswer::Failures(Vec::new());
    }

    let response: Option<BatchResponse> = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(error) => {
            return FunctionAnswer::Error(format!(
                "the answer is not a batch response ({error}): {}",
                excerpt()
            ));
        }
    };
    let items = response
        .and_then(|r| r.batch_item_failures)
        .unwrap_or_default();

    let mut failed = Vec::with_capacity(items.len());
    for item in items {
        match item.item_identifier {
            Some(id) if batch_ids.contains(id.as_str()) => {
                if !failed.contains(&id) {
                    failed.push(id);
                }
            }
            Some(id) => {
                return FunctionAnswer::Error(format!(
                    "a failure names {id:?}, which is not a message of this batch"
                ));
            }
            None => return FunctionAnswer::Error("a failure has no itemIdentifier".to_owned()),
        }
    }
    FunctionAnswer::Failures(failed)
}

/// Deletes `messages` in one DeleteMessageBatch; returns how many were deleted. Entries SQS
/// refuses (an expired receipt handle, say) are logged: those messages will come back.
async fn delete(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[&Message],
) -> anyhow::Result<usize> {
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, message)| {
            let handle = message.receipt_handle.as_ref()?;
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return Ok(0);
    }

    let ids: HashMap<String, Option<&str>> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| (i.to_string(), m.message_id.as_deref()))
        .collect();
    let answer = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("deleting processed messages")?;
    for failure in &answer.failed {
        let message_id = ids.get(&failure.id).copied().flatten().unwrap_or("?");
        tracing::warn!(message_id, code = %failure.code, reason = failure.message.as_deref().unwrap_or(""), "a processed message could not be deleted and will be delivered again");
    }
    Ok(answer.successful.len())
}

/// Makes succeeded messages visible again after [`REDELIVERY_DELAY_SECONDS`] instead of
/// deleting them, so that they are delivered a second time.
async fn show_again_soon(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[&Message],
) -> anyhow::Result<usize> {
    let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, message)| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(message.receipt_handle.as_ref()?)
                .visibility_timeout(REDELIVERY_DELAY_SECONDS)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return Ok(0);
    }
    let answer = sqs
        .change_message_visibility_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .context("making messages visible again for a redelivery")?;
    Ok(answer.successful.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> HashSet<&'static str> {
        ["m1", "m2"].into_iter().collect()
    }

    #[test]
    fn listed_failures_are_returned() {
        let body = br#"{"batchItemFailures":[{"itemIdentifier":"m2"}]}"#;
        assert_eq!(
            interpret_answer(200, None, body, &ids()),
            FunctionAnswer::Failures(vec!["m2".into()])
        );
    }

    #[test]
    fn empty_null_and_listless_answers_mean_the_whole_batch_succeeded() {
        for body in [
            &b""[..],
            b"null",
            b"{}",
            br#"{"batchItemFailures":null}"#,
            br#"{"batchItemFailures":[]}"#,
        ] {
            assert_eq!(
                interpret_answer(200, None, body, &ids()),
                FunctionAnswer::Failures(vec![])
            );
        }
    }

    #[test]
    fn a_server_error_or_function_error_header_fails_the_whole_batch() {
        let body = br#"{"errorType":"Panic","errorMessage":"boom"}"#;
        assert!(
            matches!(interpret_answer(500, None, body, &ids()), FunctionAnswer::Error(e) if e.contains("boom"))
        );
        assert!(matches!(
            interpret_answer(200, Some("Unhandled"), body, &ids()),
            FunctionAnswer::Error(_)
        ));
    }

    #[test]
    fn unreadable_answers_fail_the_whole_batch() {
        for body in [
            &b"not json"[..],
            br#""ok""#,
            br#"{"batchItemFailures":[{"itemIdentifier":"other"}]}"#,
            br#"{"batchItemFailures":[{}]}"#,
        ] {
            assert!(
                matches!(
                    interpret_answer(200, None, body, &ids()),
                    FunctionAnswer::Error(_)
                ),
                "{body:?}"
            );
        }
    }
}

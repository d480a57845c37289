//! The submitter Lambda: receives batches of capture requests from SQS, submits each to
//! PeekShot, and reports the messages that should come back (`ReportBatchItemFailures`).
//!
//! Everything that lasts longer than one invocation (configuration, the API key, the HTTP
//! connection pool, the DynamoDB and SQS clients, the pace's last view of its bucket) is built
//! once here, before the runtime starts. Each kept message is hidden for a delay chosen by the
//! retry policy, so retries back off per message instead of all returning after the queue's
//! visibility timeout; each message the pace deferred is sent again as a new message instead,
//! so that waiting for a slot uses up none of its receives.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{
    BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute,
};
use capture::{
    BatchLimits, CaptureId, Pace, Pacer, QueuedMessage, Retry, RetryCause, RetryPolicy, Unpaced,
    body_with_capture_id, submit_batch,
};
use capture_adapters::queue::{Blob, FIRST_MESSAGE_ID_ATTRIBUTE, MessageAttributeValue};
use capture_adapters::{
    CaptureQueue, DynamoStore, PeekShotClient, Postponement, ProcessEnv, Requeue, SsmSecrets,
    SubmitterConfig,
};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tracing::info;

/// What one invocation needs, shared by all invocations of this process.
struct Submitter {
    store: DynamoStore,
    peekshot: PeekShotClient,
    queue: CaptureQueue,
    /// The global pace of creates, or [`Unpaced`] when the deployment sets no rate.
    pace: Box<dyn Pace>,
    retry_policy: RetryPolicy,
    concurrency: usize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let aws = capture_adapters::aws_config().await?;
    let config = SubmitterConfig::load(&ProcessEnv, &SsmSecrets::new(&aws))
        .await
        .inspect_err(|problem| tracing::error!(%problem, "cannot start the submitter"))?;
    let store = DynamoStore::new(&aws, &config.table, config.retention);
    let pace: Box<dyn Pace> = match config.pace {
        Some(policy) => Box::new(Pacer::new(store.clone(), policy)),
        None => Box::new(Unpaced),
    };
    let submitter = Submitter {
        store,
        peekshot: PeekShotClient::new(&config.peekshot)?,
        queue: CaptureQueue::new(&aws, &config.queue_url),
        pace,
        retry_policy: config.retry,
        concurrency: config.concurrency,
    };

    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        handle_batch(&submitter, event)
    }))
    .await
}

/// Submits one batch, postpones the messages to keep, and names them in the response.
async fn handle_batch(
    submitter: &Submitter,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let limits = BatchLimits {
        concurrency: submitter.concurrency,
        deadline: instant_of(event.context.deadline),
    };
    let time_left_ms = limits
        .deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    let mut attributes = HashMap::new();
    let messages: Vec<QueuedMessage> = event
        .payload
        .records
        .into_iter()
        .filter_map(|mut record| {
            let message_attributes = std::mem::take(&mut record.message_attributes);
            let message = queued_message(record, &message_attributes)?;
            attributes.insert(message.message_id.clone(), message_attributes);
            Some(message)
        })
        .collect();
    let received = messages.len();

    let report = submit_batch(
        &submitter.store,
        &submitter.peekshot,
        submitter.pace.as_ref(),
        messages,
        limits,
    )
    .await;
    let requeued = requeue(submitter, &report.retry, &attributes).await;
    let kept: Vec<&Retry> = report
        .retry
        .iter()
        .filter(|retry| !requeued.contains(&retry.message.message_id))
        .collect();
    let postponed = postpone(submitter, &kept).await;
    info!(
        received,
        done = report.done,
        retry = report.retry.len(),
        deferred = report.deferred,
        requeued = requeued.len(),
        postponed,
        time_left_ms,
        "batch handled"
    );

    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = kept
        .into_iter()
        .map(|retry| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = retry.message.message_id.clone();
            failure
        })
        .collect();
    Ok(response)
}

/// A record of the event as the domain sees it. A record without a message id cannot be
/// reported or retried on its own; SQS always sends one, so such a record is skipped.
fn queued_message(
    record: SqsMessage,
    attributes: &HashMap<String, SqsMessageAttribute>,
) -> Option<QueuedMessage> {
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    let message_id = record.message_id?;
    let first_message_id = attributes
        .get(FIRST_MESSAGE_ID_ATTRIBUTE)
        .and_then(|attribute| attribute.string_value.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| message_id.clone());
    Some(QueuedMessage {
        message_id,
        first_message_id,
        body: record.body.unwrap_or_default(),
        receive_count,
        receipt_handle: record.receipt_handle,
    })
}

/// Sends the messages the pace deferred again as new messages, so that waiting for a slot
/// uses up none of their receives, with the message attributes they came with (`attributes`,
/// by message id). Returns the ids of those sent.
async fn requeue(
    submitter: &Submitter,
    retries: &[Retry],
    attributes: &HashMap<String, HashMap<String, SqsMessageAttribute>>,
) -> HashSet<String> {
    let requeues: Vec<Requeue> = retries
        .iter()
        .filter(|retry| matches!(retry.cause, RetryCause::Deferred(_)))
        .filter_map(|retry| {
            let capture_id = CaptureId::from_message_id(&retry.message.first_message_id);
            let Some(carried) = attributes
                .get(&retry.message.message_id)
                .and_then(producer_attributes)
            else {
                info!(
                    message_id = %retry.message.message_id,
                    "a deferred message's attributes cannot be sent again as they came; it is postponed instead"
                );
                return None;
            };
            Some(Requeue {
                message_id: retry.message.message_id.clone(),
                first_message_id: retry.message.first_message_id.clone(),
                body: body_with_capture_id(&retry.message.body, &capture_id)?,
                attributes: carried,
                delay: submitter.retry_policy.delay_for(
                    &retry.cause,
                    retry.message.receive_count,
                    fastrand::f64(),
                ),
            })
        })
        .collect();
    if requeues.is_empty() {
        return HashSet::new();
    }
    submitter.queue.requeue(&requeues).await
}

/// A received message's attributes as values to send again. `None` when one of them cannot be
/// sent as it came (it has no data type, or neither a string nor a binary value): such a
/// message is postponed rather than sent again without it.
fn producer_attributes(
    attributes: &HashMap<String, SqsMessageAttribute>,
) -> Option<HashMap<String, MessageAttributeValue>> {
    attributes
        .iter()
        .map(|(name, attribute)| {
            if attribute.string_value.is_none() && attribute.binary_value.is_none() {
                return None;
            }
            let value = MessageAttributeValue::builder()
                .set_data_type(attribute.data_type.clone())
                .set_string_value(attribute.string_value.clone())
                .set_binary_value(
                    attribute
                        .binary_value
                        .as_ref()
                        .map(|binary| Blob::new(binary.to_vec())),
                )
                .build()
                .ok()?;
            Some((name.clone(), value))
        })
        .collect()
}

/// Hides each kept message for the delay the retry policy gives it.
async fn postpone(submitter: &Submitter, retries: &[&Retry]) -> usize {
    let postponements: Vec<Postponement> = retries
        .iter()
        .filter_map(|retry| {
            let delay = submitter.retry_policy.delay_for(
                &retry.cause,
                retry.message.receive_count,
                fastrand::f64(),
            );
            Some(Postponement {
                message_id: retry.message.message_id.clone(),
                receipt_handle: retry.message.receipt_handle.clone()?,
                delay,
            })
        })
        .collect();
    if postponements.is_empty() {
        return 0;
    }
    submitter.queue.postpone(&postponements).await
}

/// The time an invocation is assumed to have when the runtime API gives no usable deadline.
/// Lambda always sends one; `cargo lambda watch` sends a fixed `600000` (ten minutes as a
/// duration, which read as epoch milliseconds lies in 1970). Thirty seconds is the template's
/// timeout.
const ASSUMED_INVOCATION_TIME: Duration = Duration::from_secs(30);

/// Deadlines before this (2001-09-09 in epoch milliseconds) cannot be real ones.
const EARLIEST_REAL_DEADLINE_MS: u64 = 1_000_000_000_000;

/// The invocation's deadline (epoch milliseconds) as an `Instant`: a real deadline already
/// past leaves no time; a value that is no epoch time at all gets [`ASSUMED_INVOCATION_TIME`].
fn instant_of(deadline_ms: u64) -> Instant {
    if deadline_ms < EARLIEST_REAL_DEADLINE_MS {
        return Instant::now() + ASSUMED_INVOCATION_TIME;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let left = u128::from(deadline_ms).saturating_sub(now_ms);
    Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms_in(offset: Duration) -> u64 {
        (SystemTime::now() + offset)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[test]
    fn a_real_deadline_gives_the_time_left() {
        let left = instant_of(epoch_ms_in(Duration::from_secs(20)))
            .saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(18) && left <= Duration::from_secs(20),
            "{left:?}"
        );
    }

    #[test]
    fn a_deadline_already_past_leaves_no_time() {
        let past = SystemTime::now() - Duration::from_secs(5);
        let past_ms = past.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert_eq!(
            instant_of(past_ms).saturating_duration_since(Instant::now()),
            Duration::ZERO
        );
    }

    #[test]
    fn cargo_lambda_watchs_fixed_value_gets_the_assumed_time() {
        let left = instant_of(600_000).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(29), "{left:?}");
    }

    #[test]
    fn receive_count_and_receipt_handle_come_from_the_record() {
        let record: SqsMessage = serde_json::from_value(serde_json::json!({
            "messageId": "m-1",
            "receiptHandle": "rh-1",
            "body": "{}",
            "attributes": {"ApproximateReceiveCount": "3"},
            "messageAttributes": {}
        }))
        .unwrap();
        let message = queued_message(record, &HashMap::new()).unwrap();
        assert_eq!(message.receive_count, 3);
        assert_eq!(message.receipt_handle.as_deref(), Some("rh-1"));
        assert_eq!(message.first_message_id, "m-1");
    }

    #[test]
    fn a_requeued_message_goes_by_the_id_its_producer_was_given() {
        let record: SqsMessage = serde_json::from_value(serde_json::json!({
            "messageId": "m-2",
            "body": "{}",
            "attributes": {},
            "messageAttributes": {
                FIRST_MESSAGE_ID_ATTRIBUTE: {"stringValue": "m-1", "dataType": "String"}
            }
        }))
        .unwrap();
        let attributes = record.message_attributes.clone();
        let message = queued_message(record, &attributes).unwrap();
        assert_eq!(
            (
                message.message_id.as_str(),
                message.first_message_id.as_str()
            ),
            ("m-2", "m-1")
        );
    }

    fn attribute(
        data_type: Option<&str>,
        string: Option<&str>,
        binary: Option<&[u8]>,
    ) -> SqsMessageAttribute {
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = data_type.map(str::to_owned);
        attribute.string_value = string.map(str::to_owned);
        attribute.binary_value = binary.map(|bytes| {
            let mut data = aws_lambda_events::encodings::Base64Data::default();
            data.extend_from_slice(bytes);
            data
        });
        attribute
    }

    #[test]
    fn producer_attributes_are_sent_again_as_they_came() {
        let received = HashMap::from([
            (
                "tenant".to_owned(),
                attribute(Some("String"), Some("acme"), None),
            ),
            (
                "priority".to_owned(),
                attribute(Some("Number.int"), Some("3"), None),
            ),
            (
                "blob".to_owned(),
                attribute(Some("Binary"), None, Some(b"\x00\x01")),
            ),
        ]);

        let carried = producer_attributes(&received).expect("all can be sent again");

        assert_eq!(carried.len(), 3);
        assert_eq!(carried["tenant"].data_type(), "String");
        assert_eq!(carried["tenant"].string_value(), Some("acme"));
        assert_eq!(carried["priority"].data_type(), "Number.int");
        assert_eq!(
            carried["blob"].binary_value().map(Blob::as_ref),
            Some(&b"\x00\x01"[..])
        );
    }

    #[test]
    fn an_attribute_without_a_type_or_a_value_cannot_be_sent_again() {
        let no_type = HashMap::from([("a".to_owned(), attribute(None, Some("x"), None))]);
        let no_value = HashMap::from([("a".to_owned(), attribute(Some("String"), None, None))]);

        assert!(producer_attributes(&no_type).is_none());
        assert!(producer_attributes(&no_value).is_none());
        assert_eq!(producer_attributes(&HashMap::new()), Some(HashMap::new()));
    }
}

//! The dead-letter queue, message by message, with the reason each one failed, and the
//! redrive that puts messages back on the capture queue.
//!
//! Listing receives the messages page by page (long polls, hidden while the listing runs, made
//! visible again at its end) and reads each one's record with a strongly consistent `GetItem`:
//! the record of the capture id its body names, if that record is this request's, else the
//! record under its message id (where the submitter records a message whose capture id it
//! could not use). Redriving receives a page, sends each message to the capture queue, deletes
//! it from the dead-letter queue, and goes on to the next page; a failure between a send and
//! its delete leaves a copy in both queues, which the submitter's idempotency makes harmless.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use capture::{CaptureId, body_with_capture_id};
use capture_adapters::queue::FIRST_MESSAGE_ID_ATTRIBUTE;
use futures::StreamExt;
use serde_json::Value;

/// SQS returns at most ten messages per receive.
const RECEIVE_LIMIT: usize = 10;
/// How long a listing or a redrive keeps the messages it holds hidden from other readers.
const HOLD: Duration = Duration::from_secs(60);
/// The long poll of one receive: long enough that an empty answer means an empty queue.
const LONG_POLL_SECONDS: i32 = 2;
/// Record lookups in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 8;

/// Where the pipeline keeps its messages and records.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// SQS, in the pipeline's account and Region (or moto).
    pub sqs: aws_sdk_sqs::Client,
    /// DynamoDB, likewise.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The capture table.
    pub table: String,
    /// The capture queue, where redriven messages go.
    pub queue_url: String,
    /// The dead-letter queue.
    pub dead_letter_queue_url: String,
}

/// One dead-lettered message and what its record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The id the producer was given (SQS's redrive policy keeps a message's id; a message the
    /// submitter sent again after a deferral carries its first id along).
    pub message_id: String,
    /// The capture id the message stands for: its body's `captureId`, else its message id.
    pub capture_id: String,
    /// How many times SQS delivered it, on the capture queue and here.
    pub receives: u32,
    /// The record's status, if there is a record.
    pub status: Option<String>,
    /// Why it failed, in a sentence an operator can act on.
    pub reason: String,
    /// The message body, as the producer sent it.
    pub body: String,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Messages sent back to the capture queue and deleted from the dead-letter queue.
    pub moved: usize,
    /// Messages sent back whose body named no capture id: the original message id was added
    /// as `captureId`, so the capture keeps its record and its idempotency key.
    pub keyed: usize,
}

impl Pipeline {
    /// Up to `max` dead-lettered messages with their reasons. They are hidden from other
    /// readers while the listing runs and visible again when it ends.
    pub async fn list(&self, max: usize) -> anyhow::Result<Vec<DeadLetter>> {
        let mut held: BTreeMap<String, Message> = BTreeMap::new();
        while held.len() < max {
            let page = self.receive_page(max - held.len()).await?;
            let before = held.len();
            for message in page {
                if let Some(id) = message.message_id.clone() {
                    held.entry(id).or_insert(message);
                }
            }
            if held.len() == before {
                break;
            }
        }
        let messages: Vec<Message> = held.into_values().collect();

        let letters = futures::stream::iter(messages.iter().cloned())
            .map(|message| self.explain(message))
            .buffered(LOOKUPS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        self.release(&messages).await?;
        letters.into_iter().collect()
    }

    /// Moves up to `max` messages back to the capture queue, a page at a time, each with its
    /// body (given its capture id when it named none) and message attributes.
    pub async fn redrive(&self, max: usize) -> anyhow::Result<Redriven> {
        let mut redriven = Redriven::default();
        while redriven.moved < max {
            let page = self.receive_page(max - redriven.moved).await?;
            if page.is_empty() {
                break;
            }
            for message in page {
                let keyed = self.move_back(message).await?;
                redriven.moved += 1;
                redriven.keyed += usize::from(keyed);
            }
        }
        Ok(redriven)
    }

    /// Sends one message to the capture queue and deletes it here. Returns whether its body
    /// was given its capture id.
    async fn move_back(&self, message: Message) -> anyhow::Result<bool> {
        let message_id = message.message_id.clone().unwrap_or_default();
        let first_message_id = first_message_id(&message);
        let original = message.body.clone().unwrap_or_default();
        let (body, keyed) = keyed_body(&original, &first_message_id);
        let mut attributes = message.message_attributes.clone().unwrap_or_default();
        attributes.insert(
            FIRST_MESSAGE_ID_ATTRIBUTE.to_owned(),
            capture_adapters::queue::first_id(&first_message_id)?,
        );
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .with_context(|| format!("sending message {message_id} back to the capture queue"))?;
        self.sqs
            .delete_message()
            .queue_url(&self.dead_letter_queue_url)
            .receipt_handle(message.receipt_handle.unwrap_or_default())
            .send()
            .await
            .with_context(|| format!("deleting message {message_id} from the dead-letter queue"))?;
        Ok(keyed)
    }

    /// One long-polled receive of up to `wanted` (at most ten) messages, hidden for [`HOLD`].
    async fn receive_page(&self, wanted: usize) -> anyhow::Result<Vec<Message>> {
        let answer = self
            .sqs
            .receive_message()
            .queue_url(&self.dead_letter_queue_url)
            .max_number_of_messages(wanted.clamp(1, RECEIVE_LIMIT) as i32)
            .visibility_timeout(HOLD.as_secs() as i32)
            .wait_time_seconds(LONG_POLL_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .context("receiving from the dead-letter queue")?;
        Ok(answer.messages.unwrap_or_default())
    }

    /// Makes listed messages visible again at once.
    async fn release(&self, messages: &[Message]) -> anyhow::Result<()> {
        for page in messages.chunks(RECEIVE_LIMIT) {
            let entries = page
                .iter()
                .enumerate()
                .filter_map(|(i, message)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(message.receipt_handle.as_deref()?)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect::<Vec<_>>();
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.dead_letter_queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("making the listed messages visible again")?;
        }
        Ok(())
    }

    /// Reads the record of one message and says why the message is here.
    async fn explain(&self, message: Message) -> anyhow::Result<DeadLetter> {
        let message_id = first_message_id(&message);
        let body = message.body.clone().unwrap_or_default();
        let named = capture_id_of(&body);
        let receives = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);

        // The named capture's record counts only if it is this request's: another request may
        // own that capture id, and then this message's own record is under its message id.
        let mut record = None;
        if let Some(id) = &named {
            record = self
                .record(id)
                .await?
                .filter(|item| belongs_to(item, &body, &message_id));
        }
        if record.is_none() {
            record = self.record(&message_id).await?;
        }
        let capture_id = match &record {
            Some(item) => text(item, "captureId").unwrap_or(&message_id).to_owned(),
            None => named.unwrap_or_else(|| message_id.clone()),
        };
        let (status, reason) = reason_from_record(record.as_ref(), &message_id);
        Ok(DeadLetter {
            message_id,
            capture_id,
            receives,
            status,
            reason,
            body,
        })
    }

    async fn record(
        &self,
        capture_id: &str,
    ) -> anyhow::Result<Option<HashMap<String, AttributeValue>>> {
        Ok(self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("capture#{capture_id}")))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading the record of capture {capture_id}"))?
            .item)
    }
}

/// The id the message's producer was given: carried in [`FIRST_MESSAGE_ID_ATTRIBUTE`] when the
/// submitter sent it again after a deferral, else its own.
fn first_message_id(message: &Message) -> String {
    message
        .message_attributes
        .as_ref()
        .and_then(|attributes| attributes.get(FIRST_MESSAGE_ID_ATTRIBUTE))
        .and_then(|attribute| attribute.string_value.clone())
        .or_else(|| message.message_id.clone())
        .unwrap_or_default()
}

/// Whether a capture record is the one of this message's request: written by this message, or
/// for the same page.
fn belongs_to(item: &HashMap<String, AttributeValue>, body: &str, message_id: &str) -> bool {
    let url = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("url")?.as_str().map(str::to_owned));
    text(item, "messageId") == Some(message_id)
        || (url.is_some() && text(item, "url") == url.as_deref())
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// The body's `captureId`, when it is a JSON object that names one.
pub fn capture_id_of(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value.get("captureId")?.as_str().map(str::to_owned)
}

/// The body to redrive: given its original message id as `captureId` when it named none
/// ([`body_with_capture_id`]), otherwise unchanged (a body that is no JSON object is recorded
/// as invalid again, under its new message id). Returns whether a capture id was added.
pub fn keyed_body(body: &str, message_id: &str) -> (String, bool) {
    match body_with_capture_id(body, &CaptureId::from_message_id(message_id)) {
        Some(keyed) if keyed != body => (keyed, true),
        _ => (body.to_owned(), false),
    }
}

/// The record's status and a reason an operator can act on.
pub fn reason_from_record(
    record: Option<&HashMap<String, AttributeValue>>,
    message_id: &str,
) -> (Option<String>, String) {
    let Some(record) = record else {
        return (
            None,
            format!(
                "no record: the submitter could not write one (see its log lines with \
                 message_id={message_id}; DynamoDB was unavailable or refused it)"
            ),
        );
    };
    let text = |name: &str| record.get(name).and_then(|v| v.as_s().ok()).cloned();
    let status = text("status");
    let reason = match (status.as_deref(), text("lastError")) {
        (Some("COMPLETE"), _) => {
            "the capture is COMPLETE: this message is a redundant copy and can be deleted".into()
        }
        (Some("FAILED"), _) => format!(
            "the capture is FAILED ({}): this message is a redundant copy and can be deleted",
            text("error").unwrap_or_default()
        ),
        (Some("SUBMITTED"), _) => format!(
            "the capture is SUBMITTED (request id {}): it waits for PeekShot, the message is \
             a redundant copy",
            text("requestId").unwrap_or_default()
        ),
        (_, Some(last_error)) => last_error,
        (_, None) => "no attempt reached PeekShot: another attempt held the capture each time \
                      this message was received"
            .into(),
    };
    (status, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
            .collect()
    }

    #[test]
    fn an_open_capture_gives_its_last_error() {
        let item = record(&[
            ("status", "QUEUED"),
            (
                "lastError",
                "deployment: PeekShot rejected the API key (HTTP 403)",
            ),
        ]);
        let (status, reason) = reason_from_record(Some(&item), "m-1");
        assert_eq!(status.as_deref(), Some("QUEUED"));
        assert_eq!(
            reason,
            "deployment: PeekShot rejected the API key (HTTP 403)"
        );
    }

    #[test]
    fn a_missing_record_points_at_the_submitters_log_for_the_message() {
        let (status, reason) = reason_from_record(None, "m-9");
        assert_eq!(status, None);
        assert!(reason.contains("message_id=m-9"), "{reason}");
    }

    #[test]
    fn a_finished_capture_marks_the_message_redundant() {
        let item = record(&[("status", "FAILED"), ("error", "bot protection")]);
        let (_, reason) = reason_from_record(Some(&item), "m-1");
        assert!(
            reason.contains("bot protection") && reason.contains("redundant"),
            "{reason}"
        );
    }

    #[test]
    fn a_body_without_a_capture_id_is_keyed_by_its_original_message_id() {
        let (body, keyed) = keyed_body(r#"{"url":"https://example.com"}"#, "m-7");
        assert!(keyed);
        assert_eq!(capture_id_of(&body).as_deref(), Some("m-7"));

        let named = r#"{"url":"https://example.com","captureId":"c-1"}"#;
        assert_eq!(keyed_body(named, "m-7"), (named.to_owned(), false));
        assert_eq!(
            keyed_body("not json", "m-7"),
            ("not json".to_owned(), false)
        );
    }
}

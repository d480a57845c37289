//! The dead-letter queue, message by message, with the reason each one failed, and the
//! redrive that puts messages back on the capture queue.
//!
//! Listing receives the messages with a short visibility timeout (they are hidden from other
//! readers for that long, then visible again) and reads each one's capture record with a
//! strongly consistent `GetItem`. Redriving sends each message to the capture queue and then
//! deletes it from the dead-letter queue; a failure between the two leaves a copy in both,
//! which the submitter's idempotency makes harmless.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use futures::StreamExt;
use serde_json::Value;

/// SQS returns at most ten messages per receive.
const RECEIVE_LIMIT: i32 = 10;
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
    /// SQS's id; redrive by SQS's redrive policy keeps it.
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
    /// Up to `max` dead-lettered messages with their reasons, hiding each from other readers
    /// for `hide` (SQS visibility timeout) while it is read.
    pub async fn list(&self, max: usize, hide: Duration) -> anyhow::Result<Vec<DeadLetter>> {
        let messages = self.receive(max, hide).await?;
        let letters = futures::stream::iter(messages)
            .map(|message| self.explain(message))
            .buffered(LOOKUPS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        letters.into_iter().collect()
    }

    /// Moves up to `max` messages back to the capture queue, each with its body (given a
    /// `captureId` when it had none) and message attributes.
    pub async fn redrive(&self, max: usize) -> anyhow::Result<Redriven> {
        let messages = self.receive(max, Duration::from_secs(60)).await?;
        let mut redriven = Redriven::default();
        for message in messages {
            let message_id = message.message_id.clone().unwrap_or_default();
            let original = message.body.clone().unwrap_or_default();
            let (body, keyed) = keyed_body(&original, &message_id);
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .set_message_attributes(message.message_attributes.clone())
                .send()
                .await
                .with_context(|| {
                    format!("sending message {message_id} back to the capture queue")
                })?;
            self.sqs
                .delete_message()
                .queue_url(&self.dead_letter_queue_url)
                .receipt_handle(message.receipt_handle.unwrap_or_default())
                .send()
                .await
                .with_context(|| {
                    format!("deleting message {message_id} from the dead-letter queue")
                })?;
            redriven.moved += 1;
            redriven.keyed += usize::from(keyed);
        }
        Ok(redriven)
    }

    /// Receives until `max` distinct messages are in hand or the queue has no more visible.
    async fn receive(&self, max: usize, hide: Duration) -> anyhow::Result<Vec<Message>> {
        let mut seen: BTreeMap<String, Message> = BTreeMap::new();
        while seen.len() < max {
            let wanted = i32::try_from(max - seen.len()).unwrap_or(RECEIVE_LIMIT);
            let answer = self
                .sqs
                .receive_message()
                .queue_url(&self.dead_letter_queue_url)
                .max_number_of_messages(wanted.clamp(1, RECEIVE_LIMIT))
                .visibility_timeout(i32::try_from(hide.as_secs()).unwrap_or(i32::MAX))
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .context("receiving from the dead-letter queue")?;
            let messages = answer.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let before = seen.len();
            for message in messages {
                if let Some(id) = message.message_id.clone() {
                    seen.entry(id).or_insert(message);
                }
            }
            if seen.len() == before {
                break;
            }
        }
        Ok(seen.into_values().collect())
    }

    /// Reads the record of one message's capture and says why the message is here.
    async fn explain(&self, message: Message) -> anyhow::Result<DeadLetter> {
        let message_id = message.message_id.clone().unwrap_or_default();
        let body = message.body.clone().unwrap_or_default();
        let capture_id = capture_id_of(&body).unwrap_or_else(|| message_id.clone());
        let receives = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);

        let record = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("capture#{capture_id}")))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("reading the record of capture {capture_id}"))?
            .item;
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
}

/// The body's `captureId`, when it is a JSON object that names one.
pub fn capture_id_of(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value.get("captureId")?.as_str().map(str::to_owned)
}

/// The body to redrive: unchanged when it names a capture id (or is no JSON object, which the
/// submitter records as invalid under its new message id), else with `captureId` set to the
/// original message id. Returns whether a capture id was added.
pub fn keyed_body(body: &str, message_id: &str) -> (String, bool) {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut fields)) if !fields.contains_key("captureId") => {
            fields.insert("captureId".into(), Value::String(message_id.to_owned()));
            (Value::Object(fields).to_string(), true)
        }
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
        (_, None) => "no attempt reached PeekShot: the message found no pace slot or another \
                      attempt held the capture each time it was received"
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

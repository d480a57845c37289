//! The capture queue, as the submitter sees it: postponing the messages it keeps, and sending
//! again the ones the pace deferred.
//!
//! A kept message would otherwise come back after the queue's visibility timeout, the same for
//! every failure. Setting each message's visibility from the retry policy gives transient
//! failures exponential backoff with jitter and honours PeekShot's `Retry-After`.
//!
//! A deferred message was never tried, so it should not use up one of its `maxReceiveCount`
//! receives, as a postponed one does: it is sent again as a new message, delayed until its
//! pace slot is due, and the original is let go. Its body carries its capture id, so the
//! capture keeps its record, and the message attribute [`FIRST_MESSAGE_ID_ATTRIBUTE`] carries
//! the id its producer was given, by which the submitter keeps naming it. The producer's own
//! message attributes travel with it unchanged ([`producer_attributes`]). SQS allows ten
//! attributes to a message; one that already has ten, leaving no room for ours, is postponed
//! like a kept message instead, and so is one whose attributes cannot be sent again as they
//! came: nothing of a message is dropped to save it a receive.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::sqs::SqsMessageAttribute;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::BuildError;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use tracing::{info, warn};

/// The message attribute of a message sent again by the submitter (or redriven by an
/// operator) that holds the message id its producer was given.
pub const FIRST_MESSAGE_ID_ATTRIBUTE: &str = "firstMessageId";

/// SQS delays a new message by at most 15 minutes.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// `ChangeMessageVisibilityBatch` and `SendMessageBatch` take at most ten entries.
const SQS_BATCH_LIMIT: usize = 10;

/// SQS carries at most ten message attributes on one message.
const SQS_ATTRIBUTE_LIMIT: usize = 10;

/// One message to postpone.
#[derive(Debug, Clone)]
pub struct Postponement {
    /// The message id, used as the batch entry id and in logs.
    pub message_id: String,
    /// The receipt handle of this delivery.
    pub receipt_handle: String,
    /// How long the message stays hidden from now.
    pub delay: Duration,
}

/// One message to send again as a new one.
#[derive(Debug, Clone)]
pub struct Requeue {
    /// The original message's id, to report which were sent.
    pub message_id: String,
    /// The id its producer was given, carried in [`FIRST_MESSAGE_ID_ATTRIBUTE`].
    pub first_message_id: String,
    /// The body to send, its capture id written in.
    pub body: String,
    /// The producer's message attributes ([`producer_attributes`]), sent again unchanged.
    pub attributes: HashMap<String, MessageAttributeValue>,
    /// How long the new message stays hidden (at most 15 minutes).
    pub delay: Duration,
}

/// The capture queue.
#[derive(Debug, Clone)]
pub struct CaptureQueue {
    client: Client,
    url: String,
}

impl CaptureQueue {
    /// The queue at `url`, through the given SDK configuration.
    pub fn new(aws: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        Self {
            client: Client::new(aws),
            url: url.into(),
        }
    }

    /// Hides each message for its delay. Returns how many were postponed; a message whose
    /// change failed simply comes back after the queue's own visibility timeout, so failures
    /// are logged, not raised.
    pub async fn postpone(&self, postponements: &[Postponement]) -> usize {
        let mut postponed = 0;
        for chunk in postponements.chunks(SQS_BATCH_LIMIT) {
            let entries = chunk.iter().enumerate().map(|(index, p)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(&p.receipt_handle)
                    .visibility_timeout(i32::try_from(p.delay.as_secs()).unwrap_or(i32::MAX))
                    .build()
            });
            let entries: Result<Vec<_>, _> = entries.collect();
            let result = match entries {
                Ok(entries) => {
                    self.client
                        .change_message_visibility_batch()
                        .queue_url(&self.url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                }
                Err(problem) => {
                    warn!(%problem, "cannot build the visibility change");
                    continue;
                }
            };
            match result {
                Ok(answer) => {
                    postponed += answer.successful.len();
                    for failed in answer.failed {
                        let message_id = failed
                            .id
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| chunk.get(i))
                            .map_or("?", |p| p.message_id.as_str());
                        warn!(message_id, code = %failed.code, "message keeps the queue's visibility timeout");
                    }
                }
                Err(problem) => {
                    warn!(problem = %DisplayErrorContext(&problem), "visibility change failed; messages keep the queue's visibility timeout");
                }
            }
        }
        postponed
    }

    /// Sends each message again as a new one. Returns the ids of the originals that were
    /// sent; the others should be kept as they are. Failures are logged, not raised.
    pub async fn requeue(&self, requeues: &[Requeue]) -> HashSet<String> {
        let mut sent = HashSet::new();
        let (fitting, crowded): (Vec<&Requeue>, Vec<&Requeue>) = requeues
            .iter()
            .partition(|r| r.attributes.len() < SQS_ATTRIBUTE_LIMIT);
        for r in crowded {
            info!(
                message_id = %r.message_id,
                attributes = r.attributes.len(),
                "a deferred message has no room for the firstMessageId attribute; it is postponed instead"
            );
        }
        for chunk in fitting.chunks(SQS_BATCH_LIMIT) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(index, r)| {
                    let mut attributes = r.attributes.clone();
                    attributes.insert(
                        FIRST_MESSAGE_ID_ATTRIBUTE.to_owned(),
                        first_id(&r.first_message_id)?,
                    );
                    SendMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .message_body(&r.body)
                        .set_message_attributes(Some(attributes))
                        .delay_seconds(
                            i32::try_from(r.delay.min(MAX_DELAY).as_secs()).unwrap_or(900),
                        )
                        .build()
                })
                .collect();
            let entries = match entries {
                Ok(entries) => entries,
                Err(problem) => {
                    warn!(%problem, "cannot build the requeue");
                    continue;
                }
            };
            match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(answer) => {
                    for done in answer.successful {
                        if let Some(r) = done.id.parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                            sent.insert(r.message_id.clone());
                        }
                    }
                    for failed in answer.failed {
                        warn!(code = %failed.code, "a deferred message could not be sent again; it is postponed instead");
                    }
                }
                Err(problem) => {
                    warn!(problem = %DisplayErrorContext(&problem), "deferred messages could not be sent again; they are postponed instead");
                }
            }
        }
        sent
    }
}

/// The producer's message attributes of a received message, as values to send again: every
/// attribute but [`FIRST_MESSAGE_ID_ATTRIBUTE`], which the requeue writes itself. `None` when
/// one of them cannot be sent as it came (it has no data type, or neither a string nor a
/// binary value); such a message is postponed rather than sent again without it.
pub fn producer_attributes(
    attributes: &HashMap<String, SqsMessageAttribute>,
) -> Option<HashMap<String, MessageAttributeValue>> {
    attributes
        .iter()
        .filter(|(name, _)| name.as_str() != FIRST_MESSAGE_ID_ATTRIBUTE)
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

/// The attribute value that carries a first message id.
pub fn first_id(message_id: &str) -> Result<MessageAttributeValue, BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(message_id)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn producer_attributes_are_carried_as_they_came_without_our_own() {
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
            (
                FIRST_MESSAGE_ID_ATTRIBUTE.to_owned(),
                attribute(Some("String"), Some("m-0"), None),
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
        assert!(!carried.contains_key(FIRST_MESSAGE_ID_ATTRIBUTE));
    }

    #[test]
    fn an_attribute_that_cannot_be_sent_again_keeps_the_message_from_being_requeued() {
        let no_type = HashMap::from([("a".to_owned(), attribute(None, Some("x"), None))]);
        let no_value = HashMap::from([("a".to_owned(), attribute(Some("String"), None, None))]);

        assert!(producer_attributes(&no_type).is_none());
        assert!(producer_attributes(&no_value).is_none());
        assert_eq!(producer_attributes(&HashMap::new()), Some(HashMap::new()));
    }
}

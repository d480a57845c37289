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
//! message attributes travel with it unchanged. SQS allows ten attributes to a message; one
//! that already has ten is sent again without ours, which costs only the producer's id in
//! later log lines: its body names its capture id, and its record keeps the first message id.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::BuildError;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, SendMessageBatchRequestEntry};
/// The SDK's types a caller needs to build [`Requeue::attributes`].
pub use aws_sdk_sqs::{primitives::Blob, types::MessageAttributeValue};
use tracing::{debug, warn};

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
    /// The producer's message attributes, sent again unchanged (a [`FIRST_MESSAGE_ID_ATTRIBUTE`]
    /// among them is replaced).
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
                        let message_id =
                            entry_of(chunk, &failed.id).map_or("?", |p| p.message_id.as_str());
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
        for chunk in requeues.chunks(SQS_BATCH_LIMIT) {
            let entries: Result<Vec<_>, _> = chunk
                .iter()
                .enumerate()
                .map(|(index, r)| {
                    let mut attributes = r.attributes.clone();
                    attributes.remove(FIRST_MESSAGE_ID_ATTRIBUTE);
                    if attributes.len() < SQS_ATTRIBUTE_LIMIT {
                        attributes.insert(
                            FIRST_MESSAGE_ID_ATTRIBUTE.to_owned(),
                            first_id(&r.first_message_id)?,
                        );
                    } else {
                        debug!(
                            message_id = %r.message_id,
                            "no room for firstMessageId among the producer's attributes"
                        );
                    }
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
                        if let Some(r) = entry_of(chunk, &done.id) {
                            sent.insert(r.message_id.clone());
                        }
                    }
                    for failed in answer.failed {
                        let message_id =
                            entry_of(chunk, &failed.id).map_or("?", |r| r.message_id.as_str());
                        warn!(message_id, code = %failed.code, "a deferred message could not be sent again; it is postponed instead");
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

/// The entry a batch answer names by its id, which is the entry's index in `chunk`.
fn entry_of<'a, T>(chunk: &'a [T], id: &str) -> Option<&'a T> {
    id.parse::<usize>().ok().and_then(|index| chunk.get(index))
}

/// The attribute value that carries a first message id.
pub fn first_id(message_id: &str) -> Result<MessageAttributeValue, BuildError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(message_id)
        .build()
}

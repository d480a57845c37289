//! The capture queue, as the submitter sees it: postponing the messages it keeps.
//!
//! A kept message would otherwise come back after the queue's visibility timeout, the same for
//! every failure. Setting each message's visibility from the retry policy gives transient
//! failures exponential backoff with jitter and honours PeekShot's `Retry-After`.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use tracing::warn;

/// `ChangeMessageVisibilityBatch` takes at most ten entries.
const SQS_BATCH_LIMIT: usize = 10;

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
}

//! The reconciler's listing: captures SUBMITTED before a cutoff, from the sparse
//! [`AWAITING_INDEX`] of the capture table, without scanning the table.
//!
//! Only SUBMITTED capture items carry the index's keys: `awaitingShard` (one of
//! [`AWAITING_SHARDS`] values, from [`crate::dynamo::awaiting_shard`]) and `submittedAtMs`
//! (epoch milliseconds). The store writes both when it stores a request id and removes both
//! when the capture finishes, so the index holds exactly the captures still waiting for a
//! webhook. One query per shard with `submittedAtMs < :cutoff`, oldest first and paginated,
//! finds them; the shards' answers are merged and the oldest `limit` kept.
//!
//! The index is eventually consistent: it may still list a capture that finished a moment ago.
//! That costs one read at PeekShot and one conditional write that changes nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use capture::{AwaitingCapture, CaptureId, CaptureStatus, Failure, RequestId, StaleCaptures};
use tracing::warn;

use crate::dynamo::{AWAITING_INDEX, AWAITING_SHARDS, DynamoStore};

type Item = HashMap<String, AttributeValue>;

#[async_trait]
impl StaleCaptures for DynamoStore {
    async fn submitted_before(
        &self,
        cutoff: SystemTime,
        limit: usize,
    ) -> Result<Vec<AwaitingCapture>, Failure> {
        let cutoff_ms = cutoff
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();

        let mut found = Vec::new();
        for shard in 0..AWAITING_SHARDS {
            found.extend(
                self.awaiting_in_shard(&shard.to_string(), cutoff_ms, limit)
                    .await?,
            );
        }
        found.sort_by_key(|capture| capture.submitted_at);
        found.truncate(limit);
        Ok(found)
    }
}

impl DynamoStore {
    /// The oldest `limit` captures of one shard submitted before `cutoff_ms`, page by page.
    async fn awaiting_in_shard(
        &self,
        shard: &str,
        cutoff_ms: u128,
        limit: usize,
    ) -> Result<Vec<AwaitingCapture>, Failure> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        while found.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(AWAITING_INDEX)
                .key_condition_expression("awaitingShard = :shard AND submittedAtMs < :cutoff")
                .expression_attribute_values(":shard", AttributeValue::S(shard.to_owned()))
                .expression_attribute_values(":cutoff", AttributeValue::N(cutoff_ms.to_string()))
                .projection_expression("captureId, requestId, submittedAtMs, #status")
                .expression_attribute_names("#status", "status")
                .scan_index_forward(true)
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|err| classify_query(shard, err))?;

            found.extend(page.items().iter().filter_map(awaiting_capture));
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }
}

/// The capture an index item names. An item that is not SUBMITTED any more (the index lags)
/// or whose attributes cannot be read is skipped; the latter is logged, since only a bug or a
/// hand edit can produce it.
fn awaiting_capture(item: &Item) -> Option<AwaitingCapture> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    if text("status").is_some_and(|status| status != CaptureStatus::Submitted.as_str()) {
        return None;
    }

    let capture_id = text("captureId").and_then(|id| CaptureId::parse(id).ok());
    let request_id = text("requestId").and_then(|id| RequestId::parse(id).ok());
    let submitted_ms: Option<u64> = item
        .get("submittedAtMs")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok());
    match (capture_id, request_id, submitted_ms) {
        (Some(capture_id), Some(request_id), Some(ms)) => Some(AwaitingCapture {
            capture_id,
            request_id,
            submitted_at: UNIX_EPOCH + Duration::from_millis(ms),
        }),
        _ => {
            warn!(
                capture_id = text("captureId").unwrap_or("<none>"),
                request_id = text("requestId").unwrap_or("<none>"),
                "an awaiting-webhook index item has no usable capture id, request id or \
                 submission time; skipped"
            );
            None
        }
    }
}

/// Classifies a failed query as the store classifies every DynamoDB error: a missing table or
/// index (DynamoDB calls the latter a `ValidationException`) or missing permissions are the
/// deployment's fault, everything else (throttling, 5xx, timeouts) is transient.
fn classify_query<E, R>(shard: &str, err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned);
    let reason = format!(
        "DynamoDB query of index {AWAITING_INDEX} (shard {shard}) failed: {}",
        DisplayErrorContext(&err)
    );
    match code.as_deref() {
        Some(
            "ResourceNotFoundException"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "MissingAuthenticationTokenException"
            | "ValidationException",
        ) => Failure::deployment(reason),
        _ => Failure::transient(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    #[test]
    fn an_index_item_names_its_capture_request_id_and_submission_time() {
        let found = awaiting_capture(&item(&[
            ("pk", s("capture#c-1")),
            ("captureId", s("c-1")),
            ("requestId", s("100001")),
            ("status", s("SUBMITTED")),
            ("submittedAtMs", AttributeValue::N("1764780000123".into())),
        ]));
        assert_eq!(
            found,
            Some(AwaitingCapture {
                capture_id: CaptureId::parse("c-1").unwrap(),
                request_id: RequestId::parse("100001").unwrap(),
                submitted_at: UNIX_EPOCH + Duration::from_millis(1_764_780_000_123),
            })
        );
    }

    #[test]
    fn finished_or_unreadable_items_are_skipped() {
        let finished = item(&[
            ("captureId", s("c-1")),
            ("requestId", s("1")),
            ("status", s("COMPLETE")),
            ("submittedAtMs", AttributeValue::N("1".into())),
        ]);
        let no_time = item(&[("captureId", s("c-1")), ("requestId", s("1"))]);
        let bad_id = item(&[
            ("captureId", s("c/1")),
            ("requestId", s("1")),
            ("submittedAtMs", AttributeValue::N("1".into())),
        ]);
        for item in [finished, no_time, bad_id] {
            assert_eq!(awaiting_capture(&item), None, "{item:?}");
        }
    }
}

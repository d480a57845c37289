//! The capture records in one DynamoDB table, keyed by `pk` alone.
//!
//! Two kinds of item share the table:
//!
//! - `capture#<captureId>`: the record a producer cares about (status, URL, options, request
//!   id, file URL or error, attempts, timestamps, metadata).
//! - `request#<requestId>`: the meeting point of the submitter and the webhook. The submitter
//!   writes the capture id into it once PeekShot answers; the webhook writes the outcome into
//!   it when PeekShot calls. Both are single atomic updates that return the item as it is
//!   afterwards, so whichever side writes second sees the other's half and applies the outcome
//!   to the capture. A webhook that arrives first is therefore never lost, and finding a
//!   capture from a request id is a strongly consistent `GetItem`-style update, not a query on
//!   an eventually consistent index.
//!
//! Every state change is a conditional write whose condition is the lifecycle's table of
//! allowed predecessors (`CaptureStatus::predecessors`), so a record never moves backwards,
//! whatever order deliveries and webhooks arrive in.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use capture::{
    CaptureId, CaptureRequest, CaptureStatus, CaptureStore, Claim, CreatedCapture, Failure,
    InvalidRequest, Outcome, Rejection, RequestId, Settlement,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::warn;

type Item = HashMap<String, AttributeValue>;

/// How long a claim keeps other attempts from creating the same capture. It must outlast one
/// submitter invocation (30 s in the template) so that a live attempt is never overtaken; an
/// attempt that died leaves a claim that simply expires.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// The sparse index that lists SUBMITTED captures by submission time, for the reconciler: only
/// SUBMITTED captures carry its key attributes (`awaitingShard`, `submittedAtMs`), and leaving
/// SUBMITTED removes them. The partition key is spread over [`AWAITING_SHARDS`] values so that
/// no single partition takes every write.
pub const AWAITING_INDEX: &str = "awaiting-webhook";
/// How many partition key values [`AWAITING_INDEX`] spreads SUBMITTED captures over.
pub const AWAITING_SHARDS: u32 = 4;

/// The [`AWAITING_INDEX`] partition a capture belongs to.
pub fn awaiting_shard(capture_id: &str) -> String {
    let digest = Sha256::digest(capture_id.as_bytes());
    (u32::from(digest[0]) % AWAITING_SHARDS).to_string()
}

/// Longest part of an invalid message body kept on its FAILED record, so that nothing a
/// producer sent is lost while the item stays far below DynamoDB's 400 KB limit.
pub const MAX_KEPT_BODY_BYTES: usize = 16 * 1024;

/// Key of a capture item.
pub fn capture_key(capture_id: &str) -> String {
    format!("capture#{capture_id}")
}

/// Key of the counter of ambiguous creates: captures created again although an earlier create
/// may have succeeded. Operators read it with `GetItem`; it is never reset.
pub const AMBIGUOUS_CREATES_KEY: &str = "counter#ambiguous-creates";

/// Key of a request item.
pub fn request_key(request_id: &str) -> String {
    format!("request#{request_id}")
}

/// The DynamoDB-backed [`CaptureStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    retention: Duration,
}

impl DynamoStore {
    /// A store over `table`; items expire `retention` after they are first written.
    pub fn new(aws: &aws_config::SdkConfig, table: impl Into<String>, retention: Duration) -> Self {
        Self::with_client(Client::new(aws), table, retention)
    }

    /// The same over a client of the caller's (one with its own interceptors, say).
    pub fn with_client(client: Client, table: impl Into<String>, retention: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    fn key(pk: String) -> (String, AttributeValue) {
        ("pk".to_owned(), AttributeValue::S(pk))
    }

    fn expires_at(&self, now: SystemTime) -> AttributeValue {
        number(
            (now + self.retention)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        )
    }

    /// Moves a capture to the final status of `outcome`, if it is still open. Used by both the
    /// webhook and the submitter, whichever sees both halves of the request item first.
    async fn finish_capture(
        &self,
        capture_id: &str,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<Settlement, Failure> {
        let now = SystemTime::now();
        let final_status = outcome.status();
        let mut update = Update::new(
            "SET #status = :final, requestId = if_not_exists(requestId, :rid), \
             completedAt = :now, updatedAt = :now",
        );
        update.name("#status", "status");
        update.value(":final", s(final_status.as_str()));
        update.value(":rid", s(request_id.as_str()));
        update.value(":now", s(&rfc3339(now)));
        match outcome {
            Outcome::Complete {
                file_url,
                credits,
                duration_seconds,
            } => {
                update.set_optional("fileUrl", file_url.as_deref().map(s));
                update.set_optional("creditsCharged", credits.map(float));
                update.set_optional("durationSeconds", duration_seconds.map(float));
            }
            Outcome::Failed { reason } => {
                update.set_optional("error", Some(s(reason)));
                update.set_optional("errorKind", Some(s("peekshot-failed")));
            }
        }
        update.remove("claimUntil");
        update.remove("awaitingShard");
        update.remove("submittedAtMs");
        let condition = update.status_in(CaptureStatus::predecessors(final_status));

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(capture_id)))
            .update_expression(update.expression())
            .condition_expression(format!("attribute_exists(pk) AND {condition}"))
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;

        match result {
            Ok(_) => Ok(Settlement::Applied(final_status)),
            Err(err) => match conditional_failure_item(&err) {
                Some(Some(old)) => Ok(Settlement::AlreadyFinal(
                    status_of(&old).unwrap_or(final_status),
                )),
                Some(None) => {
                    warn!(
                        capture_id,
                        "request id points at a capture that no longer exists"
                    );
                    Ok(Settlement::Parked)
                }
                None => Err(classify("finish capture", err)),
            },
        }
    }

    /// Links `created` to the capture on its request item, then marks the capture SUBMITTED,
    /// or finishes it when the webhook parked an outcome there first. `None` when the request
    /// id already belongs to another capture (nothing is changed then).
    async fn link_request_id(
        &self,
        capture_id: &CaptureId,
        created: &CreatedCapture,
    ) -> Result<Option<CaptureStatus>, Failure> {
        let now = SystemTime::now();
        let request_id = &created.request_id;

        let linked = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&request_key(request_id.as_str())))
            .update_expression(
                "SET #kind = :kind, requestId = :rid, captureId = :cid, linkedAt = :now, \
                 expiresAt = if_not_exists(expiresAt, :exp)",
            )
            .condition_expression("attribute_not_exists(captureId) OR captureId = :cid")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":kind", s("request"))
            .expression_attribute_values(":rid", s(request_id.as_str()))
            .expression_attribute_values(":cid", s(capture_id.as_str()))
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .expression_attribute_values(":exp", self.expires_at(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let request_item = match linked {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(err) if is_conditional_failure(&err) => return Ok(None),
            Err(err) => return Err(classify("link request id", err)),
        };

        if let Some(outcome) = parked_outcome(&request_item)? {
            return match self
                .finish_capture(capture_id.as_str(), request_id, &outcome)
                .await?
            {
                Settlement::Applied(status) | Settlement::AlreadyFinal(status) => Ok(Some(status)),
                Settlement::Parked => Ok(Some(CaptureStatus::Queued)),
            };
        }

        let mut update = Update::new(
            "SET #status = :submitted, requestId = :rid, submittedAt = :now, updatedAt = :now, \
             awaitingShard = :shard, submittedAtMs = :nowms",
        );
        update.name("#status", "status");
        update.value(":submitted", s(CaptureStatus::Submitted.as_str()));
        update.value(":rid", s(request_id.as_str()));
        update.value(":now", s(&rfc3339(now)));
        update.value(":shard", s(&awaiting_shard(capture_id.as_str())));
        update.value(":nowms", number(epoch_millis(now)));
        update.set_optional("creditsRequired", created.credits.map(float));
        update.remove("claimUntil");
        let condition = update.status_in(CaptureStatus::predecessors(CaptureStatus::Submitted));

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(capture_id.as_str())))
            .update_expression(update.expression())
            .condition_expression(format!("{condition} AND attribute_not_exists(requestId)"))
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(CaptureStatus::Submitted)),
            Err(err) => match conditional_failure_item(&err) {
                Some(old) => Ok(Some(
                    old.as_ref()
                        .and_then(status_of)
                        .unwrap_or(CaptureStatus::Submitted),
                )),
                None => Err(classify("store request id", err)),
            },
        }
    }

    /// Keeps, on the record, the earliest moment from which an abandoned attempt may have
    /// created the capture, in case this attempt dies too.
    async fn remember_maybe_created(
        &self,
        capture_id: &CaptureId,
        since_ms: u64,
    ) -> Result<(), Failure> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(capture_id.as_str())))
            .update_expression(
                "SET maybeCreatedSinceMs = if_not_exists(maybeCreatedSinceMs, :since)",
            )
            .expression_attribute_values(":since", number(since_ms))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| classify("remember a possible create", err))
    }
}

#[async_trait]
impl CaptureStore for DynamoStore {
    async fn record_invalid(
        &self,
        invalid: &InvalidRequest,
        message_id: &str,
        body: &str,
    ) -> Result<Rejection, Failure> {
        let now = SystemTime::now();
        let stamp = s(&rfc3339(now));
        let mut item: Item = HashMap::from([
            Self::key(capture_key(invalid.capture_id.as_str())),
            ("kind".into(), s("capture")),
            ("captureId".into(), s(invalid.capture_id.as_str())),
            ("status".into(), s(CaptureStatus::Failed.as_str())),
            ("error".into(), s(&invalid.reason)),
            ("errorKind".into(), s("invalid-request")),
            ("messageId".into(), s(message_id)),
            ("attempts".into(), number(1)),
            ("receivedAt".into(), stamp.clone()),
            ("completedAt".into(), stamp.clone()),
            ("updatedAt".into(), stamp),
            ("expiresAt".into(), self.expires_at(now)),
        ]);
        item.insert(
            "rawBody".into(),
            s(truncate_utf8(body, MAX_KEPT_BODY_BYTES)),
        );

        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Rejection::Recorded),
            Err(err) => match conditional_failure_item(&err) {
                Some(old)
                    if old.as_ref().and_then(|o| text_of(o, "messageId")) == Some(message_id) =>
                {
                    Ok(Rejection::AlreadyRecorded)
                }
                Some(_) => Ok(Rejection::CaptureIdTaken),
                None => Err(classify("record invalid request", err)),
            },
        }
    }

    async fn claim(&self, request: &CaptureRequest, message_id: &str) -> Result<Claim, Failure> {
        let now = SystemTime::now();
        let fingerprint = fingerprint(request);
        let options = serde_dynamo::to_attribute_value(&request.options)
            .map_err(|e| Failure::permanent(format!("options cannot be stored: {e}")))?;
        let metadata = serde_dynamo::to_attribute_value(&request.metadata)
            .map_err(|e| Failure::permanent(format!("metadata cannot be stored: {e}")))?;

        let mut update = Update::new(
            "SET #kind = :kind, captureId = :cid, #url = :url, #options = :options, \
             metadata = :metadata, fingerprint = :fp, #status = :queued, claimUntil = :lease, \
             claimedAtMs = :nowms, claimToken = :token, \
             priorClaimUntil = if_not_exists(claimUntil, :zero), \
             priorClaimedAtMs = if_not_exists(claimedAtMs, :zero), \
             messageId = if_not_exists(messageId, :mid), \
             receivedAt = if_not_exists(receivedAt, :now), \
             expiresAt = if_not_exists(expiresAt, :exp), updatedAt = :now \
             ADD attempts :one",
        );
        update.name("#kind", "kind");
        update.name("#url", "url");
        update.name("#options", "options");
        update.name("#status", "status");
        update.value(":kind", s("capture"));
        update.value(":cid", s(request.capture_id.as_str()));
        update.value(":url", s(request.url.as_str()));
        update.value(":options", options);
        update.value(":metadata", metadata);
        update.value(":fp", s(&fingerprint));
        update.value(":queued", s(CaptureStatus::Queued.as_str()));
        update.value(":lease", number(epoch_millis(now + CLAIM_LEASE)));
        update.value(":nowms", number(epoch_millis(now)));
        update.value(":mid", s(message_id));
        let token = claim_token(message_id, now);
        update.value(":token", s(&token));
        update.value(":now", s(&rfc3339(now)));
        update.value(":exp", self.expires_at(now));
        update.value(":one", number(1));
        update.value(":zero", number(0));

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(request.capture_id.as_str())))
            .update_expression(update.expression())
            .condition_expression(
                "attribute_not_exists(pk) OR (#status = :queued AND fingerprint = :fp \
                 AND attribute_not_exists(requestId) \
                 AND (attribute_not_exists(claimUntil) OR claimUntil < :nowms))",
            )
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;

        let claim = match result {
            Ok(out) => claimed(out.attributes.as_ref()),
            Err(err) => match conditional_failure_item(&err) {
                // The SDK sent the claim again after an answer that came too late: the first
                // one took the lease, and the retry finds it. The claim is this attempt's.
                Some(Some(old)) if text_of(&old, "claimToken") == Some(token.as_str()) => {
                    reclaimed_own(&old)
                }
                Some(old) => return Ok(why_not_claimed(old.as_ref(), &fingerprint, message_id)),
                None => return Err(classify("claim capture", err)),
            },
        };
        if let Claim::Claimed {
            maybe_created_since_ms: Some(since),
            ..
        } = claim
        {
            self.remember_maybe_created(&request.capture_id, since)
                .await?;
        }
        Ok(claim)
    }

    async fn release(&self, capture_id: &CaptureId, failure: &Failure) -> Result<(), Failure> {
        let now = SystemTime::now();
        let expression = if failure.maybe_created {
            "SET claimUntil = :zero, lastError = :err, updatedAt = :now, \
             maybeCreatedSinceMs = if_not_exists(maybeCreatedSinceMs, claimedAtMs)"
        } else {
            "SET claimUntil = :zero, lastError = :err, updatedAt = :now"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(capture_id.as_str())))
            .update_expression(expression)
            .condition_expression("#status = :queued AND attribute_not_exists(requestId)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(
                ":err",
                s(&format!("{}: {}", failure.class, failure.reason)),
            )
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .expression_attribute_values(":queued", s(CaptureStatus::Queued.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Ok(()),
            Err(err) => Err(classify("release claim", err)),
        }
    }

    async fn fail_unsubmitted(&self, capture_id: &CaptureId, reason: &str) -> Result<(), Failure> {
        let now = rfc3339(SystemTime::now());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(capture_id.as_str())))
            .update_expression(
                "SET #status = :failed, #error = :reason, errorKind = :kind, \
                 completedAt = :now, updatedAt = :now REMOVE claimUntil",
            )
            .condition_expression("#status = :queued AND attribute_not_exists(requestId)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s(CaptureStatus::Failed.as_str()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":kind", s("peekshot-rejected"))
            .expression_attribute_values(":now", s(&now))
            .expression_attribute_values(":queued", s(CaptureStatus::Queued.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Ok(()),
            Err(err) => Err(classify("fail capture", err)),
        }
    }

    async fn store_request_id(
        &self,
        capture_id: &CaptureId,
        created: &CreatedCapture,
    ) -> Result<CaptureStatus, Failure> {
        self.link_request_id(capture_id, created)
            .await?
            .ok_or_else(|| {
                Failure::transient(format!(
                    "request id {} is already linked to another capture",
                    created.request_id
                ))
            })
    }

    async fn adopt_request_id(
        &self,
        capture_id: &CaptureId,
        created: &CreatedCapture,
    ) -> Result<Option<CaptureStatus>, Failure> {
        self.link_request_id(capture_id, created).await
    }

    async fn note_ambiguous_create(&self, capture_id: &CaptureId) -> Result<(), Failure> {
        let now = SystemTime::now();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&capture_key(capture_id.as_str())))
            .update_expression("SET ambiguousCreate = :yes, updatedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .send()
            .await
            .map_err(|err| classify("note ambiguous create", err))?;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(AMBIGUOUS_CREATES_KEY))
            .update_expression("SET #kind = :kind, updatedAt = :now ADD #count :one")
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":kind", s("counter"))
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .expression_attribute_values(":one", number(1))
            .send()
            .await
            .map_err(|err| classify("count ambiguous create", err))?;
        warn!(capture_id = capture_id.as_str(), "ambiguous create counted");
        Ok(())
    }

    async fn record_outcome(
        &self,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<Settlement, Failure> {
        let now = SystemTime::now();
        let stored = serde_dynamo::to_attribute_value(outcome)
            .map_err(|e| Failure::permanent(format!("outcome cannot be stored: {e}")))?;

        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&request_key(request_id.as_str())))
            .update_expression(
                "SET #kind = :kind, requestId = :rid, outcome = if_not_exists(outcome, :outcome), \
                 outcomeAt = if_not_exists(outcomeAt, :now), \
                 expiresAt = if_not_exists(expiresAt, :exp)",
            )
            .expression_attribute_names("#kind", "kind")
            .expression_attribute_values(":kind", s("request"))
            .expression_attribute_values(":rid", s(request_id.as_str()))
            .expression_attribute_values(":outcome", stored)
            .expression_attribute_values(":now", s(&rfc3339(now)))
            .expression_attribute_values(":exp", self.expires_at(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| classify("record outcome", err))?;

        let item = out.attributes.unwrap_or_default();
        let Some(capture_id) = item.get("captureId").and_then(|v| v.as_s().ok()) else {
            return Ok(Settlement::Parked);
        };
        let first_outcome = parked_outcome(&item)?.unwrap_or_else(|| outcome.clone());
        self.finish_capture(capture_id, request_id, &first_outcome)
            .await
    }
}

/// Builds an update expression with optional `SET` clauses and a `REMOVE` clause.
struct Update {
    set: String,
    remove: Vec<&'static str>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn new(set: &str) -> Self {
        Self {
            set: set.to_owned(),
            remove: Vec::new(),
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    fn name(&mut self, placeholder: &str, attribute: &str) {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
    }

    fn value(&mut self, placeholder: &str, value: AttributeValue) {
        self.values.insert(placeholder.to_owned(), value);
    }

    /// Adds `attribute = value` to the `SET` clause when there is a value.
    fn set_optional(&mut self, attribute: &str, value: Option<AttributeValue>) {
        if let Some(value) = value {
            let name = format!("#{attribute}");
            let placeholder = format!(":{attribute}");
            self.set = format!("{}, {name} = {placeholder}", self.set);
            self.names.insert(name, attribute.to_owned());
            self.values.insert(placeholder, value);
        }
    }

    fn remove(&mut self, attribute: &'static str) {
        self.remove.push(attribute);
    }

    /// A condition that the record's status is one of `statuses`, with its values bound.
    fn status_in(&mut self, statuses: Vec<CaptureStatus>) -> String {
        self.name("#status", "status");
        let placeholders: Vec<String> = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| {
                let placeholder = format!(":from{i}");
                self.values.insert(placeholder.clone(), s(status.as_str()));
                placeholder
            })
            .collect();
        format!("#status IN ({})", placeholders.join(", "))
    }

    fn expression(&self) -> String {
        if self.remove.is_empty() {
            self.set.clone()
        } else {
            format!("{} REMOVE {}", self.set, self.remove.join(", "))
        }
    }
}

/// The claim this attempt got, from the item as it was before the claim (`None`: new).
///
/// An earlier attempt may have created the capture without storing its request id when it
/// said so on release (`maybeCreatedSinceMs`), or when it died holding the claim: a released
/// claim has `claimUntil` 0, a stored request id removes it, so a claim still set here (and
/// expired, or this claim would have failed) belongs to an attempt that never came back.
fn claimed(old: Option<&Item>) -> Claim {
    let Some(old) = old else {
        return Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        };
    };
    let numeric = |name: &str| -> Option<u64> { old.get(name)?.as_n().ok()?.parse().ok() };
    let attempt = numeric("attempts").map_or(1, |n| u32::try_from(n + 1).unwrap_or(u32::MAX));
    let abandoned = numeric("claimUntil").is_some_and(|until| until > 0);
    let maybe_created_since_ms = numeric("maybeCreatedSinceMs")
        .or_else(|| abandoned.then(|| numeric("claimedAtMs").unwrap_or(0)));
    Claim::Claimed {
        attempt,
        maybe_created_since_ms,
    }
}

/// A claim whose first write succeeded but whose answer came too late, recognised by its
/// token on the item that write left. The item as it was before is gone, but that write kept
/// what [`claimed`] reads of it: the lease and its start as `priorClaimUntil` and
/// `priorClaimedAtMs` (DynamoDB evaluates every operand of an update against the item before
/// it), and the attempt count before its increment. So the answer is the one the first write
/// would have had.
fn reclaimed_own(item: &Item) -> Claim {
    let attempts: Option<u64> = item
        .get("attempts")
        .and_then(|n| n.as_n().ok()?.parse().ok());
    let mut before = item.clone();
    match attempts {
        Some(n) if n > 1 => before.insert("attempts".to_owned(), number(n - 1)),
        _ => before.remove("attempts"),
    };
    for (name, prior) in [
        ("claimUntil", "priorClaimUntil"),
        ("claimedAtMs", "priorClaimedAtMs"),
    ] {
        match before.remove(prior) {
            Some(value) => before.insert(name.to_owned(), value),
            None => before.remove(name),
        };
    }
    claimed(Some(&before))
}

/// A value no other claim will write: the message id, the time and a per-process count.
fn claim_token(message_id: &str, now: SystemTime) -> String {
    static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{message_id}/{nanos}/{count}/{}", std::process::id())
}

/// Why a claim's condition failed, from the item as it was. A record of another request is a
/// conflict whatever its status: only the same request's record can make this message a
/// duplicate. The same request is the same fingerprint (URL and options), or the message that
/// wrote the record coming back, whose fingerprint may differ only if its computation changed
/// between two releases.
fn why_not_claimed(old: Option<&Item>, fingerprint: &str, message_id: &str) -> Claim {
    let Some(old) = old else {
        return Claim::HeldElsewhere;
    };
    let same_request = text_of(old, "fingerprint") == Some(fingerprint)
        || text_of(old, "messageId") == Some(message_id);
    if !same_request {
        return Claim::Conflict;
    }
    match status_of(old) {
        Some(status) if status != CaptureStatus::Queued => Claim::AlreadyHandled(status),
        _ if old.contains_key("requestId") => Claim::AlreadyHandled(CaptureStatus::Submitted),
        _ => Claim::HeldElsewhere,
    }
}

/// The outcome a webhook parked on a request item, if any.
fn parked_outcome(item: &Item) -> Result<Option<Outcome>, Failure> {
    let Some(stored) = item.get("outcome") else {
        return Ok(None);
    };
    serde_dynamo::from_attribute_value(stored.clone())
        .map(Some)
        .map_err(|e| Failure::permanent(format!("stored outcome is unreadable: {e}")))
}

fn text_of<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

fn status_of(item: &Item) -> Option<CaptureStatus> {
    item.get("status")?.as_s().ok()?.parse().ok()
}

/// Identifies a request's content, so a capture id reused for another page is noticed.
fn fingerprint(request: &CaptureRequest) -> String {
    let options = serde_json::to_string(&request.options).unwrap_or_default();
    let digest = Sha256::new()
        .chain_update(request.url.as_str())
        .chain_update([0])
        .chain_update(options)
        .finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `Some(old item)` when the error is a failed condition (the old item, if DynamoDB returned
/// one), `None` for any other error.
pub(crate) fn conditional_failure_item<E, R>(err: &SdkError<E, R>) -> Option<Option<Item>>
where
    E: ProvideErrorMetadata + ConditionalItem,
{
    let service = err.as_service_error()?;
    if service.code() == Some("ConditionalCheckFailedException") {
        Some(service.old_item())
    } else {
        None
    }
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// Gives access to the old item a failed conditional update returns.
pub(crate) trait ConditionalItem {
    fn old_item(&self) -> Option<Item>;
}

impl ConditionalItem for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn old_item(&self) -> Option<Item> {
        match self {
            Self::ConditionalCheckFailedException(e) => e.item().cloned(),
            _ => None,
        }
    }
}

impl ConditionalItem for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn old_item(&self) -> Option<Item> {
        match self {
            Self::ConditionalCheckFailedException(e) => e.item().cloned(),
            _ => None,
        }
    }
}

/// Classifies a DynamoDB error: missing table or permissions are the deployment's fault,
/// everything else (throttling, 5xx, timeouts) is transient.
pub(crate) fn classify<E, R>(operation: &str, err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned);
    let reason = format!("DynamoDB {operation} failed: {}", DisplayErrorContext(&err));
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

pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(crate) fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn float(value: f64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    /// The item a claim leaves, as its SDK retry finds it.
    fn after_claim(attempts: u64, prior_until: u64, prior_at: u64) -> Item {
        item(&[
            ("attempts", number(attempts)),
            ("claimUntil", number(9_000)),
            ("claimedAtMs", number(8_000)),
            ("priorClaimUntil", number(prior_until)),
            ("priorClaimedAtMs", number(prior_at)),
        ])
    }

    #[test]
    fn a_first_claim_retried_by_the_sdk_is_its_own_first_attempt() {
        assert_eq!(
            reclaimed_own(&after_claim(1, 0, 0)),
            Claim::Claimed {
                attempt: 1,
                maybe_created_since_ms: None
            }
        );
    }

    #[test]
    fn a_retried_claim_after_a_clean_release_knows_no_create_happened() {
        assert_eq!(
            reclaimed_own(&after_claim(3, 0, 5_000)),
            Claim::Claimed {
                attempt: 3,
                maybe_created_since_ms: None
            }
        );
    }

    #[test]
    fn a_retried_claim_after_an_abandoned_lease_looks_for_a_create_since_that_claim() {
        assert_eq!(
            reclaimed_own(&after_claim(2, 7_000, 5_000)),
            Claim::Claimed {
                attempt: 2,
                maybe_created_since_ms: Some(5_000)
            }
        );
        let mut said_so = after_claim(3, 0, 5_000);
        said_so.insert("maybeCreatedSinceMs".into(), number(4_000));
        assert_eq!(
            reclaimed_own(&said_so),
            Claim::Claimed {
                attempt: 3,
                maybe_created_since_ms: Some(4_000)
            }
        );
    }

    #[test]
    fn a_retried_claim_answers_as_its_first_write_would_have() {
        let before = item(&[
            ("attempts", number(2)),
            ("claimUntil", number(7_000)),
            ("claimedAtMs", number(5_000)),
        ]);
        assert_eq!(
            reclaimed_own(&after_claim(3, 7_000, 5_000)),
            claimed(Some(&before))
        );
    }

    #[test]
    fn claim_tokens_differ_for_every_claim() {
        let now = SystemTime::now();
        assert_ne!(claim_token("m-1", now), claim_token("m-1", now));
    }

    #[test]
    fn another_live_claim_of_the_same_request_is_held_elsewhere_and_another_request_conflicts() {
        let live = item(&[
            ("status", s("QUEUED")),
            ("fingerprint", s("fp")),
            ("messageId", s("m-1")),
        ]);
        assert_eq!(
            why_not_claimed(Some(&live), "fp", "m-2"),
            Claim::HeldElsewhere
        );
        assert_eq!(
            why_not_claimed(Some(&live), "other", "m-2"),
            Claim::Conflict
        );
        assert_eq!(
            why_not_claimed(Some(&live), "other", "m-1"),
            Claim::HeldElsewhere,
            "the message that wrote the record is its request"
        );
    }
}

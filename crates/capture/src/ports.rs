//! The two outside systems the capture domain talks to, as small traits: PeekShot
//! ([`ScreenshotApi`]) and the record store ([`CaptureStore`]). Adapters implement them; the
//! submit and webhook logic only sees these.
//!
//! Both report failures as a classified [`Failure`], so the caller decides between retrying,
//! failing the capture and flagging the deployment without knowing which system failed.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::lifecycle::{CaptureStatus, Outcome};
use crate::request::{CaptureId, CaptureRequest, InvalidRequest};

/// PeekShot's id for one capture. PeekShot sends an integer; one guide shows a string. Both are
/// kept as the same decimal string so a webhook finds what the submitter stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// Accepts 1 to 64 characters of `A-Z a-z 0-9 - _`: integers, UUIDs and opaque tokens.
    pub fn parse(value: &str) -> Result<Self, String> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(format!(
                "request id {value:?} must be 1 to 64 letters, digits, '-' or '_'"
            ))
        }
    }

    /// The id as stored and logged.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// PeekShot's answer to a create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedCapture {
    /// The id its webhook will name.
    pub request_id: RequestId,
    /// Credits the capture will cost, when PeekShot says.
    pub credits: Option<f64>,
}

/// PeekShot's create endpoint.
#[async_trait]
pub trait ScreenshotApi: Send + Sync {
    /// Asks PeekShot to capture `request`, giving up after `timeout`. A transient failure may
    /// have reached PeekShot anyway (a timeout after sending); callers must treat it as "maybe
    /// created".
    async fn create(
        &self,
        request: &CaptureRequest,
        timeout: Duration,
    ) -> Result<CreatedCapture, Failure>;

    /// Captures of this project and URL that PeekShot created at or after `since_ms` (epoch
    /// milliseconds), oldest first: the candidates for a create whose answer was lost.
    async fn find_created(
        &self,
        request: &CaptureRequest,
        since_ms: u64,
        timeout: Duration,
    ) -> Result<Vec<CreatedCapture>, Failure>;
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This attempt may create the capture at PeekShot; `attempt` counts from 1.
    Claimed {
        /// How many attempts have claimed this capture, this one included.
        attempt: u32,
        /// When an earlier attempt may have created the capture without storing its request
        /// id (its create timed out or lost its answer, or the attempt died while holding the
        /// claim): the epoch milliseconds of that attempt's claim. `None` when no earlier
        /// create can exist.
        maybe_created_since_ms: Option<u64>,
    },
    /// The capture already has a request id or a final status: nothing left to do.
    AlreadyHandled(CaptureStatus),
    /// Another attempt holds a live claim and may be talking to PeekShot right now.
    HeldElsewhere,
    /// The capture id is taken by a request for a different page or options.
    Conflict,
}

/// What writing a webhook's outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// The capture moved to this final status.
    Applied(CaptureStatus),
    /// The capture was already final (a repeated or late webhook); nothing changed.
    AlreadyFinal(CaptureStatus),
    /// No capture has stored this request id yet; the outcome is kept and applied when the
    /// submitter stores it.
    Parked,
}

/// Whether a rejected message was written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A FAILED record now holds the reason.
    Recorded,
    /// This very message was recorded before (it is a redelivery); nothing was written.
    AlreadyRecorded,
    /// A record of another message already holds that capture id and was left alone.
    CaptureIdTaken,
}

/// The capture records. Every method is one or two conditional writes: state is never read
/// first and then written, so concurrent attempts and webhooks cannot undo each other.
#[async_trait]
pub trait CaptureStore: Send + Sync {
    /// Writes a FAILED record for a message that is not a valid request, keeping (a bounded
    /// prefix of) its body, unless a record with that capture id exists: then it says whether
    /// that record is this message's own.
    async fn record_invalid(
        &self,
        invalid: &InvalidRequest,
        message_id: &str,
        body: &str,
    ) -> Result<Rejection, Failure>;

    /// Creates the record (QUEUED) or takes over an open one, and leases it to this attempt so
    /// that no other attempt creates the same capture at the same time.
    async fn claim(&self, request: &CaptureRequest, message_id: &str) -> Result<Claim, Failure>;

    /// Gives the lease back after a failure that leaves the capture open, noting the reason.
    async fn release(&self, capture_id: &CaptureId, failure: &Failure) -> Result<(), Failure>;

    /// Ends a capture that PeekShot refused before it got a request id.
    async fn fail_unsubmitted(&self, capture_id: &CaptureId, reason: &str) -> Result<(), Failure>;

    /// Stores PeekShot's request id (QUEUED -> SUBMITTED), or, when the webhook got here first,
    /// applies its parked outcome. Returns the status the record ends up in.
    async fn store_request_id(
        &self,
        capture_id: &CaptureId,
        created: &CreatedCapture,
    ) -> Result<CaptureStatus, Failure>;

    /// Stores a request id found through PeekShot's list endpoint, as
    /// [`CaptureStore::store_request_id`] does, unless that request id already belongs to
    /// another capture; then returns `None` and changes nothing.
    async fn adopt_request_id(
        &self,
        capture_id: &CaptureId,
        created: &CreatedCapture,
    ) -> Result<Option<CaptureStatus>, Failure>;

    /// Notes that this capture had to be created again although an earlier create may have
    /// succeeded: on the record, and in a table-wide counter operators can read.
    async fn note_ambiguous_create(&self, capture_id: &CaptureId) -> Result<(), Failure>;

    /// Records how PeekShot says a capture ended.
    async fn record_outcome(
        &self,
        request_id: &RequestId,
        outcome: &Outcome,
    ) -> Result<Settlement, Failure>;
}

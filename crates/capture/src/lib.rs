//! The capture domain: what a capture request is, how a capture moves through its life, how
//! failures are classified, and the logic that submits requests and applies webhooks.
//!
//! This crate knows nothing of Lambda, SQS, DynamoDB or HTTP. It talks to the outside through
//! the traits in [`ports`], which `capture-adapters` implements, so the rules that matter (what
//! is valid, what may follow what, what is retried) live in one place and are tested here.
//!
//! - [`request`]: the producer's JSON and its validation.
//! - [`lifecycle`]: statuses, transitions and outcomes.
//! - [`failure`]: the three failure classes every caller acts on.
//! - [`backoff`]: how long a kept message waits before its next attempt.
//! - [`webhook`]: PeekShot's webhook payload, read tolerantly.
//! - [`ports`]: the store and PeekShot traits.
//! - [`pace`]: the global pace of creates, a token bucket shared by every submitter.
//! - [`submit`]: one message and one batch through validation, claim, create and store.
//! - [`reconcile`]: lost webhooks: captures left SUBMITTED, settled from PeekShot's read endpoint.

pub mod backoff;
pub mod failure;
pub mod lifecycle;
pub mod pace;
pub mod ports;
pub mod reconcile;
pub mod request;
pub mod submit;
pub mod webhook;

pub use backoff::RetryPolicy;
pub use failure::{Failure, FailureClass};
pub use lifecycle::{CaptureStatus, Outcome};
pub use pace::{
    Pace, PaceAnswer, PacePolicy, PaceState, PaceStep, PaceStore, Pacer, Reservation, SlowDown,
    Unpaced,
};
pub use ports::{
    CaptureStore, Claim, CreatedCapture, Rejection, RequestId, ScreenshotApi, Settlement,
};
pub use reconcile::{
    AwaitingCapture, ReadAnswer, ReconcilePolicy, Reconciled, RunReport, ScreenshotStatus,
    StaleCaptures, TIMED_OUT_REASON, reconcile,
};
pub use request::{
    CaptureId, CaptureOptions, CaptureRequest, FileType, InvalidRequest, Viewport,
    body_with_capture_id,
};
pub use submit::{
    BatchLimits, BatchReport, Done, QueuedMessage, Retry, RetryCause, Verdict, submit_batch,
    submit_message,
};
pub use webhook::{Progress, WebhookError, WebhookNotice, parse_webhook};

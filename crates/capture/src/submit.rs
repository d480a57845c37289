//! Submitting queued capture requests to PeekShot: one message at a time in
//! [`submit_message`], a batch concurrently in [`submit_batch`].
//!
//! Each message ends in one of two verdicts. [`Verdict::Done`] lets the queue delete it: the
//! capture was submitted, was already handled, or failed for good with its reason on record.
//! [`Verdict::Retry`] keeps it: a transient or deployment failure left the capture open, and
//! the queue brings the message back (and dead-letters it after its receive limit).

use futures::StreamExt;
use tracing::{Instrument, error, info, info_span, warn};

use crate::failure::{Failure, FailureClass};
use crate::ports::{CaptureStore, Claim, Rejection, ScreenshotApi};
use crate::request::{CaptureId, CaptureRequest};

/// One SQS message as the submitter sees it.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// SQS's id for the message; the default capture id and the batch-failure identifier.
    pub message_id: String,
    /// The capture request, as the producer wrote it.
    pub body: String,
}

/// What should happen to a message after one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Delete it: nothing more can or needs to be done.
    Done(Done),
    /// Keep it for another attempt.
    Retry(Failure),
}

/// Why a message needs no further attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// PeekShot accepted the capture and its request id is stored.
    Submitted,
    /// An earlier delivery or a duplicate capture id already took care of it.
    AlreadyHandled,
    /// The capture failed for good; the reason is on its record.
    Failed,
    /// The capture id belongs to a different request, or an invalid message's id was taken;
    /// the message is logged and dropped because no attempt can change that.
    Rejected,
}

/// The outcome of one batch: which messages to keep, and what to tell the operator.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Message ids to report as batch item failures.
    pub retry: Vec<String>,
    /// How many messages were submitted, found done, or failed for good.
    pub done: usize,
    /// How many messages met a deployment fault.
    pub deployment_faults: usize,
    /// The first deployment fault's reason, to be logged once for the whole batch.
    pub deployment_reason: Option<String>,
}

/// Submits every message of a batch, at most `concurrency` at a time, and reports which ones to
/// keep. A bad message never affects the others.
pub async fn submit_batch<S, A>(
    store: &S,
    api: &A,
    messages: Vec<QueuedMessage>,
    concurrency: usize,
) -> BatchReport
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
{
    let verdicts: Vec<(String, Verdict)> = futures::stream::iter(messages)
        .map(|message| async move {
            let verdict = submit_message(store, api, &message).await;
            (message.message_id, verdict)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;

    let mut report = BatchReport::default();
    for (message_id, verdict) in verdicts {
        match verdict {
            Verdict::Done(_) => report.done += 1,
            Verdict::Retry(failure) => {
                if failure.class == FailureClass::Deployment {
                    report.deployment_faults += 1;
                    report.deployment_reason.get_or_insert(failure.reason);
                }
                report.retry.push(message_id);
            }
        }
    }

    if let Some(reason) = &report.deployment_reason {
        error!(
            messages = report.deployment_faults,
            reason = %reason,
            "deployment fault: captures kept on the queue until the configuration is fixed"
        );
    }
    report
}

/// Submits one message: validate, claim, create at PeekShot, store the request id.
pub async fn submit_message<S, A>(store: &S, api: &A, message: &QueuedMessage) -> Verdict
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
{
    let span = info_span!(
        "submit",
        message_id = %message.message_id,
        capture_id = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    async move {
        let fallback_id = CaptureId::from_message_id(&message.message_id);
        match CaptureRequest::parse(&message.body, &fallback_id) {
            Ok(request) => {
                tracing::Span::current().record("capture_id", request.capture_id.as_str());
                submit_valid(store, api, &request, &message.message_id).await
            }
            Err(invalid) => {
                tracing::Span::current().record("capture_id", invalid.capture_id.as_str());
                warn!(reason = %invalid.reason, "rejecting invalid capture request");
                match store
                    .record_invalid(&invalid, &message.message_id, &message.body)
                    .await
                {
                    Ok(Rejection::Recorded) => Verdict::Done(Done::Failed),
                    Ok(Rejection::CaptureIdTaken) => {
                        warn!("capture id already has a record; the invalid message is dropped");
                        Verdict::Done(Done::Rejected)
                    }
                    Err(failure) => Verdict::Retry(failure),
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn submit_valid<S, A>(
    store: &S,
    api: &A,
    request: &CaptureRequest,
    message_id: &str,
) -> Verdict
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
{
    let attempt = match store.claim(request, message_id).await {
        Ok(Claim::Claimed { attempt }) => attempt,
        Ok(Claim::AlreadyHandled(status)) => {
            info!(%status, "capture already handled; duplicate delivery dropped");
            return Verdict::Done(Done::AlreadyHandled);
        }
        Ok(Claim::HeldElsewhere) => {
            info!("another attempt is submitting this capture; trying again later");
            return Verdict::Retry(Failure::transient(
                "capture is being submitted by another attempt",
            ));
        }
        Ok(Claim::Conflict) => {
            warn!("capture id is already used for a different request; message dropped");
            return Verdict::Done(Done::Rejected);
        }
        Err(failure) => return Verdict::Retry(failure),
    };

    let created = match api.create(request).await {
        Ok(created) => created,
        Err(failure) => return settle_create_failure(store, request, failure, attempt).await,
    };
    tracing::Span::current().record("request_id", created.request_id.as_str());

    match store.store_request_id(&request.capture_id, &created).await {
        Ok(status) => {
            info!(%status, attempt, "capture submitted to PeekShot");
            Verdict::Done(Done::Submitted)
        }
        Err(failure) => {
            error!(reason = %failure.reason, "PeekShot accepted the capture but storing its request id failed");
            Verdict::Retry(failure)
        }
    }
}

async fn settle_create_failure<S>(
    store: &S,
    request: &CaptureRequest,
    failure: Failure,
    attempt: u32,
) -> Verdict
where
    S: CaptureStore + ?Sized,
{
    match failure.class {
        FailureClass::Permanent => {
            warn!(reason = %failure.reason, "PeekShot refused the capture");
            match store
                .fail_unsubmitted(&request.capture_id, &failure.reason)
                .await
            {
                Ok(()) => Verdict::Done(Done::Failed),
                Err(store_failure) => Verdict::Retry(store_failure),
            }
        }
        FailureClass::Transient | FailureClass::Deployment => {
            if failure.class == FailureClass::Transient {
                warn!(reason = %failure.reason, attempt, "create failed; will retry");
            }
            if let Err(store_failure) = store.release(&request.capture_id, &failure).await {
                warn!(reason = %store_failure.reason, "could not release the claim; it expires on its own");
            }
            Verdict::Retry(failure)
        }
    }
}

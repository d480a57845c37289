//! Submitting queued capture requests to PeekShot: one message at a time in
//! [`submit_message`], a batch concurrently in [`submit_batch`].
//!
//! Each message ends in one of three verdicts. [`Verdict::Done`] lets the queue delete it: the
//! capture was submitted, was already handled, or failed for good with its reason on record.
//! [`Verdict::Retry`] keeps it: a transient or deployment failure left the capture open, and
//! the queue brings the message back (and dead-letters it after its receive limit).
//! [`Verdict::Defer`] keeps it untouched: the global pace ([`crate::pace`]) had no slot for it
//! within the wait the invocation allows.

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use tracing::{Instrument, error, info, info_span, warn};

use crate::failure::{Failure, FailureClass};
use crate::pace::{Pace, epoch_ms};
use crate::ports::{CaptureStore, Claim, Rejection, ScreenshotApi};
use crate::request::{CaptureId, CaptureRequest, InvalidRequest};

/// Time kept back after PeekShot answers, to store its answer (up to three DynamoDB calls,
/// each bounded by the SDK's operation timeout of a few seconds), postpone kept messages and
/// return the batch response before Lambda ends the invocation. Running out here after an
/// accepted create is what makes a second create possible, so the reserve is generous.
pub const RECORD_RESERVE: Duration = Duration::from_secs(10);
/// The least time a PeekShot call is worth starting with; a message that finds less left in
/// the invocation is kept for the next one without being touched.
pub const MIN_CALL_TIME: Duration = Duration::from_secs(1);

/// One SQS message as the submitter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    /// SQS's id for this message: the batch-failure identifier.
    pub message_id: String,
    /// The id `SendMessage` gave the producer: the same as `message_id`, unless the submitter
    /// sent the message again after a deferral (it carries the first id along). The default
    /// capture id, and the id records and logs name the message by.
    pub first_message_id: String,
    /// The capture request, as the producer wrote it.
    pub body: String,
    /// How many times SQS has delivered the message, this delivery included.
    pub receive_count: u32,
    /// The handle that changes this delivery's visibility, when SQS sent one.
    pub receipt_handle: Option<String>,
}

/// How a batch is worked through.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Messages in flight at once.
    pub concurrency: usize,
    /// When the invocation ends; every outbound call is bounded by it.
    pub deadline: Instant,
}

/// A message to keep, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    /// The message.
    pub message: QueuedMessage,
    /// What kept it; this sets the delay before it comes back.
    pub cause: RetryCause,
}

/// Why a message is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryCause {
    /// An attempt failed; its class and `Retry-After` set the delay.
    Failed(Failure),
    /// No attempt was made: the pace has a slot for it about this much later.
    Deferred(Duration),
}

/// What should happen to a message after one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Delete it: nothing more can or needs to be done.
    Done(Done),
    /// Keep it for another attempt.
    Retry(Failure),
    /// Keep it, untouched, until the pace has a slot for it.
    Defer(Duration),
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
}

/// The outcome of one batch: which messages to keep, and what to tell the operator.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Messages to report as batch item failures.
    pub retry: Vec<Retry>,
    /// How many messages were submitted, found done, or failed for good.
    pub done: usize,
    /// How many messages the pace deferred without an attempt.
    pub deferred: usize,
    /// How many messages met a deployment fault.
    pub deployment_faults: usize,
    /// The first deployment fault's reason, to be logged once for the whole batch.
    pub deployment_reason: Option<String>,
}

/// One message of a batch, parsed, with what the batch decided for it.
enum Work {
    /// Not a valid request: record why.
    Invalid(InvalidRequest),
    /// A valid request whose create may start at this epoch millisecond.
    Submit(Box<CaptureRequest>, u64),
    /// A valid request the pace had no slot for.
    Defer(Duration),
    /// A valid request kept because the pace could not be asked.
    Unpaced(Failure),
}

/// Submits every message of a batch, at most `concurrency` at a time, and reports which ones to
/// keep. A bad message never affects the others.
///
/// The valid messages take their slots from `pace` in one reservation, as far ahead as the
/// invocation's time allows; each waits for its slot before it is claimed and created, and
/// those without a slot are deferred untouched.
pub async fn submit_batch<S, A, P>(
    store: &S,
    api: &A,
    pace: &P,
    messages: Vec<QueuedMessage>,
    limits: BatchLimits,
) -> BatchReport
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
    P: Pace + ?Sized,
{
    let parsed: Vec<(QueuedMessage, Result<CaptureRequest, InvalidRequest>)> = messages
        .into_iter()
        .map(|message| {
            let request = parse(&message);
            (message, request)
        })
        .collect();
    let work = plan_batch(pace, parsed, limits.deadline).await;

    let verdicts: Vec<(QueuedMessage, Verdict)> = futures::stream::iter(work)
        .map(|(message, work)| async move {
            let verdict = match work {
                Work::Invalid(invalid) => record_invalid(store, &message, &invalid).await,
                Work::Submit(request, start_ms) => {
                    wait_for_slot(start_ms).await;
                    // A 429 met while this message waited paused the pace: its slot is void.
                    if let Some(pause) = pace.paused_for() {
                        return (message, Verdict::Defer(pause));
                    }
                    let span = message_span(&message, &request.capture_id);
                    submit_valid(store, api, pace, &request, &message, limits.deadline)
                        .instrument(span)
                        .await
                }
                Work::Defer(after) => Verdict::Defer(after),
                Work::Unpaced(failure) => Verdict::Retry(failure),
            };
            (message, verdict)
        })
        .buffer_unordered(limits.concurrency.max(1))
        .collect()
        .await;

    let mut report = BatchReport::default();
    for (message, verdict) in verdicts {
        match verdict {
            Verdict::Done(_) => report.done += 1,
            Verdict::Defer(after) => {
                report.deferred += 1;
                report.retry.push(Retry {
                    message,
                    cause: RetryCause::Deferred(after),
                });
            }
            Verdict::Retry(failure) => {
                if failure.class == FailureClass::Deployment {
                    report.deployment_faults += 1;
                    report
                        .deployment_reason
                        .get_or_insert_with(|| failure.reason.clone());
                }
                report.retry.push(Retry {
                    message,
                    cause: RetryCause::Failed(failure),
                });
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

/// Reserves one slot per valid message and pairs each message with what to do with it.
async fn plan_batch<P>(
    pace: &P,
    parsed: Vec<(QueuedMessage, Result<CaptureRequest, InvalidRequest>)>,
    deadline: Instant,
) -> Vec<(QueuedMessage, Work)>
where
    P: Pace + ?Sized,
{
    let valid = parsed.iter().filter(|(_, request)| request.is_ok()).count();
    let reservation = if valid == 0 {
        Ok(Default::default())
    } else {
        pace.reserve(valid, time_to_wait(deadline)).await
    };
    let (mut starts, mut deferrals, unpaced) = match reservation {
        Ok(reservation) => (
            reservation.starts_ms.into_iter(),
            reservation.deferrals.into_iter(),
            None,
        ),
        Err(failure) => {
            warn!(reason = %failure.reason, "cannot take slots from the pace; valid messages kept");
            (
                Vec::new().into_iter(),
                Vec::new().into_iter(),
                Some(failure),
            )
        }
    };

    parsed
        .into_iter()
        .map(|(message, request)| {
            let work = match (request, &unpaced) {
                (Err(invalid), _) => Work::Invalid(invalid),
                (Ok(_), Some(failure)) => Work::Unpaced(failure.clone()),
                (Ok(request), None) => match starts.next() {
                    Some(start_ms) => Work::Submit(Box::new(request), start_ms),
                    None => Work::Defer(deferrals.next().unwrap_or(MIN_CALL_TIME)),
                },
            };
            (message, work)
        })
        .collect()
}

/// Submits one message whose slot the caller already holds (or that is not paced): validate,
/// claim, create at PeekShot, store the request id, all before `deadline`.
pub async fn submit_message<S, A, P>(
    store: &S,
    api: &A,
    pace: &P,
    message: &QueuedMessage,
    deadline: Instant,
) -> Verdict
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
    P: Pace + ?Sized,
{
    match parse(message) {
        Ok(request) => {
            let span = message_span(message, &request.capture_id);
            submit_valid(store, api, pace, &request, message, deadline)
                .instrument(span)
                .await
        }
        Err(invalid) => record_invalid(store, message, &invalid).await,
    }
}

fn parse(message: &QueuedMessage) -> Result<CaptureRequest, InvalidRequest> {
    let fallback_id = CaptureId::from_message_id(&message.first_message_id);
    CaptureRequest::parse(&message.body, &fallback_id)
}

fn message_span(message: &QueuedMessage, capture_id: &CaptureId) -> tracing::Span {
    info_span!(
        "submit",
        message_id = %message.first_message_id,
        capture_id = %capture_id,
        request_id = tracing::field::Empty,
    )
}

/// Writes the FAILED record of a message that is not a valid request, or whose capture id
/// another request already holds.
///
/// The record goes under the capture id the body names. When a record already holds that id,
/// this message is recorded under its own message id instead, with a note, so that nothing a
/// producer sent is dropped without a trace: the producer finds it by the message id that
/// `SendMessage` returned. When that record exists too, this is a redelivery of the same
/// message and nothing more is written.
async fn record_invalid<S>(store: &S, message: &QueuedMessage, invalid: &InvalidRequest) -> Verdict
where
    S: CaptureStore + ?Sized,
{
    let span = message_span(message, &invalid.capture_id);
    async move {
        warn!(reason = %invalid.reason, "rejecting invalid capture request");
        let own_id = CaptureId::from_message_id(&message.first_message_id);
        let mut invalid = invalid.clone();
        loop {
            match store
                .record_invalid(&invalid, &message.first_message_id, &message.body)
                .await
            {
                Ok(Rejection::Recorded) => return Verdict::Done(Done::Failed),
                Ok(Rejection::AlreadyRecorded) => {
                    info!("this message is already recorded; redelivery dropped");
                    return Verdict::Done(Done::AlreadyHandled);
                }
                Ok(Rejection::CaptureIdTaken) if invalid.capture_id == own_id => {
                    info!("this message is already recorded; redelivery dropped");
                    return Verdict::Done(Done::AlreadyHandled);
                }
                Ok(Rejection::CaptureIdTaken) => {
                    warn!(
                        message_record = %own_id,
                        "capture id already has a record; this message is recorded under its message id"
                    );
                    invalid = InvalidRequest {
                        reason: format!(
                            "{} (captureId `{}` already has a record, so this message is \
                             recorded under its message id)",
                            invalid.reason, invalid.capture_id
                        ),
                        capture_id: own_id.clone(),
                    };
                }
                Err(failure) => return Verdict::Retry(failure),
            }
        }
    }
    .instrument(span)
    .await
}

/// How long a message may wait for its slot and still leave time for its call and its record.
fn time_to_wait(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(RECORD_RESERVE + MIN_CALL_TIME)
}

/// Sleeps until `start_ms` (epoch milliseconds), if that is still ahead.
async fn wait_for_slot(start_ms: u64) {
    let now_ms = epoch_ms(SystemTime::now());
    if start_ms > now_ms {
        tokio::time::sleep(Duration::from_millis(start_ms - now_ms)).await;
    }
}

async fn submit_valid<S, A, P>(
    store: &S,
    api: &A,
    pace: &P,
    request: &CaptureRequest,
    message: &QueuedMessage,
    deadline: Instant,
) -> Verdict
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
    P: Pace + ?Sized,
{
    if time_for_call(deadline).is_none() {
        return Verdict::Retry(Failure::transient(
            "the invocation ran out of time before this message",
        ));
    }

    let (attempt, maybe_created_since_ms) = match store
        .claim(request, &message.first_message_id)
        .await
    {
        Ok(Claim::Claimed {
            attempt,
            maybe_created_since_ms,
        }) => (attempt, maybe_created_since_ms),
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
            let conflict = InvalidRequest {
                capture_id: request.capture_id.clone(),
                reason: format!(
                    "captureId: `{}` already names a different request (another URL or options)",
                    request.capture_id
                ),
            };
            return record_invalid(store, message, &conflict).await;
        }
        Err(failure) => return Verdict::Retry(failure),
    };

    if let Some(since_ms) = maybe_created_since_ms {
        match adopt_earlier_create(store, api, request, since_ms, deadline).await {
            Ok(Some(verdict)) => return verdict,
            Ok(None) => {}
            Err(failure) => return settle_create_failure(store, request, failure, attempt).await,
        }
    }

    let Some(call_time) = time_for_call(deadline) else {
        let failure = Failure::transient("the invocation ran out of time before calling PeekShot");
        return settle_create_failure(store, request, failure, attempt).await;
    };
    let created = match api.create(request, call_time).await {
        Ok(created) => created,
        Err(failure) => {
            if failure.rate_limited
                && let Err(problem) = pace.slow_down(failure.retry_after).await
            {
                warn!(reason = %problem.reason, "PeekShot is rate limiting but the pace could not be slowed");
            }
            return settle_create_failure(store, request, failure, attempt).await;
        }
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

/// Looks for the capture an earlier attempt may have created (same project and URL, created
/// after that attempt's claim) and adopts the oldest one that no other capture holds.
///
/// Returns a verdict when one was adopted, `None` when this attempt should create (no
/// candidate, or every candidate belongs to another capture). Two cases cannot be told apart
/// and are counted (`note_ambiguous_create`): the list cannot be read (the capture is created
/// again, so PeekShot may hold two), and several candidates exist (another capture of the
/// same URL may be the one adopted).
async fn adopt_earlier_create<S, A>(
    store: &S,
    api: &A,
    request: &CaptureRequest,
    since_ms: u64,
    deadline: Instant,
) -> Result<Option<Verdict>, Failure>
where
    S: CaptureStore + ?Sized,
    A: ScreenshotApi + ?Sized,
{
    let Some(call_time) = time_for_call(deadline) else {
        return Err(Failure::transient(
            "the invocation ran out of time before the lookup",
        ));
    };
    let candidates = match api.find_created(request, since_ms, call_time).await {
        Ok(candidates) => candidates,
        Err(failure) if failure.class == FailureClass::Transient => {
            warn!(reason = %failure.reason, "cannot look for an earlier create; creating again");
            store.note_ambiguous_create(&request.capture_id).await?;
            return Ok(None);
        }
        Err(failure) => return Err(failure),
    };

    for candidate in &candidates {
        if let Some(status) = store
            .adopt_request_id(&request.capture_id, candidate)
            .await?
        {
            tracing::Span::current().record("request_id", candidate.request_id.as_str());
            info!(%status, candidates = candidates.len(), "adopted the capture an earlier attempt created");
            if candidates.len() > 1 {
                store.note_ambiguous_create(&request.capture_id).await?;
            }
            return Ok(Some(Verdict::Done(Done::Submitted)));
        }
    }
    Ok(None)
}

/// How long a PeekShot call may take so that its answer can still be recorded in time, or
/// `None` when too little time is left to start one.
fn time_for_call(deadline: Instant) -> Option<Duration> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .checked_sub(RECORD_RESERVE)?;
    (left >= MIN_CALL_TIME).then_some(left)
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

#[cfg(test)]
mod tests {
    //! The submit logic against small in-memory fakes; the DynamoDB store and the PeekShot
    //! client are proven against moto and the simulator in `tests/pipeline.rs`.

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::lifecycle::{CaptureStatus, Outcome};
    use crate::pace::{Reservation, Unpaced};
    use crate::ports::{CreatedCapture, RequestId, Settlement};
    use crate::request::InvalidRequest;

    /// Records which store calls were made, answers claims with a fixed result, and holds
    /// records under the capture ids in `taken`.
    struct FakeStore {
        claim: Claim,
        taken: Vec<&'static str>,
        /// (capture id, message id) pairs of records written by that message.
        recorded_by: Vec<(&'static str, &'static str)>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeStore {
        fn new(claim: Claim) -> Self {
            Self {
                claim,
                taken: Vec::new(),
                recorded_by: Vec::new(),
                calls: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        fn note(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
    }

    #[async_trait]
    impl CaptureStore for FakeStore {
        async fn record_invalid(
            &self,
            invalid: &InvalidRequest,
            message_id: &str,
            _: &str,
        ) -> Result<Rejection, Failure> {
            self.note(format!("invalid {}", invalid.capture_id));
            if self
                .recorded_by
                .contains(&(invalid.capture_id.as_str(), message_id))
            {
                Ok(Rejection::AlreadyRecorded)
            } else if self.taken.contains(&invalid.capture_id.as_str()) {
                Ok(Rejection::CaptureIdTaken)
            } else {
                Ok(Rejection::Recorded)
            }
        }

        async fn claim(&self, request: &CaptureRequest, _: &str) -> Result<Claim, Failure> {
            self.note(format!("claim {}", request.capture_id));
            Ok(self.claim)
        }

        async fn release(&self, capture_id: &CaptureId, failure: &Failure) -> Result<(), Failure> {
            self.note(format!("release {capture_id} {}", failure.class));
            Ok(())
        }

        async fn fail_unsubmitted(&self, capture_id: &CaptureId, _: &str) -> Result<(), Failure> {
            self.note(format!("fail {capture_id}"));
            Ok(())
        }

        async fn store_request_id(
            &self,
            capture_id: &CaptureId,
            created: &CreatedCapture,
        ) -> Result<CaptureStatus, Failure> {
            self.note(format!("store {capture_id} {}", created.request_id));
            Ok(CaptureStatus::Submitted)
        }

        async fn adopt_request_id(
            &self,
            capture_id: &CaptureId,
            created: &CreatedCapture,
        ) -> Result<Option<CaptureStatus>, Failure> {
            self.note(format!("adopt {capture_id} {}", created.request_id));
            Ok(Some(CaptureStatus::Submitted))
        }

        async fn note_ambiguous_create(&self, capture_id: &CaptureId) -> Result<(), Failure> {
            self.note(format!("ambiguous {capture_id}"));
            Ok(())
        }

        async fn record_outcome(&self, _: &RequestId, _: &Outcome) -> Result<Settlement, Failure> {
            unreachable!("the submitter never records outcomes")
        }
    }

    /// Answers every create with the same result, lists `earlier`, and counts creates.
    struct FakeApi {
        answer: Result<CreatedCapture, Failure>,
        earlier: Result<Vec<CreatedCapture>, Failure>,
        creates: Mutex<u32>,
    }

    impl FakeApi {
        fn answering(answer: Result<CreatedCapture, Failure>) -> Self {
            Self {
                answer,
                earlier: Ok(Vec::new()),
                creates: Mutex::new(0),
            }
        }

        fn creates(&self) -> u32 {
            *self.creates.lock().unwrap()
        }
    }

    #[async_trait]
    impl ScreenshotApi for FakeApi {
        async fn create(&self, _: &CaptureRequest, _: Duration) -> Result<CreatedCapture, Failure> {
            *self.creates.lock().unwrap() += 1;
            self.answer.clone()
        }

        async fn find_created(
            &self,
            _: &CaptureRequest,
            _: u64,
            _: Duration,
        ) -> Result<Vec<CreatedCapture>, Failure> {
            self.earlier.clone()
        }
    }

    fn failure_class(retry: &Retry) -> Option<FailureClass> {
        match &retry.cause {
            RetryCause::Failed(failure) => Some(failure.class),
            RetryCause::Deferred(_) => None,
        }
    }

    /// Grants the first `slots` slots, `start_in` from now, and records slow-downs.
    struct FakePace {
        slots: usize,
        start_in: Duration,
        fails: bool,
        paused: Option<Duration>,
        slowed: Mutex<Vec<Option<Duration>>>,
    }

    impl FakePace {
        fn granting(slots: usize) -> Self {
            Self {
                slots,
                start_in: Duration::ZERO,
                fails: false,
                paused: None,
                slowed: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl Pace for FakePace {
        async fn reserve(&self, wanted: usize, _: Duration) -> Result<Reservation, Failure> {
            if self.fails {
                return Err(Failure::transient("DynamoDB is throttling the pace item"));
            }
            let start = epoch_ms(SystemTime::now() + self.start_in);
            let granted = wanted.min(self.slots);
            Ok(Reservation {
                starts_ms: vec![start; granted],
                deferrals: (granted..wanted)
                    .map(|i| Duration::from_secs(i as u64))
                    .collect(),
            })
        }

        async fn slow_down(&self, retry_after: Option<Duration>) -> Result<(), Failure> {
            self.slowed.lock().unwrap().push(retry_after);
            Ok(())
        }

        fn paused_for(&self) -> Option<Duration> {
            self.paused
        }
    }

    fn accepted() -> Result<CreatedCapture, Failure> {
        Ok(CreatedCapture {
            request_id: RequestId::parse("42").unwrap(),
            credits: None,
        })
    }

    fn message(id: &str, body: &str) -> QueuedMessage {
        QueuedMessage {
            message_id: id.into(),
            first_message_id: id.into(),
            body: body.into(),
            receive_count: 1,
            receipt_handle: None,
        }
    }

    fn valid(id: &str) -> QueuedMessage {
        message(
            id,
            &format!(r#"{{"captureId": "{id}", "url": "https://example.com/{id}"}}"#),
        )
    }

    fn plenty_of_time() -> BatchLimits {
        BatchLimits {
            concurrency: 4,
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn invalid_messages_are_recorded_and_never_retried_or_sent() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());
        let batch = vec![valid("a"), message("m-2", "not json"), valid("c")];

        let report = submit_batch(&store, &api, &Unpaced, batch, plenty_of_time()).await;

        assert!(report.retry.is_empty());
        assert_eq!(report.done, 3);
        assert_eq!(api.creates(), 2);
        assert!(store.calls().contains(&"invalid m-2".to_owned()));
    }

    #[tokio::test]
    async fn permanent_refusal_fails_the_capture_and_lets_the_message_go() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(Err(Failure::permanent("HTTP 422: bad url")));

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::Failed));
        assert_eq!(store.calls(), ["claim a", "fail a"]);
    }

    #[tokio::test]
    async fn transient_failure_releases_the_claim_and_keeps_the_message() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(Err(Failure::transient("HTTP 503")));

        let report = submit_batch(&store, &api, &Unpaced, vec![valid("a")], plenty_of_time()).await;

        assert_eq!(report.retry.len(), 1);
        assert_eq!(
            failure_class(&report.retry[0]),
            Some(FailureClass::Transient)
        );
        assert_eq!(store.calls(), ["claim a", "release a transient"]);
    }

    #[tokio::test]
    async fn deployment_faults_keep_every_message_and_are_counted_once_per_batch() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(Err(Failure::deployment("HTTP 403: Invalid API key")));

        let report = submit_batch(
            &store,
            &api,
            &Unpaced,
            vec![valid("a"), valid("b")],
            plenty_of_time(),
        )
        .await;

        assert_eq!(report.retry.len(), 2);
        assert_eq!(report.deployment_faults, 2);
        assert_eq!(
            report.deployment_reason.as_deref(),
            Some("HTTP 403: Invalid API key")
        );
    }

    #[tokio::test]
    async fn already_handled_capture_is_not_sent_again() {
        let store = FakeStore::new(Claim::AlreadyHandled(CaptureStatus::Submitted));
        let api = FakeApi::answering(accepted());

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::AlreadyHandled));
        assert_eq!(api.creates(), 0);
    }

    #[tokio::test]
    async fn capture_claimed_elsewhere_is_retried_without_a_create() {
        let store = FakeStore::new(Claim::HeldElsewhere);
        let api = FakeApi::answering(accepted());

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert!(matches!(verdict, Verdict::Retry(ref f) if f.class == FailureClass::Transient));
        assert_eq!(api.creates(), 0);
    }

    #[tokio::test]
    async fn message_that_finds_no_time_left_is_kept_untouched() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());
        let deadline = Instant::now() + RECORD_RESERVE;

        let verdict = submit_message(&store, &api, &Unpaced, &valid("a"), deadline).await;

        assert!(matches!(verdict, Verdict::Retry(_)));
        assert!(
            store.calls().is_empty(),
            "nothing was claimed: {:?}",
            store.calls()
        );
        assert_eq!(api.creates(), 0);
    }

    fn reclaimed_after_a_lost_answer() -> FakeStore {
        FakeStore::new(Claim::Claimed {
            attempt: 2,
            maybe_created_since_ms: Some(1_000),
        })
    }

    #[tokio::test]
    async fn capture_an_earlier_attempt_created_is_adopted_not_created_again() {
        let store = reclaimed_after_a_lost_answer();
        let mut api = FakeApi::answering(accepted());
        api.earlier = Ok(vec![CreatedCapture {
            request_id: RequestId::parse("7").unwrap(),
            credits: None,
        }]);

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::Submitted));
        assert_eq!(api.creates(), 0);
        assert_eq!(store.calls(), ["claim a", "adopt a 7"]);
    }

    #[tokio::test]
    async fn no_earlier_capture_found_means_a_plain_create() {
        let store = reclaimed_after_a_lost_answer();
        let api = FakeApi::answering(accepted());

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::Submitted));
        assert_eq!(api.creates(), 1);
        assert_eq!(store.calls(), ["claim a", "store a 42"]);
    }

    #[tokio::test]
    async fn unreadable_list_is_counted_as_ambiguous_and_creates_again() {
        let store = reclaimed_after_a_lost_answer();
        let mut api = FakeApi::answering(accepted());
        api.earlier = Err(Failure::transient("HTTP 503"));

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::Submitted));
        assert_eq!(api.creates(), 1);
        assert_eq!(store.calls(), ["claim a", "ambiguous a", "store a 42"]);
    }

    #[tokio::test]
    async fn several_candidates_are_adopted_but_counted_as_ambiguous() {
        let store = reclaimed_after_a_lost_answer();
        let mut api = FakeApi::answering(accepted());
        let candidate = |id: &str| CreatedCapture {
            request_id: RequestId::parse(id).unwrap(),
            credits: None,
        };
        api.earlier = Ok(vec![candidate("7"), candidate("8")]);

        submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(api.creates(), 0);
        assert_eq!(store.calls(), ["claim a", "adopt a 7", "ambiguous a"]);
    }

    #[tokio::test]
    async fn accepted_capture_stores_its_request_id() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &valid("a"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::Submitted));
        assert_eq!(store.calls(), ["claim a", "store a 42"]);
    }

    #[tokio::test]
    async fn messages_the_pace_has_no_slot_for_are_deferred_untouched() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());
        let pace = FakePace::granting(1);
        let batch = vec![
            valid("a"),
            message("m-2", "not json"),
            valid("c"),
            valid("d"),
        ];

        let report = submit_batch(&store, &api, &pace, batch, plenty_of_time()).await;

        assert_eq!(report.done, 2, "the granted one and the invalid one");
        assert_eq!(report.deferred, 2);
        assert_eq!(api.creates(), 1);
        let mut calls = store.calls();
        calls.sort();
        assert_eq!(calls, ["claim a", "invalid m-2", "store a 42"]);
        let deferred: Vec<_> = report.retry.iter().map(|r| r.cause.clone()).collect();
        assert_eq!(
            deferred,
            [
                RetryCause::Deferred(Duration::from_secs(1)),
                RetryCause::Deferred(Duration::from_secs(2))
            ]
        );
    }

    #[tokio::test]
    async fn a_pace_that_cannot_be_asked_keeps_valid_messages_and_still_records_invalid_ones() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());
        let pace = FakePace {
            fails: true,
            ..FakePace::granting(10)
        };
        let batch = vec![valid("a"), message("m-2", "{}")];

        let report = submit_batch(&store, &api, &pace, batch, plenty_of_time()).await;

        assert_eq!(report.retry.len(), 1);
        assert_eq!(
            failure_class(&report.retry[0]),
            Some(FailureClass::Transient)
        );
        assert_eq!(api.creates(), 0);
        assert_eq!(store.calls(), ["invalid m-2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_waits_for_its_slot_before_it_is_claimed() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());
        let pace = FakePace {
            start_in: Duration::from_millis(1_500),
            ..FakePace::granting(1)
        };
        let started = tokio::time::Instant::now();

        let report = submit_batch(&store, &api, &pace, vec![valid("a")], plenty_of_time()).await;

        assert_eq!(report.done, 1);
        assert!(
            started.elapsed() >= Duration::from_millis(1_400),
            "claimed after {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_429_slows_the_global_pace_and_keeps_the_message() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let mut limited = Failure::transient("PeekShot is rate limiting (HTTP 429)");
        limited.rate_limited = true;
        limited.retry_after = Some(Duration::from_secs(7));
        let api = FakeApi::answering(Err(limited));
        let pace = FakePace::granting(10);

        let report = submit_batch(&store, &api, &pace, vec![valid("a")], plenty_of_time()).await;

        assert_eq!(report.retry.len(), 1);
        assert_eq!(*pace.slowed.lock().unwrap(), [Some(Duration::from_secs(7))]);
        assert_eq!(store.calls(), ["claim a", "release a transient"]);
    }

    #[tokio::test]
    async fn a_slot_that_comes_due_during_a_pause_is_deferred_without_a_claim() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(accepted());
        let pace = FakePace {
            paused: Some(Duration::from_secs(4)),
            ..FakePace::granting(10)
        };

        let report = submit_batch(&store, &api, &pace, vec![valid("a")], plenty_of_time()).await;

        assert_eq!(report.deferred, 1);
        assert_eq!(
            report.retry[0].cause,
            RetryCause::Deferred(Duration::from_secs(4))
        );
        assert!(store.calls().is_empty());
        assert_eq!(api.creates(), 0);
    }

    #[tokio::test]
    async fn other_failures_leave_the_pace_alone() {
        let store = FakeStore::new(Claim::Claimed {
            attempt: 1,
            maybe_created_since_ms: None,
        });
        let api = FakeApi::answering(Err(Failure::transient("HTTP 503")));
        let pace = FakePace::granting(10);

        submit_batch(&store, &api, &pace, vec![valid("a")], plenty_of_time()).await;

        assert!(pace.slowed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_capture_id_reused_for_another_page_is_recorded_failed_under_the_message_id() {
        let store = FakeStore {
            taken: vec!["a"],
            ..FakeStore::new(Claim::Conflict)
        };
        let api = FakeApi::answering(accepted());
        let reuse = message(
            "m-5",
            r#"{"captureId": "a", "url": "https://example.com/other"}"#,
        );

        let verdict =
            submit_message(&store, &api, &Unpaced, &reuse, plenty_of_time().deadline).await;

        assert_eq!(verdict, Verdict::Done(Done::Failed));
        assert_eq!(store.calls(), ["claim a", "invalid a", "invalid m-5"]);
        assert_eq!(api.creates(), 0);
    }

    #[tokio::test]
    async fn an_invalid_message_whose_capture_id_is_taken_is_recorded_under_its_message_id() {
        let store = FakeStore {
            taken: vec!["a"],
            ..FakeStore::new(Claim::Conflict)
        };
        let api = FakeApi::answering(accepted());
        let invalid = message("m-6", r#"{"captureId": "a", "url": "ftp://example.com"}"#);

        let verdict =
            submit_message(&store, &api, &Unpaced, &invalid, plenty_of_time().deadline).await;

        assert_eq!(verdict, Verdict::Done(Done::Failed));
        assert_eq!(store.calls(), ["invalid a", "invalid m-6"]);
    }

    #[tokio::test]
    async fn a_redelivered_invalid_message_is_not_recorded_twice() {
        let store = FakeStore {
            taken: vec!["m-2"],
            ..FakeStore::new(Claim::Conflict)
        };
        let api = FakeApi::answering(accepted());

        let verdict = submit_message(
            &store,
            &api,
            &Unpaced,
            &message("m-2", "not json"),
            plenty_of_time().deadline,
        )
        .await;

        assert_eq!(verdict, Verdict::Done(Done::AlreadyHandled));
        assert_eq!(store.calls(), ["invalid m-2"]);
    }

    #[tokio::test]
    async fn a_redelivered_invalid_message_with_a_capture_id_writes_nothing_more() {
        let store = FakeStore {
            taken: vec!["a"],
            recorded_by: vec![("a", "m-7")],
            ..FakeStore::new(Claim::Conflict)
        };
        let api = FakeApi::answering(accepted());
        let invalid = message("m-7", r#"{"captureId": "a", "url": "ftp://example.com"}"#);

        let verdict =
            submit_message(&store, &api, &Unpaced, &invalid, plenty_of_time().deadline).await;

        assert_eq!(verdict, Verdict::Done(Done::AlreadyHandled));
        assert_eq!(store.calls(), ["invalid a"]);
    }
}

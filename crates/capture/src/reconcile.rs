//! Lost webhooks: the reconciler's decisions.
//!
//! PeekShot promises nothing about webhook delivery, and some are never delivered, so a capture
//! could stay SUBMITTED for ever. A scheduled run of the reconciler finds the captures that have
//! been SUBMITTED for longer than [`ReconcilePolicy::reconcile_after`] ([`StaleCaptures`]), asks
//! PeekShot's read endpoint how each one stands ([`ScreenshotStatus`]), and records a finished
//! one with [`CaptureStore::record_outcome`], the very write a webhook makes. So a capture
//! finishes the same way whichever of the two learns the outcome first, and the one that comes
//! second changes nothing.
//!
//! | PeekShot says | before `give_up_after` | after `give_up_after` |
//! | --- | --- | --- |
//! | COMPLETE / FAILED | recorded | recorded |
//! | PENDING, PROCESSING or any other status | left for the next run | FAILED, [`TIMED_OUT_REASON`] |
//! | 404 (or another answer no retry can change) | left for the next run | FAILED, [`TIMED_OUT_REASON`] |
//! | timeout, 429, 5xx, a DynamoDB hiccup | left for the next run | left for the next run |
//! | 401/403 (the deployment is broken) | the run stops reading | the run stops reading |
//!
//! A capture PeekShot still reports in progress after the give-up limit fails too: PeekShot
//! usually finishes in seconds and has been seen to take about two minutes, so a capture that
//! is still open after (by default) an hour is stuck, and reading it every run until its record
//! expires would cost a call per run for nothing. If PeekShot finishes it later, its webhook
//! finds the capture final and changes nothing. Transient failures never time a capture out:
//! an hour of PeekShot being unreachable says nothing about the capture.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span, warn};

use crate::failure::{Failure, FailureClass};
use crate::lifecycle::{CaptureStatus, Outcome};
use crate::ports::{CaptureStore, RequestId, Settlement};
use crate::request::CaptureId;
use crate::webhook::{Progress, progress_of};

/// The reason recorded on a capture whose outcome PeekShot did not tell within
/// [`ReconcilePolicy::give_up_after`].
pub const TIMED_OUT_REASON: &str = "timed out waiting for PeekShot";

/// A SUBMITTED capture, as the reconciler finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingCapture {
    /// The producer's id, for logs.
    pub capture_id: CaptureId,
    /// PeekShot's id, which the read endpoint and the outcome write take.
    pub request_id: RequestId,
    /// When PeekShot's request id was stored, from which the capture's age is counted.
    pub submitted_at: SystemTime,
}

/// What PeekShot's read endpoint says about one request id.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadAnswer {
    /// COMPLETE or FAILED.
    Finished(Outcome),
    /// Any other status (`PENDING`, `IN_QUEUE`, `PROCESSING`, or one PeekShot adds later).
    InProgress(String),
    /// PeekShot answered 404: it does not know the request id.
    NotFound,
}

impl From<Progress> for ReadAnswer {
    fn from(progress: Progress) -> Self {
        match progress {
            Progress::Finished(outcome) => ReadAnswer::Finished(outcome),
            Progress::InProgress(status) => ReadAnswer::InProgress(status),
        }
    }
}

/// Reads the capture record that PeekShot's read endpoint answers with (the envelope's `data`):
/// `status`, `screenshotUrl`, `creditsRequired`, `duration`, and `error` or `errorMessage`,
/// spelled in any of the ways the webhook parser accepts. `None` when the record is not a JSON
/// object.
pub fn read_answer_of_record(record: &Value) -> Option<ReadAnswer> {
    record.as_object().map(|fields| progress_of(fields).into())
}

/// Where the reconciler finds its candidates.
#[async_trait]
pub trait StaleCaptures: Send + Sync {
    /// Up to `limit` captures that have been SUBMITTED since before `cutoff`, oldest first.
    /// The listing may lag the records a little (an eventually consistent index), which is
    /// harmless: every write the reconciler makes is conditional on the capture being open.
    async fn submitted_before(
        &self,
        cutoff: SystemTime,
        limit: usize,
    ) -> Result<Vec<AwaitingCapture>, Failure>;
}

/// PeekShot's read endpoint, `GET /api/v1/screenshots/{requestId}`.
#[async_trait]
pub trait ScreenshotStatus: Send + Sync {
    /// How PeekShot says the capture stands. A 404 is [`ReadAnswer::NotFound`], not a failure.
    async fn read(&self, request_id: &RequestId) -> Result<ReadAnswer, Failure>;
}

/// How patient one run is, and how much it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// How long a capture may wait for its webhook before PeekShot is asked about it.
    pub reconcile_after: Duration,
    /// How long after submission a capture whose outcome PeekShot does not tell is failed with
    /// [`TIMED_OUT_REASON`].
    pub give_up_after: Duration,
    /// Reads in flight at once.
    pub concurrency: usize,
    /// Most captures one run looks at; the oldest come first, the rest wait for the next run.
    pub max_per_run: usize,
}

/// What became of one capture in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// PeekShot reported it COMPLETE; the record now is.
    Completed,
    /// PeekShot reported it FAILED; the record now is, with PeekShot's reason.
    Failed,
    /// PeekShot did not tell its outcome within the give-up limit; the record is FAILED with
    /// [`TIMED_OUT_REASON`].
    TimedOut,
    /// The webhook (or an earlier run) finished it meanwhile; nothing changed.
    AlreadyFinal(CaptureStatus),
    /// PeekShot is still working on it, or does not know it yet; the next run asks again.
    StillPending,
    /// Reading or writing failed; the next run tries again.
    LeftForNextRun(Failure),
    /// Not looked at: the run ran out of time, or stopped at a deployment fault.
    Deferred,
}

/// The counts of one run, for its summary log line and the function's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// Candidates the listing returned.
    pub found: usize,
    /// Candidates whose status was asked (found minus deferred).
    pub checked: usize,
    /// Completed from PeekShot's answer.
    pub completed: usize,
    /// Failed as PeekShot reported.
    pub failed: usize,
    /// Failed with [`TIMED_OUT_REASON`].
    pub timed_out: usize,
    /// Finished by someone else meanwhile.
    pub already_final: usize,
    /// Still open at PeekShot, or not known to it yet.
    pub still_pending: usize,
    /// Left open by a failed read or write.
    pub errors: usize,
    /// Not looked at this run.
    pub deferred: usize,
    /// The first deployment fault of the run, which stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_fault: Option<String>,
}

impl RunReport {
    fn count(&mut self, verdict: Reconciled) {
        self.found += 1;
        if verdict != Reconciled::Deferred {
            self.checked += 1;
        }
        match verdict {
            Reconciled::Completed => self.completed += 1,
            Reconciled::Failed => self.failed += 1,
            Reconciled::TimedOut => self.timed_out += 1,
            Reconciled::AlreadyFinal(_) => self.already_final += 1,
            Reconciled::StillPending => self.still_pending += 1,
            Reconciled::Deferred => self.deferred += 1,
            Reconciled::LeftForNextRun(failure) => {
                self.errors += 1;
                if failure.class == FailureClass::Deployment {
                    self.deployment_fault.get_or_insert(failure.reason);
                }
            }
        }
    }
}

/// One run: lists the captures SUBMITTED before `now - reconcile_after` and settles each one
/// PeekShot has an answer for, at most `concurrency` at a time. No new read starts after
/// `stop_starting_at` (the function's deadline, less a margin) or after a deployment fault;
/// the captures not looked at count as deferred. Fails only when the listing fails.
pub async fn reconcile<Q, A, S>(
    stale: &Q,
    peekshot: &A,
    store: &S,
    policy: &ReconcilePolicy,
    now: SystemTime,
    stop_starting_at: Option<Instant>,
) -> Result<RunReport, Failure>
where
    Q: StaleCaptures + ?Sized,
    A: ScreenshotStatus + ?Sized,
    S: CaptureStore + ?Sized,
{
    let cutoff = now
        .checked_sub(policy.reconcile_after)
        .unwrap_or(UNIX_EPOCH);
    let candidates = stale.submitted_before(cutoff, policy.max_per_run).await?;

    let halted = AtomicBool::new(false);
    let verdicts: Vec<Reconciled> = futures::stream::iter(candidates)
        .map(|capture| {
            let halted = &halted;
            async move {
                let out_of_time = stop_starting_at.is_some_and(|stop| Instant::now() >= stop);
                if out_of_time || halted.load(Ordering::Relaxed) {
                    return Reconciled::Deferred;
                }
                let verdict = reconcile_capture(peekshot, store, &capture, policy, now).await;
                if let Reconciled::LeftForNextRun(failure) = &verdict
                    && failure.class == FailureClass::Deployment
                {
                    halted.store(true, Ordering::Relaxed);
                }
                verdict
            }
        })
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;

    let mut report = RunReport::default();
    for verdict in verdicts {
        report.count(verdict);
    }
    if let Some(reason) = &report.deployment_fault {
        error!(
            reason = %reason,
            deferred = report.deferred,
            "deployment fault: the reconciler stopped asking PeekShot until the configuration is fixed"
        );
    }
    Ok(report)
}

/// Asks PeekShot about one capture and records what it says, or that it timed out.
pub async fn reconcile_capture<A, S>(
    peekshot: &A,
    store: &S,
    capture: &AwaitingCapture,
    policy: &ReconcilePolicy,
    now: SystemTime,
) -> Reconciled
where
    A: ScreenshotStatus + ?Sized,
    S: CaptureStore + ?Sized,
{
    let span = info_span!(
        "reconcile",
        capture_id = %capture.capture_id,
        request_id = %capture.request_id,
    );
    async move {
        let age = now
            .duration_since(capture.submitted_at)
            .unwrap_or_default();
        let given_up = age >= policy.give_up_after;
        let age_seconds = age.as_secs();

        let unanswered = match peekshot.read(&capture.request_id).await {
            Ok(ReadAnswer::Finished(outcome)) => return settle(store, capture, &outcome).await,
            Ok(ReadAnswer::InProgress(status)) => format!("PeekShot reports it {status}"),
            Ok(ReadAnswer::NotFound) => "PeekShot does not know its request id".to_owned(),
            Err(failure) if failure.class == FailureClass::Permanent => failure.reason,
            Err(failure) => {
                warn!(class = %failure.class, reason = %failure.reason, "reading the capture from PeekShot failed; left for the next run");
                return Reconciled::LeftForNextRun(failure);
            }
        };

        if !given_up {
            info!(age_seconds, state = %unanswered, "no outcome yet; asking again next run");
            return Reconciled::StillPending;
        }
        warn!(age_seconds, state = %unanswered, "no outcome within the give-up limit; failing the capture");
        let timed_out = Outcome::Failed {
            reason: TIMED_OUT_REASON.to_owned(),
        };
        match settle(store, capture, &timed_out).await {
            Reconciled::Failed => Reconciled::TimedOut,
            other => other,
        }
    }
    .instrument(span)
    .await
}

/// Records an outcome exactly as the webhook does.
async fn settle<S>(store: &S, capture: &AwaitingCapture, outcome: &Outcome) -> Reconciled
where
    S: CaptureStore + ?Sized,
{
    match store.record_outcome(&capture.request_id, outcome).await {
        Ok(Settlement::Applied(status)) => {
            warn!(%status, "capture finished from PeekShot's read endpoint; its webhook never arrived");
            if status == CaptureStatus::Complete {
                Reconciled::Completed
            } else {
                Reconciled::Failed
            }
        }
        Ok(Settlement::AlreadyFinal(status)) => {
            info!(%status, "capture was finished meanwhile; nothing changed");
            Reconciled::AlreadyFinal(status)
        }
        Ok(Settlement::Parked) => {
            warn!(
                "no capture is linked to this request id; the outcome is kept on the request item"
            );
            Reconciled::StillPending
        }
        Err(failure) => {
            warn!(class = %failure.class, reason = %failure.reason, "recording the outcome failed; left for the next run");
            Reconciled::LeftForNextRun(failure)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use serde_json::json;

    use super::*;
    use crate::ports::{Claim, CreatedCapture, Rejection};
    use crate::request::{CaptureRequest, InvalidRequest};

    const MINUTE: Duration = Duration::from_secs(60);

    fn policy() -> ReconcilePolicy {
        ReconcilePolicy {
            reconcile_after: 5 * MINUTE,
            give_up_after: 60 * MINUTE,
            concurrency: 4,
            max_per_run: 100,
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn awaiting(request_id: &str, age: Duration) -> AwaitingCapture {
        AwaitingCapture {
            capture_id: CaptureId::parse(&format!("capture-{request_id}")).unwrap(),
            request_id: RequestId::parse(request_id).unwrap(),
            submitted_at: now() - age,
        }
    }

    /// The listing: hands out its captures and remembers what it was asked.
    #[derive(Default)]
    struct Listing {
        captures: Vec<AwaitingCapture>,
        failure: Option<Failure>,
        asked: Mutex<Vec<(SystemTime, usize)>>,
    }

    #[async_trait]
    impl StaleCaptures for Listing {
        async fn submitted_before(
            &self,
            cutoff: SystemTime,
            limit: usize,
        ) -> Result<Vec<AwaitingCapture>, Failure> {
            self.asked.lock().unwrap().push((cutoff, limit));
            match &self.failure {
                Some(failure) => Err(failure.clone()),
                None => Ok(self.captures.clone()),
            }
        }
    }

    /// PeekShot's read endpoint with one fixed answer per request id.
    #[derive(Default)]
    struct Reads {
        answers: HashMap<String, Result<ReadAnswer, Failure>>,
        calls: AtomicUsize,
    }

    impl Reads {
        fn answer(mut self, request_id: &str, answer: Result<ReadAnswer, Failure>) -> Self {
            self.answers.insert(request_id.to_owned(), answer);
            self
        }
    }

    #[async_trait]
    impl ScreenshotStatus for Reads {
        async fn read(&self, request_id: &RequestId) -> Result<ReadAnswer, Failure> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            self.answers
                .get(request_id.as_str())
                .cloned()
                .unwrap_or(Ok(ReadAnswer::NotFound))
        }
    }

    /// The store: records every outcome written; request ids in `finished` are final already.
    #[derive(Default)]
    struct Records {
        finished: HashMap<String, CaptureStatus>,
        outcomes: Mutex<Vec<(String, Outcome)>>,
    }

    impl Records {
        fn written(&self) -> Vec<(String, Outcome)> {
            self.outcomes.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl CaptureStore for Records {
        async fn record_invalid(
            &self,
            _: &InvalidRequest,
            _: &str,
            _: &str,
        ) -> Result<Rejection, Failure> {
            unreachable!("the reconciler never rejects messages")
        }

        async fn claim(&self, _: &CaptureRequest, _: &str) -> Result<Claim, Failure> {
            unreachable!("the reconciler never claims")
        }

        async fn release(&self, _: &CaptureId, _: &Failure) -> Result<(), Failure> {
            unreachable!("the reconciler never releases")
        }

        async fn fail_unsubmitted(&self, _: &CaptureId, _: &str) -> Result<(), Failure> {
            unreachable!("the reconciler only finishes submitted captures")
        }

        async fn store_request_id(
            &self,
            _: &CaptureId,
            _: &CreatedCapture,
        ) -> Result<CaptureStatus, Failure> {
            unreachable!("the reconciler never submits")
        }

        async fn adopt_request_id(
            &self,
            _: &CaptureId,
            _: &CreatedCapture,
        ) -> Result<Option<CaptureStatus>, Failure> {
            unreachable!("the reconciler never adopts request ids")
        }

        async fn note_ambiguous_create(&self, _: &CaptureId) -> Result<(), Failure> {
            unreachable!("the reconciler never creates")
        }

        async fn record_outcome(
            &self,
            request_id: &RequestId,
            outcome: &Outcome,
        ) -> Result<Settlement, Failure> {
            self.outcomes
                .lock()
                .unwrap()
                .push((request_id.as_str().to_owned(), outcome.clone()));
            Ok(match self.finished.get(request_id.as_str()) {
                Some(status) => Settlement::AlreadyFinal(*status),
                None => Settlement::Applied(outcome.status()),
            })
        }
    }

    fn complete() -> Outcome {
        Outcome::Complete {
            file_url: Some("https://cdn.example/1.png".into()),
            credits: Some(1.0),
            duration_seconds: Some(1.5),
        }
    }

    async fn run(listing: &Listing, reads: &Reads, records: &Records) -> RunReport {
        reconcile(listing, reads, records, &policy(), now(), None)
            .await
            .expect("the listing works")
    }

    #[tokio::test]
    async fn captures_submitted_before_the_threshold_are_listed_up_to_the_run_limit() {
        let listing = Listing::default();
        run(&listing, &Reads::default(), &Records::default()).await;
        assert_eq!(
            *listing.asked.lock().unwrap(),
            vec![(now() - 5 * MINUTE, 100)]
        );
    }

    #[tokio::test]
    async fn a_capture_peekshot_finished_is_completed_with_its_file_url_through_record_outcome() {
        let listing = Listing {
            captures: vec![awaiting("1", 10 * MINUTE)],
            ..Listing::default()
        };
        let reads = Reads::default().answer("1", Ok(ReadAnswer::Finished(complete())));
        let records = Records::default();

        let report = run(&listing, &reads, &records).await;

        assert_eq!(records.written(), vec![("1".to_owned(), complete())]);
        assert_eq!((report.found, report.checked, report.completed), (1, 1, 1));
    }

    #[tokio::test]
    async fn a_capture_peekshot_failed_is_failed_with_peekshots_reason() {
        let failed = Outcome::Failed {
            reason: "bot protection".into(),
        };
        let listing = Listing {
            captures: vec![awaiting("2", 10 * MINUTE)],
            ..Listing::default()
        };
        let reads = Reads::default().answer("2", Ok(ReadAnswer::Finished(failed.clone())));
        let records = Records::default();

        let report = run(&listing, &reads, &records).await;

        assert_eq!(records.written(), vec![("2".to_owned(), failed)]);
        assert_eq!((report.failed, report.timed_out), (1, 0));
    }

    #[tokio::test]
    async fn an_open_or_unknown_capture_is_left_alone_before_the_give_up_limit() {
        let listing = Listing {
            captures: vec![awaiting("3", 10 * MINUTE), awaiting("4", 59 * MINUTE)],
            ..Listing::default()
        };
        let reads = Reads::default()
            .answer("3", Ok(ReadAnswer::InProgress("PROCESSING".into())))
            .answer("4", Ok(ReadAnswer::NotFound));
        let records = Records::default();

        let report = run(&listing, &reads, &records).await;

        assert!(records.written().is_empty());
        assert_eq!((report.checked, report.still_pending), (2, 2));
    }

    #[tokio::test]
    async fn an_open_or_unknown_capture_times_out_after_the_give_up_limit() {
        let listing = Listing {
            captures: vec![
                awaiting("5", 60 * MINUTE),
                awaiting("6", 61 * MINUTE),
                awaiting("7", 90 * MINUTE),
            ],
            ..Listing::default()
        };
        let reads = Reads::default()
            .answer("5", Ok(ReadAnswer::NotFound))
            .answer("6", Ok(ReadAnswer::InProgress("IN_QUEUE".into())))
            .answer("7", Err(Failure::permanent("PeekShot rejected the read")));
        let records = Records::default();

        let report = run(&listing, &reads, &records).await;

        let mut written = records.written();
        written.sort_by(|a, b| a.0.cmp(&b.0));
        let timed_out = Outcome::Failed {
            reason: "timed out waiting for PeekShot".into(),
        };
        assert_eq!(
            written,
            vec![
                ("5".to_owned(), timed_out.clone()),
                ("6".to_owned(), timed_out.clone()),
                ("7".to_owned(), timed_out),
            ]
        );
        assert_eq!((report.timed_out, report.failed), (3, 0));
    }

    #[tokio::test]
    async fn a_transient_read_failure_leaves_the_capture_even_past_the_give_up_limit() {
        let listing = Listing {
            captures: vec![awaiting("8", 24 * 60 * MINUTE)],
            ..Listing::default()
        };
        let reads = Reads::default().answer("8", Err(Failure::transient("PeekShot 503")));
        let records = Records::default();

        let report = run(&listing, &reads, &records).await;

        assert!(records.written().is_empty());
        assert_eq!((report.errors, report.timed_out), (1, 0));
        assert_eq!(report.deployment_fault, None);
    }

    #[tokio::test]
    async fn a_capture_finished_meanwhile_is_counted_and_left_as_it_is() {
        let listing = Listing {
            captures: vec![awaiting("9", 10 * MINUTE)],
            ..Listing::default()
        };
        let reads = Reads::default().answer("9", Ok(ReadAnswer::Finished(complete())));
        let records = Records {
            finished: HashMap::from([("9".to_owned(), CaptureStatus::Complete)]),
            ..Records::default()
        };

        let report = run(&listing, &reads, &records).await;

        assert_eq!((report.already_final, report.completed), (1, 0));
    }

    #[tokio::test]
    async fn a_deployment_fault_stops_the_run_and_is_reported_once() {
        let captures: Vec<AwaitingCapture> = (10..20)
            .map(|n| awaiting(&n.to_string(), 10 * MINUTE))
            .collect();
        let mut reads = Reads::default();
        for capture in &captures {
            reads = reads.answer(
                capture.request_id.as_str(),
                Err(Failure::deployment(
                    "PeekShot rejected the API key (HTTP 403)",
                )),
            );
        }
        let listing = Listing {
            captures,
            ..Listing::default()
        };
        let one_at_a_time = ReconcilePolicy {
            concurrency: 1,
            ..policy()
        };

        let report = reconcile(
            &listing,
            &reads,
            &Records::default(),
            &one_at_a_time,
            now(),
            None,
        )
        .await
        .unwrap();

        assert_eq!(reads.calls.load(Ordering::Relaxed), 1);
        assert_eq!((report.found, report.errors, report.deferred), (10, 1, 9));
        assert_eq!(
            report.deployment_fault.as_deref(),
            Some("PeekShot rejected the API key (HTTP 403)")
        );
    }

    #[tokio::test]
    async fn no_read_starts_once_the_time_budget_is_spent() {
        let listing = Listing {
            captures: vec![awaiting("21", 10 * MINUTE), awaiting("22", 10 * MINUTE)],
            ..Listing::default()
        };
        let reads = Reads::default();

        let report = reconcile(
            &listing,
            &reads,
            &Records::default(),
            &policy(),
            now(),
            Some(Instant::now()),
        )
        .await
        .unwrap();

        assert_eq!(reads.calls.load(Ordering::Relaxed), 0);
        assert_eq!((report.found, report.checked, report.deferred), (2, 0, 2));
    }

    #[tokio::test]
    async fn a_failed_listing_fails_the_run() {
        let listing = Listing {
            failure: Some(Failure::deployment("index awaiting-webhook is missing")),
            ..Listing::default()
        };
        let result = reconcile(
            &listing,
            &Reads::default(),
            &Records::default(),
            &policy(),
            now(),
            None,
        )
        .await;
        assert_eq!(result.map_err(|f| f.class), Err(FailureClass::Deployment));
    }

    #[test]
    fn a_complete_record_gives_the_screenshot_url_credits_and_duration() {
        let record = json!({
            "id": 100001, "status": "COMPLETE", "url": "https://example.com",
            "screenshotUrl": "https://cdn.example/100001.png", "screenshotImageSize": 68,
            "creditsRequired": 5, "duration": "1.5", "error": null,
        });
        assert_eq!(
            read_answer_of_record(&record),
            Some(ReadAnswer::Finished(Outcome::Complete {
                file_url: Some("https://cdn.example/100001.png".into()),
                credits: Some(5.0),
                duration_seconds: Some(1.5),
            }))
        );
    }

    #[test]
    fn a_failed_record_gives_its_error_or_error_message() {
        for (field, text) in [("error", "bot protection"), ("errorMessage", "timeout")] {
            let record = json!({"id": 1, "status": "FAILED", "screenshotUrl": null, field: text});
            assert_eq!(
                read_answer_of_record(&record),
                Some(ReadAnswer::Finished(Outcome::Failed {
                    reason: text.into()
                })),
                "{field}"
            );
        }
    }

    #[test]
    fn every_other_status_is_in_progress_and_a_non_object_is_unreadable() {
        for status in ["PENDING", "IN_QUEUE", "PROCESSING", "RETRYING"] {
            let record = json!({"id": 1, "status": status, "screenshotUrl": null, "error": null});
            assert_eq!(
                read_answer_of_record(&record),
                Some(ReadAnswer::InProgress(status.into()))
            );
        }
        assert_eq!(read_answer_of_record(&json!([1])), None);
    }
}

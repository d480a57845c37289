//! The reconciler Lambda: run on a schedule, it finds the captures that have waited too long
//! for PeekShot's webhook, asks PeekShot's read endpoint how each one stands, and finishes them
//! through the same write as the webhook (`capture::reconcile` holds the rules).
//!
//! The event (EventBridge's scheduled event, or anything else) carries nothing the run needs,
//! so it is taken as plain JSON and ignored. Everything that lasts longer than one invocation
//! (configuration, the API key, the HTTP connection pool, the DynamoDB client) is built once
//! here, before the runtime starts.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use capture::{ReconcilePolicy, reconcile};
use capture_adapters::{DynamoStore, PeekShotClient, ProcessEnv, ReconcilerConfig, SsmSecrets};
use lambda_runtime::{Context, Error, LambdaEvent, service_fn};
use serde_json::Value;
use tracing::{info, warn};

/// Time kept back from the function's deadline when deciding whether another read may start:
/// one read may take the whole PeekShot timeout, and the outcome write a few seconds more.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// What one invocation needs, shared by all invocations of this process.
struct Reconciler {
    store: DynamoStore,
    peekshot: PeekShotClient,
    policy: ReconcilePolicy,
    /// The limit of one PeekShot call, kept back from the deadline with [`DEADLINE_MARGIN`].
    read_timeout: Duration,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();

    let aws = capture_adapters::aws_config().await?;
    let config = ReconcilerConfig::load(&ProcessEnv, &SsmSecrets::new(&aws))
        .await
        .inspect_err(|problem| tracing::error!(%problem, "cannot start the reconciler"))?;
    let reconciler = Reconciler {
        store: DynamoStore::new(&aws, &config.table, config.retention),
        peekshot: PeekShotClient::new(&config.peekshot)?,
        policy: config.policy,
        read_timeout: config.peekshot.timeout,
    };

    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handle_run(&reconciler, event)
    }))
    .await
}

/// One scheduled run; answers its counts as JSON. A listing that failed for a transient reason
/// is logged and left to the next run; one that failed because the deployment is broken (no
/// index, no permission) fails the invocation, so the errors alarm sees it.
async fn handle_run(reconciler: &Reconciler, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let stop_starting_at = stop_starting_at(&event.context, reconciler.read_timeout);
    let read_budget_ms = stop_starting_at
        .map(|stop| stop.saturating_duration_since(Instant::now()).as_millis() as u64);
    let report = match reconcile(
        &reconciler.store,
        &reconciler.peekshot,
        &reconciler.store,
        &reconciler.policy,
        SystemTime::now(),
        stop_starting_at,
    )
    .await
    {
        Ok(report) => report,
        Err(failure) if failure.class == capture::FailureClass::Transient => {
            warn!(reason = %failure.reason, "listing the captures awaiting a webhook failed; the next run tries again");
            return Ok(serde_json::json!({"error": failure.reason}));
        }
        Err(failure) => {
            tracing::error!(class = %failure.class, reason = %failure.reason, "cannot list the captures awaiting a webhook");
            return Err(failure.into());
        }
    };

    info!(
        found = report.found,
        checked = report.checked,
        completed = report.completed,
        failed = report.failed,
        timed_out = report.timed_out,
        already_final = report.already_final,
        still_pending = report.still_pending,
        errors = report.errors,
        deferred = report.deferred,
        read_budget_ms,
        "reconcile run finished"
    );
    Ok(serde_json::to_value(&report)?)
}

/// The moment after which no new read should start: the invocation's deadline, less one
/// PeekShot call and [`DEADLINE_MARGIN`]. `None` when the context has no usable deadline: a
/// test's default context has none (0), and `cargo lambda watch` sends 600000, ten minutes
/// meant as a duration, which read as epoch milliseconds lies in 1970. A real invocation's
/// deadline is always in the future when it starts.
fn stop_starting_at(context: &Context, read_timeout: Duration) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let left_ms = u128::from(context.deadline).checked_sub(now_ms)?;
    let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(u64::MAX));
    Some(Instant::now() + left.saturating_sub(read_timeout + DEADLINE_MARGIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_deadline_or_one_in_the_past_means_no_stop() {
        assert_eq!(stop_starting_at(&Context::default(), Duration::ZERO), None);

        let mut watch = Context::default();
        watch.deadline = 600_000;
        assert_eq!(stop_starting_at(&watch, Duration::ZERO), None);
    }

    #[test]
    fn reads_stop_one_call_and_a_margin_before_the_deadline() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut context = Context::default();
        context.deadline = now_ms + 60_000;
        let stop = stop_starting_at(&context, Duration::from_secs(10)).unwrap();
        let left = stop.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(40) && left <= Duration::from_secs(45),
            "{left:?}"
        );

        context.deadline = now_ms + 2_000;
        let stop = stop_starting_at(&context, Duration::from_secs(10)).unwrap();
        assert!(stop <= Instant::now());
    }
}

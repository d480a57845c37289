//! A stand-in for the template's EventBridge schedule (`ReconcileSchedule` of
//! `ReconcilerFunction`), which `cargo lambda watch` does not have: every
//! [`ScheduleSettings::every`] it invokes the reconciler through watch's invoke API with a
//! scheduled event, as EventBridge would every `ReconcileIntervalMinutes`.
//!
//! The local stack runs it far more often than AWS (seconds instead of minutes) and gives the
//! reconciler short thresholds ([`reconciler_environment`]), so that a lost webhook is
//! recovered while a test waits. Runs never overlap: the next one starts only after the
//! previous invocation answered, which EventBridge does not promise and the reconciler does
//! not need (its writes are conditional), but which keeps the local logs readable.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::template::MOTO_ACCOUNT_ID;

/// Seconds between two local runs of the reconciler, unless `--reconcile-every-secs` says
/// otherwise.
pub const LOCAL_RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How long a local capture waits for its webhook before the reconciler asks the simulator
/// (`RECONCILE_AFTER_SECONDS`). The simulator finishes captures in well under a second.
pub const LOCAL_RECONCILE_AFTER: Duration = Duration::from_secs(3);
/// When a local capture without an outcome times out (`RECONCILE_GIVE_UP_SECONDS`).
pub const LOCAL_RECONCILE_GIVE_UP: Duration = Duration::from_secs(60);

/// Longest one invocation may take before it counts as failed (the reconciler's template
/// timeout is 60 seconds; watch may first have to start it).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// What to invoke and how often.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// The reconciler's invoke URL under watch.
    pub invoke_url: String,
    /// The interval between the end of one run and the start of the next.
    pub every: Duration,
    /// The event's `region`.
    pub region: String,
    /// The stack name, for the rule's name in the event's `resources`.
    pub stack_name: String,
}

/// The running schedule; dropping it stops the runs.
#[derive(Debug)]
pub struct Scheduler {
    task: JoinHandle<()>,
}

impl Scheduler {
    /// Starts invoking on the current Tokio runtime; the first run comes one interval from now.
    pub fn start(settings: ScheduleSettings) -> Self {
        let http = reqwest::Client::new();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(settings.every).await;
                run_once(&http, &settings).await;
            }
        });
        Self { task }
    }

    /// Stops the runs; an invocation in flight is abandoned, like one that timed out.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Invokes the reconciler once and logs what it did: the counts at info when it finished or
/// failed a capture, at debug otherwise, and a failed invocation at warn.
async fn run_once(http: &reqwest::Client, settings: &ScheduleSettings) {
    let event = scheduled_event(&settings.region, &settings.stack_name, SystemTime::now());
    let answer = http
        .post(&settings.invoke_url)
        .json(&event)
        .timeout(INVOKE_TIMEOUT)
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(%error, "the reconciler could not be invoked");
            return;
        }
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        tracing::warn!(%status, answer = %body, "the reconciler failed its run");
        return;
    }

    let settled = ["completed", "failed", "timedOut"]
        .iter()
        .any(|count| body[*count].as_u64().is_some_and(|n| n > 0));
    if settled {
        tracing::info!(report = %body, "the reconciler settled captures whose webhook was lost");
    } else {
        tracing::debug!(report = %body, "reconciler run");
    }
}

/// The event EventBridge sends a function for a scheduled rule
/// (`events/scheduled-reconcile.json` is one, for `cargo lambda invoke`).
pub fn scheduled_event(region: &str, stack_name: &str, at: SystemTime) -> Value {
    let time = time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    json!({
        "version": "0",
        "id": format!("local-{nanos}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": MOTO_ACCOUNT_ID,
        "time": time,
        "region": region,
        "resources": [format!(
            "arn:aws:events:{region}:{MOTO_ACCOUNT_ID}:rule/{stack_name}-ReconcilerFunctionReconcileSchedule"
        )],
        "detail": {}
    })
}

/// The reconciler's variables for the local stack, replacing any the template gave: the short
/// thresholds, so that a lost webhook is recovered within seconds. One watch runs every
/// function with one environment, so these reach the other functions too, which ignore them.
pub fn reconciler_environment(
    mut env: Vec<(String, String)>,
    after: Duration,
    give_up: Duration,
) -> Vec<(String, String)> {
    let local = [
        ("RECONCILE_AFTER_SECONDS", after.as_secs().to_string()),
        ("RECONCILE_GIVE_UP_SECONDS", give_up.as_secs().to_string()),
    ];
    env.retain(|(name, _)| !local.iter().any(|(local_name, _)| name == local_name));
    env.extend(local.map(|(name, value)| (name.to_owned(), value)));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_an_eventbridge_scheduled_event_of_the_local_stack() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_790_200_123);
        let event = scheduled_event("us-east-1", "peekshot-local", at);
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["time"], "2025-12-03T19:30:00Z");
        assert_eq!(event["account"], MOTO_ACCOUNT_ID);
        assert_eq!(
            event["resources"][0],
            "arn:aws:events:us-east-1:123456789012:rule/peekshot-local-ReconcilerFunctionReconcileSchedule"
        );
        assert_eq!(event["detail"], json!({}));
    }

    #[test]
    fn local_thresholds_replace_the_templates() {
        let env = vec![
            ("CAPTURE_TABLE".to_owned(), "t".to_owned()),
            ("RECONCILE_AFTER_SECONDS".to_owned(), "300".to_owned()),
        ];
        let env = reconciler_environment(env, Duration::from_secs(3), Duration::from_secs(60));
        assert_eq!(
            env,
            vec![
                ("CAPTURE_TABLE".to_owned(), "t".to_owned()),
                ("RECONCILE_AFTER_SECONDS".to_owned(), "3".to_owned()),
                ("RECONCILE_GIVE_UP_SECONDS".to_owned(), "60".to_owned()),
            ]
        );
    }
}

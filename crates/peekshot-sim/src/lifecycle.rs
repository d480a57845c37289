//! A capture's life after it is accepted: PENDING for the first half of
//! `complete_after`, PROCESSING for the second, then COMPLETE or FAILED, then
//! its webhook. An early capture (reserved host `early-webhook.test` or the
//! early-webhook fault) skips the wait and finishes inside the create request.

use std::time::Duration;

use tracing::Instrument;

use crate::state::{Accepted, SimState};
use crate::webhook::{self, WebhookBody};

/// How a capture ends, decided when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// COMPLETE, with the placeholder image.
    Complete,
    /// FAILED, with this reason as the record's `error`.
    Failed(&'static str),
}

/// Runs a capture through its states and sends its webhook; spawned as its
/// own task for every capture that is not early.
pub async fn run(state: SimState, accepted: Accepted) {
    let span = tracing::info_span!("capture", request_id = accepted.id);
    async {
        let total = state.config().complete_after;
        let pending_for = total / 2;
        tokio::time::sleep(pending_for).await;
        state.mark_processing(accepted.id);

        tokio::time::sleep(total.saturating_sub(pending_for)).await;
        finish(&state, &accepted, format_seconds(total)).await;
    }
    .instrument(span)
    .await;
}

/// Finishes a capture at once and delivers its webhook, returning only when
/// the receiver has answered (or every retry failed).
pub async fn finish_now(state: &SimState, accepted: &Accepted) {
    finish(state, accepted, format_seconds(Duration::ZERO)).await;
}

async fn finish(state: &SimState, accepted: &Accepted, duration: String) {
    let Some(record) = state.finish(accepted.id, accepted.outcome, duration) else {
        tracing::debug!("capture cleared by a reset before it finished");
        return;
    };
    tracing::info!(status = record.status.as_str(), "capture finished");
    webhook::send(state, accepted, &WebhookBody::for_record(&record)).await;
}

/// Seconds as PeekShot writes a duration: a decimal string without trailing
/// zeros, "1.5" for 1500 ms, "2" for 2000 ms.
pub fn format_seconds(duration: Duration) -> String {
    let millis = duration.as_millis();
    let (whole, fraction) = (millis / 1000, millis % 1000);
    if fraction == 0 {
        whole.to_string()
    } else {
        let text = format!("{whole}.{fraction:03}");
        text.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_decimal_seconds_without_trailing_zeros() {
        let shown = |ms| format_seconds(Duration::from_millis(ms));
        assert_eq!(shown(1_500), "1.5");
        assert_eq!(shown(50), "0.05");
        assert_eq!(shown(2_000), "2");
        assert_eq!(shown(0), "0");
        assert_eq!(shown(1_234), "1.234");
    }
}

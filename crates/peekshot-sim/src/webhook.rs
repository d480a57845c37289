//! Completion webhooks: the payload PeekShot POSTs when a capture finishes,
//! and its delivery with retries and the webhook faults (lost, late,
//! duplicated). A capture of the reserved host `lost-webhook.test` sends none.
//!
//! The payloads, the only shape on record for PeekShot:
//!
//! ```json
//! {"data":{"requestId":100001,"success":true,"fileUrl":"http://127.0.0.1:8700/files/100001.png","status":"COMPLETE","creditsRequired":1,"duration":"1.5"}}
//! {"data":{"requestId":100002,"success":false,"error":"Capture failed: ...","status":"FAILED"}}
//! ```
//!
//! A 2xx answer counts as delivered. Anything else, a connection error or no
//! answer within the webhook timeout is retried up to `webhook_retries` times,
//! waiting `webhook_backoff` and then twice as long each time, and then given
//! up. The URL is used verbatim, secret query included, and logged without it.

use std::time::Duration;

use serde::Serialize;
use tracing::Instrument;
use url::Url;

use crate::config::loggable_url;
use crate::state::{Accepted, SimState};
use crate::store::{CaptureStatus, Record};

/// The webhook body: everything sits under `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookBody {
    /// The capture's result.
    pub data: WebhookData,
}

/// The capture's result as the webhook reports it. Note `fileUrl` here
/// against `screenshotUrl` in the record, as PeekShot spells them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookData {
    /// The request id, an integer as in the create answer.
    pub request_id: u64,
    /// Whether the capture produced an image.
    pub success: bool,
    /// The image's URL, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_url: Option<String>,
    /// Why the capture failed, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// COMPLETE or FAILED.
    pub status: CaptureStatus,
    /// What the capture cost, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_required: Option<u32>,
    /// How long the capture took in seconds, on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

impl WebhookBody {
    /// The webhook for a finished record.
    pub fn for_record(record: &Record) -> Self {
        let success = record.status == CaptureStatus::Complete;
        Self {
            data: WebhookData {
                request_id: record.id,
                success,
                file_url: record.screenshot_url.clone().filter(|_| success),
                error: record.error.clone().filter(|_| !success),
                status: record.status,
                credits_required: success.then_some(record.credits_required),
                duration: record.duration.clone().filter(|_| success),
            },
        }
    }
}

/// Sends the webhook of a finished capture as its fault decisions say: not at
/// all, late, once or twice. Returns when every delivery has succeeded or been
/// given up, which is what lets an early webhook precede the create answer.
pub async fn send(state: &SimState, accepted: &Accepted, body: &WebhookBody) {
    let request_id = accepted.id;
    let Some(url) = state.config().webhook_url.clone() else {
        tracing::debug!(request_id, "no webhook URL configured; no webhook sent");
        return;
    };
    if accepted.webhook_withheld {
        state.count_webhook_withheld(accepted.generation);
        tracing::info!(
            request_id,
            reserved_host = crate::reserved::LOST_WEBHOOK_HOST,
            "webhook withheld"
        );
        return;
    }
    if accepted.faults.webhook_lost {
        tracing::info!(request_id, fault = "webhookLost", "webhook not sent");
        return;
    }
    if let Some(delay) = accepted.faults.webhook_delay {
        tracing::info!(
            request_id,
            fault = "webhookDelayed",
            delay_ms = delay.as_millis() as u64,
            "webhook held back"
        );
        tokio::time::sleep(delay).await;
    }

    let copies = if accepted.faults.webhook_duplicated {
        2
    } else {
        1
    };
    for copy in 1..=copies {
        let span = tracing::info_span!("webhook", copy, webhook = %loggable_url(&url));
        deliver(state, &url, body, accepted).instrument(span).await;
    }
}

/// One delivery with its retries. A reset in between stops it quietly.
async fn deliver(state: &SimState, url: &Url, body: &WebhookBody, accepted: &Accepted) {
    let generation = accepted.generation;
    let retries = state.config().webhook_retries;
    for attempt in 0..=retries {
        if !state.count_webhook_attempt(generation) {
            tracing::debug!("simulator was reset; delivery abandoned");
            return;
        }

        match state.http().post(url.clone()).json(body).send().await {
            Ok(answer) if answer.status().is_success() => {
                state.count_webhook_sent(generation, &accepted.url);
                tracing::info!(
                    attempt,
                    status = answer.status().as_u16(),
                    "webhook delivered"
                );
                return;
            }
            Ok(answer) => {
                tracing::warn!(
                    attempt,
                    status = answer.status().as_u16(),
                    "webhook refused"
                );
            }
            Err(error) => {
                // Without the URL: reqwest's message would otherwise quote it whole.
                let error = crate::error_chain(&error.without_url());
                tracing::warn!(attempt, %error, "webhook delivery failed");
            }
        }

        if attempt < retries {
            tokio::time::sleep(backoff(state.config().webhook_backoff, attempt)).await;
        }
    }
    state.count_webhook_failed(generation);
    tracing::warn!(retries, "webhook given up");
}

/// The wait after failed attempt `attempt` (0-based): base, 2 x base, 4 x base, ...
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::store::Store;

    fn finished(status: CaptureStatus) -> Record {
        let mut store = Store::new(7);
        store.insert("p".into(), "https://example.com".into(), Map::new(), 5);
        let record = store.update(7, |record| {
            record.status = status;
            record.duration = Some("1.5".into());
            if status == CaptureStatus::Complete {
                record.screenshot_url = Some("http://127.0.0.1:1/files/7.png".into());
            } else {
                record.error = Some("Capture failed: x".into());
            }
            record.clone()
        });
        record.expect("the record was just inserted")
    }

    #[test]
    fn success_payload_has_file_url_credits_and_duration() {
        let body =
            serde_json::to_value(WebhookBody::for_record(&finished(CaptureStatus::Complete)));
        assert_eq!(
            body.ok(),
            Some(json!({"data": {
                "requestId": 7, "success": true, "fileUrl": "http://127.0.0.1:1/files/7.png",
                "status": "COMPLETE", "creditsRequired": 5, "duration": "1.5"
            }}))
        );
    }

    #[test]
    fn failure_payload_has_only_the_error() {
        let body = serde_json::to_value(WebhookBody::for_record(&finished(CaptureStatus::Failed)));
        assert_eq!(
            body.ok(),
            Some(json!({"data": {
                "requestId": 7, "success": false, "error": "Capture failed: x", "status": "FAILED"
            }}))
        );
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let base = Duration::from_millis(200);
        let waits: Vec<u128> = (0..4).map(|a| backoff(base, a).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600]);
    }
}

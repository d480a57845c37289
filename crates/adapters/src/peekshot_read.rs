//! PeekShot's read endpoint, `GET /api/v1/screenshots/{requestId}`, which the reconciler asks
//! about captures whose webhook never came.
//!
//! The answer is PeekShot's envelope with the capture's record under `data` (`status`,
//! `screenshotUrl`, `creditsRequired`, `duration`, `error`, ...). The record is read by the
//! capture domain ([`capture::reconcile::read_answer_of_record`]) with the same tolerance as a
//! webhook; this module only speaks HTTP and classifies the answer:
//!
//! - 404 with a JSON body is PeekShot saying it does not know the request id
//!   ([`ReadAnswer::NotFound`]). A 404 whose body is not JSON (an HTML page, nothing) is not
//!   PeekShot's answer but a wrong `PEEKSHOT_BASE_URL`, and counts as a deployment fault: taking
//!   it for "unknown" would time every open capture out.
//! - Every other status is classified by [`FailureClass::of_http_status`], like a create.
//! - Timeouts and broken connections are transient; reading is free and changes nothing at
//!   PeekShot, so a failed read is simply asked again on the next run.

use async_trait::async_trait;
use capture::reconcile::read_answer_of_record;
use capture::{Failure, FailureClass, ReadAnswer, RequestId, ScreenshotStatus};
use serde_json::Value;
use url::Url;

use crate::peekshot::PeekShotClient;

/// Longest error text from PeekShot kept in a log line.
const MAX_REASON_LEN: usize = 300;

impl PeekShotClient {
    /// `{base}/api/v1/screenshots/{requestId}`. A request id holds only letters, digits, `-` and
    /// `_`, so it needs no escaping, but it is pushed as one path segment all the same.
    fn record_url(&self, request_id: &RequestId) -> Result<Url, Failure> {
        let mut url = self.screenshots.clone();
        url.path_segments_mut()
            .map_err(|()| Failure::deployment("the PeekShot base URL cannot take a path"))?
            .push(request_id.as_str());
        Ok(url)
    }
}

#[async_trait]
impl ScreenshotStatus for PeekShotClient {
    async fn read(&self, request_id: &RequestId) -> Result<ReadAnswer, Failure> {
        let response = self
            .http
            .get(self.record_url(request_id)?)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport_failure)?;
        interpret_read(status, &text)
    }
}

/// What a read's status code and body mean.
fn interpret_read(status: u16, body: &str) -> Result<ReadAnswer, Failure> {
    let json = serde_json::from_str::<Value>(body).ok();
    if status == 404 {
        return match json {
            Some(Value::Object(_)) => Ok(ReadAnswer::NotFound),
            _ => Err(Failure::deployment(
                "PeekShot's read endpoint answered 404 without PeekShot's JSON error: \
                 check PEEKSHOT_BASE_URL",
            )),
        };
    }
    if let Some(class) = FailureClass::of_http_status(status) {
        let message = json.as_ref().map(error_message).unwrap_or_default();
        let reason = if message.is_empty() {
            format!("PeekShot read failed (HTTP {status})")
        } else {
            format!("PeekShot read failed (HTTP {status}): {message}")
        };
        return Err(Failure {
            class,
            reason,
            retry_after: None,
            maybe_created: false,
            rate_limited: status == 429,
        });
    }

    let Some(value) = json else {
        return Err(Failure::transient("PeekShot's read answer is not JSON"));
    };
    let record = match value.get("data") {
        Some(data) => data,
        None => &value,
    };
    read_answer_of_record(record)
        .ok_or_else(|| Failure::transient("PeekShot's read answer holds no capture record"))
}

/// The error text of an answer: `message`, `error` or `data.error`, whichever is present.
fn error_message(value: &Value) -> String {
    ["message", "error"]
        .iter()
        .find_map(|key| value.get(*key).and_then(Value::as_str))
        .or_else(|| value.get("data")?.get("error")?.as_str())
        .unwrap_or_default()
        .chars()
        .take(MAX_REASON_LEN)
        .collect()
}

/// Timeouts, refused and broken connections.
fn transport_failure(error: reqwest::Error) -> Failure {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    Failure::transient(format!("PeekShot read {kind}: {}", error.without_url()))
}

#[cfg(test)]
mod tests {
    use capture::Outcome;

    use super::*;

    #[test]
    fn a_complete_record_in_the_envelope_is_finished_with_its_screenshot_url() {
        let body = r#"{"status":"success","message":"Screenshot fetched successfully",
            "statusCode":200,"data":{"id":100001,"status":"COMPLETE",
            "screenshotUrl":"http://127.0.0.1:8700/files/100001.png","creditsRequired":1,
            "duration":"0.3","error":null}}"#;
        assert_eq!(
            interpret_read(200, body),
            Ok(ReadAnswer::Finished(Outcome::Complete {
                file_url: Some("http://127.0.0.1:8700/files/100001.png".into()),
                credits: Some(1.0),
                duration_seconds: Some(0.3),
            }))
        );
    }

    #[test]
    fn a_pending_record_is_in_progress() {
        let body = r#"{"data":{"id":7,"status":"PENDING","screenshotUrl":null}}"#;
        assert_eq!(
            interpret_read(200, body),
            Ok(ReadAnswer::InProgress("PENDING".into()))
        );
    }

    #[test]
    fn peekshots_404_means_unknown_but_a_bare_404_is_the_deployments_fault() {
        let envelope = r#"{"status":"error","message":"Screenshot not found","statusCode":404}"#;
        assert_eq!(interpret_read(404, envelope), Ok(ReadAnswer::NotFound));

        let failure = interpret_read(404, "<html>Not Found</html>").unwrap_err();
        assert_eq!(failure.class, FailureClass::Deployment);
        assert!(
            failure.reason.contains("PEEKSHOT_BASE_URL"),
            "{}",
            failure.reason
        );
    }

    #[test]
    fn errors_are_classified_like_every_peekshot_answer_and_name_its_message() {
        let key = interpret_read(403, r#"{"message":"Invalid or inactive API key"}"#).unwrap_err();
        assert_eq!(key.class, FailureClass::Deployment);
        assert_eq!(
            key.reason,
            "PeekShot read failed (HTTP 403): Invalid or inactive API key"
        );
        let busy = interpret_read(503, "<html>Service Unavailable</html>").unwrap_err();
        assert_eq!(busy.class, FailureClass::Transient);
        assert_eq!(
            interpret_read(429, "").unwrap_err().class,
            FailureClass::Transient
        );
    }

    #[test]
    fn an_unreadable_success_is_transient() {
        for body in ["not json", r#"{"data":null}"#, "[1, 2]"] {
            assert_eq!(
                interpret_read(200, body).unwrap_err().class,
                FailureClass::Transient,
                "{body}"
            );
        }
    }
}

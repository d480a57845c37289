//! PeekShot's webhook payload, read tolerantly.
//!
//! Only one payload shape is on record (`{"data": {"requestId", "success", "fileUrl" |
//! "error"}}`), and PeekShot's own API spells the same things differently elsewhere
//! (`screenshotUrl`, `errorMessage`, a `status` field, ids as numbers or strings). So the parser
//! looks for each value under every known name, inside `data` or at the top level, and ignores
//! everything else. What it cannot do without is a request id and some sign of how the capture
//! went.

use serde_json::{Map, Value};

use crate::lifecycle::Outcome;
use crate::ports::RequestId;

/// What one webhook delivery says.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookNotice {
    /// The capture PeekShot is talking about.
    pub request_id: RequestId,
    /// How far it got.
    pub progress: Progress,
}

/// A finished capture, or a status that is not final yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// COMPLETE or FAILED.
    Finished(Outcome),
    /// Any other status (`PENDING`, `PROCESSING`, or one PeekShot adds later). Nothing to write.
    InProgress(String),
}

/// Why a webhook body cannot be used. Answered with 400; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The body is not JSON.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// The JSON is not an object.
    #[error("body must be a JSON object")]
    NotAnObject,
    /// No usable request id.
    #[error("no request id: expected data.requestId as a number or string ({0})")]
    NoRequestId(String),
}

/// Reads a webhook body.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookNotice, WebhookError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let Value::Object(top) = value else {
        return Err(WebhookError::NotAnObject);
    };
    let fields = match top.get("data") {
        Some(Value::Object(data)) => data,
        _ => &top,
    };

    let request_id = request_id(fields)?;
    Ok(WebhookNotice {
        request_id,
        progress: progress_of(fields),
    })
}

/// How far a capture got, from the fields PeekShot reports it with: a webhook's `data`, or the
/// record its read endpoint answers. Both spell the same things in the same few ways, so the
/// webhook and the reconciler read them with this one function and reach the same outcome.
pub(crate) fn progress_of(fields: &Map<String, Value>) -> Progress {
    let status = string(fields, &["status"]).map(|s| s.to_ascii_uppercase());
    let success = boolean(fields, "success");

    let finished_ok = match (status.as_deref(), success) {
        (Some("COMPLETE" | "COMPLETED"), _) => Some(true),
        (Some("FAILED" | "ERROR"), _) => Some(false),
        (_, Some(flag)) => Some(flag),
        _ => None,
    };

    match finished_ok {
        Some(true) => Progress::Finished(Outcome::Complete {
            file_url: string(fields, &["fileUrl", "screenshotUrl", "file_url"]),
            credits: number(fields, &["creditsRequired", "creditRequired", "credits"]),
            duration_seconds: number(fields, &["duration", "durationSeconds"]),
        }),
        Some(false) => Progress::Finished(Outcome::Failed {
            reason: error_text(fields)
                .unwrap_or_else(|| "PeekShot reported the capture failed without a reason".into()),
        }),
        None => Progress::InProgress(status.unwrap_or_else(|| "UNKNOWN".to_owned())),
    }
}

fn request_id(fields: &Map<String, Value>) -> Result<RequestId, WebhookError> {
    let raw = ["requestId", "request_id", "id"]
        .iter()
        .find_map(|key| match fields.get(*key) {
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            _ => None,
        })
        .ok_or_else(|| WebhookError::NoRequestId("field missing".to_owned()))?;
    RequestId::parse(&raw).map_err(WebhookError::NoRequestId)
}

fn string(fields: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| match fields.get(*key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    })
}

fn boolean(fields: &Map<String, Value>, key: &str) -> Option<bool> {
    match fields.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn number(fields: &Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|key| match fields.get(*key) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

fn error_text(fields: &Map<String, Value>) -> Option<String> {
    ["error", "errorMessage", "message"]
        .iter()
        .find_map(|key| match fields.get(*key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Some(Value::Object(inner)) => string(inner, &["message", "error"]),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> WebhookNotice {
        parse_webhook(body.as_bytes()).unwrap()
    }

    #[test]
    fn documented_success_payload_completes_with_the_file_url() {
        let notice = parse(
            r#"{"data": {"requestId": 4711, "success": true, "fileUrl": "https://cdn.example/x.png"}}"#,
        );
        assert_eq!(notice.request_id.as_str(), "4711");
        assert_eq!(
            notice.progress,
            Progress::Finished(Outcome::Complete {
                file_url: Some("https://cdn.example/x.png".into()),
                credits: None,
                duration_seconds: None,
            })
        );
    }

    #[test]
    fn documented_failure_payload_fails_with_peekshots_error() {
        let notice =
            parse(r#"{"data": {"requestId": 4711, "success": false, "error": "bot protection"}}"#);
        assert_eq!(
            notice.progress,
            Progress::Finished(Outcome::Failed {
                reason: "bot protection".into()
            })
        );
    }

    #[test]
    fn api_spellings_are_accepted_at_the_top_level() {
        let notice = parse(
            r#"{"requestId": "abc-9", "status": "COMPLETE", "screenshotUrl": "https://cdn/y.webp",
                "creditsRequired": "5", "duration": "12.5", "extra": {"ignored": true}}"#,
        );
        assert_eq!(notice.request_id.as_str(), "abc-9");
        assert_eq!(
            notice.progress,
            Progress::Finished(Outcome::Complete {
                file_url: Some("https://cdn/y.webp".into()),
                credits: Some(5.0),
                duration_seconds: Some(12.5),
            })
        );
    }

    #[test]
    fn error_message_spelling_and_status_failed_are_accepted() {
        let notice =
            parse(r#"{"data": {"requestId": 1, "status": "failed", "errorMessage": "timeout"}}"#);
        assert_eq!(
            notice.progress,
            Progress::Finished(Outcome::Failed {
                reason: "timeout".into()
            })
        );
    }

    #[test]
    fn failure_without_reason_gets_a_stated_one() {
        let notice = parse(r#"{"data": {"requestId": 1, "success": false}}"#);
        let Progress::Finished(Outcome::Failed { reason }) = notice.progress else {
            panic!("expected a failure");
        };
        assert!(reason.contains("without a reason"));
    }

    #[test]
    fn non_final_status_is_in_progress() {
        let notice = parse(r#"{"data": {"requestId": 1, "status": "PROCESSING"}}"#);
        assert_eq!(notice.progress, Progress::InProgress("PROCESSING".into()));
    }

    #[test]
    fn missing_request_id_is_an_error() {
        assert!(matches!(
            parse_webhook(br#"{"data": {"success": true}}"#),
            Err(WebhookError::NoRequestId(_))
        ));
    }

    #[test]
    fn request_id_with_odd_characters_is_an_error() {
        assert!(matches!(
            parse_webhook(br#"{"data": {"requestId": "a/b", "success": true}}"#),
            Err(WebhookError::NoRequestId(_))
        ));
    }

    #[test]
    fn malformed_json_and_non_objects_are_errors() {
        assert!(matches!(
            parse_webhook(b"{not json"),
            Err(WebhookError::NotJson(_))
        ));
        assert_eq!(parse_webhook(b"[1]"), Err(WebhookError::NotAnObject));
    }
}

//! The PeekShot HTTP client: the create endpoint, with every answer classified.
//!
//! It follows `shared/peekshot-api.md`: paths under `/api/v1`, the `x-api-key` header, option
//! values sent as strings as the reference documents them, and tolerance where the documents
//! disagree (`requestId` in `data` or at the top level, as a number or a string).

use std::time::Duration;

use async_trait::async_trait;
use capture::{CaptureRequest, CreatedCapture, Failure, FailureClass, RequestId, ScreenshotApi};
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use crate::config::PeekShotConfig;

/// Longest error text from PeekShot kept in a record or a log line.
const MAX_REASON_LEN: usize = 300;

/// Talks to PeekShot. Built once per cold start; the inner `reqwest::Client` pools connections.
#[derive(Debug, Clone)]
pub struct PeekShotClient {
    pub(crate) http: reqwest::Client,
    /// `{base}/api/v1/screenshots`: create, read (`/{id}`) and list share it.
    pub(crate) screenshots: Url,
    pub(crate) project_id: String,
    /// The configured limit for one call; a caller's deadline may shorten it.
    pub(crate) timeout: Duration,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API key cannot be sent as a header.
    #[error("the PeekShot API key contains characters that cannot be sent in a header")]
    BadApiKey,
    /// The HTTP client could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The compiled-in TLS roots could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The base URL cannot take the API path.
    #[error("cannot form the screenshots URL from the base URL: {0}")]
    BaseUrl(#[from] url::ParseError),
}

impl PeekShotClient {
    /// Builds the client; the API key becomes a sensitive default header, so it is sent on
    /// every request and hidden from `Debug` output.
    pub fn new(config: &PeekShotConfig) -> Result<Self, ClientError> {
        let mut key =
            HeaderValue::from_str(config.api_key.expose()).map_err(|_| ClientError::BadApiKey)?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);

        let http = crate::tls::reqwest_builder(config.tls_roots)?
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(3)))
            .user_agent(concat!(
                "peekshot-capture-pipeline/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;

        let mut base = config.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self {
            http,
            screenshots: base.join("api/v1/screenshots")?,
            project_id: config.project_id.clone(),
            timeout: config.timeout,
        })
    }

    /// The body of a create call. Every value is a string, as the reference types them.
    fn create_body(&self, request: &CaptureRequest) -> Value {
        let mut body = Map::new();
        body.insert("project_id".into(), json!(self.project_id));
        body.insert("url".into(), json!(request.url.as_str()));

        let o = &request.options;
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                body.insert(key.into(), Value::String(value));
            }
        };
        put("width", o.viewport.map(|v| v.width.to_string()));
        put("height", o.viewport.map(|v| v.height.to_string()));
        put("file_type", o.file_type.map(|f| f.as_str().to_owned()));
        put("full_page", o.full_page.map(|b| b.to_string()));
        put("retina", o.retina.map(|b| b.to_string()));
        put("delay", o.delay.map(|d| d.to_string()));
        put("dark_mode", o.dark_mode.map(|b| b.to_string()));
        put("block_ads", o.block_ads.map(|b| b.to_string()));
        put(
            "block_cookie_banner",
            o.block_cookie_banner.map(|b| b.to_string()),
        );
        put("element_selector", o.element_selector.clone());
        put("fresh", o.fresh.map(|b| b.to_string()));
        Value::Object(body)
    }
}

#[async_trait]
impl ScreenshotApi for PeekShotClient {
    async fn create(
        &self,
        request: &CaptureRequest,
        timeout: Duration,
    ) -> Result<CreatedCapture, Failure> {
        let response = self
            .http
            .post(self.screenshots.clone())
            .timeout(timeout.min(self.timeout))
            .json(&self.create_body(request))
            .send()
            .await
            .map_err(|e| transport_failure("create", e))?;

        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| transport_failure("create", e))?;

        if let Some(class) = FailureClass::of_http_status(status) {
            return Err(answer_failure(status, class, &text, retry_after));
        }
        parse_created(&text)
    }

    async fn find_created(
        &self,
        request: &CaptureRequest,
        since_ms: u64,
        timeout: Duration,
    ) -> Result<Vec<CreatedCapture>, Failure> {
        self.list_created(request.url.as_str(), since_ms, timeout)
            .await
    }
}

/// Reads `requestId` (in `data` or at the top level, number or string) and the credits.
fn parse_created(text: &str) -> Result<CreatedCapture, Failure> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Failure::transient(format!(
            "PeekShot accepted the create but its answer is not JSON: {e}"
        ))
    })?;
    let data = value.get("data").filter(|d| d.is_object());
    let field = |key: &str| data.and_then(|d| d.get(key)).or_else(|| value.get(key));

    let raw_id = match field("requestId") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => {
            return Err(Failure::transient(
                "PeekShot accepted the create but its answer has no requestId",
            ));
        }
    };
    let request_id = RequestId::parse(&raw_id).map_err(Failure::transient)?;
    let credits = ["creditRequired", "creditsRequired"]
        .iter()
        .find_map(|key| match field(key) {
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        });
    Ok(CreatedCapture {
        request_id,
        credits,
    })
}

/// A failure PeekShot answered with a status code. Credits that ran out are the deployment's
/// problem whatever status carries them.
fn answer_failure(
    status: u16,
    class: FailureClass,
    body: &str,
    retry_after: Option<Duration>,
) -> Failure {
    let message = error_message(body);
    let class = if message.to_ascii_lowercase().contains("credit") && status < 500 {
        FailureClass::Deployment
    } else {
        class
    };
    let what = match (status, class) {
        (401 | 403, _) => "PeekShot rejected the API key",
        (_, FailureClass::Deployment) => "PeekShot refused the account",
        (429, _) => "PeekShot is rate limiting",
        (_, FailureClass::Permanent) => "PeekShot rejected the capture request",
        _ => "PeekShot failed",
    };
    let reason = if message.is_empty() {
        format!("{what} (HTTP {status})")
    } else {
        format!("{what} (HTTP {status}): {message}")
    };
    Failure {
        class,
        reason,
        retry_after,
        maybe_created: false,
        rate_limited: status == 429,
    }
}

/// The error text of an answer: `message`, `error` or `data.error`, whichever is present.
fn error_message(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(value) => ["message", "error"]
            .iter()
            .find_map(|k| value.get(*k).and_then(Value::as_str))
            .or_else(|| {
                value
                    .get("data")
                    .and_then(|d| d.get("error"))
                    .and_then(Value::as_str)
            })
            .unwrap_or_default()
            .to_owned(),
        Err(_) => body.trim().to_owned(),
    };
    text.chars().take(MAX_REASON_LEN).collect()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(15 * 60)))
}

/// Timeouts, refused and broken connections: transient. Unless the connection was never
/// made, the request may have reached PeekShot, so a create that failed this way is marked
/// "maybe created".
fn transport_failure(call: &str, error: reqwest::Error) -> Failure {
    let reason = |kind: &str| format!("PeekShot {call} {kind}: {}", error_text(&error));
    if error.is_connect() {
        Failure::transient(reason("could not connect"))
    } else if error.is_timeout() {
        Failure::maybe_created(reason("timed out"))
    } else {
        Failure::maybe_created(reason("lost its connection"))
    }
}

/// An error's text without the URL, which reasons do not need.
fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "PeekShot");
    }
    text
}

/// How far before the claim a candidate may have been created and still be ours: PeekShot's
/// clock and ours may disagree by this much.
const CLOCK_SKEW_MS: u64 = 5_000;

/// The most candidates one lookup reads; more than a handful already means it cannot tell.
const LOOKUP_LIMIT: u32 = 50;

impl PeekShotClient {
    /// Lists this project's captures of `url` and keeps those created since `since_ms`, oldest
    /// first.
    async fn list_created(
        &self,
        url: &str,
        since_ms: u64,
        timeout: Duration,
    ) -> Result<Vec<CreatedCapture>, Failure> {
        let limit = LOOKUP_LIMIT.to_string();
        let response = self
            .http
            .get(self.screenshots.clone())
            .query(&[
                ("projectId", self.project_id.as_str()),
                ("url", url),
                ("limit", limit.as_str()),
                ("page", "1"),
            ])
            .timeout(timeout.min(self.timeout))
            .send()
            .await
            .map_err(|e| Failure::transient(format!("PeekShot list failed: {}", error_text(&e))))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let text = response
            .text()
            .await
            .map_err(|e| Failure::transient(format!("PeekShot list failed: {}", error_text(&e))))?;
        if let Some(class) = FailureClass::of_http_status(status) {
            return Err(answer_failure(status, class, &text, retry_after));
        }
        parse_listed(&text, url, since_ms.saturating_sub(CLOCK_SKEW_MS))
    }
}

/// The listed captures of `url` created at or after `from_ms`, oldest first. A record whose
/// creation time cannot be read is left out: adopting a stranger's capture is worse than
/// creating again.
fn parse_listed(text: &str, url: &str, from_ms: u64) -> Result<Vec<CreatedCapture>, Failure> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Failure::transient(format!("PeekShot's list answer is not JSON: {e}")))?;
    let records = value
        .get("data")
        .and_then(|d| d.get("screenshots"))
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::transient("PeekShot's list answer has no data.screenshots"))?;

    let mut found: Vec<(u64, CreatedCapture)> = records
        .iter()
        .filter(|r| r.get("url").and_then(Value::as_str) == Some(url))
        .filter_map(|r| {
            let created_ms = r
                .get("createdAt")
                .and_then(Value::as_str)
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as u64)?;
            let id = match r.get("id").or_else(|| r.get("requestId"))? {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return None,
            };
            let request_id = RequestId::parse(&id).ok()?;
            let credits = r.get("creditsRequired").and_then(Value::as_f64);
            (created_ms >= from_ms).then_some((
                created_ms,
                CreatedCapture {
                    request_id,
                    credits,
                },
            ))
        })
        .collect();
    found.sort_by_key(|(created_ms, _)| *created_ms);
    Ok(found.into_iter().map(|(_, created)| created).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_read_from_data_or_top_level_as_number_or_string() {
        let a =
            parse_created(r#"{"status":"success","data":{"requestId":123,"creditRequired":5}}"#)
                .unwrap();
        assert_eq!(a.request_id.as_str(), "123");
        assert_eq!(a.credits, Some(5.0));
        let b = parse_created(r#"{"requestId":"r-9"}"#).unwrap();
        assert_eq!(b.request_id.as_str(), "r-9");
    }

    #[test]
    fn a_success_without_request_id_is_transient() {
        let failure = parse_created(r#"{"status":"success","data":{}}"#).unwrap_err();
        assert_eq!(failure.class, FailureClass::Transient);
    }

    #[test]
    fn key_rejection_is_a_deployment_fault_and_names_peekshots_message() {
        let f = answer_failure(
            403,
            FailureClass::Deployment,
            r#"{"message":"Invalid API key"}"#,
            None,
        );
        assert_eq!(f.class, FailureClass::Deployment);
        assert_eq!(
            f.reason,
            "PeekShot rejected the API key (HTTP 403): Invalid API key"
        );
    }

    #[test]
    fn exhausted_credits_are_a_deployment_fault_even_on_a_400() {
        let f = answer_failure(
            400,
            FailureClass::Permanent,
            r#"{"message":"Insufficient credits"}"#,
            None,
        );
        assert_eq!(f.class, FailureClass::Deployment);
    }

    #[test]
    fn invalid_request_is_permanent_with_data_error() {
        let f = answer_failure(
            422,
            FailureClass::Permanent,
            r#"{"data":{"error":"bad url"}}"#,
            None,
        );
        assert_eq!(f.class, FailureClass::Permanent);
        assert!(f.reason.ends_with("bad url"), "{}", f.reason);
    }

    #[test]
    fn listed_captures_of_the_url_since_the_claim_are_returned_oldest_first() {
        let body = r#"{"data":{"screenshots":[
            {"id":3,"url":"https://a.example/","createdAt":"2026-12-03T10:00:30Z"},
            {"id":2,"url":"https://a.example/","createdAt":"2026-12-03T10:00:10Z"},
            {"id":1,"url":"https://a.example/","createdAt":"2026-12-03T09:00:00Z"},
            {"id":4,"url":"https://b.example/","createdAt":"2026-12-03T10:00:20Z"},
            {"id":5,"url":"https://a.example/","createdAt":"yesterday"}]}}"#;
        let from = OffsetDateTime::parse("2026-12-03T10:00:00Z", &Rfc3339).unwrap();
        let from_ms = (from.unix_timestamp() * 1000) as u64;
        let ids: Vec<String> = parse_listed(body, "https://a.example/", from_ms)
            .unwrap()
            .into_iter()
            .map(|c| c.request_id.to_string())
            .collect();
        assert_eq!(ids, ["2", "3"]);
    }

    #[test]
    fn retry_after_seconds_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }

    #[test]
    fn non_json_error_bodies_are_truncated() {
        let body = "x".repeat(1000);
        assert_eq!(error_message(&body).len(), MAX_REASON_LEN);
    }
}

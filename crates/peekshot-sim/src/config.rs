//! What one simulator run is configured with. The CLI in `main.rs` fills a
//! [`SimConfig`] from flags and environment variables; tests build one in
//! code, usually from [`SimConfig::default`] with short delays.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::faults::Faults;

/// The API key accepted unless configured.
pub const DEFAULT_API_KEY: &str = "sim-api-key";
/// The project accepted unless configured.
pub const DEFAULT_PROJECT_ID: &str = "sim-project";
/// The first request id handed out; six digits, like PeekShot's own ids.
pub const DEFAULT_FIRST_REQUEST_ID: u64 = 100_001;

/// The configuration of one simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// The only `x-api-key` accepted.
    pub api_key: String,
    /// The only `project_id` accepted on create.
    pub project_id: String,
    /// Where completion webhooks are POSTed, used verbatim (it may carry a
    /// secret in its query, which is why it is never logged whole). `None`
    /// sends no webhooks, like a project without one in PeekShot's dashboard.
    pub webhook_url: Option<Url>,
    /// How long a capture takes from acceptance to COMPLETE or FAILED; it is
    /// PROCESSING for the second half of that time.
    pub complete_after: Duration,
    /// The base of reported file URLs; `None` means the address the server is
    /// bound to, which is right unless it is reached through another address.
    pub public_url: Option<Url>,
    /// Re-deliveries of a webhook after a non-2xx answer or a connection
    /// error, before giving up.
    pub webhook_retries: u32,
    /// The wait before the first re-delivery; it doubles for each next one.
    pub webhook_backoff: Duration,
    /// How long one webhook delivery may take before it counts as failed.
    pub webhook_timeout: Duration,
    /// The first request id handed out.
    pub first_request_id: u64,
    /// The fault knobs at start-up; `PUT /_sim/faults` replaces them.
    pub faults: Faults,
    /// The seed of the fault dice; `None` picks one at random and logs it.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_key: DEFAULT_API_KEY.to_owned(),
            project_id: DEFAULT_PROJECT_ID.to_owned(),
            webhook_url: None,
            complete_after: Duration::from_millis(1_500),
            public_url: None,
            webhook_retries: 3,
            webhook_backoff: Duration::from_millis(200),
            webhook_timeout: Duration::from_secs(10),
            first_request_id: DEFAULT_FIRST_REQUEST_ID,
            faults: Faults::default(),
            seed: None,
        }
    }
}

/// Written by hand so that the API key and the webhook URL's query, both
/// secrets, never reach a log through `{:?}`.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("api_key", &"<redacted>")
            .field("project_id", &self.project_id)
            .field("webhook_url", &self.webhook_url.as_ref().map(loggable_url))
            .field("complete_after", &self.complete_after)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("webhook_retries", &self.webhook_retries)
            .field("webhook_backoff", &self.webhook_backoff)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("first_request_id", &self.first_request_id)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .finish()
    }
}

/// A URL fit for logs: scheme, host, port and path, without the user info,
/// query and fragment that may carry secrets.
pub fn loggable_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Both fail only for URLs that cannot have credentials, which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loggable_url_leaves_out_query_and_credentials() {
        let url = Url::parse("http://user:pw@127.0.0.1:9000/hooks/peekshot?token=s3cret#frag");
        let shown = url.as_ref().map(loggable_url).unwrap_or_default();
        assert_eq!(shown, "http://127.0.0.1:9000/hooks/peekshot");
    }

    #[test]
    fn debug_output_hides_the_api_key_and_webhook_secret() {
        let config = SimConfig {
            api_key: "key-123".into(),
            webhook_url: Url::parse("http://127.0.0.1:1/hook?token=s3cret").ok(),
            ..SimConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("key-123") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}

//! One classification of every failure, so that each caller acts on the class and never on
//! the details of a particular error.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// What a failure means for the capture that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Timeouts, broken connections, 408, 429, 5xx, DynamoDB throttling: try again later.
    Transient,
    /// The capture itself cannot succeed (invalid request, 400/422, PeekShot reported FAILED):
    /// record it FAILED with the reason and never retry.
    Permanent,
    /// The request is fine but the deployment is not (bad or inactive API key, no credits,
    /// missing configuration or permissions): keep the message for a retry once it is fixed.
    Deployment,
}

impl FailureClass {
    /// Whether the message that met this failure should come back to the submitter.
    pub fn keeps_message(self) -> bool {
        !matches!(self, FailureClass::Permanent)
    }

    /// Classifies an HTTP status code from PeekShot's create and list endpoints, per the
    /// contract's table. Success codes are not failures and come back as `None`. (A 404 from
    /// the read endpoint means an unknown request id; its caller handles that first.)
    pub fn of_http_status(status: u16) -> Option<FailureClass> {
        match status {
            200..=299 => None,
            // A wrong or inactive key, no credits, or (404, 405) a base URL that does not
            // point at PeekShot's API: the request is fine, the deployment is not.
            401..=405 => Some(FailureClass::Deployment),
            408 | 429 => Some(FailureClass::Transient),
            400..=499 => Some(FailureClass::Permanent),
            _ => Some(FailureClass::Transient),
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureClass::Transient => "transient",
            FailureClass::Permanent => "permanent",
            FailureClass::Deployment => "deployment",
        })
    }
}

/// A classified failure with a reason fit for a record and a log line (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class} failure: {reason}")]
pub struct Failure {
    /// What the caller should do.
    pub class: FailureClass,
    /// What went wrong, with the input that caused it.
    pub reason: String,
    /// The earliest moment a retry makes sense, when the other side said (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Whether a create that failed this way may still have created the capture (a timeout
    /// after the request was sent, a connection lost before the answer). The next attempt then
    /// looks for that capture before creating another.
    pub maybe_created: bool,
    /// Whether the other side asked us to slow down (PeekShot's 429): the submitter then
    /// slows the global pace as well as this message.
    pub rate_limited: bool,
}

impl Failure {
    /// A failure worth retrying.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Transient,
            reason: reason.into(),
            retry_after: None,
            maybe_created: false,
            rate_limited: false,
        }
    }

    /// A failure that ends the capture.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Permanent,
            reason: reason.into(),
            retry_after: None,
            maybe_created: false,
            rate_limited: false,
        }
    }

    /// A transient failure after which PeekShot may hold a capture the caller never heard of.
    pub fn maybe_created(reason: impl Into<String>) -> Self {
        Self {
            maybe_created: true,
            ..Self::transient(reason)
        }
    }

    /// A failure of the deployment rather than of the capture.
    pub fn deployment(reason: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Deployment,
            reason: reason.into(),
            retry_after: None,
            maybe_created: false,
            rate_limited: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureClass::*;
    use super::*;

    #[test]
    fn http_statuses_are_classified_per_the_contract() {
        assert_eq!(FailureClass::of_http_status(201), None);
        assert_eq!(FailureClass::of_http_status(400), Some(Permanent));
        assert_eq!(FailureClass::of_http_status(422), Some(Permanent));
        assert_eq!(FailureClass::of_http_status(404), Some(Deployment));
        assert_eq!(FailureClass::of_http_status(405), Some(Deployment));
        assert_eq!(FailureClass::of_http_status(401), Some(Deployment));
        assert_eq!(FailureClass::of_http_status(402), Some(Deployment));
        assert_eq!(FailureClass::of_http_status(403), Some(Deployment));
        assert_eq!(FailureClass::of_http_status(408), Some(Transient));
        assert_eq!(FailureClass::of_http_status(429), Some(Transient));
        assert_eq!(FailureClass::of_http_status(500), Some(Transient));
        assert_eq!(FailureClass::of_http_status(503), Some(Transient));
    }

    #[test]
    fn only_permanent_failures_let_the_message_go() {
        assert!(!Permanent.keeps_message());
        assert!(Transient.keeps_message());
        assert!(Deployment.keeps_message());
    }
}

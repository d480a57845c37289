//! The two secrets of one local run: the API key the simulator accepts and the webhook secret
//! the webhook function checks. They are random for every run, so nothing that worked locally
//! can depend on a value that might leak into a deployment.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};

/// Length of each generated secret.
const SECRET_LENGTH: usize = 32;

/// The shortest webhook secret the webhook function accepts (`WebhookConfig::load` in
/// `capture-adapters`, which this crate does not depend on).
const MIN_WEBHOOK_SECRET_LENGTH: usize = 16;

/// Why a chosen webhook secret was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChosenSecretError {
    /// Shorter than the webhook function accepts.
    #[error("the webhook secret must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters")]
    TooShort,
    /// A character that would need escaping in the `?secret=` query of the webhook URL.
    #[error(
        "the webhook secret may hold only letters, digits and - . _ ~ (it travels in a URL), not {0:?}"
    )]
    NotUrlSafe(char),
}

/// This run's API key and webhook secret.
#[derive(Clone)]
pub struct LocalSecrets {
    api_key: String,
    webhook_secret: String,
}

impl LocalSecrets {
    /// Two fresh secrets from the thread's cryptographically secure generator.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        Self {
            api_key: format!(
                "local-{}",
                Alphanumeric.sample_string(&mut rng, SECRET_LENGTH)
            ),
            webhook_secret: Alphanumeric.sample_string(&mut rng, SECRET_LENGTH),
        }
    }

    /// The same with a webhook secret of the caller's choosing, e.g. the one the sample webhook
    /// events in `events/` carry. Refused if shorter than the webhook function accepts, or if
    /// it holds a character that is not left as is in a URL's query.
    pub fn with_webhook_secret(self, webhook_secret: &str) -> Result<Self, ChosenSecretError> {
        if webhook_secret.len() < MIN_WEBHOOK_SECRET_LENGTH {
            return Err(ChosenSecretError::TooShort);
        }
        let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if let Some(c) = webhook_secret.chars().find(|&c| !unreserved(c)) {
            return Err(ChosenSecretError::NotUrlSafe(c));
        }
        Ok(Self {
            webhook_secret: webhook_secret.to_owned(),
            ..self
        })
    }

    /// The `x-api-key` the simulator accepts.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The `secret` query parameter the webhook function requires.
    pub fn webhook_secret(&self) -> &str {
        &self.webhook_secret
    }
}

/// Written by hand so that `{:?}` never prints a secret.
impl fmt::Debug for LocalSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSecrets")
            .field("api_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_run_gets_different_long_enough_secrets() {
        let (a, b) = (LocalSecrets::generate(), LocalSecrets::generate());
        assert_ne!(a.api_key(), b.api_key());
        assert_ne!(a.webhook_secret(), b.webhook_secret());
        assert!(a.webhook_secret().len() >= 16);
    }

    #[test]
    fn a_chosen_webhook_secret_must_be_long_enough_and_safe_in_a_url() {
        let chosen = LocalSecrets::generate()
            .with_webhook_secret("sample-webhook-secret-0123456789")
            .unwrap();
        assert_eq!(chosen.webhook_secret(), "sample-webhook-secret-0123456789");
        let refused = |secret: &str| LocalSecrets::generate().with_webhook_secret(secret).err();
        assert_eq!(refused("short"), Some(ChosenSecretError::TooShort));
        assert_eq!(
            refused("sixteen-chars-and&more"),
            Some(ChosenSecretError::NotUrlSafe('&'))
        );
        assert_eq!(
            refused("a secret with spaces"),
            Some(ChosenSecretError::NotUrlSafe(' '))
        );
    }

    #[test]
    fn debug_output_hides_both_secrets() {
        let secrets = LocalSecrets::generate();
        let shown = format!("{secrets:?}");
        assert!(!shown.contains(secrets.api_key()) && !shown.contains(secrets.webhook_secret()));
    }
}

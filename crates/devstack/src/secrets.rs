//! The two secrets of one local run: the API key the simulator accepts and the webhook secret
//! the webhook function checks. They are random for every run, so nothing that worked locally
//! can depend on a value that might leak into a deployment.

use std::fmt;

use rand::distr::{Alphanumeric, SampleString};

/// Length of each generated secret; the webhook function requires at least 16 characters.
const SECRET_LENGTH: usize = 32;

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
    fn debug_output_hides_both_secrets() {
        let secrets = LocalSecrets::generate();
        let shown = format!("{secrets:?}");
        assert!(!shown.contains(secrets.api_key()) && !shown.contains(secrets.webhook_secret()));
    }
}

//! Secrets: a wrapper that never prints its value, SSM Parameter Store as their source, and the
//! constant-time check of a presented webhook secret.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret value. `Debug` shows a placeholder, so a secret cannot reach a log line by
/// accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that must send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals this secret. Both sides are hashed first, so the comparison
    /// takes the same time whatever the lengths and wherever the first difference is.
    pub fn matches(&self, presented: &str) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let given = Sha256::digest(presented.as_bytes());
        expected.ct_eq(&given).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read secret parameter {parameter}: {reason}")]
pub struct SecretError {
    /// The parameter's name (not its value).
    pub parameter: String,
    /// What went wrong.
    pub reason: String,
}

/// Somewhere secrets are kept by name.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The decrypted value of the named secret.
    async fn fetch(&self, name: &str) -> Result<Secret, SecretError>;
}

/// SSM Parameter Store SecureString parameters, read with decryption.
pub struct SsmSecrets {
    client: aws_sdk_ssm::Client,
}

impl SsmSecrets {
    /// Uses the given SDK configuration (region, credentials, endpoint).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_ssm::Client::new(config),
        }
    }
}

#[async_trait]
impl SecretSource for SsmSecrets {
    async fn fetch(&self, name: &str) -> Result<Secret, SecretError> {
        let error = |reason: String| SecretError {
            parameter: name.to_owned(),
            reason,
        };
        let answer = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| error(aws_sdk_ssm::error::DisplayErrorContext(e).to_string()))?;
        answer
            .parameter
            .and_then(|p| p.value)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| error("the parameter has no value".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_accepts_only_the_exact_secret() {
        let secret = Secret::new("correct horse battery staple".into());
        assert!(secret.matches("correct horse battery staple"));
        assert!(!secret.matches("correct horse battery stapl"));
        assert!(!secret.matches("correct horse battery staple "));
        assert!(!secret.matches(""));
    }

    #[test]
    fn debug_output_is_redacted() {
        let secret = Secret::new("hunter2-hunter2".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}

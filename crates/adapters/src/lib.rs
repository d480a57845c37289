//! Adapters that connect the capture domain to the outside: PeekShot over HTTP
//! ([`peekshot`], and its read endpoint in [`peekshot_read`]), the DynamoDB table ([`dynamo`],
//! the reconciler's listing in [`awaiting`], and the global pace's bucket in [`pace`]), and the functions' configuration with its
//! secrets ([`config`], [`secret`]), and the TLS roots both HTTPS clients trust ([`tls`]). Each
//! Lambda binary builds these once per cold start.

pub mod awaiting;
pub mod config;
pub mod dynamo;
pub mod pace;
pub mod peekshot;
pub mod peekshot_read;
pub mod queue;
pub mod secret;
pub mod tls;

pub use config::ReconcilerConfig;
pub use config::{Env, ProcessEnv, SubmitterConfig, WebhookConfig};
pub use dynamo::DynamoStore;
pub use peekshot::PeekShotClient;
pub use queue::{CaptureQueue, Postponement, Requeue};
pub use secret::{Secret, SecretSource, SsmSecrets};

/// Why the AWS SDK configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    /// `TLS_ROOTS` is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The HTTPS client could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The AWS SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`
/// when a local stack stands in for AWS), with time limits that keep one slow DynamoDB or SQS
/// call from eating the invocation (two seconds an attempt, five for all retries of one call)
/// and an HTTPS client that trusts the roots `TLS_ROOTS` names ([`tls`]).
pub async fn aws_config() -> Result<aws_config::SdkConfig, AwsConfigError> {
    let roots = tls::TlsRoots::from_env(&ProcessEnv)?;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_secs(2))
        .operation_timeout(std::time::Duration::from_secs(5))
        .build();
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(tls::aws_http_client(roots)?)
        .timeout_config(timeouts)
        .load()
        .await)
}

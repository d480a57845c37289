//! Adapters that connect the capture domain to the outside: PeekShot over HTTP
//! ([`peekshot`], and its read endpoint in [`peekshot_read`]), the DynamoDB table ([`dynamo`],
//! the reconciler's listing in [`awaiting`], and the global pace's bucket in [`pace`]), and the functions' configuration with its
//! secrets ([`config`], [`secret`]). Each Lambda binary builds these once per cold start.

pub mod awaiting;
pub mod config;
pub mod dynamo;
pub mod pace;
pub mod peekshot;
pub mod peekshot_read;
pub mod queue;
pub mod secret;

pub use config::ReconcilerConfig;
pub use config::{Env, ProcessEnv, SubmitterConfig, WebhookConfig};
pub use dynamo::DynamoStore;
pub use peekshot::PeekShotClient;
pub use queue::{CaptureQueue, Postponement};
pub use secret::{Secret, SecretSource, SsmSecrets};

/// The AWS SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`
/// when a local stack stands in for AWS), with time limits that keep one slow DynamoDB or SQS
/// call from eating the invocation: two seconds an attempt, five for all retries of one call.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_secs(2))
        .operation_timeout(std::time::Duration::from_secs(5))
        .build();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}

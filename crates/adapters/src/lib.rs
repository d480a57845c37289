//! Adapters that connect the capture domain to the outside: PeekShot over HTTP
//! ([`peekshot`], and its read endpoint in [`peekshot_read`]), the DynamoDB table ([`dynamo`],
//! and the reconciler's listing in [`awaiting`]), and the functions' configuration with its
//! secrets ([`config`], [`secret`]). Each Lambda binary builds these once per cold start.

pub mod awaiting;
pub mod config;
pub mod dynamo;
pub mod peekshot;
pub mod peekshot_read;
pub mod secret;

pub use config::ReconcilerConfig;
pub use config::{Env, ProcessEnv, SubmitterConfig, WebhookConfig};
pub use dynamo::DynamoStore;
pub use peekshot::PeekShotClient;
pub use secret::{Secret, SecretSource, SsmSecrets};

/// The AWS SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`
/// when a local stack stands in for AWS).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

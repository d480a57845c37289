//! Adapters that connect the capture domain to the outside: PeekShot over HTTP
//! ([`peekshot`]), the DynamoDB table ([`dynamo`]), and the functions' configuration with its
//! secrets ([`config`], [`secret`]). Both Lambda binaries build these once per cold start.

pub mod config;
pub mod dynamo;
pub mod peekshot;
pub mod secret;

pub use config::{Env, ProcessEnv, SubmitterConfig, WebhookConfig};
pub use dynamo::DynamoStore;
pub use peekshot::PeekShotClient;
pub use secret::{Secret, SecretSource, SsmSecrets};

/// The AWS SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`
/// when a local stack stands in for AWS).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

//! AWS SDK configuration for moto: a fixed endpoint, Region and the dummy credentials moto
//! accepts, so that nothing from the user's own AWS configuration can reach the local stack
//! (or a local test reach a real account).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::{Credentials, Region};

/// The Region of the local stack.
pub const LOCAL_REGION: &str = "us-east-1";
/// moto accepts any credentials; these are the ones its documentation uses.
pub const LOCAL_ACCESS_KEY_ID: &str = "testing";
/// See [`LOCAL_ACCESS_KEY_ID`].
pub const LOCAL_SECRET_ACCESS_KEY: &str = "testing";

/// SDK configuration that talks to moto at `endpoint` in `region`.
pub async fn moto_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            LOCAL_ACCESS_KEY_ID,
            LOCAL_SECRET_ACCESS_KEY,
            None,
            None,
            "devstack",
        ))
        .load()
        .await
}

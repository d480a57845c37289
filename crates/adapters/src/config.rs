//! Configuration of the functions, read once per cold start from environment variables, with
//! the two secrets fetched from SSM Parameter Store.
//!
//! Deployed, the template sets `PEEKSHOT_API_KEY_PARAMETER` and `WEBHOOK_SECRET_PARAMETER` to
//! the names of SecureString parameters, and the values never appear in the template or the
//! function's environment. Locally (`cargo lambda watch`, tests) the values may be given
//! directly as `PEEKSHOT_API_KEY` and `WEBHOOK_SECRET`; a direct value wins over a parameter
//! name. A missing or malformed variable fails the cold start with an error naming it.

use std::time::Duration;

use capture::{PacePolicy, RetryPolicy};
use url::Url;

use crate::secret::{Secret, SecretError, SecretSource};

mod reconciler;
pub use reconciler::{
    DEFAULT_RECONCILE_AFTER, DEFAULT_RECONCILE_CONCURRENCY, DEFAULT_RECONCILE_GIVE_UP,
    DEFAULT_RECONCILE_MAX_PER_RUN, RECONCILER_REQUIRED_ENV, ReconcilerConfig,
};

/// Variables a deployment must set for the submitter (the template test checks them).
pub const SUBMITTER_REQUIRED_ENV: &[&str] = &[
    "CAPTURE_TABLE",
    "CAPTURE_QUEUE_URL",
    "PEEKSHOT_PROJECT_ID",
    "PEEKSHOT_API_KEY_PARAMETER",
];
/// Variables a deployment must set for the webhook.
pub const WEBHOOK_REQUIRED_ENV: &[&str] = &["CAPTURE_TABLE", "WEBHOOK_SECRET_PARAMETER"];
/// Secret values that only a local run may pass directly; a template must never set them.
pub const LOCAL_ONLY_SECRET_ENV: &[&str] = &["PEEKSHOT_API_KEY", "WEBHOOK_SECRET"];

/// PeekShot's public API, used when `PEEKSHOT_BASE_URL` is not set.
pub const DEFAULT_PEEKSHOT_BASE_URL: &str = "https://api.peekshot.com";
/// Messages of one batch submitted at once, unless `SUBMIT_CONCURRENCY` says otherwise.
pub const DEFAULT_SUBMIT_CONCURRENCY: usize = 10;
/// Days a record is kept before DynamoDB's TTL removes it.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Creates per second across all submitter invocations, unless `SUBMIT_RATE_PER_SECOND` says
/// otherwise. PeekShot publishes no limit; five a second is 18,000 captures an hour, more than
/// most plans' credits, and a 429 slows the pace down further on its own.
pub const DEFAULT_SUBMIT_RATE_PER_SECOND: f64 = 5.0;
/// Creates that may start at once after a quiet spell (`SUBMIT_BURST`).
pub const DEFAULT_SUBMIT_BURST: u64 = 5;
/// How long a message may wait inside an invocation for its pace slot (`SUBMIT_MAX_WAIT_SECONDS`).
/// With the template's 30-second timeout this leaves the create and the record their time.
pub const DEFAULT_SUBMIT_MAX_WAIT: Duration = Duration::from_secs(10);
/// How long one call to PeekShot may take. PeekShot answers a create in well under a second;
/// ten seconds leaves room for a slow day and still fits a 30 s invocation.
pub const DEFAULT_PEEKSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is absent or empty.
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    /// Neither the direct value nor the parameter name of a secret is set.
    #[error("missing secret: set {parameter} (deployed) or {direct} (local runs)")]
    MissingSecret {
        /// The SSM parameter name variable.
        parameter: &'static str,
        /// The direct value variable.
        direct: &'static str,
    },
    /// A variable is set but its value is unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The secret could not be read from SSM.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Where configuration values come from: the process environment in the functions, a map in
/// tests.
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.trim().is_empty())
    }
}

/// How to reach PeekShot.
#[derive(Debug, Clone)]
pub struct PeekShotConfig {
    /// `https://api.peekshot.com` or the simulator.
    pub base_url: Url,
    /// The PeekShot project captures belong to (not a secret).
    pub project_id: String,
    /// Sent as `x-api-key`.
    pub api_key: Secret,
    /// Limit for one HTTP call.
    pub timeout: Duration,
    /// The certificate authorities trusted (`TLS_ROOTS`).
    pub tls_roots: crate::tls::TlsRoots,
}

/// The submitter's settings.
#[derive(Debug, Clone)]
pub struct SubmitterConfig {
    /// The capture table.
    pub table: String,
    /// The capture queue, whose kept messages the submitter postpones.
    pub queue_url: String,
    /// PeekShot access.
    pub peekshot: PeekShotConfig,
    /// Messages of one batch in flight at once.
    pub concurrency: usize,
    /// The global pace of creates; `None` when `SUBMIT_RATE_PER_SECOND` is 0.
    pub pace: Option<PacePolicy>,
    /// How long kept messages wait before they come back.
    pub retry: RetryPolicy,
    /// Record lifetime.
    pub retention: Duration,
}

/// The webhook's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The capture table.
    pub table: String,
    /// The shared secret callers must present.
    pub secret: Secret,
    /// Record lifetime.
    pub retention: Duration,
}

impl SubmitterConfig {
    /// Reads the submitter's configuration; fetches the API key from SSM when only its
    /// parameter name is given.
    pub async fn load(env: &impl Env, secrets: &impl SecretSource) -> Result<Self, ConfigError> {
        let table = required(env, "CAPTURE_TABLE")?;
        let queue_url = required(env, "CAPTURE_QUEUE_URL")?;
        let project_id = required(env, "PEEKSHOT_PROJECT_ID")?;
        let base_url = parse_base_url(
            &env.var("PEEKSHOT_BASE_URL")
                .unwrap_or_else(|| DEFAULT_PEEKSHOT_BASE_URL.into()),
        )?;
        let concurrency = number(
            env,
            "SUBMIT_CONCURRENCY",
            DEFAULT_SUBMIT_CONCURRENCY as u64,
            1..=100,
        )?;
        let timeout_ms = number(
            env,
            "PEEKSHOT_TIMEOUT_MS",
            DEFAULT_PEEKSHOT_TIMEOUT.as_millis() as u64,
            100..=60_000,
        )?;
        let retention = retention(env)?;
        let pace = pace_policy(env)?;
        let retry = retry_policy(env)?;
        let api_key = secret(
            env,
            secrets,
            "PEEKSHOT_API_KEY",
            "PEEKSHOT_API_KEY_PARAMETER",
        )
        .await?;

        Ok(Self {
            table,
            queue_url,
            peekshot: PeekShotConfig {
                base_url,
                project_id,
                api_key,
                timeout: Duration::from_millis(timeout_ms),
                tls_roots: crate::tls::TlsRoots::from_env(env)?,
            },
            concurrency: concurrency as usize,
            pace,
            retry,
            retention,
        })
    }
}

impl WebhookConfig {
    /// Reads the webhook's configuration; fetches the secret from SSM when only its parameter
    /// name is given.
    pub async fn load(env: &impl Env, secrets: &impl SecretSource) -> Result<Self, ConfigError> {
        let table = required(env, "CAPTURE_TABLE")?;
        let retention = retention(env)?;
        let secret = secret(env, secrets, "WEBHOOK_SECRET", "WEBHOOK_SECRET_PARAMETER").await?;
        if secret.expose().len() < 16 {
            return Err(ConfigError::Invalid {
                name: "WEBHOOK_SECRET",
                reason: "the webhook secret must be at least 16 characters".into(),
            });
        }
        Ok(Self {
            table,
            secret,
            retention,
        })
    }
}

fn required(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    env.var(name).ok_or(ConfigError::Missing(name))
}

fn number(
    env: &impl Env,
    name: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = env.var(name) else {
        return Ok(default);
    };
    let value: u64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("{raw:?} is not a whole number"),
    })?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!("{value} is outside {}..={}", range.start(), range.end()),
        })
    }
}

/// `SUBMIT_RATE_PER_SECOND` (0 turns the global pace off), `SUBMIT_BURST` and
/// `SUBMIT_MAX_WAIT_SECONDS`.
fn pace_policy(env: &impl Env) -> Result<Option<PacePolicy>, ConfigError> {
    const NAME: &str = "SUBMIT_RATE_PER_SECOND";
    let rate = match env.var(NAME) {
        None => DEFAULT_SUBMIT_RATE_PER_SECOND,
        Some(raw) => {
            let rate: f64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
                name: NAME,
                reason: format!("{raw:?} is not a number"),
            })?;
            let limit = capture::pace::MAX_RATE_PER_SECOND;
            if !(rate == 0.0 || (0.01..=limit).contains(&rate)) {
                return Err(ConfigError::Invalid {
                    name: NAME,
                    reason: format!("{rate} is outside 0.01..={limit} (or 0 for no pace)"),
                });
            }
            rate
        }
    };
    let burst = number(env, "SUBMIT_BURST", DEFAULT_SUBMIT_BURST, 1..=1000)?;
    let max_wait = number(
        env,
        "SUBMIT_MAX_WAIT_SECONDS",
        DEFAULT_SUBMIT_MAX_WAIT.as_secs(),
        0..=600,
    )?;
    Ok((rate > 0.0).then(|| PacePolicy {
        rate_per_second: rate,
        burst: burst as u32,
        max_wait: Duration::from_secs(max_wait),
    }))
}

/// `RETRY_BASE_SECONDS`, `RETRY_MAX_SECONDS` and `DEPLOYMENT_RETRY_SECONDS`, over the
/// defaults of [`RetryPolicy`]. The local stack shortens them so that a test's retries take
/// seconds, not minutes.
fn retry_policy(env: &impl Env) -> Result<RetryPolicy, ConfigError> {
    let defaults = RetryPolicy::default();
    let seconds = |name, default: Duration| {
        number(env, name, default.as_secs(), 1..=43_200).map(Duration::from_secs)
    };
    let policy = RetryPolicy {
        base: seconds("RETRY_BASE_SECONDS", defaults.base)?,
        cap: seconds("RETRY_MAX_SECONDS", defaults.cap)?,
        deployment: seconds("DEPLOYMENT_RETRY_SECONDS", defaults.deployment)?,
        floor: defaults.floor,
    };
    if policy.cap < policy.base {
        return Err(ConfigError::Invalid {
            name: "RETRY_MAX_SECONDS",
            reason: "must be at least RETRY_BASE_SECONDS".into(),
        });
    }
    Ok(policy)
}

fn retention(env: &impl Env) -> Result<Duration, ConfigError> {
    let days = number(
        env,
        "CAPTURE_RETENTION_DAYS",
        DEFAULT_RETENTION_DAYS,
        1..=3650,
    )?;
    Ok(Duration::from_secs(days * 24 * 60 * 60))
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "PEEKSHOT_BASE_URL",
        reason,
    };
    let url = Url::parse(raw).map_err(|e| invalid(format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid(format!("{raw:?} must be an http(s) base URL")));
    }
    Ok(url)
}

async fn secret(
    env: &impl Env,
    secrets: &impl SecretSource,
    direct: &'static str,
    parameter: &'static str,
) -> Result<Secret, ConfigError> {
    if let Some(value) = env.var(direct) {
        return Ok(Secret::new(value));
    }
    let name = env
        .var(parameter)
        .ok_or(ConfigError::MissingSecret { parameter, direct })?;
    Ok(secrets.fetch(&name).await?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use async_trait::async_trait;

    use super::*;

    struct FixedSecrets(HashMap<&'static str, &'static str>);

    #[async_trait]
    impl SecretSource for FixedSecrets {
        async fn fetch(&self, name: &str) -> Result<Secret, SecretError> {
            self.0
                .get(name)
                .map(|v| Secret::new(v.to_string()))
                .ok_or_else(|| SecretError {
                    parameter: name.into(),
                    reason: "not found".into(),
                })
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |name| map.get(name).map(|v| v.to_string())
    }

    fn no_secrets() -> FixedSecrets {
        FixedSecrets(HashMap::new())
    }

    const SUBMITTER: &[(&str, &str)] = &[
        ("CAPTURE_TABLE", "captures"),
        ("CAPTURE_QUEUE_URL", "https://sqs.example/123/captures"),
        ("PEEKSHOT_PROJECT_ID", "proj"),
        ("PEEKSHOT_API_KEY_PARAMETER", "/p/key"),
    ];

    #[tokio::test]
    async fn submitter_reads_its_key_from_the_named_parameter_and_applies_defaults() {
        let secrets = FixedSecrets(HashMap::from([("/p/key", "k-123")]));
        let config = SubmitterConfig::load(&env(SUBMITTER), &secrets)
            .await
            .unwrap();
        assert_eq!(config.table, "captures");
        assert_eq!(config.peekshot.api_key.expose(), "k-123");
        assert_eq!(
            config.peekshot.base_url.as_str(),
            "https://api.peekshot.com/"
        );
        assert_eq!(config.concurrency, DEFAULT_SUBMIT_CONCURRENCY);
        assert_eq!(config.retry, RetryPolicy::default());
        let pace = config.pace.expect("paced by default");
        assert_eq!(pace.rate_per_second, DEFAULT_SUBMIT_RATE_PER_SECOND);
        assert_eq!(pace.burst as u64, DEFAULT_SUBMIT_BURST);
        assert_eq!(pace.max_wait, DEFAULT_SUBMIT_MAX_WAIT);
    }

    #[tokio::test]
    async fn pace_and_retry_settings_are_read_and_zero_turns_the_pace_off() {
        let mut pairs = SUBMITTER.to_vec();
        pairs.push(("PEEKSHOT_API_KEY", "k"));
        pairs.push(("SUBMIT_RATE_PER_SECOND", "2.5"));
        pairs.push(("SUBMIT_BURST", "3"));
        pairs.push(("RETRY_BASE_SECONDS", "1"));
        pairs.push(("RETRY_MAX_SECONDS", "8"));
        let config = SubmitterConfig::load(&env(&pairs), &no_secrets())
            .await
            .unwrap();
        let pace = config.pace.unwrap();
        assert_eq!((pace.rate_per_second, pace.burst), (2.5, 3));
        assert_eq!(config.retry.base, Duration::from_secs(1));
        assert_eq!(config.retry.cap, Duration::from_secs(8));

        let off = env(&[
            ("CAPTURE_TABLE", "t"),
            ("CAPTURE_QUEUE_URL", "q"),
            ("PEEKSHOT_PROJECT_ID", "p"),
            ("PEEKSHOT_API_KEY", "k"),
            ("SUBMIT_RATE_PER_SECOND", "0"),
        ]);
        let config = SubmitterConfig::load(&off, &no_secrets()).await.unwrap();
        assert!(config.pace.is_none());
    }

    #[tokio::test]
    async fn impossible_pace_and_retry_settings_are_named() {
        for (name, value) in [
            ("SUBMIT_RATE_PER_SECOND", "fast"),
            ("SUBMIT_RATE_PER_SECOND", "-1"),
            ("SUBMIT_BURST", "0"),
            ("RETRY_MAX_SECONDS", "5"),
        ] {
            let mut pairs = SUBMITTER.to_vec();
            pairs.push(("PEEKSHOT_API_KEY", "k"));
            pairs.push(("RETRY_BASE_SECONDS", "10"));
            pairs.push((name, value));
            let err = SubmitterConfig::load(&env(&pairs), &no_secrets())
                .await
                .unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[tokio::test]
    async fn every_required_submitter_variable_is_named_when_missing() {
        for missing in ["CAPTURE_TABLE", "CAPTURE_QUEUE_URL", "PEEKSHOT_PROJECT_ID"] {
            let pairs: Vec<_> = SUBMITTER
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = SubmitterConfig::load(&env(&pairs), &no_secrets())
                .await
                .unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
        let pairs: Vec<_> = SUBMITTER
            .iter()
            .copied()
            .filter(|(k, _)| *k != "PEEKSHOT_API_KEY_PARAMETER")
            .collect();
        let err = SubmitterConfig::load(&env(&pairs), &no_secrets())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("PEEKSHOT_API_KEY_PARAMETER"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_direct_local_value_wins_over_the_parameter() {
        let mut pairs = SUBMITTER.to_vec();
        pairs.push(("PEEKSHOT_API_KEY", "local-key"));
        let config = SubmitterConfig::load(&env(&pairs), &no_secrets())
            .await
            .unwrap();
        assert_eq!(config.peekshot.api_key.expose(), "local-key");
    }

    #[tokio::test]
    async fn malformed_numbers_and_urls_are_named() {
        let mut pairs = SUBMITTER.to_vec();
        pairs.push(("PEEKSHOT_API_KEY", "k"));
        pairs.push(("SUBMIT_CONCURRENCY", "lots"));
        let err = SubmitterConfig::load(&env(&pairs), &no_secrets())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("SUBMIT_CONCURRENCY"), "{err}");

        let mut pairs = SUBMITTER.to_vec();
        pairs.push(("PEEKSHOT_API_KEY", "k"));
        pairs.push(("PEEKSHOT_BASE_URL", "api.peekshot.com"));
        let err = SubmitterConfig::load(&env(&pairs), &no_secrets())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("PEEKSHOT_BASE_URL"), "{err}");
    }

    #[tokio::test]
    async fn an_unreadable_secret_parameter_fails_naming_it() {
        let err = SubmitterConfig::load(&env(SUBMITTER), &no_secrets())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/p/key"), "{err}");
    }

    #[tokio::test]
    async fn webhook_needs_a_secret_of_useful_length() {
        let short = env(&[("CAPTURE_TABLE", "t"), ("WEBHOOK_SECRET", "short")]);
        let err = WebhookConfig::load(&short, &no_secrets())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_SECRET"), "{err}");

        let missing = env(&[("CAPTURE_TABLE", "t")]);
        let err = WebhookConfig::load(&missing, &no_secrets())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("WEBHOOK_SECRET_PARAMETER"),
            "{err}"
        );
    }

    #[test]
    fn config_debug_output_never_shows_a_secret() {
        let config = WebhookConfig {
            table: "t".into(),
            secret: Secret::new("super-secret-value-123".into()),
            retention: Duration::from_secs(1),
        };
        assert!(!format!("{config:?}").contains("super-secret-value-123"));
    }
}

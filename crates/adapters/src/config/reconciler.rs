//! The reconciler's settings: the table, PeekShot access for reads, and how patient it is.
//!
//! It reads the same variables as the submitter where they mean the same thing
//! (`CAPTURE_TABLE`, `PEEKSHOT_BASE_URL`, the API key, `PEEKSHOT_TIMEOUT_MS`,
//! `CAPTURE_RETENTION_DAYS`), and its own `RECONCILE_*` variables for the rest. The read
//! endpoint needs no project, so `PEEKSHOT_PROJECT_ID` is optional here.

use std::time::Duration;

use capture::ReconcilePolicy;

use super::{
    ConfigError, DEFAULT_PEEKSHOT_BASE_URL, DEFAULT_PEEKSHOT_TIMEOUT, Env, PeekShotConfig, number,
    parse_base_url, required, retention, secret,
};
use crate::secret::SecretSource;

/// Variables a deployment must set for the reconciler (the template test checks them).
pub const RECONCILER_REQUIRED_ENV: &[&str] = &["CAPTURE_TABLE", "PEEKSHOT_API_KEY_PARAMETER"];

/// How long a capture waits for its webhook before PeekShot is asked, unless
/// `RECONCILE_AFTER_SECONDS` says otherwise. PeekShot usually finishes within 30 seconds and
/// has been seen to take two minutes; five minutes leaves the webhook its chance first.
pub const DEFAULT_RECONCILE_AFTER: Duration = Duration::from_secs(300);
/// How long after submission a capture without an outcome is failed as timed out, unless
/// `RECONCILE_GIVE_UP_SECONDS` says otherwise.
pub const DEFAULT_RECONCILE_GIVE_UP: Duration = Duration::from_secs(3600);
/// Reads in flight at once, unless `RECONCILE_CONCURRENCY` says otherwise: few enough to stay
/// far inside PeekShot's rate limit next to the submitter's creates.
pub const DEFAULT_RECONCILE_CONCURRENCY: usize = 5;
/// Most captures one run looks at, unless `RECONCILE_MAX_PER_RUN` says otherwise; the rest
/// wait for the next run.
pub const DEFAULT_RECONCILE_MAX_PER_RUN: usize = 200;

/// The reconciler's settings.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// The capture table.
    pub table: String,
    /// PeekShot access. `project_id` is empty unless `PEEKSHOT_PROJECT_ID` is set: reads do
    /// not send it, and the reconciler never creates a capture.
    pub peekshot: PeekShotConfig,
    /// Thresholds, concurrency and the size of one run.
    pub policy: ReconcilePolicy,
    /// Record lifetime, for request items the reconciler writes first.
    pub retention: Duration,
}

impl ReconcilerConfig {
    /// Reads the reconciler's configuration; fetches the API key from SSM when only its
    /// parameter name is given.
    pub async fn load(env: &impl Env, secrets: &impl SecretSource) -> Result<Self, ConfigError> {
        let table = required(env, "CAPTURE_TABLE")?;
        let base_url = parse_base_url(
            &env.var("PEEKSHOT_BASE_URL")
                .unwrap_or_else(|| DEFAULT_PEEKSHOT_BASE_URL.into()),
        )?;
        let timeout_ms = number(
            env,
            "PEEKSHOT_TIMEOUT_MS",
            DEFAULT_PEEKSHOT_TIMEOUT.as_millis() as u64,
            100..=60_000,
        )?;
        let after = number(
            env,
            "RECONCILE_AFTER_SECONDS",
            DEFAULT_RECONCILE_AFTER.as_secs(),
            1..=7 * 24 * 3600,
        )?;
        let give_up = number(
            env,
            "RECONCILE_GIVE_UP_SECONDS",
            DEFAULT_RECONCILE_GIVE_UP.as_secs(),
            2..=30 * 24 * 3600,
        )?;
        if give_up <= after {
            return Err(ConfigError::Invalid {
                name: "RECONCILE_GIVE_UP_SECONDS",
                reason: format!(
                    "{give_up} must be longer than RECONCILE_AFTER_SECONDS ({after}), or captures \
                     would time out before PeekShot is asked about them"
                ),
            });
        }
        let concurrency = number(
            env,
            "RECONCILE_CONCURRENCY",
            DEFAULT_RECONCILE_CONCURRENCY as u64,
            1..=50,
        )?;
        let max_per_run = number(
            env,
            "RECONCILE_MAX_PER_RUN",
            DEFAULT_RECONCILE_MAX_PER_RUN as u64,
            1..=10_000,
        )?;
        let retention = retention(env)?;
        let api_key = secret(
            env,
            secrets,
            "PEEKSHOT_API_KEY",
            "PEEKSHOT_API_KEY_PARAMETER",
        )
        .await?;

        Ok(Self {
            table,
            peekshot: PeekShotConfig {
                base_url,
                project_id: env.var("PEEKSHOT_PROJECT_ID").unwrap_or_default(),
                api_key,
                timeout: Duration::from_millis(timeout_ms),
                tls_roots: crate::tls::TlsRoots::from_env(env)?,
            },
            policy: ReconcilePolicy {
                reconcile_after: Duration::from_secs(after),
                give_up_after: Duration::from_secs(give_up),
                concurrency: concurrency as usize,
                max_per_run: max_per_run as usize,
            },
            retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use async_trait::async_trait;

    use super::*;
    use crate::secret::{Secret, SecretError};

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

    fn env(pairs: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<&str, &str> = pairs.into_iter().collect();
        move |name| map.get(name).map(|v| v.to_string())
    }

    fn deployed() -> Vec<(&'static str, &'static str)> {
        vec![
            ("CAPTURE_TABLE", "captures"),
            ("PEEKSHOT_API_KEY_PARAMETER", "/p/key"),
        ]
    }

    fn key_in_ssm() -> FixedSecrets {
        FixedSecrets(HashMap::from([("/p/key", "k-123")]))
    }

    #[tokio::test]
    async fn the_required_variables_suffice_and_the_defaults_apply() {
        let config = ReconcilerConfig::load(&env(deployed()), &key_in_ssm())
            .await
            .unwrap();
        assert_eq!(config.table, "captures");
        assert_eq!(config.peekshot.api_key.expose(), "k-123");
        assert_eq!(
            config.peekshot.base_url.as_str(),
            "https://api.peekshot.com/"
        );
        assert_eq!(config.peekshot.project_id, "");
        assert_eq!(
            config.policy,
            ReconcilePolicy {
                reconcile_after: Duration::from_secs(300),
                give_up_after: Duration::from_secs(3600),
                concurrency: 5,
                max_per_run: 200,
            }
        );
    }

    #[tokio::test]
    async fn every_required_variable_is_named_when_missing() {
        for missing in RECONCILER_REQUIRED_ENV {
            let pairs = deployed()
                .into_iter()
                .filter(|(name, _)| name != missing)
                .collect();
            let err = ReconcilerConfig::load(&env(pairs), &key_in_ssm())
                .await
                .unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[tokio::test]
    async fn thresholds_and_limits_are_read_and_checked() {
        let mut pairs = deployed();
        pairs.extend([
            ("RECONCILE_AFTER_SECONDS", "3"),
            ("RECONCILE_GIVE_UP_SECONDS", "60"),
            ("RECONCILE_CONCURRENCY", "2"),
            ("RECONCILE_MAX_PER_RUN", "10"),
        ]);
        let config = ReconcilerConfig::load(&env(pairs), &key_in_ssm())
            .await
            .unwrap();
        assert_eq!(config.policy.reconcile_after, Duration::from_secs(3));
        assert_eq!(config.policy.give_up_after, Duration::from_secs(60));
        assert_eq!(
            (config.policy.concurrency, config.policy.max_per_run),
            (2, 10)
        );

        let mut pairs = deployed();
        pairs.extend([
            ("RECONCILE_AFTER_SECONDS", "600"),
            ("RECONCILE_GIVE_UP_SECONDS", "600"),
        ]);
        let err = ReconcilerConfig::load(&env(pairs), &key_in_ssm())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("RECONCILE_GIVE_UP_SECONDS"),
            "{err}"
        );

        let mut pairs = deployed();
        pairs.push(("RECONCILE_CONCURRENCY", "0"));
        let err = ReconcilerConfig::load(&env(pairs), &key_in_ssm())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("RECONCILE_CONCURRENCY"), "{err}");
    }
}

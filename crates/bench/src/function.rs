//! One function process, started the way Lambda starts a `provided.al2023` function: the
//! `bootstrap` binary with a clean environment that names the runtime API, the function and
//! its configuration, and nothing else of the bench's own environment.
//!
//! The process is measured from outside, without any help from the function: the cold start
//! is the time from just before `spawn` to its first poll of the runtime API; peak memory is
//! the kernel's high-water mark of its resident set (`VmHWM` in `/proc/<pid>/status`, the
//! figure `getrusage` reports as `ru_maxrss`); CPU time is the process's CPU clock
//! (`clock_getcpuclockid`), user and system time of all its threads, in nanoseconds.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::time::{ClockId, clock_getcpuclockid, clock_gettime};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::runtime_api::{Invocation, RuntimeApi};

/// How long a cold start may take before the bench gives up on it.
const COLD_START_LIMIT: Duration = Duration::from_secs(10);

/// The memory size the template gives the functions, in MB; it is also what the runtime
/// reads from `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`.
pub const MEMORY_SIZE_MB: u64 = 128;

/// A function to start: its binary and the environment its template entry would give it.
/// Not `Debug`: the environment holds this run's API key and webhook secret.
#[derive(Clone)]
pub struct FunctionSpec {
    /// `submitter`, `webhook` or `reconciler`.
    pub name: &'static str,
    /// The `bootstrap` binary.
    pub binary: PathBuf,
    /// Configuration variables (`CAPTURE_TABLE`, ...), on top of Lambda's own.
    pub env: Vec<(String, String)>,
}

impl FunctionSpec {
    /// The same function with one variable set to another value.
    pub fn with_env(&self, name: &str, value: &str) -> Self {
        let mut spec = self.clone();
        spec.env.retain(|(key, _)| key != name);
        spec.env.push((name.to_owned(), value.to_owned()));
        spec
    }
}

/// A running function process and its runtime API.
pub struct FunctionProcess {
    name: &'static str,
    child: Child,
    pid: Pid,
    cpu_clock: ClockId,
    api: RuntimeApi,
    cold_start: Duration,
    log: PathBuf,
}

impl FunctionProcess {
    /// Starts the function and waits for its first poll. Its log lines (stdout and stderr,
    /// which Lambda would send to CloudWatch) go to `log`.
    pub async fn start(spec: &FunctionSpec, log: &Path) -> anyhow::Result<Self> {
        let api = RuntimeApi::start(spec.name).await?;
        let log_file =
            File::create(log).with_context(|| format!("creating log file {}", log.display()))?;
        let mut command = Command::new(&spec.binary);
        command
            .env_clear()
            .envs(lambda_env(spec.name, &api.address()))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);

        let spawned = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw)
            .context("the function process has no process id")?;
        let cpu_clock = clock_getcpuclockid(pid).context("reading the process's CPU clock id")?;

        let mut process = Self {
            name: spec.name,
            child,
            pid,
            cpu_clock,
            api,
            cold_start: Duration::ZERO,
            log: log.to_owned(),
        };
        let polled = match process.api.first_poll(COLD_START_LIMIT).await {
            Ok(at) => at,
            Err(problem) => {
                let tail = process.log_tail();
                process.stop().await;
                bail!("{} did not start: {problem:#}\n{tail}", spec.name);
            }
        };
        process.cold_start = polled.saturating_duration_since(spawned);
        Ok(process)
    }

    /// Time from just before `spawn` to the first poll of the runtime API.
    pub fn cold_start(&self) -> Duration {
        self.cold_start
    }

    /// Invokes the function with `event` and waits for its answer. A function that reports an
    /// error, or dies, fails the call with its last log lines.
    pub async fn invoke(&mut self, event: Value) -> anyhow::Result<Invocation> {
        let result = tokio::select! {
            result = self.api.invoke(event) => result,
            status = self.child.wait() => Err(anyhow::anyhow!(
                "the process exited during an invocation ({})",
                status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())
            )),
        };
        let invocation = result.with_context(|| format!("{}: {}", self.name, self.log_tail()))?;
        invocation
            .response()
            .with_context(|| format!("{}: {}", self.name, self.log_tail()))?;
        Ok(invocation)
    }

    /// User plus system CPU time of every thread of the process so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let spent = clock_gettime(self.cpu_clock).context("reading the process's CPU clock")?;
        Ok(Duration::from(spent))
    }

    /// The peak resident set size so far, in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_vm_hwm(&status).with_context(|| format!("{path} has no VmHWM line"))
    }

    /// Stops the process (SIGKILL, as Lambda ends an idle environment) and reaps it.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// The last lines of the function's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(12);
        format!(
            "last log lines of {} ({}):\n{}",
            self.name,
            self.log.display(),
            lines[start..].join("\n")
        )
    }
}

/// The variables Lambda itself sets for a `provided.al2023` function, as far as the runtime
/// and the SDK read them. The credentials are moto's dummies; the function's own
/// configuration comes from its [`FunctionSpec`].
fn lambda_env(name: &str, runtime_api: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            &MEMORY_SIZE_MB.to_string(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("AWS_REGION", devstack::aws::LOCAL_REGION),
        ("AWS_DEFAULT_REGION", devstack::aws::LOCAL_REGION),
        ("AWS_ACCESS_KEY_ID", devstack::aws::LOCAL_ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            devstack::aws::LOCAL_SECRET_ACCESS_KEY,
        ),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("TZ", ":UTC"),
        ("LANG", "en_US.UTF-8"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The `VmHWM` figure of a `/proc/<pid>/status` text, in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_bytes() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t    6144 kB\nVmRSS:\t 6000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(6144 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}

//! Local stacks for the end-to-end tests in `tests/`.
//!
//! [`shared_stack`] is one stack per test process, shared by its tests; [`start_stack`] is a
//! stack of a test's own, with extra `devstack up` flags (the chaos run's redeliveries and
//! settings), stopped when dropped. Either builds the stack's binaries, starts `devstack up` on
//! free ports as a child process and waits for its READY line. Both are synchronous (std
//! processes and a `OnceLock`), so any number of `#[tokio::test]` functions, each on its own
//! runtime, can share the one stack. The child is started with `--exit-with-parent`: when the
//! test process exits it notices, stops everything and exits itself, so nothing outlives the
//! test run.
//!
//! The child's log (the stack's and every component's) goes to
//! `<target>/devstack/harness-<pid>-<n>.log`; a start-up failure shows its last lines.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::stack::{READY_PREFIX, StackInfo};

/// How long the stack may take to start, build included.
const START_LIMIT: Duration = Duration::from_secs(300);
/// How many log lines a start-up failure shows.
const LOG_TAIL: usize = 40;

/// The stack shared by every test of this process, started on first use.
///
/// # Panics
/// When the stack cannot be built or started; the message holds the reason and the end of
/// the stack's log. A test cannot do anything useful without it.
pub fn shared_stack() -> &'static StackInfo {
    static STACK: OnceLock<Result<OwnedStack, String>> = OnceLock::new();
    match STACK.get_or_init(|| start_stack(&[]).map_err(|error| format!("{error:#}"))) {
        Ok(stack) => &stack.info,
        Err(error) => panic!("the local stack did not start: {error}"),
    }
}

/// How long a stack of a test's own gets to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A running `devstack up` child; dropping it stops the stack (SIGTERM, then a kill after
/// [`STOP_LIMIT`]).
pub struct OwnedStack {
    /// How to reach the stack.
    pub info: StackInfo,
    /// Where its log goes.
    pub log_path: PathBuf,
    child: Child,
}

impl Drop for OwnedStack {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root, found from this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).unwrap_or(manifest).to_owned()
}

/// Builds and starts a stack of the caller's own: `devstack up` on free ports with
/// `extra_args` appended.
pub fn start_stack(extra_args: &[String]) -> anyhow::Result<OwnedStack> {
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let number = STARTED.fetch_add(1, Ordering::Relaxed);
    let workspace = workspace_root();
    let cargo = crate::functions::cargo_program();

    let built = Command::new(&cargo)
        .args(crate::functions::build_args())
        .current_dir(&workspace)
        .output()
        .context("running cargo build for the local stack")?;
    if !built.status.success() {
        bail!(
            "cargo {} failed ({}):\n{}",
            crate::functions::build_args().join(" "),
            built.status,
            String::from_utf8_lossy(&built.stderr)
        );
    }

    let metadata = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(&workspace)
        .output()
        .context("running cargo metadata")?;
    let target_dir = crate::stack::parse_target_dir(&metadata.stdout)?;

    let log_dir = target_dir.join("devstack");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let log_path = log_dir.join(format!("harness-{}-{number}.log", std::process::id()));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let env_file = format!(".devstack/harness-{}-{number}.env", std::process::id());

    let mut child = Command::new(target_dir.join("debug/devstack"))
        .args([
            "up",
            "--moto-port",
            "0",
            "--sim-port",
            "0",
            "--lambda-port",
            "0",
        ])
        .args(["--sim-complete-after-ms", "300", "--exit-with-parent"])
        .args(["--env-file", &env_file])
        .args(extra_args)
        .current_dir(&workspace)
        .env("CARGO", &cargo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting devstack up")?;
    let stdout = child.stdout.take().context("devstack up has no stdout")?;

    // A thread reads stdout so that the wait can time out; it keeps reading afterwards, so
    // the child never writes into a closed pipe.
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                // Nobody listens any more; keep draining.
                continue;
            }
        }
    });

    let deadline = std::time::Instant::now() + START_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.starts_with(READY_PREFIX) => {
                let info = StackInfo::from_ready_line(&line)
                    .with_context(|| format!("unreadable READY line: {line}"))?;
                return Ok(OwnedStack {
                    info,
                    log_path,
                    child,
                });
            }
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                bail!(
                    "devstack up was not ready after {START_LIMIT:?}; {}",
                    log_tail(&log_path)
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                bail!(
                    "devstack up exited before it was ready ({status}); {}",
                    log_tail(&log_path)
                );
            }
        }
    }
}

/// The last lines of the child's log, with its path.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL)..];
    format!(
        "the end of its log ({}):\n{}",
        path.display(),
        tail.join("\n")
    )
}

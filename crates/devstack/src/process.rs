//! The stack's child processes (moto, the simulator, `cargo lambda watch`): started in their
//! own process groups, their output kept and optionally echoed, and stopped together with
//! everything they started.
//!
//! Each child leads a new process group, so one signal reaches the helpers it forks. That is
//! not enough for `cargo lambda watch`: it starts each function in a session of its own. So
//! [`ChildProcess::stop`] also notes the child's descendants (from `/proc`, which makes this
//! module Linux-only) before it sends SIGTERM, and SIGKILLs whichever of them is still there
//! after the grace period. A child that is dropped without `stop` gets SIGKILL straight away.
//! Descendants are found through their parents, so a grandchild whose parent died first (a
//! function left behind by a crashed watch, say) is no longer found and must be ended by hand.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{oneshot, watch};

/// How many of a child's last output lines are kept for error reports.
const TAIL_LINES: usize = 25;

/// What to start, and how to treat its output.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    /// Short name used in logs and errors, e.g. "moto".
    pub name: &'static str,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments. Never put a secret here: other local users can read command lines.
    pub args: Vec<OsString>,
    /// Extra environment variables (readable only by the same user), for secrets too.
    pub envs: Vec<(String, String)>,
    /// Working directory.
    pub current_dir: PathBuf,
    /// Whether to copy each output line to our stderr, prefixed with the name.
    pub echo: bool,
    /// A prefix of the stdout line that means "ready"; [`ChildProcess::spawn`] then hands
    /// back a receiver for the first such line.
    pub ready_line: Option<String>,
    /// Values replaced by `<redacted>` in every output line we echo or keep, so that a child
    /// that logs its environment (watch's file watcher does, at info) cannot put this run's
    /// secrets into our log.
    pub redact: Vec<String>,
}

/// Why a child could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The executable could not be started.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// The child's name.
        name: &'static str,
        /// The executable.
        program: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// The child exited while the stack was starting or running.
    #[error("{0}")]
    Exited(ExitReport),
    /// The child did not report ready in time.
    #[error("{name} was not ready after {waited:?}; {}", format_tail(.tail))]
    NotReady {
        /// The child's name.
        name: &'static str,
        /// How long we waited.
        waited: Duration,
        /// Its last output lines.
        tail: Vec<String>,
    },
}

/// How a child ended, with its last output lines.
#[derive(Debug, Clone)]
pub struct ExitReport {
    /// The child's name.
    pub name: &'static str,
    /// The exit status as the system describes it.
    pub status: String,
    /// Its last output lines.
    pub tail: Vec<String>,
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} exited unexpectedly ({}); {}",
            self.name,
            self.status,
            format_tail(&self.tail)
        )
    }
}

fn format_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return "it printed nothing".to_owned();
    }
    let mut text = String::from("its last output lines:");
    for line in tail {
        text.push_str("\n    ");
        text.push_str(line);
    }
    text
}

/// The last lines a child printed on stdout and stderr, shared with its reader tasks.
#[derive(Debug, Clone, Default)]
struct OutputTail(Arc<Mutex<VecDeque<String>>>);

impl OutputTail {
    fn push(&self, line: String) {
        // A poisoned lock only means a reader panicked mid-push; the lines are still usable.
        let mut lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        let lines = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.iter().cloned().collect()
    }
}

/// A running child process that leads its own process group.
#[derive(Debug)]
pub struct ChildProcess {
    name: &'static str,
    pid: i32,
    exit: watch::Receiver<Option<String>>,
    tail: OutputTail,
    /// Set when [`ChildProcess::stop`] begins: what the child prints while it shuts down is
    /// kept in the tail but no longer echoed, since shutdown chatter (watch reports its
    /// cancelled tasks as errors) would read like a failure of the run that just succeeded.
    stopping: Arc<AtomicBool>,
    stopped: bool,
}

impl ChildProcess {
    /// Starts `command` in a new process group with its output read line by line. Returns
    /// the receiver of the ready line when [`ChildCommand::ready_line`] is set.
    pub fn spawn(
        command: ChildCommand,
    ) -> Result<(Self, Option<oneshot::Receiver<String>>), ChildError> {
        let spawn_error = |source| ChildError::Spawn {
            name: command.name,
            program: command.program.display().to_string(),
            source,
        };
        let mut child = tokio::process::Command::new(&command.program)
            .args(&command.args)
            .envs(command.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(&command.current_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| spawn_error(std::io::Error::other("the child has no process id")))?;

        let tail = OutputTail::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = match command.ready_line {
            Some(prefix) => {
                let (tx, rx) = oneshot::channel();
                (Some((prefix, tx)), Some(rx))
            }
            None => (None, None),
        };
        let output = Output {
            name: command.name,
            echo: command.echo,
            stopping: stopping.clone(),
            tail: tail.clone(),
            redact: Arc::new(
                command
                    .redact
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect(),
            ),
        };
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(read_lines(stdout, output.clone(), ready_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(read_lines(stderr, output, None));
        }

        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("its status could not be read: {e}"),
            };
            let _ = exit_tx.send(Some(status));
        });

        let process = Self {
            name: command.name,
            pid,
            exit: exit_rx,
            tail,
            stopping,
            stopped: false,
        };
        Ok((process, ready_rx))
    }

    /// The child's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The child's process id, which is also its process group id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its last output lines.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lines()
    }

    /// Waits until the child exits, however long that takes.
    pub async fn exited(&self) -> ExitReport {
        let mut exit = self.exit.clone();
        let status = match exit.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or_default(),
            Err(_) => "its waiter stopped".to_owned(),
        };
        // Give the reader tasks a moment to take the last lines from the pipes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        ExitReport {
            name: self.name,
            status,
            tail: self.tail.lines(),
        }
    }

    /// Waits for the ready line, failing if the child exits first or `limit` passes.
    pub async fn ready(
        &self,
        ready: oneshot::Receiver<String>,
        limit: Duration,
    ) -> Result<String, ChildError> {
        tokio::select! {
            line = ready => match line {
                Ok(line) => Ok(line),
                Err(_) => Err(ChildError::Exited(self.exited().await)),
            },
            report = self.exited() => Err(ChildError::Exited(report)),
            () = tokio::time::sleep(limit) => Err(self.not_ready(limit)),
        }
    }

    /// The error for a child that did not get ready within `waited`.
    pub fn not_ready(&self, waited: Duration) -> ChildError {
        ChildError::NotReady {
            name: self.name,
            waited,
            tail: self.tail.lines(),
        }
    }

    /// Stops the child and everything it started: SIGTERM to its group, up to `grace` for it
    /// to exit, then SIGKILL to its group and to any descendant that is still running.
    pub async fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.stopping.store(true, Ordering::Relaxed);

        let family = descendants(self.pid);
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGTERM);
        let mut exit = self.exit.clone();
        let _ = tokio::time::timeout(grace, exit.wait_for(Option::is_some)).await;

        // Descendants in other sessions need a moment after their parent's exit to stop.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while family.iter().any(Process::is_running) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        kill_all(self.pid, &family);
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if !self.stopped {
            kill_all(self.pid, &descendants(self.pid));
        }
    }
}

/// SIGKILL to the group led by `leader` and to every process of `family` still running.
fn kill_all(leader: i32, family: &[Process]) {
    let _ = killpg(Pid::from_raw(leader), Signal::SIGKILL);
    for process in family.iter().filter(|p| p.is_running()) {
        let _ = kill(Pid::from_raw(process.pid), Signal::SIGKILL);
    }
}

/// Where a child's output lines go.
#[derive(Clone)]
struct Output {
    name: &'static str,
    echo: bool,
    stopping: Arc<AtomicBool>,
    tail: OutputTail,
    redact: Arc<Vec<String>>,
}

async fn read_lines(
    stream: impl AsyncRead + Unpin,
    output: Output,
    mut ready: Option<(String, oneshot::Sender<String>)>,
) {
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
        for secret in output.redact.iter() {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), "<redacted>");
            }
        }
        if output.echo && !output.stopping.load(Ordering::Relaxed) {
            eprintln!("[{}] {line}", output.name);
        }
        let is_ready_line = ready
            .as_ref()
            .is_some_and(|(prefix, _)| line.starts_with(prefix.as_str()));
        if is_ready_line && let Some((_, sender)) = ready.take() {
            let _ = sender.send(line.clone());
        }
        output.tail.push(line);
    }
}

/// A process as `/proc` saw it; the start time tells it apart from a later process that
/// reuses its id.
#[derive(Debug, Clone, PartialEq)]
struct Process {
    pid: i32,
    start_time: u64,
}

impl Process {
    fn is_running(&self) -> bool {
        read_stat(self.pid)
            .is_some_and(|stat| stat.start_time == self.start_time && stat.state != 'Z')
    }
}

struct Stat {
    parent: i32,
    state: char,
    start_time: u64,
}

/// Reads the parent, state and start time from `/proc/<pid>/stat`.
fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces and parentheses; the fields after the
    // last ')' are fixed: state, ppid, ... with starttime the 20th of them.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Every living descendant of `root`, found through the parent ids in `/proc`.
fn descendants(root: i32) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<Process>> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(pid) {
            children.entry(stat.parent).or_default().push(Process {
                pid,
                start_time: stat.start_time,
            });
        }
    }

    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(parent) = pending.pop() {
        for child in children.remove(&parent).unwrap_or_default() {
            pending.push(child.pid);
            found.push(child);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(name: &'static str, script: &str) -> ChildCommand {
        ChildCommand {
            name,
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            envs: Vec::new(),
            current_dir: std::env::temp_dir(),
            echo: false,
            ready_line: Some("ready".into()),
            redact: vec!["s3cret".into()],
        }
    }

    #[tokio::test]
    async fn secrets_never_reach_the_kept_output() {
        let (child, ready) =
            ChildProcess::spawn(shell("leaky", "echo KEY=s3cret >&2; exit 1")).expect("spawn");
        let err = child
            .ready(ready.expect("receiver"), Duration::from_secs(10))
            .await;
        let text = err.expect_err("exits").to_string();
        assert!(
            text.contains("KEY=<redacted>") && !text.contains("s3cret"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_early_exit_reports_the_name_status_and_last_lines() {
        let (child, ready) =
            ChildProcess::spawn(shell("doomed", "echo starting; echo boom >&2; exit 3"))
                .expect("spawn");
        let ready = ready.expect("ready receiver");

        let err = child
            .ready(ready, Duration::from_secs(10))
            .await
            .expect_err("exits first");

        let text = err.to_string();
        assert!(
            text.starts_with("doomed exited unexpectedly (exit status: 3)"),
            "{text}"
        );
        assert!(text.contains("starting") && text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn the_ready_line_is_handed_back() {
        let (mut child, ready) =
            ChildProcess::spawn(shell("server", "echo ready on 1234; sleep 30")).expect("spawn");
        let line = child
            .ready(ready.expect("ready receiver"), Duration::from_secs(10))
            .await
            .expect("ready");
        assert_eq!(line, "ready on 1234");
        child.stop(Duration::from_secs(2)).await;
    }

    #[tokio::test]
    async fn stop_ends_grandchildren_in_other_sessions() {
        // The grandchild starts its own session, as cargo lambda watch does with functions.
        let (mut child, ready) =
            ChildProcess::spawn(shell("parent", "setsid sleep 30 & echo ready; wait"))
                .expect("spawn");
        child
            .ready(ready.expect("ready receiver"), Duration::from_secs(10))
            .await
            .expect("ready");
        // `echo ready` may run before the background job has become `sleep` (it is `sh`, then
        // `setsid`, for a moment), so look until it has.
        let looking_until = std::time::Instant::now() + Duration::from_secs(5);
        let grandchild = loop {
            let found = descendants(child.pid()).into_iter().find(|p| {
                std::fs::read_to_string(format!("/proc/{}/cmdline", p.pid))
                    .is_ok_and(|cmd| cmd.starts_with("sleep"))
            });
            match found {
                Some(grandchild) => break grandchild,
                None if std::time::Instant::now() < looking_until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                None => panic!("the sleep never became a descendant"),
            }
        };

        child.stop(Duration::from_secs(1)).await;

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while grandchild.is_running() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!grandchild.is_running(), "the grandchild outlived stop");
    }
}

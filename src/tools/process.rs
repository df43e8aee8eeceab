//! The one process runner behind the `shell` tool and the checks: `bash -c`
//! in the workspace, started through the sandbox launcher (which confines it
//! and kills every descendant when it ends), in a process group of its own,
//! with a timeout and an output capture that keeps the head and the tail.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::sandbox::SandboxPolicy;

/// Variables passed on from kkrun's own environment to commands. Everything
/// else is dropped so that provider keys and CI secrets never reach a
/// command the model wrote.
const INHERITED_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TZ",
    "TMPDIR",
    "CI",
    // Toolchain managers installed outside $HOME (as in the official Rust
    // container images) are not found without these.
    "CARGO_HOME",
    "RUSTUP_HOME",
];

/// Name fragments that mark a variable as a secret: such a variable is never
/// inherited, only passed when the task's `env` sets it explicitly.
const SECRET_MARKERS: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD"];

/// How long a command gets to exit after SIGTERM before the group is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How long the launcher gets, after SIGTERM, to end the command's
/// descendants itself (its own grace is [`TERM_GRACE`]) before its process
/// group is killed from here.
const LAUNCHER_GRACE: Duration = Duration::from_secs(4);

/// How long output is still read after the command ended, for processes
/// that escaped the group and still hold the pipes.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The environment of a command: the minimal inherited set (PATH, HOME,
/// USER, LOGNAME, LANG, LC_*, TZ, TMPDIR, CI, CARGO_HOME, RUSTUP_HOME) without
/// anything that looks like a secret, `TERM=dumb`, then the task's `env`,
/// which wins.
pub fn command_env(task_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    command_env_from(std::env::vars_os(), task_env)
}

fn command_env_from(
    inherited: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    task_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (name, value) in inherited {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        let wanted = INHERITED_VARS.contains(&name) || name.starts_with("LC_");
        let upper = name.to_ascii_uppercase();
        let secret = SECRET_MARKERS.iter().any(|marker| upper.contains(marker));
        if wanted && !secret {
            env.insert(name.to_string(), value.to_string());
        }
    }
    env.insert("TERM".to_string(), "dumb".to_string());
    for (name, value) in task_env {
        env.insert(name.clone(), value.clone());
    }
    env
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct CommandSpec<'a> {
    /// The script, passed to `bash -c`.
    pub script: &'a str,
    /// Working directory.
    pub cwd: &'a Path,
    /// The complete environment (see [`command_env`]).
    pub env: &'a BTreeMap<String, String>,
    /// The command and its whole process group are killed after this long.
    pub timeout: Duration,
    /// Bytes kept from the start of the output.
    pub head_bytes: usize,
    /// Bytes kept from the end of the output.
    pub tail_bytes: usize,
    /// What the command may write and whether it has the network.
    pub policy: &'a SandboxPolicy,
    /// Refuse to run the command when the sandbox cannot be fully enforced
    /// (`--require-sandbox`).
    pub strict: bool,
}

/// How a command ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code, when the command exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when one did.
    pub signal: Option<i32>,
    /// True when the timeout ended the command.
    pub timed_out: bool,
    /// stdout and stderr in arrival order, capped (see [`CommandSpec`]) with
    /// a `[… N bytes omitted …]` marker where bytes were dropped.
    pub output: String,
    /// Bytes the command printed in total.
    pub total_bytes: u64,
    /// Wall-clock time from spawn to the end of the group.
    pub duration: Duration,
}

impl CommandOutput {
    /// True when the command exited with code 0 within its timeout.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// A short human description of how the command ended. It never
    /// includes the duration: what the model sees must be identical from one
    /// run to the next (prompt caching, replayable cassettes); durations go
    /// to the `tool.call` events instead.
    pub fn status_line(&self) -> String {
        if self.timed_out {
            "timed out; the command's process group was killed".to_string()
        } else if let Some(code) = self.exit_code {
            format!("exit code {code}")
        } else if let Some(signal) = self.signal {
            format!("killed by signal {signal}")
        } else {
            "ended without an exit code".to_string()
        }
    }
}

/// Ends a command's processes when dropped, so that a cancelled run (a
/// dropped future) never leaves anything behind: a launched command's
/// launcher gets SIGHUP and kills every descendant at once; a command run
/// without the launcher has its process group killed.
struct GroupGuard {
    pgid: Option<Pid>,
    launched: bool,
}

impl GroupGuard {
    fn new(pid: Option<u32>, launched: bool) -> GroupGuard {
        let pgid = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw);
        GroupGuard { pgid, launched }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is already gone) is the expected, good case.
            let _ = kill_process_group(pgid, signal);
        }
    }

    /// Signals the launcher (the group leader) alone.
    fn signal_launcher(&self, signal: Signal) {
        if let Some(pid) = self.pgid {
            let _ = kill_process(pid, signal);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.launched {
            self.signal_launcher(Signal::HUP);
        } else {
            self.signal(Signal::KILL);
        }
    }
}

/// Runs `spec.script` with `bash -c`, through the sandbox launcher when
/// there is one (see [`crate::sandbox`]), in its own process group.
///
/// On timeout the command gets SIGTERM, then SIGKILL after a short grace;
/// when it exits, whatever it left running is killed; dropping the returned
/// future kills everything at once. With the launcher this reaches every
/// descendant, even those that left the process group (`setsid`, double
/// forks); without it, the process group. Only a failure to start the
/// launcher or `bash` is an error.
pub async fn run_command(spec: &CommandSpec<'_>) -> std::io::Result<CommandOutput> {
    let start = Instant::now();
    let launcher = crate::sandbox::launcher();
    let mut command = match launcher {
        Some(launcher) => {
            let mut command = Command::new(launcher.path());
            command.args(launcher.args(spec.script, spec.policy, spec.strict));
            command
        }
        None => {
            let mut command = Command::new("bash");
            command.arg("-c").arg(spec.script);
            command
        }
    };
    command
        .current_dir(spec.cwd)
        .env_clear()
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A launcher killed outright could not end the command's
        // descendants; the guard signals it instead.
        .kill_on_drop(launcher.is_none());
    let mut child = command.spawn()?;
    let mut guard = GroupGuard::new(child.id(), launcher.is_some());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let mut capture = Capture::new(spec.head_bytes, spec.tail_bytes);
    let (status, timed_out) = {
        let drain = drain(stdout, stderr, &mut capture);
        tokio::pin!(drain);
        let mut drained = false;

        let mut timed_out = false;
        let mut status =
            wait_while_draining(&mut child, &mut drain, &mut drained, spec.timeout).await?;
        if status.is_none() {
            timed_out = true;
            let grace = if guard.launched {
                guard.signal_launcher(Signal::TERM);
                LAUNCHER_GRACE
            } else {
                guard.signal(Signal::TERM);
                TERM_GRACE
            };
            status = wait_while_draining(&mut child, &mut drain, &mut drained, grace).await?;
        }
        // Whatever is left of the group goes now: on timeout the command
        // itself, otherwise the background processes it started (the
        // launcher has already ended every descendant it could find).
        guard.signal(Signal::KILL);
        let status = match status {
            Some(status) => status,
            None => child.wait().await?,
        };
        if !drained {
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut drain).await;
        }
        (status, timed_out)
    };
    guard.disarm();

    Ok(CommandOutput {
        exit_code: status.code(),
        signal: exit_signal(&status),
        timed_out,
        output: capture.render(),
        total_bytes: capture.total,
        duration: start.elapsed(),
    })
}

fn exit_signal(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Waits for the child to exit for at most `limit` while keeping its pipes
/// drained (a full pipe would block it forever). `None` when it is still
/// running.
async fn wait_while_draining(
    child: &mut Child,
    drain: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    drained: &mut bool,
    limit: Duration,
) -> std::io::Result<Option<ExitStatus>> {
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            status = child.wait() => return status.map(Some),
            () = drain.as_mut(), if !*drained => *drained = true,
            () = &mut deadline => return Ok(None),
        }
    }
}

async fn drain(stdout: Option<ChildStdout>, stderr: Option<ChildStderr>, capture: &mut Capture) {
    let mut stdout = stdout;
    let mut stderr = stderr;
    let mut out_buf = vec![0u8; 8192];
    let mut err_buf = vec![0u8; 8192];
    loop {
        if stdout.is_none() && stderr.is_none() {
            return;
        }
        tokio::select! {
            read = read_some(&mut stdout, &mut out_buf), if stdout.is_some() => match read {
                Some(n) => capture.push(&out_buf[..n]),
                None => stdout = None,
            },
            read = read_some(&mut stderr, &mut err_buf), if stderr.is_some() => match read {
                Some(n) => capture.push(&err_buf[..n]),
                None => stderr = None,
            },
        }
    }
}

/// Reads one chunk; `None` at end of stream or on a read error.
async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    let reader = reader.as_mut()?;
    match reader.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// Output kept within a fixed size: the first `head_cap` bytes and the last
/// `tail_cap` bytes, counting what falls in between.
#[derive(Debug)]
pub(crate) struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    total: u64,
}

impl Capture {
    pub(crate) fn new(head_cap: usize, tail_cap: usize) -> Capture {
        Capture {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let head_room = self.head_cap.saturating_sub(self.head.len());
        if head_room > 0 {
            let taken = head_room.min(data.len());
            self.head.extend_from_slice(&data[..taken]);
            data = &data[taken..];
        }
        if data.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    /// Head and tail as text, with the omission marker between them when
    /// bytes were dropped.
    pub(crate) fn render(&self) -> String {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let omitted = self.total.saturating_sub(kept);
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if omitted == 0 {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let head = text_prefix(&self.head);
        let tail = text_suffix(&tail);
        let mut rendered = String::with_capacity(head.len() + tail.len() + 40);
        rendered.push_str(&head);
        if !head.is_empty() && !head.ends_with('\n') {
            rendered.push('\n');
        }
        rendered.push_str(&omission_marker(omitted));
        rendered.push('\n');
        rendered.push_str(&tail);
        rendered
    }
}

/// The marker put where output was cut.
pub fn omission_marker(omitted: u64) -> String {
    format!("[… {omitted} bytes omitted …]")
}

/// Bytes cut at an arbitrary point, as text without a broken character at
/// the cut end.
fn text_prefix(bytes: &[u8]) -> String {
    let end = match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn text_suffix(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .take(3)
        .take_while(|b| (**b & 0b1100_0000) == 0b1000_0000)
        .count();
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Cuts `text` to at most `max_bytes`, keeping head and tail around the
/// omission marker; used for tool outputs that were not produced by a
/// process (and for events).
pub fn cap_text(text: &str, head_bytes: usize, tail_bytes: usize) -> String {
    let mut capture = Capture::new(head_bytes, tail_bytes);
    capture.push(text.as_bytes());
    capture.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_everything_under_the_cap() {
        let mut capture = Capture::new(4, 4);
        capture.push(b"abc");
        capture.push(b"defgh");
        assert_eq!(capture.render(), "abcdefgh");
    }

    #[test]
    fn capture_keeps_head_and_tail_with_marker() {
        let mut capture = Capture::new(4, 4);
        for chunk in [b"0123".as_slice(), b"456789", b"abcdef"] {
            capture.push(chunk);
        }
        assert_eq!(capture.render(), "0123\n[… 8 bytes omitted …]\ncdef");
        assert_eq!(capture.total, 16);
    }

    #[test]
    fn capture_never_splits_a_character() {
        let text = "ééééééééé";
        let capped = cap_text(text, 3, 3);
        assert!(capped.starts_with("é\n"), "{capped}");
        assert!(capped.ends_with("\né"), "{capped}");
        assert!(!capped.contains('\u{FFFD}'), "{capped}");
    }

    #[test]
    fn env_keeps_the_minimal_set_and_drops_secrets() {
        let inherited = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/ci"),
            ("LC_ALL", "C.UTF-8"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("GITHUB_TOKEN", "ghp"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("RANDOM_VAR", "y"),
            ("TERM", "xterm-256color"),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        let mut task_env = BTreeMap::new();
        task_env.insert("RUST_BACKTRACE".to_string(), "1".to_string());
        task_env.insert("NPM_TOKEN".to_string(), "explicit".to_string());
        let env = command_env_from(inherited, &task_env);
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "HOME",
                "LC_ALL",
                "NPM_TOKEN",
                "PATH",
                "RUST_BACKTRACE",
                "TERM"
            ]
        );
        assert_eq!(env["TERM"], "dumb");
        assert_eq!(env["NPM_TOKEN"], "explicit");
    }
}

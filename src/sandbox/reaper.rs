//! Finding and killing every descendant of the launcher.
//!
//! The launcher is a child subreaper, so a process that loses its parent
//! (`setsid`, a double fork, a daemon) is re-parented to the launcher
//! instead of init, and stays findable by walking parent links in /proc.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

/// How often the sweep looks again while processes are still dying.
const SWEEP_PAUSE: Duration = Duration::from_millis(5);

/// Every live (not zombie) descendant of this process.
pub(super) fn descendants() -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = live_parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![rustix::process::getpid().as_raw_nonzero().get()];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            found.extend(Pid::from_raw(child));
            queue.push(child);
        }
    }
    found
}

/// The parent of a live process; `None` for zombies and vanished ones.
fn live_parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold ") ".
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

/// Sends `signal` to every descendant.
pub(super) fn signal_all(signal: Signal) {
    for pid in descendants() {
        // ESRCH: it ended meanwhile, which is what we want.
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Reaps every child that has ended, and returns the status of `watched`
/// when it was among them.
pub(super) fn reap(watched: Pid) -> Option<WaitStatus> {
    let mut status = None;
    while let Ok(Some((pid, ended))) = rustix::process::waitpid(None, WaitOptions::NOHANG) {
        if pid == watched {
            status = Some(ended);
        }
    }
    status
}

/// True when this process has no children left, ended or not.
fn childless() -> bool {
    matches!(
        rustix::process::waitpid(None, WaitOptions::NOHANG),
        Err(rustix::io::Errno::CHILD)
    )
}

/// Waits up to `grace` for every descendant to end by itself, reaping as it
/// goes; returns `watched`'s status if it was reaped.
pub(super) fn wait_all(watched: Pid, grace: Duration) -> Option<WaitStatus> {
    let deadline = Instant::now() + grace;
    let mut status = None;
    loop {
        status = reap(watched).or(status);
        if descendants().is_empty() || Instant::now() >= deadline {
            return status;
        }
        std::thread::sleep(SWEEP_PAUSE * 4);
    }
}

/// Kills every descendant with SIGKILL and reaps them, until none is left.
/// A process killed mid-fork can leave a child behind; that child is
/// re-parented here and found by the next pass. Returns `watched`'s status
/// if it was reaped.
pub(super) fn kill_all(watched: Pid) -> Option<WaitStatus> {
    let mut status = None;
    // Bounded: a fork bomb outrunning the sweep must not hang the launcher
    // forever; the process group kill of the caller is the last resort.
    for _ in 0..10_000 {
        status = reap(watched).or(status);
        let alive = descendants();
        if alive.is_empty() {
            status = reap(watched).or(status);
            if childless() {
                return status;
            }
        }
        for pid in alive {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        std::thread::sleep(SWEEP_PAUSE);
    }
    status
}

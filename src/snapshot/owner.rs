//! Which process owns an isolated worktree, and whether it still runs.
//!
//! A worktree's lock reason names the run and its process:
//! `kkrun run <run-id> (pid N, start S)`, where `S` is the process's start
//! time (clock ticks since boot, from `/proc/<pid>/stat`). A process id
//! alone is not enough: once the process is gone the id is given to
//! another process sooner or later, and a dead run's worktree would look
//! in use for good. The start time tells the two apart. Reasons written
//! without it (`(pid N)`) are judged by the process id alone.

/// The process named in a worktree's lock reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
    /// Its process id.
    pub(super) pid: u32,
    /// Its start time, when the reason recorded it.
    start: Option<u64>,
}

impl Owner {
    /// This process.
    pub(super) fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid),
        }
    }

    /// The lock reason naming this process as the owner for run `run_id`,
    /// after `prefix`.
    pub(super) fn reason(&self, prefix: &str, run_id: &str) -> String {
        match self.start {
            Some(start) => format!("{prefix}{run_id} (pid {}, start {start})\n", self.pid),
            None => format!("{prefix}{run_id} (pid {})\n", self.pid),
        }
    }

    /// The owner a lock reason starting with `prefix` names; `None` for a
    /// reason kkrun did not write.
    pub(super) fn parse(reason: &str, prefix: &str) -> Option<Owner> {
        let rest = reason.trim().strip_prefix(prefix)?;
        let (_, inside) = rest.rsplit_once("(pid ")?;
        let inside = inside.strip_suffix(')')?;
        let (pid, start) = match inside.split_once(", start ") {
            Some((pid, start)) => (pid, Some(start.parse().ok()?)),
            None => (inside, None),
        };
        Some(Owner {
            pid: pid.parse().ok()?,
            start,
        })
    }

    /// Whether the owner still runs: its process id is taken, and (when
    /// the reason recorded it) by a process that started when it did.
    pub(super) fn is_alive(&self) -> bool {
        if !pid_taken(self.pid) {
            return false;
        }
        match (self.start, start_time(self.pid)) {
            (Some(recorded), Some(now)) => recorded == now,
            // Without a start time on either side, the id must do.
            _ => true,
        }
    }
}

/// Whether some process has id `pid` (a process of another user counts).
pub(super) fn pid_taken(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        !matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    }
    #[cfg(not(unix))]
    {
        // Without a cheap liveness test, never take a worktree for stale.
        let _ = pid;
        true
    }
}

/// The start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`); `None` without procfs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and
    // parentheses itself: the fields after it follow the last `)`.
    let (_, after_name) = stat.rsplit_once(')')?;
    // `after_name` starts at field 3, so field 22 is its 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "kkrun run ";

    #[test]
    fn lock_reasons_name_the_process_with_or_without_its_start() {
        let owner = Owner::parse("kkrun run 20260101T000000Z-abc (pid 42)\n", PREFIX).unwrap();
        assert_eq!((owner.pid, owner.start), (42, None));
        let owner = Owner::parse("kkrun run r (pid 42, start 9001)\n", PREFIX).unwrap();
        assert_eq!((owner.pid, owner.start), (42, Some(9001)));
        assert_eq!(Owner::parse("kept for review", PREFIX), None);
        assert_eq!(Owner::parse("kkrun run x (pid nope)", PREFIX), None);
        assert_eq!(
            Owner::parse("kkrun run x (pid 1, start soon)", PREFIX),
            None
        );
    }

    #[test]
    fn this_process_is_alive_and_a_reused_id_is_not() {
        let me = Owner::current();
        assert!(me.start.is_some(), "procfs gives the start time");
        assert_eq!(Owner::parse(&me.reason(PREFIX, "r"), PREFIX), Some(me));
        assert!(me.is_alive());
        // The same id with another start: the process that had it is gone.
        let reused = Owner {
            start: me.start.map(|s| s + 1),
            ..me
        };
        assert!(!reused.is_alive());
        let old_format = Owner { start: None, ..me };
        assert!(old_format.is_alive());
    }
}

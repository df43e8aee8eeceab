//! The process groups of the MCP servers running now, so that an exit that
//! runs no destructors (a second SIGINT or SIGTERM) can still end them: they
//! run in process groups of their own, which a terminal's Ctrl-C and a CI
//! runner's signal to kkrun do not reach.

use std::collections::BTreeSet;
use std::sync::Mutex;

use rustix::process::{Pid, Signal, kill_process_group};

static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Records a server's process group as running.
pub(super) fn register(pgid: Pid) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(pgid.as_raw_nonzero().get());
}

/// Forgets a server's process group once it has been killed.
pub(super) fn forget(pgid: Pid) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&pgid.as_raw_nonzero().get());
}

/// SIGKILLs the process group of every MCP server still running; for the
/// moment before `std::process::exit`.
pub fn kill_all_servers() {
    let groups = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for pgid in groups.into_iter().filter_map(Pid::from_raw) {
        // ESRCH (the group is gone already) is the good case.
        let _ = kill_process_group(pgid, Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};

    use super::*;

    #[test]
    fn a_registered_group_is_killed_and_a_forgotten_one_is_not() {
        let mut killed = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut kept = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = |child: &std::process::Child| {
            Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap()
        };
        register(pid(&killed));
        register(pid(&kept));
        forget(pid(&kept));
        kill_all_servers();
        assert_eq!(killed.wait().unwrap().signal(), Some(9));
        assert_eq!(kept.try_wait().unwrap(), None);
        kept.kill().unwrap();
        kept.wait().unwrap();
    }
}

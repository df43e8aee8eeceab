//! One run per work tree (`<git-dir>/kkrun/run.lock`) and one process per
//! run (`<run-dir>/.run.lock`).
//!
//! A run (or resume) holds an OS advisory lock on the file for as long as
//! it runs and writes its run id, pid and start time into it, so a second
//! run on the same work tree can say who is in the way. The OS releases
//! the lock when the holder exits, however it exits; the holder empties the
//! file first when it exits normally, so a file that still names someone
//! while nobody holds the lock was left by a process that was killed, and
//! is taken over with a notice. `kkrun rollback` and `kkrun apply` take the
//! same lock for as long as they change the work tree.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How often `--wait-lock` tries the lock again.
const POLL: Duration = Duration::from_millis(200);

/// What the lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The run's id (for `kkrun rollback` and `apply`, the run they act on).
    pub run_id: String,
    /// The holder's process id.
    pub pid: u32,
    /// When it took the lock, RFC 3339 in UTC.
    pub started: String,
    /// The command holding it: `run`, `resume`, `rollback` or `apply`.
    #[serde(default)]
    pub command: String,
}

impl Holder {
    fn describe(&self) -> String {
        match self.command.as_str() {
            "rollback" | "apply" => format!(
                "kkrun {} of run {} (pid {})",
                self.command, self.run_id, self.pid
            ),
            _ => format!("run {} (pid {})", self.run_id, self.pid),
        }
    }
}

/// A held lock on one work tree or run; released (and the file emptied) on
/// drop.
#[derive(Debug)]
pub struct WorkTreeLock {
    file: File,
}

impl Drop for WorkTreeLock {
    fn drop(&mut self) {
        // Emptied first: a file naming a holder with the lock free then
        // always means a holder that was killed.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// The lock file of the work tree whose git directory is `git_dir`.
pub fn lock_path(git_dir: &Path) -> PathBuf {
    git_dir.join("kkrun").join("run.lock")
}

/// Takes the lock of the work tree `workdir` (git directory `git_dir`) for
/// `command` of run `run_id`. Busy: with `wait`, tries again every 200 ms
/// until it is free or `wait` has passed; then, or at once without `wait`,
/// fails with exit 2 naming the holder. `notices` gets a line when a dead
/// holder's lock is taken over.
pub fn acquire(
    git_dir: &Path,
    workdir: &Path,
    run_id: &str,
    command: &str,
    wait: Option<Duration>,
    notices: &mut Vec<String>,
) -> Result<WorkTreeLock, Error> {
    let subject = Subject {
        path: lock_path(git_dir),
        busy: format!("the work tree {} is in use by", workdir.display()),
        taken_over: format!("the lock of the work tree {}", workdir.display()),
        unwritable: "the git directory is not writable (hint: kkrun keeps its work-tree lock \
                     there; make it writable)",
    };
    acquire_at(&subject, run_id, command, wait, notices)
}

/// The name of a run directory's lock file.
pub const RUN_LOCK_FILE: &str = ".run.lock";

/// The lock file of the run whose directory is `run_dir`.
pub fn run_lock_path(run_dir: &Path) -> PathBuf {
    run_dir.join(RUN_LOCK_FILE)
}

/// Takes the lock of the run directory `run_dir` for `command` of run
/// `run_id`: held by a run for as long as it runs and by `kkrun resume`
/// while it continues it, so a run is never continued while its process
/// still works on it (isolated runs hold no work-tree lock that would
/// say so). Busy and stale locks as with [`acquire`].
pub fn acquire_run(
    run_dir: &Path,
    run_id: &str,
    command: &str,
    wait: Option<Duration>,
    notices: &mut Vec<String>,
) -> Result<WorkTreeLock, Error> {
    let subject = Subject {
        path: run_lock_path(run_dir),
        busy: format!("the run directory {} is in use by", run_dir.display()),
        taken_over: format!("the lock of run {run_id}"),
        unwritable: "the run directory is not writable (hint: make it writable)",
    };
    acquire_at(&subject, run_id, command, wait, notices)
}

/// Who holds the lock of the run directory `run_dir` now: `None` when
/// nobody does (or the run never took one). Nothing is created or taken.
pub fn run_holder(run_dir: &Path) -> Option<Holder> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(run_lock_path(run_dir))
        .ok()?;
    match file.try_lock() {
        // Free: released as `file` closes.
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(read_holder(&mut file).unwrap_or(Holder {
            run_id: String::new(),
            pid: 0,
            started: String::new(),
            command: String::new(),
        })),
        Err(TryLockError::Error(_)) => None,
    }
}

/// A lock file and how messages name what it guards.
struct Subject {
    path: PathBuf,
    /// The start of the busy error, before the holder.
    busy: String,
    /// What a takeover notice says was taken over.
    taken_over: String,
    /// Why the file cannot be written, and what to do.
    unwritable: &'static str,
}

fn acquire_at(
    subject: &Subject,
    run_id: &str,
    command: &str,
    wait: Option<Duration>,
    notices: &mut Vec<String>,
) -> Result<WorkTreeLock, Error> {
    let path = &subject.path;
    let io = |what: &str, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Error::io(
                format!("{what} {}: {}", path.display(), subject.unwritable),
                e,
            )
        } else {
            Error::io(format!("{what} {}", path.display()), e)
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io("opening", e))?;
    let deadline = wait.map(|wait| Instant::now() + wait);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if deadline.is_some_and(|deadline| Instant::now() < deadline) {
                    std::thread::sleep(POLL);
                    continue;
                }
                let holder = read_holder(&mut file)
                    .map_or_else(|| "another run".to_owned(), |h| h.describe());
                let waited = wait.map_or(String::new(), |wait| {
                    format!(" after waiting {}", crate::task::duration::format(wait))
                });
                return Err(Error::InvalidInput(format!(
                    "{} {holder}{waited} (hint: wait for it, or pass --wait-lock 10m)",
                    subject.busy
                )));
            }
            Err(TryLockError::Error(e)) => return Err(io("locking", e)),
        }
    }
    if let Some(stale) = read_holder(&mut file) {
        notices.push(format!(
            "took over {} from {}, which is no longer running",
            subject.taken_over,
            stale.describe()
        ));
    }
    let holder = Holder {
        run_id: run_id.to_owned(),
        pid: std::process::id(),
        started: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
        command: command.to_owned(),
    };
    let text = serde_json::to_string(&holder).unwrap_or_default();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(|e| io("writing", e))?;
    Ok(WorkTreeLock { file })
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_and_a_released_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let mut notices = Vec::new();
        let first = acquire(dir.path(), dir.path(), "r1", "run", None, &mut notices).unwrap();
        let err = acquire(dir.path(), dir.path(), "r2", "run", None, &mut notices).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("in use by run r1 (pid {})", std::process::id())),
            "{text}"
        );
        assert_eq!(err.exit_code(), crate::exit_codes::INVALID_INPUT);
        drop(first);
        acquire(dir.path(), dir.path(), "r3", "rollback", None, &mut notices).unwrap();
        assert!(notices.is_empty(), "{notices:?}");
    }

    #[test]
    fn a_dead_holders_file_is_taken_over_with_a_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"run_id":"old","pid":4194304,"started":"2026-01-01T00:00:00Z","command":"run"}"#,
        )
        .unwrap();
        let mut notices = Vec::new();
        let _lock = acquire(dir.path(), dir.path(), "new", "run", None, &mut notices).unwrap();
        assert_eq!(notices.len(), 1);
        assert!(
            notices[0].contains("from run old (pid 4194304)"),
            "{notices:?}"
        );
        let holder: Holder = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(holder.run_id, "new");
    }

    #[test]
    fn a_run_lock_names_its_holder_and_is_taken_over_once_free() {
        let dir = tempfile::tempdir().unwrap();
        let mut notices = Vec::new();
        let first = acquire_run(dir.path(), "r1", "run", None, &mut notices).unwrap();
        assert_eq!(
            run_holder(dir.path()).map(|h| (h.run_id, h.pid)),
            Some(("r1".to_string(), std::process::id()))
        );
        let err = acquire_run(dir.path(), "r1", "resume", None, &mut notices).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "the run directory {} is in use by run r1 (pid {})",
                dir.path().display(),
                std::process::id()
            )),
            "{text}"
        );
        assert_eq!(err.exit_code(), crate::exit_codes::INVALID_INPUT);
        drop(first);
        assert_eq!(run_holder(dir.path()), None);
        // A holder killed with its lock leaves the file naming it.
        std::fs::write(
            run_lock_path(dir.path()),
            r#"{"run_id":"r1","pid":4194304,"started":"2026-01-01T00:00:00Z","command":"run"}"#,
        )
        .unwrap();
        let _lock = acquire_run(dir.path(), "r1", "resume", None, &mut notices).unwrap();
        assert_eq!(
            notices,
            ["took over the lock of run r1 from run r1 (pid 4194304), which is no longer running"]
        );
    }

    #[test]
    fn waiting_gives_up_with_the_same_message() {
        let dir = tempfile::tempdir().unwrap();
        let mut notices = Vec::new();
        let _first = acquire(dir.path(), dir.path(), "r1", "run", None, &mut notices).unwrap();
        let started = Instant::now();
        let err = acquire(
            dir.path(),
            dir.path(),
            "r2",
            "run",
            Some(Duration::from_secs(1)),
            &mut notices,
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(err.to_string().contains("in use by run r1"), "{err}");
    }
}

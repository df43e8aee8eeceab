//! `--isolate`: the runner's side of isolated worktrees. Before anything
//! runs, every task's repository is checked (it must have a commit) and the
//! worktrees a killed run left behind are removed; then each task gets its
//! own worktree (see [`crate::snapshot::WorktreePool`]) for as long as it
//! runs, and the task's workspace is mapped into it, with the ignored paths
//! its `copy_ignored:` names copied in (see [`copy`]).

mod copy;

use std::path::PathBuf;

use crate::error::Error;
use crate::events::{EventKind, EventSink};
use crate::resume::TaskHistory;
use crate::snapshot::{IsolatedWorktree, SnapshotStore, WorktreePool, remove_stale_worktrees};
use crate::task::Task;

/// `--isolate`, `--worktrees` and `--keep-worktrees`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsolationOptions {
    /// Where the worktrees go (`--worktrees`); default
    /// `<system temp directory>/kkrun-worktrees`.
    pub dir: Option<PathBuf>,
    /// `--keep-worktrees`: leave each worktree after its task.
    pub keep: bool,
}

impl IsolationOptions {
    /// The directory the worktrees go in.
    pub fn root(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("kkrun-worktrees"))
    }
}

/// A run's isolation: the pool and each task's repository, in task order.
pub(super) struct Isolation {
    pool: WorktreePool,
    stores: Vec<SnapshotStore>,
}

/// Opens every task's repository and refuses (exit 2, before anything
/// runs) a workspace outside a git work tree or a repository without a
/// commit to check out.
pub(super) fn check(tasks: &[Task]) -> Result<Vec<SnapshotStore>, Error> {
    let mut stores = Vec::with_capacity(tasks.len());
    for task in tasks {
        let in_task = |source: crate::snapshot::SnapshotError| Error::Task {
            task: task.name.clone(),
            file: task.file.clone(),
            source: Box::new(Error::Snapshot(source)),
        };
        let store = SnapshotStore::open(&task.workspace).map_err(in_task)?;
        if store.head_commit().map_err(in_task)?.is_none() {
            return Err(in_task(crate::snapshot::SnapshotError::UnbornHead {
                path: store.workdir().to_owned(),
            }));
        }
        stores.push(store);
    }
    Ok(stores)
}

impl Isolation {
    /// The isolation of run `run_id` over the repositories [`check`] opened.
    pub(super) fn new(
        options: &IsolationOptions,
        run_id: &str,
        stores: Vec<SnapshotStore>,
    ) -> Isolation {
        Isolation {
            pool: WorktreePool::new(options.root(), run_id, options.keep),
            stores,
        }
    }

    /// Removes the stale worktrees of every repository of the run; returns
    /// a line per worktree removed or repository that could not be cleaned.
    pub(super) fn remove_stale(&self) -> Vec<String> {
        let mut seen = Vec::new();
        let mut lines = Vec::new();
        for store in &self.stores {
            if seen.contains(&store.workdir()) {
                continue;
            }
            seen.push(store.workdir());
            match remove_stale_worktrees(store) {
                Ok(removed) => lines.extend(removed.iter().map(|path| {
                    format!(
                        "removed the stale isolated worktree {} (left by a run that was killed)",
                        path.display()
                    )
                })),
                Err(e) => lines.push(format!(
                    "cannot remove the stale isolated worktrees of {}: {e}",
                    store.workdir().display()
                )),
            }
        }
        lines
    }

    /// Creates the worktree of the task at `index`, copies the ignored
    /// paths its `copy_ignored:` names into it (a pattern that matches
    /// nothing is a warning on `events`), and returns the task with its
    /// workspace mapped into the worktree. On a failure nothing is left
    /// behind.
    ///
    /// A resumed task (`resumed`: what its cut-short attempt completed)
    /// with a base snapshot gets its worktree at its last snapshot; any
    /// other starts from the user's work tree as it is now.
    pub(super) fn enter(
        &self,
        index: usize,
        task: &Task,
        resumed: Option<&TaskHistory>,
        events: &EventSink,
    ) -> Result<(Task, IsolatedWorktree), EnterError> {
        let user = &self.stores[index];
        if resumed.is_some()
            && let Some(left) = self
                .pool
                .remove_leftover(user, &task.name)
                .map_err(EnterError::Worktree)?
        {
            events.emit(EventKind::Warning {
                message: format!(
                    "removed {}, the worktree an earlier attempt of the task left (its work is in \
                     the task's snapshots)",
                    left.display()
                ),
            });
        }
        let resume_point = resumed.and_then(|h| h.base_snapshot().zip(h.last_snapshot()));
        let worktree = match resume_point {
            Some((base, last)) => self
                .pool
                .create_at(user, &task.name, &base.commit, &last.commit),
            None => self.pool.create(user, &task.name),
        }
        .map_err(EnterError::Worktree)?;
        if !task.copy_ignored.is_empty() {
            match copy::copy_ignored(user, &worktree.workspace, &task.copy_ignored) {
                Ok(report) => {
                    for pattern in report.unmatched {
                        events.emit(EventKind::Warning {
                            message: format!(
                                "`copy_ignored` pattern `{pattern}` matches no ignored path of {} \
                                 (hint: only files git ignores are copied; check the pattern against \
                                 `git status --ignored`)",
                                user.workspace().display()
                            ),
                        });
                    }
                }
                Err(e) => {
                    // The worktree is useless without its files.
                    let _ = self.pool.release_discarding(&worktree);
                    return Err(EnterError::Copy(e));
                }
            }
        }
        let mut isolated = task.clone();
        isolated.workspace = worktree.workspace.clone();
        Ok((isolated, worktree))
    }

    /// Ends the task's use of its worktree: removed, or kept and unlocked
    /// with `--keep-worktrees` (then the line saying where it is); an
    /// error is a warning to report.
    pub(super) fn leave(
        &self,
        task: &str,
        worktree: &IsolatedWorktree,
    ) -> Result<Option<String>, String> {
        match self.pool.release(worktree) {
            Ok(()) if self.pool.keeps() => Ok(Some(format!(
                "kept the isolated worktree of task `{task}`: {} (remove it with `git worktree remove`)",
                worktree.root.display()
            ))),
            Ok(()) => Ok(None),
            Err(e) => Err(format!(
                "cannot remove the isolated worktree of task `{task}` ({}): {e}",
                worktree.root.display()
            )),
        }
    }
}

/// Why a task's isolated worktree could not be made ready.
#[derive(Debug, thiserror::Error)]
pub(super) enum EnterError {
    /// The worktree could not be created.
    #[error("cannot create the isolated worktree: {0}")]
    Worktree(#[source] crate::snapshot::SnapshotError),
    /// `copy_ignored:` could not be carried out.
    #[error("cannot copy the ignored files of `copy_ignored` into the isolated worktree: {0}")]
    Copy(#[source] copy::CopyError),
}

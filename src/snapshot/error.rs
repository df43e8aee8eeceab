//! The error type of the snapshot subsystem.

use std::path::PathBuf;

use crate::exit_codes;

/// A snapshot operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The workspace directory does not exist or cannot be read.
    #[error("workspace {path} cannot be used (hint: check that the directory exists)")]
    WorkspaceMissing {
        /// The workspace as given.
        path: PathBuf,
        /// Why it could not be resolved.
        #[source]
        source: std::io::Error,
    },
    /// The workspace is not inside a git work tree.
    #[error(
        "{path} is not inside a git work tree (hint: run `git init` there, or point the task's \
         `workspace:` at a directory of a git repository)"
    )]
    NotARepository {
        /// The workspace as given.
        path: PathBuf,
        /// What git reported.
        #[source]
        source: git2::Error,
    },
    /// The repository has no work tree, so there is nothing to snapshot.
    #[error(
        "{path} is a bare repository (hint: snapshots need a work tree; use a clone or `git worktree add`)"
    )]
    BareRepository {
        /// The repository's git directory.
        path: PathBuf,
    },
    /// The workspace is inside the repository's git directory, not its work tree.
    #[error(
        "{path} is inside the git directory, not the work tree (hint: pick a directory of the checkout)"
    )]
    InsideGitDir {
        /// The workspace as given.
        path: PathBuf,
    },
    /// A run id, task name or stage cannot be used as a ref name component.
    #[error("invalid {what} {value:?}: {reason} (hint: use letters, digits, `-`, `_` and `.`)")]
    InvalidName {
        /// Which kind of name: "run id", "task name" or "stage".
        what: &'static str,
        /// The name as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No snapshot of this run exists in the repository.
    #[error("no run {run:?} in this repository; {}", list_or_none("runs", known))]
    UnknownRun {
        /// The run id asked for.
        run: String,
        /// The runs that exist, sorted.
        known: Vec<String>,
    },
    /// The run exists but has no snapshot of this task.
    #[error("run {run} has no task {task:?}; {}", list_or_none("tasks", known))]
    UnknownTask {
        /// The run id.
        run: String,
        /// The task asked for.
        task: String,
        /// The tasks of the run, sorted.
        known: Vec<String>,
    },
    /// The task has no snapshot matching the stage or label asked for.
    #[error(
        "task {task} of run {run} has no snapshot {which:?}; {} \
         (hint: give a stage name such as `code`, a label such as `02-code`, or `base`)",
        list_or_none("snapshots", known)
    )]
    UnknownSnapshot {
        /// The run id.
        run: String,
        /// The task name.
        task: String,
        /// What was asked for.
        which: String,
        /// The labels of the task's snapshots, in order.
        known: Vec<String>,
    },
    /// `kkrun export --branch` was given a name git does not accept.
    #[error(
        "invalid branch name {branch:?}: {reason} (hint: use a name such as `kkrun/fix-dates`)"
    )]
    InvalidBranch {
        /// The name as given.
        branch: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The branch to export to exists and `--force` was not given.
    #[error(
        "branch {branch} already exists (at {commit}) (hint: pass `--force` to replace it, or \
         choose another `--branch`)"
    )]
    BranchExists {
        /// The branch as given.
        branch: String,
        /// Where it points.
        commit: String,
    },
    /// The branch to replace is checked out, so moving it would leave that
    /// work tree out of step.
    #[error(
        "branch {branch} is checked out in {} and kkrun export never moves a checked-out \
         branch (hint: export to another `--branch`)",
        worktree.display()
    )]
    BranchCheckedOut {
        /// The branch as given.
        branch: String,
        /// The work tree that has it checked out.
        worktree: PathBuf,
    },
    /// `--base` names nothing that resolves to a commit.
    #[error(
        "--base {base:?} is not a commit in this repository (hint: give a branch, tag or commit id)"
    )]
    UnknownBase {
        /// The base as given.
        base: String,
        /// What git reported.
        #[source]
        source: git2::Error,
    },
    /// The task's change conflicts with the base.
    #[error(
        "the change of task {task} (run {run}) does not apply to {base}: {} conflicting path{}: {} \
         (hint: export onto the commit the run started from, which is the default without \
         `--base`, or resolve by applying final.patch by hand)",
        paths.len(),
        if paths.len() == 1 { "" } else { "s" },
        paths.join(", ")
    )]
    ExportConflict {
        /// The run id.
        run: String,
        /// The task name.
        task: String,
        /// The base as given, or the short commit id.
        base: String,
        /// Every conflicting path, sorted.
        paths: Vec<String>,
    },
    /// The task's change conflicts with the work tree's current state.
    #[error(
        "task {task} of run {run} cannot be applied: the work tree changed these paths since the \
         task's 00-base, differently: {} (nothing was changed; hint: commit, stash or undo your \
         changes to them, or take the change as a branch with `kkrun export {run} {task} --branch \
         NAME`)",
        paths.join(", ")
    )]
    ApplyConflict {
        /// The run id.
        run: String,
        /// The task name.
        task: String,
        /// Every conflicting path, sorted.
        paths: Vec<String>,
    },
    /// The task changed nothing, or nothing the base does not already have.
    #[error(
        "task {task} of run {run} has no change to export onto {base} (it changed nothing in its \
         workspace, or {base} already holds the change)"
    )]
    NothingToExport {
        /// The run id.
        run: String,
        /// The task name.
        task: String,
        /// The base as given, or the short commit id.
        base: String,
    },
    /// A ref under `refs/kkrun/` does not point at a kkrun snapshot commit.
    #[error(
        "{ref_name} is not a kkrun snapshot: {reason} (hint: remove it with `git update-ref -d {ref_name}`)"
    )]
    CorruptSnapshot {
        /// The offending ref.
        ref_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Another process held a git lock for longer than kkrun is willing to wait.
    #[error(
        "{what} stayed locked after {attempts} attempts (hint: another git process is writing; \
         if none is running, remove the stale `.lock` file)"
    )]
    Locked {
        /// What kkrun was trying to update.
        what: String,
        /// How many times it tried.
        attempts: u32,
        /// The last lock error.
        #[source]
        source: git2::Error,
    },
    /// The repository's git directory cannot be written.
    #[error(
        "cannot {action}: {git_dir} is not writable (hint: snapshots write objects and refs \
         into the repository; make the git directory writable or run without snapshots)"
    )]
    ReadOnlyRepository {
        /// What kkrun was doing.
        action: String,
        /// The repository's git directory.
        git_dir: PathBuf,
        /// What git reported.
        #[source]
        source: git2::Error,
    },
    /// A git operation failed.
    #[error("cannot {action}")]
    Git {
        /// What kkrun was doing.
        action: String,
        /// What git reported.
        #[source]
        source: git2::Error,
    },
    /// An isolated worktree needs a commit to check out, and HEAD has none.
    #[error(
        "the repository of {path} has no commit yet, and an isolated worktree is checked out at \
         HEAD (hint: commit once, or run without --isolate)"
    )]
    UnbornHead {
        /// The work tree whose HEAD is unborn.
        path: PathBuf,
    },
    /// The journal of an interrupted restore cannot be read.
    #[error(
        "the restore journal {path} is damaged: {reason} (hint: the state before the restore is \
         saved as a `safety` snapshot; see `kkrun snapshots`, restore it with `kkrun rollback`, \
         then remove the journal)"
    )]
    CorruptJournal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What kkrun was doing.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn list_or_none(kind: &str, known: &[String]) -> String {
    if known.is_empty() {
        format!("there are no {kind}")
    } else {
        format!("{kind}: {}", known.join(", "))
    }
}

impl SnapshotError {
    /// The documented exit code for this error: 2 for bad input (not a
    /// repository, an unknown run, task or stage, an invalid name), 3 for git
    /// and I/O failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            SnapshotError::WorkspaceMissing { .. }
            | SnapshotError::NotARepository { .. }
            | SnapshotError::BareRepository { .. }
            | SnapshotError::InsideGitDir { .. }
            | SnapshotError::InvalidName { .. }
            | SnapshotError::UnknownRun { .. }
            | SnapshotError::UnknownTask { .. }
            | SnapshotError::UnknownSnapshot { .. }
            | SnapshotError::InvalidBranch { .. }
            | SnapshotError::BranchExists { .. }
            | SnapshotError::BranchCheckedOut { .. }
            | SnapshotError::UnknownBase { .. }
            | SnapshotError::ExportConflict { .. }
            | SnapshotError::ApplyConflict { .. }
            | SnapshotError::NothingToExport { .. }
            | SnapshotError::UnbornHead { .. } => exit_codes::INVALID_INPUT,
            SnapshotError::CorruptSnapshot { .. }
            | SnapshotError::Locked { .. }
            | SnapshotError::ReadOnlyRepository { .. }
            | SnapshotError::Git { .. }
            | SnapshotError::CorruptJournal { .. }
            | SnapshotError::Io { .. } => exit_codes::INFRASTRUCTURE,
        }
    }

    pub(crate) fn git(action: impl Into<String>, source: git2::Error) -> SnapshotError {
        SnapshotError::Git {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> SnapshotError {
        SnapshotError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_what_exists_and_exit_2() {
        let err = SnapshotError::UnknownRun {
            run: "nope".into(),
            known: vec![
                "20261124T101500Z-ab12cd".into(),
                "20261125T090000Z-ffffff".into(),
            ],
        };
        assert_eq!(
            err.to_string(),
            "no run \"nope\" in this repository; runs: 20261124T101500Z-ab12cd, 20261125T090000Z-ffffff"
        );
        assert_eq!(err.exit_code(), exit_codes::INVALID_INPUT);
        let err = SnapshotError::UnknownTask {
            run: "r".into(),
            task: "t".into(),
            known: vec![],
        };
        assert_eq!(
            err.to_string(),
            "run r has no task \"t\"; there are no tasks"
        );
    }

    #[test]
    fn git_and_io_failures_exit_3() {
        let err = SnapshotError::git("write the snapshot tree", git2::Error::from_str("boom"));
        assert_eq!(err.exit_code(), exit_codes::INFRASTRUCTURE);
        let err = SnapshotError::io("read", "/x", std::io::Error::other("denied"));
        assert_eq!(err.exit_code(), exit_codes::INFRASTRUCTURE);
    }
}

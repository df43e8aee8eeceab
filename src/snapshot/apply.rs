//! `kkrun apply` and `--apply`: a task's change (its last snapshot minus
//! `00-base`, as `kkrun export` computes it) written into the user's work
//! tree.
//!
//! The change is merged three-way in the object database first — ancestor
//! `00-base`, ours the work tree as it is now, theirs the task's result — so
//! edits the user made meanwhile elsewhere (or in other parts of the same
//! file) survive, and a path both changed differently is a conflict that
//! refuses the whole apply before any file is written. Only then are the
//! files written, after a `safety` snapshot of the work tree, which is how
//! an apply is undone. HEAD, the index, branches and the stash are never
//! touched: the change shows as uncommitted modifications.

use super::export::{MergeFailure, merge, scoped_change, snapshot_commit};
use super::{FileChange, SnapshotError, SnapshotInfo, SnapshotMeta, SnapshotStore};

/// What [`SnapshotStore::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The files written, relative to the work tree root, sorted; empty
    /// when the work tree already held the change.
    pub files: Vec<FileChange>,
    /// The snapshot of the work tree taken before writing (`None` when
    /// nothing was written).
    pub safety: Option<SnapshotInfo>,
}

impl SnapshotStore {
    /// Applies task `task`'s change in run `run_id` to the work tree.
    ///
    /// Refused with [`SnapshotError::ApplyConflict`] (exit code 2), naming
    /// every conflicting path, when the work tree changed a path the task
    /// changed, differently; nothing is written then.
    pub fn apply(&self, run_id: &str, task: &str) -> Result<Applied, SnapshotError> {
        let change = self.task_change(run_id, task)?;
        let repo = self.repo()?;
        let ancestor = snapshot_commit(&repo, &change.base)?
            .tree()
            .map_err(|e| SnapshotError::git("read the 00-base tree", e))?;
        let last = snapshot_commit(&repo, &change.last)?
            .tree()
            .map_err(|e| SnapshotError::git("read the last snapshot's tree", e))?;
        let theirs = scoped_change(&repo, &ancestor, &last, &change.base.workspace)?;
        let current = self.worktree_state(&repo)?;
        let ours = repo
            .find_tree(current.tree)
            .map_err(|e| SnapshotError::git("read the work tree's state", e))?;
        let merged = merge(&repo, &ancestor, &ours, &theirs).map_err(|failure| match failure {
            MergeFailure::Conflicts(paths) => SnapshotError::ApplyConflict {
                run: run_id.to_owned(),
                task: task.to_owned(),
                paths,
            },
            MergeFailure::Git(e) => SnapshotError::git("merge the change into the work tree", e),
        })?;
        if merged == ours.id() {
            return Ok(Applied {
                files: Vec::new(),
                safety: None,
            });
        }
        let merged = repo
            .find_tree(merged)
            .map_err(|e| SnapshotError::git("read the merged tree", e))?;
        let files = super::diff::tree_changes(&repo, &ours, &merged)?;
        let meta = SnapshotMeta::new("safety", "before kkrun apply");
        let safety = self.commit_snapshot(&repo, run_id, task, &meta, current.tree)?;
        // The merge may touch any path of the task's workspace, which can be
        // wider than the directory kkrun apply was called from.
        self.scoped_to("")?
            .write_tree_onto_workdir(
                &repo,
                &ours,
                &merged,
                &format!("the change of {run_id}/{task}"),
            )
            .map_err(|e| match e {
                SnapshotError::Git { action, source } => SnapshotError::Git {
                    action: format!(
                        "{action} while applying task {task} (hint: the state before is saved as \
                         {})",
                        safety.label()
                    ),
                    source,
                },
                other => other,
            })?;
        drop(current);
        Ok(Applied {
            files,
            safety: Some(safety),
        })
    }
}

impl Applied {
    /// What happened, for people: the files written and how to undo it.
    pub fn describe(&self, run_id: &str, task: &str) -> String {
        let Some(safety) = &self.safety else {
            return format!(
                "task {task} of run {run_id}: the work tree already holds its change; nothing was \
                 written\n"
            );
        };
        let count = self.files.len();
        let mut text = format!(
            "applied task {task} of run {run_id} to the work tree: {count} file{}\n",
            if count == 1 { "" } else { "s" }
        );
        for file in &self.files {
            text.push_str(&format!(
                "  {:<9} {} (+{} -{})\n",
                file.status, file.path, file.additions, file.deletions
            ));
        }
        text.push_str(&format!(
            "the previous state is saved as {label}; undo with: kkrun rollback {run_id} {task} --to \
             {label}\n",
            label = safety.label()
        ));
        text
    }
}

//! `kkrun export`'s machinery: a branch whose single commit puts a task's
//! change (its last snapshot minus `00-base`) on a base commit.
//!
//! Everything happens in the object database: the change is merged onto the
//! base in memory (a three-way merge with `00-base` as the ancestor, so a
//! base that moved on elsewhere in a file still takes the change), the tree
//! and commit are written as objects, and only the branch ref is updated.
//! HEAD, the index and the work tree are never read or written.

use std::path::{Path, PathBuf};

use git2::{Delta, DiffOptions, FileMode, MergeOptions, Oid, Repository, Tree};
use git2::{Signature, Time, build::TreeUpdateBuilder};

use super::{FileChange, SnapshotError, SnapshotInfo, SnapshotStore};

/// What [`SnapshotStore::export`] is asked to do.
#[derive(Debug, Clone)]
pub struct ExportRequest<'a> {
    /// The run id.
    pub run_id: &'a str,
    /// The task whose change is exported.
    pub task: &'a str,
    /// The branch to create, `kkrun/fix-dates` or `refs/heads/kkrun/fix-dates`.
    pub branch: &'a str,
    /// The commit to build on (anything `git rev-parse` takes); `None` for
    /// the commit HEAD pointed at when the task started.
    pub base: Option<&'a str>,
    /// Replace the branch when it exists.
    pub force: bool,
    /// The commit message.
    pub message: &'a str,
}

/// The branch [`SnapshotStore::export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The full ref name, `refs/heads/<branch>`.
    pub branch: String,
    /// The new commit.
    pub commit: String,
    /// The base commit it sits on; `None` for a root commit (the task ran
    /// on an unborn branch).
    pub base: Option<String>,
    /// The commit the branch pointed at before, when `--force` replaced it.
    pub replaced: Option<String>,
    /// The files the commit changes relative to its base, sorted by path.
    pub files: Vec<FileChange>,
}

/// The two snapshots that bound a task's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChange {
    /// `00-base`: the work tree when the task started.
    pub base: SnapshotInfo,
    /// The task's last snapshot that is not a rollback's `safety` snapshot.
    pub last: SnapshotInfo,
}

/// The stage name of the snapshot taken before a rollback or an apply.
pub const SAFETY_STAGE: &str = "safety";

impl SnapshotStore {
    /// The task's result: its last snapshot that is not a `safety` one
    /// (those record the work tree before a rollback or an apply, not what
    /// the task did). This is `kkrun diff`'s default end.
    pub fn task_result(&self, run_id: &str, task: &str) -> Result<SnapshotInfo, SnapshotError> {
        let snapshots = self.existing(run_id, task)?;
        let index = snapshots
            .iter()
            .rposition(|s| s.stage != SAFETY_STAGE)
            .unwrap_or(snapshots.len() - 1);
        Ok(snapshots[index].clone())
    }

    /// The snapshots bounding task `task`'s change in run `run_id`.
    ///
    /// `safety` snapshots (taken by `kkrun rollback` before it restores) are
    /// skipped: they record whatever the work tree held later, not the task.
    pub fn task_change(&self, run_id: &str, task: &str) -> Result<TaskChange, SnapshotError> {
        let snapshots = self.existing(run_id, task)?;
        let known = || snapshots.iter().map(SnapshotInfo::label).collect();
        let Some(base) = snapshots.iter().find(|s| s.index == 0 && s.stage == "base") else {
            return Err(SnapshotError::UnknownSnapshot {
                run: run_id.to_owned(),
                task: task.to_owned(),
                which: "00-base".to_owned(),
                known: known(),
            });
        };
        let last = snapshots
            .iter()
            .rev()
            .find(|s| s.stage != SAFETY_STAGE)
            .unwrap_or(base);
        Ok(TaskChange {
            base: base.clone(),
            last: last.clone(),
        })
    }

    /// Creates (or with `force`, replaces) a branch whose one commit sits on
    /// the base and holds exactly the task's change inside its workspace.
    ///
    /// Refused with an exit-code-2 error when the branch name is invalid, the
    /// branch exists without `force` or is checked out in a work tree, the
    /// base cannot be resolved, the change conflicts with the base (naming
    /// every conflicting path), or the change is empty on the base.
    pub fn export(&self, request: &ExportRequest<'_>) -> Result<Exported, SnapshotError> {
        let change = self.task_change(request.run_id, request.task)?;
        let branch = branch_ref(request.branch)?;
        let repo = self.repo()?;

        let base_commit = match request.base {
            Some(spec) => Some(
                repo.revparse_single(spec)
                    .and_then(|object| object.peel_to_commit())
                    .map_err(|source| SnapshotError::UnknownBase {
                        base: spec.to_owned(),
                        source,
                    })?,
            ),
            // The first snapshot's parent is HEAD at the start of the task.
            None => snapshot_commit(&repo, &change.base)?.parents().next(),
        };
        let base_label = request
            .base
            .map(str::to_owned)
            .or_else(|| base_commit.as_ref().map(|c| short(&c.id().to_string())))
            .unwrap_or_else(|| "an empty tree".to_owned());

        let existing = match repo.find_reference(&branch) {
            Ok(reference) => {
                Some(
                    reference
                        .target()
                        .ok_or_else(|| SnapshotError::InvalidBranch {
                            branch: request.branch.to_owned(),
                            reason: "it is a symbolic ref".to_owned(),
                        })?,
                )
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(SnapshotError::git(format!("read {branch}"), e)),
        };
        if let Some(commit) = existing {
            if !request.force {
                return Err(SnapshotError::BranchExists {
                    branch: request.branch.to_owned(),
                    commit: short(&commit.to_string()),
                });
            }
            if let Some(worktree) = checked_out_in(&repo, &branch)? {
                return Err(SnapshotError::BranchCheckedOut {
                    branch: request.branch.to_owned(),
                    worktree,
                });
            }
        }

        let ancestor = snapshot_commit(&repo, &change.base)?
            .tree()
            .map_err(|e| SnapshotError::git("read the 00-base tree", e))?;
        let last = snapshot_commit(&repo, &change.last)?
            .tree()
            .map_err(|e| SnapshotError::git("read the last snapshot's tree", e))?;
        let theirs = scoped_change(&repo, &ancestor, &last, &change.base.workspace)?;
        let ours = match &base_commit {
            Some(commit) => commit
                .tree()
                .map_err(|e| SnapshotError::git("read the base tree", e))?,
            None => empty_tree(&repo)?,
        };
        let merged = merge(&repo, &ancestor, &ours, &theirs).map_err(|paths| match paths {
            MergeFailure::Conflicts(paths) => SnapshotError::ExportConflict {
                run: request.run_id.to_owned(),
                task: request.task.to_owned(),
                base: base_label.clone(),
                paths,
            },
            MergeFailure::Git(e) => SnapshotError::git("merge the change onto the base", e),
        })?;
        if merged == ours.id() {
            return Err(SnapshotError::NothingToExport {
                run: request.run_id.to_owned(),
                task: request.task.to_owned(),
                base: base_label,
            });
        }
        let tree = repo
            .find_tree(merged)
            .map_err(|e| SnapshotError::git("read the exported tree", e))?;
        let signature = signature(&repo)?;
        let parents: Vec<&git2::Commit<'_>> = base_commit.iter().collect();
        let commit = repo
            .commit(
                None,
                &signature,
                &signature,
                request.message,
                &tree,
                &parents,
            )
            .map_err(|e| self.write_error("write the exported commit", e))?;
        let log = format!("kkrun export: {} of run {}", request.task, request.run_id);
        // The expected old value is checked under the ref's lock, so a branch
        // created or moved meanwhile by someone else is never overwritten.
        let expected = existing.unwrap_or(Oid::ZERO_SHA1);
        repo.reference_matching(&branch, commit, true, expected, &log)
            .map_err(|e| match e.code() {
                git2::ErrorCode::Modified | git2::ErrorCode::Exists => {
                    SnapshotError::BranchExists {
                        branch: request.branch.to_owned(),
                        commit: "(changed meanwhile)".to_owned(),
                    }
                }
                _ => self.write_error(&format!("update {branch}"), e),
            })?;
        let files = super::diff::tree_changes(&repo, &ours, &tree)?;
        Ok(Exported {
            branch,
            commit: commit.to_string(),
            base: base_commit.map(|c| c.id().to_string()),
            replaced: existing.map(|oid| oid.to_string()),
            files,
        })
    }
}

/// `refs/heads/<name>` for a branch name given with or without the prefix.
fn branch_ref(name: &str) -> Result<String, SnapshotError> {
    let short_name = name.strip_prefix("refs/heads/").unwrap_or(name);
    let full = format!("refs/heads/{short_name}");
    let invalid = |reason: &str| SnapshotError::InvalidBranch {
        branch: name.to_owned(),
        reason: reason.to_owned(),
    };
    if short_name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if short_name == "HEAD" || short_name.starts_with('-') {
        return Err(invalid("git reserves it"));
    }
    if !git2::Reference::is_valid_name(&full) {
        return Err(invalid("git does not accept it as a branch name"));
    }
    Ok(full)
}

/// The work tree that has `branch` checked out, if any: moving such a
/// branch would leave that work tree's index and files out of step.
fn checked_out_in(repo: &Repository, branch: &str) -> Result<Option<PathBuf>, SnapshotError> {
    let common = repo.commondir();
    let mut heads = vec![(common.join("HEAD"), common.to_owned())];
    let worktrees = common.join("worktrees");
    if let Ok(entries) = std::fs::read_dir(&worktrees) {
        for entry in entries.flatten() {
            let dir = entry.path();
            let work = std::fs::read_to_string(dir.join("gitdir"))
                .ok()
                .and_then(|gitdir| Path::new(gitdir.trim()).parent().map(Path::to_owned))
                .unwrap_or_else(|| dir.clone());
            heads.push((dir.join("HEAD"), work));
        }
    }
    for (head, work) in heads {
        let Ok(text) = std::fs::read_to_string(&head) else {
            continue;
        };
        if text.trim().strip_prefix("ref:").map(str::trim) == Some(branch) {
            let work = if work == common {
                repo.workdir().map(Path::to_owned).unwrap_or(work)
            } else {
                work
            };
            return Ok(Some(work));
        }
    }
    Ok(None)
}

pub(super) fn snapshot_commit<'r>(
    repo: &'r Repository,
    snapshot: &SnapshotInfo,
) -> Result<git2::Commit<'r>, SnapshotError> {
    Oid::from_str(&snapshot.commit)
        .and_then(|oid| repo.find_commit(oid))
        .map_err(|_| SnapshotError::CorruptSnapshot {
            ref_name: snapshot.ref_name.clone(),
            reason: format!("commit {} cannot be read", snapshot.commit),
        })
}

fn empty_tree(repo: &Repository) -> Result<Tree<'_>, SnapshotError> {
    repo.treebuilder(None)
        .and_then(|builder| builder.write())
        .and_then(|oid| repo.find_tree(oid))
        .map_err(|e| SnapshotError::git("write the empty tree", e))
}

/// `ancestor` with the changes from `ancestor` to `last` inside `workspace`
/// applied: what the task did, and nothing that changed elsewhere in the
/// work tree while it ran.
pub(super) fn scoped_change<'r>(
    repo: &'r Repository,
    ancestor: &Tree<'r>,
    last: &Tree<'r>,
    workspace: &str,
) -> Result<Tree<'r>, SnapshotError> {
    if workspace.is_empty() {
        return Ok(last.clone());
    }
    let mut options = DiffOptions::new();
    options.pathspec(workspace).disable_pathspec_match(true);
    let diff = repo
        .diff_tree_to_tree(Some(ancestor), Some(last), Some(&mut options))
        .map_err(|e| SnapshotError::git("compare 00-base with the last snapshot", e))?;
    let mut update = TreeUpdateBuilder::new();
    // Removals first, so a file replaced by a directory of the same name
    // (or the reverse) is gone before its replacement goes in.
    let mut upserts = Vec::new();
    for delta in diff.deltas() {
        let old = delta.old_file();
        let new = delta.new_file();
        match delta.status() {
            Delta::Deleted => {
                if let Some(path) = old.path() {
                    update.remove(path);
                }
            }
            Delta::Added | Delta::Modified | Delta::Typechange => {
                if let (Some(path), Some(mode)) = (new.path(), file_mode(new.mode())) {
                    upserts.push((path.to_owned(), new.id(), mode));
                }
            }
            _ => {}
        }
    }
    for (path, id, mode) in &upserts {
        update.upsert(path, *id, *mode);
    }
    update
        .create_updated(repo, ancestor)
        .and_then(|oid| repo.find_tree(oid))
        .map_err(|e| SnapshotError::git("build the task's change", e))
}

fn file_mode(mode: FileMode) -> Option<FileMode> {
    match mode {
        FileMode::Blob | FileMode::BlobExecutable | FileMode::Link | FileMode::Commit => Some(mode),
        FileMode::BlobGroupWritable => Some(FileMode::Blob),
        _ => None,
    }
}

/// Why [`merge`] produced no tree.
pub(super) enum MergeFailure {
    /// Paths changed both by the task and, differently, on the base.
    Conflicts(Vec<String>),
    Git(git2::Error),
}

/// Three-way merge of trees: the task's change (`ancestor` → `theirs`) onto
/// `ours`. Returns the merged tree's id.
pub(super) fn merge(
    repo: &Repository,
    ancestor: &Tree<'_>,
    ours: &Tree<'_>,
    theirs: &Tree<'_>,
) -> Result<Oid, MergeFailure> {
    if ours.id() == ancestor.id() {
        return Ok(theirs.id());
    }
    // Path by path: rename detection pairs small unrelated files (a deleted
    // `b.txt` with an added `c.txt`) and then loses the deletion.
    let mut options = MergeOptions::new();
    options.find_renames(false);
    let mut index = repo
        .merge_trees(ancestor, ours, theirs, Some(&options))
        .map_err(MergeFailure::Git)?;
    if index.has_conflicts() {
        let mut paths = Vec::new();
        for conflict in index.conflicts().map_err(MergeFailure::Git)? {
            let conflict = conflict.map_err(MergeFailure::Git)?;
            for entry in [conflict.our, conflict.their, conflict.ancestor]
                .into_iter()
                .flatten()
            {
                let path = String::from_utf8_lossy(&entry.path).into_owned();
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        return Err(MergeFailure::Conflicts(paths));
    }
    index.write_tree_to(repo).map_err(MergeFailure::Git)
}

/// The exported commit's author and committer: `KKRUN_GIT_NAME` and
/// `KKRUN_GIT_EMAIL` when set, else the repository's `user.name` and
/// `user.email`, else `kkrun <kkrun@localhost>`.
fn signature(repo: &Repository) -> Result<Signature<'static>, SnapshotError> {
    let config = repo.config().ok();
    let pick = |env: &str, key: &str, default: &str| {
        std::env::var(env)
            .ok()
            .filter(|value| !value.trim().is_empty())
            .or_else(|| config.as_ref().and_then(|c| c.get_string(key).ok()))
            .filter(|value| !value.trim().is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let name = pick("KKRUN_GIT_NAME", "user.name", "kkrun");
    let email = pick("KKRUN_GIT_EMAIL", "user.email", "kkrun@localhost");
    let now = jiff::Timestamp::now().as_second();
    Signature::new(&name, &email, &Time::new(now, 0))
        .map_err(|e| SnapshotError::git("build the commit author", e))
}

fn short(commit: &str) -> String {
    commit[..commit.len().min(12)].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_get_their_prefix_once_and_bad_ones_are_refused() {
        assert_eq!(branch_ref("kkrun/fix").unwrap(), "refs/heads/kkrun/fix");
        assert_eq!(
            branch_ref("refs/heads/kkrun/fix").unwrap(),
            "refs/heads/kkrun/fix"
        );
        for bad in ["", "HEAD", "-x", "a..b", "a b", "x.lock", "a~1", "a:b"] {
            let err = branch_ref(bad).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit_codes::INVALID_INPUT, "{bad}");
        }
    }
}

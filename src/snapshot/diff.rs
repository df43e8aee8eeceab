//! Diffs between snapshots, and between a snapshot and the live work tree.

use git2::{Delta, Diff, DiffFindOptions, DiffFormat, DiffOptions, Oid, Patch, Repository, Tree};

use super::{FileChange, SnapshotDiff, SnapshotError, SnapshotInfo, SnapshotStore};

/// Diff options limited to `workspace` (empty: the whole tree).
fn options(workspace: &str) -> DiffOptions {
    let mut options = DiffOptions::new();
    options.include_typechange(true).show_binary(true);
    if !workspace.is_empty() {
        options.pathspec(workspace).disable_pathspec_match(true);
    }
    options
}

/// How many files differ between `old` (none: the empty tree) and `new`
/// inside `workspace`.
pub(crate) fn count_changes(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
    workspace: &str,
) -> Result<usize, SnapshotError> {
    if old.is_some_and(|old| old.id() == new.id()) {
        return Ok(0);
    }
    let diff = repo
        .diff_tree_to_tree(old, Some(new), Some(&mut options(workspace)))
        .map_err(|e| SnapshotError::git("compare a snapshot with its parent", e))?;
    Ok(diff.deltas().len())
}

impl SnapshotStore {
    /// The difference from one snapshot to another, or to the live work tree
    /// when `to` is `None`, limited to the workspace directory.
    pub fn diff(
        &self,
        from: &SnapshotInfo,
        to: Option<&SnapshotInfo>,
    ) -> Result<SnapshotDiff, SnapshotError> {
        let repo = self.repo()?;
        let from_tree = snapshot_tree(&repo, from)?;
        let mut diff = match to {
            Some(to) => {
                let to_tree = snapshot_tree(&repo, to)?;
                repo.diff_tree_to_tree(
                    Some(&from_tree),
                    Some(&to_tree),
                    Some(&mut options(&self.workspace_rel)),
                )
            }
            None => {
                // The live tree exactly as a snapshot would record it now.
                let live = self.worktree_index(&repo)?;
                repo.diff_tree_to_index(
                    Some(&from_tree),
                    Some(&live.index),
                    Some(&mut options(&self.workspace_rel)),
                )
            }
        }
        .map_err(|e| SnapshotError::git(format!("diff {}", from.label()), e))?;
        diff.find_similar(Some(DiffFindOptions::new().renames(true)))
            .map_err(|e| SnapshotError::git("detect renames", e))?;
        Ok(SnapshotDiff {
            patch: patch_text(&diff)?,
            files: file_changes(&diff)?,
        })
    }
}

fn snapshot_tree<'r>(
    repo: &'r Repository,
    snapshot: &SnapshotInfo,
) -> Result<Tree<'r>, SnapshotError> {
    Oid::from_str(&snapshot.commit)
        .and_then(|oid| repo.find_commit(oid))
        .and_then(|commit| commit.tree())
        .map_err(|_| SnapshotError::CorruptSnapshot {
            ref_name: snapshot.ref_name.clone(),
            reason: format!("commit {} cannot be read", snapshot.commit),
        })
}

fn patch_text(diff: &Diff<'_>) -> Result<String, SnapshotError> {
    let mut bytes = Vec::new();
    diff.print(DiffFormat::Patch, |_, _, line| {
        // Content lines come without their `+`/`-`/` ` marker; headers and
        // binary hunks carry everything.
        if matches!(line.origin(), '+' | '-' | ' ') {
            bytes.push(line.origin() as u8);
        }
        bytes.extend_from_slice(line.content());
        true
    })
    .map_err(|e| SnapshotError::git("format the patch", e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn file_changes(diff: &Diff<'_>) -> Result<Vec<FileChange>, SnapshotError> {
    let mut files = Vec::new();
    for (position, delta) in diff.deltas().enumerate() {
        let status = match delta.status() {
            Delta::Added | Delta::Copied | Delta::Untracked => "added",
            Delta::Deleted => "deleted",
            Delta::Modified => "modified",
            Delta::Renamed => "renamed",
            Delta::Typechange => "typechange",
            Delta::Unmodified | Delta::Ignored | Delta::Unreadable | Delta::Conflicted => continue,
        };
        let path = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .map(|path| path.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let (additions, deletions) = match Patch::from_diff(diff, position)
            .map_err(|e| SnapshotError::git(format!("count the changes of {path}"), e))?
        {
            Some(patch) if !delta.flags().is_binary() => {
                let (_, additions, deletions) = patch
                    .line_stats()
                    .map_err(|e| SnapshotError::git(format!("count the changes of {path}"), e))?;
                (additions, deletions)
            }
            _ => (0, 0),
        };
        files.push(FileChange {
            path,
            status: status.to_owned(),
            additions,
            deletions,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

//! Diffs between snapshots, and between a snapshot and the live work tree.

use git2::{Delta, Diff, DiffFindOptions, DiffOptions, Oid, Patch, Repository, Tree};

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
/// inside `workspace` (see the `count` module).
pub(crate) fn count_changes(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: &Tree<'_>,
    workspace: &str,
) -> Result<usize, SnapshotError> {
    super::count::count_changes(repo, old, new, workspace)
        .map_err(|e| SnapshotError::git("compare a snapshot with its parent", e))
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
        let live;
        let to_tree = match to {
            Some(to) => Some(snapshot_tree(&repo, to)?),
            None => None,
        };
        let target = match &to_tree {
            Some(tree) => Target::Tree(tree),
            None => {
                // The live tree exactly as a full snapshot would record it
                // now (a diff needs the index; it leaves the change log be).
                live = self.scan_index(&repo)?;
                Target::Index(&live.index)
            }
        };
        // The file list reports a file replaced by a symlink as one
        // typechange; the patch needs a deletion plus an addition, the only
        // form `git apply` accepts.
        let listed = self.diff_trees(&repo, &from_tree, &target, true)?;
        let patched = self.diff_trees(&repo, &from_tree, &target, false)?;
        Ok(SnapshotDiff {
            patch: patch_text(&patched)?,
            files: file_changes(&listed)?,
        })
    }

    fn diff_trees<'r>(
        &self,
        repo: &'r Repository,
        from: &Tree<'_>,
        to: &Target<'_, '_>,
        typechanges: bool,
    ) -> Result<Diff<'r>, SnapshotError> {
        let mut options = options(&self.workspace_rel);
        options.include_typechange(typechanges);
        let mut diff = match to {
            Target::Tree(tree) => {
                repo.diff_tree_to_tree(Some(from), Some(tree), Some(&mut options))
            }
            Target::Index(index) => {
                repo.diff_tree_to_index(Some(from), Some(index), Some(&mut options))
            }
        }
        .map_err(|e| SnapshotError::git("compare snapshots", e))?;
        diff.find_similar(Some(DiffFindOptions::new().renames(true)))
            .map_err(|e| SnapshotError::git("detect renames", e))?;
        Ok(diff)
    }
}

/// Every file that differs between two trees of the whole repository, with
/// renames detected.
pub(crate) fn tree_changes(
    repo: &Repository,
    old: &Tree<'_>,
    new: &Tree<'_>,
) -> Result<Vec<FileChange>, SnapshotError> {
    let mut diff = repo
        .diff_tree_to_tree(Some(old), Some(new), Some(&mut options("")))
        .map_err(|e| SnapshotError::git("compare trees", e))?;
    diff.find_similar(Some(DiffFindOptions::new().renames(true)))
        .map_err(|e| SnapshotError::git("detect renames", e))?;
    file_changes(&diff)
}

/// What a snapshot is compared with.
enum Target<'a, 'r> {
    Tree(&'a Tree<'r>),
    Index(&'a git2::Index),
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
    let deltas: Vec<_> = diff.deltas().collect();
    // libgit2 lists the addition of a path before the deletion of the file
    // it replaces; `git apply` needs the deletion first.
    let mut order: Vec<usize> = (0..deltas.len()).collect();
    let mut i = 0;
    while i + 1 < deltas.len() {
        let (a, b) = (&deltas[i], &deltas[i + 1]);
        if a.status() == Delta::Added
            && b.status() == Delta::Deleted
            && a.new_file().path() == b.old_file().path()
        {
            order.swap(i, i + 1);
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut bytes = Vec::new();
    for position in order {
        if let Some(mut patch) = Patch::from_diff(diff, position)
            .map_err(|e| SnapshotError::git("format the patch", e))?
        {
            let buf = patch
                .to_buf()
                .map_err(|e| SnapshotError::git("format the patch", e))?;
            bytes.extend_from_slice(&buf);
        }
    }
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

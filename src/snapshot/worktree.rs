//! Reading the work tree into a private index, and writing a snapshot back
//! onto the work tree.

use std::path::Path;

use git2::{Index, IndexAddOption, Oid, Repository, build::CheckoutBuilder};

use super::store::head_oid;
use super::{SnapshotError, SnapshotInfo, SnapshotMeta, SnapshotStore};

/// The work tree as an index, plus the temporary directory its file lives in.
pub(crate) struct WorktreeIndex {
    /// The index: a copy of the repository's, brought up to date with the
    /// work tree. It is the `repo`'s index for as long as the `repo` lives.
    pub(crate) index: Index,
    /// The tree written from `index`.
    pub(crate) tree: Oid,
    /// Deleted on drop, after `index` (fields drop in declaration order).
    _dir: tempfile::TempDir,
}

impl SnapshotStore {
    /// Builds an index of the whole work tree, as `git add -A` would, without
    /// touching the repository's own index.
    ///
    /// It starts from a copy of the repository's index that keeps the file's
    /// modification time, so libgit2 trusts the stat data of the entries just
    /// as it would in the original and rehashes only files that changed. The
    /// copy becomes `repo`'s index so that submodules are recorded in it too.
    pub(crate) fn worktree_index(&self, repo: &Repository) -> Result<WorktreeIndex, SnapshotError> {
        let dir = tempfile::Builder::new()
            .prefix("kkrun-index-")
            .tempdir()
            .map_err(|e| {
                SnapshotError::io("create a temporary directory in", std::env::temp_dir(), e)
            })?;
        let copy = dir.path().join("index");
        let original = repo.path().join("index");
        let copied = copy_index(&original, &copy)?;
        let mut index = match Index::open(&copy) {
            Ok(index) => index,
            // An index libgit2 cannot read (for instance with a split-index
            // extension) only costs speed: start from HEAD and hash everything.
            Err(_) if copied => {
                std::fs::remove_file(&copy)
                    .map_err(|e| SnapshotError::io("remove", copy.clone(), e))?;
                let mut index = Index::open(&copy)
                    .map_err(|e| SnapshotError::git("create a temporary index", e))?;
                if let Some(head) = head_oid(repo)? {
                    let tree = repo
                        .find_commit(head)
                        .and_then(|commit| commit.tree())
                        .map_err(|e| SnapshotError::git("read HEAD's tree", e))?;
                    index
                        .read_tree(&tree)
                        .map_err(|e| SnapshotError::git("read HEAD's tree", e))?;
                }
                index
            }
            Err(e) => return Err(SnapshotError::git("create a temporary index", e)),
        };
        repo.set_index(&mut index)
            .map_err(|e| SnapshotError::git("use a temporary index", e))?;
        index
            .add_all(Vec::<&str>::new(), IndexAddOption::DEFAULT, None)
            .map_err(|e| self.write_error("read the work tree", e))?;
        let tree = index
            .write_tree_to(repo)
            .map_err(|e| self.write_error("write the snapshot tree", e))?;
        Ok(WorktreeIndex {
            index,
            tree,
            _dir: dir,
        })
    }

    /// Restores the workspace exactly to `target`, after taking a `safety`
    /// snapshot of the current state, which is returned.
    ///
    /// Files created after `target` are deleted unless ignored, deleted files
    /// come back, contents and modes match. Ignored files, HEAD, the index,
    /// branches and the stash are untouched, and so is everything outside the
    /// workspace directory.
    pub fn restore(
        &self,
        run_id: &str,
        task: &str,
        target: &SnapshotInfo,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let repo = self.repo()?;
        let target_tree = Oid::from_str(&target.commit)
            .and_then(|oid| repo.find_commit(oid))
            .and_then(|commit| commit.tree())
            .map_err(|_| SnapshotError::CorruptSnapshot {
                ref_name: target.ref_name.clone(),
                reason: format!("commit {} cannot be read", target.commit),
            })?;
        let current = self.worktree_index(&repo)?;
        let meta = SnapshotMeta::new("safety", format!("before restoring {}", target.label()));
        let safety = self.commit_snapshot(&repo, run_id, task, &meta, current.tree)?;

        // The repository's index is now the private index of the state just
        // saved, so to checkout every non-ignored file is tracked: the ones
        // missing from the target get removed, ignored ones are left alone.
        let mut checkout = CheckoutBuilder::new();
        checkout.force().remove_untracked(true).update_index(false);
        if !self.workspace_rel.is_empty() {
            checkout
                .path(self.workspace_rel.as_str())
                .disable_pathspec_match(true);
        }
        repo.checkout_tree(target_tree.as_object(), Some(&mut checkout))
            .map_err(|e| SnapshotError::git(format!("restore {}", target.label()), e))?;
        drop(current);
        Ok(safety)
    }
}

/// Copies the repository's index keeping its modification time; returns
/// false when there is no index yet. Time and content come from one open
/// file, so a concurrent `git add` replacing the index cannot mix them.
fn copy_index(original: &Path, copy: &Path) -> Result<bool, SnapshotError> {
    let mut source = match std::fs::File::open(original) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(SnapshotError::io("read", original, e)),
    };
    let modified = source
        .metadata()
        .and_then(|meta| meta.modified())
        .map_err(|e| SnapshotError::io("read the modification time of", original, e))?;
    let mut target =
        std::fs::File::create(copy).map_err(|e| SnapshotError::io("create", copy, e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| SnapshotError::io("copy", original, e))?;
    target
        .set_modified(modified)
        .map_err(|e| SnapshotError::io("set the modification time of", copy, e))?;
    Ok(true)
}

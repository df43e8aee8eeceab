//! Reading the work tree into a private index, and writing a snapshot back
//! onto the work tree.

use std::path::Path;
use std::time::SystemTime;

use git2::{FileMode, Index, IndexAddOption, Oid, Repository, build::TreeUpdateBuilder};

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

/// The work tree as a tree, from [`SnapshotStore::worktree_state`].
pub(crate) struct WorktreeState {
    /// The tree a snapshot taken now would record.
    pub(crate) tree: Oid,
    /// The full scan's private index, when there was one: it stays the
    /// repository's index, and its file on disk, while the state lives.
    _scan: Option<WorktreeIndex>,
}

impl SnapshotStore {
    /// Builds an index of the whole work tree, as `git add -A` would, without
    /// touching the repository's own index.
    ///
    /// It starts from a copy of the repository's index that keeps the file's
    /// modification time, so the stat data of its entries can be trusted just
    /// as in the original: only files whose stat data changed are rehashed
    /// (see the `scan` module). The copy becomes `repo`'s index so that
    /// submodules are recorded in it too.
    pub(crate) fn scan_index(&self, repo: &Repository) -> Result<WorktreeIndex, SnapshotError> {
        self.worktree_index_with(repo, Scan::Parallel)
    }

    /// The work tree as a tree, for a caller that needs no index (a
    /// restore, an apply, a new worktree): incrementally when the store's
    /// change log knows every path written since its last snapshot (see
    /// [`Self::incremental_tree`]), otherwise by [`Self::scan_index`].
    /// Either way the log is left unknown: the caller does not make this
    /// tree the next base.
    ///
    /// Incrementally no index is read or copied at all (on a large
    /// repository that alone costs about as much as the rest of a small
    /// restore).
    pub(crate) fn worktree_state(&self, repo: &Repository) -> Result<WorktreeState, SnapshotError> {
        let taken = self.changes.as_ref().map(crate::tools::ChangeLog::take);
        let known = taken.as_ref().and_then(|taken| taken.known.as_ref());
        if let Some(tree) = self.incremental_tree(repo, known) {
            return Ok(WorktreeState { tree, _scan: None });
        }
        let scan = self.scan_index(repo)?;
        Ok(WorktreeState {
            tree: scan.tree,
            _scan: Some(scan),
        })
    }

    /// A copy of the repository's index in a temporary directory, made
    /// `repo`'s index.
    fn private_index(&self, repo: &Repository) -> Result<PrivateIndex, SnapshotError> {
        let dir = tempfile::Builder::new()
            .prefix("kkrun-index-")
            .tempdir()
            .map_err(|e| {
                SnapshotError::io("create a temporary directory in", std::env::temp_dir(), e)
            })?;
        let copy = dir.path().join("index");
        let original = repo.path().join("index");
        let index_mtime = copy_index(&original, &copy)?;
        let copied = index_mtime.is_some();
        let mut from_head = false;
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
                from_head = true;
                index
            }
            Err(e) => return Err(SnapshotError::git("create a temporary index", e)),
        };
        repo.set_index(&mut index)
            .map_err(|e| SnapshotError::git("use a temporary index", e))?;
        Ok(PrivateIndex {
            index,
            index_mtime,
            from_head,
            dir,
        })
    }

    /// [`Self::scan_index`] with a choice of how the work tree is read.
    pub(crate) fn worktree_index_with(
        &self,
        repo: &Repository,
        how: Scan,
    ) -> Result<WorktreeIndex, SnapshotError> {
        let PrivateIndex {
            mut index,
            index_mtime,
            from_head,
            dir,
        } = self.private_index(repo)?;
        let changes = match how {
            // Entries read from HEAD have no stat data to compare.
            Scan::Parallel if !from_head => {
                super::scan::scan(repo, &index, &self.workdir, index_mtime)?
            }
            _ => None,
        };
        let updated = match changes {
            Some(changes) => {
                // The copied index usually has complete cached trees (git
                // writes them on commit and checkout), and then its tree
                // costs nothing; editing that tree writes only the trees on
                // the changed paths, where writing the edited index would
                // re-read every tree of the repository to rebuild its cache.
                let base = index.write_tree_to(repo).ok();
                self.apply_changes(&mut index, &changes)?;
                base.and_then(|base| update_tree(repo, &index, base, &changes).ok())
            }
            None => {
                self.add_all(&mut index)?;
                None
            }
        };
        let tree = match updated {
            Some(tree) => tree,
            None => index
                .write_tree_to(repo)
                .map_err(|e| self.write_error("write the snapshot tree", e))?,
        };
        Ok(WorktreeIndex {
            index,
            tree,
            _dir: dir,
        })
    }

    /// Brings `index` up to date with the paths a scan found.
    fn apply_changes(
        &self,
        index: &mut Index,
        changes: &super::scan::Changes,
    ) -> Result<(), SnapshotError> {
        for path in &changes.remove {
            index
                .remove_path(path)
                .map_err(|e| SnapshotError::git(format!("update {}", path.display()), e))?;
        }
        for path in &changes.add {
            match index.add_path(path) {
                Ok(()) => {}
                // Deleted since the scan saw it: record it as gone.
                Err(_) if std::fs::symlink_metadata(self.workdir.join(path)).is_err() => index
                    .remove_path(path)
                    .map_err(|e| SnapshotError::git(format!("update {}", path.display()), e))?,
                // A nested repository without a commit has nothing to
                // record; `git add` refuses it too.
                Err(_) if is_repository_without_commit(&self.workdir.join(path)) => {}
                Err(e) => {
                    return Err(self.write_error(&format!("record {}", path.display()), e));
                }
            }
        }
        Ok(())
    }

    /// libgit2's own add-all: one thread, but it needs no assumptions.
    fn add_all(&self, index: &mut Index) -> Result<(), SnapshotError> {
        // libgit2 reports an untracked repository nested in the work tree as
        // `dir/` and cannot add it under that name; it is added below as a
        // gitlink, like `git add` does.
        let mut nested = Vec::new();
        let mut skip_nested = |path: &Path, _: &[u8]| -> i32 {
            if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
                nested.push(path.to_owned());
                1
            } else {
                0
            }
        };
        // `*` matches every path; an empty pathspec would mean the same, but
        // then git2 hands the callback a null pathspec.
        index
            .add_all(["*"], IndexAddOption::DEFAULT, Some(&mut skip_nested))
            .map_err(|e| self.write_error("read the work tree", e))?;
        for dir in nested {
            let trimmed = dir.to_string_lossy().trim_end_matches('/').to_owned();
            if !is_repository_without_commit(&self.workdir.join(&trimmed)) {
                index.add_path(Path::new(&trimmed)).map_err(|e| {
                    self.write_error(&format!("record the repository {trimmed}"), e)
                })?;
            }
        }
        Ok(())
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
        let current = self.worktree_state(&repo)?;
        let meta = SnapshotMeta::new("safety", format!("before restoring {}", target.label()));
        let safety = self.commit_snapshot(&repo, run_id, task, &meta, current.tree)?;
        let safety_tree = repo
            .find_tree(current.tree)
            .map_err(|e| SnapshotError::git("read the safety snapshot", e))?;
        self.write_tree_onto_workdir(
            &repo,
            &safety_tree,
            &target_tree,
            &format!("{run_id}/{task} {}", target.label()),
        )
        .map_err(|e| match e {
            SnapshotError::Git { action, source } => SnapshotError::Git {
                action: format!(
                    "{action} while restoring {} (hint: the state before the restore is \
                         saved as {})",
                    target.label(),
                    safety.label()
                ),
                source,
            },
            other => other,
        })?;
        drop(current);
        Ok(safety)
    }
}

/// `base` with the scanned paths set to their entries in `index`.
fn update_tree(
    repo: &Repository,
    index: &Index,
    base: Oid,
    changes: &super::scan::Changes,
) -> Result<Oid, git2::Error> {
    let base = repo.find_tree(base)?;
    let mut update = TreeUpdateBuilder::new();
    for path in changes.remove.iter().chain(&changes.add) {
        match index.get_path(path, 0) {
            Some(entry) => {
                let mode = match entry.mode {
                    0o100644 => FileMode::Blob,
                    0o100755 => FileMode::BlobExecutable,
                    0o120000 => FileMode::Link,
                    0o160000 => FileMode::Commit,
                    _ => return Err(git2::Error::from_str("unexpected index entry mode")),
                };
                update.upsert(path.as_path(), entry.id, mode);
            }
            None => {
                update.remove(path.as_path());
            }
        }
    }
    update.create_updated(repo, &base)
}

/// A private copy of the repository's index (see
/// [`SnapshotStore::private_index`]).
struct PrivateIndex {
    index: Index,
    /// The original's modification time; `None` when there was none.
    index_mtime: Option<SystemTime>,
    /// The copy could not be read and was rebuilt from HEAD, without stat
    /// data.
    from_head: bool,
    /// Holds the copy; deleted on drop.
    dir: tempfile::TempDir,
}

/// How [`SnapshotStore::worktree_index_with`] reads the work tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The parallel stat scan, falling back to libgit2 when it cannot be used.
    Parallel,
    /// libgit2's add-all.
    #[cfg_attr(not(test), allow(dead_code))]
    AddAll,
}

fn is_repository_without_commit(dir: &Path) -> bool {
    Repository::open(dir).is_ok_and(|nested| head_oid(&nested).is_ok_and(|head| head.is_none()))
}

/// Copies the repository's index keeping its modification time, which it
/// returns; `None` when there is no index yet. Time and content come from one open
/// file, so a concurrent `git add` replacing the index cannot mix them.
fn copy_index(original: &Path, copy: &Path) -> Result<Option<SystemTime>, SnapshotError> {
    let mut source = match std::fs::File::open(original) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
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
    Ok(Some(modified))
}

#[cfg(all(test, unix))]
mod tests;

//! Reading the work tree into a private index, and writing a snapshot back
//! onto the work tree.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use git2::{
    Delta, DiffOptions, FileMode, Index, IndexAddOption, Oid, Repository, Tree,
    build::{CheckoutBuilder, TreeUpdateBuilder},
};

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
    /// modification time, so the stat data of its entries can be trusted just
    /// as in the original: only files whose stat data changed are rehashed
    /// (see the `scan` module). The copy becomes `repo`'s index so that
    /// submodules are recorded in it too.
    pub(crate) fn scan_index(&self, repo: &Repository) -> Result<WorktreeIndex, SnapshotError> {
        self.worktree_index_with(repo, Scan::Parallel)
    }

    /// The work tree as a tree and a private index: incrementally when the
    /// store's change log knows every path written since its last snapshot
    /// (see [`Self::incremental_tree`]), otherwise by
    /// [`Self::scan_index`]. Either way the log is left unknown: the caller
    /// (a restore, a diff) does not make this tree the next base.
    ///
    /// Incrementally, the index is the repository's own, copied and not
    /// brought up to date: a restore only needs a private index for
    /// checkout, which writes each path into a spot the restore has
    /// emptied.
    pub(crate) fn worktree_index(&self, repo: &Repository) -> Result<WorktreeIndex, SnapshotError> {
        let taken = self.changes.as_ref().map(crate::tools::ChangeLog::take);
        let known = taken.as_ref().and_then(|taken| taken.known.as_ref());
        if let Some(tree) = self.incremental_tree(repo, known) {
            let private = self.private_index(repo)?;
            return Ok(WorktreeIndex {
                index: private.index,
                tree,
                _dir: private.dir,
            });
        }
        self.scan_index(repo)
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
        let current = self.worktree_index(&repo)?;
        let meta = SnapshotMeta::new("safety", format!("before restoring {}", target.label()));
        let safety = self.commit_snapshot(&repo, run_id, task, &meta, current.tree)?;
        let safety_tree = repo
            .find_tree(current.tree)
            .map_err(|e| SnapshotError::git("read the safety snapshot", e))?;
        self.write_tree_onto_workdir(&repo, &safety_tree, &target_tree)
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

    /// Turns the workspace from `current` (which it matches) into `target`.
    ///
    /// Every path that changes is first removed, then checkout writes the
    /// target's version into the empty spot. Checkout alone would compare
    /// against HEAD rather than `current` and write *through* a symlink that
    /// replaced a file, changing the file the link points to.
    pub(crate) fn write_tree_onto_workdir(
        &self,
        repo: &Repository,
        current: &Tree<'_>,
        target: &Tree<'_>,
    ) -> Result<(), SnapshotError> {
        let mut options = DiffOptions::new();
        options.include_typechange(true);
        if !self.workspace_rel.is_empty() {
            options
                .pathspec(self.workspace_rel.as_str())
                .disable_pathspec_match(true);
        }
        let diff = repo
            .diff_tree_to_tree(Some(current), Some(target), Some(&mut options))
            .map_err(|e| SnapshotError::git("compare the work tree with the snapshot", e))?;
        let mut to_write = Vec::new();
        let mut emptied = BTreeSet::new();
        for delta in diff.deltas() {
            if delta.status() != Delta::Added {
                let old = &delta.old_file();
                // A submodule's directory holds another repository: never
                // delete it, only its recorded commit changes.
                if let Some(path) = old.path().filter(|_| old.mode() != FileMode::Commit) {
                    let absolute = self.workdir.join(path);
                    match std::fs::symlink_metadata(&absolute) {
                        Ok(meta) if !meta.is_dir() => {
                            std::fs::remove_file(&absolute)
                                .map_err(|e| SnapshotError::io("remove", absolute.clone(), e))?;
                            if let Some(parent) = path.parent() {
                                emptied.insert(parent.to_owned());
                            }
                        }
                        _ => {}
                    }
                }
            }
            if delta.status() != Delta::Deleted
                && let Some(path) = delta.new_file().path()
            {
                to_write.push((path.to_owned(), delta.new_file().mode()));
            }
        }
        // Deepest first, so a chain of directories that became empty goes;
        // the workspace directory itself stays.
        let workspace = Path::new(&self.workspace_rel);
        for dir in emptied.iter().rev() {
            for ancestor in dir.ancestors() {
                if ancestor.as_os_str().is_empty()
                    || ancestor == workspace
                    || std::fs::remove_dir(self.workdir.join(ancestor)).is_err()
                {
                    break;
                }
            }
        }
        if to_write.is_empty() {
            return Ok(());
        }
        let head_tree = match head_oid(repo)? {
            Some(head) => Some(
                repo.find_commit(head)
                    .and_then(|commit| commit.tree())
                    .map_err(|e| SnapshotError::git("read HEAD's tree", e))?,
            ),
            None => None,
        };
        for (path, mode) in &to_write {
            self.clear_the_way(path, *mode)?;
            // Checkout decides what to do by comparing the target with HEAD.
            // When those two disagree on the kind of entry (file, symlink,
            // submodule, directory) and nothing is on disk, it writes
            // nothing; with an entry of HEAD's kind on disk it replaces it
            // with the target's. So put such a placeholder there.
            let head_mode = head_tree
                .as_ref()
                .and_then(|tree| tree.get_path(path).ok())
                .map(|entry| entry.filemode());
            if let Some(head_mode) = head_mode
                && kind(head_mode) != kind(i32::from(*mode))
                && !matches!(mode, FileMode::Tree | FileMode::Commit)
            {
                let placeholder = self.workdir.join(path);
                if let Some(parent) = placeholder.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| SnapshotError::io("create", parent, e))?;
                }
                make_placeholder(&placeholder, head_mode)?;
            }
        }
        let mut checkout = CheckoutBuilder::new();
        checkout
            .force()
            .recreate_missing(true)
            .update_index(false)
            .disable_pathspec_match(true);
        for (path, _) in &to_write {
            checkout.path(path.as_path());
        }
        repo.checkout_tree(target.as_object(), Some(&mut checkout))
            .map_err(|e| SnapshotError::git("write the snapshot's files", e))
    }
}

impl SnapshotStore {
    /// Removes what is left standing where the snapshot puts `path`: only
    /// ignored files can be left at this point (everything else was in the
    /// state just saved and has been removed). Like git, kkrun treats ignored
    /// files as expendable when a restored file needs their place.
    fn clear_the_way(&self, path: &Path, mode: FileMode) -> Result<(), SnapshotError> {
        let mut walked = self.workdir.clone();
        let components: Vec<_> = path.components().collect();
        for (depth, component) in components.iter().enumerate() {
            walked.push(component);
            let Ok(meta) = std::fs::symlink_metadata(&walked) else {
                return Ok(());
            };
            let last = depth + 1 == components.len();
            if !last && !meta.is_dir() {
                // A file where the snapshot has a directory.
                return std::fs::remove_file(&walked)
                    .map_err(|e| SnapshotError::io("remove", walked.clone(), e));
            }
            if last && meta.is_dir() && !matches!(mode, FileMode::Tree | FileMode::Commit) {
                // A directory where the snapshot has a file.
                return std::fs::remove_dir_all(&walked)
                    .map_err(|e| SnapshotError::io("remove", walked.clone(), e));
            }
        }
        Ok(())
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

/// The kind of a tree entry mode: 0o100 for files, 0o120 for symlinks,
/// 0o160 for submodules, 0o040 for trees.
fn kind(mode: i32) -> i32 {
    mode >> 12
}

fn make_placeholder(path: &Path, head_mode: i32) -> Result<(), SnapshotError> {
    let made = if kind(head_mode) == kind(i32::from(FileMode::Tree)) {
        std::fs::create_dir(path)
    } else {
        placeholder_link(path)
    };
    made.map_err(|e| SnapshotError::io("create", path, e))
}

#[cfg(unix)]
fn placeholder_link(path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(".kkrun-restore-placeholder", path)
}

#[cfg(not(unix))]
fn placeholder_link(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, b"")
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

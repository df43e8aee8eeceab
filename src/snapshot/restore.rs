//! Writing a tree onto the work tree so that no file is ever lost: new
//! versions first, each renamed into place, removals last, under a journal
//! (see the `journal` module) that the next kkrun command finishes if the
//! process is killed half-way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{Delta, DiffOptions, FileMode, Index, Oid, Repository, Tree, build::CheckoutBuilder};

use super::journal::{self, InProgress};
use super::{SnapshotError, SnapshotStore};

/// The temporary name a new version gets in its own directory when the
/// staging directory is on another file system and a rename cannot cross.
const TEMP_NAME: &str = ".kkrun-restore.tmp";

/// What a change of the work tree from one tree to another does.
#[derive(Debug, Default)]
struct Plan {
    /// Files and symlinks to write, sorted by path.
    writes: Vec<(PathBuf, Oid, FileMode)>,
    /// Submodule directories the target has.
    submodules: Vec<PathBuf>,
    /// Files and symlinks the target lacks.
    removes: Vec<PathBuf>,
}

impl SnapshotStore {
    /// Turns the workspace from `current` (which it matches) into `target`,
    /// under a journal naming `what` is restored (`run/task 02-code`).
    ///
    /// Only paths whose content, mode or kind differ are touched. Every new
    /// version is checked out (with the repository's filters) into a
    /// staging directory in the git directory and renamed over the old
    /// one, so a path holds either its old or its new version at every
    /// moment; paths the target lacks are removed after all the writes.
    /// Checkout straight into the work tree would compare against HEAD
    /// rather than `current`, and write *through* a symlink that replaced
    /// a file, changing the file the link points to.
    pub(crate) fn write_tree_onto_workdir(
        &self,
        repo: &Repository,
        current: &Tree<'_>,
        target: &Tree<'_>,
        what: &str,
    ) -> Result<(), SnapshotError> {
        let plan = self.plan(repo, current, target)?;
        if plan.writes.is_empty() && plan.submodules.is_empty() && plan.removes.is_empty() {
            return Ok(());
        }
        let mut progress = InProgress::begin(
            &self.git_dir,
            &self.workspace_rel,
            what,
            current.id(),
            target.id(),
        )?;
        self.carry_out(repo, &plan, Some(&mut progress))?;
        progress.finish()
    }

    /// [`Self::write_tree_onto_workdir`] without a journal of its own, for
    /// finishing an interrupted restore whose journal is still in place.
    pub(crate) fn change_workdir(
        &self,
        repo: &Repository,
        current: &Tree<'_>,
        target: &Tree<'_>,
    ) -> Result<(), SnapshotError> {
        let plan = self.plan(repo, current, target)?;
        self.carry_out(repo, &plan, None)
    }

    /// The paths that differ between `current` and `target` inside the
    /// workspace, and what to do with each.
    fn plan(
        &self,
        repo: &Repository,
        current: &Tree<'_>,
        target: &Tree<'_>,
    ) -> Result<Plan, SnapshotError> {
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
        let mut plan = Plan::default();
        for delta in diff.deltas() {
            if delta.status() == Delta::Deleted {
                let old = delta.old_file();
                // A submodule's directory holds another repository: never
                // delete it, only its recorded commit changes.
                if let Some(path) = old.path().filter(|_| old.mode() != FileMode::Commit) {
                    plan.removes.push(path.to_owned());
                }
                continue;
            }
            let new = delta.new_file();
            let Some(path) = new.path() else { continue };
            match new.mode() {
                FileMode::Commit => plan.submodules.push(path.to_owned()),
                mode @ (FileMode::Blob | FileMode::BlobExecutable | FileMode::Link) => {
                    plan.writes.push((path.to_owned(), new.id(), mode));
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    /// Writes, then removes, as `plan` says; `progress` records the switch.
    fn carry_out(
        &self,
        repo: &Repository,
        plan: &Plan,
        progress: Option<&mut InProgress>,
    ) -> Result<(), SnapshotError> {
        let staging = journal::staging_dir(&self.git_dir);
        remove_dir_if_there(&staging)?;
        if !plan.writes.is_empty() {
            self.stage(repo, &plan.writes, &staging)?;
        }
        for (path, _, mode) in &plan.writes {
            self.clear_the_way(path, *mode)?;
            let dest = self.workdir.join(path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| SnapshotError::io("create", parent, e))?;
            }
            place(&staging.join(path), &dest)?;
        }
        for path in &plan.submodules {
            self.clear_the_way(path, FileMode::Commit)?;
            let dest = self.workdir.join(path);
            if std::fs::symlink_metadata(&dest).is_ok_and(|meta| !meta.is_dir()) {
                std::fs::remove_file(&dest).map_err(|e| SnapshotError::io("remove", &dest, e))?;
            }
            std::fs::create_dir_all(&dest).map_err(|e| SnapshotError::io("create", &dest, e))?;
        }
        if let Some(progress) = progress {
            progress.removing()?;
        }
        let mut emptied = BTreeSet::new();
        for path in &plan.removes {
            let absolute = self.workdir.join(path);
            match std::fs::symlink_metadata(&absolute) {
                Ok(meta) if !meta.is_dir() => match std::fs::remove_file(&absolute) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(SnapshotError::io("remove", absolute, e)),
                },
                _ => {}
            }
            if let Some(parent) = path.parent() {
                emptied.insert(parent.to_owned());
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
        remove_dir_if_there(&staging)
    }

    /// Checks the new versions out into `staging`, laid out as in the work
    /// tree, with the repository's filters (line endings) applied.
    fn stage(
        &self,
        repo: &Repository,
        writes: &[(PathBuf, Oid, FileMode)],
        staging: &Path,
    ) -> Result<(), SnapshotError> {
        let empty = repo
            .treebuilder(None)
            .and_then(|builder| builder.write())
            .and_then(|oid| repo.find_tree(oid))
            .map_err(|e| SnapshotError::git("write an empty tree", e))?;
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, id, mode) in writes {
            update.upsert(path.as_path(), *id, *mode);
        }
        let staged = update
            .create_updated(repo, &empty)
            .map_err(|e| SnapshotError::git("write the tree of the files to restore", e))?;
        // With an index that is not on disk, libgit2 checks out against an
        // empty baseline: every file of `staged` is written, whatever HEAD
        // holds at its path. A repository of its own keeps the caller's
        // index as it was.
        let checkout_repo = self.repo()?;
        // An index file that does not exist (yet) reads as empty and counts
        // as not on disk; it is never written.
        let mut index = Index::open(&staging.with_extension("index"))
            .map_err(|e| SnapshotError::git("create an empty index", e))?;
        checkout_repo
            .set_index(&mut index)
            .map_err(|e| SnapshotError::git("use an in-memory index", e))?;
        let mut checkout = CheckoutBuilder::new();
        checkout
            .force()
            .recreate_missing(true)
            .update_index(false)
            .target_dir(staging);
        let staged = checkout_repo
            .find_tree(staged)
            .map_err(|e| SnapshotError::git("read the tree of the files to restore", e))?;
        checkout_repo
            .checkout_tree(staged.as_object(), Some(&mut checkout))
            .map_err(|e| SnapshotError::git("write the snapshot's files", e))
    }

    /// Removes what stands where the snapshot puts `path` and cannot be
    /// replaced by a rename: a file (or symlink) where the snapshot has a
    /// directory, or a directory where it has a file. What is removed is
    /// either in the state the restore started from (and so in its safety
    /// snapshot) or ignored; like git, kkrun treats ignored files as
    /// expendable when a restored file needs their place.
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
                return std::fs::remove_file(&walked)
                    .map_err(|e| SnapshotError::io("remove", walked.clone(), e));
            }
            if last && meta.is_dir() && !matches!(mode, FileMode::Tree | FileMode::Commit) {
                return std::fs::remove_dir_all(&walked)
                    .map_err(|e| SnapshotError::io("remove", walked.clone(), e));
            }
        }
        Ok(())
    }
}

/// Renames the staged `from` over `dest`. Across file systems (a linked
/// worktree whose git directory is elsewhere) it is copied next to `dest`
/// first, and that copy is renamed.
fn place(from: &Path, dest: &Path) -> Result<(), SnapshotError> {
    match std::fs::rename(from, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let temp = dest.with_file_name(TEMP_NAME);
            if std::fs::symlink_metadata(&temp).is_ok() {
                std::fs::remove_file(&temp).map_err(|e| SnapshotError::io("remove", &temp, e))?;
            }
            copy_entry(from, &temp).map_err(|e| SnapshotError::io("write", &temp, e))?;
            std::fs::rename(&temp, dest).map_err(|e| SnapshotError::io("write", dest, e))
        }
        Err(e) => Err(SnapshotError::io("write", dest, e)),
    }
}

/// Copies a file with its permissions, or a symlink as a symlink.
fn copy_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    #[cfg(unix)]
    if meta.file_type().is_symlink() {
        return std::os::unix::fs::symlink(std::fs::read_link(from)?, to);
    }
    let _ = meta;
    std::fs::copy(from, to).map(|_| ())
}

fn remove_dir_if_there(dir: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SnapshotError::io("remove", dir, e)),
    }
}

//! Writing a snapshot's files into a scratch directory, outside the work
//! tree, for commands that must see the untouched base without changing the
//! user's files (the reproduction of bug-hunt findings).

use std::path::{Path, PathBuf};

use git2::{Delta, FileMode, ObjectType, Oid, Repository, Tree, TreeWalkMode, TreeWalkResult};

use super::{SnapshotError, SnapshotInfo, SnapshotStore};

impl SnapshotStore {
    /// Writes the files of `snapshot` into the empty directory `dest` and
    /// returns the workspace directory inside it. With `added_from`, the
    /// files that snapshot added on top of `snapshot` (new paths only, never
    /// changed or deleted ones) are written too, so a reproduction test the
    /// agent wrote can run against the untouched code.
    ///
    /// Submodules are left out (their directories are created empty); file
    /// modes and symlinks are kept. Neither HEAD, the index nor the work
    /// tree is touched.
    pub fn materialize(
        &self,
        snapshot: &SnapshotInfo,
        added_from: Option<&SnapshotInfo>,
        dest: &Path,
    ) -> Result<PathBuf, SnapshotError> {
        let repo = self.repo()?;
        let base = snapshot_tree(&repo, snapshot)?;
        let tree = match added_from {
            Some(later) if later.commit != snapshot.commit => {
                let later_tree = snapshot_tree(&repo, later)?;
                with_added_files(&repo, &base, &later_tree)?
            }
            _ => base,
        };
        write_tree(&repo, &tree, dest)?;
        Ok(dest.join(&self.workspace_rel))
    }
}

fn snapshot_tree<'r>(repo: &'r Repository, info: &SnapshotInfo) -> Result<Tree<'r>, SnapshotError> {
    Oid::from_str(&info.commit)
        .and_then(|oid| repo.find_commit(oid))
        .and_then(|commit| commit.tree())
        .map_err(|_| SnapshotError::CorruptSnapshot {
            ref_name: info.ref_name.clone(),
            reason: format!("commit {} cannot be read", info.commit),
        })
}

/// `base` with every file `later` added (by path) put in.
fn with_added_files<'r>(
    repo: &'r Repository,
    base: &Tree<'r>,
    later: &Tree<'r>,
) -> Result<Tree<'r>, SnapshotError> {
    let diff = repo
        .diff_tree_to_tree(Some(base), Some(later), None)
        .map_err(|e| SnapshotError::git("compare two snapshots", e))?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let mut any = false;
    for delta in diff.deltas() {
        if delta.status() != Delta::Added {
            continue;
        }
        let file = delta.new_file();
        if let Some(path) = file.path().and_then(Path::to_str) {
            update.upsert(path, file.id(), file.mode());
            any = true;
        }
    }
    if !any {
        return repo
            .find_tree(base.id())
            .map_err(|e| SnapshotError::git("read a snapshot's tree", e));
    }
    let oid = update
        .create_updated(repo, base)
        .map_err(|e| SnapshotError::git("combine two snapshots", e))?;
    repo.find_tree(oid)
        .map_err(|e| SnapshotError::git("read a combined tree", e))
}

fn write_tree(repo: &Repository, tree: &Tree<'_>, dest: &Path) -> Result<(), SnapshotError> {
    let mut failure: Option<SnapshotError> = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = entry.name() else {
            return TreeWalkResult::Skip;
        };
        let path = dest.join(dir).join(name);
        let written = match entry.kind() {
            Some(ObjectType::Tree) => std::fs::create_dir_all(&path)
                .map_err(|e| SnapshotError::io("create", path.clone(), e)),
            Some(ObjectType::Blob) => write_blob(repo, entry.id(), entry.filemode(), &path),
            // A submodule: an empty directory, as a fresh clone has.
            Some(ObjectType::Commit) => std::fs::create_dir_all(&path)
                .map_err(|e| SnapshotError::io("create", path.clone(), e)),
            _ => Ok(()),
        };
        match written {
            Ok(()) => TreeWalkResult::Ok,
            Err(e) => {
                failure = Some(e);
                TreeWalkResult::Abort
            }
        }
    })
    .or_else(|e| match failure.take() {
        Some(_) => Ok(()),
        None => Err(SnapshotError::git("walk a snapshot's tree", e)),
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn write_blob(repo: &Repository, id: Oid, mode: i32, path: &Path) -> Result<(), SnapshotError> {
    let blob = repo
        .find_blob(id)
        .map_err(|e| SnapshotError::git("read a file of a snapshot", e))?;
    if mode == i32::from(FileMode::Link) {
        let target = String::from_utf8_lossy(blob.content()).into_owned();
        #[cfg(unix)]
        return std::os::unix::fs::symlink(&target, path)
            .map_err(|e| SnapshotError::io("create the symlink", path.to_owned(), e));
        #[cfg(not(unix))]
        return std::fs::write(path, target.as_bytes())
            .map_err(|e| SnapshotError::io("write", path.to_owned(), e));
    }
    std::fs::write(path, blob.content())
        .map_err(|e| SnapshotError::io("write", path.to_owned(), e))?;
    #[cfg(unix)]
    if mode == i32::from(FileMode::BlobExecutable) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| SnapshotError::io("make executable", path.to_owned(), e))?;
    }
    Ok(())
}

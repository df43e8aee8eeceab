//! A snapshot that costs what changed: the previous snapshot's tree with
//! the paths kkrun's own file tools wrote since, rehashed.
//!
//! It is used only when [`crate::tools::ChangeLog`] knows every write since
//! the previous snapshot, and only for changes whose result the full scan
//! (`scan.rs`) would record in exactly the same way. Anything this module
//! cannot be sure about makes it give up, and the caller scans the whole
//! tree:
//!
//! - a repository configuration the scan does not model either
//!   (`core.ignorecase`, `core.symlinks=false`) or in which the mode of a
//!   file comes from the index rather than the disk (`core.filemode=false`),
//!   sparse checkouts, and an index of version 3 or later, whose entries may
//!   be marked skip-worktree (the scan keeps those as the index has them);
//! - a written `.gitignore`, `.gitattributes` or `.gitmodules`, which
//!   change how other paths are recorded;
//! - a path outside the work tree, inside `.git`, below a submodule, a
//!   nested repository, a symlink or a file of the previous snapshot, or
//!   that is now a directory or a special file;
//! - a new path that is ignored (the scan would still record it if the
//!   index tracks it).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use git2::{FileMode, Index, ObjectType, Oid, Repository, Tree, build::TreeUpdateBuilder};

use super::SnapshotStore;
use crate::tools::changes::KnownChanges;

/// Files whose change alters how other paths are recorded.
const RULE_FILES: [&str; 3] = [".gitignore", ".gitattributes", ".gitmodules"];

impl SnapshotStore {
    /// The work tree's tree built from `known` without scanning; `None`
    /// when it is unknown or cannot be built with certainty (see the module
    /// documentation), and the tree must be scanned.
    pub(crate) fn incremental_tree(
        &self,
        repo: &Repository,
        known: Option<&KnownChanges>,
    ) -> Option<Oid> {
        let known = known?;
        if !self.models_repository(repo) {
            return None;
        }
        // libgit2 looks for `.gitattributes` in the index too, which would
        // load the whole index (tens of milliseconds on a large
        // repository) to hash one file. A full scan removes the paths gone
        // from the disk from its index before it hashes anything, so the
        // index never gives it an attributes file the disk lacks: an empty
        // index here gives the same filters.
        let mut no_index = Index::new().ok()?;
        repo.set_index(&mut no_index).ok()?;
        let base = repo.find_tree(Oid::from_str(&known.base).ok()?).ok()?;
        let mut update = TreeUpdateBuilder::new();
        for absolute in &known.paths {
            let relative = absolute.strip_prefix(&self.workdir).ok()?;
            self.record(repo, &base, &mut update, absolute, relative)?;
        }
        update.create_updated(repo, &base).ok()
    }

    /// Whether the repository is configured as the incremental path
    /// assumes (see the module documentation).
    fn models_repository(&self, repo: &Repository) -> bool {
        let Ok(config) = repo.config() else {
            return false;
        };
        let flag = |name: &str, default: bool| config.get_bool(name).unwrap_or(default);
        if flag("core.ignorecase", false)
            || !flag("core.symlinks", true)
            || !flag("core.filemode", true)
            || flag("core.sparsecheckout", false)
        {
            return false;
        }
        index_version(&repo.path().join("index")).is_some_and(|version| version <= 2)
    }

    /// Adds one written path's current state to `update`; `None` to give up.
    fn record(
        &self,
        repo: &Repository,
        base: &Tree<'_>,
        update: &mut TreeUpdateBuilder,
        absolute: &Path,
        relative: &Path,
    ) -> Option<()> {
        let mut parts = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) if part != OsStr::new(".git") => parts.push(part),
                _ => return None,
            }
        }
        let name = parts.last()?;
        if RULE_FILES.iter().any(|rule| *name == OsStr::new(rule)) {
            return None;
        }
        // Every directory above the path: a directory on disk that holds no
        // repository, and a tree in the base (or absent from it).
        let mut dir = self.workdir.clone();
        let mut in_base = true;
        for (depth, part) in parts[..parts.len() - 1].iter().enumerate() {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {
                    if std::fs::symlink_metadata(dir.join(".git")).is_ok() {
                        return None;
                    }
                }
                Ok(_) => return None,
                // Gone with the file: the tree entry goes too.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => return None,
            }
            if in_base {
                let prefix: std::path::PathBuf = parts[..=depth].iter().collect();
                match base.get_path(&prefix) {
                    Ok(entry) if entry.kind() == Some(ObjectType::Tree) => {}
                    Ok(_) => return None,
                    Err(_) => in_base = false,
                }
            }
        }
        let previous = if in_base {
            base.get_path(relative).ok().map(|entry| entry.filemode())
        } else {
            None
        };
        if previous.is_some_and(|mode| {
            mode == i32::from(FileMode::Tree) || mode == i32::from(FileMode::Commit)
        }) {
            return None;
        }
        let meta = match std::fs::symlink_metadata(absolute) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if previous.is_some() {
                    update.remove(relative);
                }
                return Some(());
            }
            Err(_) => return None,
        };
        let mode = if meta.file_type().is_symlink() {
            FileMode::Link
        } else if meta.is_file() && meta.permissions().mode() & 0o100 != 0 {
            FileMode::BlobExecutable
        } else if meta.is_file() {
            FileMode::Blob
        } else {
            return None;
        };
        if previous.is_none() && repo.is_path_ignored(relative).unwrap_or(true) {
            return None;
        }
        // Hashed with the repository's filters, as adding it to the index
        // would (the path inside the work tree selects them).
        let blob = repo.blob_path(absolute).ok()?;
        update.upsert(relative, blob, mode);
        Some(())
    }
}

/// The version in an index file's header; `Some(0)` when there is no index
/// (nothing can be marked skip-worktree), `None` when it cannot be read.
fn index_version(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(0),
        Err(_) => return None,
    };
    let mut header = [0u8; 8];
    file.read_exact(&mut header).ok()?;
    if &header[..4] != b"DIRC" {
        return None;
    }
    Some(u32::from_be_bytes([
        header[4], header[5], header[6], header[7],
    ]))
}

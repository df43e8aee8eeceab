//! What the guard compares: the repository's git state at one moment.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use super::GuardError;

/// Refs kkrun writes itself (ghost snapshots), possibly for another task
/// while this one's command runs: never compared.
const OWN_REFS: &str = "refs/kkrun/";
/// The stash is compared as a whole, reflog included.
pub(super) const STASH_REF: &str = "refs/stash";

/// Where a repository keeps what the guard watches.
#[derive(Debug, Clone)]
pub(super) struct Paths {
    /// The work tree's own git directory (`.git`, or
    /// `.git/worktrees/NAME` for a linked worktree): HEAD and the index.
    pub git_dir: PathBuf,
    /// The shared git directory: config and hooks.
    pub common_dir: PathBuf,
}

impl Paths {
    pub fn of(repo: &Repository) -> Paths {
        Paths {
            git_dir: repo.path().to_path_buf(),
            common_dir: repo.commondir().to_path_buf(),
        }
    }

    pub fn head(&self) -> PathBuf {
        self.git_dir.join("HEAD")
    }

    pub fn index(&self) -> PathBuf {
        self.git_dir.join("index")
    }

    /// The configuration files: the shared one and a worktree's own.
    pub fn configs(&self) -> [(String, PathBuf); 2] {
        [
            (".git/config".to_string(), self.common_dir.join("config")),
            (
                ".git/config.worktree".to_string(),
                self.git_dir.join("config.worktree"),
            ),
        ]
    }

    pub fn hooks(&self) -> PathBuf {
        self.common_dir.join("hooks")
    }
}

/// Where a ref points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RefTarget {
    /// At an object.
    Direct(Oid),
    /// At another ref.
    Symbolic(String),
}

/// One reflog entry of the stash, enough to write it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StashEntry {
    pub id: Oid,
    pub name: String,
    pub email: String,
    pub time: i64,
    pub offset_minutes: i32,
    pub message: String,
}

/// A hook file (or symlink) as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HookFile {
    pub content: Vec<u8>,
    pub mode: u32,
    pub symlink: bool,
}

/// What identifies an index file's content without reading all of it:
/// size, modification time, inode and its trailing checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IndexFingerprint {
    pub len: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    pub checksum: [u8; 32],
}

/// One index entry, as far as the guard cares: stat data is left out, so
/// `git status` refreshing it is not a change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct IndexKey {
    pub path: Vec<u8>,
    pub stage: u16,
    pub mode: u32,
    pub id: Oid,
    pub extended: u16,
}

/// The index as loaded once: its fingerprint, entries and exact bytes
/// (to put back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexState {
    pub fingerprint: Option<IndexFingerprint>,
    pub entries: Vec<IndexKey>,
    pub bytes: Option<Vec<u8>>,
}

/// The git state of a repository at one moment.
#[derive(Debug, Clone)]
pub struct GitState {
    pub(super) head: Vec<u8>,
    pub(super) refs: BTreeMap<String, RefTarget>,
    pub(super) stash: Vec<StashEntry>,
    pub(super) configs: BTreeMap<String, Option<Vec<u8>>>,
    pub(super) hooks: BTreeMap<String, HookFile>,
    pub(super) index: std::sync::Arc<IndexState>,
}

/// Reads everything but the index.
pub(super) fn capture_without_index(
    repo: &Repository,
    paths: &Paths,
    index: std::sync::Arc<IndexState>,
) -> Result<GitState, GuardError> {
    let head = read_optional(&paths.head())?.unwrap_or_default();
    let mut refs = BTreeMap::new();
    for reference in repo.references()? {
        let reference = reference?;
        let name = String::from_utf8_lossy(reference.name_bytes()).into_owned();
        if name.starts_with(OWN_REFS) || name == STASH_REF {
            continue;
        }
        let target = match (reference.target(), reference.symbolic_target_bytes()) {
            (Some(oid), _) => RefTarget::Direct(oid),
            (None, Some(target)) => {
                RefTarget::Symbolic(String::from_utf8_lossy(target).into_owned())
            }
            (None, None) => continue,
        };
        refs.insert(name, target);
    }
    let stash = stash_entries(repo)?;
    let configs = paths
        .configs()
        .into_iter()
        .map(|(name, path)| Ok((name, read_optional(&path)?)))
        .collect::<Result<_, GuardError>>()?;
    let hooks = read_hooks(&paths.hooks())?;
    Ok(GitState {
        head,
        refs,
        stash,
        configs,
        hooks,
        index,
    })
}

fn stash_entries(repo: &Repository) -> Result<Vec<StashEntry>, GuardError> {
    if repo.find_reference(STASH_REF).is_err() {
        return Ok(Vec::new());
    }
    let reflog = repo.reflog(STASH_REF)?;
    Ok(reflog
        .iter()
        .map(|entry| {
            let committer = entry.committer();
            StashEntry {
                id: entry.id_new(),
                name: String::from_utf8_lossy(committer.name_bytes()).into_owned(),
                email: String::from_utf8_lossy(committer.email_bytes()).into_owned(),
                time: committer.when().seconds(),
                offset_minutes: committer.when().offset_minutes(),
                message: String::from_utf8_lossy(entry.message_bytes().unwrap_or_default())
                    .into_owned(),
            }
        })
        .collect())
}

fn read_hooks(dir: &Path) -> Result<BTreeMap<String, HookFile>, GuardError> {
    let mut hooks = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(hooks),
        Err(e) => return Err(GuardError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| GuardError::io("list", dir, e))?;
        let path = entry.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| GuardError::io("stat", &path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let hook = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| GuardError::io("read", &path, e))?;
            HookFile {
                content: target.to_string_lossy().into_owned().into_bytes(),
                mode: 0,
                symlink: true,
            }
        } else if meta.is_file() {
            HookFile {
                content: std::fs::read(&path).map_err(|e| GuardError::io("read", &path, e))?,
                mode: file_mode(&meta),
                symlink: false,
            }
        } else {
            continue;
        };
        hooks.insert(name, hook);
    }
    Ok(hooks)
}

#[cfg(unix)]
fn file_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, GuardError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GuardError::io("read", path, e)),
    }
}

/// The index file's fingerprint, `None` when there is no index. Reads only
/// its metadata and its last 32 bytes (the checksum git writes at the end).
pub(super) fn index_fingerprint(path: &Path) -> Result<Option<IndexFingerprint>, GuardError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(GuardError::io("open", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| GuardError::io("stat", path, e))?;
    let mut checksum = [0u8; 32];
    let len = meta.len();
    let tail = len.min(32);
    file.seek(SeekFrom::Start(len - tail))
        .and_then(|_| file.read_exact(&mut checksum[..tail as usize]))
        .map_err(|e| GuardError::io("read", path, e))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Ok(Some(IndexFingerprint {
        len,
        mtime_ns,
        inode: inode(&meta),
        checksum,
    }))
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// Loads the index: its entries and its bytes.
pub(super) fn load_index(path: &Path) -> Result<IndexState, GuardError> {
    let fingerprint = index_fingerprint(path)?;
    let Some(bytes) = read_optional(path)? else {
        return Ok(IndexState {
            fingerprint: None,
            entries: Vec::new(),
            bytes: None,
        });
    };
    let index = git2::Index::open(path)?;
    let mut entries: Vec<IndexKey> = index
        .iter()
        .map(|entry| IndexKey {
            path: entry.path,
            stage: (entry.flags >> 12) & 0x3,
            mode: entry.mode,
            id: entry.id,
            // Intent-to-add and skip-worktree; the rest is in-memory state.
            extended: entry.flags_extended & 0x6000,
        })
        .collect();
    entries.sort();
    Ok(IndexState {
        fingerprint,
        entries,
        bytes: Some(bytes),
    })
}

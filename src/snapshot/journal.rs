//! The restore journal: a restore that is killed half-way is finished by
//! the next kkrun command.
//!
//! Before a restore changes the first file it writes
//! `<git-dir>/kkrun/restore-journal.json` (the target tree, the tree of the
//! state before, the workspace and what is being restored) and fsyncs it;
//! the journal is removed when the last file is in place. For as long as a
//! restore runs, its process holds an advisory lock on
//! `<git-dir>/kkrun/restore.lock`, so another kkrun process never mistakes
//! a live restore for an interrupted one: it waits for the lock instead.
//!
//! An interrupted restore is rolled *forward*: the target tree is fully
//! known from the journal, while the files of the state before may be only
//! half replaced. The work tree is scanned as it is and brought to the
//! target exactly as a restore would, so what a killed restore left behind
//! (new versions already renamed into place, old ones not yet removed)
//! converges on the target however far the restore got.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use git2::Oid;
use serde::{Deserialize, Serialize};

use super::{SnapshotError, SnapshotStore};

/// The journal's file name inside `<git-dir>/kkrun/`.
const JOURNAL: &str = "restore-journal.json";
/// The lock a live restore holds, inside `<git-dir>/kkrun/`.
const LOCK: &str = "restore.lock";
/// Where a restore checks out the new versions before renaming them into
/// place, inside `<git-dir>/kkrun/`.
const STAGING: &str = "restore-staging";

/// How far a restore got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// New versions are being written (each by temporary file and rename).
    Write,
    /// Every new version is in place; paths the target lacks are removed.
    Remove,
}

/// What `restore-journal.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Journal {
    /// The format of this file.
    pub(crate) version: u32,
    /// The tree the work tree is being restored to.
    pub(crate) target_tree: String,
    /// The tree of the work tree before the restore started.
    pub(crate) before_tree: String,
    /// The workspace the restore is scoped to, relative to the work tree
    /// root (`/`-separated, empty for the root).
    pub(crate) workspace: String,
    /// What is being restored, for the message that finishes it
    /// (`run/task 02-code`).
    pub(crate) what: String,
    /// How far the restore got.
    pub(crate) phase: Phase,
}

/// A restore in progress: the lock is held until it is dropped.
pub(crate) struct InProgress {
    dir: PathBuf,
    journal: Journal,
    _lock: File,
}

/// The `kkrun` directory of a git directory, where the journal lives.
fn kkrun_dir(git_dir: &Path) -> PathBuf {
    git_dir.join("kkrun")
}

/// The directory a restore of the work tree of `git_dir` stages new files in.
pub(crate) fn staging_dir(git_dir: &Path) -> PathBuf {
    kkrun_dir(git_dir).join(STAGING)
}

/// Takes the restore lock of `git_dir`, waiting while another process
/// restores.
fn lock(git_dir: &Path) -> Result<(PathBuf, File), SnapshotError> {
    let dir = kkrun_dir(git_dir);
    std::fs::create_dir_all(&dir).map_err(|e| SnapshotError::io("create", &dir, e))?;
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SnapshotError::io("open", &path, e))?;
    file.lock()
        .map_err(|e| SnapshotError::io("lock", &path, e))?;
    Ok((dir, file))
}

/// Writes `journal` to `dir` by temporary file, fsync and rename, then
/// fsyncs the directory, so the journal is either wholly there or absent.
fn write(dir: &Path, journal: &Journal) -> Result<(), SnapshotError> {
    let path = dir.join(JOURNAL);
    let temp = dir.join(format!("{JOURNAL}.tmp"));
    let text = serde_json::to_vec_pretty(journal)
        .map_err(|e| SnapshotError::io("write", &path, std::io::Error::other(e)))?;
    let mut file = File::create(&temp).map_err(|e| SnapshotError::io("create", &temp, e))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(|e| SnapshotError::io("write", &temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| SnapshotError::io("write", &path, e))?;
    sync_dir(dir);
    Ok(())
}

/// Makes a rename or removal in `dir` durable; where directories cannot be
/// opened this way, the kernel's own ordering has to do.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

impl InProgress {
    /// Locks the work tree of `git_dir` against other restores and writes
    /// the journal of a restore from `before` to `target`.
    pub(crate) fn begin(
        git_dir: &Path,
        workspace: &str,
        what: &str,
        before: Oid,
        target: Oid,
    ) -> Result<InProgress, SnapshotError> {
        let (dir, lock) = lock(git_dir)?;
        let journal = Journal {
            version: 1,
            target_tree: target.to_string(),
            before_tree: before.to_string(),
            workspace: workspace.to_owned(),
            what: what.to_owned(),
            phase: Phase::Write,
        };
        write(&dir, &journal)?;
        Ok(InProgress {
            dir,
            journal,
            _lock: lock,
        })
    }

    /// Records that every new version is in place.
    pub(crate) fn removing(&mut self) -> Result<(), SnapshotError> {
        self.journal.phase = Phase::Remove;
        write(&self.dir, &self.journal)
    }

    /// Removes the journal: the restore is complete. The lock goes with
    /// `self`.
    pub(crate) fn finish(self) -> Result<(), SnapshotError> {
        let path = self.dir.join(JOURNAL);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SnapshotError::io("remove", &path, e)),
        }
        sync_dir(&self.dir);
        Ok(())
    }
}

/// Reads the journal in `dir`; `None` when there is none.
fn read(dir: &Path) -> Result<Option<Journal>, SnapshotError> {
    let path = dir.join(JOURNAL);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotError::io("read", &path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SnapshotError::CorruptJournal {
            path,
            reason: e.to_string(),
        })
}

/// What [`SnapshotStore::finish_interrupted_restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The workspace that was restored (`.` for the work tree root).
    pub workspace: String,
    /// What it was restored to (`run/task 02-code`).
    pub what: String,
}

impl Recovered {
    /// The one line kkrun prints on stderr about it.
    pub fn message(&self) -> String {
        format!(
            "kkrun: finished an interrupted restore of {} (to {})",
            self.workspace, self.what
        )
    }
}

impl SnapshotStore {
    /// Finishes a restore of this work tree that a killed process left
    /// half done, by rolling it forward to its target (see the module
    /// documentation); `None` when there was none. A restore another
    /// process is running at the moment is waited for, not touched.
    pub fn finish_interrupted_restore(&self) -> Result<Option<Recovered>, SnapshotError> {
        let dir = kkrun_dir(&self.git_dir);
        // The common case costs one stat.
        if !dir.join(JOURNAL).exists() {
            return Ok(None);
        }
        let (dir, lock) = lock(&self.git_dir)?;
        let Some(journal) = read(&dir)? else {
            // A live restore finished while we waited for its lock.
            return Ok(None);
        };
        let target =
            Oid::from_str(&journal.target_tree).map_err(|e| SnapshotError::CorruptJournal {
                path: dir.join(JOURNAL),
                reason: format!("target_tree: {e}"),
            })?;
        let scoped = self.scoped_to(&journal.workspace)?;
        let repo = scoped.repo()?;
        let target_tree = repo
            .find_tree(target)
            .map_err(|e| SnapshotError::git("read the interrupted restore's target tree", e))?;
        let current = scoped.worktree_state(&repo)?;
        let current_tree = repo
            .find_tree(current.tree)
            .map_err(|e| SnapshotError::git("read the work tree's state", e))?;
        scoped.change_workdir(&repo, &current_tree, &target_tree)?;
        let progress = InProgress {
            dir,
            journal: journal.clone(),
            _lock: lock,
        };
        progress.finish()?;
        Ok(Some(Recovered {
            workspace: if journal.workspace.is_empty() {
                ".".to_owned()
            } else {
                journal.workspace
            },
            what: journal.what,
        }))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotMeta;
    use git2::Repository;

    fn file_set(root: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in ignore::WalkBuilder::new(root)
            .hidden(false)
            .filter_entry(|e| e.file_name() != ".git")
            .build()
            .flatten()
        {
            if entry.file_type().is_some_and(|t| t.is_file()) {
                let rel = entry.path().strip_prefix(root).unwrap();
                out.push((
                    rel.to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).unwrap(),
                ));
            }
        }
        out.sort();
        out
    }

    /// A repository with a committed state and a changed one, both taken
    /// as snapshots; the work tree is left at the changed one.
    fn setup() -> (tempfile::TempDir, SnapshotStore, Oid, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let repo = Repository::init(root).unwrap();
        for i in 0..20 {
            std::fs::create_dir_all(root.join(format!("d{}", i % 4))).unwrap();
            std::fs::write(
                root.join(format!("d{}/f{i}.txt", i % 4)),
                format!("old {i}\n"),
            )
            .unwrap();
        }
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@t").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap();
        let store = SnapshotStore::open(root).unwrap();
        let base = store
            .take("r", "t", &SnapshotMeta::new("base", "ok"))
            .unwrap();
        for i in 0..10 {
            std::fs::write(
                root.join(format!("d{}/f{i}.txt", i % 4)),
                format!("new {i}\n"),
            )
            .unwrap();
        }
        std::fs::remove_file(root.join("d3/f11.txt")).unwrap();
        std::fs::create_dir_all(root.join("added/deep")).unwrap();
        std::fs::write(root.join("added/deep/n.txt"), "n\n").unwrap();
        let after = store
            .take("r", "t", &SnapshotMeta::new("code", "ok"))
            .unwrap();
        let tree_of = |commit: &str| {
            repo.find_commit(Oid::from_str(commit).unwrap())
                .unwrap()
                .tree_id()
        };
        let (base_tree, after_tree) = (tree_of(&base.commit), tree_of(&after.commit));
        drop(tree);
        (dir, store, base_tree, after_tree)
    }

    /// A journal left at each phase, with the work tree anywhere between
    /// the two states, is rolled forward to the target.
    #[test]
    fn an_interrupted_journal_is_rolled_forward_from_every_phase() {
        for phase in [Phase::Write, Phase::Remove] {
            for done in [0usize, 3, 7, usize::MAX] {
                let (dir, store, base_tree, after_tree) = setup();
                let root = dir.path();
                let after_files = file_set(root);
                // What the restore to base had done when it was killed:
                // the first `done` new versions written, nothing removed.
                let repo = store.repo().unwrap();
                let base = repo.find_tree(base_tree).unwrap();
                let mut written = 0;
                base.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
                    if written < done && entry.kind() == Some(git2::ObjectType::Blob) {
                        let blob = repo.find_blob(entry.id()).unwrap();
                        let path = root.join(parent).join(entry.name().unwrap());
                        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                        std::fs::write(path, blob.content()).unwrap();
                        written += 1;
                    }
                    git2::TreeWalkResult::Ok
                })
                .unwrap();
                let mut progress =
                    InProgress::begin(&store.git_dir, "", "r/t 00-base", after_tree, base_tree)
                        .unwrap();
                if phase == Phase::Remove {
                    progress.removing().unwrap();
                }
                // Killed: the lock goes with the process, the journal stays.
                drop(progress);
                let recovered = store.finish_interrupted_restore().unwrap().unwrap();
                assert_eq!(
                    recovered.message(),
                    "kkrun: finished an interrupted restore of . (to r/t 00-base)"
                );
                let expected: Vec<_> = (0..20)
                    .map(|i| {
                        (
                            format!("d{}/f{i}.txt", i % 4),
                            format!("old {i}\n").into_bytes(),
                        )
                    })
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                assert_eq!(file_set(root), expected, "{phase:?} after {done} writes");
                assert_ne!(file_set(root), after_files);
                assert!(!root.join("added").exists(), "emptied directories go");
                assert!(!store.git_dir.join("kkrun").join(JOURNAL).exists());
                assert_eq!(store.finish_interrupted_restore().unwrap(), None);
            }
        }
    }

    #[test]
    fn a_corrupt_journal_is_an_error_naming_the_file() {
        let (_dir, store, _, _) = setup();
        let dir = kkrun_dir(&store.git_dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(JOURNAL), "{").unwrap();
        let err = store.finish_interrupted_restore().unwrap_err();
        assert!(err.to_string().contains(JOURNAL), "{err}");
    }
}

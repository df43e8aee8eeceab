//! [`SnapshotStore`]: one repository, one workspace directory inside it:
//! opening it, taking snapshots and writing their refs (`refs` reads and
//! removes them).

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use git2::{ErrorCode, Oid, Repository, Signature, Time};

use super::message::{self, MessageFields};
use super::{SnapshotError, SnapshotInfo, SnapshotMeta, names};

/// How often a ref update is retried when another process holds its lock:
/// with the backoff below, for about three seconds at most.
pub(super) const LOCK_ATTEMPTS: u32 = 40;

/// The identity snapshots are written with when neither `KKRUN_GIT_NAME`
/// nor `KKRUN_GIT_EMAIL` is set: CI containers often have no git config.
const DEFAULT_NAME: &str = "kkrun";
const DEFAULT_EMAIL: &str = "kkrun@localhost";

/// Snapshots of one repository, with restore and diff scoped to one
/// workspace directory of its work tree.
///
/// The store holds paths only and opens the repository for each operation,
/// so it is cheap to clone and can be shared between threads.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    /// The repository's git directory (`.git`, or `.git/worktrees/<name>`).
    pub(crate) git_dir: PathBuf,
    /// The root of the work tree.
    pub(crate) workdir: PathBuf,
    /// The workspace relative to the work tree root, `/`-separated; empty
    /// for the root.
    pub(crate) workspace_rel: String,
    /// Secrets kept out of snapshot commit messages.
    pub(crate) redactor: crate::redact::Redactor,
    /// What kkrun's file tools wrote since the last snapshot; `None` when
    /// every snapshot scans the tree.
    pub(crate) changes: Option<crate::tools::ChangeLog>,
}

impl SnapshotStore {
    /// Discovers the repository containing `workspace` (which may be a
    /// subdirectory of the work tree).
    ///
    /// Fails with an exit-code-2 error when `workspace` is not inside a git
    /// work tree or the repository is bare. A restore that a killed kkrun
    /// left half done in this work tree is finished first, with one line
    /// on stderr (see the `journal` module).
    pub fn open(workspace: &Path) -> Result<SnapshotStore, SnapshotError> {
        let canonical =
            std::fs::canonicalize(workspace).map_err(|source| SnapshotError::WorkspaceMissing {
                path: workspace.to_owned(),
                source,
            })?;
        if !canonical.is_dir() {
            return Err(SnapshotError::WorkspaceMissing {
                path: workspace.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let repo =
            Repository::discover(&canonical).map_err(|source| SnapshotError::NotARepository {
                path: workspace.to_owned(),
                source,
            })?;
        let Some(workdir) = repo.workdir() else {
            return Err(SnapshotError::BareRepository {
                path: repo.path().to_owned(),
            });
        };
        let workdir = std::fs::canonicalize(workdir)
            .map_err(|source| SnapshotError::io("resolve the work tree", workdir, source))?;
        let relative =
            canonical
                .strip_prefix(&workdir)
                .map_err(|_| SnapshotError::InsideGitDir {
                    path: workspace.to_owned(),
                })?;
        let mut parts = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) => match part.to_str() {
                    Some(part) => parts.push(part.to_owned()),
                    None => {
                        return Err(SnapshotError::io(
                            "use a workspace whose path is not UTF-8:",
                            &canonical,
                            std::io::Error::new(
                                std::io::ErrorKind::InvalidInput,
                                "the path is not valid UTF-8",
                            ),
                        ));
                    }
                },
                _ => continue,
            }
        }
        if parts.first().is_some_and(|first| first == ".git") {
            return Err(SnapshotError::InsideGitDir {
                path: workspace.to_owned(),
            });
        }
        let store = SnapshotStore {
            git_dir: repo.path().to_owned(),
            workdir,
            workspace_rel: parts.join("/"),
            redactor: crate::redact::Redactor::default(),
            changes: None,
        };
        // Every command that touches a repository opens it here first, so
        // a restore a killed process left half done is finished before
        // anything reads or changes the work tree.
        if let Some(recovered) = store.finish_interrupted_restore()? {
            eprintln!("{}", recovered.message());
        }
        Ok(store)
    }

    /// The git directory of this work tree (`.git`, or
    /// `.git/worktrees/<name>` for a linked worktree).
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The root of the repository's work tree.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The workspace directory restore and diff are scoped to.
    pub fn workspace(&self) -> PathBuf {
        self.workdir.join(&self.workspace_rel)
    }

    /// The workspace relative to the work tree root, `/`-separated; empty
    /// for the root.
    pub fn workspace_relative(&self) -> &str {
        &self.workspace_rel
    }

    /// The same repository with restore and diff scoped to another workspace,
    /// given relative to the work tree root with `/` separators (empty for
    /// the root), such as the one recorded in [`SnapshotInfo::workspace`].
    pub fn scoped_to(&self, workspace: &str) -> Result<SnapshotStore, SnapshotError> {
        let trimmed = workspace.trim_matches('/');
        let valid = trimmed
            .split('/')
            .all(|part| !matches!(part, "" | "." | "..") && !part.contains('\\'))
            && !trimmed.starts_with(".git/")
            && trimmed != ".git";
        if !trimmed.is_empty() && !valid {
            return Err(SnapshotError::InvalidName {
                what: "workspace",
                value: workspace.to_owned(),
                reason: "it is not a plain path inside the work tree",
            });
        }
        Ok(SnapshotStore {
            workspace_rel: trimmed.to_owned(),
            ..self.clone()
        })
    }

    /// Opens the repository afresh: a `Repository` is not `Sync`, and each
    /// operation swaps in its own private index.
    pub(crate) fn repo(&self) -> Result<Repository, SnapshotError> {
        Repository::open(&self.workdir).map_err(|source| SnapshotError::NotARepository {
            path: self.workdir.clone(),
            source,
        })
    }

    /// Commit id of HEAD, `None` when HEAD is unborn.
    pub fn head_commit(&self) -> Result<Option<String>, SnapshotError> {
        let repo = self.repo()?;
        Ok(head_oid(&repo)?.map(|oid| oid.to_string()))
    }

    /// This store, with `redactor`'s secrets removed from the commit
    /// messages of the snapshots it takes.
    pub fn redacting(self, redactor: crate::redact::Redactor) -> SnapshotStore {
        SnapshotStore { redactor, ..self }
    }

    /// This store, reading the work tree incrementally when `changes` knows
    /// every path written since the last snapshot it took (see
    /// [`crate::tools::ChangeLog`]); a full scan otherwise.
    pub fn tracking(self, changes: crate::tools::ChangeLog) -> SnapshotStore {
        SnapshotStore {
            changes: Some(changes),
            ..self
        }
    }

    /// Appends `pattern` (e.g. `.kkrun/`) to `.git/info/exclude` unless a
    /// line with exactly that pattern is already there.
    pub fn ensure_excluded(&self, pattern: &str) -> Result<(), SnapshotError> {
        let repo = self.repo()?;
        let info = repo.commondir().join("info");
        let path = info.join("exclude");
        let existing = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(SnapshotError::io("read", path, err)),
        };
        let wanted = pattern.trim();
        if String::from_utf8_lossy(&existing)
            .lines()
            .any(|line| line.trim() == wanted)
        {
            return Ok(());
        }
        std::fs::create_dir_all(&info)
            .map_err(|err| SnapshotError::io("create", info.clone(), err))?;
        let mut line = String::new();
        if !existing.is_empty() && !existing.ends_with(b"\n") {
            line.push('\n');
        }
        line.push_str(wanted);
        line.push('\n');
        // One append of a short line is atomic, so a concurrent writer can at
        // worst add a duplicate line, which git ignores.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .map_err(|err| SnapshotError::io("append to", path, err))
    }

    /// Takes the next snapshot of task `task` in run `run_id`.
    ///
    /// The ref is `refs/kkrun/<run>/<task>/<NN>-<stage>` with NN counting
    /// 00, 01, ... per task; the parent is the task's previous snapshot, or
    /// HEAD (none when unborn) for the first one.
    pub fn take(
        &self,
        run_id: &str,
        task: &str,
        meta: &SnapshotMeta,
    ) -> Result<SnapshotInfo, SnapshotError> {
        names::validate("run id", run_id)?;
        names::validate("task name", task)?;
        names::validate("stage", &meta.stage)?;
        let repo = self.repo()?;
        let taken = self.changes.as_ref().map(crate::tools::ChangeLog::take);
        let known = taken.as_ref().and_then(|taken| taken.known.as_ref());
        let (tree, scan) = match self.incremental_tree(&repo, known) {
            Some(tree) => (tree, super::ScanKind::Incremental),
            None => (self.scan_index(&repo)?.tree, super::ScanKind::Full),
        };
        let info = self.commit_snapshot(&repo, run_id, task, meta, tree)?;
        if let (Some(changes), Some(taken)) = (&self.changes, taken) {
            changes.rebase(tree.to_string(), taken.epoch);
        }
        Ok(SnapshotInfo {
            scan: Some(scan),
            ..info
        })
    }

    /// Writes the commit for `tree` and points the task's next ref at it,
    /// retrying when another process takes the same ref or holds its lock.
    pub(crate) fn commit_snapshot(
        &self,
        repo: &Repository,
        run_id: &str,
        task: &str,
        meta: &SnapshotMeta,
        tree: Oid,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let signature = signature()?;
        let tree = repo
            .find_tree(tree)
            .map_err(|e| SnapshotError::git("read the snapshot tree", e))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let existing = self.list_in(repo, run_id, task)?;
            let (index, parent) = match existing.last() {
                Some(last) => (
                    last.index + 1,
                    Some(
                        Oid::from_str(&last.commit)
                            .map_err(|e| SnapshotError::git("parse a commit id", e))?,
                    ),
                ),
                None => (0, head_oid(repo)?),
            };
            let parent = parent
                .map(|oid| repo.find_commit(oid))
                .transpose()
                .map_err(|e| SnapshotError::git("read the parent commit", e))?;
            let parent_tree = parent
                .as_ref()
                .map(|commit| commit.tree())
                .transpose()
                .map_err(|e| SnapshotError::git("read the parent tree", e))?;
            let files_changed =
                super::diff::count_changes(repo, parent_tree.as_ref(), &tree, &self.workspace_rel)?;
            let text = message::build(&MessageFields {
                run_id,
                task,
                meta,
                workspace: &self.workspace_rel,
                files_changed,
            });
            let text = self.redactor.redact(&text);
            let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
            let commit = repo
                .commit(None, &signature, &signature, &text, &tree, &parents)
                .map_err(|e| self.write_error("write the snapshot commit", e))?;
            let label = names::label(index, &meta.stage);
            let ref_name = format!("{}{label}", names::task_prefix(run_id, task));
            let log = format!("kkrun snapshot: {label}");
            // Create the ref only if it does not exist, checked under the
            // ref's lock: a plain non-forced create checks before locking,
            // so two racers with the same commit (same tree, parent, stage
            // and second) could both "create" it and one snapshot would be
            // lost.
            match repo.reference_matching(&ref_name, commit, true, Oid::ZERO_SHA1, &log) {
                Ok(_) => {
                    return Ok(SnapshotInfo {
                        index,
                        stage: meta.stage.clone(),
                        ref_name,
                        commit: commit.to_string(),
                        time: rfc3339(signature.when().seconds()),
                        files_changed,
                        status: message::trailer(&text, message::STATUS)
                            .unwrap_or_default()
                            .to_owned(),
                        workspace: self.workspace_rel.clone(),
                        scan: None,
                    });
                }
                Err(e) if is_contention(&e) && attempt < LOCK_ATTEMPTS => backoff(attempt),
                Err(e) if is_contention(&e) => {
                    return Err(SnapshotError::Locked {
                        what: ref_name,
                        attempts: attempt,
                        source: e,
                    });
                }
                Err(e) => return Err(self.write_error(&format!("create {ref_name}"), e)),
            }
        }
    }

    /// Turns a failed write into [`SnapshotError::ReadOnlyRepository`] when
    /// the git directory cannot be written, so the user gets the real cause.
    pub(crate) fn write_error(&self, action: &str, source: git2::Error) -> SnapshotError {
        let probe_dir = self.git_dir.join("objects");
        let writable = tempfile::Builder::new()
            .prefix("kkrun-probe-")
            .tempfile_in(&probe_dir)
            .is_ok();
        if writable {
            SnapshotError::git(action, source)
        } else {
            SnapshotError::ReadOnlyRepository {
                action: action.to_owned(),
                git_dir: self.git_dir.clone(),
                source,
            }
        }
    }
}

/// HEAD's commit, `None` when HEAD is unborn.
pub(crate) fn head_oid(repo: &Repository) -> Result<Option<Oid>, SnapshotError> {
    match repo.head() {
        Ok(head) => head
            .peel_to_commit()
            .map(|commit| Some(commit.id()))
            .map_err(|e| SnapshotError::git("read HEAD", e)),
        Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(SnapshotError::git("read HEAD", e)),
    }
}

fn signature() -> Result<Signature<'static>, SnapshotError> {
    let name = std::env::var("KKRUN_GIT_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAME.to_owned());
    let email = std::env::var("KKRUN_GIT_EMAIL")
        .ok()
        .filter(|email| !email.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_EMAIL.to_owned());
    let now = jiff::Timestamp::now().as_second();
    Signature::new(&name, &email, &Time::new(now, 0)).map_err(|e| {
        SnapshotError::git(
            "build the snapshot author from KKRUN_GIT_NAME/KKRUN_GIT_EMAIL",
            e,
        )
    })
}

pub(super) fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|ts| ts.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// Lock contention, or a ref that another process created first.
/// Another writer got there first: the ref's lock is held, or the ref now
/// exists (`Modified`: it no longer matches "absent").
pub(super) fn is_contention(e: &git2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Locked | ErrorCode::Exists | ErrorCode::Modified
    )
}

pub(super) fn backoff(attempt: u32) {
    let base = 5 * u64::from(attempt.min(10));
    std::thread::sleep(Duration::from_millis(base + fastrand::u64(0..=base)));
}

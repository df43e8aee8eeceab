//! The git-state guard: the user's HEAD, branches, tags, stash, index,
//! `.git/config` and `.git/hooks/` are compared before and after each
//! agent command, and whatever the command changed is put back.
//!
//! kkrun records the agent's work in ghost snapshots of its own, so the
//! agent has no business touching the repository's git state; the shell
//! policy refuses the usual commands up front, and this guard catches
//! every other way (a script, a test, a hard link, an alias). It works on
//! the files git itself keeps, with git2, and holds with or without the
//! sandbox.
//!
//! Cost: the index, by far the largest of these on a big repository, is
//! only read when its size, modification time, inode or trailing checksum
//! changed; everything else is small (see docs/benchmarks.md).

mod compare;
mod revert;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use git2::Repository;
use serde::{Deserialize, Serialize};

pub use state::GitState;
use state::{IndexState, Paths, capture_without_index, index_fingerprint, load_index};

/// What part of the git state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GitChangeKind {
    /// HEAD now names another branch or commit.
    Head,
    /// A branch (`refs/heads/`) was created, moved or deleted.
    Branch,
    /// A tag was created, moved or deleted.
    Tag,
    /// Another ref (remote-tracking branches, notes, ...).
    Ref,
    /// The stash gained, lost or changed entries.
    Stash,
    /// The index (staging area) changed.
    Index,
    /// A git configuration file changed.
    Config,
    /// A hook was added, changed or removed.
    Hook,
}

/// One change an agent command made to the git state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitChange {
    /// What changed.
    pub kind: GitChangeKind,
    /// Its name: `HEAD`, `refs/heads/main`, `refs/stash`, `index`,
    /// `.git/config`, a hook's file name.
    pub name: String,
    /// Before the command (a commit id, `ref: NAME`, a size); `None` when
    /// it did not exist.
    pub before: Option<String>,
    /// After the command; `None` when the command removed it.
    pub after: Option<String>,
    /// The change in words: "the agent moved branch main".
    pub description: String,
}

/// A command that changed the git state, and what the guard did about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyViolation {
    /// The agent's command line.
    pub command: String,
    /// What it changed.
    pub changes: Vec<GitChange>,
    /// True when every change was put back.
    pub reverted: bool,
    /// Why putting it back failed, when it did.
    pub revert_error: Option<String>,
    /// One line for the task's reason: the changes' descriptions.
    pub reason: String,
}

/// The guard could not read or restore the git state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A git2 operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl GuardError {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> GuardError {
        GuardError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Guards one repository's git state. Cheap to share; commands are
/// checked one at a time.
#[derive(Debug)]
pub struct GitGuard {
    workdir: PathBuf,
    /// The index as last loaded, reused while its fingerprint holds.
    index: Mutex<Option<Arc<IndexState>>>,
    /// Violations not yet taken by the agent loop.
    violations: Mutex<Vec<PolicyViolation>>,
}

impl GitGuard {
    /// A guard for the repository holding `workspace`.
    pub fn open(workspace: &Path) -> Result<GitGuard, GuardError> {
        let repo = Repository::discover(workspace)?;
        let workdir = repo
            .workdir()
            .map_or_else(|| repo.path().to_path_buf(), Path::to_path_buf);
        Ok(GitGuard {
            workdir,
            index: Mutex::new(None),
            violations: Mutex::new(Vec::new()),
        })
    }

    /// The git state now.
    pub fn capture(&self) -> Result<GitState, GuardError> {
        let repo = Repository::open(&self.workdir)?;
        let paths = Paths::of(&repo);
        let index = self.current_index(&paths)?;
        capture_without_index(&repo, &paths, index)
    }

    /// Compares the git state now with `before` (taken before `command`
    /// ran), puts back whatever changed and records the violation, which
    /// [`GitGuard::take_violations`] hands out. Returns it too.
    pub fn check_after(&self, command: &str, before: &GitState) -> Option<PolicyViolation> {
        let violation = match self.compare_and_revert(command, before) {
            Ok(None) => return None,
            Ok(Some(violation)) => violation,
            Err(error) => PolicyViolation {
                command: command.to_string(),
                changes: Vec::new(),
                reverted: false,
                revert_error: Some(error.to_string()),
                reason: format!(
                    "kkrun could not check the git state after the agent's command: {error}"
                ),
            },
        };
        lock(&self.violations).push(violation.clone());
        Some(violation)
    }

    /// The violations recorded since the last call.
    pub fn take_violations(&self) -> Vec<PolicyViolation> {
        std::mem::take(&mut *lock(&self.violations))
    }

    fn compare_and_revert(
        &self,
        command: &str,
        before: &GitState,
    ) -> Result<Option<PolicyViolation>, GuardError> {
        let after = self.capture()?;
        let changes = compare::changes(before, &after);
        if changes.is_empty() {
            return Ok(None);
        }
        let repo = Repository::open(&self.workdir)?;
        let paths = Paths::of(&repo);
        let revert_error = revert::revert(&repo, &paths, before, &after)
            .err()
            .map(|e| e.to_string());
        // What is on disk now is what the next command starts from.
        *lock(&self.index) = None;
        let reason = changes
            .iter()
            .map(|c| c.description.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Some(PolicyViolation {
            command: command.to_string(),
            reverted: revert_error.is_none(),
            reason: match &revert_error {
                None => format!("{reason} (reverted)"),
                Some(error) => format!("{reason} (could not revert: {error})"),
            },
            revert_error,
            changes,
        }))
    }

    /// The index's state, loaded again only when its fingerprint changed.
    fn current_index(&self, paths: &Paths) -> Result<Arc<IndexState>, GuardError> {
        let path = paths.index();
        let fingerprint = index_fingerprint(&path)?;
        let mut cached = lock(&self.index);
        if let Some(index) = cached.as_ref()
            && index.fingerprint == fingerprint
        {
            return Ok(Arc::clone(index));
        }
        let index = Arc::new(load_index(&path)?);
        *cached = Some(Arc::clone(&index));
        Ok(index)
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// data; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! Ghost snapshots: the work tree as commits under `refs/kkrun/`, restore
//! and diff, all through git2.

pub mod commands;

/// A snapshot operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A git operation failed.
    #[error("git error: {0}")]
    Git(#[from] git2::Error),
}

impl SnapshotError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        crate::exit_codes::INFRASTRUCTURE
    }
}

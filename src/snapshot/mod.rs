//! Ghost snapshots: the work tree as commits under `refs/kkrun/`, restore
//! and diff, all through git2.
//!
//! A snapshot is a commit of the whole repository work tree (tracked,
//! modified and untracked-but-not-ignored files) built through a private copy
//! of the index, so the user's index, HEAD, branches and stash are never
//! touched. Each one is kept alive by a ref
//! `refs/kkrun/<run-id>/<task>/<NN>-<stage>` whose parent is the task's
//! previous snapshot, so `git log` on the last ref shows the run's history.
//! Restore and diff are scoped to the workspace directory.

mod apply;
mod count;
mod diff;
mod error;
mod export;
mod incremental;
mod journal;
mod message;
mod names;
mod owner;
mod refs;
mod restore;
mod scan;
mod scratch;
mod store;
mod worktree;
mod worktree_pool;

pub use apply::Applied;
pub use error::SnapshotError;
pub use export::{ExportRequest, Exported, SAFETY_STAGE, TaskChange};
pub use journal::Recovered;
pub use store::SnapshotStore;
pub use worktree_pool::{
    IsolatedWorktree, KkrunWorktree, WorktreePool, WorktreeState, kkrun_worktrees,
    remove_kkrun_worktree, remove_stale_worktrees,
};

/// What a snapshot records besides the work tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotMeta {
    /// The stage that just ended: `base`, `blueprint`, `code`, `debug`,
    /// `preview`, `safety` or `interrupted`. Becomes part of the ref name.
    pub stage: String,
    /// A short status, such as `ok` or `failed`; newlines are flattened.
    pub status: String,
    /// Tokens the stage used, if any.
    pub usage: Option<crate::provider::Usage>,
    /// What the stage cost in US dollars, if known.
    pub cost_usd: Option<f64>,
}

impl SnapshotMeta {
    /// Metadata with a stage and a status, no usage.
    pub fn new(stage: impl Into<String>, status: impl Into<String>) -> SnapshotMeta {
        SnapshotMeta {
            stage: stage.into(),
            status: status.into(),
            usage: None,
            cost_usd: None,
        }
    }
}

/// One snapshot of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Position in the task's chain: 0 for the first (`00-base`), then 1, 2, ...
    pub index: u32,
    /// The stage recorded (`base`, `code`, `safety`, ...).
    pub stage: String,
    /// The full ref, `refs/kkrun/<run>/<task>/<NN>-<stage>`.
    pub ref_name: String,
    /// The commit id, in hex.
    pub commit: String,
    /// When the snapshot was taken, RFC 3339 in UTC.
    pub time: String,
    /// Files that differ from the parent (the previous snapshot, or HEAD for
    /// the first one) inside the workspace.
    pub files_changed: usize,
    /// The status recorded with the snapshot.
    pub status: String,
    /// The workspace the snapshot was taken for, relative to the work tree
    /// root with `/` separators; empty for the root itself.
    pub workspace: String,
    /// How the work tree was read for a snapshot just taken; `None` for one
    /// listed from the repository.
    pub scan: Option<ScanKind>,
}

/// How a snapshot read the work tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// Every directory listed and every tracked file checked.
    Full,
    /// The previous snapshot plus the paths kkrun's own file tools wrote
    /// since, and nothing else could have written (see
    /// [`crate::tools::ChangeLog`]).
    Incremental,
}

impl ScanKind {
    /// `full` or `incremental`, as in the `snapshot.taken` event.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanKind::Full => "full",
            ScanKind::Incremental => "incremental",
        }
    }
}

impl SnapshotInfo {
    /// The last component of the ref name: `02-code`.
    pub fn label(&self) -> String {
        names::label(self.index, &self.stage)
    }
}

/// The difference between two states of a workspace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotDiff {
    /// A unified patch with `a/` and `b/` paths relative to the work tree
    /// root, binary changes included, that `git apply` accepts.
    pub patch: String,
    /// Every changed file, sorted by path.
    pub files: Vec<FileChange>,
}

/// A file changed between two states of a workspace (see `SnapshotDiff`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileChangeReport")]
pub struct FileChange {
    /// The path relative to the work tree root (the new path of a rename).
    pub path: String,
    /// `added`, `modified`, `deleted`, `renamed` or `typechange`.
    pub status: String,
    /// Lines added (0 for binary files).
    pub additions: usize,
    /// Lines removed (0 for binary files).
    pub deletions: usize,
}

/// A run found in the repository and the tasks it has snapshots of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSnapshots {
    /// The run id.
    pub run_id: String,
    /// The task names, sorted.
    pub tasks: Vec<String>,
}

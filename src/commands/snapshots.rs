//! The `kkrun snapshots`, `diff` and `rollback` commands: the front ends
//! of the snapshot machinery in [`crate::snapshot`] (`kkrun gc` is the run
//! store's, in [`super::runs`]). A run id may be `latest`.
//!
//! Results go to stdout; errors are returned and printed once by `main`.

use std::path::PathBuf;

use serde::Serialize;

use super::{print, resolve_run};
use crate::error::Error;
use crate::snapshot::{SnapshotError, SnapshotInfo, SnapshotStore};

/// What `kkrun snapshots` lists.
#[derive(Debug, Clone)]
pub struct SnapshotsOptions {
    /// Run id (default: list all runs).
    pub run: Option<String>,
    /// Task name (default: every task of the run).
    pub task: Option<String>,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
    /// One JSON document instead of the table.
    pub json: bool,
}

/// What `kkrun diff` shows.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Run id.
    pub run: String,
    /// Task name.
    pub task: String,
    /// Snapshot to diff from: a stage name, a ref label or `base`.
    pub from: String,
    /// Snapshot to diff to (default: the task's last, leaving out the
    /// `NN-safety` snapshots of rollbacks); `worktree` for the live tree.
    pub to: Option<String>,
    /// Only the file list with +/- counts.
    pub stat: bool,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

/// What `kkrun rollback` restores.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// Run id.
    pub run: String,
    /// Task name.
    pub task: String,
    /// Snapshot to restore: a stage name, a ref label or `base`.
    pub to: String,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

/// `kkrun snapshots --json`: one document whatever was asked, every run
/// with its tasks and their snapshots.
#[derive(Debug, Serialize)]
struct SnapshotsJson {
    runs: Vec<RunJson>,
}

#[derive(Debug, Serialize)]
struct RunJson {
    run_id: String,
    tasks: Vec<TaskJson>,
}

#[derive(Debug, Serialize)]
struct TaskJson {
    task: String,
    /// Relative to the work tree root; `.` for the root.
    workspace: String,
    snapshots: Vec<SnapshotJson>,
}

#[derive(Debug, Serialize)]
struct SnapshotJson {
    label: String,
    index: u32,
    stage: String,
    ref_name: String,
    commit: String,
    time: String,
    files_changed: usize,
    status: String,
}

impl TaskJson {
    fn new(task: &str, list: &[SnapshotInfo]) -> TaskJson {
        TaskJson {
            task: task.to_string(),
            workspace: list
                .last()
                .map(|s| s.workspace.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| ".".into()),
            snapshots: list
                .iter()
                .map(|s| SnapshotJson {
                    label: s.label(),
                    index: s.index,
                    stage: s.stage.clone(),
                    ref_name: s.ref_name.clone(),
                    commit: s.commit.clone(),
                    time: s.time.clone(),
                    files_changed: s.files_changed,
                    status: s.status.clone(),
                })
                .collect(),
        }
    }
}

/// `kkrun snapshots`: lists runs, tasks and their snapshots.
pub fn snapshots(args: &SnapshotsOptions) -> Result<i32, Error> {
    let store = SnapshotStore::open(&args.repo)?;
    let run = match &args.run {
        Some(run) => Some(resolve_run(run, &store)?),
        None => None,
    };
    if args.json {
        let runs = store.runs()?;
        let mut doc = SnapshotsJson { runs: Vec::new() };
        if let Some(run) = &run
            && !runs.iter().any(|r| &r.run_id == run)
        {
            return Err(SnapshotError::UnknownRun {
                run: run.clone(),
                known: runs.into_iter().map(|r| r.run_id).collect(),
            }
            .into());
        }
        for found in runs
            .iter()
            .filter(|r| run.as_ref().is_none_or(|id| id == &r.run_id))
        {
            let mut tasks = Vec::new();
            let names = match &args.task {
                Some(task) => vec![task.clone()],
                None => found.tasks.clone(),
            };
            for task in &names {
                tasks.push(TaskJson::new(task, &store.existing(&found.run_id, task)?));
            }
            doc.runs.push(RunJson {
                run_id: found.run_id.clone(),
                tasks,
            });
        }
        return super::print_json(&doc);
    }
    let mut out = String::new();
    match (&run, &args.task) {
        (None, _) => {
            let runs = store.runs()?;
            if runs.is_empty() {
                out.push_str("no kkrun snapshots in this repository\n");
            }
            for run in runs {
                out.push_str(&format!("{}\n", run.run_id));
                let width = run.tasks.iter().map(String::len).max().unwrap_or(0);
                for task in &run.tasks {
                    let list = store.list(&run.run_id, task)?;
                    if let Some(last) = list.last() {
                        out.push_str(&format!(
                            "  {task:<width$}  {count} snapshot{s}, last {label} at {time}\n",
                            count = list.len(),
                            s = if list.len() == 1 { "" } else { "s" },
                            label = last.label(),
                            time = last.time,
                        ));
                    }
                }
            }
        }
        (Some(run), task) => {
            let tasks = match task {
                Some(task) => vec![task.clone()],
                None => {
                    let runs = store.runs()?;
                    match runs.iter().find(|r| &r.run_id == run) {
                        Some(found) => found.tasks.clone(),
                        None => {
                            return Err(SnapshotError::UnknownRun {
                                run: run.clone(),
                                known: runs.into_iter().map(|r| r.run_id).collect(),
                            }
                            .into());
                        }
                    }
                }
            };
            for (position, task) in tasks.iter().enumerate() {
                if position > 0 {
                    out.push('\n');
                }
                let list = store.existing(run, task)?;
                out.push_str(&snapshot_table(run, task, &list));
            }
        }
    }
    print(&out)
}

fn snapshot_table(run: &str, task: &str, list: &[SnapshotInfo]) -> String {
    let workspace = list
        .last()
        .map(|s| s.workspace.as_str())
        .filter(|w| !w.is_empty())
        .unwrap_or(".");
    let mut out = format!("run {run}, task {task} (workspace {workspace})\n");
    let width = list
        .iter()
        .map(|s| s.label().len())
        .max()
        .unwrap_or(0)
        .max("SNAPSHOT".len());
    out.push_str(&format!(
        "  {:<width$}  {:<20}  {:>5}  {:<8}  COMMIT\n",
        "SNAPSHOT", "TIME", "FILES", "STATUS"
    ));
    for snapshot in list {
        out.push_str(&format!(
            "  {:<width$}  {:<20}  {:>5}  {:<8}  {}\n",
            snapshot.label(),
            snapshot.time,
            snapshot.files_changed,
            snapshot.status,
            &snapshot.commit[..snapshot.commit.len().min(12)],
        ));
    }
    out
}

/// `kkrun diff`: prints the patch between two snapshots, or between a
/// snapshot and the live work tree.
pub fn diff(args: &DiffOptions) -> Result<i32, Error> {
    let store = SnapshotStore::open(&args.repo)?;
    let run = resolve_run(&args.run, &store)?;
    let from = store.resolve(&run, &args.task, &args.from)?;
    let to = match args.to.as_deref() {
        Some("worktree") => None,
        Some(which) => Some(store.resolve(&run, &args.task, which)?),
        // The task's result: the `NN-safety` snapshots a rollback appends
        // record the tree before the rollback, not what the task did.
        None => Some(store.task_result(&run, &args.task)?),
    };
    // Scope to the workspace the task ran in, wherever kkrun is called from.
    let scoped = store.scoped_to(&from.workspace)?;
    let diff = scoped.diff(&from, to.as_ref())?;
    if !args.stat {
        return print(&diff.patch);
    }
    let mut out = String::new();
    let (mut added, mut removed) = (0, 0);
    for file in &diff.files {
        let mark = match file.status.as_str() {
            "added" => "A",
            "deleted" => "D",
            "renamed" => "R",
            "typechange" => "T",
            _ => "M",
        };
        out.push_str(&format!(
            "{mark}  {:>6}  {:>6}  {}\n",
            format!("+{}", file.additions),
            format!("-{}", file.deletions),
            file.path
        ));
        added += file.additions;
        removed += file.deletions;
    }
    let count = diff.files.len();
    out.push_str(&format!(
        "{count} file{} changed, {added} insertion{}(+), {removed} deletion{}(-)\n",
        plural(count),
        plural(added),
        plural(removed)
    ));
    print(&out)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `kkrun rollback`: restores the task's workspace to a snapshot, after a
/// safety snapshot of the current state.
pub fn rollback(args: &RollbackOptions) -> Result<i32, Error> {
    let store = SnapshotStore::open(&args.repo)?;
    let run = resolve_run(&args.run, &store)?;
    // Refused while a run uses the work tree, and held while restoring.
    let _lock = super::lock_work_tree(&store, &run, "rollback")?;
    let target = store.resolve(&run, &args.task, &args.to)?;
    let scoped = store.scoped_to(&target.workspace)?;
    let safety = scoped.restore(&run, &args.task, &target)?;
    let workspace = if target.workspace.is_empty() {
        "."
    } else {
        &target.workspace
    };
    print(&format!(
        "restored {workspace} to {} ({})\n\
         the previous state is saved as {}; undo with: kkrun rollback {} {} --to {}\n",
        target.label(),
        &target.commit[..target.commit.len().min(12)],
        safety.label(),
        run,
        args.task,
        safety.label(),
    ))
}

//! The `kkrun snapshots`, `diff`, `rollback` and `gc` commands: the front
//! ends of the snapshot machinery in [`crate::snapshot`].
//!
//! Results go to stdout; errors are returned and printed once by `main`.

use std::path::PathBuf;
use std::time::Duration;

use super::print;
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
    /// Snapshot to diff to (default: the task's last); `worktree` for the live tree.
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

/// What `kkrun gc` removes.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Keep the newest N runs, remove the rest.
    pub keep_last: Option<usize>,
    /// Remove runs whose last snapshot is older than this (`7d`, `12h`).
    pub older_than: Option<String>,
    /// Print what would be removed; remove nothing.
    pub dry_run: bool,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

/// `kkrun snapshots`: lists runs, tasks and their snapshots.
pub fn snapshots(args: &SnapshotsOptions) -> Result<i32, Error> {
    let store = SnapshotStore::open(&args.repo)?;
    let mut out = String::new();
    match (&args.run, &args.task) {
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
    let from = store.resolve(&args.run, &args.task, &args.from)?;
    let to = match args.to.as_deref() {
        Some("worktree") => None,
        Some(which) => Some(store.resolve(&args.run, &args.task, which)?),
        None => store.existing(&args.run, &args.task)?.pop(),
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
    // Refused while a run uses the work tree, and held while restoring.
    let _lock = super::lock_work_tree(&store, &args.run, "rollback")?;
    let target = store.resolve(&args.run, &args.task, &args.to)?;
    let scoped = store.scoped_to(&target.workspace)?;
    let safety = scoped.restore(&args.run, &args.task, &target)?;
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
        args.run,
        args.task,
        safety.label(),
    ))
}

/// `kkrun gc`: removes the refs of old runs, and the isolated worktrees
/// that killed runs left behind.
pub fn gc(args: &GcOptions) -> Result<i32, Error> {
    let max_age = match args.older_than.as_deref() {
        Some(text) => Some(parse_age(text)?),
        None => None,
    };
    if args.keep_last.is_none() && max_age.is_none() {
        return Err(Error::InvalidInput(
            "kkrun gc: say which runs to remove (hint: `--keep-last N` keeps the newest N runs, \
             `--older-than 7d` removes runs whose last snapshot is older than 7 days)"
                .into(),
        ));
    }
    let store = SnapshotStore::open(&args.repo)?;
    let runs = store.runs()?;
    let mut doomed = Vec::new();
    if let Some(keep) = args.keep_last {
        // Run ids start with their UTC start time, so sorted means oldest first.
        let remove = runs.len().saturating_sub(keep);
        doomed.extend(runs.iter().take(remove).map(|run| run.run_id.clone()));
    }
    if let Some(max_age) = max_age {
        let now = jiff::Timestamp::now();
        for run in &runs {
            if doomed.contains(&run.run_id) {
                continue;
            }
            let mut newest: Option<jiff::Timestamp> = None;
            for task in &run.tasks {
                for snapshot in store.list(&run.run_id, task)? {
                    if let Ok(time) = snapshot.time.parse::<jiff::Timestamp>() {
                        newest = Some(newest.map_or(time, |n| n.max(time)));
                    }
                }
            }
            let old = newest.is_some_and(|newest| {
                now.duration_since(newest)
                    .try_into()
                    .is_ok_and(|age: Duration| age > max_age)
            });
            if old {
                doomed.push(run.run_id.clone());
            }
        }
    }
    doomed.sort();
    let mut out = String::new();
    let mut refs = 0;
    for run in &doomed {
        let removed = if args.dry_run {
            let tasks = runs
                .iter()
                .find(|r| &r.run_id == run)
                .map(|r| r.tasks.clone())
                .unwrap_or_default();
            let mut count = 0;
            for task in &tasks {
                count += store.list(run, task)?.len();
            }
            count
        } else {
            store.remove_run(run)?
        };
        refs += removed;
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        out.push_str(&format!(
            "{verb} run {run} ({removed} ref{})\n",
            plural(removed)
        ));
    }
    let kept = runs.len() - doomed.len();
    if args.dry_run {
        out.push_str(&format!(
            "would remove {} run{} ({refs} ref{}), keep {kept}; nothing was changed\n",
            doomed.len(),
            plural(doomed.len()),
            plural(refs)
        ));
    } else {
        out.push_str(&format!(
            "removed {} run{} ({refs} ref{}), kept {kept}; the snapshot objects are deleted by \
             the next `git gc`\n",
            doomed.len(),
            plural(doomed.len()),
            plural(refs)
        ));
        // Worktrees of `--isolate` runs that were killed: nothing of the
        // user's is in them (the work is in the snapshots).
        for path in crate::snapshot::remove_stale_worktrees(&store)? {
            out.push_str(&format!(
                "removed the stale isolated worktree {} (left by a run that was killed)\n",
                path.display()
            ));
        }
    }
    print(&out)
}

fn parse_age(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text).map_err(|e| {
        Error::InvalidInput(format!(
            "kkrun gc: invalid --older-than {text:?}: {e} (hint: use a duration such as `7d`, \
             `12h` or `2weeks`)"
        ))
    })
}

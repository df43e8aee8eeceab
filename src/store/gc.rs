//! Removing old runs (`kkrun runs gc`, `kkrun gc`): a run's directory
//! under `.kkrun/runs/`, its snapshot refs and its stale isolated worktrees
//! go together. The run `latest` names stays unless asked, and a run whose
//! worktree a live process holds is never touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::catalog;
use crate::error::Error;
use crate::snapshot::{KkrunWorktree, SnapshotStore, WorktreeState};

/// Which runs to remove.
#[derive(Debug, Clone, Default)]
pub struct GcRequest {
    /// Keep the newest N runs.
    pub keep_last: Option<usize>,
    /// Remove runs whose last activity is older than this.
    pub older_than: Option<Duration>,
    /// Remove these runs by id (or `latest`).
    pub runs: Vec<String>,
    /// Also remove the run `latest` names when it is selected.
    pub include_latest: bool,
    /// Say what would go; remove nothing.
    pub dry_run: bool,
}

/// One run selected for removal.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedRun {
    /// The run id.
    pub run_id: String,
    /// Its directory, when it has one in `.kkrun/runs/`.
    pub dir: Option<PathBuf>,
    /// Snapshot refs deleted.
    pub refs: usize,
    /// Stale isolated worktrees removed.
    pub worktrees: Vec<PathBuf>,
}

/// A selected run that was left alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SparedRun {
    /// The run id.
    pub run_id: String,
    /// Why it stayed.
    pub reason: String,
}

/// What a gc did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct GcOutcome {
    /// Nothing was changed.
    pub dry_run: bool,
    /// The runs removed.
    pub removed: Vec<RemovedRun>,
    /// Selected runs left alone (`latest`, a live run).
    pub spared: Vec<SparedRun>,
    /// Runs kept.
    pub kept: usize,
    /// Stale isolated worktrees of runs that were not removed, removed too
    /// (none in a dry run).
    pub stale_worktrees: Vec<PathBuf>,
}

/// Selects runs from the run directories in `runs_dir` and the snapshot
/// refs of `store`, and removes them (unless `dry_run`).
pub fn gc(runs_dir: &Path, store: &SnapshotStore, request: &GcRequest) -> Result<GcOutcome, Error> {
    let dirs: Vec<(String, PathBuf)> = catalog::run_dirs(runs_dir);
    let ref_runs = store.runs()?;
    let all: BTreeSet<String> = dirs
        .iter()
        .map(|(id, _)| id.clone())
        .chain(ref_runs.iter().map(|r| r.run_id.clone()))
        .collect();
    let all: Vec<String> = all.into_iter().collect();
    let dir_of = |id: &str| dirs.iter().find(|(d, _)| d == id).map(|(_, p)| p.clone());

    let mut selected: BTreeSet<String> = BTreeSet::new();
    if let Some(keep) = request.keep_last {
        // Sorted ids sort by start time: the oldest come first.
        let remove = all.len().saturating_sub(keep);
        selected.extend(all.iter().take(remove).cloned());
    }
    if let Some(max_age) = request.older_than {
        let now = SystemTime::now();
        for id in &all {
            let tasks = ref_runs
                .iter()
                .find(|r| &r.run_id == id)
                .map(|r| r.tasks.clone())
                .unwrap_or_default();
            let last = last_activity(store, id, &tasks, dir_of(id).as_deref())?;
            let old = last
                .and_then(|at| now.duration_since(at).ok())
                .is_some_and(|age| age > max_age);
            if old {
                selected.insert(id.clone());
            }
        }
    }
    let search = [runs_dir.to_path_buf()];
    for given in &request.runs {
        let id = catalog::resolve_run_id(given, &search)?;
        if !all.contains(&id) {
            return Err(Error::InvalidInput(format!(
                "--run {given}: no such run in {} or the repository's refs (hint: `kkrun runs \
                 list` lists the runs)",
                runs_dir.display()
            )));
        }
        selected.insert(id);
    }

    let latest = catalog::read_latest(runs_dir);
    let worktrees = crate::snapshot::kkrun_worktrees(store)?;
    let mut outcome = GcOutcome {
        dry_run: request.dry_run,
        removed: Vec::new(),
        spared: Vec::new(),
        kept: 0,
        stale_worktrees: Vec::new(),
    };
    for id in &selected {
        let named_by_latest = latest.as_deref() == Some(id.as_str());
        let explicit = request.runs.iter().any(|r| r == id || r == catalog::LATEST);
        if named_by_latest && !request.include_latest && !explicit {
            outcome.spared.push(SparedRun {
                run_id: id.clone(),
                reason: "`latest` points at it (add --include-latest to remove it too)".into(),
            });
            continue;
        }
        if let Some(holder) = dir_of(id).as_deref().and_then(crate::lock::run_holder) {
            outcome.spared.push(SparedRun {
                run_id: id.clone(),
                reason: format!(
                    "it is running (process {} holds its run directory)",
                    holder.pid
                ),
            });
            continue;
        }
        let own: Vec<&KkrunWorktree> = worktrees.iter().filter(|w| w.belongs_to(id)).collect();
        if let Some(pid) = own.iter().find_map(|w| match w.state {
            WorktreeState::InUse(pid) => Some(pid),
            _ => None,
        }) {
            outcome.spared.push(SparedRun {
                run_id: id.clone(),
                reason: format!("it is running (process {pid} holds its isolated worktree)"),
            });
            continue;
        }
        let stale: Vec<&KkrunWorktree> = own
            .into_iter()
            .filter(|w| matches!(w.state, WorktreeState::Stale(_)))
            .collect();
        let dir = dir_of(id);
        let refs = if request.dry_run {
            count_refs(store, id, &ref_runs)?
        } else {
            for worktree in &stale {
                crate::snapshot::remove_kkrun_worktree(store, worktree)?;
            }
            let refs = store.remove_run(id)?;
            if let Some(dir) = &dir {
                std::fs::remove_dir_all(dir)
                    .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
            }
            refs
        };
        outcome.removed.push(RemovedRun {
            run_id: id.clone(),
            dir,
            refs,
            worktrees: stale.iter().map(|w| w.root.clone()).collect(),
        });
    }
    if named_latest_removed(&outcome, latest.as_deref()) && !request.dry_run {
        let _ = std::fs::remove_file(runs_dir.join(catalog::LATEST));
    }
    outcome.kept = all.len() - outcome.removed.len();
    if !request.dry_run {
        // Worktrees of `--isolate` runs that were killed: nothing of the
        // user's is in them (the work is in the snapshots).
        outcome.stale_worktrees = crate::snapshot::remove_stale_worktrees(store)?;
    }
    Ok(outcome)
}

fn named_latest_removed(outcome: &GcOutcome, latest: Option<&str>) -> bool {
    latest.is_some_and(|latest| outcome.removed.iter().any(|r| r.run_id == latest))
}

fn count_refs(
    store: &SnapshotStore,
    run_id: &str,
    ref_runs: &[crate::snapshot::RunSnapshots],
) -> Result<usize, Error> {
    let mut count = 0;
    if let Some(run) = ref_runs.iter().find(|r| r.run_id == run_id) {
        for task in &run.tasks {
            count += store.list(run_id, task)?.len();
        }
    }
    Ok(count)
}

/// When the run last did something: its newest snapshot, or the last
/// write of its `events.jsonl` (a run whose refs are gone), or of its
/// directory (a run killed before its first event).
fn last_activity(
    store: &SnapshotStore,
    run_id: &str,
    tasks: &[String],
    dir: Option<&Path>,
) -> Result<Option<SystemTime>, Error> {
    let mut newest: Option<SystemTime> = None;
    let mut note = |time: SystemTime| newest = Some(newest.map_or(time, |n| n.max(time)));
    for task in tasks {
        for snapshot in store.list(run_id, task)? {
            let time = snapshot.time.parse::<jiff::Timestamp>().ok();
            if let Some(time) = time.and_then(|t| SystemTime::try_from(t).ok()) {
                note(time);
            }
        }
    }
    if let Some(dir) = dir {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if let Some(time) = modified(&dir.join("events.jsonl")).or_else(|| modified(dir)) {
            note(time);
        }
    }
    Ok(newest)
}

//! `kkrun export RUN TASK --branch NAME [--base REF] [--force] [--pr-body]`:
//! a task's change as a branch with one commit, and the pull-request body.
//!
//! The branch is built by [`crate::snapshot::SnapshotStore::export`]; the
//! texts come from the task's record in the run's `report.json`.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::exit_codes;
use crate::snapshot::{ExportRequest, SnapshotStore};
use crate::store::DEFAULT_RUNS_DIR;

use super::export_message::{self, RunView, TaskView};

/// What `kkrun export` does.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Run id, `latest`, or a run directory.
    pub run: String,
    /// Task name.
    pub task: String,
    /// The branch to create; `None` with `pr_body` only prints the body.
    pub branch: Option<String>,
    /// The commit to build on (default: HEAD when the task started).
    pub base: Option<String>,
    /// Replace an existing branch.
    pub force: bool,
    /// Print the pull-request body on stdout.
    pub pr_body: bool,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

/// Runs `kkrun export`. With `--pr-body` stdout carries only the body (and
/// a branch, when `--branch` is given too, is reported on stderr).
pub fn export(args: &ExportOptions) -> Result<i32, Error> {
    let store = SnapshotStore::open(&args.repo)?;
    let (run_dir, run) = find_run("kkrun export", &args.run, &store)?;
    let task = find_task("kkrun export", &run, &args.task, &run_dir)?;
    if let Some(branch) = &args.branch {
        let message = export_message::commit_message(&run.run_id, task);
        let exported = store.export(&ExportRequest {
            run_id: &run.run_id,
            task: &task.name,
            branch,
            base: args.base.as_deref(),
            force: args.force,
            message: &message,
        })?;
        let short = |id: &str| id[..id.len().min(12)].to_owned();
        let branch_name = exported
            .branch
            .strip_prefix("refs/heads/")
            .unwrap_or(&exported.branch);
        let mut text = format!(
            "{} branch {branch_name} at {} on {}: task {} of run {}, {} file{} changed\n",
            if exported.replaced.is_some() {
                "replaced"
            } else {
                "created"
            },
            short(&exported.commit),
            exported
                .base
                .as_deref()
                .map(short)
                .unwrap_or_else(|| "no parent (a root commit)".to_owned()),
            task.name,
            run.run_id,
            exported.files.len(),
            if exported.files.len() == 1 { "" } else { "s" },
        );
        for file in &exported.files {
            text.push_str(&format!(
                "  {:<9} {} (+{} -{})\n",
                file.status, file.path, file.additions, file.deletions
            ));
        }
        if let Some(old) = &exported.replaced {
            text.push_str(&format!("  it pointed at {} before\n", short(old)));
        }
        text.push_str(&format!(
            "push it with: git push origin {branch_name}{}\n",
            if exported.replaced.is_some() {
                " --force-with-lease"
            } else {
                ""
            }
        ));
        if args.pr_body {
            eprint!("{text}");
        } else {
            super::print(&text)?;
        }
    }
    if args.pr_body {
        super::print(&export_message::pr_body(&run.run_id, task))?;
    }
    Ok(exit_codes::SUCCESS)
}

/// The run directory named by `run` (a directory holding `report.json`, such
/// as one downloaded from a CI artifact, or a run id or `latest` under
/// `.kkrun/runs/` of the current directory or of the work tree root) and its
/// report.
pub(super) fn find_run(
    command: &str,
    run: &str,
    store: &SnapshotStore,
) -> Result<(PathBuf, RunView), Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    let resolved;
    let run = if run == crate::store::catalog::LATEST {
        resolved = super::resolve_run(run, store)?;
        resolved.as_str()
    } else {
        run
    };
    let mut candidates = vec![cwd.join(run)];
    for root in [cwd.as_path(), store.workdir()] {
        let dir = root.join(DEFAULT_RUNS_DIR).join(run);
        if !candidates.contains(&dir) {
            candidates.push(dir);
        }
    }
    let found = candidates
        .iter()
        .find(|dir| dir.join("report.json").is_file());
    let Some(dir) = found else {
        let looked: Vec<String> = candidates
            .iter()
            .map(|dir| dir.join("report.json").display().to_string())
            .collect();
        return Err(Error::InvalidInput(format!(
            "{command}: no report.json for run {run:?} (looked for {}) (hint: give a run id, \
             `latest`, or the path of a run directory, e.g. one downloaded from the CI artifact; \
             run {command} from the directory kkrun ran in)",
            looked.join(", ")
        )));
    };
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let view: RunView = serde_json::from_str(&text).map_err(|e| {
        Error::InvalidInput(format!(
            "{command}: {}:{}:{}: not a kkrun report: {e} (hint: point RUN at a kkrun run \
             directory)",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    Ok((dir.clone(), view))
}

pub(super) fn find_task<'r>(
    command: &str,
    run: &'r RunView,
    task: &str,
    dir: &Path,
) -> Result<&'r TaskView, Error> {
    run.tasks.iter().find(|t| t.name == task).ok_or_else(|| {
        let known: Vec<&str> = run.tasks.iter().map(|t| t.name.as_str()).collect();
        Error::InvalidInput(format!(
            "{command}: run {} ({}) has no task {task:?}; tasks: {}",
            run.run_id,
            dir.display(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

//! `kkrun runs list|show|fsck|gc` (and `kkrun gc`, the same as `runs
//! gc`): the front ends of the run store in [`crate::store`]. They look for
//! run directories in `.kkrun/runs/` of the current directory (else of the
//! work tree root); `--out` directories are not known to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{print, print_json};
use crate::error::Error;
use crate::exit_codes;
use crate::report::{CheckStatus, FileChange, StageReport};
use crate::snapshot::SnapshotStore;
use crate::store::catalog::{self, RunSummary};
use crate::store::{fsck, gc};

/// What `kkrun runs list` prints.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// One JSON document instead of the table.
    pub json: bool,
    /// The git repository (or a directory inside it); its work tree root's
    /// `.kkrun/runs/` is searched when the current directory has none.
    pub repo: PathBuf,
}

/// What `kkrun runs show` prints.
#[derive(Debug, Clone)]
pub struct ShowOptions {
    /// Run id, `latest`, or a run directory.
    pub run: String,
    /// Only this task.
    pub task: Option<String>,
    /// One JSON document instead of text.
    pub json: bool,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

/// What `kkrun runs fsck` checks.
#[derive(Debug, Clone)]
pub struct FsckOptions {
    /// One JSON document instead of one line per problem.
    pub json: bool,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

/// What `kkrun runs gc` (and `kkrun gc`) removes.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Keep the newest N runs, remove the rest.
    pub keep_last: Option<usize>,
    /// Remove runs whose last activity is older than this (`7d`, `12h`).
    pub older_than: Option<String>,
    /// Remove these runs (ids or `latest`).
    pub runs: Vec<String>,
    /// Also remove the run `latest` points at.
    pub include_latest: bool,
    /// Print what would be removed; remove nothing.
    pub dry_run: bool,
    /// One JSON document instead of text.
    pub json: bool,
    /// The git repository (or a directory inside it).
    pub repo: PathBuf,
}

fn current_dir() -> Result<PathBuf, Error> {
    std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))
}

/// The directories searched for runs, with the repository when it opens.
fn locate(repo: &Path) -> Result<(Vec<PathBuf>, Option<SnapshotStore>), Error> {
    let cwd = current_dir()?;
    let store = SnapshotStore::open(repo).ok();
    let dirs = catalog::runs_dirs(&cwd, store.as_ref().map(SnapshotStore::workdir));
    Ok((dirs, store))
}

/// How a fix calls git: `git`, or `git -C DIR` for another repository.
fn git_command(repo: &Path) -> String {
    if repo == Path::new(".") {
        "git".into()
    } else {
        format!("git -C {}", fsck::quote(repo))
    }
}

fn cost(cost: Option<f64>) -> String {
    cost.map_or_else(|| "-".into(), |c| format!("${c:.4}"))
}

/// `kkrun runs list`: one line per run, oldest first (the newest is the
/// last line, next to the prompt).
pub fn list(args: &ListOptions) -> Result<i32, Error> {
    let (dirs, _) = locate(&args.repo)?;
    let dir = catalog::primary_runs_dir(&dirs);
    let runs: Vec<RunSummary> = catalog::list(&dir).iter().map(RunSummary::of).collect();
    if args.json {
        #[derive(Serialize)]
        struct Listing<'a> {
            runs_dir: String,
            runs: &'a [RunSummary],
        }
        return print_json(&Listing {
            runs_dir: dir.display().to_string(),
            runs: &runs,
        });
    }
    if runs.is_empty() {
        return print(&format!("no runs in {}\n", dir.display()));
    }
    let mut out = format!(
        "{:<23}  {:<20}  {:>5}  {:>6}  {:>6}  {:>4}  {:>9}  OUTCOME\n",
        "RUN", "STARTED", "TASKS", "PASSED", "FAILED", "EXIT", "COST"
    );
    for run in &runs {
        let mut outcome = run.outcome.clone();
        if let Some(hint) = &run.hint {
            outcome.push_str(&format!(" ({hint})"));
        }
        out.push_str(&format!(
            "{:<23}  {:<20}  {:>5}  {:>6}  {:>6}  {:>4}  {:>9}  {outcome}\n",
            run.run_id,
            run.started_at.as_deref().unwrap_or("-"),
            run.tasks,
            run.passed,
            run.failed,
            run.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            cost(run.cost_usd),
        ));
    }
    print(&out)
}

/// One check in `kkrun runs show`.
#[derive(Debug, Serialize)]
struct CheckShow {
    name: String,
    status: CheckStatus,
    baseline_passed: Option<bool>,
    final_passed: Option<bool>,
}

/// One snapshot in `kkrun runs show`.
#[derive(Debug, Serialize)]
struct SnapshotShow {
    stage: String,
    ref_name: String,
    commit: String,
    /// Whether the ref is in the repository and points at the commit;
    /// `null` when the repository could not be opened.
    exists: Option<bool>,
}

/// One task in `kkrun runs show`.
#[derive(Debug, Serialize)]
struct TaskShow {
    name: String,
    outcome: String,
    reason: String,
    stages: Vec<StageReport>,
    checks: Vec<CheckShow>,
    snapshots: Vec<SnapshotShow>,
    files_changed: Vec<FileChange>,
}

/// `kkrun runs show RUN [TASK]`: the run's tasks with their stages, checks,
/// snapshots and changed files.
pub fn show(args: &ShowOptions) -> Result<i32, Error> {
    let (dirs, store) = locate(&args.repo)?;
    let cwd = current_dir()?;
    let (run_id, dir) = catalog::find_run_dir(&args.run, &cwd, &dirs)?;
    let record = catalog::read_run(&run_id, &dir);
    let summary = RunSummary::of(&record);
    let Some(report) = &record.report else {
        return Err(Error::InvalidInput(format!(
            "kkrun runs show: {}: {} (hint: `kkrun runs fsck` checks every run)",
            dir.display(),
            record.problem.unwrap_or_default()
        )));
    };
    let repo = store.as_ref().and_then(|s| s.repo().ok());
    let mut tasks = Vec::new();
    for task in &report.tasks {
        if args.task.as_ref().is_some_and(|t| t != &task.name) {
            continue;
        }
        tasks.push(TaskShow {
            name: task.name.clone(),
            outcome: task.outcome.as_str().into(),
            reason: task.reason.clone(),
            stages: task.stages.clone(),
            checks: task
                .checks
                .iter()
                .map(|c| CheckShow {
                    name: c.name.clone(),
                    status: c.status,
                    baseline_passed: c.baseline.as_ref().map(|r| r.passed),
                    final_passed: c.final_run.as_ref().map(|r| r.passed),
                })
                .collect(),
            snapshots: task
                .snapshots
                .iter()
                .map(|s| SnapshotShow {
                    stage: s.stage.clone(),
                    ref_name: s.ref_name.clone(),
                    commit: s.commit.clone(),
                    exists: repo.as_ref().map(|repo| {
                        repo.find_reference(&s.ref_name)
                            .ok()
                            .and_then(|r| r.target())
                            .is_some_and(|oid| oid.to_string() == s.commit)
                    }),
                })
                .collect(),
            files_changed: task.files_changed.clone(),
        });
    }
    if let Some(name) = &args.task
        && tasks.is_empty()
    {
        let known: Vec<&str> = report.tasks.iter().map(|t| t.name.as_str()).collect();
        return Err(Error::InvalidInput(format!(
            "kkrun runs show: run {run_id} has no task {name:?} (hint: its tasks: {})",
            known.join(", ")
        )));
    }
    if args.json {
        #[derive(Serialize)]
        struct Shown<'a> {
            run: &'a RunSummary,
            tasks: &'a [TaskShow],
        }
        return print_json(&Shown {
            run: &summary,
            tasks: &tasks,
        });
    }
    print(&render_show(&summary, &tasks))
}

fn render_show(run: &RunSummary, tasks: &[TaskShow]) -> String {
    let mut out = format!(
        "run {} ({})\n  started {}, {} task(s), {} passed, outcome {}{}, cost {}\n",
        run.run_id,
        run.dir,
        run.started_at.as_deref().unwrap_or("-"),
        run.tasks,
        run.passed,
        run.outcome,
        run.exit_code
            .map_or_else(String::new, |c| format!(" (exit {c})")),
        cost(run.cost_usd),
    );
    if let Some(hint) = &run.hint {
        out.push_str(&format!("  {hint}\n"));
    }
    for task in tasks {
        out.push_str(&format!(
            "\ntask {}: {} ({})\n",
            task.name, task.outcome, task.reason
        ));
        out.push_str("  stages:\n");
        if task.stages.is_empty() {
            out.push_str("    none ran\n");
        }
        for stage in &task.stages {
            out.push_str(&format!(
                "    {:<9}  round {}  {:<12}  {:>3} turn(s)  {:>9}  {}\n",
                stage.stage,
                stage.round,
                stage.end.as_str(),
                stage.turns,
                cost(stage.cost_usd),
                stage
                    .snapshot
                    .as_ref()
                    .and_then(|s| s.ref_name.rsplit('/').next())
                    .unwrap_or("-"),
            ));
        }
        out.push_str("  checks:\n");
        if task.checks.is_empty() {
            out.push_str("    none\n");
        }
        for check in &task.checks {
            let word = |passed: Option<bool>| match passed {
                Some(true) => "passed",
                Some(false) => "failed",
                None => "not run",
            };
            out.push_str(&format!(
                "    {:<12}  {:<13}  baseline {}, final {}\n",
                check.name,
                check.status.as_str(),
                word(check.baseline_passed),
                word(check.final_passed),
            ));
        }
        out.push_str("  snapshots:\n");
        if task.snapshots.is_empty() {
            out.push_str("    none\n");
        }
        for snapshot in &task.snapshots {
            let state = match snapshot.exists {
                Some(true) => "",
                Some(false) => "  (missing: `kkrun runs fsck` says how to fix it)",
                None => "  (repository not opened)",
            };
            out.push_str(&format!(
                "    {}  {}{state}\n",
                &snapshot.commit[..snapshot.commit.len().min(12)],
                snapshot.ref_name,
            ));
        }
        out.push_str("  files changed:\n");
        if task.files_changed.is_empty() {
            out.push_str("    none\n");
        }
        for file in &task.files_changed {
            out.push_str(&format!(
                "    {:<9}  +{} -{}  {}\n",
                file.status, file.additions, file.deletions, file.path
            ));
        }
    }
    out
}

/// `kkrun runs fsck`: exit 0 when the store is clean, else 1 with one line
/// per problem and the command that fixes it.
pub fn fsck(args: &FsckOptions) -> Result<i32, Error> {
    let (dirs, _) = locate(&args.repo)?;
    let store = SnapshotStore::open(&args.repo)?;
    let dir = catalog::primary_runs_dir(&dirs);
    let problems = fsck::fsck(&dir, &store, &git_command(&args.repo))?;
    let checked = catalog::run_dirs(&dir).len();
    let code = if problems.is_empty() {
        exit_codes::SUCCESS
    } else {
        exit_codes::TASK_FAILED
    };
    if args.json {
        #[derive(Serialize)]
        struct Checked<'a> {
            runs_dir: String,
            checked: usize,
            problems: &'a [fsck::Problem],
        }
        print_json(&Checked {
            runs_dir: dir.display().to_string(),
            checked,
            problems: &problems,
        })?;
        return Ok(code);
    }
    let mut out = String::new();
    for problem in &problems {
        out.push_str(&format!(
            "{}: {} (fix: {})\n",
            problem.kind, problem.message, problem.fix
        ));
    }
    out.push_str(&format!(
        "checked {checked} run director{} in {}: {}\n",
        if checked == 1 { "y" } else { "ies" },
        dir.display(),
        match problems.len() {
            0 => "no problems".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    ));
    print(&out)?;
    Ok(code)
}

/// `kkrun runs gc` and `kkrun gc`: removes old runs' directories, refs and
/// stale worktrees together.
pub fn gc(args: &GcOptions) -> Result<i32, Error> {
    let older_than = match args.older_than.as_deref() {
        Some(text) => Some(parse_age(text)?),
        None => None,
    };
    if args.keep_last.is_none() && older_than.is_none() && args.runs.is_empty() {
        return Err(Error::InvalidInput(
            "kkrun gc: say which runs to remove (hint: `--keep-last N` keeps the newest N runs, \
             `--older-than 7d` removes runs whose last activity is older than 7 days, `--run ID` \
             removes one run)"
                .into(),
        ));
    }
    let (dirs, _) = locate(&args.repo)?;
    let store = SnapshotStore::open(&args.repo)?;
    let dir = catalog::primary_runs_dir(&dirs);
    let outcome = gc::gc(
        &dir,
        &store,
        &gc::GcRequest {
            keep_last: args.keep_last,
            older_than,
            runs: args.runs.clone(),
            include_latest: args.include_latest,
            dry_run: args.dry_run,
        },
    )?;
    if args.json {
        return print_json(&outcome);
    }
    print(&render_gc(&outcome))
}

fn render_gc(outcome: &gc::GcOutcome) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let verb = if outcome.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut out = String::new();
    let mut refs = 0;
    for run in &outcome.removed {
        refs += run.refs;
        let mut parts = vec![format!("{} ref{}", run.refs, plural(run.refs))];
        if let Some(dir) = &run.dir {
            parts.push(format!("directory {}", dir.display()));
        }
        if !run.worktrees.is_empty() {
            parts.push(format!(
                "{} stale worktree{}",
                run.worktrees.len(),
                plural(run.worktrees.len())
            ));
        }
        out.push_str(&format!(
            "{verb} run {} ({})\n",
            run.run_id,
            parts.join(", ")
        ));
    }
    for run in &outcome.spared {
        out.push_str(&format!("kept run {}: {}\n", run.run_id, run.reason));
    }
    let count = outcome.removed.len();
    if outcome.dry_run {
        out.push_str(&format!(
            "would remove {count} run{} ({refs} ref{}), keep {}; nothing was changed\n",
            plural(count),
            plural(refs),
            outcome.kept
        ));
    } else {
        out.push_str(&format!(
            "removed {count} run{} ({refs} ref{}), kept {}; the snapshot objects are deleted by \
             the next `git gc`\n",
            plural(count),
            plural(refs),
            outcome.kept
        ));
    }
    for path in &outcome.stale_worktrees {
        out.push_str(&format!(
            "removed the stale isolated worktree {} (left by a run that was killed)\n",
            path.display()
        ));
    }
    out
}

fn parse_age(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text).map_err(|e| {
        Error::InvalidInput(format!(
            "kkrun gc: invalid --older-than {text:?}: {e} (hint: use a duration such as `7d`, \
             `12h` or `2weeks`)"
        ))
    })
}

//! The run store's catalogue: the run directories under `.kkrun/runs/`,
//! each read from its `report.json` when there is one, else from its
//! `events.jsonl` (a killed run), and the one place where `latest` is
//! resolved to a run id.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::DEFAULT_RUNS_DIR;
use crate::error::Error;
use crate::report::aggregate::{self, Aggregator};
use crate::report::{Report, TaskOutcome};

/// The name that stands for the newest run wherever a run id is accepted.
pub const LATEST: &str = "latest";

/// The directories that may hold run directories, in the order they are
/// searched: `.kkrun/runs/` of the current directory (where `kkrun run`
/// writes them), then that of the work tree root when it differs.
pub fn runs_dirs(cwd: &Path, workdir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![cwd.join(DEFAULT_RUNS_DIR)];
    if let Some(root) = workdir {
        let other = root.join(DEFAULT_RUNS_DIR);
        let same = match (dirs[0].canonicalize(), other.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => dirs[0] == other,
        };
        if !same {
            dirs.push(other);
        }
    }
    dirs
}

/// The first of `dirs` that exists, else the first: where the run store
/// commands look.
pub fn primary_runs_dir(dirs: &[PathBuf]) -> PathBuf {
    dirs.iter()
        .find(|dir| dir.is_dir())
        .or(dirs.first())
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNS_DIR))
}

/// The run id `given` names: itself, or for `latest` the run the
/// `latest` pointer of the first of `dirs` that has one names, else the
/// newest run directory there (a run killed before it set the pointer).
/// This is the only place `latest` is resolved.
pub fn resolve_run_id(given: &str, dirs: &[PathBuf]) -> Result<String, Error> {
    if given != LATEST {
        return Ok(given.to_string());
    }
    for dir in dirs {
        if let Some(id) = read_latest(dir) {
            return Ok(id);
        }
    }
    for dir in dirs {
        if let Some(newest) = run_dirs(dir).last() {
            return Ok(newest.0.clone());
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::InvalidInput(format!(
        "no run \"latest\": {} holds no run (hint: run a task first, or give a run id; `kkrun \
         runs list` lists the runs)",
        looked.join(" and ")
    )))
}

/// The run id the `latest` pointer in `dir` names: a symbolic link to the
/// run's directory, or (where there are none) a file holding the id.
pub fn read_latest(dir: &Path) -> Option<String> {
    let latest = dir.join(LATEST);
    let id = match std::fs::read_link(&latest) {
        Ok(target) => target.file_name()?.to_str()?.to_string(),
        Err(_) => std::fs::read_to_string(&latest).ok()?.trim().to_string(),
    };
    (!id.is_empty()).then_some(id)
}

/// Every run directory in `dir` (not `latest`, not hidden), oldest first:
/// run ids start with their UTC start time, so sorting by id sorts by time.
pub fn run_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            (name != LATEST && !name.starts_with('.')).then(|| (name, entry.path()))
        })
        .collect();
    found.sort();
    found
}

/// Where a run's record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    /// `report.json`.
    Report,
    /// `events.jsonl`, through the aggregator (no `report.json`).
    Events,
}

/// One run directory's record.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run id (the directory's name).
    pub run_id: String,
    /// The run directory.
    pub dir: PathBuf,
    /// The report, read or rebuilt from the events; `None` when neither
    /// file could be read.
    pub report: Option<Report>,
    /// Where the report came from.
    pub source: Option<RecordSource>,
    /// Whether the run reached its final record (`run.finished`).
    pub complete: bool,
    /// Why the report is missing, when it is.
    pub problem: Option<String>,
}

/// Reads run directory `dir`: `report.json` when it parses, else the
/// report the aggregator builds from `events.jsonl`.
pub fn read_run(run_id: &str, dir: &Path) -> RunRecord {
    let mut record = RunRecord {
        run_id: run_id.to_string(),
        dir: dir.to_path_buf(),
        report: None,
        source: None,
        complete: false,
        problem: None,
    };
    let report_path = dir.join("report.json");
    if let Ok(text) = std::fs::read_to_string(&report_path)
        && let Ok(report) = serde_json::from_str::<Report>(&text)
    {
        // A report rebuilt from a killed run's events says so.
        record.complete = report.rebuilt.is_none();
        record.report = Some(report);
        record.source = Some(RecordSource::Report);
        return record;
    }
    if !dir.join("events.jsonl").is_file() {
        record.problem = Some(
            "no events.jsonl: the run was killed before its first event, so nothing ran".into(),
        );
        return record;
    }
    match aggregate::read_events(dir) {
        Ok(stream) => {
            let mut aggregator = Aggregator::new();
            for event in &stream.events {
                aggregator.on_event(event);
            }
            record.complete = aggregator.is_finished();
            record.report = Some(aggregator.report());
            record.source = Some(RecordSource::Events);
        }
        Err(e) => record.problem = Some(e.to_string()),
    }
    record
}

/// One line of `kkrun runs list`, and its `--json` element.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The run directory.
    pub dir: String,
    /// When the run started (RFC 3339, UTC); `null` when unknown.
    pub started_at: Option<String>,
    /// Tasks in the run.
    pub tasks: usize,
    /// Tasks that passed.
    pub passed: usize,
    /// Tasks that ended any other way.
    pub failed: usize,
    /// `passed`, `failed`, `invalid`, `error`, `budget_exhausted`,
    /// `interrupted` (from the exit code), `incomplete` (killed before its
    /// final record: resume it) or `unreadable`.
    pub outcome: String,
    /// The run's exit code; `null` for an incomplete or unreadable run.
    pub exit_code: Option<i32>,
    /// Cost in USD over all tasks; `null` when a price is unknown.
    pub cost_usd: Option<f64>,
    /// Where the record was read from: `report` or `events`.
    pub source: Option<RecordSource>,
    /// What to do about an incomplete or unreadable run.
    pub hint: Option<String>,
}

impl RunSummary {
    /// The summary of `record`.
    pub fn of(record: &RunRecord) -> RunSummary {
        let mut summary = RunSummary {
            run_id: record.run_id.clone(),
            dir: record.dir.display().to_string(),
            started_at: None,
            tasks: 0,
            passed: 0,
            failed: 0,
            outcome: "unreadable".into(),
            exit_code: None,
            cost_usd: None,
            source: record.source,
            hint: record.problem.clone(),
        };
        let Some(report) = &record.report else {
            return summary;
        };
        summary.started_at = Some(report.started_at.clone()).filter(|s| !s.is_empty());
        summary.tasks = report.tasks.len();
        summary.passed = report
            .tasks
            .iter()
            .filter(|t| t.outcome == TaskOutcome::Passed)
            .count();
        summary.failed = summary.tasks - summary.passed;
        summary.cost_usd = report.totals.cost_usd;
        if record.complete {
            summary.exit_code = Some(report.exit_code);
            summary.outcome = outcome_of_exit_code(report.exit_code).into();
        } else if let Some(holder) = crate::lock::run_holder(&record.dir) {
            summary.outcome = "running".into();
            summary.hint = Some(format!(
                "in progress: kkrun {} (process {})",
                holder.command, holder.pid
            ));
        } else {
            summary.outcome = "incomplete".into();
            summary.hint = Some(format!("resume with: kkrun resume {}", record.run_id));
        }
        summary
    }
}

/// A finished run's outcome, named after its exit code.
pub fn outcome_of_exit_code(code: i32) -> &'static str {
    use crate::exit_codes::*;
    match code {
        SUCCESS => "passed",
        TASK_FAILED => "failed",
        INVALID_INPUT => "invalid",
        INFRASTRUCTURE => "error",
        BUDGET_EXHAUSTED => "budget_exhausted",
        INTERRUPTED => "interrupted",
        _ => "unknown",
    }
}

/// Every run in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<RunRecord> {
    run_dirs(dir)
        .iter()
        .map(|(id, path)| read_run(id, path))
        .collect()
}

/// The run directory `run` names: a directory holding `events.jsonl` or
/// `report.json` (an `--out` directory, a CI artifact), or a run id or
/// `latest` in one of `dirs`.
pub fn find_run_dir(run: &str, cwd: &Path, dirs: &[PathBuf]) -> Result<(String, PathBuf), Error> {
    let as_path = cwd.join(run);
    let is_run_dir =
        |dir: &Path| dir.join("events.jsonl").is_file() || dir.join("report.json").is_file();
    if run != LATEST && is_run_dir(&as_path) {
        let record = read_run("", &as_path);
        let id = record
            .report
            .map(|r| r.run_id)
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| run.to_string());
        return Ok((id, as_path));
    }
    let id = resolve_run_id(run, dirs)?;
    for dir in dirs {
        let candidate = dir.join(&id);
        if candidate.is_dir() {
            return Ok((id, candidate));
        }
    }
    let known: Vec<String> = dirs
        .iter()
        .flat_map(|dir| run_dirs(dir).into_iter().map(|(id, _)| id))
        .collect();
    Err(Error::InvalidInput(format!(
        "no run \"{run}\" in {} (hint: runs here: {}; `kkrun runs` looks only in .kkrun/runs/, \
         so give an --out directory by its path)",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" or "),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_the_pointer_else_the_newest_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = tmp.path().join(DEFAULT_RUNS_DIR);
        let dirs = vec![runs.clone()];
        assert!(resolve_run_id(LATEST, &dirs).is_err());
        std::fs::create_dir_all(runs.join("20260101T000000Z-000001")).unwrap();
        std::fs::create_dir_all(runs.join("20260102T000000Z-000002")).unwrap();
        assert_eq!(
            resolve_run_id(LATEST, &dirs).unwrap(),
            "20260102T000000Z-000002"
        );
        super::super::update_latest(&runs, "20260101T000000Z-000001").unwrap();
        assert_eq!(
            resolve_run_id(LATEST, &dirs).unwrap(),
            "20260101T000000Z-000001"
        );
        assert_eq!(resolve_run_id("other", &dirs).unwrap(), "other");
        let listed: Vec<String> = run_dirs(&runs).into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            listed,
            ["20260101T000000Z-000001", "20260102T000000Z-000002"]
        );
    }

    #[test]
    fn outcomes_follow_the_exit_codes() {
        assert_eq!(outcome_of_exit_code(0), "passed");
        assert_eq!(outcome_of_exit_code(1), "failed");
        assert_eq!(outcome_of_exit_code(4), "budget_exhausted");
        assert_eq!(outcome_of_exit_code(130), "interrupted");
    }
}

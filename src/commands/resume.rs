//! `kkrun resume [RUN]`: finds the run (default: the latest in
//! `.kkrun/runs/`), reads what its tasks completed from `events.jsonl`,
//! loads their task files again and hands them to the runner, which
//! continues every task that had not finished.

use std::path::{Path, PathBuf};

use super::print;
use crate::console::ConsoleOptions;
use crate::error::Error;
use crate::events::{Event, EventKind};
use crate::findings::BaselineFindings;
use crate::runner::{Continuation, RestorePolicy};
use crate::store::{DEFAULT_RUNS_DIR, catalog};
use crate::task::Task;

/// What `kkrun resume` does, resolved from the command line.
#[derive(Debug, Clone)]
pub struct ResumeCommand {
    /// A run id, `latest`, or a run directory; `None` for the latest run.
    pub run: Option<String>,
    /// When to restore `00-base` after a task; `None`: as the run's
    /// command line said.
    pub restore: Option<RestorePolicy>,
    /// Values to redact from everything written (`--redact`).
    pub redact: Vec<String>,
    /// `--wait-lock`: how long to wait for another run's work-tree lock.
    pub wait_lock: Option<std::time::Duration>,
    /// How progress is shown, `--json` included.
    pub console: ConsoleOptions,
    /// The command line, for the report.
    pub command_line: Vec<String>,
}

/// Resumes the run; returns its exit code.
pub fn resume(command: ResumeCommand) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    let run_dir = find_run_dir(&cwd, command.run.as_deref())?;
    let events = read_events(&run_dir)?;
    let Some(run_id) = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted { run_id, .. } => Some(run_id.clone()),
        _ => None,
    }) else {
        return Err(Error::InvalidInput(format!(
            "{}: events.jsonl has no run.started: it is not the record of a kkrun run (hint: give a \
             run directory such as .kkrun/runs/<run-id>)",
            run_dir.display()
        )));
    };
    let histories = crate::resume::tasks(&events);
    let restore = command.restore.unwrap_or_else(|| recorded_restore(&events));
    let finished_run = events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::RunFinished { exit_code, .. } => Some(*exit_code),
            EventKind::RunResumed { .. } => Some(-1),
            _ => None,
        })
        .filter(|&code| code >= 0);
    if histories.iter().all(|h| h.finished.is_some())
        && let Some(exit_code) = finished_run
    {
        let outcomes: Vec<String> = histories
            .iter()
            .map(|h| format!("{} {}", h.name, h.finished.map_or("?", |o| o.as_str())))
            .collect();
        let text = format!(
            "nothing to resume: every task of run {run_id} finished ({}); its exit code was {exit_code}\n",
            outcomes.join(", ")
        );
        // With --json, stdout carries events only.
        if command.console.json {
            eprint!("kkrun: {text}");
        } else {
            print(&text)?;
        }
        return Ok(exit_code);
    }
    // Held until the resumed run ends. The run's own process may still be
    // running (an isolated run holds no work-tree lock that would say so);
    // once the lock is ours, nothing else writes the run's files or refs.
    let mut notices = Vec::new();
    let _run_lock =
        crate::lock::acquire_run(&run_dir, &run_id, "resume", command.wait_lock, &mut notices)?;
    for notice in notices {
        eprintln!("kkrun: {notice}");
    }
    let run_flags = run_command_line(&events);
    // Recorded `--model`s name a command-line matrix's instances.
    let models = recorded_values(&run_flags, "--model");
    let tasks = load_tasks(&cwd, &histories, &models)?;
    let attempt = 2 + events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RunResumed { .. }))
        .count();
    let isolate = recorded_isolation(&events, &run_flags);
    let continuation = Continuation {
        run_dir,
        run_id,
        events,
        histories,
        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
    };
    let options = crate::runner::RunOptions {
        out: None,
        console: command.console,
        restore,
        record: None,
        redact: command.redact,
        command_line: command.command_line,
        require_sandbox: false,
        baseline_findings: recorded_baseline(&continuation.events),
        // The run's tasks are those its events planned: a shard's already.
        partition: None,
        // The endpoints answered when the run started; a dead one now
        // fails the resumed task's first turn with the same message.
        preflight: false,
        project_instructions: !recorded_flag(&run_flags, "--no-project-instructions"),
        isolate,
        // The passing tasks' changes, those of the earlier attempt
        // included, are applied at the end as the run would have; one the
        // killed process applied already merges as nothing to write.
        apply: recorded_flag(&run_flags, "--apply"),
        wait_lock: command.wait_lock,
        jobs: recorded_jobs(&run_flags),
        max_requests: recorded_max_requests(&run_flags),
    };
    crate::runner::resume(tasks, continuation, options)
}

/// The isolation the run had: its `--isolate`, `--worktrees` and
/// `--keep-worktrees` (`--jobs` above 1 and a matrix isolate by
/// themselves, and the runner sees to those).
fn recorded_isolation(
    events: &[Event],
    command_line: &[String],
) -> Option<crate::runner::IsolationOptions> {
    let dir = recorded_value(command_line, "--worktrees").map(PathBuf::from);
    let keep = recorded_flag(command_line, "--keep-worktrees");
    let isolated = dir.is_some()
        || keep
        || recorded_flag(command_line, "--isolate")
        || recorded_flag(command_line, "--apply")
        || ran_isolated(events);
    isolated.then_some(crate::runner::IsolationOptions { dir, keep })
}

/// Whether the events say a task ran in a worktree of its own.
fn ran_isolated(events: &[Event]) -> bool {
    events.iter().any(|e| match &e.kind {
        EventKind::TaskStarted { worktree, .. } | EventKind::TaskResumed { worktree, .. } => {
            worktree.is_some()
        }
        _ => false,
    })
}

/// The baseline the run's `run.started` recorded, so that findings of the
/// resumed stages are `known` or `new` as they would have been.
fn recorded_baseline(events: &[Event]) -> Option<BaselineFindings> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted {
            baseline_findings, ..
        } => baseline_findings
            .clone()
            .map(BaselineFindings::from_fingerprints),
        _ => None,
    })
}

/// The run's command line, as its `run.started` recorded it.
fn run_command_line(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RunStarted { command_line, .. } => Some(command_line.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Whether the run's command line gave `flag`, so a resume keeps it.
fn recorded_flag(command_line: &[String], flag: &str) -> bool {
    command_line.iter().any(|arg| arg == flag)
}

/// The `--jobs` of the run's command line (`--jobs N` or `--jobs=N`; 1
/// when it has none): a run of several jobs ran isolated.
fn recorded_jobs(command_line: &[String]) -> usize {
    recorded_value(command_line, "--jobs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The `--max-requests` of the run's command line, so a resumed task
/// treats the endpoint as the run did (the default when it has none).
fn recorded_max_requests(command_line: &[String]) -> usize {
    recorded_value(command_line, "--max-requests")
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(crate::provider::DEFAULT_MAX_REQUESTS)
}

/// The last value of `flag` on the run's command line, as `FLAG VALUE` or
/// `FLAG=VALUE`.
fn recorded_value<'a>(command_line: &'a [String], flag: &str) -> Option<&'a str> {
    recorded_values(command_line, flag).pop()
}

/// Every value of `flag` on the run's command line, in order.
fn recorded_values<'a>(command_line: &'a [String], flag: &str) -> Vec<&'a str> {
    let mut values = Vec::new();
    let mut args = command_line.iter();
    while let Some(arg) = args.next() {
        match arg.strip_prefix(flag) {
            Some("") => values.extend(args.next().map(String::as_str)),
            Some(rest) if rest.starts_with('=') => values.push(&rest[1..]),
            _ => {}
        }
    }
    values
}

/// The `--restore` of the run's command line (`auto` when it has none),
/// so that a resumed run restores as the run would have.
fn recorded_restore(events: &[Event]) -> RestorePolicy {
    let command_line = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted { command_line, .. } => Some(command_line.as_slice()),
        _ => None,
    });
    let mut value = None;
    let mut args = command_line.unwrap_or_default().iter();
    while let Some(arg) = args.next() {
        if arg == "--restore" {
            value = args.next().map(String::as_str);
        } else if let Some(given) = arg.strip_prefix("--restore=") {
            value = Some(given);
        }
    }
    match value {
        Some("always") => RestorePolicy::Always,
        Some("never") => RestorePolicy::Never,
        _ => RestorePolicy::Auto,
    }
}

/// The run directory `run` names: a directory holding `events.jsonl`, a
/// run id under `.kkrun/runs/`, or `latest` (the default).
fn find_run_dir(cwd: &Path, run: Option<&str>) -> Result<PathBuf, Error> {
    let runs = cwd.join(DEFAULT_RUNS_DIR);
    let given = run.unwrap_or("latest");
    let as_path = cwd.join(given);
    if run.is_some() && as_path.join("events.jsonl").is_file() {
        return Ok(as_path);
    }
    // `latest` is resolved in one place: the pointer, else the newest run
    // directory (a run killed before it pointed it).
    let id = if given == catalog::LATEST {
        catalog::resolve_run_id(given, std::slice::from_ref(&runs)).map_err(|_| {
            Error::InvalidInput(format!(
                "nothing to resume: {} holds no run directory (hint: name one, e.g. `kkrun \
                 resume .kkrun/runs/<run-id>` or an --out directory)",
                runs.display()
            ))
        })?
    } else {
        given.to_string()
    };
    let by_id = runs.join(&id);
    if by_id.join("events.jsonl").is_file() {
        return Ok(by_id.canonicalize().unwrap_or(by_id));
    }
    if given == catalog::LATEST {
        // A run killed between creating its directory and its first event.
        return Err(Error::InvalidInput(format!(
            "{}: no events.jsonl: the run was killed before it started, so nothing ran and \
             there is nothing to resume (hint: run the task files again, e.g. `kkrun \
             tasks/*.yaml`)",
            by_id.display()
        )));
    }
    let known: Vec<String> = std::fs::read_dir(&runs)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("events.jsonl").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name != "latest")
        .collect();
    Err(Error::InvalidInput(format!(
        "no run \"{given}\": neither {} nor {} holds an events.jsonl (hint: runs here: {})",
        as_path.display(),
        by_id.display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
}

/// Every event of the run directory's stream; a last line the killed
/// process did not finish writing is left out.
fn read_events(run_dir: &Path) -> Result<Vec<Event>, Error> {
    let path = run_dir.join("events.jsonl");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut events = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            Err(_) if index + 1 == lines.len() && !line.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::InvalidInput(format!(
                    "{}:{}: not a kkrun event: {e} (hint: the file must be the events.jsonl a run \
                     wrote, unedited)",
                    path.display(),
                    index + 1
                )));
            }
        }
    }
    if events.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no events: the run was killed before it started, so nothing ran and there is \
             nothing to resume (hint: run the task files again, e.g. `kkrun tasks/*.yaml`)",
            path.display()
        )));
    }
    Ok(events)
}

/// The run's tasks, in run order, loaded again from the files the run
/// named, each with the model it ran with.
fn load_tasks(
    cwd: &Path,
    histories: &[crate::resume::TaskHistory],
    models: &[&str],
) -> Result<Vec<Task>, Error> {
    // Only a command-line matrix needs them: a single `--model` is in each
    // task's history already.
    let model_overrides: Vec<String> = if models.len() > 1 {
        models.iter().map(|m| m.to_string()).collect()
    } else {
        Vec::new()
    };
    let mut tasks = Vec::with_capacity(histories.len());
    for history in histories {
        let Some(file) = &history.file else {
            return Err(Error::InvalidInput(format!(
                "cannot resume: the run's events do not say which file task `{}` came from \
                 (events.jsonl is incomplete; start a new run)",
                history.name
            )));
        };
        let path = cwd.join(file);
        if !path.is_file() {
            return Err(Error::InvalidInput(format!(
                "cannot resume task `{}`: its task file {} is not there (hint: run `kkrun resume` \
                 from the directory the run was started in)",
                history.name,
                path.display()
            )));
        }
        let options = crate::task::LoadOptions {
            model_overrides: &model_overrides,
            require_model: false,
        };
        let loaded = crate::task::load_tasks_with(&[path.display().to_string()], &options)
            .map_err(|errors| {
                Error::InvalidInput(format!(
                    "cannot resume task `{}`: its task file no longer loads:\n{}",
                    history.name,
                    errors.render(false)
                ))
            })?;
        let Some(mut task) = loaded.into_iter().find(|t| t.name == history.name) else {
            return Err(Error::InvalidInput(format!(
                "cannot resume task `{}`: {file} no longer defines it (hint: the task file changed \
                 since the run; start a new run)",
                history.name
            )));
        };
        let checks: Vec<(String, String)> = task
            .checks
            .iter()
            .map(|c| (c.name.clone(), c.run.clone()))
            .collect();
        if checks != history.checks {
            return Err(Error::InvalidInput(format!(
                "cannot resume task `{}`: the checks in {file} changed since the run (hint: a \
                 resumed task must be judged by the checks it started with; start a new run)",
                history.name
            )));
        }
        task.model = history.model.clone().or(task.model);
        tasks.push(task);
    }
    Ok(tasks)
}

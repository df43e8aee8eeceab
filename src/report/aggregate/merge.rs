//! `kkrun report merge DIR... --out DIR`: one run from the run directories
//! of a CI matrix's shards.
//!
//! The shards' event streams become one stream — a `run.started` naming the
//! full task set and the shards, every shard's events with their times put
//! on one clock, a `task.finished` (`error`) for each task no shard ran, and
//! a `run.finished` with the combined exit code — which is written as the
//! merged directory's `events.jsonl` and read by the one [`Aggregator`]. So
//! the merged reports come from events like any run's, and `kkrun report
//! rebuild` reproduces them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::Aggregator;
use super::rebuild::read_events;
use crate::error::Error;
use crate::events::{
    EVENTS_SCHEMA_VERSION, Event, EventKind, MergeRecord, MergedShard, TaskOutcome,
};
use crate::exit_codes;
use crate::report::Report;

/// The reason given to a task of the full set that no shard ran.
pub const MISSING_REASON: &str = "missing from every shard: no run directory given to `kkrun \
     report merge` ran it (a shard's job may have failed before uploading its run directory, or a \
     directory was left off the command line)";

/// What [`merge`] did.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The report written.
    pub report: Report,
    /// Tasks no shard ran (reported as `error`).
    pub missing_tasks: Vec<String>,
    /// Shards whose event stream ends without `run.finished`.
    pub unfinished_shards: Vec<String>,
}

/// One shard's stream and what its `run.started` says.
struct Shard {
    dir: String,
    path: PathBuf,
    run_id: String,
    kkrun_version: String,
    tasks: Vec<String>,
    all_tasks: Vec<String>,
    partition: Option<String>,
    shard_number: u32,
    started: jiff::Timestamp,
    exit_code: Option<i32>,
    events: Vec<Event>,
}

/// Merges the run directories `dirs` into `out`: `events.jsonl`,
/// `report.json`, `junit.xml`, `summary.md` (and `findings.sarif` when a
/// shard hunted bugs), plus each task's files. Refuses (exit 2, writing
/// nothing) directories of different task sets or kkrun versions, and a
/// task that two of them ran.
pub fn merge(dirs: &[PathBuf], out: &Path, command_line: Vec<String>) -> Result<Merged, Error> {
    if dirs.is_empty() {
        return Err(Error::InvalidInput(
            "report merge: no run directories given (hint: name every shard's run directory)"
                .to_string(),
        ));
    }
    let mut shards = dirs
        .iter()
        .map(|dir| read_shard(dir))
        .collect::<Result<Vec<_>, _>>()?;
    // Shard order, not argument order, so a shell glob's order or a
    // reordered command line gives the same merged files.
    shards.sort_by(|a, b| {
        (a.shard_number, &a.run_id, &a.dir).cmp(&(b.shard_number, &b.run_id, &b.dir))
    });
    check_versions(&shards)?;
    let all_tasks = check_task_sets(&shards)?;
    check_duplicates(&shards)?;
    let earlier = check_out(out, &shards)?;

    let ran: BTreeSet<&str> = shards
        .iter()
        .flat_map(|s| s.tasks.iter().map(String::as_str))
        .collect();
    let missing_tasks: Vec<String> = all_tasks
        .iter()
        .filter(|t| !ran.contains(t.as_str()))
        .cloned()
        .collect();
    let unfinished_shards = shards
        .iter()
        .filter(|s| s.exit_code.is_none())
        .map(|s| s.dir.clone())
        .collect();

    let events = merged_stream(&shards, all_tasks, &missing_tasks, command_line);
    let mut aggregator = Aggregator::new();
    for event in &events {
        aggregator.on_event(event);
    }
    let report = aggregator.report();

    remove_earlier(&earlier)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let mut jsonl = String::new();
    for event in &events {
        let line = serde_json::to_string(event)
            .map_err(|e| Error::io("serializing events.jsonl", e.into()))?;
        jsonl.push_str(&line);
        jsonl.push('\n');
    }
    crate::report::write_atomic(&out.join("events.jsonl"), jsonl.as_bytes())?;
    for shard in &shards {
        for task in &shard.tasks {
            let from = shard.path.join(task);
            if from.is_dir() {
                copy_dir(&from, &out.join(task))?;
            }
        }
    }
    crate::report::write_all(out, &report)?;
    Ok(Merged {
        report,
        missing_tasks,
        unfinished_shards,
    })
}

/// Reads one run directory's stream and its `run.started`.
fn read_shard(dir: &Path) -> Result<Shard, Error> {
    let stream = read_events(dir)?;
    let shown = dir.display().to_string();
    let first = &stream.events[0];
    let EventKind::RunStarted {
        run_id,
        kkrun_version,
        tasks,
        partition,
        merged,
        ..
    } = &first.kind
    else {
        return Err(Error::InvalidInput(format!(
            "{shown}/events.jsonl: the first event is not run.started (hint: give run directories \
             that kkrun wrote, unedited)"
        )));
    };
    if merged.is_some() {
        return Err(Error::InvalidInput(format!(
            "{shown}: this is already a merged run directory (hint: merge the shards' own run \
             directories, all of them at once)"
        )));
    }
    let started = first.ts.parse::<jiff::Timestamp>().map_err(|e| {
        Error::InvalidInput(format!(
            "{shown}/events.jsonl:1: run.started has the time `{}`, which is not RFC 3339: {e}",
            first.ts
        ))
    })?;
    let all_tasks = partition
        .as_ref()
        .map_or_else(|| tasks.clone(), |p| p.all_tasks.clone());
    // Task names become directory names of the merged run: a downloaded
    // artifact must not name a path outside it.
    if let Some(bad) = tasks.iter().chain(&all_tasks).find(|t| !is_plain_name(t)) {
        return Err(Error::InvalidInput(format!(
            "{shown}/events.jsonl:1: run.started names the task `{bad}`, which is not a plain file \
             name (hint: give run directories that kkrun wrote, unedited)"
        )));
    }
    let exit_code = stream.events.iter().rev().find_map(|e| match e.kind {
        EventKind::RunFinished { exit_code, .. } => Some(exit_code),
        _ => None,
    });
    Ok(Shard {
        dir: shown,
        path: dir.to_path_buf(),
        run_id: run_id.clone(),
        kkrun_version: kkrun_version.clone(),
        tasks: tasks.clone(),
        all_tasks,
        partition: partition.as_ref().map(|p| p.spec.clone()),
        shard_number: partition.as_ref().map_or(0, |p| p.shard),
        started,
        exit_code,
        events: stream.events,
    })
}

/// Whether `name` is one plain path component (what a task's directory in
/// a run directory is named after).
fn is_plain_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(std::path::Component::Normal(_)))
        && components.next().is_none()
        && !name.contains(['/', '\\'])
}

/// Every shard was written by the same kkrun version.
fn check_versions(shards: &[Shard]) -> Result<(), Error> {
    let versions: BTreeSet<&str> = shards.iter().map(|s| s.kkrun_version.as_str()).collect();
    if versions.len() <= 1 {
        return Ok(());
    }
    let list = shards
        .iter()
        .map(|s| format!("{} (kkrun {})", s.dir, s.kkrun_version))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Error::InvalidInput(format!(
        "report merge: the run directories were written by different kkrun versions: {list} \
         (hint: run every shard with the same kkrun release)"
    )))
}

/// Every shard was cut from the same full task set; returns it in run order.
fn check_task_sets(shards: &[Shard]) -> Result<Vec<String>, Error> {
    let first = &shards[0];
    let expected: BTreeSet<&String> = first.all_tasks.iter().collect();
    for shard in &shards[1..] {
        let set: BTreeSet<&String> = shard.all_tasks.iter().collect();
        if set == expected {
            continue;
        }
        let only = |a: &BTreeSet<&String>, b: &BTreeSet<&String>| {
            let names: Vec<&str> = a.difference(b).map(|s| s.as_str()).collect();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        return Err(Error::InvalidInput(format!(
            "report merge: {} and {} come from different task sets (only in the first: {}; only \
             in the second: {}) (hint: merge the shards of one run, every shard given the same \
             task files)",
            first.dir,
            shard.dir,
            only(&expected, &set),
            only(&set, &expected)
        )));
    }
    Ok(first.all_tasks.clone())
}

/// No task was run by two shards: which result would count is unknowable.
fn check_duplicates(shards: &[Shard]) -> Result<(), Error> {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for shard in shards {
        for task in &shard.tasks {
            if let Some(other) = owner.insert(task, &shard.dir) {
                return Err(Error::InvalidInput(format!(
                    "report merge: task `{task}` was run by both {other} and {} (hint: give each \
                     shard's run directory once, from runs of one --partition kind and shard \
                     count)",
                    shard.dir
                )));
            }
        }
    }
    Ok(())
}

/// The files of an earlier merge in `out` (to remove before writing), when
/// `out` may be written: it is absent, empty, or an earlier merge's output.
/// Never a shard, a run's own directory, or a directory of other files.
fn check_out(out: &Path, shards: &[Shard]) -> Result<Vec<PathBuf>, Error> {
    let refuse = |why: String| {
        Err(Error::InvalidInput(format!(
            "--out {}: {why} (hint: name a new directory, e.g. --out merged)",
            out.display()
        )))
    };
    if let Ok(out_real) = out.canonicalize() {
        for shard in shards {
            if shard.path.canonicalize().is_ok_and(|p| p == out_real) {
                return refuse(format!("that is the run directory {}", shard.dir));
            }
        }
    }
    if !out.exists() {
        return Ok(Vec::new());
    }
    if !out.is_dir() {
        return refuse("that is not a directory".to_string());
    }
    let mut entries =
        std::fs::read_dir(out).map_err(|e| Error::io(format!("reading {}", out.display()), e))?;
    if entries.next().is_none() {
        return Ok(Vec::new());
    }
    if !out.join("events.jsonl").exists() {
        return refuse("that holds files that are not an earlier merge".to_string());
    }
    // An earlier merge is replaced whole, so none of its tasks' files stay
    // behind to be mistaken for this merge's; a run's own record never is.
    let earlier = read_events(out).ok().and_then(|s| match &s.events[0].kind {
        EventKind::RunStarted {
            merged: Some(_),
            tasks,
            ..
        } => Some(tasks.clone()),
        _ => None,
    });
    let Some(tasks) = earlier else {
        return refuse("that holds a run's record, which the merge would replace".to_string());
    };
    let mut files: Vec<PathBuf> = ["events.jsonl", "report.json", "junit.xml", "summary.md"]
        .iter()
        .chain(&[crate::report::SARIF_FILE])
        .map(|name| out.join(name))
        .collect();
    files.extend(tasks.iter().map(|task| out.join(task)));
    Ok(files)
}

/// Removes an earlier merge's files and task directories.
fn remove_earlier(files: &[PathBuf]) -> Result<(), Error> {
    for path in files {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
        }
    }
    Ok(())
}

/// The merged run's events (see the module's documentation).
fn merged_stream(
    shards: &[Shard],
    all_tasks: Vec<String>,
    missing_tasks: &[String],
    command_line: Vec<String>,
) -> Vec<Event> {
    let earliest = shards
        .iter()
        .min_by_key(|s| s.started)
        .unwrap_or(&shards[0]);
    let start = earliest.started;
    let record = MergeRecord {
        shards: shards
            .iter()
            .map(|s| MergedShard {
                dir: s.dir.clone(),
                run_id: s.run_id.clone(),
                partition: s.partition.clone(),
                exit_code: s.exit_code,
                tasks: s.tasks.clone(),
            })
            .collect(),
        missing_tasks: missing_tasks.to_vec(),
    };
    let mut events = vec![Event {
        ts: earliest.events[0].ts.clone(),
        elapsed_ms: 0,
        task: None,
        stage: None,
        kind: EventKind::RunStarted {
            schema_version: EVENTS_SCHEMA_VERSION,
            run_id: format!("{}-merged", earliest.run_id),
            kkrun_version: earliest.kkrun_version.clone(),
            tasks: all_tasks,
            command_line,
            partition: None,
            merged: Some(record),
            // Each shard judged its findings already; nothing resumes a
            // merged run.
            baseline_findings: None,
        },
    }];
    // The end: the latest event of any shard, on the merged clock.
    let mut end: Option<(u64, String)> = None;
    for shard in shards {
        // Shards started at different times: each one's elapsed times are
        // moved by its start's distance from the earliest start.
        let offset = u64::try_from(shard.started.duration_since(start).as_millis()).unwrap_or(0);
        for event in &shard.events {
            let elapsed_ms = event.elapsed_ms.saturating_add(offset);
            if end.as_ref().is_none_or(|(ms, _)| elapsed_ms >= *ms) {
                end = Some((elapsed_ms, event.ts.clone()));
            }
            if matches!(
                event.kind,
                EventKind::RunStarted { .. } | EventKind::RunFinished { .. }
            ) {
                continue;
            }
            let mut event = event.clone();
            event.elapsed_ms = elapsed_ms;
            events.push(event);
        }
    }
    let (end_ms, end_ts) = end.unwrap_or((0, earliest.events[0].ts.clone()));
    let at_end = |task: Option<String>, kind: EventKind| Event {
        ts: end_ts.clone(),
        elapsed_ms: end_ms,
        task,
        stage: None,
        kind,
    };
    for task in missing_tasks {
        events.push(at_end(
            Some(task.clone()),
            EventKind::TaskFinished {
                outcome: TaskOutcome::Error,
                reason: MISSING_REASON.to_string(),
                usage: Default::default(),
                cost_usd: None,
                duration_ms: 0,
                output: None,
            },
        ));
    }
    // The tasks' outcomes as the aggregator sees them (an unfinished shard's
    // unfinished task is `interrupted`), and every shard's own exit code,
    // which also carries what no task shows (reports that failed to write).
    let mut aggregator = Aggregator::new();
    for event in &events {
        aggregator.on_event(event);
    }
    let outcomes: Vec<TaskOutcome> = aggregator
        .report()
        .tasks
        .iter()
        .map(|t| t.outcome)
        .collect();
    let exit_code = exit_codes::combine(
        outcomes
            .iter()
            .map(|o| o.exit_code())
            .chain(shards.iter().filter_map(|s| s.exit_code)),
    );
    let passed = outcomes
        .iter()
        .filter(|&&o| o == TaskOutcome::Passed)
        .count();
    events.push(at_end(
        None,
        EventKind::RunFinished {
            exit_code,
            passed,
            not_passed: outcomes.len() - passed,
        },
    ));
    events
}

/// Copies a task's directory of a shard (plan, transcript, final.patch)
/// into the merged directory; symbolic links are not followed.
fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let entries =
        std::fs::read_dir(from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).map_err(|e| {
                Error::io(
                    format!("copying {} to {}", entry.path().display(), target.display()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn only_plain_names_are_task_directories() {
        for good in ["fix-iso-weeks", "a", "task@openai-gpt-4.1"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "/abs", "a\\b"] {
            assert!(!is_plain_name(bad), "{bad}");
        }
    }
}

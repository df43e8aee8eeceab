//! `kkrun runs fsck`: checks every run directory against its own event
//! stream and the repository's snapshot refs, and finds what belongs to no
//! run (refs, worktrees). Each problem comes with the command that fixes it.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::catalog::{self, RecordSource};
use crate::error::Error;
use crate::report::aggregate::{self, Aggregator};
use crate::snapshot::{SnapshotStore, WorktreeState};

/// One thing wrong in the run store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The run it concerns; `null` for a worktree no run directory names.
    pub run_id: Option<String>,
    /// A stable name for the kind of problem: `no_events`,
    /// `events_unreadable`, `torn_last_line`, `incomplete`,
    /// `report_missing`, `report_unreadable`, `report_disagrees`,
    /// `ref_missing`, `ref_moved`, `no_refs`, `orphan_refs`,
    /// `stale_worktree`.
    pub kind: &'static str,
    /// What is wrong, naming the file or ref.
    pub message: String,
    /// The command that fixes it.
    pub fix: String,
}

/// Checks the run directories in `runs_dir` and the snapshot refs and
/// kkrun worktrees of `store`'s repository. `git` is how the fixes call git
/// (`git`, or `git -C DIR` when the repository is not the current
/// directory's).
pub fn fsck(runs_dir: &Path, store: &SnapshotStore, git: &str) -> Result<Vec<Problem>, Error> {
    let mut problems = Vec::new();
    let ref_runs = store.runs()?;
    let mut dir_ids = BTreeSet::new();
    for (run_id, dir) in catalog::run_dirs(runs_dir) {
        dir_ids.insert(run_id.clone());
        check_run(&run_id, &dir, store, git, &mut problems)?;
    }
    for run in &ref_runs {
        if !dir_ids.contains(&run.run_id) {
            problems.push(Problem {
                run_id: Some(run.run_id.clone()),
                kind: "orphan_refs",
                message: format!(
                    "refs/kkrun/{}/ has snapshots of {} task(s) but {} has no such run directory \
                     (a run written with --out elsewhere looks like this too)",
                    run.run_id,
                    run.tasks.len(),
                    runs_dir.display()
                ),
                fix: delete_refs(git, &run.run_id),
            });
        }
    }
    for worktree in crate::snapshot::kkrun_worktrees(store)? {
        if let WorktreeState::Stale(pid) = worktree.state {
            problems.push(Problem {
                run_id: None,
                kind: "stale_worktree",
                message: format!(
                    "{}: an isolated worktree left by a killed run (process {pid} is gone)",
                    worktree.root.display()
                ),
                fix: format!("{git} worktree remove -f -f {}", quote(&worktree.root)),
            });
        }
    }
    Ok(problems)
}

/// The checks of one run directory.
fn check_run(
    run_id: &str,
    dir: &Path,
    store: &SnapshotStore,
    git: &str,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut push = |kind, message: String, fix: String| {
        problems.push(Problem {
            run_id: Some(run_id.to_string()),
            kind,
            message,
            fix,
        })
    };
    // A run in progress has no final record or report yet: nothing of it
    // is a problem.
    if crate::lock::run_holder(dir).is_some() {
        return Ok(());
    }
    let events_path = dir.join("events.jsonl");
    if !events_path.is_file() {
        push(
            "no_events",
            format!(
                "{}: missing: the run was killed before its first event",
                events_path.display()
            ),
            format!("rm -r {}", quote(dir)),
        );
        return Ok(());
    }
    let stream = match aggregate::read_events(dir) {
        Ok(stream) => stream,
        Err(e) => {
            push(
                "events_unreadable",
                e.to_string(),
                format!("rm -r {}", quote(dir)),
            );
            return Ok(());
        }
    };
    let mut aggregator = Aggregator::new();
    for event in &stream.events {
        aggregator.on_event(event);
    }
    let complete = aggregator.is_finished();
    let rebuilt = aggregator.report();
    if stream.torn_last_line {
        push(
            "torn_last_line",
            format!(
                "{}:{}: the last line was cut off mid-write (the process was killed)",
                events_path.display(),
                stream.events.len() + 1
            ),
            format!("kkrun resume {run_id}"),
        );
    } else if !complete {
        push(
            "incomplete",
            format!(
                "{}: ends without run.finished: the run was killed (or is still running)",
                events_path.display()
            ),
            format!("kkrun resume {run_id}"),
        );
    }
    let record = catalog::read_run(run_id, dir);
    let report_path = dir.join("report.json");
    match record.source {
        Some(RecordSource::Report) => {
            let on_disk = record.report.as_ref().map(serde_json::to_value);
            let expected = serde_json::to_value(&rebuilt);
            let agrees = matches!((on_disk, expected), (Some(Ok(a)), Ok(b)) if a == b);
            if !agrees {
                push(
                    "report_disagrees",
                    format!(
                        "{}: differs from the report its events.jsonl gives",
                        report_path.display()
                    ),
                    format!("kkrun report rebuild {}", quote(dir)),
                );
            }
        }
        _ if report_path.is_file() => push(
            "report_unreadable",
            format!("{}: not a kkrun report", report_path.display()),
            format!("kkrun report rebuild {}", quote(dir)),
        ),
        _ if complete => push(
            "report_missing",
            format!("{}: missing though the run finished", report_path.display()),
            format!("kkrun report rebuild {}", quote(dir)),
        ),
        _ => {}
    }
    check_refs(run_id, &rebuilt, store, git, &mut push)
}

/// The snapshot refs the run's events name must exist and point at the
/// commits recorded.
fn check_refs(
    run_id: &str,
    report: &crate::report::Report,
    store: &SnapshotStore,
    git: &str,
    push: &mut impl FnMut(&'static str, String, String),
) -> Result<(), Error> {
    let repo = store.repo()?;
    let named: Vec<&crate::report::SnapshotReport> = report
        .tasks
        .iter()
        .flat_map(|task| task.snapshots.iter())
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let present = named
        .iter()
        .filter(|s| repo.find_reference(&s.ref_name).is_ok())
        .count();
    if present == 0
        && named.iter().all(|s| {
            git2::Oid::from_str(&s.commit)
                .ok()
                .and_then(|oid| repo.find_commit(oid).ok())
                .is_none()
        })
    {
        push(
            "no_refs",
            format!(
                "none of the run's {} snapshot(s) is left in the repository (its refs were removed)",
                named.len()
            ),
            format!("kkrun runs gc --run {run_id}"),
        );
        return Ok(());
    }
    for snapshot in named {
        match repo.find_reference(&snapshot.ref_name) {
            Ok(reference) => {
                let target = reference.target().map(|oid| oid.to_string());
                if target.as_deref() != Some(snapshot.commit.as_str()) {
                    push(
                        "ref_moved",
                        format!(
                            "{} points at {} but the run recorded {}",
                            snapshot.ref_name,
                            target.unwrap_or_else(|| "nothing".into()),
                            snapshot.commit
                        ),
                        format!("{git} update-ref {} {}", snapshot.ref_name, snapshot.commit),
                    );
                }
            }
            Err(_) => {
                let object_left = git2::Oid::from_str(&snapshot.commit)
                    .ok()
                    .and_then(|oid| repo.find_commit(oid).ok())
                    .is_some();
                let fix = if object_left {
                    format!("{git} update-ref {} {}", snapshot.ref_name, snapshot.commit)
                } else {
                    format!("kkrun runs gc --run {run_id}")
                };
                push(
                    "ref_missing",
                    format!(
                        "{} is missing{}",
                        snapshot.ref_name,
                        if object_left {
                            " (its commit is still in the repository)"
                        } else {
                            " and its commit is gone: the snapshot is lost"
                        }
                    ),
                    fix,
                );
            }
        }
    }
    Ok(())
}

/// The command that deletes every ref of run `run_id`.
fn delete_refs(git: &str, run_id: &str) -> String {
    format!(
        "{git} for-each-ref --format='delete %(refname)' refs/kkrun/{run_id}/ | {git} update-ref \
         --stdin"
    )
}

/// `path` quoted for a POSIX shell when it needs it.
pub(crate) fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

//! `--apply`: once every task has run, the passing tasks' changes are
//! written into the user's work tree, in task order, stopping at the first
//! that cannot be applied (see [`crate::snapshot::SnapshotStore::apply`]).

use crate::events::TaskOutcome;
use crate::exit_codes;
use crate::snapshot::{SnapshotError, SnapshotStore};
use crate::task::Task;

/// What `--apply` did.
#[derive(Debug, Default)]
pub(super) struct ApplyResult {
    /// What each applied task wrote, for the console.
    pub(super) applied: Vec<String>,
    /// Why it stopped, when it did: the conflict (or failure) and the
    /// passing tasks left unapplied.
    pub(super) stopped: Option<String>,
    /// The exit code the stop adds to the run's (2 for a conflict).
    pub(super) exit_code: i32,
}

/// Applies the changes of the tasks that passed, in task order; `tasks`
/// are the tasks as planned (their workspaces in the user's work tree).
pub(super) fn apply_passing(
    run_id: &str,
    tasks: &[Task],
    outcomes: &[TaskOutcome],
    wait_lock: Option<std::time::Duration>,
) -> ApplyResult {
    let mut result = ApplyResult {
        exit_code: exit_codes::SUCCESS,
        ..ApplyResult::default()
    };
    let passing: Vec<&Task> = tasks
        .iter()
        .zip(outcomes)
        .filter(|(_, outcome)| **outcome == TaskOutcome::Passed)
        .map(|(task, _)| task)
        .collect();
    for (position, task) in passing.iter().enumerate() {
        // The user's work tree is shared: the apply takes its lock.
        let store = match SnapshotStore::open(&task.workspace) {
            Ok(store) => store,
            Err(e) => {
                result.exit_code = e.exit_code();
                result.stopped = Some(format!("--apply stopped: {e}"));
                break;
            }
        };
        let mut notices = Vec::new();
        let lock = crate::lock::acquire(
            store.git_dir(),
            store.workdir(),
            run_id,
            "apply",
            wait_lock,
            &mut notices,
        );
        result.applied.extend(notices);
        let _lock = match lock {
            Ok(lock) => lock,
            Err(e) => {
                result.exit_code = e.exit_code();
                result.stopped = Some(format!("--apply stopped: {e}"));
                break;
            }
        };
        let applied = store.apply(run_id, &task.name);
        match applied {
            Ok(applied) => result.applied.push(applied.describe(run_id, &task.name)),
            Err(e) => {
                let rest: Vec<&str> = passing[position + 1..]
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                let what = match e {
                    SnapshotError::ApplyConflict { .. } => "stopped at a conflict",
                    _ => "stopped",
                };
                result.stopped = Some(format!(
                    "--apply {what}: {e}{}",
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!("; not applied either: {}", rest.join(", "))
                    }
                ));
                result.exit_code = e.exit_code();
                break;
            }
        }
    }
    result
}

//! The end of a task, whatever its outcome: the patch and the changed
//! files, the restore to `00-base` when asked, and `task.finished`.

use std::time::Instant;

use super::task_run::{TaskRun, announce_snapshot};
use crate::events::{ArtifactKind, EventKind, TaskOutcome};
use crate::task::OnFailure;

impl TaskRun<'_, '_> {
    /// Records the work, restores if asked and announces the outcome.
    pub(super) fn finish(self, outcome: TaskOutcome, reason: String) {
        // The patch and file list describe the agent's work, so they are
        // taken before any restore.
        if let Some(diff) = self.diff_from_base() {
            self.events.emit(EventKind::DiffComputed {
                files_changed: diff.files.clone(),
            });
            if let Err(e) =
                self.write_artifact(ArtifactKind::Patch, "final.patch", diff.patch.as_bytes())
            {
                self.events.emit(EventKind::Warning {
                    message: e.to_string(),
                });
            }
        }

        let failed = matches!(
            outcome,
            TaskOutcome::Failed | TaskOutcome::BudgetExhausted | TaskOutcome::TimedOut
        );
        let restore_why = if failed && self.task.on_failure == OnFailure::Rollback {
            Some("on_failure: rollback")
        } else if self.env.restore_after && outcome != TaskOutcome::Interrupted {
            Some("the next task starts from the same base")
        } else {
            None
        };
        if let (Some(why), Some(store), Some(base)) =
            (restore_why, &self.store, self.snapshots.first())
        {
            match store.restore(self.env.run_id, &self.task.name, base) {
                Ok(safety) => {
                    announce_snapshot(&self.events, &safety);
                    self.events.emit(EventKind::WorkspaceRestored {
                        reason: why.to_string(),
                    });
                }
                Err(e) => self.events.emit(EventKind::Warning {
                    message: format!("restoring 00-base failed: {}", crate::error::chain(&e)),
                }),
            }
        }

        self.events.emit(EventKind::TaskFinished {
            outcome,
            reason,
            usage: self.budget.usage(),
            cost_usd: self.budget.cost_usd(),
            duration_ms: millis(self.started),
            output: self.output,
        });
    }
}

/// Milliseconds since `since`.
pub(super) fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

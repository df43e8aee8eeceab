//! A resumed task: the work tree put back to the last snapshot its
//! completed steps took, the budget charged with what every attempt spent,
//! and those steps handed back to the pipeline instead of being done again.
//!
//! The pipeline runs its usual course; each step it reaches first asks
//! [`TaskRun::take_step`] whether the stream already holds it. While it
//! does, nothing runs and nothing is announced again (the report keeps the
//! first attempt's events); from the first step that does not, everything
//! runs live, the replay cassette included, which [`TaskRun::resume_from`]
//! moved to the exchange that step asked for first.

use std::time::{Duration, Instant};

use super::task_run::{TaskRun, announce_snapshot};
use super::{Stop, finish};
use crate::agent::BudgetTracker;
use crate::events::{EventKind, StageEndKind, TaskOutcome};
use crate::resume::{Step, TaskHistory};
use crate::snapshot::SnapshotInfo;
use crate::task::Stage;

impl TaskRun<'_, '_> {
    /// Makes this run continue `history`: announces `task.resumed`, puts
    /// the work tree back to the last kept snapshot (after a safety
    /// snapshot, unless it is already there), and takes over the steps,
    /// the budget spent, the findings and the replay position.
    pub(super) fn resume_from(
        &mut self,
        history: &TaskHistory,
        sandbox: crate::sandbox::SandboxStatus,
        base_commit: Option<String>,
    ) -> Result<(), Stop> {
        let (usage, cost, millis) = history.spent();
        self.started = Instant::now()
            .checked_sub(Duration::from_millis(millis))
            .unwrap_or_else(Instant::now);
        let mut budget = BudgetTracker::starting_at(&self.task.budget, self.started);
        budget.record(usage, cost);
        self.budget = budget;
        let last = history.last_snapshot();
        self.events.emit(EventKind::TaskResumed {
            kept_events: history.kept_events,
            from_snapshot: last.map(|s| s.ref_name.clone()),
            after: history.after(),
            replay_position: history.replay_position,
            previous: history.last_attempt.clone(),
            base_commit,
            sandbox: Some(sandbox),
            worktree: self.env.worktree.map(|root| root.display().to_string()),
        });
        self.env.provider.resume_replay_at(history.replay_position);
        self.transcript_announced = history.transcript;
        self.reproduced = history.reproduced;
        if let Some(desk) = &self.desk {
            desk.replace(history.findings.clone());
        }
        self.memo = history.steps.clone();
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let existing = store
            .list(self.env.run_id, &self.task.name)
            .map_err(|e| Stop::error("cannot list the task's snapshots", &e))?;
        let find = |ref_name: &str| -> Result<SnapshotInfo, Stop> {
            existing
                .iter()
                .find(|s| s.ref_name == ref_name)
                .cloned()
                .ok_or_else(|| {
                    Stop::new(
                        TaskOutcome::Error,
                        format!(
                            "cannot resume: snapshot {ref_name}, which the run's events name, is gone \
                             (hint: it was removed, e.g. by `kkrun gc`; start a new run)"
                        ),
                    )
                })
        };
        for step in &history.steps {
            let snapshot = match step {
                Step::Base(snapshot) => Some(snapshot),
                Step::Stage { snapshot, .. } => snapshot.as_ref(),
                _ => None,
            };
            if let Some(snapshot) = snapshot {
                self.snapshots.push(find(&snapshot.ref_name)?);
            }
        }
        let Some(target) = self.snapshots.last().cloned() else {
            return Ok(());
        };
        let unchanged = store
            .diff(&target, None)
            .map(|diff| diff.files.is_empty())
            .unwrap_or(false);
        if !unchanged {
            let safety = store
                .restore(self.env.run_id, &self.task.name, &target)
                .map_err(|e| Stop::error(&format!("cannot restore {}", target.ref_name), &e))?;
            announce_snapshot(&self.events, &safety);
        }
        Ok(())
    }

    /// Whether steps of the stream remain to be handed back.
    pub(super) fn replaying(&self) -> bool {
        !self.memo.is_empty()
    }

    /// The next recorded step when it is `wanted`; `None` once every
    /// recorded step was handed back. A recorded step the pipeline does not
    /// reach in its order means the task is not the one that ran.
    pub(super) fn take_step(
        &mut self,
        wanted: impl Fn(&Step) -> bool,
        what: &str,
    ) -> Result<Option<Step>, Stop> {
        let Some(next) = self.memo.front() else {
            return Ok(None);
        };
        if !wanted(next) {
            return Err(Stop::new(
                TaskOutcome::Error,
                format!(
                    "cannot resume: the run's events continue with {} where the task now takes {what} \
                     (hint: the task file or the repository changed since the run; start a new run)",
                    next.describe()
                ),
            ));
        }
        Ok(self.memo.pop_front())
    }

    /// A stage the stream holds: its finishing tool and arguments.
    pub(super) fn recorded_stage(
        &mut self,
        stage: Stage,
        round: u32,
    ) -> Result<Option<(String, serde_json::Value)>, Stop> {
        let step = self.take_step(
            |step| {
                matches!(step, Step::Stage { stage: s, round: r, end, .. }
                    if *s == stage && *r == round && *end != StageEndKind::Skipped)
            },
            &format!("{stage} (round {round})"),
        )?;
        let Some(Step::Stage { end, result, .. }) = step else {
            return Ok(None);
        };
        let tool = match (stage, end) {
            (_, StageEndKind::ReturnToCode) => finish::RETURN_TO_CODE,
            (Stage::Blueprint, _) => finish::SUBMIT_PLAN,
            (Stage::Code | Stage::Debug, _) => finish::FINISH_STAGE,
            (Stage::Preview, _) => finish::SUBMIT_REVIEW,
        };
        match result {
            Some(result) => Ok(Some((tool.to_string(), result))),
            None => Err(Stop::new(
                TaskOutcome::Error,
                format!(
                    "cannot resume: the run's events do not hold the result of {stage} (they were \
                     written by a kkrun that could not resume; start a new run)"
                ),
            )),
        }
    }
}

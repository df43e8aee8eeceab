//! A task while it runs: its state, and the side effects every stage shares
//! — snapshots, the checks run by kkrun, the files written into the run
//! directory — each announced by its event.

use std::time::Instant;

use serde_json::Value;

use super::{Stop, TaskEnv};
use crate::agent::BudgetTracker;
use crate::events::{ArtifactKind, CheckPhase, EventKind, EventSink, Review, TaskOutcome};
use crate::provider::Usage;
use crate::resume::Step;
use crate::snapshot::{SnapshotDiff, SnapshotInfo, SnapshotMeta, SnapshotStore};
use crate::task::Task;
use crate::tools::ToolContext;
use crate::tools::checks::{CheckResult, run_checks};
use crate::tools::findings::FindingsDesk;

/// One task's run through the pipeline.
pub(super) struct TaskRun<'e, 'a> {
    pub(super) env: &'e TaskEnv<'a>,
    pub(super) task: &'e Task,
    pub(super) events: EventSink,
    pub(super) started: Instant,
    pub(super) budget: BudgetTracker,
    pub(super) tools: ToolContext,
    pub(super) store: Option<SnapshotStore>,
    pub(super) snapshots: Vec<SnapshotInfo>,
    pub(super) baseline: Vec<CheckResult>,
    pub(super) final_checks: Option<Vec<CheckResult>>,
    pub(super) review: Option<Review>,
    /// The review's structured output (`output_schema:`), once accepted.
    pub(super) output: Option<serde_json::Value>,
    /// `transcript.jsonl` was announced (it is written stage by stage).
    pub(super) transcript_announced: bool,
    /// The task's MCP servers, once started (their tools are in `tools`).
    pub(super) mcp: Option<std::sync::Arc<crate::mcp::McpSession>>,
    /// A bug hunt's findings; `None` for other kinds of task.
    pub(super) desk: Option<FindingsDesk>,
    /// Whether the findings' reproducers have run.
    pub(super) reproduced: bool,
    /// A resumed task's completed steps not yet handed back (see
    /// `resume.rs`); empty for a task that runs in one go.
    pub(super) memo: std::collections::VecDeque<crate::resume::Step>,
    /// The project instructions every stage's system prompt ends with.
    pub(super) instructions: crate::instructions::ProjectInstructions,
}

/// Whether a run of the checks decides the task's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decides {
    /// Never (the baseline; the checks shown to code after a loop-back).
    No,
    /// When every check passes: the debug stage is then skipped.
    IfAllPass,
    /// Always (the final run).
    Yes,
}

impl<'e, 'a> TaskRun<'e, 'a> {
    pub(super) fn new(env: &'e TaskEnv<'a>, task: &'e Task, events: EventSink) -> TaskRun<'e, 'a> {
        TaskRun {
            env,
            task,
            events,
            started: Instant::now(),
            budget: BudgetTracker::new(&task.budget),
            tools: {
                let mut tools = ToolContext::new(task);
                tools.sandbox.strict = env.require_sandbox;
                tools
            },
            store: None,
            snapshots: Vec::new(),
            baseline: Vec::new(),
            final_checks: None,
            review: None,
            output: None,
            transcript_announced: false,
            mcp: None,
            desk: None,
            reproduced: false,
            memo: std::collections::VecDeque::new(),
            instructions: Default::default(),
        }
    }

    /// Runs the reproducers of a bug hunt's findings on the untouched base
    /// (once; interruptible).
    pub(super) async fn reproduce_findings(&mut self) -> Result<(), Stop> {
        if self.reproduced {
            return Ok(());
        }
        let (Some(desk), Some(store), Some(base)) =
            (&self.desk, &self.store, self.snapshots.first())
        else {
            return Ok(());
        };
        self.reproduced = true;
        self.tools.changes.forget();
        let env = crate::findings::reproduce::ReproduceEnv {
            store: store.clone(),
            base: base.clone(),
            latest: self.snapshots.last().cloned(),
            shell: self.task.shell.clone(),
            env: self.task.env.clone(),
            timeout: super::hunt::reproduce_timeout(self.task),
        };
        let mut findings = desk.findings();
        let finished = {
            let run = super::hunt::reproduce_all(&env, &mut findings, &self.events);
            tokio::select! {
                () = run => true,
                () = self.env.interrupt.wait() => false,
            }
        };
        desk.replace(findings);
        if finished {
            Ok(())
        } else {
            Err(Stop::new(
                TaskOutcome::Interrupted,
                "interrupted while reproducing the findings",
            ))
        }
    }

    /// Opens the workspace's repository and keeps the run directory out of
    /// its snapshots; returns the base commit (`None` on an unborn branch).
    pub(super) fn open_workspace(&mut self) -> Result<Option<String>, Stop> {
        let store = SnapshotStore::open(&self.task.workspace)
            .map_err(|e| Stop::error("cannot open the workspace repository", &e))?
            .redacting(self.env.run_dir.redactor().clone())
            .tracking(self.tools.changes.clone());
        // The run directory must never be snapshotted, nor deleted by a
        // restore: `.kkrun/` is excluded here; an `--out` directory ignores
        // itself with its own `.gitignore`, so no directory of the user's is
        // ever added to `.git/info/exclude`.
        store
            .ensure_excluded(".kkrun/")
            .map_err(|e| Stop::error("cannot update .git/info/exclude", &e))?;
        let base = store
            .head_commit()
            .map_err(|e| Stop::error("cannot read HEAD", &e))?;
        if self.task.kind == crate::task::TaskKind::BugHunt {
            self.desk = Some(FindingsDesk::new(
                store.workdir(),
                self.env.baseline_findings.cloned(),
            ));
        }
        self.store = Some(store);
        Ok(base)
    }

    /// Runs the task's checks (interruptible) and reports them as `phase`.
    pub(super) async fn checks(
        &mut self,
        phase: CheckPhase,
        decides: Decides,
    ) -> Result<Vec<CheckResult>, Stop> {
        let recorded = self.take_step(
            |step| matches!(step, Step::Checks { phase: p, .. } if *p == phase),
            &format!("the {phase} checks"),
        )?;
        if let Some(Step::Checks { results, .. }) = recorded {
            return Ok(results);
        }
        // Checks are commands: they may write anywhere.
        self.tools.changes.forget();
        let results = {
            let run = run_checks(
                &self.task.checks,
                &self.task.workspace,
                &self.task.env,
                &self.tools.sandbox,
            );
            tokio::select! {
                results = run => Some(results),
                () = self.env.interrupt.wait() => None,
            }
        };
        let Some(results) = results else {
            let _ = self.snapshot("interrupted", "interrupted", Usage::default(), None);
            return Err(Stop::new(
                TaskOutcome::Interrupted,
                format!("interrupted while running the {phase} checks"),
            ));
        };
        if phase == CheckPhase::Baseline {
            for (check, result) in self.task.checks.iter().zip(&results) {
                if let Some(message) =
                    crate::tools::checks::command_not_found_warning(check, result)
                {
                    self.events.emit(EventKind::Warning { message });
                }
            }
        }
        let failed_names: Vec<String> = results
            .iter()
            .filter(|c| !c.run.passed)
            .map(|c| c.name.clone())
            .collect();
        let decides_outcome = match decides {
            Decides::No => false,
            Decides::IfAllPass => failed_names.is_empty(),
            Decides::Yes => true,
        };
        self.events.emit(EventKind::ChecksFinished {
            phase,
            passed: results.len() - failed_names.len(),
            failed: failed_names.len(),
            failed_names,
            decides_outcome,
            results: results.clone(),
        });
        Ok(results)
    }

    /// Runs the final checks after `stop`, a budget's end, when they have not
    /// run yet, so the report and JUnit say whether the work tree passes.
    /// The task still ends with `stop`'s outcome (its reason then tells the
    /// checks' result), unless an interrupt cuts the checks short.
    pub(super) async fn final_checks_after_budget(&mut self, stop: Stop) -> Result<(), Stop> {
        if self.task.checks.is_empty() || self.final_checks.is_some() {
            return Err(stop);
        }
        let results = self.checks(CheckPhase::Final, Decides::Yes).await?;
        let failed = results.iter().filter(|c| !c.run.passed).count();
        let verdict = if failed == 0 {
            "the final checks pass".to_string()
        } else {
            format!("{failed} of {} final checks fail", results.len())
        };
        self.final_checks = Some(results);
        Err(Stop::new(
            stop.outcome,
            format!("{}; {verdict}", stop.reason),
        ))
    }

    /// Takes the next snapshot of the task and announces it.
    pub(super) fn snapshot(
        &mut self,
        stage: &str,
        status: &str,
        usage: Usage,
        cost: Option<f64>,
    ) -> Result<(), Stop> {
        let Some(store) = &self.store else {
            return Err(Stop::new(TaskOutcome::Error, "no repository to snapshot"));
        };
        let meta = SnapshotMeta {
            stage: stage.to_string(),
            status: status.to_string(),
            usage: Some(usage),
            cost_usd: cost,
        };
        let info = store
            .take(self.env.run_id, &self.task.name, &meta)
            .map_err(|e| Stop::error(&format!("snapshot after {stage} failed"), &e))?;
        announce_snapshot(&self.events, &info);
        self.snapshots.push(info);
        Ok(())
    }

    /// Writes `plan.json` and announces the plan.
    pub(super) fn save_plan(&mut self, plan: &Value) -> Result<(), Stop> {
        if self
            .take_step(|step| matches!(step, Step::Plan), "the plan")?
            .is_some()
        {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(plan).unwrap_or_default();
        self.write_artifact(
            ArtifactKind::Plan,
            "plan.json",
            format!("{text}\n").as_bytes(),
        )
        .map_err(|e| Stop::error("cannot save the plan", &e))?;
        self.events
            .for_stage(crate::task::Stage::Blueprint)
            .emit(EventKind::PlanSubmitted { plan: plan.clone() });
        Ok(())
    }

    /// Writes `<task>/<name>` in the run directory and announces it.
    pub(super) fn write_artifact(
        &self,
        artifact: ArtifactKind,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), crate::error::Error> {
        let path = self
            .env
            .run_dir
            .write_task_file(&self.task.name, name, bytes)?;
        self.events
            .emit(EventKind::ArtifactWritten { artifact, path });
        Ok(())
    }

    /// The diff from `00-base` to the last snapshot.
    pub(super) fn diff_from_base(&self) -> Option<SnapshotDiff> {
        let store = self.store.as_ref()?;
        let base = self.snapshots.first()?;
        let last = self.snapshots.last()?;
        store.diff(base, Some(last)).ok()
    }
}

/// The `snapshot.taken` event of `info`.
pub(super) fn announce_snapshot(sink: &EventSink, info: &SnapshotInfo) {
    sink.emit(EventKind::SnapshotTaken {
        ref_name: info.ref_name.clone(),
        commit: info.commit.clone(),
        snapshot_stage: info.stage.clone(),
        scan: info.scan.map(|scan| scan.as_str().to_owned()),
    });
}

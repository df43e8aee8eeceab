//! One task through blueprint → code → debug → preview: stage policy,
//! prompts, the debug loop-back, snapshots after every stage, the checks run
//! by kkrun itself, and the task's outcome.

mod context;
pub mod finish;
mod hunt;
mod interrupt;
pub mod prompts;

pub use interrupt::Interrupt;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::agent::{self, BudgetTracker, StageEnd, StageRequest};
use crate::events::{EventKind, EventSink};
use crate::provider::{Message, Provider, Usage};
use crate::report::{
    Artifacts, CheckReport, CheckRun, CheckStatus, FileChangeReport, Review, SnapshotReport,
    StageReport, TaskOutcome, TaskReport, TokenUsage, Verdict,
};
use crate::snapshot::{SnapshotInfo, SnapshotMeta, SnapshotStore};
use crate::store::RunDir;
use crate::task::{OnFailure, Stage, Task, TaskKind};
use crate::tools::checks::{CheckResult, run_checks};
use crate::tools::findings::FindingsDesk;
use crate::tools::{ToolContext, ToolSet};

use finish::ReturnToCode;

/// The most diff text preview is shown; the rest is summarised.
const MAX_PREVIEW_DIFF_BYTES: usize = 80 * 1024;

/// Everything a task needs from the run around it.
pub struct TaskEnv<'a> {
    /// The run's id (snapshot refs live under it).
    pub run_id: &'a str,
    /// The run directory.
    pub run_dir: &'a RunDir,
    /// The model endpoint for this task.
    pub provider: &'a Provider,
    /// The `provider:model` spec, for reports.
    pub model_spec: &'a str,
    /// The task file as the user named it, for reports.
    pub file_display: String,
    /// The run's event sink (the task scopes it).
    pub events: &'a EventSink,
    /// Set when SIGINT/SIGTERM arrives.
    pub interrupt: &'a Interrupt,
    /// Restore `00-base` after the task whatever its outcome, so the next
    /// task starts from the same state.
    pub restore_after: bool,
    /// A previous run's findings (`--baseline-findings`), for bug hunts.
    pub baseline_findings: Option<&'a crate::findings::BaselineFindings>,
}

/// Why the pipeline stopped before its natural end.
struct Stop {
    outcome: TaskOutcome,
    reason: String,
}

impl Stop {
    fn new(outcome: TaskOutcome, reason: impl Into<String>) -> Stop {
        Stop {
            outcome,
            reason: reason.into(),
        }
    }
}

/// One line of `transcript.jsonl`.
#[derive(Serialize)]
struct TranscriptEntry<'a> {
    stage: Stage,
    round: u32,
    #[serde(flatten)]
    message: &'a Message,
}

/// Runs `task` through the pipeline and returns its report. Never fails:
/// every problem ends up as the task's outcome and reason.
pub async fn run_task(env: &TaskEnv<'_>, task: &Task) -> TaskReport {
    let events = env.events.for_task(&task.name);
    events.emit(EventKind::TaskStarted {
        file: env.file_display.clone(),
        model: env.model_spec.to_string(),
    });
    let mut run = TaskRun::new(env, task, events);
    let (outcome, reason) = match run.drive().await {
        Ok(()) => run.judge(),
        Err(stop) => (stop.outcome, stop.reason),
    };
    run.finish(outcome, reason).await
}

struct TaskRun<'e, 'a> {
    env: &'e TaskEnv<'a>,
    task: &'e Task,
    events: EventSink,
    started: Instant,
    report: TaskReport,
    budget: BudgetTracker,
    tools: ToolContext,
    store: Option<SnapshotStore>,
    snapshots: Vec<SnapshotInfo>,
    baseline: Vec<CheckResult>,
    final_checks: Option<Vec<CheckResult>>,
    /// A bug hunt's findings; `None` for other kinds of task.
    desk: Option<FindingsDesk>,
    /// Whether the findings' reproducers have run.
    reproduced: bool,
}

impl<'e, 'a> TaskRun<'e, 'a> {
    fn new(env: &'e TaskEnv<'a>, task: &'e Task, events: EventSink) -> TaskRun<'e, 'a> {
        let report = unstarted_report(
            task,
            env.model_spec,
            &env.file_display,
            TaskOutcome::Error,
            "",
        );
        TaskRun {
            env,
            task,
            events,
            started: Instant::now(),
            report,
            budget: BudgetTracker::new(&task.budget),
            tools: ToolContext::new(task),
            store: None,
            snapshots: Vec::new(),
            baseline: Vec::new(),
            final_checks: None,
            desk: None,
            reproduced: false,
        }
    }

    /// The pipeline proper; `Err` ends the task early with that outcome.
    async fn drive(&mut self) -> Result<(), Stop> {
        let store = SnapshotStore::open(&self.task.workspace).map_err(|e| {
            Stop::new(
                TaskOutcome::Error,
                format!("cannot open the workspace repository: {e}"),
            )
        })?;
        // The run directory must never be snapshotted, nor deleted by a
        // restore: `.kkrun/` by default, or an `--out` inside the work tree.
        let mut excluded = vec![".kkrun/".to_string()];
        if let Some(inside) = run_dir_in_worktree(self.env.run_dir.path(), store.workdir()) {
            excluded.push(inside);
        }
        for pattern in &excluded {
            store.ensure_excluded(pattern).map_err(|e| {
                Stop::new(
                    TaskOutcome::Error,
                    format!("cannot update .git/info/exclude: {e}"),
                )
            })?;
        }
        self.report.base_commit = store
            .head_commit()
            .map_err(|e| Stop::new(TaskOutcome::Error, format!("cannot read HEAD: {e}")))?;
        if self.task.kind == TaskKind::BugHunt {
            self.desk = Some(FindingsDesk::new(store.workdir()));
        }
        self.store = Some(store);
        self.snapshot("base", "ok", Usage::default(), None)?;

        self.baseline = self.checks("baseline").await?;

        // Blueprint.
        let commands: Vec<String> = self.task.checks.iter().map(|c| c.run.clone()).collect();
        let context = context::gather(&self.task.workspace, &self.task.context);
        let message = prompts::blueprint_message(self.task, &context, &self.baseline, &commands);
        let request = self.request(
            Stage::Blueprint,
            prompts::blueprint_system(),
            message,
            vec![finish::submit_plan()],
        );
        let (_, arguments) = self.stage(Stage::Blueprint, 1, request).await?;
        let plan = finish::parse_plan(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;
        self.save_plan(&arguments)?;

        // Code, then debug rounds that may send the work back.
        let mut feedback: Option<(ReturnToCode, Vec<CheckResult>)> = None;
        let mut round = 1;
        loop {
            let message = prompts::code_message(self.task, &plan, feedback.as_ref());
            let request = self.request(
                Stage::Code,
                prompts::code_system(),
                message,
                vec![finish::finish_stage("code")],
            );
            let (_, arguments) = self.stage(Stage::Code, round, request).await?;
            let code_summary =
                finish::parse_finish(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;

            if self.desk.is_some() {
                self.skip_stage(
                    Stage::Debug,
                    round,
                    "a bug hunt reports bugs; it does not fix failing checks",
                );
                break;
            }
            if self.task.checks.is_empty() {
                self.skip_stage(Stage::Debug, round, "the task has no checks");
                break;
            }
            let checks = self.checks("debug").await?;
            if checks.iter().all(|c| c.passed) {
                self.skip_stage(Stage::Debug, round, "every check passed after code");
                self.final_checks = Some(checks);
                break;
            }
            let message =
                prompts::debug_message(self.task, &plan, &code_summary, &checks, &self.baseline);
            let request = self.request(
                Stage::Debug,
                prompts::debug_system(),
                message,
                vec![finish::finish_stage("debug"), finish::return_to_code()],
            );
            let (tool, arguments) = self.stage(Stage::Debug, round, request).await?;
            if tool != finish::RETURN_TO_CODE {
                break;
            }
            let back =
                finish::parse_return(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;
            if round >= self.task.stages.debug_max_rounds {
                self.events.for_stage(Stage::Debug).emit(EventKind::Warning {
                    message: format!(
                        "return_to_code after the last of {} debug round(s): going on to the final checks",
                        self.task.stages.debug_max_rounds
                    ),
                });
                break;
            }
            let checks_then = self.checks("debug").await?;
            feedback = Some((back, checks_then));
            round += 1;
        }

        // kkrun's own verdict on the work: the checks, run once more.
        if self.final_checks.is_none() && !self.task.checks.is_empty() {
            self.final_checks = Some(self.checks("final").await?);
        }
        let final_checks = self.final_checks.clone().unwrap_or_default();

        // A bug hunt's findings are confirmed by kkrun before the review.
        self.reproduce_findings().await?;

        // Preview.
        let diff = self.diff_from_base().map(|d| d.patch).unwrap_or_default();
        let diff = if diff.len() > MAX_PREVIEW_DIFF_BYTES {
            format!(
                "{}\n[… diff truncated: {} more bytes; read the files for the rest …]",
                context::truncate_at_char(&diff, MAX_PREVIEW_DIFF_BYTES),
                diff.len() - MAX_PREVIEW_DIFF_BYTES
            )
        } else {
            diff
        };
        let mut message =
            prompts::preview_message(self.task, Some(&plan), &diff, &self.baseline, &final_checks);
        if let Some(desk) = &self.desk {
            message.push_str(&hunt::preview_section(&desk.findings()));
        }
        let request = self.request(
            Stage::Preview,
            prompts::preview_system(),
            message,
            vec![finish::submit_review()],
        );
        let (_, arguments) = self.stage(Stage::Preview, 1, request).await?;
        let review =
            finish::parse_review(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;
        self.report.review = Some(Review {
            verdict: review.verdict,
            summary: review.summary,
            risks: review.risks,
            advisory: self.task.stages.preview_advisory,
        });
        Ok(())
    }

    /// The outcome of a pipeline that ran to its end: the checks' real
    /// result and the review decide.
    fn judge(&self) -> (TaskOutcome, String) {
        if let Some(desk) = &self.desk {
            return hunt::judge(self.task, &desk.findings());
        }
        let checks = self.final_checks.as_deref().unwrap_or_default();
        let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.passed).collect();
        if !failed.is_empty() {
            let names: Vec<String> = failed
                .iter()
                .map(|c| {
                    let was_passing = self.baseline.iter().any(|b| b.name == c.name && b.passed);
                    if was_passing {
                        format!("{} (newly broken)", c.name)
                    } else {
                        c.name.clone()
                    }
                })
                .collect();
            return (
                TaskOutcome::Failed,
                format!(
                    "{} of {} check(s) failed: {}",
                    failed.len(),
                    checks.len(),
                    names.join(", ")
                ),
            );
        }
        if let Some(review) = &self.report.review
            && review.verdict == Verdict::RequestChanges
            && !review.advisory
        {
            let first = review
                .summary
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return (
                TaskOutcome::Failed,
                format!("the review requested changes: {first}"),
            );
        }
        let advisory = match &self.report.review {
            Some(review) if review.verdict == Verdict::RequestChanges => {
                "; the advisory review requested changes"
            }
            _ => "",
        };
        if checks.is_empty() {
            (
                TaskOutcome::Passed,
                format!("no checks; the review approved{advisory}"),
            )
        } else {
            let flaky = checks.iter().filter(|c| c.flaky).count();
            let flaky = if flaky > 0 {
                format!(" ({flaky} flaky)")
            } else {
                String::new()
            };
            (
                TaskOutcome::Passed,
                format!("all {} check(s) pass{flaky}{advisory}", checks.len()),
            )
        }
    }

    fn request(
        &self,
        stage: Stage,
        system: String,
        message: String,
        finish_tools: Vec<agent::FinishTool>,
    ) -> StageRequest {
        let tool_set = match stage {
            Stage::Blueprint | Stage::Preview => ToolSet::ReadOnly,
            Stage::Code => ToolSet::Code,
            Stage::Debug => ToolSet::Debug,
        };
        StageRequest {
            stage,
            system_prompt: system,
            messages: vec![Message::User { content: message }],
            tool_set,
            finish_tools,
            max_turns: self.task.stages.max_turns(stage),
            timeout: None,
            context_window: self.task.context_window,
        }
    }

    /// Runs one stage to its end, snapshots the tree and records the stage.
    /// Returns the finishing tool's name and arguments.
    async fn stage(
        &mut self,
        stage: Stage,
        round: u32,
        request: StageRequest,
    ) -> Result<(String, Value), Stop> {
        let sink = self.events.for_stage(stage);
        self.tools.findings = self
            .desk
            .as_ref()
            .map(|desk| desk.for_stage(stage, Some(hunt::tools_for(stage)), sink.clone()));
        sink.emit(EventKind::StageStarted { round });
        let started_at = jiff::Timestamp::now().to_string();
        let started = Instant::now();
        let usage_before = self.budget.usage();
        let cost_before = self.budget.cost_usd();
        let max_turns = request.max_turns;
        let result = {
            let interrupt = self.env.interrupt;
            let run = agent::run_stage(
                self.env.provider,
                &self.tools,
                request,
                &mut self.budget,
                &sink,
            );
            tokio::select! {
                result = run => Some(result),
                () = interrupt.wait() => None,
            }
        };
        // A completed stage reports its own sums; an interrupted one (its
        // future dropped) only left its turns in the task's budget.
        let (usage, cost) = match &result {
            Some(Ok(outcome)) => (outcome.usage, outcome.cost_usd),
            _ => (
                usage_delta(self.budget.usage(), usage_before),
                self.budget
                    .cost_usd()
                    .zip(cost_before)
                    .map(|(after, before)| after - before),
            ),
        };
        let (end, detail, turns, tool_calls, finished, stop) = match result {
            None => (
                "interrupted".to_string(),
                None,
                0,
                BTreeMap::new(),
                None,
                Some(Stop::new(
                    TaskOutcome::Interrupted,
                    format!("interrupted during {stage}"),
                )),
            ),
            Some(Err(err)) => {
                let message = format!("{stage} stage: {err}");
                sink.emit(EventKind::Error {
                    message: message.clone(),
                });
                (
                    "error".to_string(),
                    Some(err.to_string()),
                    0,
                    BTreeMap::new(),
                    None,
                    Some(Stop::new(TaskOutcome::Error, message)),
                )
            }
            Some(Ok(outcome)) => {
                for message in &outcome.messages {
                    let entry = TranscriptEntry {
                        stage,
                        round,
                        message,
                    };
                    if let Err(e) = self.env.run_dir.append_transcript(&self.task.name, &entry) {
                        sink.emit(EventKind::Warning {
                            message: e.to_string(),
                        });
                    }
                }
                self.report.artifacts.transcript =
                    Some(format!("{}/transcript.jsonl", self.task.name));
                for (tool, count) in &outcome.tool_calls {
                    *self.report.tool_calls.entry(tool.clone()).or_insert(0) += count;
                }
                let (end, detail, finished, stop) = match outcome.end {
                    StageEnd::Finished { tool, arguments } => {
                        let end = if tool == finish::RETURN_TO_CODE {
                            "return_to_code"
                        } else {
                            "finished"
                        };
                        (end.to_string(), None, Some((tool, arguments)), None)
                    }
                    StageEnd::MaxTurns => {
                        let reason = format!(
                            "the {stage} stage used all {max_turns} turns without finishing"
                        );
                        (
                            "max_turns".into(),
                            Some(reason.clone()),
                            None,
                            Some(Stop::new(TaskOutcome::BudgetExhausted, reason)),
                        )
                    }
                    StageEnd::MaxTokens => {
                        let reason = format!("the token budget ran out during {stage}");
                        (
                            "max_tokens".into(),
                            Some(reason.clone()),
                            None,
                            Some(Stop::new(TaskOutcome::BudgetExhausted, reason)),
                        )
                    }
                    StageEnd::MaxCost => {
                        let reason = format!("the cost budget ran out during {stage}");
                        (
                            "max_cost".into(),
                            Some(reason.clone()),
                            None,
                            Some(Stop::new(TaskOutcome::BudgetExhausted, reason)),
                        )
                    }
                    StageEnd::Timeout => {
                        let reason = format!("the time limit ran out during {stage}");
                        (
                            "timeout".into(),
                            Some(reason.clone()),
                            None,
                            Some(Stop::new(TaskOutcome::TimedOut, reason)),
                        )
                    }
                    StageEnd::Stuck { reason } => {
                        let why = format!("the agent got stuck in {stage}: {reason}");
                        (
                            "stuck".into(),
                            Some(reason),
                            None,
                            Some(Stop::new(TaskOutcome::Failed, why)),
                        )
                    }
                };
                (
                    end,
                    detail,
                    outcome.turns,
                    outcome.tool_calls,
                    finished,
                    stop,
                )
            }
        };
        let label = if end == "interrupted" {
            "interrupted"
        } else {
            stage.as_str()
        };
        let snapshot = self.snapshot(label, &end, usage, cost);
        let duration_ms = millis(started);
        self.report.stages.push(StageReport {
            stage: stage.as_str().to_string(),
            round,
            end: end.clone(),
            detail,
            started_at,
            duration_ms,
            turns,
            usage: usage.into(),
            cost_usd: cost,
            tool_calls,
            snapshot: snapshot.as_ref().ok().cloned(),
        });
        sink.emit(EventKind::StageFinished {
            end,
            turns,
            usage,
            cost_usd: cost,
            duration_ms,
        });
        snapshot?;
        match (stop, finished) {
            (Some(stop), _) => Err(stop),
            (None, Some(finished)) => Ok(finished),
            (None, None) => Err(Stop::new(
                TaskOutcome::Error,
                format!("{stage} ended without a result"),
            )),
        }
    }

    fn skip_stage(&mut self, stage: Stage, round: u32, why: &str) {
        let sink = self.events.for_stage(stage);
        sink.emit(EventKind::StageFinished {
            end: "skipped".into(),
            turns: 0,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            duration_ms: 0,
        });
        self.report.stages.push(StageReport {
            stage: stage.as_str().to_string(),
            round,
            end: "skipped".into(),
            detail: Some(why.to_string()),
            started_at: jiff::Timestamp::now().to_string(),
            duration_ms: 0,
            turns: 0,
            usage: TokenUsage::default(),
            cost_usd: Some(0.0),
            tool_calls: BTreeMap::new(),
            snapshot: None,
        });
    }

    /// Runs the task's checks (interruptible) and reports them as `phase`.
    async fn checks(&mut self, phase: &str) -> Result<Vec<CheckResult>, Stop> {
        let results = {
            let run = run_checks(&self.task.checks, &self.task.workspace, &self.task.env);
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
        let failed_names: Vec<String> = results
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.clone())
            .collect();
        self.events.emit(EventKind::ChecksFinished {
            phase: phase.to_string(),
            passed: results.len() - failed_names.len(),
            failed: failed_names.len(),
            failed_names,
        });
        Ok(results)
    }

    /// Runs the reproducers of a bug hunt's findings on the untouched base
    /// (once; interruptible) and marks them against the baseline.
    async fn reproduce_findings(&mut self) -> Result<(), Stop> {
        if self.reproduced {
            return Ok(());
        }
        let (Some(desk), Some(store), Some(base)) =
            (&self.desk, &self.store, self.snapshots.first())
        else {
            return Ok(());
        };
        self.reproduced = true;
        let env = crate::findings::reproduce::ReproduceEnv {
            store: store.clone(),
            base: base.clone(),
            latest: self.snapshots.last().cloned(),
            shell: self.task.shell.clone(),
            env: self.task.env.clone(),
            timeout: hunt::reproduce_timeout(self.task),
        };
        let mut findings = desk.findings();
        let finished = {
            let run = hunt::reproduce_all(&env, &mut findings, &self.events);
            tokio::select! {
                () = run => true,
                () = self.env.interrupt.wait() => false,
            }
        };
        hunt::mark_baseline(self.env.baseline_findings, &mut findings);
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

    /// Takes the next snapshot of the task.
    fn snapshot(
        &mut self,
        stage: &str,
        status: &str,
        usage: Usage,
        cost: Option<f64>,
    ) -> Result<SnapshotReport, Stop> {
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
            .map_err(|e| {
                Stop::new(
                    TaskOutcome::Error,
                    format!("snapshot after {stage} failed: {e}"),
                )
            })?;
        self.events.emit(EventKind::SnapshotTaken {
            ref_name: info.ref_name.clone(),
            commit: info.commit.clone(),
        });
        let report = SnapshotReport {
            stage: info.stage.clone(),
            ref_name: info.ref_name.clone(),
            commit: info.commit.clone(),
        };
        self.report.snapshots.push(report.clone());
        self.snapshots.push(info);
        Ok(report)
    }

    fn save_plan(&mut self, plan: &Value) -> Result<(), Stop> {
        let dir = self
            .env
            .run_dir
            .task_dir(&self.task.name)
            .map_err(|e| Stop::new(TaskOutcome::Error, e.to_string()))?;
        let text = serde_json::to_string_pretty(plan).unwrap_or_default();
        crate::report::write_atomic(&dir.join("plan.json"), format!("{text}\n").as_bytes())
            .map_err(|e| Stop::new(TaskOutcome::Error, e.to_string()))?;
        self.report.plan = Some(plan.clone());
        self.report.artifacts.plan = Some(format!("{}/plan.json", self.task.name));
        Ok(())
    }

    fn diff_from_base(&self) -> Option<crate::snapshot::SnapshotDiff> {
        let store = self.store.as_ref()?;
        let base = self.snapshots.first()?;
        let last = self.snapshots.last()?;
        store.diff(base, Some(last)).ok()
    }

    /// Rolls back if asked, writes the patch, fills in the totals.
    async fn finish(mut self, outcome: TaskOutcome, reason: String) -> TaskReport {
        // A hunt that ended early still confirms what it found, unless the
        // user interrupted it.
        if outcome != TaskOutcome::Interrupted {
            let _ = self.reproduce_findings().await;
        }
        if let Some(desk) = &self.desk {
            let mut findings = desk.findings();
            hunt::mark_baseline(self.env.baseline_findings, &mut findings);
            self.report.findings = findings;
        }
        // The patch and file list describe the agent's work, so they are
        // taken before any restore.
        if let Some(diff) = self.diff_from_base() {
            self.report.files_changed = diff
                .files
                .iter()
                .map(|f| FileChangeReport {
                    path: f.path.clone(),
                    status: f.status.clone(),
                    additions: f.additions,
                    deletions: f.deletions,
                })
                .collect();
            match self.env.run_dir.task_dir(&self.task.name) {
                Ok(dir) => match crate::report::write_atomic(
                    &dir.join("final.patch"),
                    diff.patch.as_bytes(),
                ) {
                    Ok(()) => {
                        self.report.artifacts.patch =
                            Some(format!("{}/final.patch", self.task.name))
                    }
                    Err(e) => self.events.emit(EventKind::Warning {
                        message: e.to_string(),
                    }),
                },
                Err(e) => self.events.emit(EventKind::Warning {
                    message: e.to_string(),
                }),
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
                    self.events.emit(EventKind::SnapshotTaken {
                        ref_name: safety.ref_name.clone(),
                        commit: safety.commit.clone(),
                    });
                    self.report.snapshots.push(SnapshotReport {
                        stage: safety.stage.clone(),
                        ref_name: safety.ref_name.clone(),
                        commit: safety.commit.clone(),
                    });
                    self.report.restored_to_base = Some(why.to_string());
                }
                Err(e) => self.events.emit(EventKind::Warning {
                    message: format!("restoring 00-base failed: {e}"),
                }),
            }
        }

        self.report.checks = self
            .task
            .checks
            .iter()
            .map(|check| {
                let baseline = self
                    .baseline
                    .iter()
                    .find(|r| r.name == check.name)
                    .map(check_run);
                let final_run = self
                    .final_checks
                    .as_ref()
                    .and_then(|all| all.iter().find(|r| r.name == check.name))
                    .map(check_run);
                CheckReport {
                    name: check.name.clone(),
                    run: check.run.clone(),
                    status: CheckStatus::from_runs(
                        baseline.as_ref().is_some_and(|b| b.passed),
                        final_run.as_ref().map(|f| f.passed),
                    ),
                    baseline,
                    final_run,
                }
            })
            .collect();
        let usage = self.budget.usage();
        self.report.usage = usage.into();
        self.report.cost_usd = self.budget.cost_usd();
        self.report.outcome = outcome;
        self.report.reason = reason.clone();
        self.report.duration_ms = millis(self.started);
        self.events.emit(EventKind::TaskFinished {
            outcome: outcome.as_str().to_string(),
            reason,
            usage,
            cost_usd: self.report.cost_usd,
            duration_ms: self.report.duration_ms,
        });
        self.report
    }
}

/// The report of `task` before anything happened: no stages, no checks, no
/// usage, with the given outcome and reason. The pipeline fills it in; the
/// runner uses it as is for tasks that never started.
pub fn unstarted_report(
    task: &Task,
    model_spec: &str,
    file_display: &str,
    outcome: TaskOutcome,
    reason: &str,
) -> TaskReport {
    TaskReport {
        name: task.name.clone(),
        description: task.description.clone(),
        file: file_display.to_string(),
        line: task.line,
        kind: task.kind.as_str().to_string(),
        workspace: task.workspace.display().to_string(),
        model: model_spec.to_string(),
        base_commit: None,
        outcome,
        reason: reason.to_string(),
        started_at: jiff::Timestamp::now().to_string(),
        duration_ms: 0,
        stages: Vec::new(),
        checks: Vec::new(),
        files_changed: Vec::new(),
        plan: None,
        review: None,
        snapshots: Vec::new(),
        restored_to_base: None,
        usage: TokenUsage::default(),
        cost_usd: None,
        tool_calls: BTreeMap::new(),
        findings: Vec::new(),
        artifacts: Artifacts {
            plan: None,
            transcript: None,
            patch: None,
        },
    }
}

/// The gitignore pattern (`/path/to/out/`) for a run directory inside the
/// work tree `workdir`, or `None` when it lies outside (or under `.kkrun/`,
/// which is excluded anyway).
fn run_dir_in_worktree(run_dir: &std::path::Path, workdir: &std::path::Path) -> Option<String> {
    let run_dir = run_dir.canonicalize().ok()?;
    let workdir = workdir.canonicalize().ok()?;
    let relative = run_dir.strip_prefix(&workdir).ok()?;
    let relative = relative.to_string_lossy().replace('\\', "/");
    if relative.is_empty() || relative.starts_with(".kkrun/") || relative == ".kkrun" {
        return None;
    }
    Some(format!("/{relative}/"))
}

fn check_run(result: &CheckResult) -> CheckRun {
    CheckRun {
        passed: result.passed,
        flaky: result.flaky,
        exit_code: result.exit_code,
        timed_out: result.timed_out,
        attempts: result.attempts,
        duration_ms: result.duration_ms,
        output_tail: result.output_tail.clone(),
        failed_attempts: result
            .failed_attempts
            .iter()
            .map(|a| a.output_tail.clone())
            .collect(),
    }
}

fn usage_delta(after: Usage, before: Usage) -> Usage {
    Usage {
        input_tokens: after.input_tokens.saturating_sub(before.input_tokens),
        cached_input_tokens: after
            .cached_input_tokens
            .saturating_sub(before.cached_input_tokens),
        output_tokens: after.output_tokens.saturating_sub(before.output_tokens),
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

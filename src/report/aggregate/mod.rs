//! The one aggregator: it reads a run's event stream and builds the
//! [`Report`] that `report.json`, `junit.xml`, `summary.md` and the GitHub
//! Actions output are rendered from.
//!
//! The same code serves a live run ([`attach`], subscribed to the sink like
//! the console and `events.jsonl`, writing everything at `run.finished`) and
//! `kkrun report rebuild` ([`rebuild`], reading `events.jsonl`). The pipeline
//! and the runner never build report data themselves; a fact the report
//! needs is a field of an event. See the checklist in [`crate::events`] for
//! adding one.

mod live;
mod rebuild;

pub use live::{LiveReports, Outputs, attach};
pub use rebuild::{Rebuilt, rebuild};

use super::model::{
    Artifacts, CheckReport, CheckStatus, McpServerReport, REPORT_SCHEMA_VERSION, Report,
    SnapshotReport, StageReport, TaskReport, Totals, ViolationReport,
};
use crate::events::{ArtifactKind, CheckSpec, Event, EventKind, StageEndKind, TaskOutcome};
use crate::exit_codes;
use crate::provider::Usage;
use crate::tools::checks::CheckResult;

/// The reason given to a task whose stream ends without its `task.finished`.
pub const UNFINISHED_REASON: &str = "the run ended without its final record";

/// What [`Report::rebuilt`] says of a report made from a stream without
/// `run.finished`.
pub const REBUILT_NOTE: &str = "rebuilt by `kkrun report rebuild` from an events.jsonl that ends \
     without run.finished: the run was killed before it wrote its final record; tasks without a \
     task.finished event are reported as interrupted";

/// Builds a [`Report`] from events, in the order they were emitted.
#[derive(Debug, Default)]
pub struct Aggregator {
    run_id: String,
    kkrun_version: String,
    started_at: String,
    command_line: Vec<String>,
    tasks: Vec<TaskState>,
    finished: Option<RunEnd>,
    /// Time and elapsed milliseconds of the last event seen.
    last: Option<(String, u64)>,
    events: usize,
}

#[derive(Debug)]
struct RunEnd {
    at: String,
    elapsed_ms: u64,
    exit_code: i32,
}

/// One task while its events come in.
#[derive(Debug)]
struct TaskState {
    report: TaskReport,
    checks: Vec<CheckSpec>,
    baseline: Vec<CheckResult>,
    final_checks: Option<Vec<CheckResult>>,
    stage: Option<OpenStage>,
    started_elapsed_ms: Option<u64>,
    finished: bool,
    /// Sums of the task's model turns: its usage when `task.finished` is
    /// missing.
    turn_usage: Usage,
    turn_cost: Option<f64>,
}

/// A stage between its `stage.started` and `stage.finished`.
#[derive(Debug)]
struct OpenStage {
    name: String,
    round: u32,
    started_at: String,
    started_elapsed_ms: u64,
    snapshot: Option<SnapshotReport>,
    turns: u32,
    usage: Usage,
    cost: Option<f64>,
}

impl Aggregator {
    /// An aggregator that has seen nothing.
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// Events seen so far.
    pub fn events_seen(&self) -> usize {
        self.events
    }

    /// Whether the stream so far ends with `run.finished`.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Takes in one event.
    pub fn on_event(&mut self, event: &Event) {
        self.events += 1;
        self.last = Some((event.ts.clone(), event.elapsed_ms));
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                kkrun_version,
                tasks,
                command_line,
                ..
            } => {
                self.run_id = run_id.clone();
                self.kkrun_version = kkrun_version.clone();
                self.started_at = event.ts.clone();
                self.command_line = command_line.clone();
                for name in tasks {
                    self.task(name);
                }
            }
            EventKind::RunFinished { exit_code, .. } => {
                self.finished = Some(RunEnd {
                    at: event.ts.clone(),
                    elapsed_ms: event.elapsed_ms,
                    exit_code: *exit_code,
                });
            }
            EventKind::TaskPlanned {
                file,
                line,
                description,
                kind,
                workspace,
                model,
                checks,
            } => {
                if let Some(task) = self.task_of(event) {
                    let report = &mut task.report;
                    report.file = file.clone();
                    report.line = *line;
                    report.description = description.clone();
                    report.kind = kind.clone();
                    report.workspace = workspace.clone();
                    report.model = model.clone();
                    report.started_at = event.ts.clone();
                    task.checks = checks.clone();
                }
            }
            EventKind::TaskStarted {
                file,
                model,
                base_commit,
                sandbox,
                instructions,
            } => {
                if let Some(task) = self.task_of(event) {
                    task.report.sandbox = sandbox.clone();
                    task.report.instructions = instructions.clone();
                    task.report.file = file.clone();
                    task.report.model = model.clone();
                    task.report.base_commit = base_commit.clone();
                    task.report.started_at = event.ts.clone();
                    task.started_elapsed_ms = Some(event.elapsed_ms);
                }
            }
            EventKind::StageStarted { round, .. } => {
                if let (Some(stage), Some(task)) = (event.stage, self.task_of(event)) {
                    task.stage = Some(OpenStage {
                        name: stage.as_str().to_string(),
                        round: *round,
                        started_at: event.ts.clone(),
                        started_elapsed_ms: event.elapsed_ms,
                        snapshot: None,
                        turns: 0,
                        usage: Usage::default(),
                        cost: Some(0.0),
                    });
                }
            }
            EventKind::StageFinished {
                end,
                turns,
                usage,
                cost_usd,
                duration_ms,
                round,
                detail,
                tool_calls,
            } => {
                let Some(stage) = event.stage else { return };
                let Some(task) = self.task_of(event) else {
                    return;
                };
                let open = task.stage.take().filter(|open| open.name == stage.as_str());
                for (tool, count) in tool_calls {
                    *task.report.tool_calls.entry(tool.clone()).or_insert(0) += count;
                }
                task.report.stages.push(StageReport {
                    stage: stage.as_str().to_string(),
                    round: *round,
                    end: *end,
                    detail: detail.clone(),
                    started_at: open
                        .as_ref()
                        .map_or_else(|| event.ts.clone(), |o| o.started_at.clone()),
                    duration_ms: *duration_ms,
                    turns: *turns,
                    usage: *usage,
                    cost_usd: *cost_usd,
                    tool_calls: tool_calls.clone(),
                    snapshot: open.and_then(|o| o.snapshot),
                });
            }
            EventKind::ChecksFinished {
                phase,
                decides_outcome,
                results,
                ..
            } => {
                if let Some(task) = self.task_of(event) {
                    if *phase == crate::events::CheckPhase::Baseline {
                        task.baseline = results.clone();
                    }
                    if *decides_outcome {
                        task.final_checks = Some(results.clone());
                    }
                }
            }
            EventKind::SnapshotTaken {
                ref_name,
                commit,
                snapshot_stage,
            } => {
                if let Some(task) = self.task_of(event) {
                    let snapshot = SnapshotReport {
                        stage: snapshot_stage.clone(),
                        ref_name: ref_name.clone(),
                        commit: commit.clone(),
                    };
                    if let Some(open) = &mut task.stage {
                        open.snapshot = Some(snapshot.clone());
                    }
                    task.report.snapshots.push(snapshot);
                }
            }
            EventKind::PlanSubmitted { plan } => {
                if let Some(task) = self.task_of(event) {
                    task.report.plan = Some(plan.clone());
                }
            }
            EventKind::FindingReported { finding } => {
                if let Some(task) = self.task_of(event) {
                    task.report.findings.push((**finding).clone());
                }
            }
            EventKind::FindingReproduced {
                id,
                status,
                reproduction,
            } => {
                if let Some(finding) = self.finding_of(event, id) {
                    finding.status = *status;
                    finding.reproduction = Some(reproduction.clone());
                }
            }
            EventKind::FindingWithdrawn { id, reason } => {
                if let Some(finding) = self.finding_of(event, id) {
                    finding.status = crate::findings::FindingStatus::Withdrawn;
                    finding.withdrawn_reason = Some(reason.clone());
                }
            }
            EventKind::ReviewSubmitted { review } => {
                if let Some(task) = self.task_of(event) {
                    task.report.review = Some(review.clone());
                }
            }
            EventKind::ArtifactWritten { artifact, path } => {
                if let Some(task) = self.task_of(event) {
                    let slot = match artifact {
                        ArtifactKind::Plan => &mut task.report.artifacts.plan,
                        ArtifactKind::Transcript => &mut task.report.artifacts.transcript,
                        ArtifactKind::Patch => &mut task.report.artifacts.patch,
                    };
                    *slot = Some(path.clone());
                }
            }
            EventKind::DiffComputed { files_changed } => {
                if let Some(task) = self.task_of(event) {
                    task.report.files_changed = files_changed.clone();
                }
            }
            EventKind::PolicyViolation {
                command,
                changes,
                reverted,
                revert_error,
                reason,
            } => {
                let stage = event.stage;
                if let Some(task) = self.task_of(event) {
                    task.report.policy_violations.push(ViolationReport {
                        stage,
                        command: command.clone(),
                        changes: changes.clone(),
                        reverted: *reverted,
                        revert_error: revert_error.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            EventKind::WorkspaceRestored { reason } => {
                if let Some(task) = self.task_of(event) {
                    task.report.restored_to_base = Some(reason.clone());
                }
            }
            EventKind::TaskFinished {
                outcome,
                reason,
                usage,
                cost_usd,
                duration_ms,
            } => {
                if let Some(task) = self.task_of(event) {
                    if task.started_elapsed_ms.is_none() {
                        // Never started: its time is when it was given up.
                        task.report.started_at = event.ts.clone();
                    }
                    task.report.outcome = *outcome;
                    task.report.reason = reason.clone();
                    task.report.usage = *usage;
                    task.report.cost_usd = *cost_usd;
                    task.report.duration_ms = *duration_ms;
                    task.stage = None;
                    task.finished = true;
                }
            }
            EventKind::ModelTurn {
                turn,
                usage,
                cost_usd,
                ..
            } => {
                if let Some(task) = self.task_of(event) {
                    task.turn_usage += *usage;
                    task.turn_cost = task.turn_cost.zip(*cost_usd).map(|(a, b)| a + b);
                    if let Some(open) = &mut task.stage {
                        open.turns = open.turns.max(*turn);
                        open.usage += *usage;
                        open.cost = open.cost.zip(*cost_usd).map(|(a, b)| a + b);
                    }
                }
            }
            EventKind::McpServerStarted {
                server,
                transport,
                tools,
                read_only_tools,
                replayed,
                ..
            } => {
                if let Some(task) = self.task_of(event) {
                    task.report.mcp_servers.push(McpServerReport {
                        name: server.clone(),
                        transport: transport.clone(),
                        tools: tools.clone(),
                        read_only_tools: read_only_tools.clone(),
                        replayed: *replayed,
                        exited: None,
                        stderr_tail: None,
                    });
                }
            }
            EventKind::McpServerExited {
                server,
                status,
                stderr_tail,
            } => {
                if let Some(task) = self.task_of(event)
                    && let Some(report) = task
                        .report
                        .mcp_servers
                        .iter_mut()
                        .find(|s| &s.name == server)
                {
                    report.exited = Some(status.clone());
                    report.stderr_tail = Some(stderr_tail.clone()).filter(|t| !t.is_empty());
                }
            }
            // Progress and diagnostics: the report does not record them.
            EventKind::McpServerStopped { .. }
            | EventKind::Error { .. }
            | EventKind::ToolCall { .. }
            | EventKind::LoopWarning { .. }
            | EventKind::LoopStuck { .. }
            | EventKind::ContextCompacted { .. }
            | EventKind::BudgetExhausted { .. }
            | EventKind::ProviderRetry { .. }
            | EventKind::Warning { .. } => {}
        }
    }

    /// The finding `id` of the task an event belongs to.
    fn finding_of(&mut self, event: &Event, id: &str) -> Option<&mut crate::findings::Finding> {
        self.task_of(event)?
            .report
            .findings
            .iter_mut()
            .find(|finding| finding.id == id)
    }

    /// The task an event belongs to, added at the end when the stream did
    /// not announce it in `run.started`.
    fn task_of(&mut self, event: &Event) -> Option<&mut TaskState> {
        let name = event.task.as_deref()?;
        Some(self.task(name))
    }

    fn task(&mut self, name: &str) -> &mut TaskState {
        let index = match self.tasks.iter().position(|t| t.report.name == name) {
            Some(index) => index,
            None => {
                self.tasks.push(TaskState::new(name));
                self.tasks.len() - 1
            }
        };
        &mut self.tasks[index]
    }

    /// The report of the events seen so far. A stream without
    /// `run.finished` gives a report marked [`Report::rebuilt`] in which
    /// every unfinished task is `interrupted`.
    pub fn report(&self) -> Report {
        let (last_at, last_elapsed) = self.last.clone().unwrap_or_default();
        let tasks: Vec<TaskReport> = self
            .tasks
            .iter()
            .map(|task| task.report(last_elapsed))
            .collect();
        let (finished_at, duration_ms, exit_code, rebuilt) = match &self.finished {
            Some(end) => (end.at.clone(), end.elapsed_ms, end.exit_code, None),
            None => (
                last_at,
                last_elapsed,
                exit_codes::combine(tasks.iter().map(|t| t.outcome.exit_code())),
                Some(REBUILT_NOTE.to_string()),
            ),
        };
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            kkrun_version: self.kkrun_version.clone(),
            run_id: self.run_id.clone(),
            started_at: self.started_at.clone(),
            finished_at,
            duration_ms,
            command_line: self.command_line.clone(),
            exit_code,
            totals: Totals::from_tasks(&tasks),
            tasks,
            rebuilt,
        }
    }
}

impl TaskState {
    fn new(name: &str) -> TaskState {
        TaskState {
            report: TaskReport {
                name: name.to_string(),
                description: String::new(),
                file: String::new(),
                line: 0,
                kind: String::new(),
                workspace: String::new(),
                model: String::new(),
                base_commit: None,
                outcome: TaskOutcome::Interrupted,
                reason: UNFINISHED_REASON.to_string(),
                started_at: String::new(),
                duration_ms: 0,
                stages: Vec::new(),
                checks: Vec::new(),
                files_changed: Vec::new(),
                plan: None,
                review: None,
                snapshots: Vec::new(),
                restored_to_base: None,
                policy_violations: Vec::new(),
                usage: Usage::default(),
                cost_usd: None,
                tool_calls: Default::default(),
                findings: Vec::new(),
                artifacts: Artifacts {
                    plan: None,
                    transcript: None,
                    patch: None,
                },
                mcp_servers: Vec::new(),
                sandbox: None,
                instructions: Vec::new(),
            },
            checks: Vec::new(),
            baseline: Vec::new(),
            final_checks: None,
            stage: None,
            started_elapsed_ms: None,
            finished: false,
            turn_usage: Usage::default(),
            turn_cost: Some(0.0),
        }
    }

    /// The task's report; `last_elapsed_ms` ends an unfinished task.
    fn report(&self, last_elapsed_ms: u64) -> TaskReport {
        let mut report = self.report.clone();
        report.checks = self
            .checks
            .iter()
            .map(|check| {
                let baseline = find(&self.baseline, &check.name);
                let final_run = self
                    .final_checks
                    .as_deref()
                    .and_then(|all| find(all, &check.name));
                CheckReport {
                    name: check.name.clone(),
                    run: check.run.clone(),
                    line: check.line,
                    status: CheckStatus::from_runs(
                        baseline.as_ref().is_some_and(|b| b.passed),
                        final_run.as_ref().map(|f| f.passed),
                    ),
                    baseline,
                    final_run,
                }
            })
            .collect();
        if self.finished {
            return report;
        }
        // The stream stops inside this task: what it did is what its events
        // say, and it ends where the stream ends.
        if let Some(open) = &self.stage {
            report.stages.push(StageReport {
                stage: open.name.clone(),
                round: open.round,
                end: StageEndKind::Interrupted,
                detail: Some(UNFINISHED_REASON.to_string()),
                started_at: open.started_at.clone(),
                duration_ms: last_elapsed_ms.saturating_sub(open.started_elapsed_ms),
                turns: open.turns,
                usage: open.usage,
                cost_usd: open.cost,
                tool_calls: Default::default(),
                snapshot: open.snapshot.clone(),
            });
        }
        if let Some(started) = self.started_elapsed_ms {
            report.duration_ms = last_elapsed_ms.saturating_sub(started);
            report.usage = self.turn_usage;
            report.cost_usd = self.turn_cost;
        }
        report
    }
}

fn find(results: &[CheckResult], name: &str) -> Option<crate::report::CheckRun> {
    results
        .iter()
        .find(|r| r.name == name)
        .map(|r| r.run.clone())
}

#[cfg(test)]
mod tests;

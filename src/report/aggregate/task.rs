//! One task's part of the aggregation: its events, folded into its
//! [`TaskReport`], and the reset a `task.resumed` makes.

use super::UNFINISHED_REASON;
use crate::events::{ArtifactKind, CheckSpec, Event, EventKind, StageEndKind, TaskOutcome};
use crate::provider::Usage;
use crate::report::model::{
    Artifacts, CheckReport, CheckStatus, McpServerReport, ResumedReport, SnapshotReport,
    StageReport, TaskReport, ViolationReport,
};
use crate::tools::checks::CheckResult;

mod resume;

/// How an attempt whose stream stops inside the task ended.
pub const KILLED: &str = "killed";

/// One task while its events come in.
#[derive(Debug)]
pub(super) struct TaskState {
    /// Every event of the task so far, for a later `task.resumed`.
    events: Vec<Event>,
    /// The attempts cut short, and where the task last resumed.
    resumed: Option<ResumedReport>,
    /// When the current attempt started, for its time when it is cut short.
    attempt_started: Option<(String, u64)>,
    /// Elapsed milliseconds of the task's last event.
    last_elapsed_ms: u64,
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

impl TaskState {
    /// The task's name.
    pub(super) fn name(&self) -> &str {
        &self.report.name
    }

    /// Whether the task has its `task.finished`.
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Takes in one event of this task, remembering it for a later
    /// `task.resumed`.
    pub(super) fn on_event(&mut self, event: &Event) {
        if let EventKind::TaskResumed {
            kept_events,
            from_snapshot,
            after,
            previous,
            sandbox,
            base_commit,
            worktree,
            ..
        } = &event.kind
        {
            self.resume(event, *kept_events, from_snapshot, after, previous);
            if sandbox.is_some() {
                self.report.sandbox = sandbox.clone();
            }
            if worktree.is_some() {
                self.report.worktree = worktree.clone();
            }
            if self.report.base_commit.is_none() {
                self.report.base_commit = base_commit.clone();
            }
            return;
        }
        self.events.push(event.clone());
        self.last_elapsed_ms = event.elapsed_ms;
        self.apply(event);
    }

    /// Folds one event into the report.
    fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::TaskPlanned {
                file,
                line,
                description,
                kind,
                workspace,
                model,
                checks,
                matrix,
            } => {
                let task = &mut *self;
                let report = &mut task.report;
                report.file = file.clone();
                report.line = *line;
                report.description = description.clone();
                report.kind = kind.clone();
                report.workspace = workspace.clone();
                report.model = model.clone();
                report.matrix = matrix.clone();
                report.started_at = event.ts.clone();
                task.checks = checks.clone();
            }
            EventKind::TaskStarted {
                file,
                model,
                base_commit,
                sandbox,
                instructions,
                worktree,
            } => {
                let task = &mut *self;
                task.report.worktree = worktree.clone();
                task.report.sandbox = sandbox.clone();
                task.report.instructions = instructions.clone();
                task.report.file = file.clone();
                task.report.model = model.clone();
                task.report.base_commit = base_commit.clone();
                task.report.started_at = event.ts.clone();
                task.started_elapsed_ms = Some(event.elapsed_ms);
            }
            EventKind::StageStarted { round, .. } => {
                if let Some(stage) = event.stage {
                    let task = &mut *self;
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
                ..
            } => {
                let Some(stage) = event.stage else { return };
                let task = &mut *self;
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
                let task = &mut *self;
                if *phase == crate::events::CheckPhase::Baseline {
                    task.baseline = results.clone();
                }
                if *decides_outcome {
                    task.final_checks = Some(results.clone());
                }
            }
            EventKind::SetupFinished { index, run, .. } => {
                // A resumed task sets its workspace up again: the latest
                // round is what its workspace was prepared by.
                if *index == 0 {
                    self.report.setup.clear();
                }
                self.report.setup.push(run.clone());
            }
            EventKind::SnapshotTaken {
                ref_name,
                commit,
                snapshot_stage,
                ..
            } => {
                let task = &mut *self;
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
            EventKind::PlanSubmitted { plan } => {
                let task = &mut *self;
                task.report.plan = Some(plan.clone());
            }
            EventKind::FindingReported { finding } => {
                let task = &mut *self;
                task.report.findings.push((**finding).clone());
            }
            EventKind::FindingReproduced {
                id,
                status,
                reproduction,
            } => {
                if let Some(finding) = self.finding(id) {
                    finding.status = *status;
                    finding.reproduction = Some(reproduction.clone());
                }
            }
            EventKind::FindingWithdrawn { id, reason } => {
                if let Some(finding) = self.finding(id) {
                    finding.status = crate::findings::FindingStatus::Withdrawn;
                    finding.withdrawn_reason = Some(reason.clone());
                }
            }
            EventKind::ReviewSubmitted { review } => {
                let task = &mut *self;
                task.report.review = Some(review.clone());
            }
            EventKind::ArtifactWritten { artifact, path } => {
                let task = &mut *self;
                let slot = match artifact {
                    ArtifactKind::Plan => &mut task.report.artifacts.plan,
                    ArtifactKind::Transcript => &mut task.report.artifacts.transcript,
                    ArtifactKind::Patch => &mut task.report.artifacts.patch,
                    ArtifactKind::Output => &mut task.report.artifacts.output,
                };
                *slot = Some(path.clone());
            }
            EventKind::DiffComputed { files_changed } => {
                let task = &mut *self;
                task.report.files_changed = files_changed.clone();
            }
            EventKind::PolicyViolation {
                command,
                changes,
                reverted,
                revert_error,
                reason,
            } => {
                let stage = event.stage;
                {
                    let task = &mut *self;
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
                let task = &mut *self;
                task.report.restored_to_base = Some(reason.clone());
            }
            EventKind::TaskFinished {
                outcome,
                reason,
                usage,
                cost_usd,
                duration_ms,
                output,
            } => {
                {
                    let task = &mut *self;
                    task.report.output = output.clone();
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
                let task = &mut *self;
                task.turn_usage += *usage;
                task.turn_cost = task.turn_cost.zip(*cost_usd).map(|(a, b)| a + b);
                if let Some(open) = &mut task.stage {
                    open.turns = open.turns.max(*turn);
                    open.usage += *usage;
                    open.cost = open.cost.zip(*cost_usd).map(|(a, b)| a + b);
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
                let servers = &mut self.report.mcp_servers;
                // A resumed task starts its servers again: one entry each.
                servers.retain(|s| &s.name != server);
                servers.push(McpServerReport {
                    name: server.clone(),
                    transport: transport.clone(),
                    tools: tools.clone(),
                    read_only_tools: read_only_tools.clone(),
                    replayed: *replayed,
                    exited: None,
                    stderr_tail: None,
                });
            }
            EventKind::McpServerExited {
                server,
                status,
                stderr_tail,
            } => {
                if let Some(report) = self
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
            EventKind::RunStarted { .. }
            | EventKind::RunResumed { .. }
            | EventKind::RunFinished { .. }
            | EventKind::TaskResumed { .. } => {}
        }
    }

    /// The finding `id` of this task.
    fn finding(&mut self, id: &str) -> Option<&mut crate::findings::Finding> {
        self.report
            .findings
            .iter_mut()
            .find(|finding| finding.id == id)
    }
    pub(super) fn new(name: &str) -> TaskState {
        TaskState {
            events: Vec::new(),
            resumed: None,
            attempt_started: None,
            last_elapsed_ms: 0,
            report: TaskReport {
                name: name.to_string(),
                description: String::new(),
                file: String::new(),
                line: 0,
                kind: String::new(),
                workspace: String::new(),
                model: String::new(),
                matrix: None,
                worktree: None,
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
                    output: None,
                },
                mcp_servers: Vec::new(),
                sandbox: None,
                resumed: None,
                output: None,
                instructions: Vec::new(),
                setup: Vec::new(),
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
    pub(super) fn report(&self, last_elapsed_ms: u64) -> TaskReport {
        let mut report = self.report.clone();
        report.resumed = self.resumed.clone().map(|mut resumed| {
            resumed
                .attempts
                .push(self.current_attempt(&resumed, last_elapsed_ms));
            resumed
        });
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

//! The one event stream of a run. Every part of kkrun reports what happens
//! as typed [`Event`]s through an [`EventSink`]; the run directory's
//! `events.jsonl`, `--json` on stdout, the human console and the report
//! aggregator ([`crate::report::aggregate`]) all read it.
//!
//! The stream is the record of a run: every fact in `report.json`,
//! `junit.xml` and `summary.md` comes from an event, so `kkrun report
//! rebuild` can reproduce them from `events.jsonl` alone.
//!
//! # Adding an event
//! 1. Add a variant to [`EventKind`] with a dotted `type` name and a doc
//!    comment on every field; enumerations are typed ([`values`]), never
//!    strings. A new field on an existing event gets `#[serde(default)]` so
//!    older streams still parse.
//! 2. Emit it through the sink scoped to its task and stage.
//! 3. Handle it in every consumer; they match [`EventKind`] exhaustively, so
//!    the compiler lists them: the console (`src/console.rs`) and the
//!    aggregator (`src/report/aggregate.rs`, which puts what the report
//!    needs into the report and its schema).
//! 4. Document it in `docs/outputs.md`; the insta snapshots of the event
//!    lines (`tests/snapshots/`) show the change for review.

mod shards;
mod sink;
pub mod values;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use shards::{MergeRecord, MergedShard, PartitionRecord};
pub use sink::EventSink;
pub use values::{
    ArtifactKind, CheckPhase, CheckSpec, Review, StageEndKind, TaskOutcome, ToolOutcome, Verdict,
};

use crate::agent::BudgetKind;
use crate::guard::GitChange;
use crate::provider::Usage;
use crate::snapshot::FileChange;
use crate::task::Stage;
use crate::tools::checks::CheckResult;

/// Version of the event wire format, written in the `run.started` event.
/// New events and new fields keep the version; a removed, renamed or
/// retyped field bumps it.
pub const EVENTS_SCHEMA_VERSION: u32 = 1;

/// One thing that happened, with when and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, RFC 3339 in UTC.
    pub ts: String,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// The task this event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The stage this event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Everything kkrun reports, tagged by `type` with dotted names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EventKind {
    /// The run began. Always the first event; carries the wire-format version.
    #[serde(rename = "run.started")]
    RunStarted {
        /// Version of this event format ([`EVENTS_SCHEMA_VERSION`]).
        schema_version: u32,
        /// The run's id.
        run_id: String,
        /// kkrun's version.
        kkrun_version: String,
        /// Names of the tasks, in the order they will run (with
        /// `--partition`, this shard's tasks only).
        tasks: Vec<String>,
        /// The command line, with secrets redacted.
        #[serde(default)]
        command_line: Vec<String>,
        /// The shard this run is (`--partition`); absent for a whole run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<PartitionRecord>,
        /// The shards `kkrun report merge` joined into this run; absent for
        /// a run kkrun ran itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merged: Option<MergeRecord>,
        /// The fingerprints `--baseline-findings` gave, sorted, so that
        /// `kkrun resume` judges findings against the same baseline even
        /// when the file has changed or gone; absent without a baseline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline_findings: Option<Vec<String>>,
    },
    /// `kkrun resume` continued the run: appended to the same
    /// `events.jsonl` by a new process, whose `elapsed_ms` goes on from the
    /// last event of the stream.
    #[serde(rename = "run.resumed")]
    RunResumed {
        /// Which attempt this is: 2 for the first resume.
        attempt: u32,
        /// The tasks that had not finished and run again, in run order.
        tasks: Vec<String>,
        /// The resuming command line, with secrets redacted.
        #[serde(default)]
        command_line: Vec<String>,
    },
    /// A task that had not finished continues. The report keeps the first
    /// `kept_events` events of the task (everything up to its last
    /// completed step) and forgets the rest of the attempt that was cut
    /// short, except its time and usage, which `previous` records.
    #[serde(rename = "task.resumed")]
    TaskResumed {
        /// How many of the task's events (those carrying its name, from
        /// the start of the stream) the resumed task builds on.
        kept_events: usize,
        /// The snapshot the work tree was restored to (`null` when the task
        /// starts over: it had no snapshot yet).
        from_snapshot: Option<String>,
        /// The step the task continues after, e.g. `code`, `debug (round 2)`
        /// or `the final checks`; `start` when nothing was completed.
        after: String,
        /// Model exchanges of the kept steps; a replayed cassette resumes
        /// at the next one.
        replay_position: usize,
        /// The attempt that was cut short.
        previous: AttemptSummary,
        /// Commit id of HEAD in the workspace now.
        #[serde(default)]
        base_commit: Option<String>,
        /// What the sandbox enforces for the agent's commands now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<crate::sandbox::SandboxStatus>,
        /// The isolated worktree the task continues in (a new one: the
        /// cut-short attempt's was removed); absent when it runs in the
        /// user's work tree.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worktree: Option<String>,
    },
    /// What the run will do for one task; one per task, in run order, right
    /// after `run.started`.
    #[serde(rename = "task.planned")]
    TaskPlanned {
        /// The task file, as the user named it.
        file: String,
        /// Line of the task's `name:` key in its file.
        line: u64,
        /// The task's one-line description.
        description: String,
        /// `fix`, `refactor`, `feature` or `bug-hunt`.
        kind: String,
        /// The workspace directory.
        workspace: String,
        /// The `provider:model` the task runs with.
        model: String,
        /// The task's checks, in order.
        checks: Vec<CheckSpec>,
        /// The task and model this instance of a model matrix stands for
        /// (`models:` or several `--model`); absent for other tasks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matrix: Option<crate::task::MatrixInstance>,
    },
    /// A task began.
    #[serde(rename = "task.started")]
    TaskStarted {
        /// The task file.
        file: String,
        /// The `provider:model` the task runs with.
        model: String,
        /// Commit id of HEAD in the workspace (`null` on an unborn branch or
        /// when the repository could not be read).
        #[serde(default)]
        base_commit: Option<String>,
        /// What the sandbox enforces for the agent's commands on this
        /// machine (checks get the same filesystem rule); absent in event
        /// streams written before kkrun had a sandbox.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<crate::sandbox::SandboxStatus>,
        /// The project instruction files every stage is given (`AGENTS.md`
        /// files, then the task's `instructions:`); absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        instructions: Vec<crate::instructions::InstructionFile>,
        /// The linked worktree an isolated task runs in (`--isolate`,
        /// `--jobs`, a model matrix); absent when it runs in the user's
        /// work tree.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worktree: Option<String>,
    },
    /// A stage began.
    #[serde(rename = "stage.started")]
    StageStarted {
        /// Debug round (1-based) for code and debug stages entered from a loop-back; 1 otherwise.
        round: u32,
        /// Every tool the stage is offered, in the order the model sees
        /// them: built-in tools, MCP tools (`<server>__<tool>`), then the
        /// stage's finishing tools.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tools: Vec<String>,
    },
    /// A stage ended (or was skipped).
    #[serde(rename = "stage.finished")]
    StageFinished {
        /// How it ended.
        end: StageEndKind,
        /// Model turns taken.
        turns: u32,
        /// Tokens used by the stage.
        usage: Usage,
        /// Cost of the stage in USD, when known.
        cost_usd: Option<f64>,
        /// How long the stage took.
        duration_ms: u64,
        /// Debug round the stage belongs to (1 for the first pass).
        #[serde(default = "first_round")]
        round: u32,
        /// Detail of the end: the stuck reason, the skip reason, the error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Tool calls by tool name (finishing tools included).
        #[serde(default)]
        tool_calls: BTreeMap<String, u32>,
        /// The arguments of the finishing tool the stage ended with (the
        /// plan, the summary, `return_to_code`'s reason, the review), so
        /// that `kkrun resume` can continue after the stage from the event
        /// stream alone; absent when the stage did not finish normally, and
        /// in streams written before kkrun could resume.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
    /// kkrun ran the task's checks itself.
    #[serde(rename = "checks.finished")]
    ChecksFinished {
        /// Which run of the checks this was.
        phase: CheckPhase,
        /// Checks that passed (flaky ones included).
        passed: usize,
        /// Checks that failed.
        failed: usize,
        /// Names of the failed checks.
        failed_names: Vec<String>,
        /// These results decide the task: the final run, or a debug-phase
        /// run in which every check passed, which ends the debug loop.
        #[serde(default)]
        decides_outcome: bool,
        /// Every check's result, in the task's order.
        #[serde(default)]
        results: Vec<CheckResult>,
    },
    /// A `setup:` command of the task ran, before the base snapshot and
    /// the baseline checks.
    #[serde(rename = "setup.finished")]
    SetupFinished {
        /// Its place in `setup:` (0-based); 0 starts a new round of setup
        /// (a resumed task prepares its workspace again).
        index: usize,
        /// How many commands `setup:` has.
        total: usize,
        /// How the command ended.
        #[serde(flatten)]
        run: crate::tools::setup::SetupRun,
    },
    /// A ghost snapshot was written.
    #[serde(rename = "snapshot.taken")]
    SnapshotTaken {
        /// The ref, `refs/kkrun/<run>/<task>/<NN>-<stage>`.
        ref_name: String,
        /// The commit id.
        commit: String,
        /// What the snapshot records: `base`, a stage name, `interrupted`,
        /// `error` or `safety`.
        #[serde(default)]
        snapshot_stage: String,
        /// How the work tree was read: `full` (a scan of the whole tree) or
        /// `incremental` (the previous snapshot plus the paths kkrun's file
        /// tools wrote); absent when no snapshot was read this way.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scan: Option<String>,
    },
    /// The blueprint stage submitted its plan.
    #[serde(rename = "plan.submitted")]
    PlanSubmitted {
        /// The plan, as validated.
        plan: serde_json::Value,
    },
    /// The preview stage submitted its review.
    #[serde(rename = "review.submitted")]
    ReviewSubmitted {
        /// The review.
        review: Review,
    },
    /// A file of the task was written into the run directory.
    #[serde(rename = "artifact.written")]
    ArtifactWritten {
        /// Which file.
        artifact: ArtifactKind,
        /// Its path relative to the run directory.
        path: String,
    },
    /// The files the task changed, from `00-base` to its last snapshot,
    /// measured before any restore.
    #[serde(rename = "diff.computed")]
    DiffComputed {
        /// Every changed file, sorted by path.
        files_changed: Vec<FileChange>,
    },
    /// The work tree was restored to `00-base` after the task (a safety
    /// snapshot, announced before, holds what was there).
    #[serde(rename = "workspace.restored")]
    WorkspaceRestored {
        /// Why it was restored.
        reason: String,
    },
    /// A task ended.
    #[serde(rename = "task.finished")]
    TaskFinished {
        /// The outcome.
        outcome: TaskOutcome,
        /// Why, in one line.
        reason: String,
        /// Tokens used by the task.
        usage: Usage,
        /// Cost of the task in USD, when known.
        cost_usd: Option<f64>,
        /// How long the task took.
        duration_ms: u64,
        /// The structured output the task's `output_schema:` asked for,
        /// validated; absent when the task has none or did not get one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<serde_json::Value>,
    },
    /// The run ended; always the last event.
    #[serde(rename = "run.finished")]
    RunFinished {
        /// The exit code kkrun returns.
        exit_code: i32,
        /// Tasks that passed.
        passed: usize,
        /// Tasks that did not pass.
        not_passed: usize,
    },
    /// An error that ended a task or the run.
    #[serde(rename = "error")]
    Error {
        /// The error, with its causes.
        message: String,
    },
    /// A model turn completed.
    #[serde(rename = "model.turn")]
    ModelTurn {
        /// 1-based turn number within the stage.
        turn: u32,
        /// Tokens this turn used.
        usage: Usage,
        /// Cost of this turn in USD, when the price is known.
        cost_usd: Option<f64>,
        /// Number of tool calls the model made.
        tool_calls: usize,
        /// Characters of text in the reply.
        text_chars: usize,
        /// How long the turn took.
        duration_ms: u64,
    },
    /// A tool call was handled.
    #[serde(rename = "tool.call")]
    ToolCall {
        /// The provider's call id.
        call_id: String,
        /// The tool's name.
        tool: String,
        /// The arguments (truncated when long).
        arguments: String,
        /// How the call ended.
        outcome: ToolOutcome,
        /// The output given back to the model (truncated when long).
        output: String,
        /// How long the call took.
        duration_ms: u64,
    },
    /// The agent loop warned the model about repeating itself.
    #[serde(rename = "loop.warning")]
    LoopWarning {
        /// The repeated tool.
        tool: String,
        /// How many identical calls in a row.
        repeats: u32,
    },
    /// The agent loop ended the stage because the model went in circles.
    #[serde(rename = "loop.stuck")]
    LoopStuck {
        /// What the model did.
        reason: String,
    },
    /// The conversation was shortened to fit the context window.
    #[serde(rename = "context.compacted")]
    ContextCompacted {
        /// Estimated tokens before.
        before_tokens: u64,
        /// Estimated tokens after.
        after_tokens: u64,
        /// Tool outputs elided.
        elided_outputs: usize,
        /// Messages folded into the summary.
        summarized_messages: usize,
    },
    /// A budget decision that ended (or will end) the stage.
    #[serde(rename = "budget.exhausted")]
    BudgetExhausted {
        /// Which budget ran out.
        budget: BudgetKind,
        /// What was used.
        used: f64,
        /// The limit.
        limit: f64,
    },
    /// A provider request is retried.
    #[serde(rename = "provider.retry")]
    ProviderRetry {
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Wait before the next attempt.
        wait_ms: u64,
        /// Why it failed.
        reason: String,
    },
    /// An agent command changed the repository's git state (HEAD, a
    /// branch or tag, the stash, the index, `.git/config`, a hook). The
    /// change was put back and the task fails.
    #[serde(rename = "policy.violation")]
    PolicyViolation {
        /// The agent's command line (`run_checks` for the checks tool).
        command: String,
        /// Every change it made.
        changes: Vec<GitChange>,
        /// True when every change was put back.
        reverted: bool,
        /// Why putting it back failed, when it did.
        revert_error: Option<String>,
        /// The changes in one line: "the agent moved branch main (reverted)".
        reason: String,
    },
    /// An MCP server of the task is ready (or, replaying, was read from the
    /// cassette).
    #[serde(rename = "mcp.server_started")]
    McpServerStarted {
        /// The server's name in the task file.
        server: String,
        /// `stdio` or `http`.
        transport: String,
        /// The tools offered from it, `<server>__<tool>`.
        tools: Vec<String>,
        /// Those of them offered to read-only stages too.
        read_only_tools: Vec<String>,
        /// True when replayed from a cassette: nothing was started.
        replayed: bool,
        /// How long starting all of the task's servers took.
        duration_ms: u64,
    },
    /// An MCP server died during the task; its later calls are tool errors.
    #[serde(rename = "mcp.server_exited")]
    McpServerExited {
        /// The server's name.
        server: String,
        /// How it ended, e.g. `exited with status 7`.
        status: String,
        /// Its last stderr lines (redacted).
        stderr_tail: String,
    },
    /// An MCP server was stopped at the end of its task (its process group
    /// killed).
    #[serde(rename = "mcp.server_stopped")]
    McpServerStopped {
        /// The server's name.
        server: String,
    },
    /// A bug hunt's agent reported a finding (checked against the workspace,
    /// not yet reproduced).
    #[serde(rename = "finding.reported")]
    FindingReported {
        /// The finding as recorded.
        finding: Box<crate::findings::Finding>,
    },
    /// The preview stage withdrew a finding as false.
    #[serde(rename = "finding.withdrawn")]
    FindingWithdrawn {
        /// The finding's id (`F1`).
        id: String,
        /// Why.
        reason: String,
    },
    /// kkrun ran a finding's reproducer on the untouched base.
    #[serde(rename = "finding.reproduced")]
    FindingReproduced {
        /// The finding's id.
        id: String,
        /// `confirmed` or `unconfirmed`.
        status: crate::findings::FindingStatus,
        /// How the reproducer ended.
        reproduction: crate::findings::Reproduction,
    },
    /// A non-fatal problem worth a line in the log.
    #[serde(rename = "warning")]
    Warning {
        /// What happened and what to do.
        message: String,
    },
}

/// One attempt at a task that a later `kkrun resume` continued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptSummary {
    /// When the attempt started (RFC 3339, UTC).
    pub started_at: String,
    /// How long it ran, to its last event.
    pub duration_ms: u64,
    /// Tokens it used (every model turn, those of the lost step included).
    pub usage: Usage,
    /// What it cost in USD; `null` when a price was unknown.
    pub cost_usd: Option<f64>,
    /// How it ended: `killed` (the stream stops), or the outcome the task
    /// was given (`interrupted`).
    pub ended: String,
}

fn first_round() -> u32 {
    1
}

/// One event as its `events.jsonl` line (without the newline). An event
/// that cannot be serialized becomes an `error` line instead of a panic.
pub fn to_json_line(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_else(|e| {
        serde_json::json!({"type": "error", "ts": event.ts, "message": format!("event not serializable: {e}")})
            .to_string()
    })
}

//! The data of `report.json`. These types are the report's wire format: the
//! JSON Schema in `schemas/report.schema.json` is derived from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::events::StageEndKind;
pub use crate::events::{Review, TaskOutcome, Verdict};
use crate::provider::Usage;
pub use crate::snapshot::FileChange;
pub use crate::tools::checks::CheckRun;

/// Version of the report format; bumped on any incompatible change.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// The complete record of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Version of this format ([`REPORT_SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Version of kkrun that wrote the report.
    pub kkrun_version: String,
    /// The run's id, sortable by time (`20261124T101500Z-ab12cd`).
    pub run_id: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the run finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Wall-clock duration of the run.
    pub duration_ms: u64,
    /// The command line, with secrets redacted.
    pub command_line: Vec<String>,
    /// The exit code kkrun returned.
    pub exit_code: i32,
    /// One entry per task, in run order.
    pub tasks: Vec<TaskReport>,
    /// Sums over all tasks.
    pub totals: Totals,
    /// The shard this run is (`--partition`): its spec and the full task
    /// count; absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<crate::events::PartitionRecord>,
    /// Set by `kkrun report merge`: the shards this report joins and the
    /// tasks none of them ran. Absent from a run's own report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<crate::events::MergeRecord>,
    /// Set when `kkrun report rebuild` made this report from an event
    /// stream that ends without `run.finished` (the run was killed): says
    /// so, and why tasks without a final record are `interrupted`. Absent
    /// from a report the run wrote itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt: Option<String>,
}

/// An agent command that changed the git state: a `policy.violation`
/// event, with the stage it happened in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViolationReport {
    /// The stage whose command it was.
    pub stage: Option<crate::task::Stage>,
    /// The agent's command line (`run_checks` for the checks tool).
    pub command: String,
    /// Every change it made.
    pub changes: Vec<crate::guard::GitChange>,
    /// True when every change was put back.
    pub reverted: bool,
    /// Why putting it back failed, when it did.
    pub revert_error: Option<String>,
    /// The changes in one line.
    pub reason: String,
}

/// The record of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskReport {
    /// The task's name.
    pub name: String,
    /// The task's one-line description.
    pub description: String,
    /// The task file, as given on the command line.
    pub file: String,
    /// Line of the task in its file.
    pub line: u64,
    /// `fix`, `refactor`, `feature` or `bug-hunt`.
    pub kind: String,
    /// The workspace directory.
    pub workspace: String,
    /// The `provider:model` used.
    pub model: String,
    /// The task and model this instance of a model matrix stands for
    /// (`models:` or several `--model`); absent for other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<crate::task::MatrixInstance>,
    /// The linked worktree the task ran in when isolated (`--isolate`,
    /// `--jobs`, a model matrix); absent when it ran in the user's work
    /// tree. Removed after the task unless `--keep-worktrees`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<String>,
    /// Commit id of HEAD when the task started (`null` on an unborn branch).
    pub base_commit: Option<String>,
    /// How the task ended.
    pub outcome: TaskOutcome,
    /// Why, in one line.
    pub reason: String,
    /// When the task started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock duration of the task.
    pub duration_ms: u64,
    /// Stage runs in order (a loop-back shows code and debug again).
    pub stages: Vec<StageReport>,
    /// Every check with its baseline and final result.
    pub checks: Vec<CheckReport>,
    /// Files changed between `00-base` and the last snapshot.
    pub files_changed: Vec<FileChange>,
    /// The plan the blueprint stage submitted.
    pub plan: Option<serde_json::Value>,
    /// The preview stage's review.
    pub review: Option<Review>,
    /// Every snapshot of the task, in order (a resumed task's include those
    /// of the steps its cut-short attempt lost).
    pub snapshots: Vec<SnapshotReport>,
    /// Whether the work tree was restored to `00-base` at the end, and why.
    pub restored_to_base: Option<String>,
    /// Agent commands that changed the repository's git state (each was
    /// reverted, or says why not); any of them fails the task. Left out
    /// when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_violations: Vec<ViolationReport>,
    /// Tokens used over all stages.
    pub usage: Usage,
    /// Cost in USD over all stages; `null` when a price is unknown.
    pub cost_usd: Option<f64>,
    /// Tool calls by tool name, over all stages.
    pub tool_calls: BTreeMap<String, u32>,
    /// A bug hunt's findings, in the order reported (withdrawn ones
    /// included); empty for other kinds of task.
    pub findings: Vec<crate::findings::Finding>,
    /// Files of this task in the run directory, relative to it.
    pub artifacts: Artifacts,
    /// What the sandbox enforced for the agent's commands (checks get the
    /// same filesystem rule); absent for a task that never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::SandboxStatus>,
    /// The task's MCP servers (absent when it declares none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<McpServerReport>,
    /// Set when `kkrun resume` continued the task after the run was cut
    /// short; absent for a task that ran in one go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<ResumedReport>,
    /// The preview's structured output, validated against the task's
    /// `output_schema:` (absent when the task has none or did not get one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The project instruction files its stages were given (`AGENTS.md`
    /// files, outermost first, then the task's `instructions:`); absent
    /// when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instructions: Vec<crate::instructions::InstructionFile>,
    /// The task's `setup:` commands that ran, in order (a failed one is the
    /// last: it ended the task); absent when the task has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<crate::tools::setup::SetupRun>,
}

/// How a task was resumed: where it continued, and every attempt's time
/// and usage. The task's own `usage`, `cost_usd` and `duration_ms` are the
/// sums over its attempts (budgets count them all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumedReport {
    /// The snapshot the last resume restored the work tree to (`null` when
    /// the task started over).
    pub from_snapshot: Option<String>,
    /// The step the last resume continued after, e.g. `code`, `debug (round
    /// 2)` or `the final checks`; `start` when the task started over.
    pub after: String,
    /// Every attempt, the first one first; the last is the one that
    /// finished the task (`ended` is then its outcome).
    pub attempts: Vec<crate::events::AttemptSummary>,
}

/// One MCP server of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerReport {
    /// The server's name in the task file.
    pub name: String,
    /// `stdio` or `http`.
    pub transport: String,
    /// The tools offered from it, `<server>__<tool>`.
    pub tools: Vec<String>,
    /// Those of them offered to read-only stages too.
    pub read_only_tools: Vec<String>,
    /// True when the run replayed a cassette, so the server was not started.
    pub replayed: bool,
    /// How it ended when it died during the task, e.g. `exited with status
    /// 7`; `null` when it ran until the task stopped it.
    pub exited: Option<String>,
    /// Its last stderr lines when it died (redacted).
    pub stderr_tail: Option<String>,
}

/// One run of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageReport {
    /// `blueprint`, `code`, `debug` or `preview`.
    pub stage: String,
    /// Debug round this run belongs to (1 for the first pass).
    pub round: u32,
    /// How the stage ended.
    pub end: StageEndKind,
    /// Detail of the end (the stuck reason, the skip reason, the error).
    pub detail: Option<String>,
    /// When the stage started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Model turns taken.
    pub turns: u32,
    /// Tokens used.
    pub usage: Usage,
    /// Cost in USD; `null` when the price is unknown.
    pub cost_usd: Option<f64>,
    /// Tool calls by tool name.
    pub tool_calls: BTreeMap<String, u32>,
    /// The snapshot taken after the stage.
    pub snapshot: Option<SnapshotReport>,
}

/// A ghost snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotReport {
    /// `base`, a stage name, `interrupted`, `error` or `safety`.
    pub stage: String,
    /// `refs/kkrun/<run>/<task>/<NN>-<stage>`.
    pub ref_name: String,
    /// The commit id.
    pub commit: String,
}

/// How a check's final result compares with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Failed at base, passes at the end.
    Fixed,
    /// Failed at base, still fails.
    StillFailing,
    /// Passed at base, fails at the end.
    NewlyBroken,
    /// Passed at base, passes at the end.
    Passing,
    /// No final run happened (the task ended early).
    NotRun,
}

impl CheckStatus {
    /// The status as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Fixed => "fixed",
            CheckStatus::StillFailing => "still_failing",
            CheckStatus::NewlyBroken => "newly_broken",
            CheckStatus::Passing => "passing",
            CheckStatus::NotRun => "not_run",
        }
    }

    /// Compares a baseline result with a final one.
    pub fn from_runs(baseline_passed: bool, final_passed: Option<bool>) -> CheckStatus {
        match (baseline_passed, final_passed) {
            (_, None) => CheckStatus::NotRun,
            (false, Some(true)) => CheckStatus::Fixed,
            (false, Some(false)) => CheckStatus::StillFailing,
            (true, Some(false)) => CheckStatus::NewlyBroken,
            (true, Some(true)) => CheckStatus::Passing,
        }
    }
}

/// One check of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    /// The check's name.
    pub name: String,
    /// The command.
    pub run: String,
    /// Line of the check's `name:` in the task file; 0 when unknown.
    #[serde(default)]
    pub line: u64,
    /// Baseline versus final.
    pub status: CheckStatus,
    /// The run on the untouched base.
    pub baseline: Option<CheckRun>,
    /// The run after debug, which decides pass/fail.
    #[serde(rename = "final")]
    pub final_run: Option<CheckRun>,
}

/// A task's files in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifacts {
    /// The plan, `<task>/plan.json`.
    pub plan: Option<String>,
    /// Every message of every stage, `<task>/transcript.jsonl`.
    pub transcript: Option<String>,
    /// Diff from `00-base` to the last snapshot, `<task>/final.patch`.
    pub patch: Option<String>,
    /// The structured output of `output_schema:`, `<task>/output.json`;
    /// absent when the task has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Sums over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    /// Tasks in the run.
    pub tasks: usize,
    /// Tasks per outcome name.
    pub outcomes: BTreeMap<String, usize>,
    /// Tokens over all tasks.
    pub usage: Usage,
    /// Cost over all tasks; `null` when any price is unknown.
    pub cost_usd: Option<f64>,
}

impl Totals {
    /// Sums `tasks`.
    pub fn from_tasks(tasks: &[TaskReport]) -> Totals {
        let mut outcomes = BTreeMap::new();
        let mut usage = Usage::default();
        let mut cost = Some(0.0);
        for task in tasks {
            *outcomes
                .entry(task.outcome.as_str().to_string())
                .or_insert(0) += 1;
            usage += task.usage;
            cost = match (cost, task.cost_usd) {
                (Some(sum), Some(c)) => Some(sum + c),
                _ => None,
            };
        }
        Totals {
            tasks: tasks.len(),
            outcomes,
            usage,
            cost_usd: cost,
        }
    }
}

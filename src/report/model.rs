//! The data of `report.json`. These types are the report's wire format: the
//! JSON Schema in `schemas/report.schema.json` is derived from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit_codes;

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
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// Every check passed and the review did not block.
    Passed,
    /// Checks failed, the review requested changes, or the agent gave up.
    Failed,
    /// A token, cost or turn budget ran out before the task could finish.
    BudgetExhausted,
    /// The task's or a stage's wall-clock limit ran out.
    TimedOut,
    /// Infrastructure failed: provider, git, I/O.
    Error,
    /// The run was interrupted (SIGINT/SIGTERM).
    Interrupted,
}

impl TaskOutcome {
    /// The outcome's name as written in reports and events.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskOutcome::Passed => "passed",
            TaskOutcome::Failed => "failed",
            TaskOutcome::BudgetExhausted => "budget_exhausted",
            TaskOutcome::TimedOut => "timed_out",
            TaskOutcome::Error => "error",
            TaskOutcome::Interrupted => "interrupted",
        }
    }

    /// The exit code this outcome contributes to the run's exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            TaskOutcome::Passed => exit_codes::SUCCESS,
            TaskOutcome::Failed => exit_codes::TASK_FAILED,
            TaskOutcome::BudgetExhausted | TaskOutcome::TimedOut => exit_codes::BUDGET_EXHAUSTED,
            TaskOutcome::Error => exit_codes::INFRASTRUCTURE,
            TaskOutcome::Interrupted => exit_codes::INTERRUPTED,
        }
    }
}

/// Tokens used, as reports show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenUsage {
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl From<crate::provider::Usage> for TokenUsage {
    fn from(usage: crate::provider::Usage) -> TokenUsage {
        TokenUsage {
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            output_tokens: usage.output_tokens,
        }
    }
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
    pub files_changed: Vec<FileChangeReport>,
    /// The plan the blueprint stage submitted.
    pub plan: Option<serde_json::Value>,
    /// The preview stage's review.
    pub review: Option<Review>,
    /// Every snapshot of the task, in order.
    pub snapshots: Vec<SnapshotReport>,
    /// Whether the work tree was restored to `00-base` at the end, and why.
    pub restored_to_base: Option<String>,
    /// Tokens used over all stages.
    pub usage: TokenUsage,
    /// Cost in USD over all stages; `null` when a price is unknown.
    pub cost_usd: Option<f64>,
    /// Tool calls by tool name, over all stages.
    pub tool_calls: BTreeMap<String, u32>,
    /// A bug hunt's findings, in the order reported (withdrawn ones
    /// included); empty for other kinds of task.
    pub findings: Vec<crate::findings::Finding>,
    /// Files of this task in the run directory, relative to it.
    pub artifacts: Artifacts,
}

/// One run of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageReport {
    /// `blueprint`, `code`, `debug` or `preview`.
    pub stage: String,
    /// Debug round this run belongs to (1 for the first pass).
    pub round: u32,
    /// How the stage ended: `finished`, `return_to_code`, `skipped`,
    /// `max_turns`, `max_tokens`, `max_cost`, `timeout`, `stuck`, `error`, `interrupted`.
    pub end: String,
    /// Detail of the end (the stuck reason, the skip reason, the error).
    pub detail: Option<String>,
    /// When the stage started (RFC 3339, UTC).
    pub started_at: String,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Model turns taken.
    pub turns: u32,
    /// Tokens used.
    pub usage: TokenUsage,
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
    /// Baseline versus final.
    pub status: CheckStatus,
    /// The run on the untouched base.
    pub baseline: Option<CheckRun>,
    /// The run after debug, which decides pass/fail.
    #[serde(rename = "final")]
    pub final_run: Option<CheckRun>,
}

/// One execution of a check (with its retries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRun {
    /// Whether it passed (a flaky pass counts).
    pub passed: bool,
    /// Failed at first, passed on a retry.
    pub flaky: bool,
    /// Exit code of the last attempt; `null` when killed.
    pub exit_code: Option<i32>,
    /// The last attempt hit the check's timeout.
    pub timed_out: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Wall-clock duration over all attempts.
    pub duration_ms: u64,
    /// Tail of the last attempt's output.
    pub output_tail: String,
    /// Output tails of failed attempts before a flaky pass.
    pub failed_attempts: Vec<String>,
}

/// A file changed by the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileChangeReport {
    /// Path relative to the repository root.
    pub path: String,
    /// `added`, `modified`, `deleted`, `renamed` or `typechange`.
    pub status: String,
    /// Lines added.
    pub additions: usize,
    /// Lines removed.
    pub deletions: usize,
}

/// The preview stage's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The change does what the task asked.
    Approve,
    /// The change should not be merged as is.
    RequestChanges,
}

/// The preview stage's review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// The verdict.
    pub verdict: Verdict,
    /// Human summary in Markdown.
    pub summary: String,
    /// Risks the reviewer sees.
    pub risks: Vec<String>,
    /// Whether the verdict is advisory (does not fail the task).
    pub advisory: bool,
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
    pub usage: TokenUsage,
    /// Cost over all tasks; `null` when any price is unknown.
    pub cost_usd: Option<f64>,
}

impl Totals {
    /// Sums `tasks`.
    pub fn from_tasks(tasks: &[TaskReport]) -> Totals {
        let mut outcomes = BTreeMap::new();
        let mut usage = TokenUsage::default();
        let mut cost = Some(0.0);
        for task in tasks {
            *outcomes
                .entry(task.outcome.as_str().to_string())
                .or_insert(0) += 1;
            usage.input_tokens += task.usage.input_tokens;
            usage.cached_input_tokens += task.usage.cached_input_tokens;
            usage.output_tokens += task.usage.output_tokens;
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

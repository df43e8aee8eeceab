//! The typed values events carry: how tasks, stages and tool calls end,
//! which run of the checks a result is, the review. The report uses the
//! same types, so a name is spelled in one place.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::exit_codes;

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
    /// The run was interrupted (SIGINT/SIGTERM), or ended without its
    /// final record.
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

impl std::fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a stage run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageEndKind {
    /// The model called the stage's finishing tool.
    Finished,
    /// Debug sent the work back to code.
    ReturnToCode,
    /// The stage did not run (no checks, or every check already passed).
    Skipped,
    /// The stage's turn limit ran out.
    MaxTurns,
    /// The task's token budget ran out.
    MaxTokens,
    /// The task's cost budget ran out.
    MaxCost,
    /// The stage's or the task's time ran out.
    Timeout,
    /// The model went in circles.
    Stuck,
    /// An agent command changed the repository's git state; the task fails.
    PolicyViolation,
    /// The provider or a tool failed beyond recovery.
    Error,
    /// SIGINT/SIGTERM stopped the stage, or the run ended without its
    /// final record.
    Interrupted,
}

impl StageEndKind {
    /// The end's name as written in reports and events.
    pub fn as_str(self) -> &'static str {
        match self {
            StageEndKind::Finished => "finished",
            StageEndKind::ReturnToCode => "return_to_code",
            StageEndKind::Skipped => "skipped",
            StageEndKind::MaxTurns => "max_turns",
            StageEndKind::MaxTokens => "max_tokens",
            StageEndKind::MaxCost => "max_cost",
            StageEndKind::Timeout => "timeout",
            StageEndKind::Stuck => "stuck",
            StageEndKind::PolicyViolation => "policy_violation",
            StageEndKind::Error => "error",
            StageEndKind::Interrupted => "interrupted",
        }
    }

    /// Whether the stage ended the way the pipeline intends (as opposed to
    /// a budget, a loop guard, an error or an interrupt).
    pub fn is_normal(self) -> bool {
        matches!(
            self,
            StageEndKind::Finished | StageEndKind::ReturnToCode | StageEndKind::Skipped
        )
    }
}

impl std::fmt::Display for StageEndKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which run of a task's checks a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckPhase {
    /// On the untouched base, before any stage: what was already broken.
    Baseline,
    /// After code, at the start of a debug round.
    Debug,
    /// After debug: kkrun's own verdict on the work.
    Final,
}

impl CheckPhase {
    /// The phase's name as written in events and on the console.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckPhase::Baseline => "baseline",
            CheckPhase::Debug => "debug",
            CheckPhase::Final => "final",
        }
    }
}

impl std::fmt::Display for CheckPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Outcome of one tool call, as events and transcripts report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    /// The tool ran and succeeded.
    Ok,
    /// The tool ran and reported an error back to the model.
    Error,
    /// The call was refused before running (policy, confinement, unknown tool).
    Refused,
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

impl Review {
    /// Whether the review fails the task: changes requested, not advisory.
    pub fn blocks(&self) -> bool {
        self.verdict == Verdict::RequestChanges && !self.advisory
    }
}

/// A task's file in the run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// `<task>/plan.json`.
    Plan,
    /// `<task>/transcript.jsonl`.
    Transcript,
    /// `<task>/final.patch`.
    Patch,
    /// `<task>/output.json`: the structured output of `output_schema:`.
    Output,
}

/// A check as the task file declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// The check's name.
    pub name: String,
    /// The command.
    pub run: String,
    /// Line of the check's `name:` in the task file; 0 when unknown (events
    /// written before kkrun recorded it).
    #[serde(default)]
    pub line: u64,
}

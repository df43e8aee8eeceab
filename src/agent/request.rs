//! What a stage is asked to do and what comes back: the request with its
//! finishing tools, how the stage ended, and the errors outside the
//! model's control.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::budget::BudgetKind;
use crate::guard::PolicyViolation;
use crate::provider::{Message, ProviderError, ToolSpec, Usage};
use crate::task::Stage;
use crate::tools::ToolSet;

/// A tool that ends the stage when called with valid arguments
/// (`submit_plan`, `finish_stage`, ...).
pub struct FinishTool {
    /// What the model is offered.
    pub spec: ToolSpec,
    /// Checks the arguments; `Err` is sent back to the model as the tool's
    /// error, so it should say exactly what is wrong.
    pub validate: Validator,
}

/// Checks a finishing tool's arguments; `Err` says what is wrong.
pub type Validator = Box<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for FinishTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishTool")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

/// Everything one stage needs.
#[derive(Debug)]
pub struct StageRequest {
    /// Which stage this is (for messages).
    pub stage: Stage,
    /// The system prompt; it never changes during the stage.
    pub system_prompt: String,
    /// The initial user message(s): the task for this stage. Never compacted.
    pub messages: Vec<Message>,
    /// The stage's tools.
    pub tool_set: ToolSet,
    /// The tools that end the stage; offered after the tool set's tools.
    pub finish_tools: Vec<FinishTool>,
    /// Model calls allowed in this stage.
    pub max_turns: u32,
    /// Wall-clock limit of this stage (the task's own limit applies too).
    pub timeout: Option<Duration>,
    /// The model's context window in tokens; `None` for a default by model
    /// name ([`default_context_window`]).
    pub context_window: Option<u64>,
    /// The prompt-cache key of every request of the stage
    /// ([`TurnRequest::cache_key`]); `None` sends none.
    pub cache_key: Option<String>,
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StageEnd {
    /// The model called a finishing tool with valid arguments.
    Finished {
        /// The finishing tool's name.
        tool: String,
        /// Its arguments, parsed.
        arguments: Value,
    },
    /// The stage's turn limit was reached.
    MaxTurns,
    /// The task's token budget ran out.
    MaxTokens,
    /// The task's cost budget ran out.
    MaxCost,
    /// The stage's or the task's time ran out.
    Timeout,
    /// The model went in circles (repeated calls, empty replies).
    Stuck {
        /// What it did.
        reason: String,
    },
    /// An agent command changed the repository's git state; the guard put
    /// it back, and the task fails.
    PolicyViolation {
        /// What the commands changed.
        violations: Vec<PolicyViolation>,
    },
}

impl StageEnd {
    /// The end's name in reports: `finished`, `max_turns`, `max_tokens`,
    /// `max_cost`, `timeout` or `stuck`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StageEnd::Finished { .. } => "finished",
            StageEnd::MaxTurns => "max_turns",
            StageEnd::MaxTokens => "max_tokens",
            StageEnd::MaxCost => "max_cost",
            StageEnd::Timeout => "timeout",
            StageEnd::Stuck { .. } => "stuck",
            StageEnd::PolicyViolation { .. } => "policy_violation",
        }
    }

    pub(super) fn from_budget(kind: BudgetKind) -> StageEnd {
        match kind {
            BudgetKind::MaxTurns => StageEnd::MaxTurns,
            BudgetKind::MaxTokens => StageEnd::MaxTokens,
            BudgetKind::MaxCost => StageEnd::MaxCost,
            BudgetKind::Timeout => StageEnd::Timeout,
        }
    }
}

/// What a stage did.
#[derive(Debug, Clone, PartialEq)]
pub struct StageOutcome {
    /// How it ended.
    pub end: StageEnd,
    /// Model turns taken.
    pub turns: u32,
    /// Tokens used by this stage.
    pub usage: Usage,
    /// Cost of this stage in USD; `None` when a turn's price was unknown.
    pub cost_usd: Option<f64>,
    /// Tool calls handled, by tool name (finishing tools included).
    pub tool_calls: BTreeMap<String, u32>,
    /// The full transcript of the stage, uncompacted: the initial
    /// messages, every reply and every tool result.
    pub messages: Vec<Message>,
    /// How long the stage took.
    pub duration_ms: u64,
}

/// A stage that could not run for reasons outside the model's control.
/// Budgets and a misbehaving model are [`StageEnd`]s, not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The provider failed after its retries.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The stage request itself is unusable (a programming error).
    #[error("invalid stage request: {0}")]
    InvalidRequest(String),
}

//! The agent loop: one stage as a bounded conversation with the model.
//!
//! [`run_stage`] drives the conversation; [`BudgetTracker`] carries the
//! task's budgets across stages; loop guards and context compaction keep an
//! unattended model from burning its budget or overflowing its context.

mod budget;
mod compact;
mod guard;
mod request;
mod stage;

pub use budget::{BudgetKind, BudgetTracker, Exhausted};
pub use compact::{
    Compaction, compact, default_context_window, estimate_tokens, fixed_tokens, messages_tokens,
};
pub use guard::{EMPTY_REPLIES_STUCK, REPEAT_STUCK, REPEAT_WARNING};
pub use request::{AgentError, FinishTool, StageEnd, StageOutcome, StageRequest, Validator};
pub use stage::run_stage;

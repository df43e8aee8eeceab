//! The tools the agent may call, confined to the workspace, and the check
//! runner.
//!
//! Every tool takes a JSON object of arguments, answers with text for the
//! model, and never fails the run: bad arguments, refusals and failed
//! commands all go back to the model as a [`ToolResult`] it can act on.

pub mod changes;
pub mod checks;
mod confine;
mod context;
mod edit;
pub mod findings;
mod fs;
mod git_watch;
mod invocation;
mod patch;
mod policy;
pub mod process;
mod registry;
mod replace;
mod search;
pub mod setup;
mod shell;
mod shell_rules;
mod shell_syntax;

pub use changes::ChangeLog;
pub use checks::{CheckResult, CheckRun, run_checks};
pub use context::ToolContext;
pub use policy::{PolicyRefusal, ShellGuard, ShellPolicyError};
pub use registry::{
    Access, Tool, ToolFuture, ToolResult, ToolSet, ToolTable, ToolTableError, execute,
};

/// Why a tool call did not do what the model asked. Both kinds go back to
/// the model; none ends the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// Refused before doing anything: confinement, shell policy, a tool the
    /// stage does not offer.
    #[error("{0}")]
    Refused(String),
    /// The tool ran and failed: bad arguments, a missing file, an edit that
    /// did not match.
    #[error("{0}")]
    Failed(String),
}

//! The git-state guard around one agent command: the state taken before
//! it, compared (and put back) when it ends.

use std::sync::Arc;

use super::{ToolContext, ToolError};
use crate::guard::{GitGuard, GitState, PolicyViolation};

/// What the model is told when its command changed the git state.
pub(super) fn violation_notice(violation: &PolicyViolation) -> String {
    format!(
        "kkrun: this command changed the repository's git state, which the agent may not do: {}. The task has failed and the stage ends here.",
        violation.reason
    )
}

/// The git state taken before an agent command, compared again when the
/// command ends. When the command's future is dropped instead (a time
/// limit, an interrupt), the comparison runs on drop, after the command's
/// process group was killed, so no change slips through.
pub(super) struct GitWatch {
    pending: Option<(Arc<GitGuard>, String, GitState)>,
}

impl GitWatch {
    pub(super) async fn start(ctx: &ToolContext, command: &str) -> Result<GitWatch, ToolError> {
        let Some(guard) = ctx.git_guard.clone() else {
            return Ok(GitWatch { pending: None });
        };
        let capture = {
            let guard = Arc::clone(&guard);
            tokio::task::spawn_blocking(move || guard.capture()).await
        };
        let before = match capture {
            Ok(Ok(state)) => state,
            Ok(Err(error)) => {
                return Err(ToolError::Refused(format!(
                    "not run: kkrun cannot read the repository's git state to guard it ({error}); the command would run unguarded"
                )));
            }
            Err(error) => {
                return Err(ToolError::Refused(format!(
                    "not run: reading the git state failed internally ({error})"
                )));
            }
        };
        Ok(GitWatch {
            pending: Some((guard, command.to_string(), before)),
        })
    }

    /// Compares, reverts what changed, and returns the violation.
    pub(super) async fn finish(mut self) -> Option<PolicyViolation> {
        let (guard, command, before) = self.pending.take()?;
        let check = {
            let guard = Arc::clone(&guard);
            let command = command.clone();
            tokio::task::spawn_blocking(move || guard.check_after(&command, &before)).await
        };
        check.unwrap_or_else(|error| {
            Some(PolicyViolation {
                command,
                changes: Vec::new(),
                reverted: false,
                revert_error: Some(error.to_string()),
                reason: format!("checking the git state failed internally: {error}"),
            })
        })
    }
}

impl Drop for GitWatch {
    fn drop(&mut self) {
        if let Some((guard, command, before)) = self.pending.take() {
            guard.check_after(&command, &before);
        }
    }
}

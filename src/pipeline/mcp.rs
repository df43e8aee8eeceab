//! The task's MCP servers: started before the first stage (or, replaying a
//! cassette, read from it), stopped when the task ends however it ends.

use std::sync::Arc;

use super::Stop;
use super::task_run::TaskRun;
use crate::events::{EventKind, TaskOutcome};
use crate::mcp::{McpSession, Origin};

impl TaskRun<'_, '_> {
    /// Starts the declared servers and hands their tools to the stages. A
    /// server that fails to start ends the task as `error`, naming the
    /// server and its stderr tail.
    pub(super) async fn start_mcp(&mut self) -> Result<(), Stop> {
        if self.task.mcp.is_empty() {
            return Ok(());
        }
        let provider = self.env.provider;
        let origin = match provider.replayed_mcp() {
            Some(records) => Origin::Replay(records.to_vec()),
            None => Origin::Live(provider.mcp_recorder()),
        };
        let started = {
            let start =
                McpSession::start(&self.task.mcp, &self.tools.workspace, origin, &self.events);
            tokio::select! {
                started = start => Some(started),
                () = self.env.interrupt.wait() => None,
            }
        };
        match started {
            Some(Ok(session)) => {
                self.tools.mcp = Some(Arc::new(session));
                Ok(())
            }
            Some(Err(error)) => {
                let message = error.to_string();
                self.events.emit(EventKind::Error {
                    message: message.clone(),
                });
                Err(Stop::new(TaskOutcome::Error, message))
            }
            None => Err(Stop::new(
                TaskOutcome::Interrupted,
                "interrupted while starting the MCP servers",
            )),
        }
    }

    /// Stops the servers (their process groups are killed).
    pub(super) async fn stop_mcp(&mut self) {
        if let Some(session) = self.tools.mcp.take() {
            session.stop().await;
        }
    }
}

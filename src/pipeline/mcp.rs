//! The task's MCP servers: started before the first stage (or, replaying a
//! cassette, read from it), stopped when the task ends however it ends.

use std::sync::Arc;

use super::Stop;
use super::task_run::TaskRun;
use crate::events::{EventKind, TaskOutcome, ToolOutcome};
use crate::mcp::{McpSession, McpTool, Origin};
use crate::tools::{Access, Tool, ToolError, ToolTable};

impl TaskRun<'_, '_> {
    /// Starts the declared servers and hands their tools to the stages. A
    /// server that fails to start ends the task as `error`, naming the
    /// server and its stderr tail.
    pub(super) async fn start_mcp(&mut self) -> Result<(), Stop> {
        if self.task.mcp.is_empty() {
            return Ok(());
        }
        // A server runs beside the task and may write at any time: every
        // snapshot of this task scans the work tree.
        self.tools.changes.disable();
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
                let session = Arc::new(session);
                let mut table = ToolTable::clone(&self.tools.tools);
                for tool in session.tools() {
                    table
                        .add(table_entry(&session, tool))
                        .map_err(|e| Stop::error(&format!("mcp tool `{}`", tool.name), &e))?;
                }
                self.tools.tools = Arc::new(table);
                self.mcp = Some(session);
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
        if let Some(session) = self.mcp.take() {
            session.stop().await;
        }
    }
}

/// The tool-table entry of an MCP tool: offered to read-only stages only
/// when it is read-only, its schema the server's, its handler the session.
fn table_entry(session: &Arc<McpSession>, tool: &McpTool) -> Tool {
    let access = if tool.read_only {
        Access::ReadOnly
    } else {
        Access::Writes
    };
    let session = Arc::clone(session);
    let name = tool.name.clone();
    Tool::with_schema(
        &tool.name,
        tool.description.clone(),
        access,
        tool.input_schema.clone(),
        move |_, arguments| {
            let session = Arc::clone(&session);
            let name = name.clone();
            Box::pin(async move {
                // The table has already refused a writing tool in a
                // read-only stage.
                let result = session.call(&name, &arguments, false).await;
                match result.outcome {
                    ToolOutcome::Ok => Ok(result.content),
                    ToolOutcome::Error => Err(ToolError::Failed(result.content)),
                    ToolOutcome::Refused => Err(ToolError::Refused(result.content)),
                }
            })
        },
    )
}

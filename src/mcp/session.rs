//! All MCP servers of one task: started together when the task starts,
//! called by the agent's tool calls, stopped when the task ends — or, for a
//! replayed run, answered from the cassette without starting anything.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use futures_util::future::join_all;
use serde_json::Value;

use super::catalog::{McpTool, offered_tools, render_result};
use super::client::{CallFailure, Connection};
use super::config::ServerConfig;
use super::error::McpError;
use super::record::{Death, Record, ReplayLog};
use crate::events::{EventKind, EventSink, ToolOutcome};
use crate::provider::McpRecorder;
use crate::provider::redact::Redactor;
use crate::tools::ToolResult;

/// Where a session's servers come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Start the declared servers; with a recorder, write what they list and
    /// return into the `--record` cassette.
    Live(Option<McpRecorder>),
    /// Answer from a replayed cassette's MCP records; nothing is started.
    Replay(Vec<Value>),
}

/// What a report says about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSummary {
    /// The server's name.
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    /// The tools offered from it (`<server>__<tool>`).
    pub tools: Vec<String>,
    /// How it ended when it died during the task, e.g. `exited with status 7`.
    pub exited: Option<String>,
    /// Its last stderr lines when it died (redacted).
    pub stderr_tail: Option<String>,
}

struct Server {
    config: ServerConfig,
    connection: tokio::sync::Mutex<Option<Connection>>,
    death: Mutex<Option<Death>>,
}

/// The MCP servers of a task and the tools they offer.
pub struct McpSession {
    servers: Vec<Server>,
    tools: Vec<McpTool>,
    redactor: Redactor,
    events: EventSink,
    recorder: Option<McpRecorder>,
    replay: Option<Mutex<ReplayLog>>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("servers", &self.servers.len())
            .field("tools", &self.tools.len())
            .field("replay", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}

impl McpSession {
    /// A session without servers.
    pub fn empty() -> McpSession {
        McpSession {
            servers: Vec::new(),
            tools: Vec::new(),
            redactor: Redactor::default(),
            events: EventSink::new(),
            recorder: None,
            replay: None,
        }
    }

    /// Starts every server in `configs` at once (stdio servers in
    /// `workspace`), initialises them and lists their tools; or, for
    /// [`Origin::Replay`], takes their tools from the cassette. Reports each
    /// server as `mcp.server_started` to `events`.
    ///
    /// The first server that fails ends the start: the others are stopped
    /// and the error names the server and its stderr tail.
    pub async fn start(
        configs: &[ServerConfig],
        workspace: &Path,
        origin: Origin,
        events: &EventSink,
    ) -> Result<McpSession, McpError> {
        let mut session = McpSession::empty();
        session.events = events.clone();
        match origin {
            Origin::Live(recorder) => {
                session.recorder = recorder;
                session.start_live(configs, workspace).await?;
            }
            Origin::Replay(records) => {
                session.replay = Some(Mutex::new(ReplayLog::new(records)));
                session.start_replayed(configs)?;
            }
        }
        Ok(session)
    }

    async fn start_live(
        &mut self,
        configs: &[ServerConfig],
        workspace: &Path,
    ) -> Result<(), McpError> {
        let started = Instant::now();
        self.redactor = Redactor::new(configs.iter().flat_map(ServerConfig::referenced_values));
        let results = join_all(
            configs
                .iter()
                .map(|config| Connection::start(config, workspace)),
        )
        .await;
        let mut connections = Vec::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(connection) => connections.push(connection),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            join_all(connections.into_iter().map(Connection::stop)).await;
            return Err(self.redact_error(error));
        }
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        for (config, connection) in configs.iter().zip(connections) {
            self.record(&Record::Tools {
                server: config.name.clone(),
                tools: connection.listed.clone(),
            });
            self.add_server(config, &connection.listed, false, duration_ms);
            self.servers.push(Server {
                config: config.clone(),
                connection: tokio::sync::Mutex::new(Some(connection)),
                death: Mutex::new(None),
            });
        }
        Ok(())
    }

    fn start_replayed(&mut self, configs: &[ServerConfig]) -> Result<(), McpError> {
        for config in configs {
            let listed = self
                .replay
                .as_ref()
                .and_then(|log| {
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .tools(&config.name)
                })
                .ok_or_else(|| McpError::NotRecorded {
                    server: config.name.clone(),
                })?;
            self.add_server(config, &listed, true, 0);
            self.servers.push(Server {
                config: config.clone(),
                connection: tokio::sync::Mutex::new(None),
                death: Mutex::new(None),
            });
        }
        Ok(())
    }

    /// Adds a server's offered tools and reports it started.
    fn add_server(
        &mut self,
        config: &ServerConfig,
        listed: &[super::catalog::ListedTool],
        replayed: bool,
        duration_ms: u64,
    ) {
        let (tools, warnings) = offered_tools(config, listed);
        for message in warnings {
            self.events.emit(EventKind::Warning { message });
        }
        for tool in tools {
            if self.tools.iter().any(|t| t.name == tool.name) {
                self.events.emit(EventKind::Warning {
                    message: format!(
                        "mcp: the tool name `{}` is offered twice; the second is dropped",
                        tool.name
                    ),
                });
                continue;
            }
            self.tools.push(tool);
        }
        let mine = |read_only_only: bool| -> Vec<String> {
            self.tools
                .iter()
                .filter(|t| t.server == config.name && (!read_only_only || t.read_only))
                .map(|t| t.name.clone())
                .collect()
        };
        self.events.emit(EventKind::McpServerStarted {
            server: config.name.clone(),
            transport: config.transport.kind().to_string(),
            tools: mine(false),
            read_only_tools: mine(true),
            replayed,
            duration_ms,
        });
    }

    /// Every tool offered, in a fixed order: servers in declaration order,
    /// each server's tools by name.
    pub fn tools(&self) -> &[McpTool] {
        &self.tools
    }

    /// The tools a stage is offered: all of them, or for a read-only stage
    /// those marked read-only.
    pub fn tools_for(&self, read_only_stage: bool) -> impl Iterator<Item = &McpTool> {
        self.tools
            .iter()
            .filter(move |tool| !read_only_stage || tool.read_only)
    }

    /// The offered tool named `name` (`<server>__<tool>`).
    pub fn tool(&self, name: &str) -> Option<&McpTool> {
        self.tools.iter().find(|tool| tool.name == name)
    }

    /// Calls the tool `name` for the model. Never fails: a timeout, a server
    /// error, a dead server and a refusal all come back as the result's
    /// text. Everything the server returned is redacted and capped.
    pub async fn call(&self, name: &str, arguments: &Value, read_only_stage: bool) -> ToolResult {
        let Some(tool) = self.tool(name) else {
            return refused(format!("there is no MCP tool named `{name}`"));
        };
        if read_only_stage && !tool.read_only {
            return refused(format!(
                "`{name}` is not available in a read-only stage: its server does not mark it read-only (readOnlyHint) and the task does not list it in `read_only_tools`"
            ));
        }
        let Some(server) = self.servers.iter().find(|s| s.config.name == tool.server) else {
            return refused(format!("there is no MCP server `{}`", tool.server));
        };
        if let Some(log) = &self.replay {
            let replayed =
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .call(&tool.server, name, arguments);
            return match replayed {
                Some((result, death)) => {
                    if let Some(death) = death {
                        self.mark_dead(server, death);
                    }
                    result
                }
                None => ToolResult {
                    content: format!(
                        "replay: the cassette has no recorded result of `{name}` with these arguments (record the cassette again)"
                    ),
                    outcome: ToolOutcome::Error,
                },
            };
        }
        let (result, death) = self.call_live(server, tool, arguments).await;
        if let Some(death) = &death {
            self.mark_dead(server, death.clone());
        }
        self.record(&Record::Call {
            server: tool.server.clone(),
            tool: name.to_string(),
            arguments: arguments.clone(),
            content: result.content.clone(),
            outcome: result.outcome,
            death,
        });
        result
    }

    async fn call_live(
        &self,
        server: &Server,
        tool: &McpTool,
        arguments: &Value,
    ) -> (ToolResult, Option<Death>) {
        if let Some(death) = server
            .death
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return (
                failed(format!(
                    "the MCP server `{}` {} earlier in this task, so its tools cannot be used any more; carry on without them",
                    tool.server, death.status
                )),
                None,
            );
        }
        let mut connection = server.connection.lock().await;
        let Some(live) = connection.as_mut() else {
            return (
                failed(format!("the MCP server `{}` has been stopped", tool.server)),
                None,
            );
        };
        let config = &server.config;
        match live
            .call(&tool.tool, arguments.clone(), config.call_timeout)
            .await
        {
            Ok(result) => {
                let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
                let content = self
                    .redactor
                    .redact(&render_result(&result, config.max_output_bytes));
                let outcome = if is_error {
                    ToolOutcome::Error
                } else {
                    ToolOutcome::Ok
                };
                (ToolResult { content, outcome }, None)
            }
            Err(CallFailure::Timeout(timeout)) => (
                failed(format!(
                    "`{}` did not answer within {} and was cancelled (the server's `timeout` in the task file); try a smaller request",
                    tool.name,
                    crate::task::format_duration(timeout)
                )),
                None,
            ),
            Err(CallFailure::Closed) => {
                let (status, stderr_tail) = live.death().await;
                let death = Death {
                    status,
                    stderr_tail: self.redactor.redact(&stderr_tail),
                };
                (
                    failed(format!(
                        "the MCP server `{}` {} during this call, so its tools cannot be used any more in this task; carry on without them",
                        tool.server, death.status
                    )),
                    Some(death),
                )
            }
            Err(CallFailure::Protocol(message)) => (
                failed(format!(
                    "`{}` failed: {}",
                    tool.name,
                    self.redactor.redact(&message)
                )),
                None,
            ),
            Err(CallFailure::Other(message)) => (
                failed(format!(
                    "`{}` could not be called: {}",
                    tool.name,
                    self.redactor.redact(&message)
                )),
                None,
            ),
        }
    }

    fn mark_dead(&self, server: &Server, death: Death) {
        self.events.emit(EventKind::McpServerExited {
            server: server.config.name.clone(),
            status: death.status.clone(),
            stderr_tail: death.stderr_tail.clone(),
        });
        *server.death.lock().unwrap_or_else(|e| e.into_inner()) = Some(death);
    }

    /// What the report says about each server, in declaration order.
    pub fn summaries(&self) -> Vec<ServerSummary> {
        self.servers
            .iter()
            .map(|server| {
                let death = server
                    .death
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                ServerSummary {
                    name: server.config.name.clone(),
                    transport: server.config.transport.kind(),
                    tools: self
                        .tools
                        .iter()
                        .filter(|t| t.server == server.config.name)
                        .map(|t| t.name.clone())
                        .collect(),
                    exited: death.as_ref().map(|d| d.status.clone()),
                    stderr_tail: death.map(|d| d.stderr_tail).filter(|t| !t.is_empty()),
                }
            })
            .collect()
    }

    /// Stops every live server (its process group is killed) and reports
    /// each as `mcp.server_stopped`. Dropping the session kills them too,
    /// without the grace period.
    pub async fn stop(&self) {
        let stopping = self.servers.iter().map(|server| async move {
            let connection = server.connection.lock().await.take();
            if let Some(connection) = connection {
                connection.stop().await;
                self.events.emit(EventKind::McpServerStopped {
                    server: server.config.name.clone(),
                });
            }
        });
        join_all(stopping).await;
    }

    fn record(&self, record: &Record) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let written = serde_json::to_value(record)
            .map_err(std::io::Error::other)
            .and_then(|value| recorder.record(&value));
        if let Err(e) = written {
            self.events.emit(EventKind::Warning {
                message: format!(
                    "cannot record an MCP result in {}: {e}; the cassette will not replay",
                    recorder.path().display()
                ),
            });
        }
    }

    fn redact_error(&self, error: McpError) -> McpError {
        match error {
            McpError::Start {
                server,
                reason,
                stderr_tail,
            } => McpError::Start {
                server,
                reason: self.redactor.redact(&reason),
                stderr_tail: self.redactor.redact(&stderr_tail),
            },
            other => other,
        }
    }
}

fn refused(content: String) -> ToolResult {
    ToolResult {
        content,
        outcome: ToolOutcome::Refused,
    }
}

fn failed(content: String) -> ToolResult {
    ToolResult {
        content,
        outcome: ToolOutcome::Error,
    }
}

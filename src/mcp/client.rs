//! One live connection to a declared server through the `rmcp` SDK: start
//! (a child process in its own process group, or a streamable HTTP
//! endpoint), initialise, list tools, call with a timeout, stop.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::ClientInitializeError;
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::catalog::ListedTool;
use super::config::{ServerConfig, TransportConfig, expand};
use super::error::McpError;
use super::stderr::StderrTail;
use crate::tools::process::command_env;

/// How long a stopped server gets to exit after SIGTERM before its group is
/// killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long a dead server's last stderr lines are waited for.
const STDERR_GRACE: Duration = Duration::from_millis(500);

type Service = RunningService<RoleClient, ClientConfig>;

/// Why a call did not produce a result.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// The call ran longer than the server's `timeout`; it was cancelled.
    Timeout(Duration),
    /// The connection is gone: the process exited or the endpoint closed.
    Closed,
    /// The server answered with a JSON-RPC error.
    Protocol(String),
    /// Anything else the SDK reported.
    Other(String),
}

/// A started, initialised server.
pub(crate) struct Connection {
    service: Service,
    child: Option<ServerProcess>,
    stderr: StderrTail,
    /// The tools the server listed at start.
    pub(crate) listed: Vec<ListedTool>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("pid", &self.child.as_ref().and_then(|c| c.child.id()))
            .field("tools", &self.listed.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Starts `config` (stdio servers run in `workspace`), initialises it and
    /// lists its tools, all within its `startup_timeout`.
    pub(crate) async fn start(
        config: &ServerConfig,
        workspace: &Path,
    ) -> Result<Connection, McpError> {
        let name = config.name.as_str();
        let lookup = |var: &str| std::env::var(var).ok();
        let expand_all = |what: &str, map: &BTreeMap<String, String>| {
            let mut out = BTreeMap::new();
            for (key, template) in map {
                let (value, _) = expand(template, lookup).map_err(|e| McpError::Config {
                    server: name.to_string(),
                    reason: format!("{what} `{key}`: {e}"),
                })?;
                out.insert(key.clone(), value);
            }
            Ok::<_, McpError>(out)
        };
        let (service, child, stderr) = match &config.transport {
            TransportConfig::Stdio { command, args, env } => {
                let env = expand_all("env", env)?;
                let mut child = spawn(name, command, args, &env, workspace)?;
                let stderr = child
                    .child
                    .stderr
                    .take()
                    .map_or_else(StderrTail::none, StderrTail::spawn);
                let (Some(stdout), Some(stdin)) =
                    (child.child.stdout.take(), child.child.stdin.take())
                else {
                    return Err(McpError::Config {
                        server: name.to_string(),
                        reason: "the process's stdin/stdout could not be connected".to_string(),
                    });
                };
                let started = tokio::time::timeout(
                    config.startup_timeout,
                    client_info().serve((stdout, stdin)),
                )
                .await;
                let mut stderr = stderr;
                match started {
                    Ok(Ok(service)) => (service, Some(child), stderr),
                    Ok(Err(error)) => {
                        let status = child.exit_status(STDERR_GRACE).await;
                        let tail = stderr.settle(STDERR_GRACE).await;
                        return Err(McpError::Start {
                            server: name.to_string(),
                            reason: init_failure(&error, status.as_deref()),
                            stderr_tail: tail,
                        });
                    }
                    Err(_) => {
                        child.kill();
                        let tail = stderr.settle(STDERR_GRACE).await;
                        return Err(McpError::Start {
                            server: name.to_string(),
                            reason: format!(
                                "it did not answer `initialize` within its startup_timeout of {}",
                                crate::task::format_duration(config.startup_timeout)
                            ),
                            stderr_tail: tail,
                        });
                    }
                }
            }
            TransportConfig::Http { url, headers } => {
                let headers = expand_all("header", headers)?;
                let transport = http_transport(name, url, &headers)?;
                let started =
                    tokio::time::timeout(config.startup_timeout, client_info().serve(transport))
                        .await;
                match started {
                    Ok(Ok(service)) => (service, None, StderrTail::none()),
                    Ok(Err(error)) => {
                        return Err(McpError::Start {
                            server: name.to_string(),
                            reason: format!("{url}: {}", init_failure(&error, None)),
                            stderr_tail: String::new(),
                        });
                    }
                    Err(_) => {
                        return Err(McpError::Start {
                            server: name.to_string(),
                            reason: format!(
                                "{url} did not answer `initialize` within its startup_timeout of {}",
                                crate::task::format_duration(config.startup_timeout)
                            ),
                            stderr_tail: String::new(),
                        });
                    }
                }
            }
        };
        let mut connection = Connection {
            service,
            child,
            stderr,
            listed: Vec::new(),
        };
        let listed =
            tokio::time::timeout(config.startup_timeout, connection.service.list_all_tools()).await;
        match listed {
            Ok(Ok(tools)) => {
                connection.listed = tools.iter().map(listed_tool).collect();
                Ok(connection)
            }
            Ok(Err(error)) => {
                let tail = connection.stop().await;
                Err(McpError::Start {
                    server: name.to_string(),
                    reason: format!("listing its tools failed: {error}"),
                    stderr_tail: tail,
                })
            }
            Err(_) => {
                let tail = connection.stop().await;
                Err(McpError::Start {
                    server: name.to_string(),
                    reason: format!(
                        "it did not list its tools within its startup_timeout of {}",
                        crate::task::format_duration(config.startup_timeout)
                    ),
                    stderr_tail: tail,
                })
            }
        }
    }

    /// Calls `tool` with `arguments`; the result's JSON form
    /// (`{"content": [...], "isError": ...}`). Dropping the future, or the
    /// timeout, cancels the request at the server.
    pub(crate) async fn call(
        &self,
        tool: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value, CallFailure> {
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = match arguments {
            Value::Object(map) => Some(map),
            Value::Null => None,
            other => {
                return Err(CallFailure::Other(format!(
                    "the arguments must be a JSON object, not {other}"
                )));
            }
        };
        match tokio::time::timeout(timeout, self.service.call_tool(params)).await {
            Err(_) => Err(CallFailure::Timeout(timeout)),
            Ok(Ok(result)) => {
                serde_json::to_value(&result).map_err(|e| CallFailure::Other(e.to_string()))
            }
            Ok(Err(ServiceError::TransportClosed)) => Err(CallFailure::Closed),
            Ok(Err(ServiceError::TransportSend(_))) if self.exited() => Err(CallFailure::Closed),
            Ok(Err(ServiceError::McpError(error))) => {
                Err(CallFailure::Protocol(error.message.to_string()))
            }
            Ok(Err(ServiceError::Timeout { timeout })) => Err(CallFailure::Timeout(timeout)),
            Ok(Err(other)) => Err(CallFailure::Other(other.to_string())),
        }
    }

    /// Whether the connection is gone for good (a stdio server's process
    /// closed its stdout, which it does when it exits).
    pub(crate) fn exited(&self) -> bool {
        self.service.is_transport_closed()
    }

    /// How the dead server's process ended, and its stderr tail, after
    /// waiting briefly for both.
    pub(crate) async fn death(&mut self) -> (String, String) {
        let status = match self.child.as_mut() {
            Some(child) => child
                .exit_status(STDERR_GRACE)
                .await
                .unwrap_or_else(|| "its connection closed".to_string()),
            None => "the endpoint closed the connection".to_string(),
        };
        (status, self.stderr.settle(STDERR_GRACE).await)
    }

    /// Closes the connection and ends the process: SIGTERM to its group,
    /// SIGKILL after a grace period (and to whatever it left behind).
    /// Returns the stderr tail.
    pub(crate) async fn stop(mut self) -> String {
        let _ = tokio::time::timeout(STOP_GRACE, self.service.close()).await;
        if let Some(child) = self.child.as_mut() {
            child.signal(Signal::TERM);
            let _ = tokio::time::timeout(STOP_GRACE, child.child.wait()).await;
            child.kill();
            let _ = child.child.wait().await;
        }
        self.stderr.settle(STDERR_GRACE).await
    }
}

/// The identity kkrun gives in `initialize`; it asks for no client
/// capabilities (no sampling, no roots, no elicitation).
fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("kkrun", env!("CARGO_PKG_VERSION")),
    )
}

fn listed_tool(tool: &rmcp::model::Tool) -> ListedTool {
    ListedTool {
        name: tool.name.to_string(),
        description: tool.description.as_deref().unwrap_or_default().to_string(),
        input_schema: Value::Object((*tool.input_schema).clone()),
        read_only_hint: tool.annotations.as_ref().and_then(|a| a.read_only_hint),
    }
}

fn init_failure(error: &ClientInitializeError, status: Option<&str>) -> String {
    match (error, status) {
        (_, Some(status)) => format!("the process {status} before it finished initialising"),
        (ClientInitializeError::ConnectionClosed(_), None) => {
            "the connection closed before it finished initialising".to_string()
        }
        (other, None) => format!("initialising failed: {other}"),
    }
}

/// The server's child process, in a process group of its own, killed with
/// its group when dropped.
struct ServerProcess {
    child: Child,
    pgid: Option<Pid>,
}

impl ServerProcess {
    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is gone already) is the good case.
            let _ = kill_process_group(pgid, signal);
        }
    }

    fn kill(&mut self) {
        self.signal(Signal::KILL);
        let _ = self.child.start_kill();
    }

    /// `exited with status N` / `was killed by signal N`, once the process
    /// has ended (waiting up to `grace`); `None` while it still runs.
    async fn exit_status(&mut self, grace: Duration) -> Option<String> {
        let status = tokio::time::timeout(grace, self.child.wait())
            .await
            .ok()?
            .ok()?;
        use std::os::unix::process::ExitStatusExt;
        Some(match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "ended".to_string(),
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
        if let Some(pgid) = self.pgid {
            super::live::forget(pgid);
        }
    }
}

fn spawn(
    server: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    workspace: &Path,
) -> Result<ServerProcess, McpError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .current_dir(workspace)
        .env_clear()
        .envs(command_env(env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| McpError::Spawn {
        server: server.to_string(),
        command: command.to_string(),
        source,
    })?;
    let pgid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(Pid::from_raw);
    if let Some(pgid) = pgid {
        super::live::register(pgid);
    }
    Ok(ServerProcess { child, pgid })
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn http_transport(
    server: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<StreamableHttpClientTransport<reqwest::Client>, McpError> {
    use reqwest::header::{HeaderName, HeaderValue};
    let config_error = |reason: String| McpError::Config {
        server: server.to_string(),
        reason,
    };
    let mut custom = HashMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| config_error(format!("`{name}` is not a valid HTTP header name")))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            config_error(format!(
                "the value of header `{name}` is not valid in an HTTP header (control characters or non-ASCII text)"
            ))
        })?;
        value.set_sensitive(true);
        custom.insert(header, value);
    }
    install_crypto_provider();
    // Redirects are not followed: the declared headers (often credentials)
    // must reach the declared endpoint only.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| config_error(format!("cannot build an HTTP client: {e}")))?;
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).custom_headers(custom);
    Ok(StreamableHttpClientTransport::with_client(client, config))
}

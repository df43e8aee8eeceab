//! MCP servers as tools: declared per task, started for it and stopped
//! with it, their tools offered as `<server>__<tool>`.
//!
//! Only the servers a task declares (`mcp:` in the task file) are ever
//! started or contacted. [`McpSession::start`] starts them all (stdio child
//! processes in their own process groups, or streamable HTTP endpoints)
//! through the official `rmcp` SDK, initialises them and lists their tools;
//! a server that fails ends the task as `error`. Each call has a timeout and
//! a result-size cap; a server that dies turns its later calls into tool
//! errors. Everything a server returns is redacted. A recorded run keeps the
//! listings and results in its cassette, so a replay starts no server.

mod catalog;
mod client;
mod config;
mod error;
mod live;
mod record;
mod session;
mod stderr;

pub use catalog::{ListedTool, McpTool, exposed_name};
pub use config::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_STARTUP_TIMEOUT, ExpandError,
    NAME_SEPARATOR, ServerConfig, ToolFilter, TransportConfig, expand, valid_server_name,
};
pub use error::McpError;
pub use live::kill_all_servers;
pub use record::{Death, Record};
pub use session::{McpSession, Origin, ServerSummary};
pub use stderr::STDERR_TAIL_BYTES;

//! Why the MCP servers of a task could not be made ready. Each of these ends
//! the task as `error` (exit code 3); failures of single calls are tool
//! errors for the model instead.

/// A server that could not be started, initialised or listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The declaration cannot be used as it stands (an unset `${NAME}`, a
    /// header value HTTP cannot carry).
    #[error("mcp server `{server}`: {reason}")]
    Config {
        /// The server's name.
        server: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The command could not be run at all.
    #[error(
        "mcp server `{server}` could not be started: `{command}`: {source} (hint: is it installed and on PATH?)"
    )]
    Spawn {
        /// The server's name.
        server: String,
        /// The command as declared.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server ran but did not become ready: it exited, closed the
    /// connection, failed `initialize` or `tools/list`, or took too long.
    #[error("mcp server `{server}` failed to start: {reason}{}", stderr_suffix(.stderr_tail))]
    Start {
        /// The server's name.
        server: String,
        /// What happened.
        reason: String,
        /// The last lines it wrote to stderr (empty for HTTP servers).
        stderr_tail: String,
    },
    /// Replaying a cassette that holds no record of this server's tools.
    #[error(
        "mcp server `{server}`: the cassette has no record of its tools (hint: record the cassette again with this task's `mcp:` servers)"
    )]
    NotRecorded {
        /// The server's name.
        server: String,
    },
}

impl McpError {
    /// The server the error is about.
    pub fn server(&self) -> &str {
        match self {
            McpError::Config { server, .. }
            | McpError::Spawn { server, .. }
            | McpError::Start { server, .. }
            | McpError::NotRecorded { server } => server,
        }
    }

    /// The server's last stderr lines, when there are any.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            McpError::Start { stderr_tail, .. } if !stderr_tail.is_empty() => Some(stderr_tail),
            _ => None,
        }
    }
}

fn stderr_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends with:\n{tail}")
    }
}

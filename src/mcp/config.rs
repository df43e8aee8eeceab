//! The declared MCP servers of a task, as the task file resolves them.
//!
//! Nothing here is read from user-level or editor configurations: a server
//! exists for kkrun only when the task declares it.

use std::collections::BTreeMap;
use std::time::Duration;

/// How long a tool call may run before it is cancelled (the task file's
/// `mcp.<server>.timeout`).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long starting, initialising and listing the tools of a server may
/// take (`mcp.<server>.startup_timeout`).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes of a tool result the model is shown
/// (`mcp.<server>.max_output_bytes`); the rest is cut from the middle, and
/// the model is told.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 32 * 1024;

/// The separator between a server's name and its tool's name in the tool
/// names the model sees: `<server>__<tool>`.
pub const NAME_SEPARATOR: &str = "__";

/// One declared MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The server's name in the task file: lowercase letters, digits and
    /// single `-`, the prefix of its tools' names.
    pub name: String,
    /// How kkrun reaches it.
    pub transport: TransportConfig,
    /// The limit of one tool call.
    pub call_timeout: Duration,
    /// The limit of starting, initialising and listing tools.
    pub startup_timeout: Duration,
    /// The most bytes of one result the model sees.
    pub max_output_bytes: usize,
    /// Which of the server's tools are offered.
    pub filter: ToolFilter,
}

impl ServerConfig {
    /// A server with the documented defaults for everything but its name and
    /// transport.
    pub fn new(name: impl Into<String>, transport: TransportConfig) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            transport,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            filter: ToolFilter::default(),
        }
    }
}

impl ServerConfig {
    /// The values `${NAME}` references in the server's `env` or `headers`
    /// expand to now: secrets, redacted from everything the server returns.
    pub fn referenced_values(&self) -> Vec<String> {
        let templates = match &self.transport {
            TransportConfig::Stdio { env, .. } => env.values(),
            TransportConfig::Http { headers, .. } => headers.values(),
        };
        templates
            .filter_map(|t| expand(t, |name| std::env::var(name).ok()).ok())
            .flat_map(|(_, secrets)| secrets)
            .collect()
    }
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportConfig {
    /// A child process speaking MCP on stdin/stdout, started in the
    /// workspace for the task and stopped (its process group killed) when
    /// the task ends.
    Stdio {
        /// The program, looked up on `PATH` when it has no `/`.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables set for it on top of the minimal environment shell
        /// commands get; values may name variables of kkrun's environment
        /// as `${NAME}`.
        env: BTreeMap<String, String>,
    },
    /// A streamable HTTP endpoint, contacted only by this task.
    Http {
        /// The endpoint, `http://` or `https://`.
        url: String,
        /// Headers sent with every request; values may name variables as
        /// `${NAME}`.
        headers: BTreeMap<String, String>,
    },
}

impl TransportConfig {
    /// `stdio` or `http`, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportConfig::Stdio { .. } => "stdio",
            TransportConfig::Http { .. } => "http",
        }
    }
}

/// Which tools of a server are offered, and which count as read-only.
///
/// Patterns are globs over the server's own tool names (`get_*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolFilter {
    /// When set, only tools matching one of these are offered.
    pub allow: Option<Vec<String>>,
    /// Tools matching one of these are never offered; deny wins over allow.
    pub deny: Vec<String>,
    /// Tools offered to read-only stages even without `readOnlyHint: true`.
    pub read_only: Vec<String>,
}

/// Why a `${NAME}` reference could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandError {
    /// The variable is not set (or not valid UTF-8).
    #[error("`${{{0}}}` names a variable that is not set")]
    Unset(String),
    /// A `${` without its `}`, or an empty name.
    #[error("`{0}` is not a valid reference (hint: write `${{NAME}}`, or `$$` for a literal `$`)")]
    Malformed(String),
}

/// `template` with every `${NAME}` replaced by `lookup(NAME)` and `$$` by
/// `$`. Also returns the values that came from variables, which are
/// treated as secrets.
pub fn expand(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), ExpandError> {
    let mut out = String::with_capacity(template.len());
    let mut secrets = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(ExpandError::Malformed(rest[at..].to_string()));
            };
            let name = &tail[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(ExpandError::Malformed(format!("${{{name}}}")));
            }
            let value = lookup(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?;
            out.push_str(&value);
            secrets.push(value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, secrets))
}

/// Whether `name` is a valid server name: lowercase letters and digits,
/// with single `-` between them, at most 32 characters. `_` is not allowed,
/// so `<server>__<tool>` always splits at the first `__`.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expand_replaces_references_and_reports_their_values() {
        assert_eq!(
            expand("Bearer ${TOKEN}", env).unwrap(),
            ("Bearer s3cret".to_string(), vec!["s3cret".to_string()])
        );
        assert_eq!(
            expand("plain $HOME $$ ${EMPTY}x", env).unwrap(),
            ("plain $HOME $ x".to_string(), vec![String::new()])
        );
        assert_eq!(
            expand("${MISSING}", env),
            Err(ExpandError::Unset("MISSING".to_string()))
        );
        assert!(matches!(
            expand("${TOKEN", env),
            Err(ExpandError::Malformed(_))
        ));
        assert!(matches!(expand("${}", env), Err(ExpandError::Malformed(_))));
        assert!(matches!(
            expand("${1X}", env),
            Err(ExpandError::Malformed(_))
        ));
    }

    #[test]
    fn server_names() {
        for good in ["git", "issue-tracker", "db2"] {
            assert!(valid_server_name(good), "{good}");
        }
        for bad in ["", "Git", "a_b", "-a", "a-", "a--b", "a.b", &"x".repeat(33)] {
            assert!(!valid_server_name(bad), "{bad}");
        }
    }
}

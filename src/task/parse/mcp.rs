//! `mcp:` — the task's MCP servers, by name: `command` (+ `args`, `env`)
//! for a stdio server, or `url` (+ `headers`) for streamable HTTP, with
//! limits and tool filters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::values::{describe, spanned};
use super::{Known, Walker};
use crate::mcp::{ServerConfig, ToolFilter, TransportConfig, expand, valid_server_name};
use crate::task::node::{Node, SpannedNode};

const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "url",
    "headers",
    "timeout",
    "startup_timeout",
    "max_output_bytes",
    "allow_tools",
    "deny_tools",
    "read_only_tools",
];
const STDIO_ONLY: &[&str] = &["command", "args", "env"];
const HTTP_ONLY: &[&str] = &["url", "headers"];
/// Bounds of `max_output_bytes`.
const MIN_OUTPUT_BYTES: u64 = 256;
const MAX_OUTPUT_BYTES: u64 = 4 * 1024 * 1024;

/// The parsed `mcp:` key: each server's name and its configuration.
pub(crate) type McpServers = Vec<(Spanned<String>, ServerConfig)>;

impl Walker<'_> {
    pub(super) fn mcp(&mut self, value: &SpannedNode, key: &str) -> Option<McpServers> {
        let entries = self.map(value, key)?;
        let mut servers = Vec::new();
        for (name_node, server) in entries {
            let name = match &name_node.value {
                Node::Str(name) if valid_server_name(name) => name.clone(),
                other => {
                    let shown = match other {
                        Node::Str(text) => format!("`{text}`"),
                        other => describe(other),
                    };
                    self.error_at(
                        name_node.referenced,
                        format!("invalid MCP server name {shown} in `{key}`"),
                        Some(
                            "use lowercase letters and digits with single `-` between them, at most 32 characters, \
                             such as `issue-tracker`; the name prefixes its tools as `<server>__<tool>`"
                                .into(),
                        ),
                    );
                    continue;
                }
            };
            let path = format!("{key}.{name}");
            if let Some(config) = self.mcp_server(server, &path, &name) {
                servers.push((spanned(name, name_node), config));
            }
        }
        Some(servers)
    }

    fn mcp_server(&mut self, value: &SpannedNode, path: &str, name: &str) -> Option<ServerConfig> {
        let entries = self.map(value, path)?;
        let known = self.known_keys(entries, SERVER_KEYS, &format!("{path}."), |_| None);
        let has = |key: &str| known.iter().any(|entry| entry.name == key);
        let (stdio, http) = (has("command"), has("url"));
        if stdio == http {
            let message = if stdio {
                format!("`{path}` has both `command` and `url`")
            } else {
                format!("`{path}` needs `command` (a stdio server) or `url` (streamable HTTP)")
            };
            self.error_at(
                value.referenced,
                message,
                Some("give `command:` (with `args:` and `env:`) to start a server, or `url:` (with `headers:`) to contact one".into()),
            );
            return None;
        }
        let wrong: &[&str] = if stdio { HTTP_ONLY } else { STDIO_ONLY };
        let mut sound = true;
        for entry in known.iter().filter(|entry| wrong.contains(&entry.name)) {
            let (this, other) = if stdio {
                ("a stdio (`command`)", "`url`")
            } else {
                ("an HTTP (`url`)", "`command`")
            };
            self.error_at(
                entry.value.referenced,
                format!("`{path}.{}` does not apply to {this} server", entry.name),
                Some(format!(
                    "remove it, or declare the server with {other} instead"
                )),
            );
            sound = false;
        }

        let mut command = None;
        let mut args = Vec::new();
        let mut env = BTreeMap::new();
        let mut url = None;
        let mut headers = BTreeMap::new();
        let mut config_limits = (None, None, None);
        let mut filter = ToolFilter::default();
        for entry in &known {
            let field = format!("{path}.{}", entry.name);
            let value = entry.value;
            match entry.name {
                "command" => {
                    command = self.non_empty_string(
                        value,
                        &field,
                        "name the program, such as `npx` or `python3`",
                    )
                }
                "args" => match self.string_list(value, &field) {
                    Some(list) => args = list,
                    None => sound = false,
                },
                "env" => match self.env(value, &field) {
                    Some(pairs) => {
                        for (var, text) in pairs {
                            sound &= self.template(&text, &format!("{field}.{}", var.value));
                            env.insert(var.value, text.value);
                        }
                    }
                    None => sound = false,
                },
                "url" => url = self.mcp_url(value, &field),
                "headers" => match self.headers(value, &field) {
                    Some(pairs) => headers = pairs,
                    None => sound = false,
                },
                "timeout" => config_limits.0 = self.positive_duration(value, &field),
                "startup_timeout" => config_limits.1 = self.positive_duration(value, &field),
                "max_output_bytes" => {
                    config_limits.2 = self
                        .uint(value, &field, MIN_OUTPUT_BYTES, MAX_OUTPUT_BYTES)
                        .map(|n| n.value)
                }
                "allow_tools" => filter.allow = self.tool_patterns(entry, &field),
                "deny_tools" => filter.deny = self.tool_patterns(entry, &field).unwrap_or_default(),
                "read_only_tools" => {
                    filter.read_only = self.tool_patterns(entry, &field).unwrap_or_default()
                }
                _ => {}
            }
        }
        let transport = match (command, url) {
            (Some(command), None) => TransportConfig::Stdio {
                command: command.value,
                args,
                env,
            },
            (None, Some(url)) => TransportConfig::Http { url, headers },
            _ => return None,
        };
        if !sound {
            return None;
        }
        let mut config = ServerConfig::new(name, transport);
        config.filter = filter;
        if let Some(timeout) = config_limits.0 {
            config.call_timeout = timeout;
        }
        if let Some(timeout) = config_limits.1 {
            config.startup_timeout = timeout;
        }
        if let Some(bytes) = config_limits.2 {
            config.max_output_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        }
        Some(config)
    }

    /// A duration longer than zero (zero would fail every call at once).
    fn positive_duration(&mut self, value: &SpannedNode, key: &str) -> Option<Duration> {
        let duration = self.duration(value, key)?.value;
        if duration.is_zero() {
            self.error_at(
                value.referenced,
                format!("`{key}` must be longer than 0s"),
                Some(format!(
                    "remove `{key}` for the default, or give a duration such as `30s`"
                )),
            );
            return None;
        }
        Some(duration)
    }

    fn string_list(&mut self, value: &SpannedNode, key: &str) -> Option<Vec<String>> {
        let items = self.seq(value, key, "a list of strings: `[\"--flag\", \"value\"]`")?;
        let mut list = Vec::new();
        let mut sound = true;
        for (index, item) in items.iter().enumerate() {
            match &item.value {
                Node::Str(text) => list.push(text.clone()),
                Node::Int(number) => list.push(number.to_string()),
                other => {
                    self.error_at(
                        item.referenced,
                        format!(
                            "`{key}[{index}]` must be a string, found {}",
                            describe(other)
                        ),
                        Some("quote the argument: `\"...\"`".into()),
                    );
                    sound = false;
                }
            }
        }
        sound.then_some(list)
    }

    fn mcp_url(&mut self, value: &SpannedNode, key: &str) -> Option<String> {
        let url = self.non_empty_string(
            value,
            key,
            "give the server's endpoint, such as `https://mcp.example.com/mcp`",
        )?;
        let text = url.value.trim();
        let valid = (text.starts_with("http://") || text.starts_with("https://"))
            && !text.contains(char::is_whitespace)
            && text
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty());
        if !valid {
            self.error_at(
                value.referenced,
                format!("`{key}` must be an http:// or https:// URL, found `{text}`"),
                Some(
                    "write the streamable HTTP endpoint, such as `https://mcp.example.com/mcp`"
                        .into(),
                ),
            );
            return None;
        }
        Some(text.to_string())
    }

    pub(super) fn headers(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<BTreeMap<String, String>> {
        let entries = self.map(value, key)?;
        let mut headers = BTreeMap::new();
        let mut sound = true;
        for (name, value) in entries {
            let valid_name = |text: &str| {
                !text.is_empty()
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            };
            let header = match &name.value {
                Node::Str(text) if valid_name(text) => text.clone(),
                other => {
                    self.error_at(
                        name.referenced,
                        format!("invalid HTTP header name {} in `{key}`", describe(other)),
                        Some("use letters, digits and `-`, such as `Authorization` or `X-Api-Version`".into()),
                    );
                    sound = false;
                    continue;
                }
            };
            let field = format!("{key}.{header}");
            let Some(text) = self.string(value, &field) else {
                sound = false;
                continue;
            };
            if text.value.chars().any(|c| c.is_control()) {
                self.error_at(
                    value.referenced,
                    format!("`{field}` contains a control character"),
                    Some("header values must be one line of text".into()),
                );
                sound = false;
                continue;
            }
            sound &= self.template(&text, &field);
            headers.insert(header, text.value);
        }
        sound.then_some(headers)
    }

    /// Checks the `${NAME}` references of a value; true when they are well
    /// formed (whether the variables are set is checked when the task starts).
    fn template(&mut self, text: &Spanned<String>, key: &str) -> bool {
        match expand(&text.value, |_| Some(String::new())) {
            Ok(_) => true,
            Err(problem) => {
                self.error_at(
                    text.referenced,
                    format!("{problem} in `{key}`"),
                    Some("name a variable of kkrun's environment as `${NAME}`; write `$$` for a literal `$`".into()),
                );
                false
            }
        }
    }

    fn tool_patterns(&mut self, entry: &Known<'_>, key: &str) -> Option<Vec<String>> {
        self.glob_list(entry.value, key)
            .map(|list| list.value.into_iter().map(|p| p.value).collect())
    }
}

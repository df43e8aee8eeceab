//! From the tools a server lists to the tools the model is offered:
//! namespacing as `<server>__<tool>`, `allow_tools`/`deny_tools`, the
//! read-only decision, and turning results into text for the model.

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{NAME_SEPARATOR, ServerConfig, ToolFilter};
use crate::provider::ToolSpec;
use crate::tools::process::cap_text;

/// The longest tool name every provider accepts.
const MAX_TOOL_NAME: usize = 64;

/// A tool as the server listed it: the transport-neutral form, also what a
/// cassette records so that a replay offers the same tools without starting
/// the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedTool {
    /// The server's own name of the tool.
    pub name: String,
    /// Its description, if any.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: Value,
    /// The server's `readOnlyHint` annotation, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
}

/// One server tool as kkrun offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    /// The server's name.
    pub server: String,
    /// The server's own name of the tool (what `tools/call` sends).
    pub tool: String,
    /// The name the model sees: `<server>__<tool>`.
    pub name: String,
    /// The description the model reads.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    /// Offered to read-only stages: the server says `readOnlyHint: true`, or
    /// the task lists it in `read_only_tools`.
    pub read_only: bool,
}

impl McpTool {
    /// The spec the model is offered.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.input_schema.clone(),
        }
    }
}

/// The tools of one server that its filter lets through, and a warning for
/// each thing worth telling the user (a pattern that matched nothing, a
/// tool whose name cannot be offered).
pub fn offered_tools(server: &ServerConfig, listed: &[ListedTool]) -> (Vec<McpTool>, Vec<String>) {
    let filter = CompiledFilter::new(&server.filter);
    let mut warnings = Vec::new();
    for (key, patterns) in [
        (
            "allow_tools",
            server.filter.allow.as_deref().unwrap_or_default(),
        ),
        ("deny_tools", &server.filter.deny[..]),
        ("read_only_tools", &server.filter.read_only[..]),
    ] {
        for pattern in patterns {
            let matcher = matcher(pattern);
            if !listed.iter().any(|tool| matcher.is_match(&tool.name)) {
                let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
                warnings.push(format!(
                    "mcp server `{}`: {key} pattern `{pattern}` matches none of its tools ({})",
                    server.name,
                    if names.is_empty() {
                        "it lists none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
        }
    }

    let mut tools: Vec<McpTool> = Vec::new();
    let mut sorted: Vec<&ListedTool> = listed.iter().collect();
    // Servers list tools in an order of their choosing; a fixed order keeps
    // the prompt prefix (and recorded requests) stable.
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for listed in sorted {
        if !filter.offers(&listed.name) {
            continue;
        }
        let name = exposed_name(&server.name, &listed.name);
        if name.len() > MAX_TOOL_NAME {
            warnings.push(format!(
                "mcp server `{}`: tool `{}` is not offered: `{name}` is longer than the {MAX_TOOL_NAME} characters providers accept (hint: a shorter server name helps)",
                server.name, listed.name
            ));
            continue;
        }
        if let Some(other) = tools.iter().find(|t| t.name == name) {
            warnings.push(format!(
                "mcp server `{}`: tool `{}` is not offered: its name `{name}` is already taken by `{}`",
                server.name, listed.name, other.tool
            ));
            continue;
        }
        let read_only = listed.read_only_hint == Some(true) || filter.read_only(&listed.name);
        tools.push(McpTool {
            server: server.name.clone(),
            tool: listed.name.clone(),
            description: describe(&server.name, listed),
            input_schema: object_schema(&listed.input_schema),
            read_only,
            name,
        });
    }
    (tools, warnings)
}

/// `<server>__<tool>`, with characters providers refuse in tool names
/// replaced by `_`.
pub fn exposed_name(server: &str, tool: &str) -> String {
    let tool: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{server}{NAME_SEPARATOR}{tool}")
}

fn describe(server: &str, tool: &ListedTool) -> String {
    let description = tool.description.trim();
    if description.is_empty() {
        format!("`{}` of the MCP server `{server}`.", tool.name)
    } else {
        format!(
            "{description}\n(`{}` of the MCP server `{server}`.)",
            tool.name
        )
    }
}

/// The schema as an object schema: providers require `type: object` at the
/// top, which some servers leave out.
fn object_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut map = map.clone();
            map.entry("type")
                .or_insert_with(|| Value::String("object".to_string()));
            Value::Object(map)
        }
        _ => serde_json::json!({"type": "object"}),
    }
}

/// A pattern over tool names: a glob, or its own text when it is not a
/// valid glob (the task file's validation has already reported that).
enum Pattern {
    Glob(GlobMatcher),
    Literal(String),
}

impl Pattern {
    fn is_match(&self, name: &str) -> bool {
        match self {
            Pattern::Glob(glob) => glob.is_match(name),
            Pattern::Literal(text) => text == name,
        }
    }
}

fn matcher(pattern: &str) -> Pattern {
    match Glob::new(pattern) {
        Ok(glob) => Pattern::Glob(glob.compile_matcher()),
        Err(_) => Pattern::Literal(pattern.to_string()),
    }
}

struct CompiledFilter {
    allow: Option<Vec<Pattern>>,
    deny: Vec<Pattern>,
    read_only: Vec<Pattern>,
}

impl CompiledFilter {
    fn new(filter: &ToolFilter) -> CompiledFilter {
        let compile = |patterns: &[String]| patterns.iter().map(|p| matcher(p)).collect();
        CompiledFilter {
            allow: filter.allow.as_deref().map(compile),
            deny: compile(&filter.deny),
            read_only: compile(&filter.read_only),
        }
    }

    fn offers(&self, tool: &str) -> bool {
        let allowed = self
            .allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|m| m.is_match(tool)));
        allowed && !self.deny.iter().any(|m| m.is_match(tool))
    }

    fn read_only(&self, tool: &str) -> bool {
        self.read_only.iter().any(|m| m.is_match(tool))
    }
}

/// The text of a `tools/call` result for the model, from its JSON form
/// (`content` blocks, else `structuredContent`), cut to `max_bytes` with a
/// note saying so.
pub fn render_result(result: &Value, max_bytes: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(blocks) = result.get("content").and_then(Value::as_array) {
        parts.extend(blocks.iter().map(render_block));
    }
    if parts.is_empty()
        && let Some(structured) = result.get("structuredContent")
    {
        parts.push(structured.to_string());
    }
    let text = if parts.is_empty() {
        "(the tool returned no content)".to_string()
    } else {
        parts.join("\n")
    };
    cap_output(&text, max_bytes)
}

/// `text` cut from the middle to at most about `max_bytes`, with a note for
/// the model when anything was cut.
pub fn cap_output(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    let head = max_bytes / 4;
    let mut capped = cap_text(text, head, max_bytes - head);
    capped.push_str(&format!(
        "\n[kkrun: the result was {} bytes and only {max_bytes} are shown (the middle was cut); ask for less at a time if you need the rest]",
        text.len()
    ));
    capped
}

fn render_block(block: &Value) -> String {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => text("text").to_string(),
        "image" | "audio" => format!(
            "[{kind} content ({}, {} bytes of base64) not shown]",
            non_empty(text("mimeType"), "unknown type"),
            text("data").len()
        ),
        "resource" => {
            let resource = block.get("resource").cloned().unwrap_or(Value::Null);
            let uri = resource.get("uri").and_then(Value::as_str).unwrap_or("");
            match resource.get("text").and_then(Value::as_str) {
                Some(body) => format!("[resource {uri}]\n{body}"),
                None => format!(
                    "[binary resource {uri} ({}) not shown]",
                    non_empty(
                        resource
                            .get("mimeType")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                        "unknown type"
                    )
                ),
            }
        }
        "resource_link" => format!("[resource link {} ({})]", text("uri"), text("name")),
        _ => block.to_string(),
    }
}

fn non_empty<'a>(text: &'a str, otherwise: &'a str) -> &'a str {
    if text.is_empty() { otherwise } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::config::TransportConfig;
    use serde_json::json;

    fn listed(name: &str, read_only: Option<bool>) -> ListedTool {
        ListedTool {
            name: name.to_string(),
            description: format!("does {name}"),
            input_schema: json!({"properties": {}}),
            read_only_hint: read_only,
        }
    }

    fn server(filter: ToolFilter) -> ServerConfig {
        let mut config = ServerConfig::new(
            "notes",
            TransportConfig::Http {
                url: "http://127.0.0.1:1/mcp".to_string(),
                headers: Default::default(),
            },
        );
        config.filter = filter;
        config
    }

    #[test]
    fn tools_are_namespaced_sorted_and_filtered() {
        let tools = [
            listed("write", Some(false)),
            listed("read", Some(true)),
            listed("get.thing", None),
            listed("drop", None),
        ];
        let (offered, warnings) = offered_tools(
            &server(ToolFilter {
                allow: None,
                deny: vec!["drop".to_string()],
                read_only: vec!["get.*".to_string()],
            }),
            &tools,
        );
        let names: Vec<(&str, bool)> = offered
            .iter()
            .map(|t| (t.name.as_str(), t.read_only))
            .collect();
        assert_eq!(
            names,
            [
                ("notes__get_thing", true),
                ("notes__read", true),
                ("notes__write", false)
            ]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            offered[1].input_schema,
            json!({"type": "object", "properties": {}})
        );
        assert!(
            offered[1]
                .description
                .contains("`read` of the MCP server `notes`")
        );
    }

    #[test]
    fn allow_list_and_unmatched_patterns_warn() {
        let tools = [listed("read", Some(true)), listed("write", None)];
        let (offered, warnings) = offered_tools(
            &server(ToolFilter {
                allow: Some(vec!["read".to_string(), "nope*".to_string()]),
                deny: vec![],
                read_only: vec![],
            }),
            &tools,
        );
        assert_eq!(offered.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("allow_tools pattern `nope*`"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("read, write"), "{warnings:?}");
    }

    #[test]
    fn clashing_and_overlong_names_are_skipped_with_a_warning() {
        let tools = [
            listed("a.b", None),
            listed("a_b", None),
            listed(&"x".repeat(70), None),
        ];
        let (offered, warnings) = offered_tools(&server(ToolFilter::default()), &tools);
        assert_eq!(offered.len(), 1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn results_render_every_block_kind() {
        let result = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a", "text": "body"}},
            {"type": "resource_link", "uri": "file:///b", "name": "b"}
        ]});
        assert_eq!(
            render_result(&result, 1000),
            "hello\n[image content (image/png, 4 bytes of base64) not shown]\n[resource file:///a]\nbody\n[resource link file:///b (b)]"
        );
        assert_eq!(
            render_result(&json!({"content": [], "structuredContent": {"n": 1}}), 100),
            "{\"n\":1}"
        );
        assert_eq!(
            render_result(&json!({}), 100),
            "(the tool returned no content)"
        );
    }

    #[test]
    fn long_results_are_cut_with_a_note() {
        let text = "a".repeat(5000);
        let capped = cap_output(&text, 1000);
        assert!(capped.len() < 1300, "{}", capped.len());
        assert!(capped.contains("omitted"));
        assert!(capped.contains("the result was 5000 bytes and only 1000 are shown"));
        assert_eq!(cap_output("short", 1000), "short");
    }
}

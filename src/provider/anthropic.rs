//! The Anthropic Messages API wire format (`anthropic-version: 2023-06-01`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::openai::rounded_temperature;
use super::sse::SseEvent;
use super::types::{Message, StopReason, ToolCall, TurnRequest, TurnResponse, Usage};
use super::wire::{
    Flow, StreamDecoder, StreamFault, error_message, event_json, json_body,
    mentions_context_too_long,
};

/// The API version kkrun speaks.
pub(crate) const API_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the API; this is used when the turn sets no
/// limit (every current model allows at least this many).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 8192;

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// The request body of one turn, with prompt-caching breakpoints on the last
/// tool, the system prompt and the newest message.
pub(crate) fn request_body(request: &TurnRequest, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), request.model.as_str().into());
    body.insert(
        "max_tokens".into(),
        request
            .max_output_tokens
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .into(),
    );
    if !request.system.is_empty() {
        body.insert(
            "system".into(),
            json!([{"type": "text", "text": request.system, "cache_control": ephemeral()}]),
        );
    }
    let mut messages = messages(&request.messages);
    if let Some(block) = messages
        .last_mut()
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
        .and_then(|blocks| blocks.last_mut())
        .and_then(Value::as_object_mut)
    {
        block.insert("cache_control".into(), ephemeral());
    }
    body.insert("messages".into(), messages.into());
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.parameters,
                })
            })
            .collect();
        if let Some(last) = tools.last_mut().and_then(Value::as_object_mut) {
            last.insert("cache_control".into(), ephemeral());
        }
        body.insert("tools".into(), tools.into());
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), rounded_temperature(temperature));
    }
    body.insert("stream".into(), stream.into());
    Value::Object(body)
}

/// The conversation as Messages API turns: tool results travel in user turns,
/// and consecutive turns of one role are merged since roles must alternate.
fn messages(conversation: &[Message]) -> Vec<Value> {
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in conversation {
        let (role, blocks) = match message {
            Message::User { content } => ("user", text_block(content).into_iter().collect()),
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut blocks: Vec<Value> = text_block(content).into_iter().collect();
                for call in tool_calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": tool_input(&call.arguments),
                    }));
                }
                ("assistant", blocks)
            }
            Message::Tool {
                call_id,
                content,
                is_error,
            } => {
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": content,
                });
                if *is_error && let Some(obj) = block.as_object_mut() {
                    obj.insert("is_error".into(), true.into());
                }
                ("user", vec![block])
            }
        };
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // Tool results must open the user turn that carries them.
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            if blocks.is_empty() {
                blocks.push(json!({"type": "text", "text": "(empty)"}));
            }
            json!({"role": role, "content": blocks})
        })
        .collect()
}

fn text_block(text: &str) -> Option<Value> {
    // The API rejects empty text blocks.
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// `tool_use.input` must be an object. Arguments that were not valid JSON
/// (which the agent already answered with a tool error) are sent as `{}`.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::Object(Map::new()),
    }
}

#[derive(Debug)]
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        json: String,
        start_input: Value,
    },
    /// Thinking, redacted thinking, server tools and anything newer.
    Other,
}

impl Block {
    /// A `tool_use` content block as it starts; streamed input follows as
    /// `input_json_delta` fragments.
    fn tool_use(block: &Value) -> Block {
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Block::ToolUse {
            id: text("id"),
            name: text("name"),
            json: String::new(),
            start_input: block.get("input").cloned().unwrap_or(Value::Null),
        }
    }
}

/// Assembles a streamed message.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    text: String,
    blocks: BTreeMap<u64, Block>,
    input_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    output_tokens: u64,
    stop_reason: Option<String>,
}

impl Decoder {
    fn read_usage(&mut self, usage: Option<&Value>) {
        let Some(usage) = usage.filter(|u| u.is_object()) else {
            return;
        };
        // `message_delta` usage is cumulative; fields it omits keep their
        // `message_start` values.
        if let Some(n) = usage.get("input_tokens").and_then(Value::as_u64) {
            self.input_tokens = n;
        }
        if let Some(n) = usage.get("cache_read_input_tokens").and_then(Value::as_u64) {
            self.cache_read = n;
        }
        if let Some(n) = usage
            .get("cache_creation_input_tokens")
            .and_then(Value::as_u64)
        {
            self.cache_creation = n;
        }
        if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
            self.output_tokens = n;
        }
    }

    fn response(self) -> TurnResponse {
        let tool_calls = self
            .blocks
            .into_values()
            .filter_map(|block| match block {
                Block::ToolUse {
                    id,
                    name,
                    json,
                    start_input,
                } => Some(ToolCall {
                    id,
                    name,
                    arguments: if !json.is_empty() {
                        json
                    } else if start_input.as_object().is_some_and(|o| !o.is_empty()) {
                        start_input.to_string()
                    } else {
                        "{}".to_string()
                    },
                }),
                Block::Text | Block::Other => None,
            })
            .collect();
        TurnResponse {
            text: self.text,
            tool_calls,
            stop_reason: stop_reason(self.stop_reason.as_deref()),
            usage: Usage {
                // Anthropic's `input_tokens` excludes cache reads and writes.
                input_tokens: self.input_tokens + self.cache_read + self.cache_creation,
                cached_input_tokens: self.cache_read,
                output_tokens: self.output_tokens,
                estimated: false,
                cache_write_input_tokens: self.cache_creation,
                reasoning_tokens: 0,
            },
            request_id: None,
            reasoning: Vec::new(),
        }
    }
}

fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason {
        Some("end_turn") | None => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("refusal") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

fn error_fault(error: &Value) -> StreamFault {
    let kind = error
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("error")
        .to_string();
    let message = error_message(error);
    let context_too_long = kind == "request_too_large" || mentions_context_too_long(&message);
    let retryable = matches!(
        kind.as_str(),
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error"
    );
    StreamFault::ErrorEvent {
        kind,
        message,
        retryable: retryable && !context_too_long,
        context_too_long,
    }
}

impl StreamDecoder for Decoder {
    fn on_event(
        &mut self,
        event: &SseEvent,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Flow, StreamFault> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let value = event_json(data)?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                self.read_usage(value.get("message").and_then(|m| m.get("usage")));
            }
            "content_block_start" => {
                let block = value.get("content_block").cloned().unwrap_or(Value::Null);
                let parsed = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str)
                            && !text.is_empty()
                        {
                            self.text.push_str(text);
                            on_text(text);
                        }
                        Block::Text
                    }
                    Some("tool_use") => Block::tool_use(&block),
                    _ => Block::Other,
                };
                self.blocks.insert(index, parsed);
            }
            "content_block_delta" => {
                let delta = value.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(text) = delta.get("text").and_then(Value::as_str)
                            && matches!(self.blocks.get(&index), Some(Block::Text) | None)
                        {
                            self.text.push_str(text);
                            on_text(text);
                        }
                    }
                    Some("input_json_delta") => {
                        if let (Some(Block::ToolUse { json, .. }), Some(piece)) = (
                            self.blocks.get_mut(&index),
                            delta.get("partial_json").and_then(Value::as_str),
                        ) {
                            json.push_str(piece);
                        }
                    }
                    // thinking_delta, signature_delta, citations_delta, ...
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = value
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_string());
                }
                self.read_usage(value.get("usage"));
            }
            "message_stop" => return Ok(Flow::Done),
            "error" => {
                return Err(error_fault(value.get("error").unwrap_or(&value)));
            }
            // ping, content_block_stop and event types newer than kkrun.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn has_content(&self) -> bool {
        !self.text.is_empty()
            || self
                .blocks
                .values()
                .any(|b| matches!(b, Block::ToolUse { .. }))
    }

    fn finish(self: Box<Self>, at_eof: bool) -> Result<TurnResponse, StreamFault> {
        // Without `message_stop` the message is still complete once
        // `message_delta` said why the model stopped.
        if at_eof && self.stop_reason.is_none() {
            return Err(StreamFault::Truncated);
        }
        Ok(self.response())
    }
}

/// Decodes a non-streamed message.
pub(crate) fn decode_complete(body: &[u8]) -> Result<TurnResponse, StreamFault> {
    let value = json_body(body)?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_fault(value.get("error").unwrap_or(&value)));
    }
    let mut decoder = Decoder::default();
    decoder.read_usage(value.get("usage"));
    for (n, block) in value
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                decoder.text.push_str(
                    block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                );
            }
            Some("tool_use") => {
                decoder.blocks.insert(n as u64, Block::tool_use(block));
            }
            _ => {}
        }
    }
    decoder.stop_reason = value
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(decoder.response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::types::ToolSpec;

    #[test]
    fn request_merges_tool_results_and_sets_cache_breakpoints() {
        let request = TurnRequest {
            model: "claude-sonnet-4-5".into(),
            system: "sys".into(),
            messages: vec![
                Message::User {
                    content: "go".into(),
                },
                Message::Assistant {
                    content: "looking".into(),
                    tool_calls: vec![
                        ToolCall {
                            id: "t1".into(),
                            name: "ls".into(),
                            arguments: r#"{"dir":"."}"#.into(),
                        },
                        ToolCall {
                            id: "t2".into(),
                            name: "ls".into(),
                            arguments: "{not json".into(),
                        },
                    ],
                    reasoning: Vec::new(),
                },
                Message::Tool {
                    call_id: "t1".into(),
                    content: "a".into(),
                    is_error: false,
                },
                Message::Tool {
                    call_id: "t2".into(),
                    content: "arguments were not valid JSON".into(),
                    is_error: true,
                },
                Message::User {
                    content: "hurry".into(),
                },
            ],
            tools: vec![
                ToolSpec {
                    name: "ls".into(),
                    description: "list".into(),
                    parameters: json!({"type": "object"}),
                },
                ToolSpec {
                    name: "cat".into(),
                    description: "read".into(),
                    parameters: json!({"type": "object"}),
                },
            ],
            max_output_tokens: None,
            temperature: None,
            cache_key: None,
        };
        let body = request_body(&request, true);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": DEFAULT_MAX_TOKENS,
                "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "go"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "looking"},
                        {"type": "tool_use", "id": "t1", "name": "ls", "input": {"dir": "."}},
                        {"type": "tool_use", "id": "t2", "name": "ls", "input": {}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "a"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": "arguments were not valid JSON", "is_error": true},
                        {"type": "text", "text": "hurry", "cache_control": {"type": "ephemeral"}},
                    ]},
                ],
                "tools": [
                    {"name": "ls", "description": "list", "input_schema": {"type": "object"}},
                    {"name": "cat", "description": "read", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                ],
                "stream": true,
            })
        );
    }

    #[test]
    fn complete_message_decodes() {
        let body = json!({
            "type": "message",
            "content": [
                {"type": "thinking", "thinking": "hmm"},
                {"type": "text", "text": "done"},
                {"type": "tool_use", "id": "t", "name": "ls", "input": {"a": 1}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 20, "output_tokens": 3}
        });
        let response = decode_complete(body.to_string().as_bytes()).unwrap();
        assert_eq!(response.text, "done");
        assert_eq!(response.tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 35,
                cached_input_tokens: 10,
                output_tokens: 3,
                estimated: false,
                cache_write_input_tokens: 20,
                reasoning_tokens: 0,
            }
        );
    }
}

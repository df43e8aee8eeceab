//! Scripted model turns, encoded as the byte-exact streams a real server
//! would send. Used to build cassettes for tests and example tasks (see
//! [`Cassette::from_turns`](super::Cassette::from_turns)) and to feed test
//! servers.
//!
//! ```
//! use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn, encode_openai_sse};
//!
//! let turn = ScriptedTurn::text("Let me look.").with_tool_call(ScriptedToolCall::new(
//!     "call_1",
//!     "read_file",
//!     &serde_json::json!({"path": "src/lib.rs"}),
//! ));
//! let sse = encode_openai_sse(&turn);
//! assert!(sse.ends_with("data: [DONE]\n\n"));
//! ```

use serde_json::{Value, json};

use super::types::{StopReason, Usage};

/// Longest text or arguments fragment per event: real servers stream in
/// small pieces, and scripted streams should exercise reassembly too.
const PIECE_CHARS: usize = 16;

/// One tool call of a scripted turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedToolCall {
    /// The call id the model assigns.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model writes them: normally JSON text, but any
    /// text (to script invalid arguments).
    pub arguments: String,
}

impl ScriptedToolCall {
    /// A call with JSON arguments.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: &Value) -> Self {
        ScriptedToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.to_string(),
        }
    }

    /// A call whose arguments are exactly `raw` (which need not be JSON).
    pub fn with_raw_arguments(
        id: impl Into<String>,
        name: impl Into<String>,
        raw: impl Into<String>,
    ) -> Self {
        ScriptedToolCall {
            id: id.into(),
            name: name.into(),
            arguments: raw.into(),
        }
    }
}

/// One scripted model reply: optional text, tool calls, usage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScriptedTurn {
    /// The reply's text.
    pub text: Option<String>,
    /// The tool calls, in order.
    pub tool_calls: Vec<ScriptedToolCall>,
    /// Tokens the turn reports.
    pub usage: Usage,
    /// Why the model stopped; `None` derives it (tool use when there are
    /// tool calls, else end of turn).
    pub stop_reason: Option<StopReason>,
}

impl ScriptedTurn {
    /// A text-only reply, with a small default usage.
    pub fn text(text: impl Into<String>) -> ScriptedTurn {
        ScriptedTurn {
            text: Some(text.into()),
            usage: default_usage(),
            ..ScriptedTurn::default()
        }
    }

    /// A reply that only calls tools, with a small default usage.
    pub fn tool_calls(calls: Vec<ScriptedToolCall>) -> ScriptedTurn {
        ScriptedTurn {
            tool_calls: calls,
            usage: default_usage(),
            ..ScriptedTurn::default()
        }
    }

    /// Adds a tool call.
    pub fn with_tool_call(mut self, call: ScriptedToolCall) -> ScriptedTurn {
        self.tool_calls.push(call);
        self
    }

    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> ScriptedTurn {
        self.usage = usage;
        self
    }

    /// Sets the stop reason.
    pub fn with_stop_reason(mut self, reason: StopReason) -> ScriptedTurn {
        self.stop_reason = Some(reason);
        self
    }

    fn effective_stop_reason(&self) -> StopReason {
        self.stop_reason
            .clone()
            .unwrap_or(if self.tool_calls.is_empty() {
                StopReason::EndTurn
            } else {
                StopReason::ToolUse
            })
    }
}

fn default_usage() -> Usage {
    Usage {
        input_tokens: 100,
        cached_input_tokens: 0,
        output_tokens: 20,
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    }
}

/// `text` in pieces of at most [`PIECE_CHARS`] characters.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(PIECE_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

fn data_line(out: &mut String, value: &Value) {
    out.push_str("data: ");
    out.push_str(&value.to_string());
    out.push_str("\n\n");
}

fn event_line(out: &mut String, name: &str, value: &Value) {
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    data_line(out, value);
}

/// The chat-completions stream (`data:` chunks, a usage-only chunk, then
/// `data: [DONE]`) an OpenAI-compatible server sends for `turn`.
pub fn encode_openai_sse(turn: &ScriptedTurn) -> String {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let mut out = String::new();
    data_line(
        &mut out,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    );
    if let Some(text) = &turn.text {
        for piece in pieces(text) {
            data_line(&mut out, &chunk(json!({"content": piece}), Value::Null));
        }
    }
    for (index, call) in turn.tool_calls.iter().enumerate() {
        data_line(
            &mut out,
            &chunk(
                json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]}),
                Value::Null,
            ),
        );
        for piece in pieces(&call.arguments) {
            data_line(
                &mut out,
                &chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    Value::Null,
                ),
            );
        }
    }
    let finish = match turn.effective_stop_reason() {
        StopReason::EndTurn => "stop".to_string(),
        StopReason::ToolUse => "tool_calls".to_string(),
        StopReason::MaxTokens => "length".to_string(),
        StopReason::ContentFilter => "content_filter".to_string(),
        StopReason::Other(other) => other,
    };
    data_line(&mut out, &chunk(json!({}), json!(finish)));
    data_line(
        &mut out,
        &json!({
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "scripted",
            "choices": [],
            "usage": {
                "prompt_tokens": turn.usage.input_tokens,
                "completion_tokens": turn.usage.output_tokens,
                "total_tokens": turn.usage.total(),
                "prompt_tokens_details": {"cached_tokens": turn.usage.cached_input_tokens},
            },
        }),
    );
    out.push_str("data: [DONE]\n\n");
    out
}

/// The Messages API stream (`message_start` … `message_stop`) Anthropic
/// sends for `turn`.
pub fn encode_anthropic_sse(turn: &ScriptedTurn) -> String {
    let mut out = String::new();
    let uncached = turn
        .usage
        .input_tokens
        .saturating_sub(turn.usage.cached_input_tokens);
    event_line(
        &mut out,
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": "msg_scripted", "type": "message", "role": "assistant", "model": "scripted",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": uncached, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": turn.usage.cached_input_tokens, "output_tokens": 1},
        }}),
    );
    let mut index = 0;
    if let Some(text) = &turn.text {
        event_line(
            &mut out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "text", "text": ""}}),
        );
        for piece in pieces(text) {
            event_line(
                &mut out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": piece}}),
            );
        }
        event_line(
            &mut out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    for call in &turn.tool_calls {
        event_line(
            &mut out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}),
        );
        for piece in pieces(&call.arguments) {
            event_line(
                &mut out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
            );
        }
        event_line(
            &mut out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    let stop = match turn.effective_stop_reason() {
        StopReason::EndTurn => "end_turn".to_string(),
        StopReason::ToolUse => "tool_use".to_string(),
        StopReason::MaxTokens => "max_tokens".to_string(),
        StopReason::ContentFilter => "refusal".to_string(),
        StopReason::Other(other) => other,
    };
    event_line(
        &mut out,
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": turn.usage.output_tokens}}),
    );
    event_line(&mut out, "message_stop", &json!({"type": "message_stop"}));
    out
}

/// The Responses API stream OpenAI sends for `turn`: `response.created`,
/// each output item announced, streamed and completed
/// (`response.output_item.added` … `response.output_item.done`), then
/// `response.completed` (or `response.incomplete` for a token-limit or
/// content-filter stop) with the usage. Every event carries its
/// `sequence_number`.
pub fn encode_responses_sse(turn: &ScriptedTurn) -> String {
    let mut out = String::new();
    let mut sequence = 0u64;
    let mut emit = |out: &mut String, mut value: Value| {
        let name = value["type"].as_str().unwrap_or("message").to_string();
        value["sequence_number"] = sequence.into();
        sequence += 1;
        event_line(out, &name, &value);
    };
    let shell = |status: &str, output: &[Value]| {
        json!({"id": "resp_scripted", "object": "response", "created_at": 0,
               "status": status, "model": "scripted", "output": output})
    };
    emit(
        &mut out,
        json!({"type": "response.created", "response": shell("in_progress", &[])}),
    );
    let mut output = Vec::new();
    if let Some(text) = &turn.text {
        let index = output.len();
        let id = "msg_scripted";
        emit(
            &mut out,
            json!({"type": "response.output_item.added", "output_index": index, "item":
                {"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        );
        emit(
            &mut out,
            json!({"type": "response.content_part.added", "item_id": id, "output_index": index,
                   "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        );
        for piece in pieces(text) {
            emit(
                &mut out,
                json!({"type": "response.output_text.delta", "item_id": id, "output_index": index,
                       "content_index": 0, "delta": piece}),
            );
        }
        emit(
            &mut out,
            json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
                   "content_index": 0, "text": text}),
        );
        let item = json!({"id": id, "type": "message", "status": "completed", "role": "assistant",
                          "content": [{"type": "output_text", "text": text, "annotations": []}]});
        emit(
            &mut out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        output.push(item);
    }
    for (n, call) in turn.tool_calls.iter().enumerate() {
        let index = output.len();
        let id = format!("fc_scripted_{n}");
        emit(
            &mut out,
            json!({"type": "response.output_item.added", "output_index": index, "item":
                {"id": id, "type": "function_call", "status": "in_progress", "arguments": "",
                 "call_id": call.id, "name": call.name}}),
        );
        for piece in pieces(&call.arguments) {
            emit(
                &mut out,
                json!({"type": "response.function_call_arguments.delta", "item_id": id,
                       "output_index": index, "delta": piece}),
            );
        }
        emit(
            &mut out,
            json!({"type": "response.function_call_arguments.done", "item_id": id,
                   "output_index": index, "arguments": call.arguments}),
        );
        let item = json!({"id": id, "type": "function_call", "status": "completed",
                          "arguments": call.arguments, "call_id": call.id, "name": call.name});
        emit(
            &mut out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        output.push(item);
    }
    let incomplete = match turn.effective_stop_reason() {
        StopReason::MaxTokens => Some("max_output_tokens".to_string()),
        StopReason::ContentFilter => Some("content_filter".to_string()),
        StopReason::Other(other) => Some(other),
        StopReason::EndTurn | StopReason::ToolUse => None,
    };
    let (kind, status) = match incomplete {
        Some(_) => ("response.incomplete", "incomplete"),
        None => ("response.completed", "completed"),
    };
    let mut response = shell(status, &output);
    response["incomplete_details"] = match incomplete {
        Some(reason) => json!({"reason": reason}),
        None => Value::Null,
    };
    response["usage"] = json!({
        "input_tokens": turn.usage.input_tokens,
        "input_tokens_details": {"cached_tokens": turn.usage.cached_input_tokens},
        "output_tokens": turn.usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.usage.total(),
    });
    emit(&mut out, json!({"type": kind, "response": response}));
    out
}

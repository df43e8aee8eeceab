//! The OpenAI-compatible chat-completions wire format, as spoken by OpenAI,
//! DeepSeek, Qwen, vLLM, llama.cpp's server and Ollama's `/v1`.

use serde_json::{Map, Value, json};

use super::sse::SseEvent;
use super::types::{Message, StopReason, ToolCall, TurnRequest, TurnResponse, Usage};
use super::wire::{
    Dialect, Flow, StreamDecoder, StreamFault, count, data_excerpt, event_json, json_body,
    openai_error_fault,
};

/// The request body of one turn.
pub(crate) fn request_body(request: &TurnRequest, stream: bool, dialect: Dialect) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages {
        messages.push(match message {
            Message::User { content } => json!({"role": "user", "content": content}),
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                let mut out = Map::new();
                out.insert("role".into(), "assistant".into());
                if tool_calls.is_empty() {
                    out.insert("content".into(), content.as_str().into());
                } else {
                    out.insert(
                        "content".into(),
                        if content.is_empty() {
                            Value::Null
                        } else {
                            content.as_str().into()
                        },
                    );
                    let calls: Vec<Value> = tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": {
                                    "name": call.name,
                                    // Servers reject an empty arguments string.
                                    "arguments": if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() },
                                },
                            })
                        })
                        .collect();
                    out.insert("tool_calls".into(), calls.into());
                }
                Value::Object(out)
            }
            Message::Tool {
                call_id, content, ..
            } => json!({"role": "tool", "tool_call_id": call_id, "content": content}),
        });
    }

    let mut body = Map::new();
    body.insert("model".into(), request.model.as_str().into());
    body.insert("messages".into(), messages.into());
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    },
                })
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    if let Some(max) = request.max_output_tokens {
        let key = if dialect.max_completion_tokens {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body.insert(key.into(), max.into());
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), rounded_temperature(temperature));
    }
    body.insert("stream".into(), stream.into());
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

/// `0.2f32` widened to f64 is 0.20000000298…; recorded requests should read
/// (and compare) as the value the task file gave.
pub(crate) fn rounded_temperature(temperature: f32) -> Value {
    let rounded = (f64::from(temperature) * 1e6).round() / 1e6;
    serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

/// A tool call being assembled from fragments.
#[derive(Debug, Default)]
struct PartialCall {
    /// The `index` the server gave, or a synthetic one.
    index: u64,
    id: String,
    name: String,
    arguments: String,
}

/// Assembles a streamed chat completion.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    text: String,
    calls: Vec<PartialCall>,
    /// Slot of the legacy `function_call` field, once seen.
    legacy_call: Option<usize>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl Decoder {
    fn slot(&mut self, index: Option<u64>, id: Option<&str>) -> usize {
        if let Some(index) = index {
            if let Some(pos) = self.calls.iter().position(|c| c.index == index) {
                return pos;
            }
            self.calls.push(PartialCall {
                index,
                ..PartialCall::default()
            });
            return self.calls.len() - 1;
        }
        // Some servers send no index: match by id, else a new call when an id
        // appears, else the call in progress.
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            if let Some(pos) = self.calls.iter().position(|c| c.id == id) {
                return pos;
            }
        } else if !self.calls.is_empty() {
            return self.calls.len() - 1;
        }
        let index = self.calls.iter().map(|c| c.index + 1).max().unwrap_or(0);
        self.calls.push(PartialCall {
            index,
            ..PartialCall::default()
        });
        self.calls.len() - 1
    }

    fn merge_call(&mut self, slot: usize, id: Option<&str>, function: Option<&Value>) {
        let call = &mut self.calls[slot];
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            // llama.cpp's server repeats the id in every fragment.
            if call.id.is_empty() {
                call.id = id.to_string();
            }
        }
        let Some(function) = function else { return };
        if let Some(name) = function.get("name").and_then(Value::as_str) {
            // Names arrive once, or repeated whole in every fragment.
            if call.name.is_empty() {
                call.name = name.to_string();
            } else if call.name != name {
                call.name.push_str(name);
            }
        }
        match function.get("arguments") {
            Some(Value::String(piece)) => call.arguments.push_str(piece),
            // A few servers send the arguments as an object, not as text.
            Some(value @ Value::Object(_)) => call.arguments = value.to_string(),
            _ => {}
        }
    }

    fn merge_delta(&mut self, delta: &Value, on_text: &mut (dyn FnMut(&str) + Send)) {
        if let Some(text) = delta.get("content").and_then(Value::as_str)
            && !text.is_empty()
        {
            self.text.push_str(text);
            on_text(text);
        }
        // `reasoning_content` / `reasoning` are thinking: kept out of the text.
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for fragment in calls {
                let id = fragment.get("id").and_then(Value::as_str);
                let index = fragment.get("index").and_then(Value::as_u64);
                let slot = self.slot(index, id);
                self.merge_call(slot, id, fragment.get("function"));
            }
        }
        if let Some(function) = delta.get("function_call").filter(|f| f.is_object()) {
            let slot = match self.legacy_call {
                Some(slot) => slot,
                None => {
                    let slot = self.slot(None, Some("legacy-function-call"));
                    self.legacy_call = Some(slot);
                    slot
                }
            };
            self.merge_call(slot, None, Some(function));
        }
    }

    fn response(self) -> TurnResponse {
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, call)| !call.name.is_empty() || !call.arguments.is_empty())
            .map(|(n, call)| ToolCall {
                id: if call.id.is_empty() {
                    format!("call_{n}")
                } else {
                    call.id
                },
                name: call.name,
                arguments: call.arguments,
            })
            .collect();
        let stop_reason = stop_reason(self.finish_reason.as_deref(), !tool_calls.is_empty());
        TurnResponse {
            text: self.text,
            tool_calls,
            stop_reason,
            usage: self.usage.unwrap_or_default(),
            request_id: None,
            reasoning: Vec::new(),
        }
    }
}

fn stop_reason(finish_reason: Option<&str>, has_tool_calls: bool) -> StopReason {
    match finish_reason {
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        // Some local servers say `stop` even when they return tool calls.
        Some("stop") | None if has_tool_calls => StopReason::ToolUse,
        Some("stop") | Some("end_turn") | None => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

fn usage(value: &Value) -> Option<Usage> {
    if !value.is_object() {
        return None;
    }
    let details = value.get("prompt_tokens_details");
    let cached = details
        .and_then(|d| d.get("cached_tokens"))
        // DeepSeek reports cache hits under its own name.
        .or_else(|| value.get("prompt_cache_hit_tokens"));
    Some(Usage {
        input_tokens: count(value.get("prompt_tokens")),
        cached_input_tokens: count(cached),
        output_tokens: count(value.get("completion_tokens")),
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: count(
            value
                .get("completion_tokens_details")
                .and_then(|d| d.get("reasoning_tokens")),
        ),
    })
}

/// The `error` object some servers send instead of a chunk.
fn error_fault(error: &Value) -> StreamFault {
    let kind = error
        .get("type")
        .or_else(|| error.get("code"))
        .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_string))
        .unwrap_or_else(|| "error".to_string());
    openai_error_fault(
        kind,
        error,
        &[
            "invalid_request",
            "authentication",
            "permission",
            "not_found",
        ],
    )
}

impl StreamDecoder for Decoder {
    fn on_event(
        &mut self,
        event: &SseEvent,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Flow, StreamFault> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let chunk = event_json(data)?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return Err(error_fault(error));
        }
        if event.event == "error" {
            return Err(error_fault(&chunk));
        }
        if let Some(usage) = chunk.get("usage").and_then(usage) {
            self.usage = Some(usage);
        }
        if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
            // kkrun asks for one choice; ignore any other.
            for choice in choices
                .iter()
                .filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            {
                if let Some(delta) = choice.get("delta") {
                    self.merge_delta(delta, on_text);
                }
                if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                    self.finish_reason = Some(reason.to_string());
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn has_content(&self) -> bool {
        !self.text.is_empty() || !self.calls.is_empty()
    }

    fn finish(self: Box<Self>, at_eof: bool) -> Result<TurnResponse, StreamFault> {
        // A missing `[DONE]` is fine once the finish reason arrived.
        if at_eof && self.finish_reason.is_none() {
            return Err(StreamFault::Truncated);
        }
        Ok(self.response())
    }
}

/// Decodes a non-streamed chat completion.
pub(crate) fn decode_complete(body: &[u8]) -> Result<TurnResponse, StreamFault> {
    let value = json_body(body)?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(error_fault(error));
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| {
            StreamFault::Malformed(format!(
                "the response has no choices: {}",
                data_excerpt(&value.to_string())
            ))
        })?;
    let mut decoder = Decoder::default();
    let mut ignore_text = |_: &str| {};
    if let Some(message) = choice.get("message") {
        // A complete message has the shape of one big delta; indices may be
        // missing, so give each call its position.
        let mut delta = message.clone();
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (n, call) in calls.iter_mut().enumerate() {
                if let Some(obj) = call.as_object_mut() {
                    obj.entry("index").or_insert_with(|| n.into());
                }
            }
        }
        decoder.merge_delta(&delta, &mut ignore_text);
    }
    decoder.finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(usage) = value.get("usage").and_then(usage) {
        decoder.usage = Some(usage);
    }
    Ok(decoder.response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::types::ToolSpec;

    fn feed(decoder: &mut Decoder, data: &str) -> Result<Flow, StreamFault> {
        let mut sink = |_: &str| {};
        decoder.on_event(
            &SseEvent {
                event: "message".into(),
                data: data.into(),
            },
            &mut sink,
        )
    }

    #[test]
    fn request_body_has_system_tools_and_stream_options() {
        let request = TurnRequest {
            model: "gpt-4.1".into(),
            system: "be brief".into(),
            messages: vec![
                Message::User {
                    content: "hi".into(),
                },
                Message::Assistant {
                    content: String::new(),
                    tool_calls: vec![ToolCall {
                        id: "c1".into(),
                        name: "ls".into(),
                        arguments: String::new(),
                    }],
                    reasoning: Vec::new(),
                },
                Message::Tool {
                    call_id: "c1".into(),
                    content: "a.txt".into(),
                    is_error: false,
                },
            ],
            tools: vec![ToolSpec {
                name: "ls".into(),
                description: "list".into(),
                parameters: json!({"type": "object"}),
            }],
            max_output_tokens: Some(100),
            temperature: Some(0.2),
            cache_key: None,
        };
        let body = request_body(&request, true, Dialect::default());
        assert_eq!(
            body,
            json!({
                "model": "gpt-4.1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
                ],
                "tools": [{"type": "function", "function": {"name": "ls", "description": "list", "parameters": {"type": "object"}}}],
                "max_tokens": 100,
                "temperature": 0.2,
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        let official = request_body(
            &request,
            false,
            Dialect {
                max_completion_tokens: true,
            },
        );
        assert_eq!(official["max_completion_tokens"], 100);
        assert!(official.get("stream_options").is_none());
    }

    #[test]
    fn repeated_ids_and_names_are_not_duplicated() {
        let mut decoder = Decoder::default();
        for piece in ["{\"pa", "th\":", "\"a\"}"] {
            let chunk = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": piece}}
            ]}}]});
            feed(&mut decoder, &chunk.to_string()).unwrap();
        }
        feed(
            &mut decoder,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        )
        .unwrap();
        let response = Box::new(decoder).finish(true).unwrap();
        assert_eq!(
            response.tool_calls,
            vec![ToolCall {
                id: "call_1".into(),
                name: "read_file".into(),
                arguments: r#"{"path":"a"}"#.into()
            }]
        );
        assert_eq!(response.stop_reason, StopReason::ToolUse);
    }

    #[test]
    fn legacy_function_call_becomes_a_tool_call() {
        let mut decoder = Decoder::default();
        feed(
            &mut decoder,
            r#"{"choices":[{"index":0,"delta":{"function_call":{"name":"ls","arguments":"{\"d"}}}]}"#,
        )
        .unwrap();
        feed(
            &mut decoder,
            r#"{"choices":[{"index":0,"delta":{"function_call":{"arguments":"ir\":1}"}},"finish_reason":"function_call"}]}"#,
        )
        .unwrap();
        let response = Box::new(decoder).finish(true).unwrap();
        assert_eq!(response.tool_calls.len(), 1);
        assert_eq!(response.tool_calls[0].name, "ls");
        assert_eq!(response.tool_calls[0].arguments, r#"{"dir":1}"#);
        assert_eq!(response.stop_reason, StopReason::ToolUse);
    }

    #[test]
    fn eof_without_finish_reason_is_truncated() {
        let mut decoder = Decoder::default();
        feed(
            &mut decoder,
            r#"{"choices":[{"index":0,"delta":{"content":"par"}}]}"#,
        )
        .unwrap();
        assert_eq!(Box::new(decoder).finish(true), Err(StreamFault::Truncated));
    }

    #[test]
    fn error_chunk_is_a_fault() {
        let mut decoder = Decoder::default();
        let fault = feed(
            &mut decoder,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        )
        .unwrap_err();
        assert!(matches!(
            fault,
            StreamFault::ErrorEvent {
                retryable: false,
                context_too_long: true,
                ..
            }
        ));
    }

    #[test]
    fn complete_response_decodes() {
        let body = json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 1}}
        });
        let response = decode_complete(body.to_string().as_bytes()).unwrap();
        assert_eq!(response.text, "ok");
        assert_eq!(response.tool_calls[0].id, "x");
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 10,
                cached_input_tokens: 4,
                output_tokens: 2,
                estimated: false,
                cache_write_input_tokens: 0,
                reasoning_tokens: 1,
            }
        );
    }
}

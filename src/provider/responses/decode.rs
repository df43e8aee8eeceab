//! Reading a Responses API stream (or complete response) into a turn.

use serde_json::{Value, json};

use super::super::sse::SseEvent;
use super::super::types::{StopReason, ToolCall, TurnResponse, Usage};
use super::super::wire::{
    Flow, StreamDecoder, StreamFault, count, data_excerpt, event_json, json_body,
    openai_error_fault,
};

/// A function call being assembled from events.
#[derive(Debug, Default)]
struct PartialCall {
    /// The output item's id (`fc_…`), which argument deltas name.
    item_id: String,
    /// Its position among the response's output items.
    output_index: Option<u64>,
    /// The id the call's output must answer (`call_…`).
    call_id: String,
    name: String,
    arguments: String,
}

/// How the response ended, from its terminal event.
#[derive(Debug)]
struct Terminal {
    status: String,
    incomplete_reason: Option<String>,
}

/// Assembles a streamed response.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    text: String,
    calls: Vec<PartialCall>,
    reasoning: Vec<Value>,
    terminal: Option<Terminal>,
    usage: Option<Usage>,
}

impl Decoder {
    /// The call an event refers to, by item id, else by output index.
    fn call_mut(&mut self, event: &Value) -> Option<&mut PartialCall> {
        let item_id = event.get("item_id").and_then(Value::as_str);
        let index = event.get("output_index").and_then(Value::as_u64);
        let pos = self
            .calls
            .iter()
            .position(|c| item_id.is_some_and(|id| !id.is_empty() && c.item_id == id))
            .or_else(|| {
                self.calls
                    .iter()
                    .position(|c| index.is_some() && c.output_index == index)
            })?;
        Some(&mut self.calls[pos])
    }

    /// An output item, as announced (`added`) or complete (`done`). A
    /// complete item is authoritative: it replaces what the deltas built.
    fn item(&mut self, item: &Value, output_index: Option<u64>) {
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("");
        match text("type") {
            "function_call" => {
                let event = json!({"item_id": text("id"), "output_index": output_index});
                let arguments = item.get("arguments").and_then(Value::as_str);
                if let Some(call) = self.call_mut(&event) {
                    if !text("call_id").is_empty() {
                        call.call_id = text("call_id").to_string();
                    }
                    if !text("name").is_empty() {
                        call.name = text("name").to_string();
                    }
                    if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
                        call.arguments = arguments.to_string();
                    }
                } else {
                    self.calls.push(PartialCall {
                        item_id: text("id").to_string(),
                        output_index,
                        call_id: text("call_id").to_string(),
                        name: text("name").to_string(),
                        arguments: arguments.unwrap_or("").to_string(),
                    });
                }
            }
            "reasoning" => {
                if let Some(carried) = carried_reasoning(item) {
                    self.reasoning.push(carried);
                }
            }
            _ => {}
        }
    }

    /// The terminal event's response object: status, usage, and the output
    /// items the stream may not have sent one by one.
    fn complete(&mut self, response: &Value, on_text: &mut (dyn FnMut(&str) + Send)) {
        let status = response
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("completed")
            .to_string();
        let incomplete_reason = response
            .get("incomplete_details")
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str)
            .map(str::to_string);
        self.terminal = Some(Terminal {
            status,
            incomplete_reason,
        });
        if let Some(usage) = response.get("usage").and_then(usage) {
            self.usage = Some(usage);
        }
        let Some(output) = response.get("output").and_then(Value::as_array) else {
            return;
        };
        let streamed_reasoning = !self.reasoning.is_empty();
        let streamed_text = !self.text.is_empty();
        for (index, item) in output.iter().enumerate() {
            match item.get("type").and_then(Value::as_str) {
                Some("function_call") => self.item(item, Some(index as u64)),
                Some("reasoning") if !streamed_reasoning => self.item(item, Some(index as u64)),
                Some("message") if !streamed_text => {
                    let text = message_text(item);
                    if !text.is_empty() {
                        on_text(&text);
                        self.text.push_str(&text);
                    }
                }
                _ => {}
            }
        }
    }

    fn response(self) -> TurnResponse {
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, call)| !call.name.is_empty() || !call.arguments.is_empty())
            .map(|(n, call)| ToolCall {
                id: if !call.call_id.is_empty() {
                    call.call_id
                } else if !call.item_id.is_empty() {
                    call.item_id
                } else {
                    format!("call_{n}")
                },
                name: call.name,
                arguments: call.arguments,
            })
            .collect();
        let stop_reason = match &self.terminal {
            Some(Terminal {
                status,
                incomplete_reason,
            }) if status == "incomplete" => match incomplete_reason.as_deref() {
                Some("max_output_tokens") => StopReason::MaxTokens,
                Some("content_filter") => StopReason::ContentFilter,
                Some(other) => StopReason::Other(other.to_string()),
                None => StopReason::Other("incomplete".to_string()),
            },
            _ if !tool_calls.is_empty() => StopReason::ToolUse,
            _ => StopReason::EndTurn,
        };
        TurnResponse {
            text: self.text,
            tool_calls,
            stop_reason,
            usage: self.usage.unwrap_or_default(),
            request_id: None,
            reasoning: self.reasoning,
        }
    }
}

/// A reasoning output item as it can be sent back under `store: false`:
/// its summary and encrypted content, without the id (which names an item
/// the server did not keep) or the status. Items without encrypted content
/// cannot be resent and are dropped.
fn carried_reasoning(item: &Value) -> Option<Value> {
    let encrypted = item.get("encrypted_content").and_then(Value::as_str)?;
    Some(json!({
        "type": "reasoning",
        "summary": item.get("summary").cloned().unwrap_or_else(|| json!([])),
        "encrypted_content": encrypted,
    }))
}

/// The text of a `message` output item (its `output_text` and `refusal`
/// parts, joined).
fn message_text(item: &Value) -> String {
    let Some(parts) = item.get("content").and_then(Value::as_array) else {
        return String::new();
    };
    parts
        .iter()
        .filter_map(|part| {
            part.get("text")
                .or_else(|| part.get("refusal"))
                .and_then(Value::as_str)
        })
        .collect()
}

/// Usage of a response. Reasoning tokens are part of `output_tokens`
/// (`output_tokens_details.reasoning_tokens` says how many), so they are
/// counted and priced as output.
fn usage(value: &Value) -> Option<Usage> {
    if !value.is_object() {
        return None;
    }
    let cached = value
        .get("input_tokens_details")
        .and_then(|d| d.get("cached_tokens"));
    let reasoning = value
        .get("output_tokens_details")
        .and_then(|d| d.get("reasoning_tokens"));
    Some(Usage {
        input_tokens: count(value.get("input_tokens")),
        cached_input_tokens: count(cached),
        // A server that left reasoning out of the output count must not
        // make it free.
        output_tokens: count(value.get("output_tokens")).max(count(reasoning)),
        cache_write_input_tokens: 0,
        reasoning_tokens: count(reasoning),
        estimated: false,
    })
}

/// An `error` event, a failed response's `error`, or an error body.
fn error_fault(error: &Value) -> StreamFault {
    // `code` says more than `type` (which is just "error" in an error event).
    let kind = ["code", "type"]
        .iter()
        .filter_map(|key| error.get(*key).and_then(Value::as_str))
        .find(|kind| !kind.is_empty() && *kind != "error")
        .unwrap_or("error")
        .to_string();
    openai_error_fault(
        kind,
        error,
        &[
            "invalid",
            "authentication",
            "permission",
            "not_found",
            "insufficient_quota",
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
        if data.is_empty() || data == "[DONE]" {
            return Ok(Flow::Continue);
        }
        let value = event_json(data)?;
        // The `type` field names the event; the SSE `event:` line repeats it.
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(event.event.as_str());
        let delta = || value.get("delta").and_then(Value::as_str).unwrap_or("");
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                let text = delta();
                if !text.is_empty() {
                    self.text.push_str(text);
                    on_text(text);
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = value.get("item") {
                    let index = value.get("output_index").and_then(Value::as_u64);
                    self.item(item, index);
                }
            }
            "response.function_call_arguments.delta" => {
                let piece = delta().to_string();
                match self.call_mut(&value) {
                    Some(call) => call.arguments.push_str(&piece),
                    None => {
                        return Err(StreamFault::Malformed(format!(
                            "arguments for a function call that was never announced: {}",
                            data_excerpt(data)
                        )));
                    }
                }
            }
            "response.function_call_arguments.done" => {
                let arguments = value.get("arguments").and_then(Value::as_str);
                if let (Some(arguments), Some(call)) = (arguments, self.call_mut(&value)) {
                    call.arguments = arguments.to_string();
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = value.get("response").cloned().unwrap_or(Value::Null);
                self.complete(&response, on_text);
                if kind == "response.incomplete"
                    && let Some(terminal) = &mut self.terminal
                {
                    terminal.status = "incomplete".to_string();
                }
                return Ok(Flow::Done);
            }
            "response.failed" => {
                let error = value
                    .get("response")
                    .and_then(|r| r.get("error"))
                    .filter(|e| e.is_object())
                    .cloned()
                    .unwrap_or_else(|| json!({"code": "response_failed", "message": data}));
                return Err(error_fault(&error));
            }
            "error" => {
                // Older servers nest the error, newer ones put it at the top.
                let error = value
                    .get("error")
                    .filter(|e| e.is_object())
                    .unwrap_or(&value);
                return Err(error_fault(error));
            }
            // Lifecycle, content-part, reasoning-summary and other events
            // carry nothing the turn needs.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn has_content(&self) -> bool {
        !self.text.is_empty() || !self.calls.is_empty()
    }

    fn finish(self: Box<Self>, _at_eof: bool) -> Result<TurnResponse, StreamFault> {
        // Only a terminal event completes a response; the body ending
        // before one is a cut stream.
        if self.terminal.is_none() {
            return Err(StreamFault::Truncated);
        }
        Ok(self.response())
    }
}

/// Decodes a non-streamed response object.
pub(crate) fn decode_complete(body: &[u8]) -> Result<TurnResponse, StreamFault> {
    let value = json_body(body)?;
    if let Some(error) = value.get("error").filter(|e| e.is_object()) {
        return Err(error_fault(error));
    }
    if value.get("output").and_then(Value::as_array).is_none() {
        return Err(StreamFault::Malformed(format!(
            "the response has no output: {}",
            data_excerpt(&value.to_string())
        )));
    }
    let mut decoder = Decoder::default();
    let mut ignore_text = |_: &str| {};
    decoder.complete(&value, &mut ignore_text);
    Ok(decoder.response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(decoder: &mut Decoder, value: Value) -> Result<Flow, StreamFault> {
        let mut sink = |_: &str| {};
        decoder.on_event(
            &SseEvent {
                event: value["type"].as_str().unwrap_or("message").into(),
                data: value.to_string(),
            },
            &mut sink,
        )
    }

    #[test]
    fn completed_response_without_item_events_is_read_from_its_output() {
        let mut decoder = Decoder::default();
        feed(
            &mut decoder,
            json!({"type": "response.completed", "response": {"status": "completed", "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"},
                {"type": "message", "content": [{"type": "output_text", "text": "done"}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "ls", "arguments": "{}"}
            ], "usage": {"input_tokens": 10, "output_tokens": 3,
                         "input_tokens_details": {"cached_tokens": 4},
                         "output_tokens_details": {"reasoning_tokens": 2}}}}),
        )
        .unwrap();
        let response = Box::new(decoder).finish(false).unwrap();
        assert_eq!(response.text, "done");
        assert_eq!(response.tool_calls[0].id, "call_9");
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.reasoning,
            vec![json!({"type": "reasoning", "summary": [], "encrypted_content": "enc"})]
        );
        assert_eq!(response.usage.cached_input_tokens, 4);
    }

    #[test]
    fn incomplete_at_the_token_limit_is_max_tokens() {
        let mut decoder = Decoder::default();
        feed(&mut decoder, json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "par"})).unwrap();
        let flow = feed(
            &mut decoder,
            json!({"type": "response.incomplete", "response": {"status": "incomplete",
                "incomplete_details": {"reason": "max_output_tokens"}, "output": []}}),
        )
        .unwrap();
        assert_eq!(flow, Flow::Done);
        let response = Box::new(decoder).finish(false).unwrap();
        assert_eq!(response.stop_reason, StopReason::MaxTokens);
        assert_eq!(response.text, "par");
    }

    #[test]
    fn error_events_are_faults_and_eof_before_the_end_is_truncated() {
        let mut decoder = Decoder::default();
        let fault = feed(
            &mut decoder,
            json!({"type": "error", "code": "context_length_exceeded", "message": "Your input exceeds the context window of this model.", "param": "input"}),
        )
        .unwrap_err();
        assert!(matches!(
            fault,
            StreamFault::ErrorEvent { ref kind, retryable: false, context_too_long: true, .. } if kind == "context_length_exceeded"
        ));
        let fault = feed(
            &mut decoder,
            json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}}}),
        )
        .unwrap_err();
        assert!(matches!(
            fault,
            StreamFault::ErrorEvent {
                retryable: true,
                ..
            }
        ));
        let decoder = Decoder::default();
        assert_eq!(Box::new(decoder).finish(true), Err(StreamFault::Truncated));
    }

    #[test]
    fn complete_body_decodes() {
        let body = json!({"id": "resp_1", "status": "completed", "output": [
            {"type": "message", "content": [{"type": "output_text", "text": "ok"}]}
        ], "usage": {"input_tokens": 5, "output_tokens": 1}});
        let response = decode_complete(body.to_string().as_bytes()).unwrap();
        assert_eq!(response.text, "ok");
        assert_eq!(response.stop_reason, StopReason::EndTurn);
        assert_eq!(response.usage.total(), 6);
        assert!(
            decode_complete(br#"{"error": {"code": "invalid_api_key", "message": "no"}}"#).is_err()
        );
    }
}

//! The request body of one Responses API turn.

use serde_json::{Map, Value, json};

use super::super::openai::rounded_temperature;
use super::super::types::{Message, TurnRequest};

/// The request body of one turn.
pub(crate) fn request_body(request: &TurnRequest, stream: bool) -> Value {
    let mut input = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        match message {
            Message::User { content } => {
                input.push(json!({"role": "user", "content": content}));
            }
            Message::Assistant {
                content,
                tool_calls,
                reasoning,
            } => {
                // The server's order: reasoning, then the reply, then calls.
                input.extend(reasoning.iter().cloned());
                if !content.is_empty() {
                    input.push(json!({
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": content}],
                    }));
                }
                for call in tool_calls {
                    input.push(json!({
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        // The server rejects an empty arguments string.
                        "arguments": if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() },
                    }));
                }
            }
            Message::Tool {
                call_id, content, ..
            } => input.push(json!({
                "type": "function_call_output",
                "call_id": call_id,
                "output": content,
            })),
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), request.model.as_str().into());
    if !request.system.is_empty() {
        body.insert("instructions".into(), request.system.as_str().into());
    }
    body.insert("input".into(), input.into());
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                })
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    if let Some(max) = request.max_output_tokens {
        body.insert("max_output_tokens".into(), max.into());
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), rounded_temperature(temperature));
    }
    // Nothing is stored on the server: the conversation is resent whole,
    // and the reasoning comes back encrypted so it can be resent too.
    body.insert("store".into(), false.into());
    if is_reasoning_model(&request.model) {
        body.insert("include".into(), json!(["reasoning.encrypted_content"]));
    }
    if let Some(key) = &request.cache_key {
        body.insert("prompt_cache_key".into(), key.as_str().into());
    }
    body.insert("stream".into(), stream.into());
    Value::Object(body)
}

/// Whether `model` may reason. OpenAI refuses encrypted reasoning content
/// for its GPT-4 and GPT-3.5 families, which have none; every other model
/// (o-series, GPT-5, codex models, other servers' models) is asked for it.
fn is_reasoning_model(model: &str) -> bool {
    !(model.starts_with("gpt-4") || model.starts_with("gpt-3.5"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::types::{ToolCall, ToolSpec};

    #[test]
    fn request_body_carries_reasoning_calls_outputs_and_cache_key() {
        let reasoning = json!({"type": "reasoning", "summary": [], "encrypted_content": "gAAA"});
        let request = TurnRequest {
            model: "gpt-5-codex".into(),
            system: "be brief".into(),
            messages: vec![
                Message::User {
                    content: "hi".into(),
                },
                Message::Assistant {
                    content: "Looking.".into(),
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "ls".into(),
                        arguments: String::new(),
                    }],
                    reasoning: vec![reasoning.clone()],
                },
                Message::Tool {
                    call_id: "call_1".into(),
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
            temperature: None,
            cache_key: Some("kkrun/t/code".into()),
        };
        assert_eq!(
            request_body(&request, true),
            json!({
                "model": "gpt-5-codex",
                "instructions": "be brief",
                "input": [
                    {"role": "user", "content": "hi"},
                    reasoning,
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                    {"type": "function_call", "call_id": "call_1", "name": "ls", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                ],
                "tools": [{"type": "function", "name": "ls", "description": "list", "parameters": {"type": "object"}}],
                "max_output_tokens": 100,
                "store": false,
                "include": ["reasoning.encrypted_content"],
                "prompt_cache_key": "kkrun/t/code",
                "stream": true,
            })
        );
        let plain = TurnRequest {
            model: "gpt-4.1".into(),
            cache_key: None,
            ..request
        };
        let body = request_body(&plain, false);
        assert!(body.get("include").is_none());
        assert!(body.get("prompt_cache_key").is_none());
        assert_eq!(body["stream"], false);
    }
}

//! What every wire format provides: building the request body, decoding the
//! streamed (or, as a fallback, complete) response.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sse::SseEvent;
use super::types::{TurnRequest, TurnResponse};
use super::{anthropic, openai, responses};

/// The wire formats kkrun speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFormat {
    /// OpenAI-compatible chat completions (`/chat/completions`).
    #[serde(rename = "openai")]
    OpenAi,
    /// The OpenAI Responses API (`/responses`), stateless: `store: false`
    /// with encrypted reasoning carried from turn to turn.
    #[serde(rename = "openai-responses")]
    OpenAiResponses,
    /// The Anthropic Messages API (`/v1/messages`).
    Anthropic,
}

impl WireFormat {
    /// The provider prefix of a model spec: `openai`, `openai-responses`
    /// or `anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            WireFormat::OpenAi => "openai",
            WireFormat::OpenAiResponses => "openai-responses",
            WireFormat::Anthropic => "anthropic",
        }
    }

    /// Parses a provider prefix.
    pub fn from_name(name: &str) -> Option<WireFormat> {
        match name {
            "openai" => Some(WireFormat::OpenAi),
            "openai-responses" => Some(WireFormat::OpenAiResponses),
            "anthropic" => Some(WireFormat::Anthropic),
            _ => None,
        }
    }

    /// The request body of one turn.
    pub(crate) fn request_body(
        self,
        request: &TurnRequest,
        stream: bool,
        dialect: Dialect,
    ) -> Value {
        match self {
            WireFormat::OpenAi => openai::request_body(request, stream, dialect),
            WireFormat::OpenAiResponses => responses::request_body(request, stream),
            WireFormat::Anthropic => anthropic::request_body(request, stream),
        }
    }

    /// A fresh decoder for one streamed response.
    pub(crate) fn decoder(self) -> Box<dyn StreamDecoder> {
        match self {
            WireFormat::OpenAi => Box::new(openai::Decoder::default()),
            WireFormat::OpenAiResponses => Box::new(responses::Decoder::default()),
            WireFormat::Anthropic => Box::new(anthropic::Decoder::default()),
        }
    }

    /// Decodes a complete (non-streamed) response body.
    pub(crate) fn decode_complete(self, body: &[u8]) -> Result<TurnResponse, StreamFault> {
        match self {
            WireFormat::OpenAi => openai::decode_complete(body),
            WireFormat::OpenAiResponses => responses::decode_complete(body),
            WireFormat::Anthropic => anthropic::decode_complete(body),
        }
    }
}

impl std::fmt::Display for WireFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Differences between servers that speak the same wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Dialect {
    /// api.openai.com wants `max_completion_tokens` (its reasoning models
    /// reject `max_tokens`); compatible servers only know `max_tokens`.
    pub(crate) max_completion_tokens: bool,
}

/// Whether the stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// The response is complete; stop reading.
    Done,
}

/// Why a response could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StreamFault {
    /// An event or body that is not what the wire format promises.
    Malformed(String),
    /// The server reported an error inside the stream.
    ErrorEvent {
        /// The error type it named.
        kind: String,
        /// Its message.
        message: String,
        /// Whether trying again may help (overload, server error).
        retryable: bool,
        /// Whether the error says the prompt is too long.
        context_too_long: bool,
    },
    /// The body ended before the response was complete.
    Truncated,
}

/// Turns the events of one streamed response into a [`TurnResponse`].
pub(crate) trait StreamDecoder: Send {
    /// Handles one event; text deltas go to `on_text` as they arrive.
    fn on_event(
        &mut self,
        event: &SseEvent,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Flow, StreamFault>;

    /// Whether any text or tool-call fragment has arrived: a stream that
    /// breaks before that can be retried like one that never started.
    fn has_content(&self) -> bool;

    /// The decoded response once the stream is over: after [`Flow::Done`],
    /// or at the end of the body (`at_eof`), which is only complete when the
    /// server already said why the model stopped.
    fn finish(self: Box<Self>, at_eof: bool) -> Result<TurnResponse, StreamFault>;
}

/// Does an error body say the prompt exceeds the context window?
pub(crate) fn mentions_context_too_long(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "context window",
        "context length",
        "prompt is too long",
        "too many tokens",
        "request_too_large",
        "exceeds the context",
        "input is too long",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Does an error body say the server cannot stream this request (typically:
/// streaming together with tools)?
pub(crate) fn mentions_streaming_unsupported(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let about_streaming = text.contains("stream");
    let refusal = [
        "not supported",
        "unsupported",
        "not implemented",
        "not available",
        "does not support",
        "doesn't support",
        "cannot be used",
        "not allowed",
    ]
    .iter()
    .any(|needle| text.contains(needle));
    about_streaming && refusal
}

/// A JSON value read as a non-negative count.
pub(crate) fn count(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(0)
}

/// Parses a complete (non-streamed) response body as JSON.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, StreamFault> {
    serde_json::from_slice(body).map_err(|e| {
        StreamFault::Malformed(format!(
            "the response is not valid JSON ({e}): {}",
            data_excerpt(&String::from_utf8_lossy(body))
        ))
    })
}

/// Parses one stream event's data as JSON.
pub(crate) fn event_json(data: &str) -> Result<Value, StreamFault> {
    serde_json::from_str(data).map_err(|e| {
        StreamFault::Malformed(format!(
            "a stream event is not valid JSON ({e}): {}",
            data_excerpt(data)
        ))
    })
}

/// The `message` of a provider's error object, or the whole object.
pub(crate) fn error_message(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| error.to_string(), str::to_string)
}

/// The fault of an OpenAI-style error object (chat completions and the
/// Responses API): retried unless its `kind` names one of `refused` (a
/// request that would fail again the same way) or it says the prompt is
/// too long for the context window.
pub(crate) fn openai_error_fault(kind: String, error: &Value, refused: &[&str]) -> StreamFault {
    let context_too_long = mentions_context_too_long(&error.to_string());
    let lowered = kind.to_ascii_lowercase();
    let not_retryable = context_too_long || refused.iter().any(|k| lowered.contains(k));
    StreamFault::ErrorEvent {
        kind,
        message: error_message(error),
        retryable: !not_retryable,
        context_too_long,
    }
}

/// A short, single-line excerpt of event data for error messages.
pub(crate) fn data_excerpt(data: &str) -> String {
    let mut cut = data.len().min(200);
    while !data.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out: String = data[..cut]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cut < data.len() {
        out.push_str(" …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_refusals() {
        assert!(mentions_context_too_long(
            r#"{"error":{"code":"context_length_exceeded","message":"This model's maximum context length is 128000 tokens."}}"#
        ));
        assert!(mentions_context_too_long(
            "prompt is too long: 210000 tokens > 200000 maximum"
        ));
        assert!(!mentions_context_too_long("invalid api key"));
        assert!(mentions_streaming_unsupported(
            "Streaming is not supported when tools are provided"
        ));
        assert!(mentions_streaming_unsupported(
            r#"{"error":"tools do not support streaming: stream is not supported"}"#
        ));
        assert!(!mentions_streaming_unsupported("rate limit exceeded"));
    }
}

//! Provider-neutral types of one model turn: what the agent sends and what
//! it gets back. Wire formats stay inside each provider.

use serde::{Deserialize, Serialize};

/// One message of a conversation, in the order the model sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// A user (kkrun) message: the task, feedback, injected warnings.
    User {
        /// The text of the message.
        content: String,
    },
    /// A model reply: text, tool calls, or both.
    Assistant {
        /// The reply's text; empty when the model only called tools.
        #[serde(default)]
        content: String,
        /// The tool calls of the reply, in the order the model made them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// Opaque reasoning items the provider returned with this reply
        /// (the Responses API's encrypted reasoning), sent back unchanged
        /// with later turns so the model keeps its chain of thought while
        /// nothing is stored on the server. Other wire formats leave it
        /// empty and ignore it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasoning: Vec<serde_json::Value>,
    },
    /// The result of one tool call, answering the call with the same id.
    Tool {
        /// The id of the [`ToolCall`] this answers.
        call_id: String,
        /// What the tool returned (or the error text the model should act on).
        content: String,
        /// True when the call failed; providers that support it flag the
        /// result as an error.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id, echoed back in the [`Message::Tool`] answer.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments exactly as the model produced them (a JSON text that
    /// may be invalid: the agent answers invalid JSON with a tool error).
    pub arguments: String,
}

impl ToolCall {
    /// Parses [`ToolCall::arguments`] as JSON. An empty string is `{}`, since
    /// some servers send no arguments for tools that take none.
    pub fn parsed_arguments(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.arguments.trim().is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        serde_json::from_str(&self.arguments)
    }
}

/// A tool the model may call, described by a JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name the model uses to call the tool.
    pub name: String,
    /// What the tool does and when to use it; the model reads this.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// Everything sent to the model for one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRequest {
    /// Model name as the provider knows it (without the `provider:` prefix).
    pub model: String,
    /// The system prompt.
    pub system: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools offered this turn.
    pub tools: Vec<ToolSpec>,
    /// Upper bound on output tokens for this turn.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature; `None` leaves the provider's default.
    pub temperature: Option<f32>,
    /// A stable key for the provider's prompt cache (the Responses API's
    /// `prompt_cache_key`): one per task and stage, so that requests which
    /// share a prefix are routed to the same cache. Wire formats without
    /// such a key ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
}

/// Why the model stopped producing output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its reply.
    EndTurn,
    /// The model stopped to have its tool calls run.
    ToolUse,
    /// The output-token limit cut the reply short.
    MaxTokens,
    /// The provider filtered the content.
    ContentFilter,
    /// Any other reason, as the provider named it.
    Other(String),
}

/// Tokens used by one or more turns.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[schemars(rename = "TokenUsage", deny_unknown_fields)]
pub struct Usage {
    /// Input (prompt) tokens, including cached ones.
    pub input_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Output (completion) tokens, including reasoning tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`, priced at 1.25× input), part of
    /// `input_tokens`; absent when zero or not reported.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_input_tokens: u64,
    /// Output tokens the model spent reasoning (OpenAI's
    /// `completion_tokens_details.reasoning_tokens`), part of
    /// `output_tokens` and priced as output; absent when zero or not
    /// reported.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
    /// Present and true when some of these tokens are kkrun's estimate:
    /// the server reported no usage, so the sizes of requests and replies
    /// were counted instead (budgets apply to the estimate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// Bytes of request or response text counted as one token by an estimate:
/// the rule of thumb compaction uses too. The request is measured as the
/// JSON body sent, whose quoting and escapes make up for code tokenizing
/// more densely than prose.
pub const ESTIMATE_BYTES_PER_TOKEN: u64 = 4;

impl Usage {
    /// An estimate for a turn whose server reported no usage, from the
    /// size of the request body sent and of the reply's text and tool calls
    /// (one token per [`ESTIMATE_BYTES_PER_TOKEN`] bytes, rounded up).
    pub fn estimate(request_bytes: usize, response_bytes: usize) -> Usage {
        let tokens = |bytes: usize| (bytes as u64).div_ceil(ESTIMATE_BYTES_PER_TOKEN);
        Usage {
            input_tokens: tokens(request_bytes),
            cached_input_tokens: 0,
            output_tokens: tokens(response_bytes),
            estimated: true,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    /// Input plus output tokens: what token budgets count.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// What `self` counts beyond `earlier` (an earlier total of the same
    /// counters), each counter at least zero; estimated when `self` is.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_sub(earlier.input_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_sub(earlier.cached_input_tokens),
            output_tokens: self.output_tokens.saturating_sub(earlier.output_tokens),
            estimated: self.estimated,
            cache_write_input_tokens: self
                .cache_write_input_tokens
                .saturating_sub(earlier.cache_write_input_tokens),
            reasoning_tokens: self
                .reasoning_tokens
                .saturating_sub(earlier.reasoning_tokens),
        }
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;
    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            cached_input_tokens: self.cached_input_tokens + other.cached_input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            estimated: self.estimated || other.estimated,
            cache_write_input_tokens: self.cache_write_input_tokens
                + other.cache_write_input_tokens,
            reasoning_tokens: self.reasoning_tokens + other.reasoning_tokens,
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        *self = *self + other;
    }
}

/// The complete result of one model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnResponse {
    /// The reply's text (reasoning/thinking content excluded).
    pub text: String,
    /// Complete tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// Tokens this turn used.
    pub usage: Usage,
    /// The provider's request id, when it sent one (for support tickets).
    pub request_id: Option<String>,
    /// Opaque reasoning items to carry into the next turn (see
    /// [`Message::Assistant::reasoning`]); empty for most wire formats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_since_an_earlier_total_is_the_difference_never_below_zero() {
        let earlier = Usage {
            input_tokens: 100,
            cached_input_tokens: 40,
            output_tokens: 10,
            estimated: false,
            cache_write_input_tokens: 5,
            reasoning_tokens: 3,
        };
        let now = earlier
            + Usage {
                input_tokens: 50,
                output_tokens: 7,
                estimated: true,
                ..Usage::default()
            };
        let since = now.since(earlier);
        assert_eq!(
            (
                since.input_tokens,
                since.output_tokens,
                since.cached_input_tokens
            ),
            (50, 7, 0)
        );
        assert!(since.estimated);
        assert_eq!(earlier.since(now).input_tokens, 0);
    }
}

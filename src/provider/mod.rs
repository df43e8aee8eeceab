//! Model providers: OpenAI-compatible chat completions, the Anthropic
//! Messages API, and offline record/replay, behind one [`Provider`] type.

mod types;

pub use types::{Message, StopReason, ToolCall, ToolSpec, TurnRequest, TurnResponse, Usage};

use std::path::PathBuf;
use std::time::Duration;

/// Settings that apply to every provider of a run.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Directory that relative `replay:` cassette paths are resolved against
    /// (the task file's directory).
    pub base_dir: PathBuf,
    /// Record every exchange to this cassette (`--record`).
    pub record: Option<PathBuf>,
    /// No byte for this long on an open stream fails the attempt.
    pub idle_timeout: Duration,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            base_dir: PathBuf::from("."),
            record: None,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// A failed model turn.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The model spec or provider configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// Anything else that went wrong talking to the provider.
    #[error("{0}")]
    Other(String),
}

/// A configured model endpoint that runs one turn at a time.
#[derive(Debug)]
pub struct Provider {
    model_spec: String,
}

impl Provider {
    /// Builds a provider from a `provider:model` spec such as `openai:gpt-4.1`.
    pub fn from_model_spec(
        spec: &str,
        _options: &ProviderOptions,
    ) -> Result<Provider, ProviderError> {
        Ok(Provider {
            model_spec: spec.to_string(),
        })
    }

    /// The `provider:model` spec this provider was built from.
    pub fn model_spec(&self) -> &str {
        &self.model_spec
    }

    /// The model name to put in [`TurnRequest::model`] (for `replay:`, the
    /// model recorded in the cassette).
    pub fn model_name(&self) -> &str {
        self.model_spec
            .split_once(':')
            .map_or(self.model_spec.as_str(), |(_, model)| model)
    }

    /// Runs one streamed turn; `on_text` receives text deltas as they arrive,
    /// retries are reported to `events` as `provider.retry`.
    pub async fn turn(
        &self,
        _request: &TurnRequest,
        _on_text: &mut (dyn FnMut(&str) + Send),
        _events: &crate::events::EventSink,
    ) -> Result<TurnResponse, ProviderError> {
        Err(ProviderError::Other(format!(
            "provider `{}` is not available in this build",
            self.model_spec
        )))
    }

    /// Cost in USD of `usage` on this provider's model, from the price table;
    /// `None` when the price is unknown.
    pub fn cost_usd(&self, _usage: &Usage) -> Option<f64> {
        None
    }
}

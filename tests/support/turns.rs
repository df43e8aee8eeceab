//! Helpers to run provider turns against a [`TestServer`](super::TestServer).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kkrun::events::{Event, EventSink};
use kkrun::provider::{
    Message, Provider, ProviderEnv, ProviderError, ProviderOptions, RetryPolicy, ToolSpec,
    TurnRequest, TurnResponse,
};

/// The API key tests use; artefacts are scanned for it.
pub const TEST_KEY: &str = "sk-test-SECRETVALUE-0123456789abcdef";

/// Options with short timeouts and backoff so fault tests finish quickly,
/// and a fixed environment pointing both providers at `base_url`.
pub fn fast_options(base_url: &str) -> ProviderOptions {
    ProviderOptions {
        idle_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(2),
        },
        env: ProviderEnv::fixed([
            ("OPENAI_BASE_URL", format!("{base_url}/v1")),
            ("OPENAI_API_KEY", TEST_KEY.to_string()),
            ("ANTHROPIC_BASE_URL", base_url.to_string()),
            ("ANTHROPIC_API_KEY", TEST_KEY.to_string()),
        ]),
        ..ProviderOptions::default()
    }
}

/// A small request with one tool, as the agent would send it.
pub fn sample_request(model: &str) -> TurnRequest {
    TurnRequest {
        model: model.to_string(),
        system: "You fix bugs. Use the tools.".to_string(),
        messages: vec![Message::User {
            content: "Make the date tests pass.".to_string(),
        }],
        tools: vec![ToolSpec {
            name: "read_file".to_string(),
            description: "Read a file of the workspace.".to_string(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            }),
        }],
        max_output_tokens: Some(1024),
        temperature: Some(0.2),
        cache_key: None,
    }
}

/// What one turn produced.
pub struct TurnRun {
    /// The turn's result.
    pub result: Result<TurnResponse, ProviderError>,
    /// Every text delta passed to `on_text`, in order.
    pub deltas: Vec<String>,
    /// Every event emitted during the turn.
    pub events: Vec<Event>,
}

impl TurnRun {
    /// The response, or a panic showing the error.
    pub fn response(&self) -> &TurnResponse {
        match &self.result {
            Ok(response) => response,
            Err(error) => panic!("turn failed: {error}"),
        }
    }

    /// The error, or a panic showing the response.
    pub fn error(&self) -> &ProviderError {
        match &self.result {
            Ok(response) => panic!("turn succeeded: {response:?}"),
            Err(error) => error,
        }
    }
}

/// Runs one turn, collecting deltas and events.
pub async fn run_turn(provider: &Provider, request: &TurnRequest) -> TurnRun {
    let sink = EventSink::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let collected = events.clone();
    sink.subscribe(move |event| collected.lock().unwrap().push(event.clone()));
    let mut deltas = Vec::new();
    let mut on_text = |text: &str| deltas.push(text.to_string());
    let result = provider.turn(request, &mut on_text, &sink).await;
    let events = events.lock().unwrap().clone();
    TurnRun {
        result,
        deltas,
        events,
    }
}

//! The OpenAI Responses API provider (`openai-responses:`) against a real
//! streaming server over loopback, fed byte-exact event sequences (see
//! tests/fixtures/sse/README.md): reasoning carried across turns, function
//! calls and their outputs, usage, and the failure policy it shares with the
//! other wire formats.

mod support;

use std::time::Duration;

use kkrun::events::EventKind;
use kkrun::provider::script::{ScriptedTurn, encode_responses_sse};
use kkrun::provider::{
    Cassette, Message, Provider, ProviderError, ProviderOptions, StopReason, ToolCall, Usage,
    WireFormat,
};
use serde_json::{Value, json};
use support::turns::{TEST_KEY, TurnRun, fast_options, run_turn, sample_request};
use support::{Part, Reply, TestServer, fixture};

const ENCRYPTED: &str = "gAAAAABowFakeEncryptedReasoning_0123456789abcdefghijklmnopqrstuvwxyz==";

fn responses(options: &ProviderOptions) -> Provider {
    Provider::from_model_spec("openai-responses:gpt-5-codex", options).unwrap()
}

fn ok_stream() -> Reply {
    Reply::sse(fixture("sse/openai-responses/text_only.sse"))
}

fn retry_reasons(run: &TurnRun) -> Vec<String> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ProviderRetry { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn expected_calls() -> Vec<ToolCall> {
    vec![
        ToolCall {
            id: "call_Rd8qXbA1".into(),
            name: "read_file".into(),
            arguments: r#"{"path": "src/dates.py"}"#.into(),
        },
        ToolCall {
            id: "call_Sr9pYcB2".into(),
            name: "search".into(),
            arguments: r#"{"pattern": "isoweek"}"#.into(),
        },
    ]
}

#[tokio::test]
async fn reasoning_text_and_function_calls_are_assembled() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai-responses/reasoning_tool_calls.sse",
    ))])
    .await;
    let provider = responses(&fast_options(&server.url()));
    assert_eq!(provider.wire_format(), WireFormat::OpenAiResponses);
    let mut request = sample_request(provider.model_name());
    request.cache_key = Some("kkrun/fix-iso-weeks/code".into());
    let run = run_turn(&provider, &request).await;
    let response = run.response();
    assert_eq!(response.text, "Let me read the parser.");
    // Reasoning summaries are not text.
    assert_eq!(run.deltas, ["Let me", " read the", " parser."]);
    assert_eq!(response.tool_calls, expected_calls());
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 2400,
            cached_input_tokens: 2048,
            // 128 of them reasoning: counted (and priced) as output.
            output_tokens: 180,
            cache_write_input_tokens: 0,
            reasoning_tokens: 128,
            estimated: false
        }
    );
    assert_eq!(
        response.reasoning,
        vec![json!({
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "**Reading the parser** first."}],
            "encrypted_content": ENCRYPTED,
        })]
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
    let body = request.json();
    assert_eq!(body["model"], "gpt-5-codex");
    assert_eq!(body["instructions"], "You fix bugs. Use the tools.");
    assert_eq!(
        body["input"],
        json!([{"role": "user", "content": "Make the date tests pass."}])
    );
    assert_eq!(body["stream"], true);
    assert_eq!(body["store"], false);
    assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(body["prompt_cache_key"], "kkrun/fix-iso-weeks/code");
    assert_eq!(body["max_output_tokens"], 1024);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(
        body["tools"][0],
        json!({"type": "function", "name": "read_file",
               "description": "Read a file of the workspace.",
               "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}})
    );
    assert!(body.get("messages").is_none());
}

#[tokio::test]
async fn reasoning_calls_and_outputs_are_sent_back_on_the_next_turn() {
    let server = TestServer::start(vec![
        Reply::sse(fixture("sse/openai-responses/reasoning_tool_calls.sse")),
        ok_stream(),
    ])
    .await;
    let provider = responses(&fast_options(&server.url()));
    let mut request = sample_request(provider.model_name());
    let first = run_turn(&provider, &request).await.response().clone();
    request.messages.push(Message::Assistant {
        content: first.text.clone(),
        tool_calls: first.tool_calls.clone(),
        reasoning: first.reasoning.clone(),
    });
    for (call, output) in first
        .tool_calls
        .iter()
        .zip(["def parse(s): ...", "no matches"])
    {
        request.messages.push(Message::Tool {
            call_id: call.id.clone(),
            content: output.into(),
            is_error: false,
        });
    }
    let second = run_turn(&provider, &request).await;
    assert_eq!(second.response().text, "The ISO week branch is fixed ✓.");
    assert_eq!(second.response().stop_reason, StopReason::EndTurn);
    assert!(second.response().reasoning.is_empty());

    let body = server.requests()[1].json();
    assert_eq!(
        body["input"],
        json!([
            {"role": "user", "content": "Make the date tests pass."},
            // Without its id: under store: false the server kept nothing
            // an id could name.
            {"type": "reasoning",
             "summary": [{"type": "summary_text", "text": "**Reading the parser** first."}],
             "encrypted_content": ENCRYPTED},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Let me read the parser."}]},
            {"type": "function_call", "call_id": "call_Rd8qXbA1", "name": "read_file",
             "arguments": "{\"path\": \"src/dates.py\"}"},
            {"type": "function_call", "call_id": "call_Sr9pYcB2", "name": "search",
             "arguments": "{\"pattern\": \"isoweek\"}"},
            {"type": "function_call_output", "call_id": "call_Rd8qXbA1", "output": "def parse(s): ..."},
            {"type": "function_call_output", "call_id": "call_Sr9pYcB2", "output": "no matches"},
        ])
    );
}

#[tokio::test]
async fn trickled_delivery_gives_the_same_result() {
    let body = fixture("sse/openai-responses/reasoning_tool_calls.sse");
    let server = TestServer::start(vec![
        Reply::sse(body.clone()),
        // Small chunks cut events, field names and JSON strings apart.
        Reply::sse_every(&body, 7, Duration::from_millis(1)),
    ])
    .await;
    let provider = responses(&fast_options(&server.url()));
    let whole = run_turn(&provider, &sample_request("gpt-5-codex")).await;
    let trickled = run_turn(&provider, &sample_request("gpt-5-codex")).await;
    assert_eq!(whole.response(), trickled.response());
    assert_eq!(trickled.response().tool_calls, expected_calls());
}

#[tokio::test]
async fn non_reasoning_models_are_not_asked_for_encrypted_reasoning() {
    let server = TestServer::start(vec![ok_stream()]).await;
    let provider =
        Provider::from_model_spec("openai-responses:gpt-4.1", &fast_options(&server.url()))
            .unwrap();
    run_turn(&provider, &sample_request("gpt-4.1"))
        .await
        .response();
    let body = server.requests()[0].json();
    assert_eq!(body["store"], false);
    assert!(body.get("include").is_none(), "{body}");
    assert!(body.get("prompt_cache_key").is_none(), "{body}");
}

#[tokio::test]
async fn incomplete_at_the_output_limit_is_max_tokens() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai-responses/incomplete_max_output_tokens.sse",
    ))])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    let response = run.response();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    assert_eq!(response.text, "The fix needs");
    assert_eq!(response.usage.output_tokens, 1024);
}

#[tokio::test]
async fn an_error_event_is_retried_then_succeeds() {
    let server = TestServer::start(vec![
        Reply::sse(fixture("sse/openai-responses/error_event.sse")),
        Reply::sse(fixture("sse/openai-responses/failed.sse")),
        ok_stream(),
    ])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    assert_eq!(run.response().text, "The ISO week branch is fixed ✓.");
    let reasons = retry_reasons(&run);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("server_error"), "{}", reasons[0]);
    assert!(
        reasons[0].contains("The server had an error"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("The model failed to generate a response"),
        "{}",
        reasons[1]
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_context_window_error_event_is_not_retried() {
    let server = TestServer::start(vec![
        Reply::sse(fixture("sse/openai-responses/error_context_too_long.sse")),
        ok_stream(),
    ])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    let error = run.error();
    assert!(error.is_context_too_long(), "{error}");
    assert!(error.to_string().contains("context window"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_stream_cut_before_response_completed_retries_the_whole_turn_once() {
    let body = fixture("sse/openai-responses/reasoning_tool_calls.sse");
    let marker = b"event: response.completed";
    let cut = body
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    let server = TestServer::start(vec![
        Reply::sse(body[..cut].to_vec()),
        Reply::sse(body.clone()),
    ])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    assert_eq!(run.response().tool_calls, expected_calls());
    let reasons = retry_reasons(&run);
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("whole turn once"), "{}", reasons[0]);
}

#[tokio::test]
async fn a_stalled_stream_hits_the_idle_timeout_and_is_retried() {
    let body = fixture("sse/openai-responses/text_only.sse");
    let first_event = body.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let server = TestServer::start(vec![
        Reply::sse(body[..first_event].to_vec()).then(Part::Stall),
        ok_stream(),
    ])
    .await;
    let mut options = fast_options(&server.url());
    options.idle_timeout = Duration::from_millis(300);
    let run = run_turn(&responses(&options), &sample_request("gpt-5-codex")).await;
    assert_eq!(run.response().text, "The ISO week branch is fixed ✓.");
    let reasons = retry_reasons(&run);
    assert!(reasons[0].contains("idle timeout"), "{}", reasons[0]);
}

#[tokio::test]
async fn rate_limits_honour_retry_after_and_401_is_not_retried() {
    let server = TestServer::start(vec![
        Reply::json(
            429,
            &json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        )
        .header("retry-after-ms", "120"),
        ok_stream(),
    ])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    run.response();
    match &run.events[0].kind {
        EventKind::ProviderRetry { wait_ms, .. } => assert_eq!(*wait_ms, 120),
        other => panic!("unexpected {other:?}"),
    }

    let server = TestServer::start(vec![Reply::json(
        401,
        &json!({"error": {"message": format!("Incorrect API key provided: {TEST_KEY}."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    assert_eq!(server.requests().len(), 1);
    let message = error.to_string();
    assert!(
        message.starts_with("openai-responses: HTTP 401"),
        "{message}"
    );
    assert!(message.contains("check OPENAI_API_KEY"), "{message}");
    assert!(!message.contains(TEST_KEY), "{message}");
}

#[tokio::test]
async fn a_server_that_cannot_stream_gets_one_request_without_streaming() {
    let complete = json!({
        "id": "resp_1", "object": "response", "status": "completed",
        "output": [
            {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "enc-1"},
            {"id": "fc_1", "type": "function_call", "status": "completed",
             "call_id": "call_1", "name": "read_file", "arguments": "{\"path\": \"a\"}"}
        ],
        "usage": {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3}}
    });
    let server = TestServer::start(vec![
        Reply::json(
            400,
            &json!({"error": {"message": "Streaming is not supported for this model", "type": "invalid_request_error"}}),
        ),
        Reply::json(200, &complete),
    ])
    .await;
    let run = run_turn(
        &responses(&fast_options(&server.url())),
        &sample_request("gpt-5-codex"),
    )
    .await;
    let response = run.response();
    assert_eq!(response.tool_calls[0].id, "call_1");
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.reasoning,
        vec![json!({"type": "reasoning", "summary": [], "encrypted_content": "enc-1"})]
    );
    assert_eq!(server.requests()[1].json()["stream"], false);
}

#[tokio::test]
async fn an_echoed_key_is_kept_out_of_text_and_the_recorded_cassette() {
    // The model streams the key in pieces, across events.
    let echo = ScriptedTurn::text(format!("The key is {TEST_KEY} — done."));
    let server = TestServer::start(vec![Reply::sse(encode_responses_sse(&echo))]).await;
    let dir = tempfile::tempdir().unwrap();
    let cassette_path = dir.path().join("c.jsonl");
    let options = ProviderOptions {
        record: Some(cassette_path.clone()),
        ..fast_options(&server.url())
    };
    let run = run_turn(&responses(&options), &sample_request("gpt-5-codex")).await;
    let text = &run.response().text;
    assert!(!text.contains(TEST_KEY), "{text}");
    assert!(!run.deltas.concat().contains(TEST_KEY));
    assert!(text.contains("[redacted]"), "{text}");
    let recorded = std::fs::read_to_string(&cassette_path).unwrap();
    assert!(!recorded.contains(TEST_KEY));
    assert!(!recorded.contains(&TEST_KEY[8..28]), "{recorded}");
    let cassette = Cassette::parse(&recorded).unwrap();
    assert_eq!(cassette.provider, WireFormat::OpenAiResponses);
    assert!(
        recorded
            .lines()
            .next()
            .unwrap()
            .contains("\"openai-responses\"")
    );
}

#[test]
fn the_spec_needs_a_model_and_the_default_endpoint_a_key() {
    let options = ProviderOptions {
        env: kkrun::provider::ProviderEnv::fixed::<String, String>([]),
        ..ProviderOptions::default()
    };
    let error = Provider::from_model_spec("openai-responses:gpt-5", &options).unwrap_err();
    assert!(
        matches!(error, ProviderError::MissingApiKey { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("OPENAI_API_KEY"), "{error}");
    let error = Provider::from_model_spec("openai-responses:", &options).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    let value: Value = serde_json::to_value(WireFormat::OpenAiResponses).unwrap();
    assert_eq!(value, "openai-responses");
}

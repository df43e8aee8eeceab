//! The Anthropic provider against a real streaming server over loopback,
//! fed byte-exact fixtures (see tests/fixtures/sse/README.md).

mod support;

use std::time::Duration;

use kkrun::events::EventKind;
use kkrun::provider::{Message, Provider, ProviderError, StopReason, ToolCall, Usage};
use serde_json::json;
use support::turns::{TEST_KEY, fast_options, run_turn, sample_request};
use support::{Reply, TestServer, fixture};

const MODEL: &str = "claude-sonnet-4-5";

fn provider_for(server: &TestServer) -> Provider {
    Provider::from_model_spec(&format!("anthropic:{MODEL}"), &fast_options(&server.url())).unwrap()
}

#[tokio::test]
async fn text_with_ping_and_cached_usage() {
    let server = TestServer::start(vec![Reply::sse(fixture("sse/anthropic/text_ping.sse"))]).await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(provider.model_name())).await;
    let response = run.response();
    assert_eq!(response.text, "The week parser is off by one.");
    assert_eq!(run.deltas, ["The week parser", " is off by one."]);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 12 + 200 + 1800,
            cached_input_tokens: 1800,
            output_tokens: 11,
            estimated: false,
            cache_write_input_tokens: 200,
            reasoning_tokens: 0,
        }
    );

    let request = &server.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(TEST_KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You fix bugs. Use the tools.", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        body["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        body["tools"][0]["input_schema"]["required"],
        json!(["path"])
    );
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Make the date tests pass.", "cache_control": {"type": "ephemeral"}}
        ]}])
    );
}

#[tokio::test]
async fn tool_use_with_input_json_fragments_split_mid_character() {
    let body = fixture("sse/anthropic/tool_use.sse");
    let find = |needle: &str| {
        body.windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
    };
    let cuts = [find("«") + 1, find("週") + 1, find("番") + 2];
    let server = TestServer::start(vec![Reply::sse_split(
        &body,
        &cuts,
        Duration::from_millis(15),
    )])
    .await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    let response = run.response();
    assert_eq!(response.text, "Je vais lire le fichier « dates.py ».");
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].id, "toolu_01Read");
    assert_eq!(response.tool_calls[0].name, "read_file");
    assert_eq!(
        response.tool_calls[0].parsed_arguments().unwrap(),
        json!({"path": "dates.py", "note": "週番号"})
    );
}

#[tokio::test]
async fn parallel_tool_uses_including_one_without_input() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/anthropic/parallel_tool_use.sse",
    ))])
    .await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    assert_eq!(
        run.response().tool_calls,
        vec![
            ToolCall {
                id: "toolu_A".into(),
                name: "read_file".into(),
                arguments: r#"{"path":"dates.py"}"#.into()
            },
            ToolCall {
                id: "toolu_B".into(),
                name: "list_dir".into(),
                arguments: "{}".into()
            },
        ]
    );
}

#[tokio::test]
async fn thinking_and_unknown_events_stay_out_of_the_text() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/anthropic/thinking_unknown_events.sse",
    ))])
    .await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    assert_eq!(run.response().text, "Approve.");
    assert_eq!(run.deltas, ["Approve."]);
    assert_eq!(run.response().usage.output_tokens, 30);
}

#[tokio::test]
async fn crlf_multiline_data_and_no_message_stop() {
    let body = fixture("sse/anthropic/crlf_no_message_stop.sse");
    let server =
        TestServer::start(vec![Reply::sse_every(&body, 3, Duration::from_millis(1))]).await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    assert_eq!(run.response().text, "Hello");
    assert_eq!(run.deltas, ["Hel", "lo"]);
    assert_eq!(run.response().stop_reason, StopReason::EndTurn);
}

#[tokio::test]
async fn invalid_json_input_is_returned_raw() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/anthropic/invalid_json_input.sse",
    ))])
    .await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    let response = run.response();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    assert_eq!(
        response.tool_calls[0].arguments,
        r#"{"path": "a.py", "old": tru"#
    );
    assert!(response.tool_calls[0].parsed_arguments().is_err());
}

#[tokio::test]
async fn overloaded_error_event_is_retried() {
    let server = TestServer::start(vec![
        Reply::sse(fixture("sse/anthropic/error_overloaded.sse")),
        Reply::sse(fixture("sse/anthropic/text_ping.sse")),
    ])
    .await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    assert_eq!(run.response().text, "The week parser is off by one.");
    let reasons: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ProviderRetry { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("overloaded_error"), "{}", reasons[0]);
}

#[tokio::test]
async fn prompt_too_long_error_event_is_context_too_long() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/anthropic/error_prompt_too_long.sse",
    ))])
    .await;
    let provider = provider_for(&server);
    let run = run_turn(&provider, &sample_request(MODEL)).await;
    let error = run.error();
    assert!(error.is_context_too_long(), "{error}");
    assert_eq!(error.exit_code(), 3);
    assert!(error.to_string().contains("prompt is too long"));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn http_413_and_400_prompt_too_long_are_context_too_long() {
    let server = TestServer::start(vec![
        Reply::json(413, &json!({"type": "error", "error": {"type": "request_too_large", "message": "Request exceeds the maximum allowed number of bytes."}}))
            .header("request-id", "req_413"),
        Reply::json(400, &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}})),
    ])
    .await;
    let provider = provider_for(&server);
    for expected_status in [413u16, 400] {
        let run = run_turn(&provider, &sample_request(MODEL)).await;
        let error = run.error();
        assert!(error.is_context_too_long(), "{error}");
        match error {
            ProviderError::ContextTooLong { status, .. } => {
                assert_eq!(*status, Some(expected_status))
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(server.requests().len() == 2, "no retries");
}

#[tokio::test]
async fn a_conversation_with_tool_results_is_sent_as_alternating_turns() {
    let server = TestServer::start(vec![Reply::sse(fixture("sse/anthropic/text_ping.sse"))]).await;
    let provider = provider_for(&server);
    let mut request = sample_request(MODEL);
    request.messages.extend([
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall {
                id: "toolu_1".into(),
                name: "read_file".into(),
                arguments: r#"{"path":"dates.py"}"#.into(),
            }],
            reasoning: Vec::new(),
        },
        Message::Tool {
            call_id: "toolu_1".into(),
            content: "def parse(s): ...".into(),
            is_error: false,
        },
    ]);
    run_turn(&provider, &request).await.response();
    let body = server.requests()[0].json();
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Make the date tests pass."}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "dates.py"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "def parse(s): ...",
                 "cache_control": {"type": "ephemeral"}}
            ]},
        ])
    );
}

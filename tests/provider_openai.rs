//! The OpenAI-compatible provider against a real streaming server over
//! loopback, fed byte-exact fixtures (see tests/fixtures/sse/README.md).

mod support;

use std::time::Duration;

use kkrun::events::EventKind;
use kkrun::provider::{Provider, StopReason, ToolCall, Usage};
use serde_json::json;
use support::turns::{TEST_KEY, fast_options, run_turn, sample_request};
use support::{Reply, TestServer, fixture};

async fn provider_for(server: &TestServer) -> Provider {
    Provider::from_model_spec("openai:gpt-4.1", &fast_options(&server.url())).unwrap()
}

#[tokio::test]
async fn text_only_stream_with_usage_chunk() {
    let server = TestServer::start(vec![Reply::sse(fixture("sse/openai/text_only.sse"))]).await;
    let provider = provider_for(&server).await;
    assert_eq!(provider.model_name(), "gpt-4.1");
    let run = run_turn(&provider, &sample_request(provider.model_name())).await;
    let response = run.response();
    assert_eq!(response.text, "The parser rejects ISO weeks.");
    assert_eq!(run.deltas, ["The parser", " rejects ISO", " weeks."]);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert!(response.tool_calls.is_empty());
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 1200,
            cached_input_tokens: 1024,
            output_tokens: 9,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        }
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TEST_KEY}").as_str())
    );
    let body = request.json();
    assert_eq!(body["model"], "gpt-4.1");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You fix bugs. Use the tools."})
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "read_file");
}

#[tokio::test]
async fn parallel_tool_calls_are_assembled_in_order() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai/tool_calls_parallel.sse",
    ))])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let response = run.response();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.tool_calls,
        vec![
            ToolCall {
                id: "call_read1".into(),
                name: "read_file".into(),
                arguments: r#"{"path": "src/dates.py"}"#.into()
            },
            ToolCall {
                id: "call_grep2".into(),
                name: "search".into(),
                arguments: r#"{"pattern": "isoweek"}"#.into()
            },
        ]
    );
    assert_eq!(
        response.tool_calls[0].parsed_arguments().unwrap(),
        json!({"path": "src/dates.py"})
    );
    assert!(run.deltas.is_empty());
}

#[tokio::test]
async fn arguments_split_inside_utf8_characters() {
    let body = fixture("sse/openai/utf8_arguments.sse");
    // Cut inside "É" (2 bytes), "日" (3 bytes) and "✓" (3 bytes).
    let find = |needle: &str| {
        body.windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
    };
    let cuts = [find("É") + 1, find("日") + 1, find("日") + 2, find("✓") + 2];
    let server = TestServer::start(vec![Reply::sse_split(
        &body,
        &cuts,
        Duration::from_millis(15),
    )])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let response = run.response();
    assert_eq!(response.text, "Écrire le fichier…");
    assert_eq!(
        response.tool_calls[0].parsed_arguments().unwrap(),
        json!({"path": "notes.md", "content": "日本語 – naïve café ✓"})
    );
    assert_eq!(response.usage.input_tokens, 300);
}

#[tokio::test]
async fn crlf_line_ends_comments_and_multiline_data() {
    let body = fixture("sse/openai/crlf_multiline.sse");
    // Split between the CR and the LF of the first event's end.
    let cut = body.windows(2).position(|w| w == b"\r\n").unwrap() + 1;
    let server = TestServer::start(vec![Reply::sse_split(
        &body,
        &[cut],
        Duration::from_millis(15),
    )])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    assert_eq!(run.response().text, "line one, line two");
    assert_eq!(run.response().stop_reason, StopReason::EndTurn);
}

#[tokio::test]
async fn byte_by_byte_delivery_gives_the_same_result() {
    let body = fixture("sse/openai/tool_calls_parallel.sse");
    let whole = TestServer::start(vec![Reply::sse(body.clone())]).await;
    let trickle =
        TestServer::start(vec![Reply::sse_every(&body, 5, Duration::from_millis(1))]).await;
    let a = run_turn(&provider_for(&whole).await, &sample_request("gpt-4.1")).await;
    let b = run_turn(&provider_for(&trickle).await, &sample_request("gpt-4.1")).await;
    assert_eq!(a.response(), b.response());
}

#[tokio::test]
async fn llamacpp_repeated_ids_and_names() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai/llamacpp_repeated_names.sse",
    ))])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let response = run.response();
    assert_eq!(
        response.tool_calls,
        vec![ToolCall {
            id: "Xq2rZ1".into(),
            name: "run_shell".into(),
            arguments: r#"{"command":"pytest -q"}"#.into()
        }]
    );
    assert_eq!(response.usage.input_tokens, 640);
    assert_eq!(response.usage.output_tokens, 12);
}

#[tokio::test]
async fn reasoning_is_kept_out_and_missing_done_is_tolerated() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai/reasoning_no_done.sse",
    ))])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let response = run.response();
    assert_eq!(response.text, "Done.");
    assert_eq!(run.deltas, ["Done."]);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 20,
            cached_input_tokens: 8,
            output_tokens: 15,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        }
    );
}

#[tokio::test]
async fn legacy_function_call_field() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai/legacy_function_call.sse",
    ))])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let response = run.response();
    assert_eq!(response.tool_calls.len(), 1);
    assert_eq!(response.tool_calls[0].name, "list_dir");
    assert_eq!(
        response.tool_calls[0].parsed_arguments().unwrap(),
        json!({"path": "."})
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
}

#[tokio::test]
async fn invalid_json_arguments_are_returned_raw_not_a_failure() {
    let server = TestServer::start(vec![Reply::sse(fixture(
        "sse/openai/invalid_json_arguments.sse",
    ))])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let call = &run.response().tool_calls[0];
    assert_eq!(call.arguments, r#"{"path": "a.py", "old": "#);
    assert!(call.parsed_arguments().is_err());
}

#[tokio::test]
async fn error_event_in_the_stream_is_retried() {
    let server = TestServer::start(vec![
        Reply::sse(fixture("sse/openai/error_event.sse")),
        Reply::sse(fixture("sse/openai/text_only.sse")),
    ])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    assert_eq!(server.requests().len(), 2);
    let retries: Vec<_> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ProviderRetry {
                attempt, reason, ..
            } => Some((*attempt, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0, 1);
    assert!(retries[0].1.contains("server_error"), "{}", retries[0].1);
}

#[tokio::test]
async fn streaming_refusal_gets_one_non_streaming_retry() {
    let complete = json!({
        "id": "chatcmpl-X",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a\"}"}}
        ]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}
    });
    let server = TestServer::start(vec![
        Reply::json(
            400,
            &json!({"error": {"message": "Streaming is not supported when tools are provided", "type": "invalid_request_error"}}),
        ),
        Reply::json(200, &complete),
    ])
    .await;
    let provider = provider_for(&server).await;
    let run = run_turn(&provider, &sample_request("gpt-4.1")).await;
    let response = run.response();
    assert_eq!(response.tool_calls[0].name, "read_file");
    assert_eq!(response.usage.input_tokens, 50);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].json()["stream"], true);
    assert_eq!(requests[1].json()["stream"], false);
    assert!(requests[1].json().get("stream_options").is_none());
    assert_eq!(run.events.len(), 1);
}

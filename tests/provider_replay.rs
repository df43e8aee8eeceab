//! `replay:` models, the scripting API and cassette files.

mod support;

use kkrun::provider::script::{
    ScriptedToolCall, ScriptedTurn, encode_anthropic_sse, encode_openai_sse, encode_responses_sse,
};
use kkrun::provider::{
    Cassette, Exchange, Message, Provider, ProviderEnv, ProviderError, ProviderOptions, StopReason,
    Usage, WireFormat,
};
use serde_json::json;
use support::turns::{fast_options, run_turn, sample_request};
use support::{Reply, TestServer};

fn scripted_turns() -> Vec<ScriptedTurn> {
    vec![
        ScriptedTurn::text("Let me read the parser first.").with_tool_call(ScriptedToolCall::new(
            "call_1",
            "read_file",
            &json!({"path": "dates.py"}),
        )),
        ScriptedTurn::tool_calls(vec![
            ScriptedToolCall::new("call_2", "read_file", &json!({"path": "test_dates.py"})),
            ScriptedToolCall::with_raw_arguments("call_3", "search", "{\"pattern\": "),
        ]),
        ScriptedTurn::text("Fixed: ISO weeks now parse — naïve dates too. ✓").with_usage(Usage {
            input_tokens: 4000,
            cached_input_tokens: 3000,
            output_tokens: 120,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        }),
    ]
}

fn replay_options(dir: &std::path::Path) -> ProviderOptions {
    ProviderOptions {
        base_dir: dir.to_path_buf(),
        env: ProviderEnv::fixed::<String, String>([]),
        ..ProviderOptions::default()
    }
}

async fn replay_all(wire: WireFormat) {
    let dir = tempfile::tempdir().unwrap();
    let turns = scripted_turns();
    Cassette::from_turns(wire, "recorded-model", &turns)
        .write_to(&dir.path().join("session.jsonl"))
        .unwrap();
    let provider =
        Provider::from_model_spec("replay:session.jsonl", &replay_options(dir.path())).unwrap();
    assert_eq!(provider.model_name(), "recorded-model");
    assert_eq!(provider.wire_format(), wire);
    assert_eq!(provider.model_spec(), "replay:session.jsonl");

    let request = sample_request(provider.model_name());
    let first = run_turn(&provider, &request).await;
    assert_eq!(first.response().text, "Let me read the parser first.");
    assert_eq!(first.deltas.concat(), "Let me read the parser first.");
    assert_eq!(first.response().tool_calls[0].name, "read_file");
    assert_eq!(first.response().stop_reason, StopReason::ToolUse);

    let second = run_turn(&provider, &request).await;
    let calls = &second.response().tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].parsed_arguments().unwrap(),
        json!({"path": "test_dates.py"})
    );
    assert_eq!(calls[1].arguments, "{\"pattern\": ");
    assert!(calls[1].parsed_arguments().is_err());

    let third = run_turn(&provider, &request).await;
    assert_eq!(
        third.response().text,
        "Fixed: ISO weeks now parse — naïve dates too. ✓"
    );
    assert_eq!(third.response().stop_reason, StopReason::EndTurn);
    assert_eq!(
        third.response().usage,
        Usage {
            input_tokens: 4000,
            cached_input_tokens: 3000,
            output_tokens: 120,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        }
    );

    let past_the_end = run_turn(&provider, &request).await;
    let error = past_the_end.error();
    assert!(matches!(
        error,
        ProviderError::ReplayExhausted {
            exchange: 4,
            recorded: 3,
            ..
        }
    ));
    assert_eq!(error.exit_code(), 3);
    assert!(
        error
            .to_string()
            .contains("request 4 has no recorded exchange")
    );
}

#[tokio::test]
async fn openai_cassette_replays_scripted_turns_in_order() {
    replay_all(WireFormat::OpenAi).await;
}

#[tokio::test]
async fn responses_cassette_replays_scripted_turns_in_order() {
    replay_all(WireFormat::OpenAiResponses).await;
}

#[tokio::test]
async fn anthropic_cassette_replays_scripted_turns_in_order() {
    replay_all(WireFormat::Anthropic).await;
}

/// The encoders produce what live servers send: the same bytes through a
/// live HTTP provider give the same result as through replay.
#[tokio::test]
async fn scripted_streams_parse_the_same_live_and_replayed() {
    for wire in [
        WireFormat::OpenAi,
        WireFormat::OpenAiResponses,
        WireFormat::Anthropic,
    ] {
        let turns = scripted_turns();
        let encode = match wire {
            WireFormat::OpenAi => encode_openai_sse,
            WireFormat::OpenAiResponses => encode_responses_sse,
            WireFormat::Anthropic => encode_anthropic_sse,
        };
        let server = TestServer::start(turns.iter().map(|t| Reply::sse(encode(t))).collect()).await;
        let live = Provider::from_model_spec(
            &format!("{}:recorded-model", wire.name()),
            &fast_options(&server.url()),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        Cassette::from_turns(wire, "recorded-model", &turns)
            .write_to(&path)
            .unwrap();
        let replay = Provider::from_model_spec(
            &format!("replay:{}", path.display()),
            &ProviderOptions::default(),
        )
        .unwrap();
        let request = sample_request("recorded-model");
        for _ in &turns {
            let a = run_turn(&live, &request).await;
            let b = run_turn(&replay, &request).await;
            assert_eq!(a.response(), b.response());
            // Delta boundaries may differ where the live provider holds back
            // text that could start its key.
            assert_eq!(a.deltas.concat(), b.deltas.concat());
        }
    }
}

#[tokio::test]
async fn a_diverging_request_names_the_exchange_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let recorded_request = sample_request("gpt-4.1");
    let provider_body = {
        // Record what the provider really sends by running it once live.
        let turn = ScriptedTurn::text("ok");
        let server = TestServer::start(vec![Reply::sse(encode_openai_sse(&turn))]).await;
        let live =
            Provider::from_model_spec("openai:gpt-4.1", &fast_options(&server.url())).unwrap();
        run_turn(&live, &recorded_request).await.response();
        server.requests()[0].json()
    };
    let mut cassette = Cassette::new(WireFormat::OpenAi, "gpt-4.1");
    cassette.push_exchange(Exchange {
        request: Some(provider_body.clone()),
        status: 200,
        body: encode_openai_sse(&ScriptedTurn::text("first")),
    });
    cassette.push_exchange(Exchange {
        request: Some(provider_body),
        status: 200,
        body: encode_openai_sse(&ScriptedTurn::text("second")),
    });
    let path = dir.path().join("strict.jsonl");
    cassette.write_to(&path).unwrap();
    let provider =
        Provider::from_model_spec("replay:strict.jsonl", &replay_options(dir.path())).unwrap();

    let same = run_turn(&provider, &recorded_request).await;
    assert_eq!(same.response().text, "first");

    let mut changed = recorded_request.clone();
    changed.messages[0] = Message::User {
        content: "Make the date tests pass, quickly.".into(),
    };
    let run = run_turn(&provider, &changed).await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    let message = error.to_string();
    assert!(message.contains("request 2 differs"), "{message}");
    assert!(message.contains("$.messages[1].content"), "{message}");
    assert!(
        message.contains("\"Make the date tests pass.\""),
        "{message}"
    );
    assert!(
        message.contains("\"Make the date tests pass, quickly.\""),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn recorded_error_statuses_replay_through_the_retry_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut cassette = Cassette::new(WireFormat::Anthropic, "claude-sonnet-4-5");
    cassette
        .push_exchange(Exchange {
            request: None,
            status: 529,
            body: json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                .to_string(),
        })
        .push_turn(&ScriptedTurn::text("after the overload"));
    let path = dir.path().join("overload.jsonl");
    cassette.write_to(&path).unwrap();
    let provider =
        Provider::from_model_spec("replay:overload.jsonl", &replay_options(dir.path())).unwrap();
    let started = std::time::Instant::now();
    let run = run_turn(&provider, &sample_request(provider.model_name())).await;
    assert_eq!(run.response().text, "after the overload");
    assert_eq!(run.events.len(), 1);
    // Offline retries do not wait.
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
}

#[test]
fn setup_errors_exit_2_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let options = replay_options(dir.path());

    let missing = Provider::from_model_spec("replay:nope.jsonl", &options).unwrap_err();
    assert!(matches!(missing, ProviderError::CassetteUnreadable { .. }));
    assert_eq!(missing.exit_code(), 2);
    assert!(missing.to_string().contains("nope.jsonl"));

    std::fs::write(dir.path().join("bad.jsonl"), "{\"kkrun_cassette\": 1}\n").unwrap();
    let invalid = Provider::from_model_spec("replay:bad.jsonl", &options).unwrap_err();
    assert!(matches!(invalid, ProviderError::CassetteInvalid { .. }));
    assert_eq!(invalid.exit_code(), 2);

    let unknown = Provider::from_model_spec("gemini:pro", &options).unwrap_err();
    assert_eq!(unknown.exit_code(), 2);
    assert!(
        unknown
            .to_string()
            .contains("valid providers: openai, openai-responses, anthropic, replay"),
        "{unknown}"
    );
    for spec in ["gpt-4.1", "openai:", "anthropic:  "] {
        let error = Provider::from_model_spec(spec, &options).unwrap_err();
        assert_eq!(error.exit_code(), 2, "{spec}: {error}");
    }

    let no_key = Provider::from_model_spec("openai:gpt-4.1", &options).unwrap_err();
    assert!(matches!(no_key, ProviderError::MissingApiKey { .. }));
    assert_eq!(no_key.exit_code(), 2);
    assert!(no_key.to_string().contains("OPENAI_API_KEY"));
    let no_key = Provider::from_model_spec("anthropic:claude-sonnet-4-5", &options).unwrap_err();
    assert!(no_key.to_string().contains("ANTHROPIC_API_KEY"));

    // A local server needs no key.
    let local = ProviderOptions {
        env: ProviderEnv::fixed([("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")]),
        ..ProviderOptions::default()
    };
    Provider::from_model_spec("openai:qwen2.5-coder:7b", &local).unwrap();

    let bad_url = ProviderOptions {
        env: ProviderEnv::fixed([("OPENAI_BASE_URL", "localhost:8000")]),
        ..ProviderOptions::default()
    };
    let error = Provider::from_model_spec("openai:m", &bad_url).unwrap_err();
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("OPENAI_BASE_URL"), "{error}");
}

#[test]
fn model_names_keep_everything_after_the_first_colon() {
    let local = ProviderOptions {
        env: ProviderEnv::fixed([("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")]),
        ..ProviderOptions::default()
    };
    let provider = Provider::from_model_spec("openai:qwen2.5-coder:7b", &local).unwrap();
    assert_eq!(provider.model_name(), "qwen2.5-coder:7b");
}

#[tokio::test]
async fn replay_speaks_the_dialect_it_was_recorded_in() {
    // Recorded against api.openai.com: the limit is `max_completion_tokens`.
    let request = sample_request("gpt-5");
    let body = json!({
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": "Make the date tests pass."},
        ],
        "tools": [{"type": "function", "function": {
            "name": "read_file",
            "description": "Read a file of the workspace.",
            "parameters": request.tools[0].parameters,
        }}],
        "max_completion_tokens": 1024,
        "temperature": 0.2,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut cassette = Cassette::new(WireFormat::OpenAi, "gpt-5");
    cassette.push_exchange(Exchange {
        request: Some(body),
        status: 200,
        body: encode_openai_sse(&ScriptedTurn::text("ok")),
    });
    let dir = tempfile::tempdir().unwrap();
    cassette
        .write_to(&dir.path().join("official.jsonl"))
        .unwrap();
    let provider =
        Provider::from_model_spec("replay:official.jsonl", &replay_options(dir.path())).unwrap();
    assert_eq!(run_turn(&provider, &request).await.response().text, "ok");
}

#[tokio::test]
async fn recording_while_replaying_leaves_the_cassette_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    Cassette::from_turns(WireFormat::OpenAi, "m", &[ScriptedTurn::text("kept")])
        .write_to(&path)
        .unwrap();
    let before = std::fs::read_to_string(&path).unwrap();
    let options = ProviderOptions {
        record: Some(path.clone()),
        ..replay_options(dir.path())
    };
    let provider = Provider::from_model_spec("replay:c.jsonl", &options).unwrap();
    assert_eq!(
        run_turn(&provider, &sample_request("m"))
            .await
            .response()
            .text,
        "kept"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

//! `--record` then `replay:`: a recorded session replays to identical turn
//! results with no network; a diverging request fails clearly. Also the
//! cost of a turn.

mod support;

use kkrun::provider::script::{
    ScriptedToolCall, ScriptedTurn, encode_anthropic_sse, encode_openai_sse, encode_responses_sse,
};
use kkrun::provider::{
    Cassette, Message, ModelPrice, Provider, ProviderEnv, ProviderOptions, TurnRequest, Usage,
    WireFormat,
};
use serde_json::json;
use support::turns::{TEST_KEY, TurnRun, fast_options, run_turn, sample_request};
use support::{Reply, TestServer};

fn script() -> Vec<ScriptedTurn> {
    vec![
        ScriptedTurn::text("Reading the parser.").with_tool_call(ScriptedToolCall::new(
            "call_1",
            "read_file",
            &json!({"path": "dates.py"}),
        )),
        ScriptedTurn::text("The ISO week branch is missing — fixed ✓."),
    ]
}

/// Runs the scripted session: each turn answers the previous tool call.
async fn session(provider: &Provider) -> Vec<TurnRun> {
    let mut request = sample_request(provider.model_name());
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = run_turn(provider, &request).await;
        let response = run.response().clone();
        request.messages.push(Message::Assistant {
            content: response.text.clone(),
            tool_calls: response.tool_calls.clone(),
            reasoning: response.reasoning.clone(),
        });
        for call in &response.tool_calls {
            request.messages.push(Message::Tool {
                call_id: call.id.clone(),
                content: "def parse(s):\n    raise ValueError(s)\n".into(),
                is_error: false,
            });
        }
        runs.push(run);
    }
    runs
}

async fn round_trip(wire: WireFormat, model: &str) {
    let encode = match wire {
        WireFormat::OpenAi => encode_openai_sse,
        WireFormat::OpenAiResponses => encode_responses_sse,
        WireFormat::Anthropic => encode_anthropic_sse,
    };
    let turns = script();
    // The first turn is rate limited once: the cassette keeps that exchange
    // too, and replay goes through the same retry.
    let server = TestServer::start(vec![
        Reply::json(429, &json!({"error": {"message": "slow down"}})).header("retry-after", "0"),
        Reply::sse(encode(&turns[0])),
        Reply::sse(encode(&turns[1])),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cassette_path = dir.path().join("cassettes/session.jsonl");
    let recording = ProviderOptions {
        record: Some(cassette_path.clone()),
        ..fast_options(&server.url())
    };
    let live = Provider::from_model_spec(&format!("{}:{model}", wire.name()), &recording).unwrap();
    let live_runs = session(&live).await;
    drop(live);

    let text = std::fs::read_to_string(&cassette_path).unwrap();
    let cassette = Cassette::parse(&text).unwrap();
    assert_eq!(cassette.provider, wire);
    assert_eq!(cassette.model, model);
    assert_eq!(cassette.exchanges.len(), 3);
    assert_eq!(cassette.exchanges[0].status, 429);
    for (exchange, request) in cassette.exchanges.iter().zip(server.requests()) {
        assert_eq!(exchange.request.as_ref(), Some(&request.json()));
    }
    assert!(!text.contains(TEST_KEY));
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("\"kkrun_cassette\":1")
    );

    let replaying = ProviderOptions {
        base_dir: dir.path().to_path_buf(),
        env: ProviderEnv::fixed::<String, String>([]),
        ..ProviderOptions::default()
    };
    let replay = Provider::from_model_spec("replay:cassettes/session.jsonl", &replaying).unwrap();
    assert_eq!(replay.model_name(), model);
    let replay_runs = session(&replay).await;
    for (live, replayed) in live_runs.iter().zip(&replay_runs) {
        assert_eq!(live.response(), replayed.response());
        // Delta boundaries may differ (the live provider holds back text
        // that could start its key); the streamed text may not.
        assert_eq!(live.deltas.concat(), replayed.deltas.concat());
        assert_eq!(live.events.len(), replayed.events.len());
    }
    assert_eq!(
        replay_runs[0].events.len(),
        1,
        "the recorded 429 is retried"
    );

    // Same cassette, but the agent now asks with another temperature.
    let diverging =
        Provider::from_model_spec("replay:cassettes/session.jsonl", &replaying).unwrap();
    let mut request: TurnRequest = sample_request(model);
    request.temperature = Some(0.7);
    let run = run_turn(&diverging, &request).await;
    let message = run.error().to_string();
    assert_eq!(run.error().exit_code(), 3);
    assert!(message.contains("request 1 differs"), "{message}");
    assert!(message.contains("$.temperature"), "{message}");
    assert!(message.contains("recorded 0.2, got 0.7"), "{message}");
}

#[tokio::test]
async fn openai_record_then_replay_gives_identical_turns() {
    round_trip(WireFormat::OpenAi, "gpt-4.1").await;
}

#[tokio::test]
async fn responses_record_then_replay_gives_identical_turns() {
    round_trip(WireFormat::OpenAiResponses, "gpt-5-codex").await;
}

#[tokio::test]
async fn anthropic_record_then_replay_gives_identical_turns() {
    round_trip(WireFormat::Anthropic, "claude-sonnet-4-5").await;
}

#[test]
fn unwritable_record_path_fails_at_setup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let options = ProviderOptions {
        record: Some(file.join("cassette.jsonl")),
        ..fast_options("http://127.0.0.1:9")
    };
    let error = Provider::from_model_spec("openai:gpt-4.1", &options).unwrap_err();
    assert!(
        error.to_string().starts_with("cannot write cassette"),
        "{error}"
    );
    assert_eq!(error.exit_code(), 3);
}

#[test]
fn cost_uses_the_price_table_the_override_or_nothing() {
    let options = fast_options("http://127.0.0.1:9");
    let usage = Usage {
        input_tokens: 1_000_000,
        cached_input_tokens: 500_000,
        output_tokens: 100_000,
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    };
    let gpt = Provider::from_model_spec("openai:gpt-4.1-2025-04-14", &options).unwrap();
    let cost = gpt.cost_usd(&usage).unwrap();
    assert!((cost - (1.0 + 0.25 + 0.8)).abs() < 1e-9, "{cost}");

    let claude = Provider::from_model_spec("anthropic:claude-sonnet-4-5", &options).unwrap();
    let cost = claude.cost_usd(&usage).unwrap();
    assert!((cost - (1.5 + 0.15 + 1.5)).abs() < 1e-9, "{cost}");

    let local = Provider::from_model_spec("openai:qwen2.5-coder:32b", &options).unwrap();
    assert_eq!(local.cost_usd(&usage), None);

    let priced = ProviderOptions {
        price: Some(ModelPrice {
            input_per_mtok: 0.5,
            cached_input_per_mtok: None,
            output_per_mtok: 1.0,
            cache_write_input_per_mtok: None,
        }),
        ..options
    };
    let local = Provider::from_model_spec("openai:qwen2.5-coder:32b", &priced).unwrap();
    let cost = local.cost_usd(&usage).unwrap();
    assert!((cost - 0.6).abs() < 1e-9, "{cost}");
}

#[test]
fn replay_costs_what_the_recorded_model_would_have() {
    let dir = tempfile::tempdir().unwrap();
    Cassette::from_turns(WireFormat::OpenAi, "gpt-4.1-mini", &script())
        .write_to(&dir.path().join("c.jsonl"))
        .unwrap();
    let options = ProviderOptions {
        base_dir: dir.path().to_path_buf(),
        ..ProviderOptions::default()
    };
    let replay = Provider::from_model_spec("replay:c.jsonl", &options).unwrap();
    let usage = Usage {
        input_tokens: 1_000_000,
        cached_input_tokens: 0,
        output_tokens: 0,
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    };
    assert!((replay.cost_usd(&usage).unwrap() - 0.40).abs() < 1e-9);
}

#[test]
fn record_and_replay_flags_parse_and_exclude_each_other() {
    use clap::Parser;
    use kkrun::cli::{Cli, Command};

    let cli = Cli::try_parse_from(["kkrun", "--record", "out/c.jsonl", "t.yaml"]).unwrap();
    assert_eq!(cli.run.record.as_deref(), Some("out/c.jsonl"));
    assert_eq!(cli.run.replay, None);

    let cli = Cli::try_parse_from(["kkrun", "run", "--replay", "c.jsonl", "t.yaml"]).unwrap();
    match cli.command {
        Some(Command::Run(args)) => {
            assert_eq!(
                args.replay.as_deref(),
                Some(std::path::Path::new("c.jsonl"))
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    let both = Cli::try_parse_from(["kkrun", "--record", "a", "--replay", "b", "t.yaml"]);
    assert!(both.is_err());
}

//! The API key never leaks: every artefact of a set of runs (errors and
//! their Debug form, events, cassettes, text deltas, results, the provider's
//! own Debug) is scanned for it, while servers do their worst to echo it.

mod support;

use std::time::Duration;

use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn, encode_openai_sse};
use kkrun::provider::{Provider, ProviderOptions, WireFormat};
use serde_json::json;
use support::turns::{TEST_KEY, TurnRun, fast_options, run_turn, sample_request};
use support::{Part, Reply, TestServer, refused_url};

/// Every textual artefact of a turn.
fn artefacts(run: &TurnRun) -> Vec<String> {
    let mut out = Vec::new();
    match &run.result {
        Ok(response) => {
            out.push(format!("{response:?}"));
            out.push(serde_json::to_string(response).unwrap());
        }
        Err(error) => {
            out.push(error.to_string());
            out.push(format!("{error:?}"));
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                out.push(cause.to_string());
                source = cause.source();
            }
        }
    }
    for event in &run.events {
        out.push(serde_json::to_string(event).unwrap());
        out.push(format!("{event:?}"));
    }
    out.extend(run.deltas.iter().cloned());
    out.push(run.deltas.concat());
    out
}

fn assert_clean(what: &str, texts: &[String]) {
    // The whole key, and a distinctive part of it in case of partial echoes.
    let distinctive = &TEST_KEY[8..28];
    for text in texts {
        assert!(
            !text.contains(TEST_KEY) && !text.contains(distinctive),
            "{what}: the key leaked into: {text}"
        );
    }
}

fn fast(url: &str, cassette: Option<std::path::PathBuf>) -> ProviderOptions {
    let mut options = fast_options(url);
    options.retry.max_attempts = 2;
    options.idle_timeout = Duration::from_millis(300);
    options.record = cassette;
    options
}

#[tokio::test]
async fn no_artefact_contains_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let echo = format!("Incorrect API key provided: {TEST_KEY}");
    let model_echo = ScriptedTurn::text(format!("Found OPENAI_API_KEY={TEST_KEY} in env."))
        .with_tool_call(ScriptedToolCall::new(
            "call_1",
            "write_file",
            &json!({"path": ".env", "content": TEST_KEY}),
        ));
    let model_echo_sse = encode_openai_sse(&model_echo);
    let scenarios: Vec<(&str, WireFormat, Vec<Reply>)> = vec![
        (
            "model echoes the key",
            WireFormat::OpenAi,
            vec![Reply::sse(model_echo_sse.clone())],
        ),
        (
            "401 echoes the key",
            WireFormat::OpenAi,
            vec![Reply::json(401, &json!({"error": {"message": echo}}))],
        ),
        (
            "5xx echoes the request headers",
            WireFormat::Anthropic,
            (0..2)
                .map(|_| {
                    Reply::status(
                        502,
                        "text/plain",
                        format!("upstream said no; request had x-api-key: {TEST_KEY}; Authorization: Bearer {TEST_KEY}"),
                    )
                })
                .collect(),
        ),
        (
            "error event echoes the key",
            WireFormat::Anthropic,
            (0..2)
                .map(|_| {
                    Reply::sse(format!(
                        "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"bad key {TEST_KEY}\"}}}}\n\n"
                    ))
                })
                .collect(),
        ),
        (
            "malformed event with the key",
            WireFormat::OpenAi,
            (0..2)
                .map(|_| Reply::sse(format!("data: {{\"key\": \"{TEST_KEY}\", oops\n\n")))
                .collect(),
        ),
        (
            "html page with the key, then a reset",
            WireFormat::OpenAi,
            vec![
                Reply::status(200, "text/html", format!("<html>{TEST_KEY}</html>")),
                Reply::sse(model_echo_sse[..40].to_string())
                    .then(Part::Delay(Duration::from_millis(20)))
                    .then(Part::Reset),
            ],
        ),
    ];

    let mut cassettes = Vec::new();
    for (n, (what, wire, replies)) in scenarios.into_iter().enumerate() {
        let server = TestServer::start(replies).await;
        let cassette = dir.path().join(format!("{n}.jsonl"));
        let options = fast(&server.url(), Some(cassette.clone()));
        let provider =
            Provider::from_model_spec(&format!("{}:some-model", wire.name()), &options).unwrap();
        let run = run_turn(&provider, &sample_request("some-model")).await;
        let mut texts = artefacts(&run);
        texts.push(format!("{provider:?}"));
        texts.push(format!("{options:?}"));
        assert_clean(what, &texts);
        // The key really was sent, so the scan is meaningful.
        let sent = server.requests();
        assert!(sent.iter().all(|r| {
            r.header("authorization") == Some(&format!("Bearer {TEST_KEY}"))
                || r.header("x-api-key") == Some(TEST_KEY)
        }));
        cassettes.push(cassette);
    }

    let refused = run_turn(
        &Provider::from_model_spec("openai:gpt-4.1", &fast(&refused_url(), None)).unwrap(),
        &sample_request("gpt-4.1"),
    )
    .await;
    assert_clean("connection refused", &artefacts(&refused));

    for cassette in cassettes {
        let text = std::fs::read_to_string(&cassette).unwrap();
        assert_clean(&cassette.display().to_string(), &[text]);
    }
}

#[test]
fn setup_errors_do_not_show_the_key() {
    let options = ProviderOptions {
        env: kkrun::provider::ProviderEnv::fixed([
            ("OPENAI_API_KEY", TEST_KEY),
            ("OPENAI_BASE_URL", "ftp://example.com"),
        ]),
        ..ProviderOptions::default()
    };
    let error = Provider::from_model_spec("openai:gpt-4.1", &options).unwrap_err();
    assert_clean(
        "bad base URL",
        &[
            error.to_string(),
            format!("{error:?}"),
            format!("{options:?}"),
        ],
    );
}

//! The preflight: one cheap request per distinct endpoint before any check
//! or stage runs; a refused key or an unreachable server exits 3 naming the
//! provider, with nothing run. `--no-preflight` skips it, and a replay needs
//! none (every replaying test runs without a server).

mod e2e_support;
mod support;

use e2e_support::{Fixture, TaskFile, finish, fix_add, plan, review};
use kkrun::provider::script::{ScriptedTurn, encode_openai_sse};
use serde_json::json;

fn turns() -> Vec<ScriptedTurn> {
    vec![plan(), fix_add(), finish("code"), review("approve")]
}

/// A task whose extra check leaves a marker in the repository, so a test
/// can tell whether any check ran.
fn marked_task(fx: &Fixture, model: &str) -> String {
    fx.add_task(
        &TaskFile::new("preflight", &turns())
            .model(model)
            .extra_checks("  - name: marker\n    run: touch check-ran\n"),
    )
}

async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_exits_3_naming_the_provider_before_any_check() {
    let server = support::TestServer::start(vec![support::Reply::json(
        401,
        &json!({"error": {"message": "invalid api key"}}),
    )])
    .await;
    let fx = Fixture::new();
    std::fs::write(
        fx.root().join("tasks/kkrun.yaml"),
        format!(
            "version: 1\nproviders:\n  azure:\n    api: openai-chat\n    base_url: {}/openai/deployments/d\n    \
             headers: {{ api-key: \"${{AZURE_OPENAI_API_KEY}}\" }}\n    query: {{ api-version: \"2024-10-21\" }}\n",
            server.url()
        ),
    )
    .unwrap();
    let task = marked_task(&fx, "azure:gpt-4o");
    let mut command = fx.kkrun(&["run", "--out", "out", &task]);
    command.env("AZURE_OPENAI_API_KEY", "azure-refused-key-0123456789");
    let output = output(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("azure: preflight request to"), "{stderr}");
    assert!(stderr.contains("refused the key (HTTP 401)"), "{stderr}");
    assert!(!stderr.contains("azure-refused-key"), "{stderr}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(
        requests[0].path,
        "/openai/deployments/d/models?api-version=2024-10-21"
    );
    assert_eq!(
        requests[0].header("api-key"),
        Some("azure-refused-key-0123456789")
    );
    assert!(!fx.repo().join("check-ran").exists(), "a check ran");
    assert!(!fx.out().join("report.json").exists());
}

#[test]
fn an_unreachable_endpoint_exits_3_before_any_check() {
    let fx = Fixture::new();
    let task = marked_task(&fx, "openai:gpt-4.1");
    let output = fx
        .kkrun(&["run", "--out", "out", &task])
        .env("OPENAI_BASE_URL", support::refused_url())
        .env("OPENAI_API_KEY", "sk-test-unreachable-0123456789")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("openai: preflight request to"), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(!fx.repo().join("check-ran").exists(), "a check ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_models_list_one_token_is_asked_for() {
    let mut replies = vec![
        support::Reply::json(404, &json!({"error": "not found"})),
        support::Reply::json(
            200,
            &json!({"choices": [{"message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}]}),
        ),
    ];
    replies.extend(
        turns()
            .iter()
            .map(|t| support::Reply::sse(encode_openai_sse(t))),
    );
    let server = support::TestServer::start(replies).await;
    let fx = Fixture::new();
    let task = marked_task(&fx, "openai:local-model");
    let mut command = fx.kkrun(&["run", "--out", "out", &task]);
    command.env("OPENAI_BASE_URL", format!("{}/v1", server.url()));
    let output = output(command).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = server.requests();
    assert_eq!(requests[0].path, "/v1/models");
    assert_eq!(requests[1].path, "/v1/chat/completions");
    assert_eq!(requests[1].json()["max_tokens"], 1);
    assert_eq!(requests.len(), 6, "preflight twice, then four turns");
    assert!(fx.repo().join("check-ran").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_preflight_skips_it() {
    let replies = turns()
        .iter()
        .map(|t| support::Reply::sse(encode_openai_sse(t)))
        .collect();
    let server = support::TestServer::start(replies).await;
    let fx = Fixture::new();
    let task = marked_task(&fx, "openai:local-model");
    let mut command = fx.kkrun(&["run", "--no-preflight", "--out", "out", &task]);
    command.env("OPENAI_BASE_URL", format!("{}/v1", server.url()));
    let output = output(command).await;
    assert_eq!(output.status.code(), Some(0));
    assert!(server.requests().iter().all(|r| r.method == "POST"));
    assert_eq!(server.requests().len(), 4);
}

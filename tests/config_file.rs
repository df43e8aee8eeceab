//! The configuration file (`kkrun.yaml` up to the work-tree root, and the
//! user's `$XDG_CONFIG_HOME/kkrun/config.yaml`): named providers reached
//! over the loopback test server, the committed example configurations,
//! key-by-key merging, `defaults:`, and errors reported like task files'.

mod e2e_support;
mod support;

use std::path::Path;

use e2e_support::{Fixture, TaskFile, finish, fix_add, plan, review};
use kkrun::provider::script::{ScriptedTurn, encode_openai_sse};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn turns() -> Vec<ScriptedTurn> {
    vec![plan(), fix_add(), finish("code"), review("approve")]
}

/// A server answering the model list once (for the preflight), then the
/// four scripted turns of a passing task.
async fn server() -> support::TestServer {
    let mut replies = vec![support::Reply::json(
        200,
        &serde_json::json!({"object": "list", "data": []}),
    )];
    replies.extend(
        turns()
            .iter()
            .map(|turn| support::Reply::sse(encode_openai_sse(turn))),
    );
    support::TestServer::start(replies).await
}

/// Writes a task file inside the repository (under `ci/`), so the
/// repository's `kkrun.yaml` is found by walking up from it.
fn repo_task(fx: &Fixture, model: &str) -> String {
    let dir = fx.repo().join("ci");
    std::fs::create_dir_all(&dir).unwrap();
    TaskFile::new("fix-add", &turns())
        .model(model)
        .write(&dir, "..");
    "repo/ci/fix-add.yaml".to_string()
}

/// An example configuration with its base URL's scheme and host replaced by
/// the test server's (the path stays, since it is what the test checks).
fn example_against(name: &str, server: &str) -> (String, String) {
    let text = std::fs::read_to_string(Path::new(ROOT).join("examples/config").join(name)).unwrap();
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("base_url:"))
        .unwrap();
    let url = line.trim_start().trim_start_matches("base_url:").trim();
    let after_scheme = url.split_once("://").unwrap().1;
    let path = after_scheme
        .find('/')
        .map_or(String::new(), |at| after_scheme[at..].to_string());
    (text.replace(url, &format!("{server}{path}")), path)
}

async fn run_blocking(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn report(fx: &Fixture) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fx.out().join("report.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_gets_its_key_header_deployment_path_and_api_version() {
    let server = server().await;
    let fx = Fixture::new();
    let (config, _) = example_against("azure-openai.yaml", &server.url());
    std::fs::write(fx.repo().join("kkrun.yaml"), config).unwrap();
    let task = repo_task(&fx, "azure:gpt-4o");
    let secret = "azure-test-key-0123456789abcdef";
    let mut command = fx.kkrun(&["run", "--out", "out", &task]);
    command
        .env("AZURE_OPENAI_API_KEY", secret)
        .env("XDG_CONFIG_HOME", fx.root().join("no-user-config"));
    let output = run_blocking(command).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = server.requests();
    let turns: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(turns.len(), 4);
    for request in &turns {
        assert_eq!(
            request.path,
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(request.header("api-key"), Some(secret));
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.json()["model"], "gpt-4o");
    }
    let report = report(&fx);
    assert_eq!(report["tasks"][0]["outcome"], "passed", "{report:#}");
    assert!(
        report["tasks"][0]["cost_usd"].as_f64().is_some(),
        "{report:#}"
    );
    for file in ["report.json", "events.jsonl", "summary.md", "junit.xml"] {
        let text = std::fs::read_to_string(fx.out().join(file)).unwrap();
        assert!(
            !text.contains(secret),
            "the header's key leaked into {file}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_configuration_reaches_its_endpoint() {
    // (file, provider name, model, key variable and its value, extra header)
    let examples = [
        (
            "openrouter.yaml",
            "openrouter",
            "deepseek/deepseek-chat-v3.1",
            Some("OPENROUTER_API_KEY"),
            Some(("x-title", "kkrun")),
        ),
        (
            "gemini.yaml",
            "gemini",
            "gemini-2.5-flash",
            Some("GEMINI_API_KEY"),
            None,
        ),
        ("ollama.yaml", "ollama", "qwen2.5-coder:7b", None, None),
        (
            "vllm.yaml",
            "vllm",
            "Qwen/Qwen2.5-Coder-32B-Instruct",
            Some("VLLM_API_KEY"),
            None,
        ),
        ("llama-cpp.yaml", "llamacpp", "local", None, None),
    ];
    for (file, name, model, key_env, header) in examples {
        let server = server().await;
        let fx = Fixture::new();
        let (config, path) = example_against(file, &server.url());
        std::fs::write(fx.repo().join("kkrun.yaml"), config).unwrap();
        let task = repo_task(&fx, &format!("{name}:{model}"));
        let mut command = fx.kkrun(&["run", "--out", "out", &task]);
        command.env("XDG_CONFIG_HOME", fx.root().join("no-user-config"));
        if let Some(var) = key_env {
            command.env(var, "example-test-key-0123456789");
        }
        let output = run_blocking(command).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let requests = server.requests();
        let posts: Vec<_> = requests.iter().filter(|r| r.method == "POST").collect();
        assert_eq!(posts.len(), 4, "{file}");
        for request in posts {
            assert_eq!(request.path, format!("{path}/chat/completions"), "{file}");
            assert_eq!(request.json()["model"], model, "{file}");
            let expected = key_env.map(|_| "Bearer example-test-key-0123456789");
            assert_eq!(request.header("authorization"), expected, "{file}");
            if let Some((header, value)) = header {
                assert_eq!(request.header(header), Some(value), "{file}");
            }
        }
        assert_eq!(report(&fx)["tasks"][0]["outcome"], "passed", "{file}");
    }
}

#[test]
fn the_nearer_file_wins_key_by_key_and_defaults_apply() {
    let fx = Fixture::new();
    let user = fx.root().join("xdg/kkrun");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        user.join("config.yaml"),
        "version: 1\nproviders:\n  local:\n    api: openai-chat\n    base_url: http://127.0.0.1:9/v1\n    \
         pricing:\n      m1: { input: 1.5, cache_write: 1.875, output: 3 }\n    context_window: 32768\n\
         defaults:\n  budget: { max_tokens: 1000, timeout: 5m }\n  stages:\n    code: { max_turns: 7 }\n",
    )
    .unwrap();
    std::fs::write(
        fx.repo().join("kkrun.yaml"),
        "version: 1\nproviders:\n  local:\n    base_url: http://127.0.0.1:1/v1\n\
         defaults:\n  budget: { max_tokens: 2000 }\n",
    )
    .unwrap();
    let task = repo_task(&fx, "local:m1");
    let output = fx
        .kkrun(&["run", "--dry-run", &task])
        .env("XDG_CONFIG_HOME", fx.root().join("xdg"))
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // `api` and the price come from the user's file, `base_url` from the
    // repository's, which is nearer.
    assert!(
        plan.contains("endpoint:    local (openai-chat, http://127.0.0.1:1/v1)"),
        "{plan}"
    );
    assert!(
        plan.contains("$1.50 input, cached input as input, $1.875 cache writes, $3.00 output"),
        "{plan}"
    );
    assert!(plan.contains("32768"), "{plan}");
    // Defaults merge key by key too: max_tokens from the repository, the
    // timeout and code's turns from the user.
    assert!(plan.contains("2000"), "{plan}");
    assert!(!plan.contains("1000 tokens"), "{plan}");
    assert!(plan.contains("5m"), "{plan}");
    assert!(plan.contains("code 7 turns"), "{plan}");

    // A task's own key beats every configuration file.
    std::fs::write(
        fx.repo().join("ci/fix-add.yaml"),
        std::fs::read_to_string(fx.repo().join("ci/fix-add.yaml")).unwrap()
            + "stages:\n  code: { max_turns: 3 }\n",
    )
    .unwrap();
    let output = fx
        .kkrun(&["run", "--dry-run", &task])
        .env("XDG_CONFIG_HOME", fx.root().join("xdg"))
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&output.stdout);
    assert!(plan.contains("code 3 turns"), "{plan}");
}

#[test]
fn every_configuration_error_is_reported_at_once_with_its_position() {
    let fx = Fixture::new();
    std::fs::write(
        fx.repo().join("kkrun.yaml"),
        "version: 1\nproviders:\n  azure:\n    api: openai-chats\n    base_url: https://x.example/v1\n    \
         api_key_env: sk-proj-abcdefghijklmnop1234\n    heders: {}\n  openai:\n    api: openai-chat\n    \
         base_url: https://x.example\n  half:\n    api: anthropic\n  literal:\n    api: openai-chat\n    \
         base_url: http://127.0.0.1:9/v1\n    headers: { api-key: abcdef123456 }\n\
         defaults:\n  budget: { max_tokns: 5 }\n",
    )
    .unwrap();
    let dir = fx.repo().join("ci");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("t.yaml"),
        "version: 1\nname: t\nprompt: do it\nmodel: azur:gpt-4o\n",
    )
    .unwrap();
    let output = fx
        .kkrun(&["validate", "repo/ci/t.yaml"])
        .env("XDG_CONFIG_HOME", fx.root().join("no-user-config"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "kkrun.yaml:4:10",
        "did you mean `openai-chat`?",
        "kkrun.yaml:6:18",
        "must name an environment variable, not hold the key itself",
        "kkrun.yaml:7:5",
        "did you mean `headers`?",
        "kkrun.yaml:8:3",
        "`openai` is a built-in provider",
        "kkrun.yaml:11:3",
        "missing `providers.half.base_url`",
        "holds a literal credential",
        "did you mean `max_tokens`?",
        "t.yaml:4:8",
        "unknown provider `azur` in model `azur:gpt-4o` (hint: did you mean `azure`?)",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in\n{stderr}"
        );
    }
    // The key is never echoed back on its own line's help.
    assert_eq!(
        stderr.matches("missing `providers.azure").count(),
        0,
        "{stderr}"
    );
}

#[test]
fn a_model_override_may_name_a_configured_provider_only() {
    let fx = Fixture::new();
    std::fs::write(
        fx.repo().join("kkrun.yaml"),
        "version: 1\nproviders:\n  local:\n    api: openai-chat\n    base_url: http://127.0.0.1:9/v1\n",
    )
    .unwrap();
    let task = repo_task(&fx, "openai:gpt-4.1");
    let ok = fx
        .kkrun(&["run", "--dry-run", "--model", "local:qwen", &task])
        .env("XDG_CONFIG_HOME", fx.root().join("no-user-config"))
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("endpoint:    local"));
    let bad = fx
        .kkrun(&["run", "--dry-run", "--model", "lokal:qwen", &task])
        .env("XDG_CONFIG_HOME", fx.root().join("no-user-config"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("did you mean `local`?"), "{stderr}");
}

#[test]
fn the_committed_config_schema_is_current() {
    let output = e2e_support::kkrun(Path::new(ROOT), &["schema", "config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(Path::new(ROOT).join("schemas/config.schema.json")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        committed,
        "regenerate with `kkrun schema config > schemas/config.schema.json`"
    );
}

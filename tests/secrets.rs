//! Secrets are never written: the real binary runs a task against the
//! loopback OpenAI-compatible server with live keys in its environment. The
//! agent reads a `.env` holding both providers' keys, the model echoes a key
//! in text the server streams in pieces, a check prints a service token and
//! the review quotes a `--redact` value. Then every file kkrun wrote — the
//! run directory, the `--record` cassette, stdout, stderr and the snapshot
//! commit messages — is searched for every secret, and the recorded
//! cassette is replayed with no keys at all.

mod e2e_support;
mod support;

use std::path::{Path, PathBuf};

use e2e_support::{Fixture, Run, TaskFile, call, commit_all, finish, fix_add, git, kkrun};
use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn, encode_openai_sse};
use serde_json::json;
use support::{Reply, TestServer};

/// Every secret carries this marker, so a piece of one that survived is
/// found as surely as a whole one.
const MARKER: &str = "KEEPOUT";
const LIVE_KEY: &str = "sk-live-KEEPOUT-0123456789abcdefXYZ";
const OTHER_KEY: &str = "sk-ant-KEEPOUT-9876543210zyxwvut";
const SERVICE_TOKEN: &str = "tok-KEEPOUT-service-5555";
const EXTRA: &str = "hunter2-KEEPOUT-extra";

/// Reads the `.env`, echoes the key while submitting the plan, fixes `add`,
/// and approves in a review that quotes the other secrets.
fn turns() -> Vec<ScriptedTurn> {
    let echo = ScriptedTurn::text(format!(
        "The .env file holds OPENAI_API_KEY={LIVE_KEY}; the fix does not need it."
    ))
    .with_tool_call(ScriptedToolCall::new(
        "plan",
        "submit_plan",
        &json!({"goal": "add() must add", "steps": [format!("fix calc.py, not {OTHER_KEY}")],
                "files": ["calc.py"], "verification": "python3 test_add.py"}),
    ));
    vec![
        call("read", "read_file", json!({"path": ".env"})),
        echo,
        fix_add(),
        finish("code"),
        call(
            "review",
            "submit_review",
            json!({"verdict": "approve",
                   "summary": format!("Fixed; the token {SERVICE_TOKEN} and {EXTRA} were left alone."),
                   "risks": [format!("{LIVE_KEY} is in .env")]}),
        ),
    ]
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Fails naming the first secret (or piece of one) found in `text`.
fn assert_clean(what: &str, text: &str) {
    for secret in [LIVE_KEY, OTHER_KEY, SERVICE_TOKEN, EXTRA, MARKER] {
        assert!(!text.contains(secret), "{what} holds `{secret}`:\n{text}");
    }
}

/// Everything kkrun wrote for `run`, besides `extra` files, checked.
fn assert_run_clean(fx: &Fixture, run: &Run, extra: &[PathBuf]) {
    let mut files = Vec::new();
    files_under(&run.out, &mut files);
    files.extend_from_slice(extra);
    assert!(files.len() >= 8, "too few files: {files:?}");
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        assert_clean(&file.display().to_string(), &text);
    }
    assert_clean("stdout", &run.stdout());
    assert_clean("stderr", &run.stderr());
    let refs = git(
        &fx.repo(),
        &["for-each-ref", "--format=%(refname)", "refs/kkrun/"],
    );
    assert!(!refs.trim().is_empty());
    for name in refs.lines() {
        let message = git(&fx.repo(), &["log", "-1", "--format=%B", name]);
        assert_clean(name, &message);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_file_kkrun_writes_holds_a_secret_and_the_cassette_still_replays() {
    let turns = turns();
    // The echo really is split: no single frame of its stream holds the key.
    let echo_stream = encode_openai_sse(&turns[1]);
    assert!(!echo_stream.contains(LIVE_KEY) && echo_stream.contains("sk-live-"));
    let server = TestServer::start(
        turns
            .iter()
            .map(|t| Reply::sse(encode_openai_sse(t)))
            .collect(),
    )
    .await;

    let fx = Fixture::new();
    std::fs::write(
        fx.repo().join(".env"),
        format!("OPENAI_API_KEY={LIVE_KEY}\nANTHROPIC_API_KEY={OTHER_KEY}\n"),
    )
    .unwrap();
    std::fs::write(fx.repo().join(".gitignore"), "__pycache__/\n.env\n").unwrap();
    commit_all(&fx.repo(), "ignore .env");
    let token_check = "  - name: token\n    run: \"python3 -c \\\"import os; print('token is', os.environ['MY_SERVICE_TOKEN'])\\\"\"\n";
    let task = fx.add_task(
        &TaskFile::new("secrets", &turns)
            .model("openai:gpt-4.1")
            .extra_checks(token_check)
            // A secret the task hands its checks, appended to `env:`.
            .yaml(&format!("  MY_SERVICE_TOKEN: {SERVICE_TOKEN}\n")),
    );
    let cassette = fx.root().join("rec/secrets.jsonl");
    let mut command = fx.kkrun(&[
        "run",
        "--no-preflight",
        "--out",
        "out",
        "--json",
        "--redact",
        EXTRA,
        "--record",
    ]);
    command
        .arg(&cassette)
        .arg(&task)
        .env("OPENAI_BASE_URL", format!("{}/v1", server.url()))
        .env("OPENAI_API_KEY", LIVE_KEY)
        .env("ANTHROPIC_API_KEY", OTHER_KEY);
    let out = fx.out();
    let run = tokio::task::spawn_blocking(move || Run::capture(command, &out))
        .await
        .unwrap();
    run.expect_code(0);

    // What the model was shown is unchanged: the file as it is.
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert!(String::from_utf8_lossy(&requests[1].body).contains(LIVE_KEY));

    // The secrets reached every kind of output, and were replaced there.
    let report = run.file("report.json");
    assert!(report.contains("token is [redacted]"), "{report}");
    assert!(run.file("junit.xml").contains("token is [redacted]"));
    assert!(run.file("summary.md").contains("[redacted]"));
    let tool_call = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "tool.call" && e["tool"] == "read_file")
        .unwrap();
    let output = tool_call["output"].as_str().unwrap();
    assert!(
        output.contains("1\tOPENAI_API_KEY=[redacted]\n")
            && output.contains("2\tANTHROPIC_API_KEY=[redacted]\n"),
        "{output}"
    );
    let recorded = std::fs::read_to_string(&cassette).unwrap();
    assert!(recorded.contains("[redacted]"));
    assert_run_clean(&fx, &run, std::slice::from_ref(&cassette));

    // The redacted cassette replays where no key is set: `[redacted]` in a
    // recorded request stands for whatever secret is there now. The keys in
    // `.env` are then secrets only because `--redact` says so.
    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let mut replay = kkrun(
        fx.root(),
        &[
            "run", "--out", "out2", "--redact", LIVE_KEY, "--redact", OTHER_KEY, "--model",
        ],
    );
    replay
        .arg(format!("replay:{}", cassette.display()))
        .arg(&task);
    let replayed = Run::capture(replay, &fx.root().join("out2"));
    replayed.expect_code(0);
    assert_run_clean(&fx, &replayed, &[]);
}

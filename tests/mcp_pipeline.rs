//! A task with an MCP server, end to end through the real binary: a live
//! run against the loopback provider server records a cassette, and the
//! replay of that cassette answers the MCP calls without starting the
//! server.

mod e2e_support;
mod mcp_support;
mod support;

use e2e_support::{Fixture, Run, TaskFile, finish, fix_add, git, plan, review};
use kkrun::provider::Cassette;
use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn, encode_openai_sse};
use serde_json::{Value, json};

fn turns() -> Vec<ScriptedTurn> {
    vec![
        // Blueprint: a read-only MCP tool works, a writing one is not offered.
        ScriptedTurn::tool_calls(vec![
            ScriptedToolCall::new("look", "notes__lookup", &json!({"key": "alpha"})),
            ScriptedToolCall::new(
                "early",
                "notes__write_note",
                &json!({"path": "early.txt", "text": "too soon"}),
            ),
        ]),
        plan(),
        // Code: the writing tool is offered here.
        ScriptedTurn::tool_calls(vec![ScriptedToolCall::new(
            "note",
            "notes__write_note",
            &json!({"path": "note.txt", "text": "from mcp"}),
        )]),
        fix_add(),
        finish("code"),
        review("approve"),
    ]
}

/// The server writes its notes outside the repository: a replay does not
/// reproduce what servers do to the workspace (its diff would differ), and
/// the notes directory shows whether a server ran at all.
fn mcp_yaml(command: &str, script: &str, notes: &std::path::Path) -> String {
    format!(
        "mcp:\n  notes:\n    command: \"{command}\"\n    args: [\"{script}\", stdio]\n    env: {{ NOTES_DIR: \"{}\" }}\n",
        notes.display()
    )
}

fn stage_tools(events: &[Value], stage: &str) -> Vec<String> {
    events
        .iter()
        .find(|e| e["type"] == "stage.started" && e["stage"] == stage)
        .and_then(|e| e["tools"].as_array())
        .unwrap_or_else(|| panic!("no stage.started for {stage}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn tool_call<'e>(events: &'e [Value], call_id: &str) -> &'e Value {
    events
        .iter()
        .find(|e| e["type"] == "tool.call" && e["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no tool.call {call_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_mcp_run_replays_without_the_server() {
    let Some(python) = mcp_support::python() else {
        return;
    };
    let script = mcp_support::server_script();
    let fx = Fixture::new();
    let replies = turns()
        .iter()
        .map(|turn| support::Reply::sse(encode_openai_sse(turn)))
        .collect();
    let server = support::TestServer::start(replies).await;
    let notes = fx.root().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    let task = TaskFile::new("mcp-notes", &[])
        .model("openai:gpt-4.1")
        .yaml(&mcp_yaml(
            &python.display().to_string(),
            &script.display().to_string(),
            &notes,
        ));
    fx.add_task(&task);

    let mut live = fx.kkrun(&[
        "run",
        "--no-preflight",
        "--out",
        "live",
        "--record",
        "recorded.jsonl",
        "tasks/mcp-notes.yaml",
    ]);
    live.env("OPENAI_BASE_URL", format!("{}/v1", server.url()))
        .env("OPENAI_API_KEY", "sk-test-key-for-mcp-pipeline");
    let out = fx.root().join("live");
    let live = tokio::task::spawn_blocking(move || Run::capture(live, &out))
        .await
        .unwrap();
    live.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(notes.join("note.txt")).unwrap(),
        "from mcp",
        "the server wrote the note"
    );
    assert!(!notes.join("early.txt").exists());

    let events = live.events();
    let blueprint = stage_tools(&events, "blueprint");
    assert!(
        blueprint.contains(&"notes__lookup".to_string()),
        "{blueprint:?}"
    );
    assert!(
        !blueprint.contains(&"notes__write_note".to_string()),
        "{blueprint:?}"
    );
    assert_eq!(blueprint.last().map(String::as_str), Some("submit_plan"));
    let code = stage_tools(&events, "code");
    assert!(code.contains(&"notes__write_note".to_string()), "{code:?}");
    assert!(code.contains(&"edit_file".to_string()), "{code:?}");
    assert_eq!(tool_call(&events, "look")["outcome"], "ok");
    assert!(
        tool_call(&events, "look")["output"]
            .as_str()
            .unwrap()
            .contains("first letter")
    );
    assert_eq!(tool_call(&events, "early")["outcome"], "refused");
    assert_eq!(tool_call(&events, "note")["outcome"], "ok");
    assert!(events.iter().any(|e| e["type"] == "mcp.server_stopped"));
    let report = live.report();
    let servers = &report["tasks"][0]["mcp_servers"];
    assert_eq!(servers[0]["name"], "notes");
    assert_eq!(servers[0]["replayed"], false);
    assert_eq!(servers[0]["exited"], Value::Null);

    let recorded = std::fs::read_to_string(fx.root().join("recorded.jsonl")).unwrap();
    let cassette = Cassette::parse(&recorded).unwrap();
    assert_eq!(cassette.exchanges.len(), 6);
    let kinds: Vec<&str> = cassette
        .mcp
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["tools", "call", "call"],
        "the refused call never reached the server"
    );
    assert!(!recorded.contains("sk-test-key-for-mcp-pipeline"));

    // Replay: put the repository back, and point the task at a server that
    // does not exist: nothing may start it.
    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    std::fs::remove_file(notes.join("note.txt")).unwrap();
    let task = TaskFile::new("mcp-notes", &[])
        .model("openai:gpt-4.1")
        .yaml(&mcp_yaml("kkrun-no-such-mcp-server", "nowhere.py", &notes));
    fx.add_task(&task);
    let replay = fx.run(
        "replayed",
        &["--replay", "recorded.jsonl", "tasks/mcp-notes.yaml"],
    );
    replay.expect_code(0);
    assert!(
        !notes.join("note.txt").exists(),
        "no server ran, so nothing wrote the note"
    );
    let events = replay.events();
    assert_eq!(
        tool_call(&events, "note")["output"],
        live.events()
            .iter()
            .find(|e| e["type"] == "tool.call" && e["call_id"] == "note")
            .unwrap()["output"]
    );
    assert_eq!(stage_tools(&events, "blueprint"), blueprint);
    assert_eq!(
        replay.report()["tasks"][0]["mcp_servers"][0]["replayed"],
        true
    );
}

#[test]
fn a_server_that_fails_to_start_ends_the_task_as_an_error() {
    let Some(python) = mcp_support::python() else {
        return;
    };
    let script = mcp_support::server_script();
    let fx = Fixture::new();
    // The model is never asked: the servers start before the first stage.
    let task = TaskFile::new("broken-server", &[])
        .model("openai:gpt-4.1")
        .yaml(&format!(
            "mcp:\n  broken:\n    command: \"{}\"\n    args: [\"{}\", stdio, --fail-start]\n",
            python.display(),
            script.display()
        ));
    let file = fx.add_task(&task);
    // No preflight: the refused URL would end the run before the servers
    // start, and the servers' failure is what this test is about.
    let mut command = fx.kkrun(&["run", "--no-preflight", "--out", "out", &file]);
    command
        .env("OPENAI_BASE_URL", support::refused_url())
        .env("OPENAI_API_KEY", "sk-test-key-never-used");
    let run = Run::capture(command, &fx.root().join("out"));
    run.expect_code(3);
    let report = run.report();
    let reason = report["tasks"][0]["reason"].as_str().unwrap();
    assert_eq!(report["tasks"][0]["outcome"], "error");
    assert!(
        reason.contains("mcp server `broken` failed to start"),
        "{reason}"
    );
    assert!(reason.contains("exited with status 3"), "{reason}");
    assert!(
        reason.contains("configuration missing (on purpose)"),
        "{reason}"
    );
    assert!(
        run.stderr().contains("mcp server `broken`"),
        "{}",
        run.stderr()
    );
}

/// Runs a task whose MCP server starts a background `sleep`, sends kkrun
/// `signals` (such as `-INT`) one right after the other once it runs, and
/// returns kkrun's exit code, the sleeper's pid and the events after the
/// signals; `None` when the MCP test server is missing.
async fn interrupt_with_a_sleeper(
    signals: &'static [&'static str],
) -> Option<(Option<i32>, u32, Vec<Value>)> {
    let python = mcp_support::python()?;
    let script = mcp_support::server_script();
    let fx = Fixture::new();
    let sleeper = ScriptedTurn::tool_calls(vec![ScriptedToolCall::new(
        "sleeper",
        "notes__spawn_sleeper",
        &json!({}),
    )]);
    // The second model call never answers: the run is interrupted there.
    let server = support::TestServer::start(vec![
        support::Reply::sse(encode_openai_sse(&sleeper)),
        support::Reply::sse("").then(support::Part::Stall),
    ])
    .await;
    let notes = fx.root().join("notes");
    let task = TaskFile::new("mcp-interrupted", &[])
        .model("openai:gpt-4.1")
        .yaml(&mcp_yaml(
            &python.display().to_string(),
            &script.display().to_string(),
            &notes,
        ));
    fx.add_task(&task);
    let mut command = fx.kkrun(&[
        "run",
        "--no-preflight",
        "--json",
        "--out",
        "out",
        "tasks/mcp-interrupted.yaml",
    ]);
    command
        .env("OPENAI_BASE_URL", format!("{}/v1", server.url()))
        .env("OPENAI_API_KEY", "sk-test-key-for-mcp-interrupt")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let ended = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let mut pid = None;
        for line in lines.by_ref() {
            let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if event["type"] == "tool.call" && event["call_id"] == "sleeper" {
                pid = event["output"]
                    .as_str()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                break;
            }
        }
        let pid = pid.expect("the sleeper's pid");
        assert!(mcp_support::alive(pid));
        std::thread::sleep(std::time::Duration::from_millis(300));
        for signal in signals {
            let status = std::process::Command::new("kill")
                .args([*signal, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let rest: Vec<Value> = lines
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
        (child.wait().unwrap().code(), pid, rest)
    })
    .await
    .unwrap();
    Some(ended)
}

/// Whether process `pid` is gone within a few seconds.
fn gone_soon(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while mcp_support::alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !mcp_support::alive(pid)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_stops_the_servers_and_what_they_started() {
    let Some((code, pid, events)) = interrupt_with_a_sleeper(&["-INT"]).await else {
        return;
    };
    assert_eq!(code, Some(130));
    assert!(
        events.iter().any(|e| e["type"] == "mcp.server_stopped"),
        "{events:?}"
    );
    assert!(
        gone_soon(pid),
        "the server's child {pid} survived the interrupt"
    );
}

/// The second interrupt exits at once, without the destructors that stop
/// the servers: their process groups are killed all the same. (SIGINT and
/// SIGTERM: two signals of one kind sent at once may arrive as one.)
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_interrupt_exits_at_once_and_still_ends_the_servers() {
    let Some((code, pid, _)) = interrupt_with_a_sleeper(&["-INT", "-TERM"]).await else {
        return;
    };
    assert_eq!(code, Some(130));
    assert!(
        gone_soon(pid),
        "the server's child {pid} survived the second interrupt"
    );
}

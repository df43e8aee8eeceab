//! kkrun's MCP client against real servers: the official Python SDK's
//! server over stdio and streamable HTTP (see `tests/mcp_support`).

mod mcp_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kkrun::events::{Event, EventKind, EventSink, ToolOutcome};
use kkrun::mcp::{McpError, McpSession, Origin, ServerConfig, ToolFilter, TransportConfig};
use mcp_support::{HttpServer, alive, python, server_script};
use serde_json::json;

fn stdio(name: &str, python: &Path, extra: &[&str], env: &[(&str, &str)]) -> ServerConfig {
    let mut args = vec![server_script().display().to_string(), "stdio".to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    ServerConfig::new(
        name,
        TransportConfig::Stdio {
            command: python.display().to_string(),
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    )
}

fn recording_sink() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
    let sink = EventSink::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let store = events.clone();
    sink.subscribe(move |event| store.lock().unwrap().push(event.clone()));
    (sink.for_task("t"), events)
}

async fn start(configs: &[ServerConfig], dir: &Path, sink: &EventSink) -> McpSession {
    McpSession::start(configs, dir, Origin::Live(None), sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn stdio_server_tools_are_namespaced_filtered_and_callable() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, events) = recording_sink();
    let mut config = stdio("notes", &python, &[], &[]);
    config.filter = ToolFilter {
        allow: None,
        deny: vec!["spawn_*".to_string()],
        read_only: vec!["crash".to_string()],
    };
    let session = start(&[config], dir.path(), &sink).await;

    let names: Vec<&str> = session.tools().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "notes__big",
            "notes__crash",
            "notes__fail",
            "notes__lookup",
            "notes__show_env",
            "notes__slow",
            "notes__write_note"
        ]
    );
    let read_only: Vec<&str> = session.tools_for(true).map(|t| t.name.as_str()).collect();
    assert!(!read_only.contains(&"notes__write_note"), "{read_only:?}");
    assert!(read_only.contains(&"notes__lookup"));
    assert!(
        read_only.contains(&"notes__crash"),
        "read_only_tools adds it"
    );
    let lookup = session.tool("notes__lookup").unwrap();
    assert_eq!(lookup.input_schema["required"], json!(["key"]));
    assert!(lookup.description.contains("MCP server `notes`"));

    let result = session
        .call("notes__lookup", &json!({"key": "alpha"}), true)
        .await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(
        result.content.contains("first letter"),
        "{}",
        result.content
    );

    // Writing tools are refused in read-only stages and run elsewhere.
    let note = json!({"path": "note.txt", "text": "hello"});
    let refused = session.call("notes__write_note", &note, true).await;
    assert_eq!(refused.outcome, ToolOutcome::Refused);
    assert!(
        refused.content.contains("read-only stage"),
        "{}",
        refused.content
    );
    assert!(!dir.path().join("note.txt").exists());
    let wrote = session.call("notes__write_note", &note, false).await;
    assert_eq!(wrote.outcome, ToolOutcome::Ok, "{}", wrote.content);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("note.txt")).unwrap(),
        "hello"
    );

    // A tool error is the model's to handle; so is an unknown tool.
    let failed = session
        .call("notes__fail", &json!({"message": "no such row"}), true)
        .await;
    assert_eq!(failed.outcome, ToolOutcome::Error);
    assert!(failed.content.contains("no such row"), "{}", failed.content);
    let missing = session.call("notes__nope", &json!({}), false).await;
    assert_eq!(missing.outcome, ToolOutcome::Refused);
    let denied = session
        .call("notes__spawn_sleeper", &json!({}), false)
        .await;
    assert_eq!(denied.outcome, ToolOutcome::Refused, "deny_tools hides it");

    session.stop().await;
    let events = events.lock().unwrap();
    let started = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::McpServerStarted {
                server,
                transport,
                tools,
                read_only_tools,
                replayed,
                ..
            } => Some((
                server.clone(),
                transport.clone(),
                tools.len(),
                read_only_tools.len(),
                *replayed,
            )),
            _ => None,
        })
        .expect("mcp.server_started");
    assert_eq!(
        started,
        ("notes".to_string(), "stdio".to_string(), 7, 6, false)
    );
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, EventKind::McpServerStopped { server } if server == "notes")
        )
    );
}

#[tokio::test]
async fn slow_calls_time_out_and_large_results_are_capped() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = recording_sink();
    let mut config = stdio("s", &python, &[], &[]);
    config.call_timeout = Duration::from_secs(1);
    config.max_output_bytes = 2000;
    let session = start(&[config], dir.path(), &sink).await;

    let started = Instant::now();
    let slow = session.call("s__slow", &json!({"seconds": 30}), true).await;
    assert_eq!(slow.outcome, ToolOutcome::Error);
    assert!(
        slow.content.contains("did not answer within 1s"),
        "{}",
        slow.content
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The server is still usable after a cancelled call.
    let after = session
        .call("s__lookup", &json!({"key": "omega"}), true)
        .await;
    assert_eq!(after.outcome, ToolOutcome::Ok, "{}", after.content);

    let big = session
        .call("s__big", &json!({"size": 100_000}), true)
        .await;
    assert_eq!(big.outcome, ToolOutcome::Ok);
    assert!(big.content.len() < 2600, "{}", big.content.len());
    assert!(
        big.content
            .contains("the result was 100000 bytes and only 2000 are shown"),
        "{}",
        big.content
    );
    session.stop().await;
}

#[tokio::test]
async fn only_declared_variables_reach_the_server_and_their_values_are_redacted() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = recording_sink();
    // Cargo sets CARGO_MANIFEST_DIR for test processes: a variable of
    // kkrun's environment whose value stands in for a secret (setting one
    // here would race with the other tests' spawns).
    let config = stdio(
        "s",
        &python,
        &[],
        &[
            ("SERVICE_TOKEN", "${CARGO_MANIFEST_DIR}"),
            ("MODE", "plain $$value"),
        ],
    );
    let session = start(&[config], dir.path(), &sink).await;
    let show = async |name: &str| {
        session
            .call("s__show_env", &json!({ "name": name }), true)
            .await
            .content
    };
    assert_eq!(show("SERVICE_TOKEN").await, "SERVICE_TOKEN=[redacted]");
    assert_eq!(show("MODE").await, "MODE=plain $value");
    assert_eq!(
        show("CARGO_MANIFEST_DIR").await,
        "CARGO_MANIFEST_DIR is not set",
        "variables are passed only when declared"
    );
    session.stop().await;

    let unset = stdio(
        "u",
        &python,
        &[],
        &[("X", "${KKRUN_MCP_TEST_UNSET_VARIABLE}")],
    );
    let error = McpSession::start(&[unset], dir.path(), Origin::Live(None), &sink)
        .await
        .unwrap_err();
    assert!(matches!(error, McpError::Config { .. }), "{error}");
    assert!(
        error.to_string().contains("KKRUN_MCP_TEST_UNSET_VARIABLE"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_that_dies_mid_task_turns_its_calls_into_tool_errors() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, events) = recording_sink();
    let session = start(&[stdio("s", &python, &[], &[])], dir.path(), &sink).await;

    let crash = session.call("s__crash", &json!({}), false).await;
    assert_eq!(crash.outcome, ToolOutcome::Error);
    assert!(
        crash
            .content
            .contains("`s` exited with status 7 during this call"),
        "{}",
        crash.content
    );
    let later = session
        .call("s__lookup", &json!({"key": "alpha"}), true)
        .await;
    assert_eq!(later.outcome, ToolOutcome::Error);
    assert!(
        later.content.contains("earlier in this task"),
        "{}",
        later.content
    );

    let summary = &session.summaries()[0];
    assert_eq!(summary.exited.as_deref(), Some("exited with status 7"));
    assert!(
        summary
            .stderr_tail
            .as_deref()
            .is_some_and(|t| t.contains("crashing on request")),
        "{summary:?}"
    );
    session.stop().await;
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::McpServerExited { server, stderr_tail, .. }
            if server == "s" && stderr_tail.contains("crashing on request")
    )));
}

#[tokio::test]
async fn stopping_kills_the_servers_whole_process_group() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = recording_sink();
    let session = start(&[stdio("s", &python, &[], &[])], dir.path(), &sink).await;
    let pid = session.call("s__spawn_sleeper", &json!({}), true).await;
    let pid: u32 = pid.content.trim().parse().expect("a pid");
    assert!(alive(pid));
    session.stop().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid), "the server's background child {pid} survived");

    // Dropping a session (a cancelled task) kills the group too.
    let session = start(&[stdio("s", &python, &[], &[])], dir.path(), &sink).await;
    let pid = session.call("s__spawn_sleeper", &json!({}), true).await;
    let pid: u32 = pid.content.trim().parse().expect("a pid");
    drop(session);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !alive(pid),
        "the server's background child {pid} survived the drop"
    );
}

#[tokio::test]
async fn a_server_that_fails_to_start_is_named_with_its_stderr() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = recording_sink();
    let good = stdio("good", &python, &[], &[]);
    let bad = stdio("broken", &python, &["--fail-start"], &[]);
    let error = McpSession::start(&[good, bad], dir.path(), Origin::Live(None), &sink)
        .await
        .unwrap_err();
    assert_eq!(error.server(), "broken");
    let text = error.to_string();
    assert!(
        text.contains("mcp server `broken` failed to start"),
        "{text}"
    );
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(
        error
            .stderr_tail()
            .is_some_and(|t| t.contains("configuration missing (on purpose)")),
        "{text}"
    );

    let missing = ServerConfig::new(
        "gone",
        TransportConfig::Stdio {
            command: "kkrun-no-such-mcp-server".to_string(),
            args: vec![],
            env: BTreeMap::new(),
        },
    );
    let error = McpSession::start(&[missing], dir.path(), Origin::Live(None), &sink)
        .await
        .unwrap_err();
    assert!(matches!(error, McpError::Spawn { .. }), "{error}");
    assert!(
        error.to_string().contains("kkrun-no-such-mcp-server"),
        "{error}"
    );
}

#[tokio::test]
async fn streamable_http_server_with_headers() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sink, _) = recording_sink();
    // The token is a variable Cargo sets for test processes.
    let token = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME");
    let server = HttpServer::start(&python, Some(&token));
    let config = |value: &str| {
        ServerConfig::new(
            "remote",
            TransportConfig::Http {
                url: server.url.clone(),
                headers: BTreeMap::from([("Authorization".to_string(), value.to_string())]),
            },
        )
    };
    let session = start(&[config("Bearer ${CARGO_PKG_NAME}")], dir.path(), &sink).await;
    let result = session
        .call("remote__lookup", &json!({"key": "omega"}), true)
        .await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(result.content.contains("last letter"));
    let write = session
        .call(
            "remote__write_note",
            &json!({"path": "x", "text": "y"}),
            true,
        )
        .await;
    assert_eq!(write.outcome, ToolOutcome::Refused);
    assert_eq!(session.summaries()[0].transport, "http");
    session.stop().await;

    let mut wrong = config("Bearer wrong");
    wrong.startup_timeout = Duration::from_secs(10);
    let error = McpSession::start(&[wrong], dir.path(), Origin::Live(None), &sink)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("mcp server `remote` failed to start"),
        "{error}"
    );
}

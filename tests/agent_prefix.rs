//! Prompt caching depends on a stable prefix: within a stage every request
//! must extend the previous one byte for byte. Recorded against a real
//! streaming server for both wire formats; Anthropic requests must also
//! carry the cache breakpoints.

mod support;

use std::sync::{Arc, Mutex};

use kkrun::agent::{BudgetTracker, FinishTool, StageEnd, StageRequest, run_stage};
use kkrun::events::{EventKind, EventSink};
use kkrun::provider::script::{
    ScriptedToolCall, ScriptedTurn, encode_anthropic_sse, encode_openai_sse,
};
use kkrun::provider::{Message, Provider, ToolSpec, Usage};
use kkrun::task::{Budget, ShellPolicy, Stage};
use kkrun::tools::{ToolContext, ToolSet};
use serde_json::{Value, json};
use support::turns::fast_options;
use support::{CapturedRequest, Reply, TestServer};

fn usage(input: u64, cached: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    }
}

/// Parallel calls, a text-only reply (answered with a nudge), one more
/// call, then the finishing call: four requests.
fn script() -> Vec<ScriptedTurn> {
    vec![
        ScriptedTurn::text("Looking around.")
            .with_tool_call(ScriptedToolCall::new(
                "c1",
                "read_file",
                &json!({"path": "README.md"}),
            ))
            .with_tool_call(ScriptedToolCall::new("c2", "list_dir", &json!({})))
            .with_usage(usage(1000, 0, 50)),
        ScriptedTurn::text("The README is short.").with_usage(usage(1500, 900, 40)),
        ScriptedTurn::tool_calls(vec![ScriptedToolCall::new(
            "c3",
            "grep",
            &json!({"pattern": "demo"}),
        )])
        .with_usage(usage(1700, 1400, 30)),
        ScriptedTurn::tool_calls(vec![ScriptedToolCall::new(
            "c4",
            "submit_review",
            &json!({"verdict": "approve"}),
        )])
        .with_usage(usage(1900, 1600, 20)),
    ]
}

fn submit_review() -> FinishTool {
    FinishTool {
        spec: ToolSpec {
            name: "submit_review".to_string(),
            description: "End the review with a verdict.".to_string(),
            parameters: json!({
                "type": "object",
                "properties": {"verdict": {"type": "string", "enum": ["approve", "request_changes"]}},
                "required": ["verdict"]
            }),
        },
        validate: Box::new(|_| Ok(())),
    }
}

/// Runs a preview stage against `provider`; returns the captured model
/// turn events' usages.
async fn run_preview(provider: &Provider) -> (StageEnd, Usage, Vec<Usage>) {
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("README.md"), "# demo\n").unwrap();
    let ctx = ToolContext::from_parts(
        dir.path(),
        ShellPolicy::default(),
        Default::default(),
        Vec::new(),
    );
    let sink = EventSink::new();
    let turns = Arc::new(Mutex::new(Vec::new()));
    let captured = turns.clone();
    sink.subscribe(move |event| {
        if let EventKind::ModelTurn { usage, .. } = &event.kind {
            captured.lock().unwrap().push(*usage);
        }
    });
    let request = StageRequest {
        stage: Stage::Preview,
        system_prompt: "You review changes.".to_string(),
        messages: vec![Message::User {
            content: "Review the change.".to_string(),
        }],
        tool_set: ToolSet::ReadOnly,
        finish_tools: vec![submit_review()],
        max_turns: 8,
        timeout: None,
        context_window: None,
        cache_key: None,
    };
    let mut budget = BudgetTracker::new(&Budget::default());
    let outcome = run_stage(provider, &ctx, request, &mut budget, &sink)
        .await
        .unwrap();
    let turns = turns.lock().unwrap().clone();
    (outcome.end, outcome.usage, turns)
}

/// Length of the JSON value at the start of `text` (compact JSON).
fn value_len(text: &str) -> usize {
    let mut depth = 0i32;
    let mut in_string = false;
    let mut escaped = false;
    for (i, byte) in text.bytes().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
                if depth == 0 {
                    return i + 1;
                }
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
    }
    text.len()
}

/// The raw text of top-level `key` in a request body. A quoted key followed
/// by a colon cannot occur inside a JSON string, where quotes are escaped.
fn raw_field<'a>(body: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\":");
    let start = body
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        + needle.len();
    &body[start..start + value_len(&body[start..])]
}

/// The raw elements of a raw JSON array.
fn elements(array: &str) -> Vec<&str> {
    assert!(array.starts_with('[') && array.ends_with(']'), "{array}");
    let inner = &array[1..array.len() - 1];
    let mut out = Vec::new();
    let mut at = 0;
    while at < inner.len() {
        let len = value_len(&inner[at..]);
        out.push(&inner[at..at + len]);
        at += len + 1;
    }
    out
}

fn bodies(requests: &[CapturedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect()
}

fn without(body: &str, key: &str) -> Value {
    let mut value: Value = serde_json::from_str(body).unwrap();
    value.as_object_mut().unwrap().remove(key);
    value
}

#[tokio::test]
async fn openai_requests_extend_each_other_byte_for_byte() {
    let replies = script()
        .iter()
        .map(|t| Reply::sse(encode_openai_sse(t)))
        .collect();
    let server = TestServer::start(replies).await;
    let provider =
        Provider::from_model_spec("openai:gpt-4.1", &fast_options(&server.url())).unwrap();
    let (end, usage, turn_usages) = run_preview(&provider).await;
    assert!(matches!(end, StageEnd::Finished { .. }), "{end:?}");

    let bodies = bodies(&server.requests());
    assert_eq!(bodies.len(), 4);
    for pair in bodies.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        let earlier_messages = raw_field(earlier, "messages");
        let later_messages = raw_field(later, "messages");
        let prefix = &earlier_messages[..earlier_messages.len() - 1];
        assert!(
            later_messages.starts_with(prefix) && later_messages[prefix.len()..].starts_with(','),
            "request messages are not a byte prefix of the next request's:\n{earlier_messages}\n---\n{later_messages}"
        );
        assert_eq!(raw_field(earlier, "tools"), raw_field(later, "tools"));
        assert_eq!(without(earlier, "messages"), without(later, "messages"));
    }
    // System prompt first, then the task; the stage's tools plus its
    // finishing tool.
    let first = elements(raw_field(&bodies[0], "messages"));
    assert_eq!(
        first[0],
        r#"{"content":"You review changes.","role":"system"}"#
    );
    let tools: Value = serde_json::from_str(raw_field(&bodies[0], "tools")).unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["read_file", "list_dir", "glob", "grep", "submit_review"]
    );

    // Cached input tokens are reported per turn and summed.
    assert_eq!(
        turn_usages
            .iter()
            .map(|u| u.cached_input_tokens)
            .collect::<Vec<_>>(),
        [0, 900, 1400, 1600]
    );
    assert_eq!(usage, usage_sum());
}

fn usage_sum() -> Usage {
    script()
        .iter()
        .fold(Usage::default(), |sum, turn| sum + turn.usage)
}

/// A copy of `value` without any `cache_control` key.
fn strip_cache_control(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "cache_control")
                .map(|(k, v)| (k.clone(), strip_cache_control(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_cache_control).collect()),
        other => other.clone(),
    }
}

fn count_cache_control(value: &Value) -> usize {
    match value {
        Value::Object(map) => {
            usize::from(map.contains_key("cache_control"))
                + map.values().map(count_cache_control).sum::<usize>()
        }
        Value::Array(items) => items.iter().map(count_cache_control).sum(),
        _ => 0,
    }
}

#[tokio::test]
async fn anthropic_requests_keep_the_prefix_and_carry_cache_breakpoints() {
    let replies = script()
        .iter()
        .map(|t| Reply::sse(encode_anthropic_sse(t)))
        .collect();
    let server = TestServer::start(replies).await;
    let provider =
        Provider::from_model_spec("anthropic:claude-sonnet-4-5", &fast_options(&server.url()))
            .unwrap();
    let (end, usage, turn_usages) = run_preview(&provider).await;
    assert!(matches!(end, StageEnd::Finished { .. }), "{end:?}");
    assert_eq!(usage, usage_sum());
    assert_eq!(turn_usages.len(), 4);

    let bodies = bodies(&server.requests());
    assert_eq!(bodies.len(), 4);
    for body in &bodies {
        let value: Value = serde_json::from_str(body).unwrap();
        // Breakpoints: the system prompt, the last tool, the newest message.
        assert_eq!(
            value["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        let tools = value["tools"].as_array().unwrap();
        assert_eq!(
            tools.last().unwrap()["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(count_cache_control(&value["tools"]), 1);
        let messages = value["messages"].as_array().unwrap();
        let newest_blocks = messages.last().unwrap()["content"].as_array().unwrap();
        assert_eq!(
            newest_blocks.last().unwrap()["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(count_cache_control(&value["messages"]), 1, "{body}");
    }
    for pair in bodies.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        assert_eq!(raw_field(earlier, "system"), raw_field(later, "system"));
        assert_eq!(raw_field(earlier, "tools"), raw_field(later, "tools"));
        assert_eq!(without(earlier, "messages"), without(later, "messages"));
        // Every message but the newest is byte-identical in the next
        // request; the newest only loses its breakpoint (which does not
        // take part in cache matching) and may gain blocks.
        let old = elements(raw_field(earlier, "messages"));
        let new = elements(raw_field(later, "messages"));
        assert!(new.len() >= old.len());
        assert_eq!(old[..old.len() - 1], new[..old.len() - 1]);
        let old_last = strip_cache_control(&serde_json::from_str(old[old.len() - 1]).unwrap());
        let new_same = strip_cache_control(&serde_json::from_str(new[old.len() - 1]).unwrap());
        assert_eq!(old_last["role"], new_same["role"]);
        let old_blocks = old_last["content"].as_array().unwrap();
        let new_blocks = new_same["content"].as_array().unwrap();
        assert_eq!(old_blocks[..], new_blocks[..old_blocks.len()]);
    }
}

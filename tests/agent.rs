//! The agent loop driven by the offline replay provider: scripted model
//! turns against a real temporary git repository and real tools.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kkrun::agent::{BudgetTracker, FinishTool, StageEnd, StageOutcome, StageRequest, run_stage};
use kkrun::events::{Event, EventKind, EventSink, ToolOutcome};
use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn};
use kkrun::provider::{
    Cassette, Message, ModelPrice, Provider, ProviderEnv, ProviderOptions, ToolSpec, Usage,
    WireFormat,
};
use kkrun::task::{Budget, ShellPolicy, Stage};
use kkrun::tools::{ToolContext, ToolSet};
use serde_json::{Value, json};

struct Harness {
    _dir: tempfile::TempDir,
    workspace: PathBuf,
    cassettes: PathBuf,
    ctx: ToolContext,
    events: Arc<Mutex<Vec<Event>>>,
    sink: EventSink,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("repo");
        let cassettes = dir.path().join("cassettes");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::create_dir_all(&cassettes).unwrap();
        git2::Repository::init(&workspace).unwrap();
        std::fs::write(workspace.join("README.md"), "# demo\nA demo.\n").unwrap();
        let ctx = ToolContext::from_parts(
            &workspace,
            ShellPolicy::default(),
            Default::default(),
            Vec::new(),
        );
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = EventSink::new();
        let captured = events.clone();
        sink.subscribe(move |event| captured.lock().unwrap().push(event.clone()));
        Harness {
            workspace: ctx.workspace.clone(),
            _dir: dir,
            cassettes,
            ctx,
            events,
            sink: sink.for_task("demo").for_stage(Stage::Code),
        }
    }

    /// A replay provider answering with `turns`, in order.
    fn provider(&self, name: &str, turns: &[ScriptedTurn], price: Option<ModelPrice>) -> Provider {
        let file = format!("{name}.jsonl");
        Cassette::from_turns(WireFormat::OpenAi, "scripted-model", turns)
            .write_to(&self.cassettes.join(&file))
            .unwrap();
        let options = ProviderOptions {
            base_dir: self.cassettes.clone(),
            env: ProviderEnv::fixed::<String, String>([]),
            price,
            ..ProviderOptions::default()
        };
        Provider::from_model_spec(&format!("replay:{file}"), &options).unwrap()
    }

    async fn run(
        &self,
        provider: &Provider,
        request: StageRequest,
        budget: &mut BudgetTracker,
    ) -> StageOutcome {
        run_stage(provider, &self.ctx, request, budget, &self.sink)
            .await
            .unwrap()
    }

    fn events(&self) -> Vec<EventKind> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.clone())
            .collect()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.workspace.join(relative)
    }
}

fn finish_stage() -> FinishTool {
    FinishTool {
        spec: ToolSpec {
            name: "finish_stage".to_string(),
            description: "End the stage with a summary of what you did.".to_string(),
            parameters: json!({
                "type": "object",
                "properties": {"summary": {"type": "string"}},
                "required": ["summary"],
                "additionalProperties": false
            }),
        },
        validate: Box::new(|arguments: &Value| {
            match arguments.get("summary").and_then(Value::as_str) {
                Some(summary) if !summary.trim().is_empty() => Ok(()),
                _ => Err("`summary` must be a non-empty string".to_string()),
            }
        }),
    }
}

fn request(stage: Stage, max_turns: u32) -> StageRequest {
    StageRequest {
        stage,
        system_prompt: "You are a careful engineer.".to_string(),
        messages: vec![Message::User {
            content: "Improve the README.".to_string(),
        }],
        tool_set: ToolSet::for_stage(stage),
        finish_tools: vec![finish_stage()],
        max_turns,
        timeout: None,
        context_window: None,
        cache_key: None,
    }
}

fn unlimited() -> BudgetTracker {
    BudgetTracker::new(&Budget {
        max_tokens: None,
        max_cost_usd: None,
        timeout: None,
    })
}

fn call(id: &str, name: &str, arguments: Value) -> ScriptedToolCall {
    ScriptedToolCall::new(id, name, &arguments)
}

fn finish(id: &str, summary: &str) -> ScriptedToolCall {
    call(id, "finish_stage", json!({"summary": summary}))
}

/// The tool answers of a transcript, as (call id, content, is_error).
fn tool_answers(messages: &[Message]) -> Vec<(String, String, bool)> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool {
                call_id,
                content,
                is_error,
            } => Some((call_id.clone(), content.clone(), *is_error)),
            _ => None,
        })
        .collect()
}

fn budget_events(events: &[EventKind]) -> Vec<(String, f64, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::BudgetExhausted {
                budget,
                used,
                limit,
            } => Some((budget.as_str().to_string(), *used, *limit)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_normal_stage_reads_and_finishes() {
    let h = Harness::new();
    let provider = h.provider(
        "normal",
        &[
            ScriptedTurn::text("Let me read the README.").with_tool_call(call(
                "call_1",
                "read_file",
                json!({"path": "README.md"}),
            )),
            ScriptedTurn::tool_calls(vec![finish("call_2", "read it")]),
        ],
        None,
    );
    let mut budget = unlimited();
    let outcome = h
        .run(&provider, request(Stage::Blueprint, 10), &mut budget)
        .await;

    assert_eq!(
        outcome.end,
        StageEnd::Finished {
            tool: "finish_stage".to_string(),
            arguments: json!({"summary": "read it"})
        }
    );
    assert_eq!(outcome.turns, 2);
    assert_eq!(outcome.usage.total(), 240);
    assert_eq!(budget.usage(), outcome.usage);
    assert_eq!(outcome.tool_calls.get("read_file"), Some(&1));
    assert_eq!(outcome.tool_calls.get("finish_stage"), Some(&1));
    assert_eq!(outcome.messages.len(), 5);
    assert_eq!(
        outcome.messages[1],
        Message::Assistant {
            content: "Let me read the README.".to_string(),
            tool_calls: vec![kkrun::provider::ToolCall {
                id: "call_1".to_string(),
                name: "read_file".to_string(),
                arguments: json!({"path": "README.md"}).to_string(),
            }],
            reasoning: Vec::new(),
        }
    );
    let answers = tool_answers(&outcome.messages);
    assert_eq!(answers[0].0, "call_1");
    assert!(
        answers[0].1.starts_with("README.md: lines 1-2 of 2\n"),
        "{}",
        answers[0].1
    );
    assert_eq!(
        answers[1],
        (
            "call_2".to_string(),
            "accepted; the blueprint stage ends here.".to_string(),
            false
        )
    );

    let kinds: Vec<&str> = h
        .events()
        .iter()
        .map(|e| match e {
            EventKind::ModelTurn { .. } => "model.turn",
            EventKind::ToolCall { .. } => "tool.call",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["model.turn", "tool.call", "model.turn", "tool.call"]
    );
    let events = h.events.lock().unwrap().clone();
    assert!(events.iter().all(|e| e.task.as_deref() == Some("demo")));
    let EventKind::ToolCall {
        tool,
        outcome,
        duration_ms,
        ..
    } = &events[1].kind
    else {
        panic!("expected a tool call");
    };
    assert_eq!((tool.as_str(), *outcome), ("read_file", ToolOutcome::Ok));
    assert!(*duration_ms < 10_000);
}

#[tokio::test]
async fn max_turns_ends_the_stage() {
    let h = Harness::new();
    let turns: Vec<ScriptedTurn> = (0..3)
        .map(|n| {
            ScriptedTurn::tool_calls(vec![call(
                &format!("call_{n}"),
                "grep",
                json!({"pattern": format!("word{n}")}),
            )])
        })
        .collect();
    let provider = h.provider("max-turns", &turns, None);
    let outcome = h
        .run(&provider, request(Stage::Code, 3), &mut unlimited())
        .await;
    assert_eq!(outcome.end, StageEnd::MaxTurns);
    assert_eq!(outcome.turns, 3);
    assert_eq!(tool_answers(&outcome.messages).len(), 3);
    assert_eq!(
        budget_events(&h.events()),
        [("max_turns".to_string(), 3.0, 3.0)]
    );
}

#[tokio::test]
async fn token_budget_runs_out_mid_stage_and_stays_out() {
    let h = Harness::new();
    let turns: Vec<ScriptedTurn> = (0..3)
        .map(|n| {
            ScriptedTurn::tool_calls(vec![call(
                &format!("call_{n}"),
                "list_dir",
                json!({"path": if n % 2 == 0 { "." } else { ".//" }}),
            )])
        })
        .collect();
    let provider = h.provider("tokens", &turns, None);
    let mut budget = BudgetTracker::new(&Budget {
        max_tokens: Some(300),
        max_cost_usd: None,
        timeout: None,
    });
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut budget)
        .await;
    // 120 tokens a turn: 360 after the third turn, whose call is still
    // answered; the fourth call is never made.
    assert_eq!(outcome.end, StageEnd::MaxTokens);
    assert_eq!(outcome.turns, 3);
    assert!(
        matches!(outcome.messages.last(), Some(Message::Tool { call_id, .. }) if call_id == "call_2")
    );
    assert_eq!(
        budget_events(&h.events()),
        [("max_tokens".to_string(), 360.0, 300.0)]
    );

    // The budget is task-wide: the next stage ends before its first call.
    let next = h.provider("tokens-next", &[ScriptedTurn::text("never sent")], None);
    let outcome = h.run(&next, request(Stage::Debug, 20), &mut budget).await;
    assert_eq!(outcome.end, StageEnd::MaxTokens);
    assert_eq!(outcome.turns, 0);
    assert_eq!(outcome.usage, Usage::default());
    assert_eq!(budget.usage().total(), 360);
}

#[tokio::test]
async fn cost_budget_uses_the_price() {
    let h = Harness::new();
    let turns: Vec<ScriptedTurn> = (0..3)
        .map(|n| {
            ScriptedTurn::tool_calls(vec![call(
                &format!("c{n}"),
                "grep",
                json!({"pattern": format!("p{n}")}),
            )])
        })
        .collect();
    // $1000 per million tokens: each 100+20-token turn costs $0.12.
    let price = ModelPrice {
        input_per_mtok: 1000.0,
        cached_input_per_mtok: None,
        output_per_mtok: 1000.0,
        cache_write_input_per_mtok: None,
    };
    let provider = h.provider("cost", &turns, Some(price));
    let mut budget = BudgetTracker::new(&Budget {
        max_tokens: None,
        max_cost_usd: Some(0.2),
        timeout: None,
    });
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut budget)
        .await;
    assert_eq!(outcome.end, StageEnd::MaxCost);
    assert_eq!(outcome.turns, 2);
    let cost = outcome.cost_usd.unwrap();
    assert!((cost - 0.24).abs() < 1e-9, "{cost}");
    assert_eq!(budget.cost_usd(), outcome.cost_usd);
}

#[tokio::test]
async fn repeating_the_same_call_warns_then_ends_as_stuck() {
    let h = Harness::new();
    let same = || {
        ScriptedTurn::tool_calls(vec![call(
            "same",
            "read_file",
            json!({"path": "README.md"}),
        )])
    };
    let provider = h.provider("stuck", &[same(), same(), same(), same(), same()], None);
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut unlimited())
        .await;
    let StageEnd::Stuck { reason } = &outcome.end else {
        panic!("expected stuck, got {:?}", outcome.end);
    };
    assert!(
        reason.contains("same `read_file` call with identical arguments 5 times in a row"),
        "{reason}"
    );
    let answers = tool_answers(&outcome.messages);
    assert_eq!(answers.len(), 5);
    assert!(!answers[1].1.contains("[kkrun] warning"));
    assert!(
        answers[2].1.contains(
            "[kkrun] warning: you have made this exact `read_file` call 3 times in a row"
        ),
        "{}",
        answers[2].1
    );
    assert!(answers[3].1.contains("call 4 times in a row"));
    assert!(
        answers[4].1.starts_with("not run: the stage ended"),
        "{}",
        answers[4].1
    );
    assert_eq!(outcome.tool_calls.get("read_file"), Some(&4));
    let events = h.events();
    let warnings: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::LoopWarning { repeats, .. } => Some(*repeats),
            _ => None,
        })
        .collect();
    assert_eq!(warnings, [3, 4]);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EventKind::LoopStuck { .. }))
    );
}

#[tokio::test]
async fn two_empty_replies_end_as_stuck() {
    let h = Harness::new();
    let empty = ScriptedTurn::default();
    let provider = h.provider("empty", &[empty.clone(), empty], None);
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut unlimited())
        .await;
    assert_eq!(
        outcome.end,
        StageEnd::Stuck {
            reason: "the model sent two empty replies in a row".to_string()
        }
    );
    assert_eq!(outcome.turns, 2);
    // After the first empty reply the model was told what to do.
    let Some(Message::User { content }) = outcome.messages.get(1) else {
        panic!("expected a nudge, got {:?}", outcome.messages);
    };
    assert!(
        content.contains("Your reply was empty") && content.contains("`finish_stage`"),
        "{content}"
    );
}

#[tokio::test]
async fn a_text_only_reply_is_nudged_and_the_stage_continues() {
    let h = Harness::new();
    let provider = h.provider(
        "text-only",
        &[
            ScriptedTurn::text("I think I am done."),
            ScriptedTurn::tool_calls(vec![finish("f", "done")]),
        ],
        None,
    );
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut unlimited())
        .await;
    assert!(matches!(outcome.end, StageEnd::Finished { .. }));
    let Message::User { content } = &outcome.messages[2] else {
        panic!("expected a nudge");
    };
    assert!(
        content.starts_with("[kkrun] You replied without calling a tool."),
        "{content}"
    );
}

#[tokio::test]
async fn parallel_tool_calls_run_in_order_and_are_all_answered() {
    let h = Harness::new();
    let provider = h.provider(
        "parallel",
        &[
            ScriptedTurn::tool_calls(vec![
                call(
                    "c1",
                    "write_file",
                    json!({"path": "notes.txt", "content": "one\n"}),
                ),
                call(
                    "c2",
                    "edit_file",
                    json!({"path": "notes.txt", "old": "one", "new": "two"}),
                ),
                call("c3", "read_file", json!({"path": "notes.txt"})),
                call("c4", "shell", json!({"command": "cat notes.txt"})),
            ]),
            ScriptedTurn::tool_calls(vec![finish("c5", "wrote notes")]),
        ],
        None,
    );
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut unlimited())
        .await;
    assert!(matches!(outcome.end, StageEnd::Finished { .. }));
    let answers = tool_answers(&outcome.messages);
    let ids: Vec<&str> = answers.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(ids, ["c1", "c2", "c3", "c4", "c5"]);
    assert!(answers.iter().all(|a| !a.2), "{answers:?}");
    assert!(answers[2].1.contains("\ttwo\n"), "{}", answers[2].1);
    assert!(answers[3].1.ends_with("two\n"), "{}", answers[3].1);
    assert_eq!(
        std::fs::read_to_string(h.path("notes.txt")).unwrap(),
        "two\n"
    );
}

#[tokio::test]
async fn invalid_arguments_are_answered_and_the_model_recovers() {
    let h = Harness::new();
    let provider = h.provider(
        "invalid-args",
        &[
            ScriptedTurn::tool_calls(vec![
                ScriptedToolCall::with_raw_arguments("a1", "read_file", "{\"path\": "),
                call("a2", "finish_stage", json!({"summary": "  "})),
            ]),
            ScriptedTurn::tool_calls(vec![
                call("a3", "read_file", json!({"path": "README.md"})),
                ScriptedToolCall::with_raw_arguments("a4", "finish_stage", "{summary: done}"),
            ]),
            ScriptedTurn::tool_calls(vec![finish("a5", "done")]),
        ],
        None,
    );
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut unlimited())
        .await;
    assert_eq!(
        outcome.end,
        StageEnd::Finished {
            tool: "finish_stage".to_string(),
            arguments: json!({"summary": "done"})
        }
    );
    let answers = tool_answers(&outcome.messages);
    assert!(
        answers[0].2
            && answers[0]
                .1
                .contains("the arguments of `read_file` are not valid JSON"),
        "{:?}",
        answers[0]
    );
    assert!(answers[1].2);
    assert_eq!(
        answers[1].1,
        "`finish_stage` was not accepted: `summary` must be a non-empty string. Fix this and call `finish_stage` again."
    );
    assert!(!answers[2].2);
    assert!(
        answers[3].2 && answers[3].1.contains("its arguments are not valid JSON"),
        "{:?}",
        answers[3]
    );
    assert_eq!(outcome.tool_calls.get("finish_stage"), Some(&3));
}

#[tokio::test]
async fn a_read_only_stage_refuses_write_tools() {
    let h = Harness::new();
    let provider = h.provider(
        "read-only",
        &[
            ScriptedTurn::tool_calls(vec![
                call(
                    "w1",
                    "write_file",
                    json!({"path": "planted.txt", "content": "x"}),
                ),
                call("w2", "shell", json!({"command": "touch planted2.txt"})),
                call("w3", "teleport", json!({})),
            ]),
            ScriptedTurn::tool_calls(vec![finish("w4", "looked around")]),
        ],
        None,
    );
    let outcome = h
        .run(&provider, request(Stage::Preview, 8), &mut unlimited())
        .await;
    assert!(matches!(outcome.end, StageEnd::Finished { .. }));
    let answers = tool_answers(&outcome.messages);
    assert_eq!(
        answers[0].1,
        "`write_file` is not available in the preview stage (it may not change files); the tools here are: read_file, list_dir, glob, grep, finish_stage"
    );
    assert!(
        answers[1]
            .1
            .starts_with("`shell` is not available in the preview stage")
    );
    assert!(
        answers[2]
            .1
            .starts_with("there is no tool named `teleport`")
    );
    assert!(!h.path("planted.txt").exists() && !h.path("planted2.txt").exists());
    let refused = h
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::ToolCall {
                    outcome: ToolOutcome::Refused,
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 3);
}

#[tokio::test]
async fn a_finish_call_ends_the_stage_and_later_calls_are_not_run() {
    let h = Harness::new();
    let provider = h.provider(
        "finish-mid-turn",
        &[ScriptedTurn::tool_calls(vec![
            call(
                "f1",
                "write_file",
                json!({"path": "before.txt", "content": "x"}),
            ),
            finish("f2", "done"),
            call(
                "f3",
                "write_file",
                json!({"path": "after.txt", "content": "x"}),
            ),
        ])],
        None,
    );
    let outcome = h
        .run(&provider, request(Stage::Code, 40), &mut unlimited())
        .await;
    assert!(matches!(outcome.end, StageEnd::Finished { .. }));
    let answers = tool_answers(&outcome.messages);
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[2].1, "not run: the stage ended");
    assert!(h.path("before.txt").exists());
    assert!(!h.path("after.txt").exists());
}

#[tokio::test]
async fn the_stage_timeout_kills_a_running_command() {
    let h = Harness::new();
    let provider = h.provider(
        "timeout",
        &[ScriptedTurn::tool_calls(vec![call(
            "t1",
            "shell",
            json!({"command": "sleep 120 & echo $! > sleeper.pid; wait"}),
        )])],
        None,
    );
    let mut stage = request(Stage::Code, 40);
    stage.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let outcome = h.run(&provider, stage, &mut unlimited()).await;
    assert_eq!(outcome.end, StageEnd::Timeout);
    assert!(started.elapsed() < Duration::from_secs(10));
    let answers = tool_answers(&outcome.messages);
    assert!(
        answers[0]
            .1
            .starts_with("interrupted: the time limit ran out"),
        "{}",
        answers[0].1
    );
    let budgets = budget_events(&h.events());
    assert_eq!(budgets.len(), 1);
    assert_eq!((budgets[0].0.as_str(), budgets[0].2), ("timeout", 1.0));

    let pid: u32 = std::fs::read_to_string(h.path("sleeper.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(wait_until_gone(pid), "process {pid} outlived the stage");
}

#[tokio::test]
async fn dropping_the_stage_kills_a_running_command() {
    let h = Harness::new();
    let provider = h.provider(
        "dropped",
        &[ScriptedTurn::tool_calls(vec![call(
            "d1",
            "shell",
            json!({"command": "sleep 120 & echo $! > dropped.pid; wait"}),
        )])],
        None,
    );
    let mut budget = unlimited();
    let stage = run_stage(
        &provider,
        &h.ctx,
        request(Stage::Code, 40),
        &mut budget,
        &h.sink,
    );
    let interrupted = tokio::time::timeout(Duration::from_millis(2500), stage).await;
    assert!(
        interrupted.is_err(),
        "the stage should still have been running"
    );
    let pid_file = h.path("dropped.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until_gone(pid),
        "process {pid} outlived the dropped stage"
    );
    assert_eq!(
        budget.usage().total(),
        120,
        "the completed turn stays counted"
    );
}

#[tokio::test]
async fn long_conversations_are_compacted_and_logged() {
    let h = Harness::new();
    write_padded_files(&h, 8);
    let mut turns = read_turns(8);
    turns.push(ScriptedTurn::tool_calls(vec![finish(
        "done",
        "read everything",
    )]));
    let provider = h.provider("compaction", &turns, None);
    let mut stage = request(Stage::Blueprint, 20);
    // Each read is ~1 300 tokens; the tools and prompt ~800.
    stage.context_window = Some(8_000);
    let outcome = h.run(&provider, stage, &mut unlimited()).await;
    assert!(
        matches!(outcome.end, StageEnd::Finished { .. }),
        "{:?}",
        outcome.end
    );

    let compactions = compactions(&h.events());
    assert!(!compactions.is_empty());
    for (before, after, elided) in &compactions {
        assert!(
            before > after && *before > 6_400 && *after <= 4_800,
            "{before} -> {after}"
        );
        assert!(*elided >= 1);
    }
    // The transcript keeps every output whole.
    let answers = tool_answers(&outcome.messages);
    assert_eq!(answers.len(), 9);
    assert!(
        answers[..8]
            .iter()
            .all(|a| a.1.contains("line 99 with some padding"))
    );
}

/// Writes `count` files `f0.txt`, … of about 1 300 tokens each.
fn write_padded_files(h: &Harness, count: usize) {
    for n in 0..count {
        let body: String = (0..100)
            .map(|i| format!("file {n} line {i} with some padding text\n"))
            .collect();
        std::fs::write(h.path(&format!("f{n}.txt")), body).unwrap();
    }
}

/// One turn per file, each reading it.
fn read_turns(count: usize) -> Vec<ScriptedTurn> {
    (0..count)
        .map(|n| {
            ScriptedTurn::tool_calls(vec![call(
                &format!("r{n}"),
                "read_file",
                json!({"path": format!("f{n}.txt")}),
            )])
        })
        .collect()
}

/// (before, after, elided outputs) of every `context.compacted` event.
fn compactions(events: &[EventKind]) -> Vec<(u64, u64, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::ContextCompacted {
                before_tokens,
                after_tokens,
                elided_outputs,
                ..
            } => Some((*before_tokens, *after_tokens, *elided_outputs)),
            _ => None,
        })
        .collect()
}

/// True once the process is gone (or a zombie nobody reaped yet).
fn wait_until_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let running = stat.is_ok_and(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start().to_string();
            !state.starts_with('Z') && !state.starts_with('X')
        });
        if !running {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn a_request_refused_as_too_long_is_compacted_and_retried() {
    let h = Harness::new();
    write_padded_files(&h, 4);
    let file = "too-long.jsonl";
    let mut cassette = Cassette::new(WireFormat::OpenAi, "scripted-model");
    for turn in read_turns(4) {
        cassette.push_turn(&turn);
    }
    // The server's real window is smaller than kkrun assumed (the default
    // for an unknown model): it refuses the fifth request.
    cassette.push_exchange(kkrun::provider::Exchange {
        request: None,
        status: 400,
        body: r#"{"error":{"message":"This model's maximum context length is 4096 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#.to_string(),
    });
    cassette.push_turn(&ScriptedTurn::tool_calls(vec![finish(
        "done",
        "read everything",
    )]));
    cassette.write_to(&h.cassettes.join(file)).unwrap();
    let options = ProviderOptions {
        base_dir: h.cassettes.clone(),
        env: ProviderEnv::fixed::<String, String>([]),
        ..ProviderOptions::default()
    };
    let provider = Provider::from_model_spec(&format!("replay:{file}"), &options).unwrap();

    let outcome = h
        .run(&provider, request(Stage::Blueprint, 20), &mut unlimited())
        .await;
    assert!(
        matches!(outcome.end, StageEnd::Finished { .. }),
        "{:?}",
        outcome.end
    );
    let compactions = compactions(&h.events());
    assert_eq!(compactions.len(), 1, "{compactions:?}");
    let (before, after, elided) = compactions[0];
    assert!(
        after < before && elided >= 1,
        "{before} -> {after}, {elided} elided"
    );
    // The transcript still has every output whole.
    assert_eq!(tool_answers(&outcome.messages).len(), 5);
}

#[tokio::test]
async fn a_request_too_long_with_nothing_to_compact_ends_with_the_error() {
    let h = Harness::new();
    let file = "hopeless.jsonl";
    let mut cassette = Cassette::new(WireFormat::OpenAi, "scripted-model");
    cassette.push_exchange(kkrun::provider::Exchange {
        request: None,
        status: 400,
        body: r#"{"error":{"message":"prompt is too long","code":"context_length_exceeded"}}"#
            .to_string(),
    });
    cassette.write_to(&h.cassettes.join(file)).unwrap();
    let options = ProviderOptions {
        base_dir: h.cassettes.clone(),
        env: ProviderEnv::fixed::<String, String>([]),
        ..ProviderOptions::default()
    };
    let provider = Provider::from_model_spec(&format!("replay:{file}"), &options).unwrap();
    let error = run_stage(
        &provider,
        &h.ctx,
        request(Stage::Blueprint, 20),
        &mut unlimited(),
        &h.sink,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("too long"), "{error}");
}

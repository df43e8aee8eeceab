//! The aggregator's rules, on hand-made event streams.

use super::*;
use crate::events::{AttemptSummary, CheckPhase, CheckSpec, StageEndKind, TaskOutcome};
use crate::provider::Usage;
use crate::report::CheckStatus;
use crate::task::Stage;
use crate::tools::checks::CheckResult;
use crate::tools::checks::CheckRun;

fn event(task: Option<&str>, stage: Option<Stage>, kind: EventKind) -> Event {
    Event {
        ts: "2026-12-01T10:00:00Z".into(),
        elapsed_ms: 10,
        task: task.map(str::to_string),
        stage,
        kind,
    }
}

fn started(tasks: &[&str]) -> Event {
    event(
        None,
        None,
        EventKind::RunStarted {
            schema_version: 1,
            run_id: "r".into(),
            kkrun_version: "0".into(),
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            command_line: vec!["kkrun".into()],
            partition: None,
            merged: None,
            baseline_findings: None,
        },
    )
}

fn planned(task: &str) -> Event {
    event(
        Some(task),
        None,
        EventKind::TaskPlanned {
            file: "t.yaml".into(),
            line: 2,
            description: "d".into(),
            kind: "fix".into(),
            workspace: "/w".into(),
            model: "m".into(),
            checks: vec![CheckSpec {
                name: "unit".into(),
                run: "true".into(),
                line: 7,
            }],
            matrix: None,
        },
    )
}

fn checks(task: &str, phase: CheckPhase, passed: bool, decides_outcome: bool) -> Event {
    event(
        Some(task),
        None,
        EventKind::ChecksFinished {
            phase,
            passed: usize::from(passed),
            failed: usize::from(!passed),
            failed_names: Vec::new(),
            decides_outcome,
            results: vec![CheckResult {
                name: "unit".into(),
                run: CheckRun {
                    passed,
                    flaky: false,
                    exit_code: Some(i32::from(!passed)),
                    timed_out: false,
                    attempts: 1,
                    duration_ms: 1,
                    output_tail: String::new(),
                    failed_attempts: Vec::new(),
                },
            }],
        },
    )
}

fn finished(task: &str, outcome: TaskOutcome) -> Event {
    event(
        Some(task),
        None,
        EventKind::TaskFinished {
            outcome,
            reason: "why".into(),
            usage: Usage::default(),
            cost_usd: None,
            duration_ms: 5,
            output: None,
        },
    )
}

fn run_finished(exit_code: i32) -> Event {
    event(
        None,
        None,
        EventKind::RunFinished {
            exit_code,
            passed: 0,
            not_passed: 1,
        },
    )
}

fn aggregate(events: &[Event]) -> Report {
    let mut aggregator = Aggregator::new();
    for event in events {
        aggregator.on_event(event);
    }
    aggregator.report()
}

#[test]
fn only_the_run_that_decides_is_the_final_one() {
    let report = aggregate(&[
        started(&["t"]),
        planned("t"),
        checks("t", CheckPhase::Baseline, false, false),
        // A debug-phase run that still fails does not decide.
        checks("t", CheckPhase::Debug, false, false),
        finished("t", TaskOutcome::BudgetExhausted),
        run_finished(4),
    ]);
    let check = &report.tasks[0].checks[0];
    assert_eq!(check.status, CheckStatus::NotRun);
    assert!(check.final_run.is_none());

    let report = aggregate(&[
        started(&["t"]),
        planned("t"),
        checks("t", CheckPhase::Baseline, false, false),
        checks("t", CheckPhase::Debug, true, true),
        finished("t", TaskOutcome::Passed),
        run_finished(0),
    ]);
    assert_eq!(report.tasks[0].checks[0].status, CheckStatus::Fixed);
    assert_eq!(report.rebuilt, None);
}

#[test]
fn a_skipped_stage_has_no_snapshot_and_a_run_stage_gets_the_one_taken_while_open() {
    let snapshot = |stage: &str| {
        event(
            Some("t"),
            None,
            EventKind::SnapshotTaken {
                ref_name: format!("refs/kkrun/r/t/{stage}"),
                commit: "c".into(),
                snapshot_stage: stage.into(),
                scan: None,
            },
        )
    };
    let stage_finished = |stage, end| {
        event(
            Some("t"),
            Some(stage),
            EventKind::StageFinished {
                end,
                turns: 1,
                usage: Usage::default(),
                cost_usd: Some(0.0),
                duration_ms: 1,
                round: 1,
                detail: None,
                tool_calls: [("read_file".to_string(), 2)].into(),
                result: None,
            },
        )
    };
    let report = aggregate(&[
        started(&["t"]),
        planned("t"),
        snapshot("base"),
        event(
            Some("t"),
            Some(Stage::Code),
            EventKind::StageStarted {
                round: 1,
                tools: Vec::new(),
            },
        ),
        snapshot("code"),
        stage_finished(Stage::Code, StageEndKind::Finished),
        stage_finished(Stage::Debug, StageEndKind::Skipped),
        finished("t", TaskOutcome::Passed),
        run_finished(0),
    ]);
    let task = &report.tasks[0];
    assert_eq!(task.snapshots.len(), 2);
    assert_eq!(
        task.stages[0].snapshot.as_ref().map(|s| s.stage.as_str()),
        Some("code")
    );
    assert_eq!(task.stages[1].snapshot, None);
    assert_eq!(task.tool_calls["read_file"], 4);
}

#[test]
fn without_run_finished_unfinished_tasks_are_interrupted_and_the_report_says_so() {
    let report = aggregate(&[
        started(&["a", "b", "c"]),
        planned("a"),
        planned("b"),
        planned("c"),
        finished("a", TaskOutcome::Failed),
    ]);
    let outcomes: Vec<(TaskOutcome, &str)> = report
        .tasks
        .iter()
        .map(|t| (t.outcome, t.reason.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (TaskOutcome::Failed, "why"),
            (TaskOutcome::Interrupted, UNFINISHED_REASON),
            (TaskOutcome::Interrupted, UNFINISHED_REASON),
        ]
    );
    assert_eq!(report.exit_code, exit_codes::INTERRUPTED);
    assert_eq!(report.rebuilt.as_deref(), Some(REBUILT_NOTE));
    // Planned tasks keep what the plan said of them.
    assert_eq!(report.tasks[2].file, "t.yaml");
    assert_eq!(report.tasks[2].checks[0].status, CheckStatus::NotRun);
}

fn turn(input_tokens: u64) -> Event {
    event(
        Some("t"),
        Some(Stage::Code),
        EventKind::ModelTurn {
            turn: 1,
            usage: Usage {
                input_tokens,
                ..Usage::default()
            },
            cost_usd: Some(0.5),
            tool_calls: 0,
            text_chars: 0,
            duration_ms: 1,
        },
    )
}

#[test]
fn task_resumed_keeps_the_completed_steps_and_counts_every_attempt() {
    let code_started = event(
        Some("t"),
        Some(Stage::Code),
        EventKind::StageStarted {
            round: 1,
            tools: Vec::new(),
        },
    );
    let report = aggregate(&[
        started(&["t"]),
        planned("t"),
        checks("t", CheckPhase::Baseline, false, false),
        // Cut short here: a code stage with a turn, never finished.
        code_started.clone(),
        turn(100),
        event(
            Some("t"),
            None,
            EventKind::SnapshotTaken {
                ref_name: "refs/kkrun/r/t/00-interrupted".into(),
                commit: "c0".into(),
                snapshot_stage: "interrupted".into(),
                scan: None,
            },
        ),
        event(
            None,
            None,
            EventKind::RunResumed {
                attempt: 2,
                tasks: vec!["t".into()],
                command_line: Vec::new(),
            },
        ),
        event(
            Some("t"),
            None,
            EventKind::TaskResumed {
                kept_events: 2,
                from_snapshot: None,
                after: "the baseline checks".into(),
                replay_position: 0,
                previous: AttemptSummary {
                    started_at: "2026-12-01T10:00:00Z".into(),
                    duration_ms: 7,
                    usage: Usage {
                        input_tokens: 100,
                        ..Usage::default()
                    },
                    cost_usd: Some(0.5),
                    ended: KILLED.into(),
                },
                base_commit: None,
                sandbox: None,
                worktree: None,
            },
        ),
        code_started,
        turn(40),
        checks("t", CheckPhase::Final, true, true),
        finished("t", TaskOutcome::Passed),
        run_finished(0),
    ]);
    assert_eq!(report.rebuilt, None, "run.resumed reopens the run");
    let task = &report.tasks[0];
    assert_eq!(task.checks[0].status, CheckStatus::Fixed);
    // The cut-short stage is forgotten; the resumed one is open (this
    // stream never finishes it) and was not reported as a stage.
    assert!(task.stages.is_empty(), "{:?}", task.stages);
    let resumed = task.resumed.as_ref().unwrap();
    assert_eq!(resumed.after, "the baseline checks");
    let attempts: Vec<(u64, &str)> = resumed
        .attempts
        .iter()
        .map(|a| (a.usage.input_tokens, a.ended.as_str()))
        .collect();
    assert_eq!(attempts, [(100, KILLED), (40, "passed")]);
    // The forgotten attempt's snapshot is still listed: its ref exists.
    assert_eq!(task.snapshots.len(), 1);
    assert_eq!(task.snapshots[0].stage, "interrupted");
}

//! A task's history as its events tell it: the steps it completed, in the
//! order the pipeline takes them, and what its attempts spent.

use std::collections::VecDeque;

use serde_json::Value;

use crate::events::{AttemptSummary, CheckPhase, Event, EventKind, StageEndKind, TaskOutcome};
use crate::findings::{Finding, FindingStatus};
use crate::provider::Usage;
use crate::task::Stage;
use crate::tools::checks::CheckResult;

/// A snapshot a step took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSnapshot {
    /// `refs/kkrun/<run>/<task>/<NN>-<stage>`.
    pub ref_name: String,
    /// The commit id.
    pub commit: String,
}

/// A step of the pipeline that completed and left its record in the event
/// stream, so a resumed task takes it from there instead of doing it again.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The `00-base` snapshot.
    Base(StepSnapshot),
    /// A run of the checks by kkrun.
    Checks {
        /// Which run.
        phase: CheckPhase,
        /// Every check's result.
        results: Vec<CheckResult>,
    },
    /// A stage that ended normally (finished, sent back to code, skipped).
    Stage {
        /// The stage.
        stage: Stage,
        /// Its debug round.
        round: u32,
        /// How it ended.
        end: StageEndKind,
        /// The finishing tool's arguments; `None` for a skipped stage.
        result: Option<Value>,
        /// The snapshot after it; `None` for a skipped stage.
        snapshot: Option<StepSnapshot>,
    },
    /// The plan was saved and announced.
    Plan,
    /// The review was announced.
    Review,
}

impl Step {
    /// The step in a few words, for the console and the report.
    pub fn describe(&self) -> String {
        match self {
            Step::Base(_) => "the base snapshot".to_string(),
            Step::Checks { phase, .. } => format!("the {phase} checks"),
            Step::Stage { stage, round, .. } if *round > 1 => format!("{stage} (round {round})"),
            Step::Stage { stage, .. } => stage.as_str().to_string(),
            Step::Plan => "the plan".to_string(),
            Step::Review => "the review".to_string(),
        }
    }

    fn snapshot(&self) -> Option<&StepSnapshot> {
        match self {
            Step::Base(snapshot) => Some(snapshot),
            Step::Stage { snapshot, .. } => snapshot.as_ref(),
            _ => None,
        }
    }
}

/// One task of a run, from the events that carry its name.
#[derive(Debug, Clone)]
pub struct TaskHistory {
    /// The task's name.
    pub name: String,
    /// The outcome of its `task.finished`, when it has one that is not
    /// `interrupted`: such a task is done and does not run again.
    pub finished: Option<TaskOutcome>,
    /// The task file as `task.planned` named it.
    pub file: Option<String>,
    /// The `provider:model` it ran with.
    pub model: Option<String>,
    /// Its checks as planned, `(name, command)`.
    pub checks: Vec<(String, String)>,
    /// The completed steps, in order.
    pub steps: VecDeque<Step>,
    /// How many of the task's events the steps account for: the events a
    /// resumed task keeps.
    pub kept_events: usize,
    /// Model exchanges (turns and retried attempts) within the kept events.
    pub replay_position: usize,
    /// Whether `transcript.jsonl` was announced within the kept events.
    pub transcript: bool,
    /// The bug hunt's findings as the kept events leave them.
    pub findings: Vec<Finding>,
    /// Whether the findings' reproducers ran within the kept events.
    pub reproduced: bool,
    /// The attempt the stream stops in (or that was interrupted).
    pub last_attempt: AttemptSummary,
    /// Earlier attempts, from earlier `task.resumed` events.
    pub earlier_attempts: Vec<AttemptSummary>,
}

impl TaskHistory {
    /// The last snapshot of the kept steps: the work tree a resumed task
    /// continues from.
    pub fn last_snapshot(&self) -> Option<&StepSnapshot> {
        self.steps.iter().rev().find_map(Step::snapshot)
    }

    /// The `00-base` snapshot, when the kept steps took it.
    pub fn base_snapshot(&self) -> Option<&StepSnapshot> {
        self.steps.iter().find_map(|step| match step {
            Step::Base(snapshot) => Some(snapshot),
            _ => None,
        })
    }

    /// The step the task continues after.
    pub fn after(&self) -> String {
        self.steps
            .back()
            .map_or_else(|| "start".to_string(), Step::describe)
    }

    /// What every attempt spent: tokens, dollars (`None` once a price was
    /// unknown) and milliseconds. Budgets count all of it.
    pub fn spent(&self) -> (Usage, Option<f64>, u64) {
        let mut usage = Usage::default();
        let mut cost = Some(0.0);
        let mut millis = 0;
        for attempt in self.earlier_attempts.iter().chain([&self.last_attempt]) {
            usage += attempt.usage;
            cost = cost.zip(attempt.cost_usd).map(|(a, b)| a + b);
            millis += attempt.duration_ms;
        }
        (usage, cost, millis)
    }
}

/// Every task of a stream, in the order the stream names them. A killed
/// attempt ends at the stream's last event.
pub fn tasks(events: &[Event]) -> Vec<TaskHistory> {
    let mut names: Vec<String> = Vec::new();
    for event in events {
        if let EventKind::RunStarted { tasks, .. } = &event.kind {
            for name in tasks {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        if let Some(name) = &event.task
            && !names.contains(name)
        {
            names.push(name.clone());
        }
    }
    let end_ms = events.last().map_or(0, |e| e.elapsed_ms);
    names
        .into_iter()
        .map(|name| {
            // The task's events as the aggregator keeps them: a
            // `task.resumed` forgets what followed its kept events.
            let mut own: Vec<&Event> = Vec::new();
            for event in events.iter().filter(|e| e.task.as_deref() == Some(&name)) {
                if let EventKind::TaskResumed { kept_events, .. } = &event.kind {
                    own.truncate(*kept_events);
                }
                own.push(event);
            }
            history(&name, &own, end_ms)
        })
        .collect()
}

fn history(name: &str, events: &[&Event], end_ms: u64) -> TaskHistory {
    let mut history = TaskHistory {
        name: name.to_string(),
        finished: None,
        file: None,
        model: None,
        checks: Vec::new(),
        steps: VecDeque::new(),
        kept_events: 0,
        replay_position: 0,
        transcript: false,
        findings: Vec::new(),
        reproduced: false,
        last_attempt: AttemptSummary {
            started_at: String::new(),
            duration_ms: 0,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            ended: crate::report::aggregate::KILLED.to_string(),
        },
        earlier_attempts: Vec::new(),
    };
    let mut attempt_start: Option<u64> = None;
    let mut last_ms = None;
    // The stage between its `stage.started` and `stage.finished`.
    let mut open: Option<Option<StepSnapshot>> = None;
    let mut walking = true;
    // Exchanges, transcript and findings as of the event being read; what
    // the last step had is what the resumed task gets.
    let mut exchanges = 0;
    let mut transcript = false;
    let mut findings: Vec<Finding> = Vec::new();
    let mut reproduced = false;
    for (index, event) in events.iter().enumerate() {
        last_ms = Some(event.elapsed_ms);
        let mut step = None;
        match &event.kind {
            EventKind::TaskPlanned {
                file,
                model,
                checks,
                ..
            } => {
                history.file = Some(file.clone());
                history.model = Some(model.clone());
                history.checks = checks
                    .iter()
                    .map(|c| (c.name.clone(), c.run.clone()))
                    .collect();
            }
            EventKind::TaskStarted { .. } => {
                history.last_attempt.started_at = event.ts.clone();
                attempt_start = Some(event.elapsed_ms);
            }
            EventKind::TaskResumed { previous, .. } => {
                history.earlier_attempts.push(previous.clone());
                history.last_attempt.started_at = event.ts.clone();
                history.last_attempt.usage = Usage::default();
                history.last_attempt.cost_usd = Some(0.0);
                attempt_start = Some(event.elapsed_ms);
            }
            EventKind::ModelTurn {
                usage, cost_usd, ..
            } => {
                history.last_attempt.usage += *usage;
                history.last_attempt.cost_usd = history
                    .last_attempt
                    .cost_usd
                    .zip(*cost_usd)
                    .map(|(a, b)| a + b);
                exchanges += 1;
            }
            EventKind::ProviderRetry { .. } => exchanges += 1,
            EventKind::ArtifactWritten {
                artifact: crate::events::ArtifactKind::Transcript,
                ..
            } => transcript = true,
            EventKind::FindingReported { finding } => findings.push((**finding).clone()),
            EventKind::FindingWithdrawn { id, reason } => {
                if let Some(finding) = findings.iter_mut().find(|f| &f.id == id) {
                    finding.status = FindingStatus::Withdrawn;
                    finding.withdrawn_reason = Some(reason.clone());
                }
            }
            EventKind::FindingReproduced {
                id,
                status,
                reproduction,
            } => {
                reproduced = true;
                if let Some(finding) = findings.iter_mut().find(|f| &f.id == id) {
                    finding.status = *status;
                    finding.reproduction = Some(reproduction.clone());
                }
            }
            EventKind::SnapshotTaken {
                ref_name,
                commit,
                snapshot_stage,
                ..
            } => {
                let snapshot = StepSnapshot {
                    ref_name: ref_name.clone(),
                    commit: commit.clone(),
                };
                match &mut open {
                    Some(slot) => *slot = Some(snapshot),
                    None if snapshot_stage == "base" => step = Some(Step::Base(snapshot)),
                    None => {}
                }
            }
            EventKind::StageStarted { .. } => open = Some(None),
            EventKind::StageFinished {
                end, round, result, ..
            } => {
                let snapshot = open.take().flatten();
                match (event.stage, end.is_normal()) {
                    (Some(stage), true) => {
                        step = Some(Step::Stage {
                            stage,
                            round: *round,
                            end: *end,
                            result: result.clone(),
                            snapshot,
                        });
                    }
                    // A stage that ended otherwise ended the task; nothing
                    // after it is a step to build on.
                    _ => walking = false,
                }
            }
            EventKind::ChecksFinished { phase, results, .. } => {
                step = Some(Step::Checks {
                    phase: *phase,
                    results: results.clone(),
                });
            }
            EventKind::PlanSubmitted { .. } => step = Some(Step::Plan),
            EventKind::ReviewSubmitted { .. } => step = Some(Step::Review),
            EventKind::TaskFinished {
                outcome,
                duration_ms,
                ..
            } => {
                if *outcome != TaskOutcome::Interrupted {
                    history.finished = Some(*outcome);
                }
                history.last_attempt.ended = outcome.as_str().to_string();
                if attempt_start.is_none() {
                    // Given up before it started: it spent nothing.
                    history.last_attempt.duration_ms = 0;
                } else if history.earlier_attempts.is_empty() {
                    history.last_attempt.duration_ms = *duration_ms;
                }
                walking = false;
            }
            _ => {}
        }
        if let Some(step) = step
            && walking
        {
            history.steps.push_back(step);
            history.kept_events = index + 1;
            history.replay_position = exchanges;
            history.transcript = transcript;
            history.findings = findings.clone();
            history.reproduced = reproduced;
        }
    }
    if history.steps.is_empty() {
        // Nothing to build on: keep what the runner announced and the
        // task's start (its file, model and base), and start over.
        history.kept_events = events
            .iter()
            .position(|e| matches!(e.kind, EventKind::TaskStarted { .. }))
            .map_or_else(
                || {
                    events
                        .iter()
                        .take_while(|e| matches!(e.kind, EventKind::TaskPlanned { .. }))
                        .count()
                },
                |at| at + 1,
            );
    }
    if let Some(start) = attempt_start
        && history.last_attempt.ended == crate::report::aggregate::KILLED
    {
        history.last_attempt.duration_ms = end_ms.max(last_ms.unwrap_or(0)).saturating_sub(start);
    } else if let Some(start) = attempt_start
        && !history.earlier_attempts.is_empty()
    {
        history.last_attempt.duration_ms = last_ms.unwrap_or(start).saturating_sub(start);
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(lines: &[Value]) -> Vec<Event> {
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let mut line = line.clone();
                line["ts"] = json!("2026-12-02T00:00:00Z");
                line["elapsed_ms"] = json!(i as u64 * 10);
                serde_json::from_value(line).unwrap()
            })
            .collect()
    }

    fn turn(stage: &str) -> Value {
        json!({"type": "model.turn", "task": "t", "stage": stage, "turn": 1,
               "usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 1},
               "cost_usd": null, "tool_calls": 0, "text_chars": 0, "duration_ms": 1})
    }

    fn snapshot(label: &str, stage: &str) -> Value {
        json!({"type": "snapshot.taken", "task": "t", "ref_name": format!("refs/kkrun/r/t/{label}"),
               "commit": "c", "snapshot_stage": stage})
    }

    fn started() -> Value {
        json!({"type": "run.started", "schema_version": 1, "run_id": "r", "kkrun_version": "0",
               "tasks": ["t", "u"]})
    }

    fn task_finished(task: &str, outcome: &str) -> Value {
        json!({"type": "task.finished", "task": task, "outcome": outcome, "reason": "r",
               "usage": {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0},
               "cost_usd": null, "duration_ms": 5})
    }

    #[test]
    fn the_steps_end_at_the_last_completed_one_and_the_replay_after_its_turns() {
        let stream = events(&[
            started(),
            json!({"type": "task.started", "task": "t", "file": "t.yaml", "model": "m"}),
            snapshot("00-base", "base"),
            json!({"type": "checks.finished", "task": "t", "phase": "baseline", "passed": 0,
                   "failed": 0, "failed_names": []}),
            json!({"type": "stage.started", "task": "t", "stage": "blueprint", "round": 1}),
            turn("blueprint"),
            json!({"type": "provider.retry", "task": "t", "stage": "blueprint", "attempt": 1,
                   "wait_ms": 0, "reason": "503"}),
            turn("blueprint"),
            snapshot("01-blueprint", "blueprint"),
            json!({"type": "stage.finished", "task": "t", "stage": "blueprint", "end": "finished",
                   "turns": 2, "usage": {"input_tokens": 20, "cached_input_tokens": 0,
                   "output_tokens": 2}, "cost_usd": null, "duration_ms": 1, "result": {"goal": "g"}}),
            json!({"type": "plan.submitted", "task": "t", "stage": "blueprint", "plan": {"goal": "g"}}),
            json!({"type": "stage.started", "task": "t", "stage": "code", "round": 1}),
            turn("code"),
            snapshot("02-code", "code"),
            task_finished("u", "passed"),
        ]);
        let histories = tasks(&stream);
        assert_eq!(histories.len(), 2);
        let t = &histories[0];
        assert_eq!(t.finished, None);
        assert_eq!(t.steps.len(), 4, "{:?}", t.steps);
        assert_eq!(t.after(), "the plan");
        // The task's 10th event (plan.submitted) is the last one kept.
        assert_eq!(t.kept_events, 10);
        assert_eq!(t.replay_position, 3, "two turns and a retry");
        assert_eq!(
            t.last_snapshot().map(|s| s.ref_name.as_str()),
            Some("refs/kkrun/r/t/01-blueprint")
        );
        // Every turn was spent, the lost code turn too; the attempt ends
        // where the stream ends.
        let (usage, _, millis) = t.spent();
        assert_eq!(usage.input_tokens, 30);
        assert_eq!(millis, 130);
        assert_eq!(histories[1].finished, Some(TaskOutcome::Passed));
    }

    #[test]
    fn an_interrupted_task_resumes_and_a_second_resume_builds_on_the_first() {
        let stream = events(&[
            started(),
            json!({"type": "task.started", "task": "t", "file": "t.yaml", "model": "m"}),
            snapshot("00-base", "base"),
            task_finished("t", "interrupted"),
            json!({"type": "run.resumed", "attempt": 2, "tasks": ["t"]}),
            json!({"type": "task.resumed", "task": "t", "kept_events": 2, "from_snapshot":
                   "refs/kkrun/r/t/00-base", "after": "the base snapshot", "replay_position": 0,
                   "previous": {"started_at": "x", "duration_ms": 20, "usage": {"input_tokens": 5,
                   "cached_input_tokens": 0, "output_tokens": 0}, "cost_usd": null,
                   "ended": "interrupted"}}),
            json!({"type": "checks.finished", "task": "t", "phase": "baseline", "passed": 1,
                   "failed": 0, "failed_names": []}),
            turn("blueprint"),
        ]);
        let t = &tasks(&stream)[0];
        assert_eq!(t.finished, None, "interrupted tasks run again");
        // base snapshot, then the resumed attempt's baseline checks: the
        // task's events are task.started, 00-base, task.resumed, checks.
        assert_eq!(t.steps.len(), 2, "{:?}", t.steps);
        assert_eq!(t.kept_events, 4);
        assert_eq!(t.earlier_attempts.len(), 1);
        let (usage, _, _) = t.spent();
        assert_eq!(usage.input_tokens, 15);
    }
}

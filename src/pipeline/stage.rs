//! One stage: the request the agent gets, running it (interruptible), its
//! transcript, the snapshot after it, and how it ended.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::task_run::TaskRun;
use super::{Stop, finish};
use crate::agent::{self, StageEnd, StageRequest};
use crate::events::{ArtifactKind, EventKind, StageEndKind, TaskOutcome};
use crate::provider::{Message, Usage};
use crate::task::Stage;
use crate::tools::ToolSet;

/// One line of `transcript.jsonl`.
#[derive(Serialize)]
struct TranscriptEntry<'a> {
    stage: Stage,
    round: u32,
    #[serde(flatten)]
    message: &'a Message,
}

/// How a stage ended, for its event and for the pipeline.
struct Ending {
    end: StageEndKind,
    detail: Option<String>,
    /// The finishing tool's name and arguments.
    finished: Option<(String, Value)>,
    /// Set when the task cannot go on.
    stop: Option<Stop>,
}

impl Ending {
    /// Names the end of a stage the agent ran to one of its ends.
    fn of(stage: Stage, end: StageEnd, max_turns: u32) -> Ending {
        let (kind, outcome, reason) = match end {
            StageEnd::Finished { tool, arguments } => {
                let end = if tool == finish::RETURN_TO_CODE {
                    StageEndKind::ReturnToCode
                } else {
                    StageEndKind::Finished
                };
                return Ending {
                    end,
                    detail: None,
                    finished: Some((tool, arguments)),
                    stop: None,
                };
            }
            StageEnd::Stuck { reason } => {
                let why = format!("the agent got stuck in {stage}: {reason}");
                return Ending {
                    end: StageEndKind::Stuck,
                    detail: Some(reason),
                    finished: None,
                    stop: Some(Stop::new(TaskOutcome::Failed, why)),
                };
            }
            StageEnd::PolicyViolation { violations } => {
                let reason = violation_reason(&violations);
                return Ending {
                    end: StageEndKind::PolicyViolation,
                    detail: Some(reason.clone()),
                    finished: None,
                    stop: Some(Stop::new(TaskOutcome::Failed, reason)),
                };
            }
            StageEnd::MaxTurns => (
                StageEndKind::MaxTurns,
                TaskOutcome::BudgetExhausted,
                format!("the {stage} stage used all {max_turns} turns without finishing"),
            ),
            StageEnd::MaxTokens => (
                StageEndKind::MaxTokens,
                TaskOutcome::BudgetExhausted,
                format!("the token budget ran out during {stage}"),
            ),
            StageEnd::MaxCost => (
                StageEndKind::MaxCost,
                TaskOutcome::BudgetExhausted,
                format!("the cost budget ran out during {stage}"),
            ),
            StageEnd::Timeout => (
                StageEndKind::Timeout,
                TaskOutcome::TimedOut,
                format!("the time limit ran out during {stage}"),
            ),
        };
        Ending {
            end: kind,
            detail: Some(reason.clone()),
            finished: None,
            stop: Some(Stop::new(outcome, reason)),
        }
    }

    /// A stage that did not reach any of the agent's ends.
    fn stopped(end: StageEndKind, detail: Option<String>, stop: Stop) -> Ending {
        Ending {
            end,
            detail,
            finished: None,
            stop: Some(stop),
        }
    }
}

impl TaskRun<'_, '_> {
    /// The request for `stage`: its tool set, turn limit and messages.
    pub(super) fn request(
        &self,
        stage: Stage,
        system: String,
        message: String,
        finish_tools: Vec<agent::FinishTool>,
    ) -> StageRequest {
        let tool_set = match stage {
            Stage::Blueprint | Stage::Preview => ToolSet::ReadOnly,
            Stage::Code => ToolSet::Code,
            Stage::Debug => ToolSet::Debug,
        };
        StageRequest {
            stage,
            // Empty without instruction files, so the prompts (and the
            // cassettes recorded with them) stay as they were.
            system_prompt: system + &self.instructions.text,
            messages: vec![Message::User { content: message }],
            tool_set,
            finish_tools,
            max_turns: self.task.stages.max_turns(stage),
            timeout: None,
            context_window: self.task.context_window,
            // The same prefix (system prompt, tools, task) recurs in every
            // turn of a stage and in every run of the task.
            cache_key: Some(format!("kkrun/{}/{}", self.task.base_name(), stage)),
        }
    }

    /// Runs one stage to its end, snapshots the tree and announces the
    /// stage's end. Returns the finishing tool's name and arguments.
    pub(super) async fn stage(
        &mut self,
        stage: Stage,
        round: u32,
        request: StageRequest,
    ) -> Result<(String, Value), Stop> {
        if let Some(recorded) = self.recorded_stage(stage, round)? {
            return Ok(recorded);
        }
        let sink = self.events.for_stage(stage);
        self.tools.findings = self
            .desk
            .as_ref()
            .map(|desk| desk.for_stage(stage, Some(super::hunt::tools_for(stage)), sink.clone()));
        let tools = self
            .tools
            .tools
            .specs(request.tool_set)
            .into_iter()
            .chain(request.finish_tools.iter().map(|f| f.spec.clone()))
            .chain(self.tools.extra_specs())
            .map(|spec| spec.name)
            .collect();
        sink.emit(EventKind::StageStarted { round, tools });
        let started = std::time::Instant::now();
        let usage_before = self.budget.usage();
        let cost_before = self.budget.cost_usd();
        let max_turns = request.max_turns;
        let result = {
            let interrupt = self.env.interrupt;
            let run = agent::run_stage(
                self.env.provider,
                &self.tools,
                request,
                &mut self.budget,
                &sink,
            );
            tokio::select! {
                result = run => Some(result),
                () = interrupt.wait() => None,
            }
        };
        // A completed stage reports its own sums; an interrupted one (its
        // future dropped) only left its turns in the task's budget.
        let (usage, cost) = match &result {
            Some(Ok(outcome)) => (outcome.usage, outcome.cost_usd),
            _ => (
                usage_delta(self.budget.usage(), usage_before),
                self.budget
                    .cost_usd()
                    .zip(cost_before)
                    .map(|(after, before)| after - before),
            ),
        };
        let (ending, turns, tool_calls) = match result {
            None => (
                Ending::stopped(
                    StageEndKind::Interrupted,
                    None,
                    Stop::new(
                        TaskOutcome::Interrupted,
                        format!("interrupted during {stage}"),
                    ),
                ),
                0,
                BTreeMap::new(),
            ),
            Some(Err(err)) => {
                let message = format!("{stage} stage: {}", crate::error::chain(&err));
                sink.emit(EventKind::Error {
                    message: message.clone(),
                });
                (
                    Ending::stopped(
                        StageEndKind::Error,
                        Some(err.to_string()),
                        Stop::new(TaskOutcome::Error, message),
                    ),
                    0,
                    BTreeMap::new(),
                )
            }
            Some(Ok(outcome)) => {
                self.append_transcript(stage, round, &outcome.messages);
                (
                    Ending::of(stage, outcome.end, max_turns),
                    outcome.turns,
                    outcome.tool_calls,
                )
            }
        };
        let ending = self.late_violations(&sink, ending);
        let label = if ending.end == StageEndKind::Interrupted {
            "interrupted"
        } else {
            stage.as_str()
        };
        // Taken while the stage is open: the report ties it to the stage.
        let snapshot = self.snapshot(label, ending.end.as_str(), usage, cost);
        sink.emit(EventKind::StageFinished {
            end: ending.end,
            turns,
            usage,
            cost_usd: cost,
            duration_ms: super::wrap_up::millis(started),
            round,
            detail: ending.detail,
            tool_calls,
            result: ending
                .finished
                .as_ref()
                .map(|(_, arguments)| arguments.clone()),
        });
        snapshot?;
        match (ending.stop, ending.finished) {
            (Some(stop), _) => Err(stop),
            (None, Some(finished)) => Ok(finished),
            (None, None) => Err(Stop::new(
                TaskOutcome::Error,
                format!("{stage} ended without a result"),
            )),
        }
    }

    /// A command cut short by a time limit or an interrupt is compared when
    /// its future is dropped, after the agent loop's last look: announce
    /// those violations, and fail the task unless it was interrupted.
    fn late_violations(&self, sink: &crate::events::EventSink, ending: Ending) -> Ending {
        let late = self.tools.take_violations();
        if late.is_empty() {
            return ending;
        }
        for violation in &late {
            sink.emit(EventKind::PolicyViolation {
                command: violation.command.clone(),
                changes: violation.changes.clone(),
                reverted: violation.reverted,
                revert_error: violation.revert_error.clone(),
                reason: violation.reason.clone(),
            });
        }
        if ending.end == StageEndKind::Interrupted {
            return ending;
        }
        let reason = violation_reason(&late);
        Ending::stopped(
            StageEndKind::PolicyViolation,
            Some(reason.clone()),
            Stop::new(TaskOutcome::Failed, reason),
        )
    }

    /// Announces a stage that does not run, and why.
    pub(super) fn skip_stage(&mut self, stage: Stage, round: u32, why: &str) -> Result<(), Stop> {
        let recorded = self.take_step(
            |step| {
                matches!(step, crate::resume::Step::Stage { stage: s, round: r, end, .. }
                    if *s == stage && *r == round && *end == StageEndKind::Skipped)
            },
            &format!("skipping {stage} (round {round})"),
        )?;
        if recorded.is_some() {
            return Ok(());
        }
        self.events.for_stage(stage).emit(EventKind::StageFinished {
            end: StageEndKind::Skipped,
            turns: 0,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            duration_ms: 0,
            round,
            detail: Some(why.to_string()),
            tool_calls: BTreeMap::new(),
            result: None,
        });
        Ok(())
    }

    /// Appends a stage's messages to `transcript.jsonl`; the file is
    /// announced once, with the first stage that writes to it.
    fn append_transcript(&mut self, stage: Stage, round: u32, messages: &[Message]) {
        let sink = self.events.for_stage(stage);
        for message in messages {
            let entry = TranscriptEntry {
                stage,
                round,
                message,
            };
            if let Err(e) = self.env.run_dir.append_transcript(&self.task.name, &entry) {
                sink.emit(EventKind::Warning {
                    message: e.to_string(),
                });
            }
        }
        if !self.transcript_announced {
            self.transcript_announced = true;
            self.events.emit(EventKind::ArtifactWritten {
                artifact: ArtifactKind::Transcript,
                path: format!("{}/transcript.jsonl", self.task.name),
            });
        }
    }
}

/// The task's reason when agent commands changed the git state.
fn violation_reason(violations: &[crate::guard::PolicyViolation]) -> String {
    let reasons: Vec<&str> = violations.iter().map(|v| v.reason.as_str()).collect();
    format!(
        "an agent command changed the repository's git state: {}",
        reasons.join("; ")
    )
}

fn usage_delta(after: Usage, before: Usage) -> Usage {
    Usage {
        input_tokens: after.input_tokens.saturating_sub(before.input_tokens),
        cached_input_tokens: after
            .cached_input_tokens
            .saturating_sub(before.cached_input_tokens),
        output_tokens: after.output_tokens.saturating_sub(before.output_tokens),
        estimated: after.estimated,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    }
}

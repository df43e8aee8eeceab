//! The one event stream of a run. Every part of kkrun reports what happens
//! as typed [`Event`]s through an [`EventSink`]; the run directory's
//! `events.jsonl`, `--json` on stdout and the human console all read it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::provider::Usage;
use crate::task::Stage;

/// Version of the event wire format, written in the `run.started` event.
pub const EVENTS_SCHEMA_VERSION: u32 = 1;

/// One thing that happened, with when and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, RFC 3339 in UTC.
    pub ts: String,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// The task this event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The stage this event belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Outcome of one tool call, as events and transcripts report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolOutcome {
    /// The tool ran and succeeded.
    Ok,
    /// The tool ran and reported an error back to the model.
    Error,
    /// The call was refused before running (policy, confinement, unknown tool).
    Refused,
}

/// Everything kkrun reports, tagged by `type` with dotted names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EventKind {
    /// The run began. Always the first event; carries the wire-format version.
    #[serde(rename = "run.started")]
    RunStarted {
        /// Version of this event format ([`EVENTS_SCHEMA_VERSION`]).
        schema_version: u32,
        /// The run's id.
        run_id: String,
        /// kkrun's version.
        kkrun_version: String,
        /// Names of the tasks, in the order they will run.
        tasks: Vec<String>,
    },
    /// A task began.
    #[serde(rename = "task.started")]
    TaskStarted {
        /// The task file.
        file: String,
        /// The `provider:model` the task runs with.
        model: String,
    },
    /// A stage began.
    #[serde(rename = "stage.started")]
    StageStarted {
        /// Debug round (1-based) for code and debug stages entered from a loop-back; 1 otherwise.
        round: u32,
    },
    /// A stage ended.
    #[serde(rename = "stage.finished")]
    StageFinished {
        /// How it ended: `finished`, `return_to_code`, `skipped`, `max_turns`,
        /// `max_tokens`, `max_cost`, `timeout`, `stuck`, `error`, `interrupted`.
        end: String,
        /// Model turns taken.
        turns: u32,
        /// Tokens used by the stage.
        usage: Usage,
        /// Cost of the stage in USD, when known.
        cost_usd: Option<f64>,
        /// How long the stage took.
        duration_ms: u64,
    },
    /// kkrun ran the task's checks itself.
    #[serde(rename = "checks.finished")]
    ChecksFinished {
        /// `baseline` (untouched base), `debug` (start of a debug round) or `final`.
        phase: String,
        /// Checks that passed (flaky ones included).
        passed: usize,
        /// Checks that failed.
        failed: usize,
        /// Names of the failed checks.
        failed_names: Vec<String>,
    },
    /// A ghost snapshot was written.
    #[serde(rename = "snapshot.taken")]
    SnapshotTaken {
        /// The ref, `refs/kkrun/<run>/<task>/<NN>-<stage>`.
        ref_name: String,
        /// The commit id.
        commit: String,
    },
    /// A task ended.
    #[serde(rename = "task.finished")]
    TaskFinished {
        /// The outcome: `passed`, `failed`, `budget_exhausted`, `timed_out`, `error`, `interrupted`.
        outcome: String,
        /// Why, in one line.
        reason: String,
        /// Tokens used by the task.
        usage: Usage,
        /// Cost of the task in USD, when known.
        cost_usd: Option<f64>,
        /// How long the task took.
        duration_ms: u64,
    },
    /// The run ended; always the last event.
    #[serde(rename = "run.finished")]
    RunFinished {
        /// The exit code kkrun returns.
        exit_code: i32,
        /// Tasks that passed.
        passed: usize,
        /// Tasks that did not pass.
        not_passed: usize,
    },
    /// An error that ended a task or the run.
    #[serde(rename = "error")]
    Error {
        /// The error, with its causes.
        message: String,
    },
    /// A model turn completed.
    #[serde(rename = "model.turn")]
    ModelTurn {
        /// 1-based turn number within the stage.
        turn: u32,
        /// Tokens this turn used.
        usage: Usage,
        /// Cost of this turn in USD, when the price is known.
        cost_usd: Option<f64>,
        /// Number of tool calls the model made.
        tool_calls: usize,
        /// Characters of text in the reply.
        text_chars: usize,
        /// How long the turn took.
        duration_ms: u64,
    },
    /// A tool call was handled.
    #[serde(rename = "tool.call")]
    ToolCall {
        /// The provider's call id.
        call_id: String,
        /// The tool's name.
        tool: String,
        /// The arguments (truncated when long).
        arguments: String,
        /// How the call ended.
        outcome: ToolOutcome,
        /// The output given back to the model (truncated when long).
        output: String,
        /// How long the call took.
        duration_ms: u64,
    },
    /// The agent loop warned the model about repeating itself.
    #[serde(rename = "loop.warning")]
    LoopWarning {
        /// The repeated tool.
        tool: String,
        /// How many identical calls in a row.
        repeats: u32,
    },
    /// The agent loop ended the stage because the model went in circles.
    #[serde(rename = "loop.stuck")]
    LoopStuck {
        /// What the model did.
        reason: String,
    },
    /// The conversation was shortened to fit the context window.
    #[serde(rename = "context.compacted")]
    ContextCompacted {
        /// Estimated tokens before.
        before_tokens: u64,
        /// Estimated tokens after.
        after_tokens: u64,
        /// Tool outputs elided.
        elided_outputs: usize,
        /// Messages folded into the summary.
        summarized_messages: usize,
    },
    /// A budget decision that ended (or will end) the stage.
    #[serde(rename = "budget.exhausted")]
    BudgetExhausted {
        /// Which budget: `max_turns`, `max_tokens`, `max_cost` or `timeout`.
        budget: String,
        /// What was used.
        used: f64,
        /// The limit.
        limit: f64,
    },
    /// A provider request is retried.
    #[serde(rename = "provider.retry")]
    ProviderRetry {
        /// The attempt that failed (1-based).
        attempt: u32,
        /// Wait before the next attempt.
        wait_ms: u64,
        /// Why it failed.
        reason: String,
    },
    /// A bug hunt's agent reported a finding (checked against the workspace,
    /// not yet reproduced).
    #[serde(rename = "finding.reported")]
    FindingReported {
        /// The finding as recorded.
        finding: Box<crate::findings::Finding>,
    },
    /// The preview stage withdrew a finding as false.
    #[serde(rename = "finding.withdrawn")]
    FindingWithdrawn {
        /// The finding's id (`F1`).
        id: String,
        /// Why.
        reason: String,
    },
    /// kkrun ran a finding's reproducer on the untouched base.
    #[serde(rename = "finding.reproduced")]
    FindingReproduced {
        /// The finding's id.
        id: String,
        /// `confirmed` or `unconfirmed`.
        status: crate::findings::FindingStatus,
        /// How the reproducer ended.
        reproduction: crate::findings::Reproduction,
    },
    /// A non-fatal problem worth a line in the log.
    #[serde(rename = "warning")]
    Warning {
        /// What happened and what to do.
        message: String,
    },
}

type Listener = Box<dyn FnMut(&Event) + Send>;

struct SinkShared {
    start: Instant,
    listeners: Mutex<Vec<Listener>>,
}

/// A cheap, cloneable handle that stamps and delivers events to every
/// listener. Scoped copies ([`EventSink::for_task`], [`EventSink::for_stage`])
/// fill in the task and stage.
#[derive(Clone)]
pub struct EventSink {
    shared: Arc<SinkShared>,
    task: Option<String>,
    stage: Option<Stage>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("task", &self.task)
            .field("stage", &self.stage)
            .finish()
    }
}

impl Default for EventSink {
    fn default() -> Self {
        EventSink::new()
    }
}

impl EventSink {
    /// A sink with no listeners; the run's start time is now.
    pub fn new() -> EventSink {
        EventSink {
            shared: Arc::new(SinkShared {
                start: Instant::now(),
                listeners: Mutex::new(Vec::new()),
            }),
            task: None,
            stage: None,
        }
    }

    /// Adds a listener that receives every event emitted from now on,
    /// through this sink or any copy of it.
    pub fn subscribe(&self, listener: impl FnMut(&Event) + Send + 'static) {
        let mut listeners = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        listeners.push(Box::new(listener));
    }

    /// A copy whose events carry `task`.
    pub fn for_task(&self, task: &str) -> EventSink {
        EventSink {
            shared: self.shared.clone(),
            task: Some(task.to_string()),
            stage: None,
        }
    }

    /// A copy whose events carry `stage` (and this sink's task).
    pub fn for_stage(&self, stage: Stage) -> EventSink {
        EventSink {
            shared: self.shared.clone(),
            task: self.task.clone(),
            stage: Some(stage),
        }
    }

    /// Milliseconds since the sink was created.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.shared.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Stamps `kind` and delivers it to every listener, in order.
    pub fn emit(&self, kind: EventKind) {
        let event = Event {
            ts: jiff::Timestamp::now().to_string(),
            elapsed_ms: self.elapsed_ms(),
            task: self.task.clone(),
            stage: self.stage,
            kind,
        };
        let mut listeners = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for listener in listeners.iter_mut() {
            listener(&event);
        }
    }
}

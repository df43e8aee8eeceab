//! The one aggregator: it reads a run's event stream and builds the
//! [`Report`] that `report.json`, `junit.xml`, `summary.md` and the GitHub
//! Actions output are rendered from.
//!
//! The same code serves a live run ([`attach`], subscribed to the sink like
//! the console and `events.jsonl`, writing everything at `run.finished`) and
//! `kkrun report rebuild` ([`rebuild`], reading `events.jsonl`), and `kkrun
//! report merge` ([`merge`], joining the streams of a CI matrix's shards
//! into one). The pipeline
//! and the runner never build report data themselves; a fact the report
//! needs is a field of an event. See the checklist in [`crate::events`] for
//! adding one.

mod live;
mod merge;
mod rebuild;
mod task;

pub use live::{LiveReports, Outputs, attach, attach_continuing};
pub use merge::{MISSING_REASON, Merged, merge};
pub use rebuild::{Rebuilt, Stream, read_events, rebuild};
pub use task::KILLED;

use super::model::{REPORT_SCHEMA_VERSION, Report, TaskReport, Totals};
use crate::events::{Event, EventKind, MergeRecord, PartitionRecord};
use crate::exit_codes;
use task::TaskState;

/// The reason given to a task whose stream ends without its `task.finished`.
pub const UNFINISHED_REASON: &str = "the run ended without its final record";

/// What [`Report::rebuilt`] says of a report made from a stream without
/// `run.finished`.
pub const REBUILT_NOTE: &str = "rebuilt by `kkrun report rebuild` from an events.jsonl that ends \
     without run.finished: the run was killed before it wrote its final record; tasks without a \
     task.finished event are reported as interrupted";

/// Builds a [`Report`] from events, in the order they were emitted.
#[derive(Debug, Default)]
pub struct Aggregator {
    run_id: String,
    kkrun_version: String,
    started_at: String,
    command_line: Vec<String>,
    partition: Option<PartitionRecord>,
    merged: Option<MergeRecord>,
    tasks: Vec<TaskState>,
    finished: Option<RunEnd>,
    /// Time and elapsed milliseconds of the last event seen.
    last: Option<(String, u64)>,
    events: usize,
}

#[derive(Debug)]
struct RunEnd {
    at: String,
    elapsed_ms: u64,
    exit_code: i32,
}

impl Aggregator {
    /// An aggregator that has seen nothing.
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// Events seen so far.
    pub fn events_seen(&self) -> usize {
        self.events
    }

    /// Whether the stream so far ends with `run.finished`.
    pub fn is_finished(&self) -> bool {
        self.finished.is_some()
    }

    /// Takes in one event.
    pub fn on_event(&mut self, event: &Event) {
        self.events += 1;
        self.last = Some((event.ts.clone(), event.elapsed_ms));
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                kkrun_version,
                tasks,
                command_line,
                partition,
                merged,
                ..
            } => {
                self.run_id = run_id.clone();
                self.partition = partition.clone();
                self.merged = merged.clone();
                self.kkrun_version = kkrun_version.clone();
                self.started_at = event.ts.clone();
                self.command_line = command_line.clone();
                for name in tasks {
                    self.task(name);
                }
            }
            // The run goes on: a `run.finished` before it was not the end.
            EventKind::RunResumed { .. } => self.finished = None,
            EventKind::RunFinished { exit_code, .. } => {
                self.finished = Some(RunEnd {
                    at: event.ts.clone(),
                    elapsed_ms: event.elapsed_ms,
                    exit_code: *exit_code,
                });
            }
            _ => {
                if let Some(name) = event.task.as_deref() {
                    self.task(name).on_event(event);
                }
            }
        }
    }

    fn task(&mut self, name: &str) -> &mut TaskState {
        let index = match self.tasks.iter().position(|t| t.name() == name) {
            Some(index) => index,
            None => {
                self.tasks.push(TaskState::new(name));
                self.tasks.len() - 1
            }
        };
        &mut self.tasks[index]
    }

    /// Names of the tasks seen so far, in run order, and whether each has
    /// its `task.finished`.
    pub fn task_states(&self) -> Vec<(String, bool)> {
        self.tasks
            .iter()
            .map(|task| (task.name().to_string(), task.is_finished()))
            .collect()
    }

    /// The report of the events seen so far. A stream without
    /// `run.finished` gives a report marked [`Report::rebuilt`] in which
    /// every unfinished task is `interrupted`.
    pub fn report(&self) -> Report {
        let (last_at, last_elapsed) = self.last.clone().unwrap_or_default();
        let tasks: Vec<TaskReport> = self
            .tasks
            .iter()
            .map(|task| task.report(last_elapsed))
            .collect();
        let (finished_at, duration_ms, exit_code, rebuilt) = match &self.finished {
            Some(end) => (end.at.clone(), end.elapsed_ms, end.exit_code, None),
            None => (
                last_at,
                last_elapsed,
                exit_codes::combine(tasks.iter().map(|t| t.outcome.exit_code())),
                Some(REBUILT_NOTE.to_string()),
            ),
        };
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            kkrun_version: self.kkrun_version.clone(),
            run_id: self.run_id.clone(),
            started_at: self.started_at.clone(),
            finished_at,
            duration_ms,
            command_line: self.command_line.clone(),
            exit_code,
            totals: Totals::from_tasks(&tasks),
            tasks,
            partition: self.partition.clone(),
            merged: self.merged.clone(),
            rebuilt,
        }
    }
}

#[cfg(test)]
mod tests;

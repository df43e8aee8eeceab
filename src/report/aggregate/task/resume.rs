//! A resumed task: the reset a `task.resumed` makes, and the attempt under
//! way since then.

use super::{KILLED, TaskState};
use crate::events::{AttemptSummary, Event};
use crate::provider::Usage;
use crate::report::model::ResumedReport;

impl TaskState {
    /// Starts the task's state over from its first `kept` events: what the
    /// cut-short attempt did after them is forgotten but its time and
    /// usage, which `previous` carries.
    pub(super) fn resume(
        &mut self,
        event: &Event,
        kept: usize,
        from_snapshot: &Option<String>,
        after: &str,
        previous: &AttemptSummary,
    ) {
        let mut events = std::mem::take(&mut self.events);
        events.truncate(kept);
        let mut resumed = self.resumed.take().unwrap_or(ResumedReport {
            from_snapshot: None,
            after: String::new(),
            attempts: Vec::new(),
        });
        resumed.from_snapshot = from_snapshot.clone();
        resumed.after = after.to_string();
        resumed.attempts.push(previous.clone());
        let mut fresh = TaskState::new(&self.report.name);
        for kept_event in &events {
            fresh.apply(kept_event);
        }
        // The snapshots of what is forgotten stay listed: their refs exist.
        for snapshot in &self.report.snapshots {
            if !fresh.report.snapshots.contains(snapshot) {
                fresh.report.snapshots.push(snapshot.clone());
            }
        }
        fresh.events = events;
        fresh.events.push(event.clone());
        // The task's clock and usage go on from every earlier attempt.
        fresh.started_elapsed_ms = Some(
            event
                .elapsed_ms
                .saturating_sub(resumed.attempts.iter().map(|a| a.duration_ms).sum()),
        );
        fresh.turn_usage = resumed
            .attempts
            .iter()
            .fold(Usage::default(), |mut sum, a| {
                sum += a.usage;
                sum
            });
        fresh.turn_cost = resumed
            .attempts
            .iter()
            .try_fold(0.0, |sum, a| a.cost_usd.map(|c| sum + c));
        fresh.attempt_started = Some((event.ts.clone(), event.elapsed_ms));
        fresh.last_elapsed_ms = event.elapsed_ms;
        fresh.resumed = Some(resumed);
        if fresh.report.started_at.is_empty() {
            fresh.report.started_at = self.report.started_at.clone();
        }
        *self = fresh;
    }

    /// The attempt under way since the last `task.resumed`; a task
    /// without its `task.finished` ends where the stream ends.
    pub(super) fn current_attempt(
        &self,
        resumed: &ResumedReport,
        last_elapsed_ms: u64,
    ) -> AttemptSummary {
        let (started_at, started_ms) = self.attempt_started.clone().unwrap_or_default();
        let mut before = Usage::default();
        for attempt in &resumed.attempts {
            before += attempt.usage;
        }
        let cost_before = resumed
            .attempts
            .iter()
            .try_fold(0.0, |sum, a| a.cost_usd.map(|c| sum + c));
        let (end_ms, ended) = if self.finished {
            (
                self.last_elapsed_ms,
                self.report.outcome.as_str().to_string(),
            )
        } else {
            (last_elapsed_ms, KILLED.to_string())
        };
        AttemptSummary {
            started_at,
            duration_ms: end_ms.saturating_sub(started_ms),
            usage: self.turn_usage.since(before),
            cost_usd: self
                .turn_cost
                .zip(cost_before)
                .map(|(all, before)| (all - before).max(0.0)),
            ended,
        }
    }
}

//! The aggregator of a live run: subscribed to the sink, it writes the
//! reports and the GitHub output when `run.finished` arrives.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::Aggregator;
use crate::error::Error;
use crate::events::{Event, EventKind, EventSink};
use crate::report::github::GithubOutput;

/// Where a live run's aggregator writes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The run directory: `report.json`, `junit.xml`, `summary.md`.
    pub dir: PathBuf,
    /// The GitHub Actions output, when running there.
    pub github: Option<GithubOutput>,
}

/// A live run's aggregator. At `run.finished` it writes the reports and
/// the GitHub output; [`LiveReports::finish`] says how that went.
pub struct LiveReports {
    state: Arc<Mutex<LiveState>>,
}

struct LiveState {
    aggregator: Aggregator,
    outputs: Outputs,
    written: Option<Result<(), Error>>,
    warnings: Vec<String>,
}

/// Subscribes an aggregator to `sink`: every event from now on goes into
/// it, and `run.finished` writes the reports into `outputs`.
pub fn attach(sink: &EventSink, outputs: Outputs) -> LiveReports {
    attach_continuing(sink, outputs, &[])
}

/// Like [`attach`], for a resumed run: the aggregator first takes in
/// `previous`, the stream the run continues, so the reports cover the
/// whole run.
pub fn attach_continuing(sink: &EventSink, outputs: Outputs, previous: &[Event]) -> LiveReports {
    let mut aggregator = Aggregator::new();
    for event in previous {
        aggregator.on_event(event);
    }
    let state = Arc::new(Mutex::new(LiveState {
        aggregator,
        outputs,
        written: None,
        warnings: Vec::new(),
    }));
    let listener = state.clone();
    sink.subscribe(move |event: &Event| {
        let mut state = listener.lock().unwrap_or_else(|e| e.into_inner());
        state.aggregator.on_event(event);
        if matches!(event.kind, EventKind::RunFinished { .. }) {
            state.publish();
        }
    });
    LiveReports { state }
}

impl LiveState {
    fn publish(&mut self) {
        let report = self.aggregator.report();
        // What GitHub's limits made findings.sarif leave out is said where
        // the run's other last words go: after run.finished, no event can.
        self.written = Some(
            crate::report::write_all(&self.outputs.dir, &report).map(|dropped| {
                self.warnings
                    .extend(dropped.iter().map(ToString::to_string));
            }),
        );
        if let Some(output) = &self.outputs.github
            && let Err(warning) = output.publish(&report)
        {
            self.warnings.push(warning);
        }
    }
}

impl LiveReports {
    /// Whether the reports were written (an error when they could not be,
    /// or when the run never finished), and the warnings of publishing them.
    pub fn finish(self) -> (Result<(), Error>, Vec<String>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let written = state.written.take().unwrap_or_else(|| {
            Err(Error::io(
                "writing the reports",
                std::io::Error::other("the run ended without run.finished"),
            ))
        });
        (written, std::mem::take(&mut state.warnings))
    }
}

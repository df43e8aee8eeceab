//! `kkrun report rebuild`: the reports of a run directory from its
//! `events.jsonl` alone.

use std::path::Path;

use super::Aggregator;
use crate::error::Error;
use crate::events::Event;
use crate::report::Report;

/// What [`rebuild`] did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The report written.
    pub report: Report,
    /// Events read.
    pub events: usize,
    /// Whether the stream ended with `run.finished`.
    pub complete: bool,
    /// A torn last line (the process died while writing it) was skipped.
    pub torn_last_line: bool,
}

/// A run directory's event stream, as read from its `events.jsonl`.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The events, in order.
    pub events: Vec<Event>,
    /// A torn last line (the process died while writing it) was skipped.
    pub torn_last_line: bool,
}

/// Reads `run_dir/events.jsonl`. A missing file, a line that is not an
/// event and a stream without events are bad input (exit 2).
pub fn read_events(run_dir: &Path) -> Result<Stream, Error> {
    let path = run_dir.join("events.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::InvalidInput(format!(
                "{}: no such file (hint: give a run directory, such as .kkrun/runs/latest or an \
                 --out directory)",
                path.display()
            ))
        } else {
            Error::io(format!("reading {}", path.display()), e)
        }
    })?;
    let mut events = Vec::new();
    let mut torn_last_line = false;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            // Events are flushed one line at a time: a last line without
            // its newline is a write the killed process did not finish.
            Err(_) if index + 1 == lines.len() && !line.ends_with('\n') => torn_last_line = true,
            Err(e) => {
                return Err(Error::InvalidInput(format!(
                    "{}:{}: not a kkrun event: {e} (hint: the file must be the events.jsonl a run \
                     wrote, unedited)",
                    path.display(),
                    index + 1
                )));
            }
        }
    }
    if events.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no events to read (hint: the run stopped before it started; run it again)",
            path.display()
        )));
    }
    Ok(Stream {
        events,
        torn_last_line,
    })
}

/// Rebuilds `report.json`, `junit.xml` and `summary.md` in `run_dir` from
/// its `events.jsonl` alone.
pub fn rebuild(run_dir: &Path) -> Result<Rebuilt, Error> {
    let stream = read_events(run_dir)?;
    let mut aggregator = Aggregator::new();
    for event in &stream.events {
        aggregator.on_event(event);
    }
    let report = aggregator.report();
    crate::report::write_all(run_dir, &report)?;
    Ok(Rebuilt {
        report,
        events: aggregator.events_seen(),
        complete: aggregator.is_finished(),
        torn_last_line: stream.torn_last_line,
    })
}

//! `kkrun resume`: continuing a run that was cut short, from its event
//! stream alone.
//!
//! [`history`] reads what each task completed from `events.jsonl`; the
//! pipeline hands those steps back instead of doing them again
//! (`pipeline/resume.rs`), and the runner appends the new attempt's events
//! to the same stream.

pub mod history;

pub use history::{Step, StepSnapshot, TaskHistory, tasks};

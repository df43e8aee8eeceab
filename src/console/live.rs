//! The live display on a terminal: one line per running task and a totals
//! line under them (indicatif's `MultiProgress`). Lines printed while it is
//! shown go above the live lines, whole.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The live lines of a run.
pub(super) struct Live {
    multi: MultiProgress,
    totals: ProgressBar,
    /// The line of each running task.
    tasks: BTreeMap<String, ProgressBar>,
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

impl Live {
    /// Starts the display with an empty totals line.
    pub(super) fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let totals = multi.add(spinner());
        totals.enable_steady_tick(Duration::from_millis(120));
        Live {
            multi,
            totals,
            tasks: BTreeMap::new(),
        }
    }

    /// Prints `text` above the live lines.
    pub(super) fn println(&self, text: &str) {
        if self.multi.println(text).is_err() {
            eprintln!("{text}");
        }
    }

    /// Shows `message` on the line of `task`, adding the line (above the
    /// totals) when the task has none yet.
    pub(super) fn set_task(&mut self, task: &str, message: String) {
        let bar = self.tasks.entry(task.to_string()).or_insert_with(|| {
            let bar = self.multi.insert_before(&self.totals, spinner());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(message);
    }

    /// Removes the line of a task that finished.
    pub(super) fn remove_task(&mut self, task: &str) {
        if let Some(bar) = self.tasks.remove(task) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Shows `message` on the totals line.
    pub(super) fn set_totals(&self, message: String) {
        self.totals.set_message(message);
    }

    /// Clears every live line.
    pub(super) fn finish(&mut self) {
        for (_, bar) in std::mem::take(&mut self.tasks) {
            bar.finish_and_clear();
        }
        self.totals.finish_and_clear();
        let _ = self.multi.clear();
    }
}

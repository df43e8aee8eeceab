//! Task files: parsing, validation with precise positions, and the resolved
//! [`Task`] the runner consumes.

mod resolved;

pub use resolved::{Budget, Check, OnFailure, ShellPolicy, Stage, StageSettings, Task, TaskKind};

/// Every error found in the task files of one run, rendered for humans.
#[derive(Debug)]
pub struct TaskFileErrors {
    rendered: String,
}

impl std::fmt::Display for TaskFileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rendered)
    }
}

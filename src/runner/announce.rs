//! What a run says of itself: `run.started` and the planned tasks, the
//! records the runner writes for tasks the pipeline did not finish, and
//! the command line and paths as reports show them.

use std::path::Path;

use crate::events::{
    CheckSpec, EVENTS_SCHEMA_VERSION, EventKind, EventSink, PartitionRecord, TaskOutcome,
};
use crate::task::Task;

use super::RunOptions;
use super::providers::TaskProvider;

/// `run.started` and a `task.planned` per task: what a new run will do.
pub(super) fn announce(
    events: &EventSink,
    tasks: &[Task],
    providers: &[TaskProvider],
    run_id: &str,
    partition: Option<PartitionRecord>,
    options: &RunOptions,
    cwd: &Path,
) {
    events.emit(EventKind::RunStarted {
        schema_version: EVENTS_SCHEMA_VERSION,
        run_id: run_id.to_string(),
        kkrun_version: env!("CARGO_PKG_VERSION").to_string(),
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        command_line: redact_command_line(&options.command_line),
        partition,
        merged: None,
        baseline_findings: options
            .baseline_findings
            .as_ref()
            .map(|baseline| baseline.fingerprints().map(str::to_owned).collect()),
    });
    for (task, (spec, _)) in tasks.iter().zip(providers.iter().flatten()) {
        events.for_task(&task.name).emit(EventKind::TaskPlanned {
            file: display_path(&task.file, cwd),
            line: task.line,
            description: task.description.clone(),
            kind: task.kind.as_str().to_string(),
            workspace: task.workspace.display().to_string(),
            model: spec.clone(),
            checks: task
                .checks
                .iter()
                .map(|c| CheckSpec {
                    name: c.name.clone(),
                    run: c.run.clone(),
                    line: c.line,
                })
                .collect(),
            matrix: task.matrix.clone(),
        });
    }
}

/// The `task.finished` of a task the pipeline did not finish itself.
pub(super) fn finished_by_runner(outcome: TaskOutcome, reason: String) -> EventKind {
    EventKind::TaskFinished {
        outcome,
        reason,
        usage: Default::default(),
        cost_usd: None,
        duration_ms: 0,
        output: None,
    }
}

/// `path` relative to `cwd` when it is inside it, for readable reports.
pub(super) fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// Replaces anything that looks like a credential in the command line.
pub(super) fn redact_command_line(args: &[String]) -> Vec<String> {
    let secret =
        regex::Regex::new(r"(?i)((?:key|token|secret|password)[^=]*=)\S+|sk-[A-Za-z0-9_-]{8,}")
            .expect("the redaction pattern is a valid constant regex");
    args.iter()
        .map(|arg| {
            secret
                .replace_all(arg, |caps: &regex::Captures<'_>| match caps.get(1) {
                    Some(name) => format!("{}[REDACTED]", name.as_str()),
                    None => "[REDACTED]".to_string(),
                })
                .into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_redacted() {
        let args: Vec<String> = [
            "kkrun",
            "--model",
            "openai:gpt-4.1",
            "OPENAI_API_KEY=abc123",
            "sk-proj-abcdefghijkl",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            redact_command_line(&args),
            [
                "kkrun",
                "--model",
                "openai:gpt-4.1",
                "OPENAI_API_KEY=[REDACTED]",
                "[REDACTED]"
            ]
        );
    }
}

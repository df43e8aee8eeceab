//! `setup:`: the task's own commands that prepare its workspace (`npm ci`,
//! `uv sync`), run before the base snapshot, so what they write is part of
//! the state the task starts from rather than of its change, and before
//! the baseline checks, which need it. A command that fails ends the task
//! as `error`: the run could not even start the work.

use super::Stop;
use super::task_run::TaskRun;
use crate::events::{EventKind, TaskOutcome};
use crate::tools::setup::{SetupRun, run_setup_command};

/// Lines of a failed command's output that go into the task's reason (the
/// whole tail is in the report and the event stream).
const REASON_TAIL_LINES: usize = 20;

impl TaskRun<'_, '_> {
    /// Runs every `setup:` command in order (interruptible), each announced
    /// by `setup.finished`; stops at the first that fails.
    pub(super) async fn setup(&mut self) -> Result<(), Stop> {
        let total = self.task.setup.len();
        for (index, command) in self.task.setup.iter().enumerate() {
            let run = {
                let run = run_setup_command(
                    command,
                    &self.task.workspace,
                    &self.task.env,
                    &self.tools.sandbox,
                );
                tokio::select! {
                    run = run => Some(run),
                    () = self.env.interrupt.wait() => None,
                }
            };
            let Some(run) = run else {
                return Err(Stop::new(
                    TaskOutcome::Interrupted,
                    format!(
                        "interrupted while running setup command {} of {total} `{}`",
                        index + 1,
                        command.run.trim()
                    ),
                ));
            };
            self.events.emit(EventKind::SetupFinished {
                index,
                total,
                run: run.clone(),
            });
            if !run.passed {
                return Err(Stop::new(
                    TaskOutcome::Error,
                    failure_reason(index, total, &run, command.timeout),
                ));
            }
        }
        Ok(())
    }
}

/// The reason of a task whose setup command failed: which command, how it
/// ended, and the end of its output.
fn failure_reason(
    index: usize,
    total: usize,
    run: &SetupRun,
    timeout: std::time::Duration,
) -> String {
    let lines: Vec<&str> = run.output_tail.trim_end().lines().collect();
    let tail = lines[lines.len().saturating_sub(REASON_TAIL_LINES)..].join("\n");
    let mut reason = format!(
        "setup command {} of {total} `{}` failed ({}) (hint: fix the command or what it needs; \
         setup commands run in the workspace before the baseline checks)",
        index + 1,
        run.command.trim(),
        run.status(timeout)
    );
    if !tail.is_empty() {
        reason.push_str("; the end of its output:\n");
        reason.push_str(&tail);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_the_command_its_status_and_its_last_lines() {
        let output: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        let run = SetupRun {
            command: "npm ci".into(),
            passed: false,
            exit_code: Some(3),
            timed_out: false,
            duration_ms: 5,
            output_tail: output,
        };
        let reason = failure_reason(1, 2, &run, std::time::Duration::from_secs(600));
        assert!(
            reason.starts_with("setup command 2 of 2 `npm ci` failed (exit code 3)"),
            "{reason}"
        );
        assert!(reason.ends_with("line 11\nline 12\nline 13\nline 14\nline 15\nline 16\nline 17\nline 18\nline 19\nline 20\nline 21\nline 22\nline 23\nline 24\nline 25\nline 26\nline 27\nline 28\nline 29\nline 30"), "{reason}");
        assert!(!reason.contains("line 10\n"), "{reason}");
        let timed_out = SetupRun {
            timed_out: true,
            exit_code: None,
            output_tail: String::new(),
            ..run
        };
        let reason = failure_reason(0, 1, &timed_out, std::time::Duration::from_secs(90));
        assert!(reason.contains("(timed out after 1m30s)"), "{reason}");
    }
}

//! GitHub Actions integration: workflow-command annotations and groups, and
//! the step summary. Active when `GITHUB_ACTIONS=true`.

use std::io::Write as _;
use std::path::Path;

use super::model::{Report, TaskOutcome};
use super::text::strip_ansi;

/// Whether kkrun runs inside GitHub Actions.
pub fn is_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// The GitHub Actions output of a run: annotations and the step summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GithubOutput {
    /// Workflow commands go to stderr because stdout carries `--json`.
    pub commands_to_stderr: bool,
}

impl GithubOutput {
    /// Appends `summary.md` to `$GITHUB_STEP_SUMMARY` and prints the
    /// `::error` annotations. A step summary that cannot be written is a
    /// warning, returned: the run's own record is already complete.
    pub fn publish(&self, report: &Report) -> Result<(), String> {
        let summary = append_step_summary(&super::markdown::render(report))
            .map_err(|e| format!("cannot write $GITHUB_STEP_SUMMARY: {e}"));
        for line in annotations(report) {
            if self.commands_to_stderr {
                eprintln!("{line}");
            } else {
                let mut out = std::io::stdout().lock();
                // A closed stdout must not lose the rest of the record.
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
        }
        summary
    }
}

/// Escapes the message part of a workflow command.
pub(crate) fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (`file=`, `title=`) of a workflow command.
pub(crate) fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::title`, opening a collapsible section of the log.
pub fn group_start(title: &str) -> String {
    format!("::group::{}", escape_data(title))
}

/// `::endgroup::`, closing the section opened by [`group_start`].
pub fn group_end() -> &'static str {
    "::endgroup::"
}

/// `::error` annotations: one per failed check (at the task's position in its
/// task file) and one per task that did not pass; then a bug hunt's findings
/// at their own file and line ([`super::findings::annotations`]).
pub fn annotations(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for task in &report.tasks {
        if task.outcome == TaskOutcome::Passed {
            continue;
        }
        let location = format!("file={},line={}", escape_property(&task.file), task.line);
        for check in &task.checks {
            let Some(run) = check.final_run.as_ref().filter(|run| !run.passed) else {
                continue;
            };
            let tail: Vec<&str> = run.output_tail.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            lines.push(format!(
                "::error {location},title={}::{}",
                escape_property(&format!(
                    "kkrun {}: check {} failed ({})",
                    task.name,
                    check.name,
                    check.status.as_str()
                )),
                escape_data(&strip_ansi(&tail.join("\n")))
            ));
        }
        lines.push(format!(
            "::error {location},title={}::{}",
            escape_property(&format!("kkrun {}: {}", task.name, task.outcome.as_str())),
            escape_data(&task.reason)
        ));
    }
    lines.extend(super::findings::annotations(&report.tasks));
    lines
}

/// Appends `summary` to the file named by `GITHUB_STEP_SUMMARY`, if set.
pub fn append_step_summary(summary: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&path))?;
    file.write_all(summary.as_bytes())?;
    file.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(escape_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
        assert_eq!(group_start("task x\n"), "::group::task x%0A");
    }
}

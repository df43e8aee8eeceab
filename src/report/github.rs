//! GitHub Actions integration: workflow-command annotations and groups, and
//! the step summary. Active when `GITHUB_ACTIONS=true`.

use std::io::Write as _;
use std::path::Path;

use super::model::{CheckStatus, Report, TaskOutcome};
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

/// GitHub shows at most this many error annotations, and as many warnings,
/// per step, and drops the rest without a word.
pub const MAX_ANNOTATIONS_PER_LEVEL: usize = 10;

/// How loud an annotation is; GitHub caps each level separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Level {
    Error,
    Warning,
    Notice,
}

/// One annotation before it is written, with its importance (lower first).
pub(super) struct Annotation {
    pub(super) level: Level,
    pub(super) rank: u8,
    /// The path as the annotation names it (see [`annotation_path`]).
    pub(super) path: String,
    pub(super) line: u64,
    pub(super) end_line: Option<u64>,
    pub(super) title: String,
    pub(super) message: String,
}

/// Ranks of error annotations: what broke first, then the tasks, then a bug
/// hunt's findings, then what was already failing.
pub(super) mod rank {
    /// A check that passed at the base and fails now.
    pub const NEWLY_BROKEN: u8 = 0;
    /// A task that did not pass.
    pub const TASK: u8 = 1;
    /// A bug hunt's finding (ordered among themselves by severity).
    pub const FINDING: u8 = 2;
    /// A check that failed at the base too.
    pub const STILL_FAILING: u8 = 3;
}

impl Annotation {
    fn command(&self) -> String {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        };
        let end_line = self
            .end_line
            .map(|end| format!(",endLine={end}"))
            .unwrap_or_default();
        format!(
            "::{level} file={},line={}{end_line},title={}::{}",
            escape_property(&self.path),
            self.line.max(1),
            escape_property(&self.title),
            escape_data(&self.message)
        )
    }
}

/// The workflow-command annotations of a run, most important first, at most
/// [`MAX_ANNOTATIONS_PER_LEVEL`] per level (error, warning, notice), then one
/// `::notice` counting the ones left out (they are all in the step summary).
///
/// Errors: a failed check (newly broken first, still failing last) at the
/// line of the check's `name:` in its task file, every task that did not
/// pass at its own `name:` line, and a bug hunt's critical and high findings
/// at their own file and lines. Warnings: a check that passed only on a
/// retry, and medium findings. Notices: low and note findings. Findings
/// share the one cap with everything else, since GitHub counts them all.
pub fn annotations(report: &Report) -> Vec<String> {
    let mut all = Vec::new();
    for task in &report.tasks {
        let task_path = annotation_path(&task.file);
        for check in &task.checks {
            let Some(run) = check.final_run.as_ref() else {
                continue;
            };
            let line = if check.line > 0 {
                check.line
            } else {
                task.line
            };
            if run.passed {
                if run.flaky {
                    all.push(Annotation {
                        level: Level::Warning,
                        rank: 0,
                        path: task_path.clone(),
                        line,
                        end_line: None,
                        title: format!("kkrun {}: check {} is flaky", task.name, check.name),
                        message: format!(
                            "`{}` failed {} time(s), then passed on attempt {}",
                            check.run,
                            run.attempts.saturating_sub(1),
                            run.attempts
                        ),
                    });
                }
                continue;
            }
            let tail: Vec<&str> = run.output_tail.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let status = check.status.as_str().replace('_', " ");
            all.push(Annotation {
                level: Level::Error,
                rank: if check.status == CheckStatus::NewlyBroken {
                    rank::NEWLY_BROKEN
                } else {
                    rank::STILL_FAILING
                },
                path: task_path.clone(),
                line,
                end_line: None,
                title: format!("kkrun {}: check {} {status}", task.name, check.name),
                message: format!(
                    "{status}: `{}` failed\n{}",
                    check.run,
                    strip_ansi(&tail.join("\n"))
                ),
            });
        }
        if task.outcome != TaskOutcome::Passed {
            all.push(Annotation {
                level: Level::Error,
                rank: rank::TASK,
                path: task_path.clone(),
                line: task.line,
                end_line: None,
                title: format!("kkrun {}: {}", task.name, task.outcome.as_str()),
                message: task.reason.clone(),
            });
        }
    }
    all.extend(super::findings::annotations(&report.tasks));
    capped(all)
}

/// The commands of `all`, most important first, [`MAX_ANNOTATIONS_PER_LEVEL`]
/// per level, then the notice counting what was left out (itself a notice,
/// so it takes one of the notices' places).
fn capped(mut all: Vec<Annotation>) -> Vec<String> {
    // Stable: equally important annotations keep the run's order.
    all.sort_by_key(|a| (a.level, a.rank));
    let count = |level| all.iter().filter(|a| a.level == level).count();
    let over = |level, cap: usize| count(level).saturating_sub(cap);
    let mut notice_cap = MAX_ANNOTATIONS_PER_LEVEL;
    if over(Level::Error, MAX_ANNOTATIONS_PER_LEVEL)
        + over(Level::Warning, MAX_ANNOTATIONS_PER_LEVEL)
        > 0
        || over(Level::Notice, MAX_ANNOTATIONS_PER_LEVEL) > 0
    {
        notice_cap -= 1;
    }
    let mut lines = Vec::new();
    let mut left_out = 0;
    for (level, cap) in [
        (Level::Error, MAX_ANNOTATIONS_PER_LEVEL),
        (Level::Warning, MAX_ANNOTATIONS_PER_LEVEL),
        (Level::Notice, notice_cap),
    ] {
        left_out += over(level, cap);
        lines.extend(
            all.iter()
                .filter(|a| a.level == level)
                .take(cap)
                .map(Annotation::command),
        );
    }
    if left_out > 0 {
        lines.push(format!(
            "::notice title=kkrun::{left_out} more {} in the step summary",
            if left_out == 1 {
                "annotation"
            } else {
                "annotations"
            }
        ));
    }
    lines
}

/// `::error file=…,line=…,col=…` for each task-file error (at most
/// [`MAX_ANNOTATIONS_PER_LEVEL`], then a notice counting the rest, which the
/// log shows in full).
pub fn task_file_errors(errors: &crate::task::TaskFileErrors) -> Vec<String> {
    let mut lines: Vec<String> = errors
        .errors()
        .iter()
        .take(MAX_ANNOTATIONS_PER_LEVEL)
        .map(|error| {
            let mut message = error.message().to_owned();
            if let Some(help) = error.help_text() {
                message.push_str(&format!(" (help: {help})"));
            }
            let file = error
                .file()
                .map(|file| annotation_path(&file.to_string_lossy()))
                .unwrap_or_default();
            format!(
                "::error file={},line={},col={},title={}::{}",
                escape_property(&file),
                error.line().max(1),
                error.column().max(1),
                escape_property("kkrun: invalid task file"),
                escape_data(&message)
            )
        })
        .collect();
    let rest = errors.len().saturating_sub(MAX_ANNOTATIONS_PER_LEVEL);
    if rest > 0 {
        lines.push(format!(
            "::notice title=kkrun::{rest} more task-file error{} in the log",
            if rest == 1 { "" } else { "s" }
        ));
    }
    lines
}

/// A path as annotations need it: relative to `GITHUB_WORKSPACE` (the
/// repository root) when it lies inside it, so an annotation lands on the
/// file even when kkrun ran in a subdirectory.
fn annotation_path(file: &str) -> String {
    let Some(workspace) = std::env::var_os("GITHUB_WORKSPACE") else {
        return file.to_owned();
    };
    let absolute = std::env::current_dir()
        .map(|cwd| cwd.join(file))
        .and_then(std::fs::canonicalize);
    let root = std::fs::canonicalize(&workspace);
    match (absolute, root) {
        (Ok(absolute), Ok(root)) => absolute
            .strip_prefix(&root)
            .map(|rel| rel.to_string_lossy().into_owned())
            .unwrap_or_else(|_| file.to_owned()),
        _ => file.to_owned(),
    }
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

//! The outcome of a pipeline that ran to its end: the checks' real result
//! and the review decide, never the agent's own claims.

use super::task_run::TaskRun;
use crate::events::{TaskOutcome, Verdict};
use crate::tools::checks::CheckResult;

impl TaskRun<'_, '_> {
    /// The outcome and its one-line reason.
    pub(super) fn judge(&self) -> (TaskOutcome, String) {
        if let Some(desk) = &self.desk {
            return super::hunt::judge(self.task, &desk.findings());
        }
        let checks = self.final_checks.as_deref().unwrap_or_default();
        let failed: Vec<&CheckResult> = checks.iter().filter(|c| !c.run.passed).collect();
        if !failed.is_empty() {
            let names: Vec<String> = failed
                .iter()
                .map(|c| {
                    let was_passing = self
                        .baseline
                        .iter()
                        .any(|b| b.name == c.name && b.run.passed);
                    if was_passing {
                        format!("{} (newly broken)", c.name)
                    } else {
                        c.name.clone()
                    }
                })
                .collect();
            return (
                TaskOutcome::Failed,
                format!(
                    "{} of {} check(s) failed: {}",
                    failed.len(),
                    checks.len(),
                    names.join(", ")
                ),
            );
        }
        if let Some(review) = self.review.as_ref().filter(|r| r.blocks()) {
            let first = review
                .summary
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return (
                TaskOutcome::Failed,
                format!("the review requested changes: {first}"),
            );
        }
        let advisory = match &self.review {
            Some(review) if review.verdict == Verdict::RequestChanges => {
                "; the advisory review requested changes"
            }
            _ => "",
        };
        if checks.is_empty() {
            (
                TaskOutcome::Passed,
                format!("no checks; the review approved{advisory}"),
            )
        } else {
            let flaky = checks.iter().filter(|c| c.run.flaky).count();
            let flaky = if flaky > 0 {
                format!(" ({flaky} flaky)")
            } else {
                String::new()
            };
            (
                TaskOutcome::Passed,
                format!("all {} check(s) pass{flaky}{advisory}", checks.len()),
            )
        }
    }
}

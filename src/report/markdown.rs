//! `summary.md`: the human summary of a run, also appended to
//! `$GITHUB_STEP_SUMMARY` in GitHub Actions.

mod matrix;

use std::fmt::Write as _;

use super::model::{CheckStatus, Report, TaskOutcome, TaskReport, Verdict};
use super::text::strip_ansi;
use crate::provider::Usage;

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let mut md = String::new();
    let passed = report
        .tasks
        .iter()
        .filter(|t| t.outcome == TaskOutcome::Passed)
        .count();
    let _ = writeln!(
        md,
        "# kkrun: {passed} of {} task{} passed\n",
        report.tasks.len(),
        if report.tasks.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        md,
        "Run `{}` · exit code {} · {} · {} tokens{}\n",
        report.run_id,
        report.exit_code,
        human_duration(report.duration_ms),
        human_tokens(&report.totals.usage),
        report
            .totals
            .cost_usd
            .map(|c| format!(" · ${c:.2}"))
            .unwrap_or_default()
    );
    shards_note(&mut md, report);
    md.push_str("| task | outcome | checks | files | tokens | cost | time |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for task in &report.tasks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            task.name,
            outcome_badge(task.outcome),
            checks_cell(task),
            files_cell(task),
            human_tokens(&task.usage),
            task.cost_usd
                .map(|c| format!("${c:.2}"))
                .unwrap_or_else(|| "n/a".into()),
            human_duration(task.duration_ms)
        );
    }
    matrix::comparison(&mut md, report);
    for task in &report.tasks {
        md.push('\n');
        task_section(&mut md, report, task);
    }
    md
}

/// Which shard a run is, or which shards a merged run joins.
fn shards_note(md: &mut String, report: &Report) {
    if let Some(p) = &report.partition {
        let _ = writeln!(
            md,
            "Shard {} of {} (`--partition {}`): {} of {} task{}; `kkrun report merge` joins the \
             shards.\n",
            p.shard,
            p.shards,
            p.spec,
            report.tasks.len(),
            p.total_tasks,
            if p.total_tasks == 1 { "" } else { "s" }
        );
    }
    if let Some(merged) = &report.merged {
        let shards: Vec<String> = merged
            .shards
            .iter()
            .map(|s| {
                let code = s
                    .exit_code
                    .map_or_else(|| "unfinished".to_string(), |c| format!("exit {c}"));
                match &s.partition {
                    Some(p) => format!("`{}` ({p}, {code})", s.dir),
                    None => format!("`{}` ({code})", s.dir),
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "Merged from {} run director{}: {}.\n",
            shards.len(),
            if shards.len() == 1 { "y" } else { "ies" },
            shards.join(", ")
        );
        if !merged.missing_tasks.is_empty() {
            let _ = writeln!(
                md,
                "**Missing from every shard** (reported as error): {}.\n",
                merged.missing_tasks.join(", ")
            );
        }
    }
}

/// The task's `setup:` commands, and the output of the one that failed.
fn setup_section(md: &mut String, task: &TaskReport) {
    if task.setup.is_empty() {
        return;
    }
    md.push_str("### Setup\n\n| command | status | time |\n|---|---|---|\n");
    for run in &task.setup {
        let status = if run.passed {
            "ok".to_string()
        } else if run.timed_out {
            "timed out".to_string()
        } else {
            run.exit_code
                .map_or("killed".to_string(), |c| format!("failed (exit {c})"))
        };
        let _ = writeln!(
            md,
            "| `{}` | {status} | {} |",
            run.command.trim().replace('|', "\\|").replace('`', "'"),
            human_duration(run.duration_ms)
        );
    }
    if let Some(failed) = task.setup.iter().find(|run| !run.passed) {
        let _ = writeln!(
            md,
            "\n<details open><summary>output of <code>{}</code></summary>\n\n```text\n{}\n```\n</details>",
            failed.command.trim().replace('<', "&lt;"),
            strip_ansi(failed.output_tail.trim_end()).replace("```", "'''")
        );
    }
    md.push('\n');
}

fn task_section(md: &mut String, report: &Report, task: &TaskReport) {
    let _ = writeln!(md, "## {} — {}\n", task.name, outcome_badge(task.outcome));
    if !task.description.is_empty() {
        let _ = writeln!(md, "{}\n", task.description);
    }
    // A reason's further lines (a failed setup command's output) are shown
    // as output, in the setup section, not as markdown.
    let _ = writeln!(
        md,
        "**Result:** {}\n",
        task.reason.lines().next().unwrap_or_default()
    );
    setup_section(md, task);
    if let Some(resumed) = &task.resumed {
        let _ = writeln!(
            md,
            "**Resumed** after {} ({} attempts: {}).\n",
            resumed.after,
            resumed.attempts.len(),
            resumed
                .attempts
                .iter()
                .map(|a| format!(
                    "{}, {} tokens, {}",
                    a.ended,
                    a.usage.total(),
                    human_duration(a.duration_ms)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if task.kind == crate::task::TaskKind::BugHunt.as_str() {
        md.push_str(&super::findings::markdown_section(task));
    }
    if !task.checks.is_empty() {
        md.push_str("### Checks\n\n| check | baseline | final | status |\n|---|---|---|---|\n");
        for check in &task.checks {
            let cell = |run: &Option<super::model::CheckRun>| match run {
                None => "—".to_string(),
                Some(run) if run.passed && run.flaky => "pass (flaky)".to_string(),
                Some(run) if run.passed => "pass".to_string(),
                Some(run) if run.timed_out => "timed out".to_string(),
                Some(run) => run
                    .exit_code
                    .map_or("killed".to_string(), |c| format!("fail (exit {c})")),
            };
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} |",
                check.name,
                cell(&check.baseline),
                cell(&check.final_run),
                check.status.as_str().replace('_', " ")
            );
        }
        for check in &task.checks {
            if let Some(run) = check.final_run.as_ref().filter(|run| !run.passed) {
                let _ = writeln!(
                    md,
                    "\n<details><summary>output of <code>{}</code></summary>\n\n```text\n{}\n```\n</details>",
                    check.name,
                    strip_ansi(run.output_tail.trim_end()).replace("```", "'''")
                );
            }
        }
        md.push('\n');
    }
    if let Some(review) = &task.review {
        let verdict = match review.verdict {
            Verdict::Approve => "approve",
            Verdict::RequestChanges => "request changes",
        };
        let advisory = if review.advisory { " (advisory)" } else { "" };
        let _ = writeln!(
            md,
            "### Review: {verdict}{advisory}\n\n{}\n",
            review.summary.trim_end()
        );
        if !review.risks.is_empty() {
            md.push_str("**Risks**\n\n");
            for risk in &review.risks {
                let _ = writeln!(md, "- {risk}");
            }
            md.push('\n');
        }
    }
    if !task.files_changed.is_empty() {
        md.push_str("### Files changed\n\n");
        for file in &task.files_changed {
            let _ = writeln!(
                md,
                "- `{}` ({}, +{} −{})",
                file.path, file.status, file.additions, file.deletions
            );
        }
        md.push('\n');
    }
    if !task.stages.is_empty() {
        md.push_str("### Stages\n\n| stage | round | end | turns | tokens | time | snapshot |\n|---|---|---|---|---|---|---|\n");
        for stage in &task.stages {
            let snapshot = stage
                .snapshot
                .as_ref()
                .and_then(|s| {
                    s.ref_name
                        .rsplit('/')
                        .next()
                        .map(|name| format!("`{name}`"))
                })
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                stage.stage,
                stage.round,
                stage.end.as_str().replace('_', " "),
                stage.turns,
                human_tokens(&stage.usage),
                human_duration(stage.duration_ms),
                snapshot
            );
        }
        md.push('\n');
    }
    if !task.snapshots.is_empty() {
        // Written for a reader who may only have the artifact: the patch
        // first, then what works in the clone that holds the snapshots.
        let mut ways = Vec::new();
        if let Some(patch) = &task.artifacts.patch {
            ways.push(format!(
                "the change is `{patch}` in the run directory (in CI, in the run's artifact; \
                 `git apply` it)"
            ));
        }
        let run = task_run_id(report, task);
        ways.push(format!(
            "as a branch for a pull request: `kkrun export {run} {task} --branch kkrun/{task}`",
            task = task.name
        ));
        // An isolated task's change is not in the user's tree: it comes in
        // with `kkrun apply`; there is nothing to undo.
        ways.push(if task.worktree.is_some() {
            format!(
                "into your work tree: `kkrun apply {run} {task}` (it ran in its own worktree; \
                 `kkrun diff {run} {task}` shows it)",
                task = task.name
            )
        } else {
            format!(
                "where it ran: `kkrun diff {run} {task}`, undo with `kkrun rollback {run} {task} --to base`",
                task = task.name
            )
        });
        let _ = writeln!(md, "**Inspect / undo**: {}", ways.join(" · "));
    }
}

/// The run whose snapshots hold the task: in a merged report, the shard
/// that ran it (the merged run has no snapshots of its own).
fn task_run_id<'r>(report: &'r Report, task: &TaskReport) -> &'r str {
    report
        .merged
        .as_ref()
        .and_then(|merged| merged.shards.iter().find(|s| s.tasks.contains(&task.name)))
        .map_or(report.run_id.as_str(), |shard| shard.run_id.as_str())
}

fn outcome_badge(outcome: TaskOutcome) -> &'static str {
    match outcome {
        TaskOutcome::Passed => "✅ passed",
        TaskOutcome::Failed => "❌ failed",
        TaskOutcome::BudgetExhausted => "⏳ budget exhausted",
        TaskOutcome::TimedOut => "⏳ timed out",
        TaskOutcome::Error => "💥 error",
        TaskOutcome::Interrupted => "⏹ interrupted",
    }
}

fn checks_cell(task: &TaskReport) -> String {
    if task.checks.is_empty() {
        return "none".into();
    }
    let passed = task
        .checks
        .iter()
        .filter(|c| c.final_run.as_ref().is_some_and(|r| r.passed))
        .count();
    let mut notes = Vec::new();
    for (status, label) in [
        (CheckStatus::Fixed, "fixed"),
        (CheckStatus::NewlyBroken, "newly broken"),
        (CheckStatus::StillFailing, "still failing"),
    ] {
        let n = task.checks.iter().filter(|c| c.status == status).count();
        if n > 0 {
            notes.push(format!("{n} {label}"));
        }
    }
    let flaky = task
        .checks
        .iter()
        .filter(|c| c.final_run.as_ref().is_some_and(|r| r.flaky))
        .count();
    if flaky > 0 {
        notes.push(format!("{flaky} flaky"));
    }
    if notes.is_empty() {
        format!("{passed}/{}", task.checks.len())
    } else {
        format!("{passed}/{} ({})", task.checks.len(), notes.join(", "))
    }
}

fn files_cell(task: &TaskReport) -> String {
    let added: usize = task.files_changed.iter().map(|f| f.additions).sum();
    let removed: usize = task.files_changed.iter().map(|f| f.deletions).sum();
    format!("{} (+{added} −{removed})", task.files_changed.len())
}

/// `1m 05s`, `12.3s`, `450ms`.
pub fn human_duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => {
            let secs = ms / 1000;
            if secs >= 3600 {
                format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
            } else {
                format!("{}m {:02}s", secs / 60, secs % 60)
            }
        }
    }
}

/// `950`, `12.3k`, `1.20M` (input plus output).
pub fn human_tokens(usage: &Usage) -> String {
    let total = usage.input_tokens + usage.output_tokens;
    match total {
        0..=999 => total.to_string(),
        1_000..=999_999 => format!("{:.1}k", total as f64 / 1e3),
        _ => format!("{:.2}M", total as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(450), "450ms");
        assert_eq!(human_duration(12_340), "12.3s");
        assert_eq!(human_duration(65_000), "1m 05s");
        assert_eq!(human_duration(3_723_000), "1h 02m");
    }

    #[test]
    fn tokens_read_naturally() {
        let usage = |n| Usage {
            input_tokens: n,
            cached_input_tokens: 0,
            output_tokens: 0,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        };
        assert_eq!(human_tokens(&usage(950)), "950");
        assert_eq!(human_tokens(&usage(12_345)), "12.3k");
        assert_eq!(human_tokens(&usage(1_200_000)), "1.20M");
    }
}

//! What each stage is told. Everything here is deterministic (no times, no
//! absolute paths, no ids), so requests stay byte-identical across runs and
//! machines: prompt caching applies and recorded cassettes replay anywhere.

use std::fmt::Write as _;

use crate::task::{Task, TaskKind};
use crate::tools::checks::CheckResult;

use super::finish::{Plan, ReturnToCode};

const COMMON: &str = "\
You are kkrun's coding agent, running unattended in CI: nobody can answer questions, so decide \
for yourself and say what you assumed. You work inside one repository (the workspace); every \
path you pass to a tool is relative to it. Use the tools you are given; a stage ends only when \
you call its finishing tool.";

/// The system prompt of the blueprint stage.
pub fn blueprint_system() -> String {
    format!(
        "{COMMON}\n\nStage: BLUEPRINT (read-only). Explore the repository with read_file, list_dir, glob and \
         grep until you understand what must change, then call submit_plan with the goal, ordered steps, the \
         files to touch, the risks, and how to verify the change. You cannot modify files in this stage. Do not \
         write the code yet; the code stage follows your plan."
    )
}

/// The system prompt of the code stage.
pub fn code_system() -> String {
    format!(
        "{COMMON}\n\nStage: CODE. Carry out the plan: read what you need, then change files with edit_file, \
         write_file or apply_patch; you may run shell commands the task allows. Keep the change focused on the \
         goal; do not weaken or delete tests to make them pass. When the change is complete, call finish_stage \
         with a summary of what you changed and why. kkrun runs the task's checks after this stage."
    )
}

/// The system prompt of the debug stage.
pub fn debug_system() -> String {
    format!(
        "{COMMON}\n\nStage: DEBUG. kkrun ran the task's checks and some fail; their output is below. Find the \
         cause and fix it with the file tools; call run_checks to run the checks again. When you believe every \
         check passes, call finish_stage. If the approach itself is wrong and needs to be redone rather than \
         fixed locally, call return_to_code with the reason and what to redo. kkrun runs the checks itself \
         after this stage: their real result, not your claim, decides whether the task passes."
    )
}

/// The system prompt of the preview stage.
pub fn preview_system() -> String {
    format!(
        "{COMMON}\n\nStage: PREVIEW (read-only). Review the final change below against the task's goal: is it \
         correct, complete, focused, and safe to merge? Look at the code around it with the read-only tools if \
         you need to. Then call submit_review with your verdict (approve or request_changes), a Markdown summary \
         for the humans who will read the report (what changed, why, how it was verified), and any risks."
    )
}

fn task_header(task: &Task) -> String {
    let mut text = format!("# Task: {}\n", task.base_name());
    if !task.description.is_empty() {
        let _ = writeln!(text, "{}", task.description);
    }
    let _ = writeln!(text, "Kind: {}", task.kind.as_str());
    if task.kind == TaskKind::BugHunt {
        text.push_str(
            "This is a bug hunt: the result is findings, not edits. Report every bug you find with report_finding \
             (file, lines, severity, a stable kebab-case rule_id, evidence) as soon as you are sure of it, and give \
             a `reproduce` command that fails because of the bug: kkrun runs it on the untouched original code and \
             only a failing run confirms the finding. You may write small reproduction tests for that; do not fix \
             the bugs. There is no debug stage; the preview reviews the findings.\n",
        );
    }
    let _ = write!(text, "\n## Goal\n{}\n", task.prompt.trim_end());
    text
}

/// Renders check results under a heading, the same way the `run_checks`
/// tool shows them.
pub fn render_checks(title: &str, results: &[CheckResult]) -> String {
    if results.is_empty() {
        return format!("## {title}\nThis task has no checks.\n");
    }
    let body = crate::tools::checks::render_for_model(results).replace("\n## ", "\n### ");
    format!("## {title}\n{body}")
}

/// The first message of blueprint.
pub fn blueprint_message(
    task: &Task,
    context: &str,
    baseline: &[CheckResult],
    commands: &[String],
) -> String {
    let mut text = task_header(task);
    if !commands.is_empty() {
        let _ = write!(text, "\n## Checks\nkkrun decides the outcome by running:\n");
        for command in commands {
            let _ = writeln!(text, "- `{command}`");
        }
    }
    text.push('\n');
    text.push_str(&render_checks(
        "Baseline: the checks on the untouched repository",
        baseline,
    ));
    if !context.is_empty() {
        text.push('\n');
        text.push_str(context);
    }
    text
}

/// Renders a plan for the stages after blueprint.
pub fn render_plan(plan: &Plan) -> String {
    let mut text = format!("## Plan\nGoal: {}\n\nSteps:\n", plan.goal);
    for (i, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(text, "{}. {step}", i + 1);
    }
    if !plan.files.is_empty() {
        let _ = writeln!(text, "\nFiles: {}", plan.files.join(", "));
    }
    for risk in &plan.risks {
        let _ = writeln!(text, "Risk: {risk}");
    }
    let _ = writeln!(text, "\nVerification: {}", plan.verification);
    text
}

/// The first message of code; `feedback` is set when debug sent the work back.
pub fn code_message(
    task: &Task,
    plan: &Plan,
    feedback: Option<&(ReturnToCode, Vec<CheckResult>)>,
) -> String {
    let mut text = task_header(task);
    text.push('\n');
    text.push_str(&render_plan(plan));
    if let Some((back, checks)) = feedback {
        let _ = write!(
            text,
            "\n## Sent back from debug\nReason: {}\nWhat to redo: {}\n\n",
            back.reason, back.redo
        );
        text.push_str(&render_checks("Checks before this round", checks));
    }
    text
}

/// The first message of a debug round.
pub fn debug_message(
    task: &Task,
    plan: &Plan,
    code_summary: &str,
    checks: &[CheckResult],
    baseline: &[CheckResult],
) -> String {
    let mut text = task_header(task);
    text.push('\n');
    text.push_str(&render_plan(plan));
    let _ = write!(
        text,
        "\n## What the code stage did\n{}\n\n",
        code_summary.trim_end()
    );
    let broken_at_base: Vec<&str> = baseline
        .iter()
        .filter(|c| !c.run.passed)
        .map(|c| c.name.as_str())
        .collect();
    if !broken_at_base.is_empty() {
        let _ = writeln!(
            text,
            "Already failing on the untouched base: {}\n",
            broken_at_base.join(", ")
        );
    }
    text.push_str(&render_checks("Checks now", checks));
    text
}

/// The first message of preview.
pub fn preview_message(
    task: &Task,
    plan: Option<&Plan>,
    diff: &str,
    baseline: &[CheckResult],
    final_checks: &[CheckResult],
) -> String {
    let mut text = task_header(task);
    if let Some(plan) = plan {
        text.push('\n');
        text.push_str(&render_plan(plan));
    }
    text.push_str("\n## The change (diff from the untouched base)\n");
    if diff.trim().is_empty() {
        text.push_str("No files changed.\n");
    } else {
        let _ = writeln!(text, "```diff\n{}\n```", diff.trim_end());
    }
    text.push('\n');
    text.push_str(&render_checks("Checks on the untouched base", baseline));
    text.push('\n');
    text.push_str(&render_checks("Checks on the final change", final_checks));
    if let Some(schema) = &task.output_schema {
        let schema = serde_json::to_string_pretty(schema).unwrap_or_default();
        let _ = writeln!(
            text,
            "\n## Structured output\nThis task asks for a structured result: give `submit_review` an `output` \
             that matches this JSON Schema. An output that does not match is sent back with the validator's errors.\n\
             ```json\n{schema}\n```"
        );
    }
    text
}

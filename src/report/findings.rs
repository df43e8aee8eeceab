//! How a bug hunt's findings appear for people: the findings table of
//! `summary.md` and the GitHub annotations at each finding's file and lines.

use std::fmt::Write as _;

use super::github::{Annotation, Level, rank};
use super::model::TaskReport;
use super::text::strip_ansi;
use crate::findings::{Finding, FindingStatus, Severity};
use crate::provider::redact_credentials;

/// The `### Findings` section of a bug hunt's part of `summary.md`: a table
/// (severity, status, location, title), then each finding's evidence
/// folded.
pub fn markdown_section(task: &TaskReport) -> String {
    let mut md = String::from("### Findings\n\n");
    if task.findings.is_empty() {
        md.push_str("No findings.\n\n");
        return md;
    }
    md.push_str(
        "| id | severity | status | baseline | location | title |\n|---|---|---|---|---|---|\n",
    );
    for finding in &task.findings {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | `{}` | {} |",
            finding.id,
            finding.severity.as_str(),
            finding.status.as_str(),
            finding.baseline_state.as_str(),
            cell(&finding.location()),
            cell(&finding.title)
        );
    }
    md.push('\n');
    for finding in &task.findings {
        let mut body = format!(
            "{}\n\n**Evidence:** {}\n",
            finding.message, finding.evidence
        );
        if let Some(reason) = &finding.withdrawn_reason {
            let _ = write!(body, "\n**Withdrawn:** {reason}\n");
        }
        if let Some(command) = &finding.reproduce {
            let _ = write!(body, "\n**Reproducer:** `{}`", command.replace('`', "'"));
            match &finding.reproduction {
                Some(run) => {
                    let _ = write!(
                        body,
                        " — {} on the base\n\n```text\n{}\n```\n",
                        run.result.as_str(),
                        strip_ansi(run.output_tail.trim_end()).replace("```", "'''")
                    );
                }
                None => body.push_str(" — not run\n"),
            }
        }
        let _ = writeln!(
            md,
            "<details><summary>{} {}: {}</summary>\n\n{}\n</details>\n",
            finding.id,
            finding.rule_id,
            html_escape(&finding.title),
            body.trim_end()
        );
    }
    redact_credentials(&md)
}

/// Annotations for the findings of `tasks` that were not withdrawn, at
/// their file and lines: errors for critical and high, warnings for medium,
/// notices for low and note; most severe and confirmed first. The caller
/// caps them together with the run's other annotations.
pub(super) fn annotations(tasks: &[TaskReport]) -> Vec<Annotation> {
    let mut findings: Vec<(&TaskReport, &Finding)> = tasks
        .iter()
        .flat_map(|task| task.findings.iter().map(move |f| (task, f)))
        .filter(|(_, f)| f.status != FindingStatus::Withdrawn)
        .collect();
    findings.sort_by_key(|(_, f)| (f.severity, f.status != FindingStatus::Confirmed));
    findings
        .into_iter()
        .map(|(task, finding)| {
            let level = match finding.severity {
                Severity::Critical | Severity::High => Level::Error,
                Severity::Medium => Level::Warning,
                Severity::Low | Severity::Note => Level::Notice,
            };
            let title = format!(
                "kkrun {}: {} {} {} ({}, {})",
                task.name,
                finding.id,
                finding.severity.as_str(),
                finding.rule_id,
                finding.status.as_str(),
                finding.baseline_state.as_str()
            );
            let message = format!(
                "{}\n{}\nEvidence: {}",
                finding.title, finding.message, finding.evidence
            );
            Annotation {
                level,
                rank: rank::FINDING,
                // Already relative to the repository root, as annotations want.
                path: finding.file.clone(),
                line: finding.start_line,
                end_line: Some(finding.end_line),
                title: redact_credentials(&title),
                message: redact_credentials(&message),
            }
        })
        .collect()
}

/// Text for a Markdown table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.replace('\n', " ").replace('|', "\\|")
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

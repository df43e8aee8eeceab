//! How a bug hunt's findings appear for people: the findings table of
//! `summary.md` and the GitHub annotations at each finding's file and line.

use std::fmt::Write as _;

use super::model::TaskReport;
use super::text::strip_ansi;
use crate::findings::{Finding, FindingStatus, Severity};
use crate::provider::redact_credentials;

/// GitHub Actions shows at most this many annotations of one level
/// (error, warning, notice) per step; the rest are dropped silently, so
/// kkrun keeps the most severe and says how many it left out.
pub const ANNOTATIONS_PER_LEVEL: usize = 10;

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

/// Workflow commands for the findings of `tasks` that were not withdrawn,
/// at their file and line: `::error` for critical and high, `::warning`
/// for medium, `::notice` for low and note; at most
/// [`ANNOTATIONS_PER_LEVEL`] per level, most severe and confirmed first,
/// then one notice saying how many were left out.
pub fn annotations(tasks: &[TaskReport]) -> Vec<String> {
    let mut findings: Vec<(&TaskReport, &Finding)> = tasks
        .iter()
        .flat_map(|task| task.findings.iter().map(move |f| (task, f)))
        .filter(|(_, f)| f.status != FindingStatus::Withdrawn)
        .collect();
    findings.sort_by_key(|(_, f)| (f.severity, f.status != FindingStatus::Confirmed));
    let mut lines = Vec::new();
    let mut used = [0usize; 3];
    let mut left_out = 0;
    for (task, finding) in findings {
        let (level, slot) = match finding.severity {
            Severity::Critical | Severity::High => ("error", 0),
            Severity::Medium => ("warning", 1),
            Severity::Low | Severity::Note => ("notice", 2),
        };
        if used[slot] >= ANNOTATIONS_PER_LEVEL {
            left_out += 1;
            continue;
        }
        used[slot] += 1;
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
        lines.push(format!(
            "::{level} file={},line={},endLine={},title={}::{}",
            super::github::escape_property(&finding.file),
            finding.start_line,
            finding.end_line,
            super::github::escape_property(&redact_credentials(&title)),
            super::github::escape_data(&redact_credentials(&message))
        ));
    }
    if left_out > 0 {
        lines.push(format!(
            "::notice title=kkrun findings::{left_out} more finding(s) not annotated (GitHub shows {ANNOTATIONS_PER_LEVEL} \
             annotations per level); see summary.md or findings.sarif"
        ));
    }
    lines
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

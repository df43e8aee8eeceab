//! What a bug hunt adds to the pipeline: the findings desk per stage, the
//! reproduction pass on the untouched base, the findings the preview
//! reviews, and the outcome by `fail_on`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::events::TaskOutcome;
use crate::events::{EventKind, EventSink};
use crate::findings::reproduce::{ReproduceEnv, reproduce, status_of};
use crate::findings::{self, Finding, FindingStatus};
use crate::task::{Stage, Task};
use crate::tools::findings::FindingTools;

/// The timeout of a reproducer when the task has no checks: the default
/// `timeout` of a check.
const DEFAULT_REPRODUCE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Bytes of a reproducer's output the preview is shown per finding.
const PREVIEW_TAIL_BYTES: usize = 1024;

/// The finding tool `stage` of a bug hunt gets: `report_finding` while
/// hunting (blueprint, code, debug), `withdraw_finding` in preview.
pub(crate) fn tools_for(stage: Stage) -> FindingTools {
    match stage {
        Stage::Preview => FindingTools::Withdraw,
        Stage::Blueprint | Stage::Code | Stage::Debug => FindingTools::Report,
    }
}

/// How long a reproducer may run: the longest check timeout of the task,
/// or the default check timeout when it has no checks.
pub(crate) fn reproduce_timeout(task: &Task) -> Duration {
    task.checks
        .iter()
        .map(|check| check.timeout)
        .max()
        .unwrap_or(DEFAULT_REPRODUCE_TIMEOUT)
}

/// Runs the reproducer of every finding that has one and has not been
/// reproduced, one after another, and sets each status from the result.
pub(crate) async fn reproduce_all(
    env: &ReproduceEnv,
    findings: &mut [Finding],
    events: &EventSink,
) {
    for finding in findings.iter_mut() {
        if finding.reproduction.is_some() || finding.status == FindingStatus::Withdrawn {
            continue;
        }
        let Some(command) = finding.reproduce.clone() else {
            continue;
        };
        let reproduction = reproduce(env, &command).await;
        finding.status = status_of(Some(&reproduction));
        events.emit(EventKind::FindingReproduced {
            id: finding.id.clone(),
            status: finding.status,
            reproduction: reproduction.clone(),
        });
        finding.reproduction = Some(reproduction);
    }
}

/// The findings section of a bug hunt's preview message.
pub(crate) fn preview_section(findings: &[Finding]) -> String {
    let mut text = String::from("\n## Findings\n");
    if findings.is_empty() {
        text.push_str("No findings were reported.\n");
        return text;
    }
    text.push_str(
        "kkrun ran each `reproduce` command on the untouched base: a failing run confirms a finding. Review \
         every finding; call withdraw_finding for each one that is false (not a bug, a duplicate, or a \
         reproduction that fails for an unrelated reason). Your verdict does not decide a bug hunt: its \
         findings do.\n",
    );
    for finding in findings {
        let _ = write!(
            text,
            "\n### {} — {} {} at {} ({})\n{}\n\n{}\n\nEvidence: {}\n",
            finding.id,
            finding.severity.as_str(),
            finding.rule_id,
            finding.location(),
            finding.status.as_str(),
            finding.title,
            finding.message,
            finding.evidence
        );
        match (&finding.reproduce, &finding.reproduction) {
            (Some(command), Some(run)) => {
                let tail = crate::tools::process::cap_text(&run.output_tail, 0, PREVIEW_TAIL_BYTES);
                let _ = write!(
                    text,
                    "Reproducer `{command}`: {}\n```text\n{}\n```\n",
                    run.result.as_str(),
                    tail.trim_end()
                );
            }
            (Some(command), None) => {
                let _ = writeln!(text, "Reproducer `{command}`: not run");
            }
            (None, _) => text.push_str("No reproducer.\n"),
        }
    }
    text
}

/// A bug hunt's outcome: failed when any finding meets `fail_on`.
pub(crate) fn judge(task: &Task, findings: &[Finding]) -> (TaskOutcome, String) {
    let count = |status: FindingStatus| findings.iter().filter(|f| f.status == status).count();
    let tally = format!(
        "{} confirmed, {} unconfirmed, {} withdrawn",
        count(FindingStatus::Confirmed),
        count(FindingStatus::Unconfirmed),
        count(FindingStatus::Withdrawn)
    );
    let failing = findings::failing(task.fail_on, findings);
    if failing.is_empty() {
        return (
            TaskOutcome::Passed,
            format!(
                "no finding meets fail_on: {} ({tally})",
                task.fail_on.as_str()
            ),
        );
    }
    let listed: Vec<String> = failing
        .iter()
        .take(5)
        .map(|f| format!("{} {} at {}", f.id, f.rule_id, f.location()))
        .collect();
    let more = if failing.len() > listed.len() {
        format!(", and {} more", failing.len() - listed.len())
    } else {
        String::new()
    };
    (
        TaskOutcome::Failed,
        format!(
            "{} finding(s) meet fail_on: {} ({}{more}); {tally}",
            failing.len(),
            task.fail_on.as_str(),
            listed.join(", ")
        ),
    )
}

//! `junit.xml`: one `<testsuite>` per task file, one `<testcase>` per task ×
//! check plus one for the review verdict. Validates against the Jenkins
//! JUnit schema (junit-10.xsd).
//!
//! Written with quick-xml directly: quick-junit always emits a `skipped`
//! attribute on `<testsuites>`, which junit-10.xsd rejects.

use std::collections::BTreeMap;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use super::model::{CheckReport, Report, TaskOutcome, TaskReport};
use super::text::xml_safe;
use crate::findings::{Finding, FindingStatus};
use crate::provider::redact_credentials;

/// One `<testcase>` before serialization.
struct Case {
    classname: String,
    name: String,
    time_ms: u64,
    result: CaseResult,
    /// Output tails of failed attempts before a flaky pass.
    flaky_attempts: Vec<String>,
    /// Output tails of the earlier attempts of a check that failed on every
    /// attempt (`<rerunFailure>`, as Maven Surefire and nextest write them).
    rerun_failures: Vec<String>,
    system_out: Option<String>,
}

enum CaseResult {
    Passed,
    Failed {
        kind: &'static str,
        message: String,
        body: String,
    },
    Error {
        kind: String,
        message: String,
    },
    Skipped {
        message: String,
    },
}

/// Renders the report as JUnit XML.
pub fn render(report: &Report) -> io::Result<String> {
    // Group tasks by file, keeping the order in which files first appear.
    let mut order: Vec<&str> = Vec::new();
    let mut by_file: BTreeMap<&str, Vec<&TaskReport>> = BTreeMap::new();
    for task in &report.tasks {
        if !by_file.contains_key(task.file.as_str()) {
            order.push(&task.file);
        }
        by_file.entry(&task.file).or_default().push(task);
    }
    let suites: Vec<(&str, Vec<Case>)> = order
        .iter()
        .map(|file| {
            let cases = by_file[file]
                .iter()
                .flat_map(|task| task_cases(task))
                .collect();
            (*file, cases)
        })
        .collect();

    let count = |pred: fn(&CaseResult) -> bool| -> usize {
        suites
            .iter()
            .flat_map(|(_, cases)| cases)
            .filter(|case| pred(&case.result))
            .count()
    };
    let tests: usize = suites.iter().map(|(_, cases)| cases.len()).sum();
    let failures = count(|r| matches!(r, CaseResult::Failed { .. }));
    let errors = count(|r| matches!(r, CaseResult::Error { .. }));

    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer
        .create_element("testsuites")
        .with_attributes([
            ("name", format!("kkrun {}", report.run_id).as_str()),
            ("tests", tests.to_string().as_str()),
            ("failures", failures.to_string().as_str()),
            ("errors", errors.to_string().as_str()),
            ("time", seconds(report.duration_ms).as_str()),
        ])
        .write_inner_content(|w| {
            for (file, cases) in &suites {
                write_suite(w, file, cases, &report.started_at)?;
            }
            Ok(())
        })?;
    let mut xml = String::from_utf8(writer.into_inner()).map_err(io::Error::other)?;
    xml.push('\n');
    Ok(xml)
}

fn write_suite(
    w: &mut Writer<Vec<u8>>,
    file: &str,
    cases: &[Case],
    timestamp: &str,
) -> io::Result<()> {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.result, CaseResult::Failed { .. }))
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(c.result, CaseResult::Error { .. }))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.result, CaseResult::Skipped { .. }))
        .count();
    let time: u64 = cases.iter().map(|c| c.time_ms).sum();
    w.create_element("testsuite")
        .with_attributes([
            ("name", xml_safe(file).as_str()),
            ("tests", cases.len().to_string().as_str()),
            ("failures", failures.to_string().as_str()),
            ("errors", errors.to_string().as_str()),
            ("skipped", skipped.to_string().as_str()),
            ("time", seconds(time).as_str()),
            ("timestamp", timestamp),
            ("file", xml_safe(file).as_str()),
        ])
        .write_inner_content(|w| {
            for case in cases {
                write_case(w, case)?;
            }
            Ok(())
        })?;
    Ok(())
}

fn write_case(w: &mut Writer<Vec<u8>>, case: &Case) -> io::Result<()> {
    let element = w.create_element("testcase").with_attributes([
        ("name", xml_safe(&case.name).as_str()),
        ("classname", xml_safe(&case.classname).as_str()),
        ("time", seconds(case.time_ms).as_str()),
    ]);
    element.write_inner_content(|w| {
        match &case.result {
            CaseResult::Passed => {}
            CaseResult::Failed {
                kind,
                message,
                body,
            } => {
                w.create_element("failure")
                    .with_attributes([("type", *kind), ("message", xml_safe(message).as_str())])
                    .write_text_content(BytesText::new(&xml_safe(body)))?;
            }
            CaseResult::Error { kind, message } => {
                w.create_element("error")
                    .with_attributes([
                        ("type", kind.as_str()),
                        ("message", xml_safe(message).as_str()),
                    ])
                    .write_empty()?;
            }
            CaseResult::Skipped { message } => {
                w.create_element("skipped")
                    .with_attribute(("message", xml_safe(message).as_str()))
                    .write_empty()?;
            }
        }
        let attempts = case.rerun_failures.len() + 1;
        for (attempt, output) in case.rerun_failures.iter().enumerate() {
            w.create_element("rerunFailure")
                .with_attributes([
                    ("type", "check_failed"),
                    (
                        "message",
                        format!("attempt {} of {attempts} failed", attempt + 1).as_str(),
                    ),
                ])
                .write_inner_content(|w| {
                    w.create_element("system-out")
                        .write_text_content(BytesText::new(&xml_safe(output)))?;
                    Ok(())
                })?;
        }
        for (attempt, output) in case.flaky_attempts.iter().enumerate() {
            w.create_element("flakyFailure")
                .with_attributes([
                    ("type", "check_failed"),
                    (
                        "message",
                        format!("attempt {} failed", attempt + 1).as_str(),
                    ),
                ])
                .write_inner_content(|w| {
                    w.create_element("system-out")
                        .write_text_content(BytesText::new(&xml_safe(output)))?;
                    Ok(())
                })?;
        }
        if let Some(out) = &case.system_out {
            w.create_element("system-out")
                .write_text_content(BytesText::new(&xml_safe(out)))?;
        }
        Ok(())
    })?;
    Ok(())
}

fn task_cases(task: &TaskReport) -> Vec<Case> {
    let mut cases: Vec<Case> = task
        .checks
        .iter()
        .map(|check| check_case(task, check))
        .collect();
    cases.push(review_case(task));
    cases.extend(
        task.findings
            .iter()
            .map(|finding| finding_case(task, finding)),
    );
    cases
}

/// A bug hunt's finding: a failure when confirmed, skipped when unconfirmed
/// or withdrawn (nothing proved it, or the review judged it false).
fn finding_case(task: &TaskReport, finding: &Finding) -> Case {
    let headline = format!(
        "{} {} at {}: {}",
        finding.severity.as_str(),
        finding.rule_id,
        finding.location(),
        finding.title
    );
    let mut body = format!(
        "{}

Evidence: {}
",
        finding.message, finding.evidence
    );
    if let Some(command) = &finding.reproduce {
        body.push_str(&format!(
            "
Reproducer: {command}
"
        ));
    }
    if let Some(run) = &finding.reproduction {
        body.push_str(&format!(
            "Result on the base: {}
{}
",
            run.result.as_str(),
            run.output_tail
        ));
    }
    let body = redact_credentials(&body);
    let result = match finding.status {
        FindingStatus::Confirmed => CaseResult::Failed {
            kind: "finding_confirmed",
            message: redact_credentials(&format!(
                "{headline} ({} finding, confirmed by its reproducer)",
                finding.baseline_state.as_str()
            )),
            body: body.clone(),
        },
        FindingStatus::Unconfirmed => CaseResult::Skipped {
            message: redact_credentials(&format!(
                "unconfirmed ({}): {headline}",
                match &finding.reproduction {
                    None if finding.reproduce.is_none() => "no reproducer".to_string(),
                    None => "reproducer not run".to_string(),
                    Some(run) => format!("reproducer {}", run.result.as_str()),
                }
            )),
        },
        FindingStatus::Withdrawn => CaseResult::Skipped {
            message: redact_credentials(&format!(
                "withdrawn ({}): {headline}",
                finding
                    .withdrawn_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            )),
        },
    };
    Case {
        classname: format!("{}.findings", task.name),
        name: format!("{} {}", finding.id, finding.rule_id),
        time_ms: finding.reproduction.as_ref().map_or(0, |r| r.duration_ms),
        system_out: (finding.status != FindingStatus::Confirmed).then_some(body),
        result,
        flaky_attempts: Vec::new(),
        rerun_failures: Vec::new(),
    }
}

/// Why a task produced no final result, for testcases that could not run.
fn ended_early(task: &TaskReport) -> CaseResult {
    match task.outcome {
        TaskOutcome::Error
        | TaskOutcome::Interrupted
        | TaskOutcome::BudgetExhausted
        | TaskOutcome::TimedOut => CaseResult::Error {
            kind: task.outcome.as_str().to_string(),
            message: task.reason.clone(),
        },
        TaskOutcome::Passed | TaskOutcome::Failed => CaseResult::Skipped {
            message: format!("not run: {}", task.reason),
        },
    }
}

fn check_case(task: &TaskReport, check: &CheckReport) -> Case {
    let classname = task.name.clone();
    let Some(run) = &check.final_run else {
        return Case {
            classname,
            name: check.name.clone(),
            time_ms: 0,
            result: ended_early(task),
            flaky_attempts: Vec::new(),
            rerun_failures: Vec::new(),
            system_out: None,
        };
    };
    let baseline = match &check.baseline {
        Some(base) if base.passed => "passed at base",
        Some(_) => "failed at base",
        None => "no baseline",
    };
    let result = if run.passed {
        CaseResult::Passed
    } else {
        let how = if run.timed_out {
            "timed out".to_string()
        } else {
            match run.exit_code {
                Some(code) => format!("exit code {code}"),
                None => "killed".to_string(),
            }
        };
        // Reporters show the first line of the message: what kind of
        // failure, and where the check is declared.
        let line = if check.line > 0 {
            check.line
        } else {
            task.line
        };
        let attempts = if run.attempts > 1 {
            format!("; attempt {} of {}", run.attempts, run.attempts)
        } else {
            String::new()
        };
        CaseResult::Failed {
            kind: "check_failed",
            message: format!(
                "{}: check {} ({}:{line}): `{}` failed ({how}{attempts}; {baseline})",
                check.status.as_str().replace('_', " "),
                check.name,
                task.file,
                check.run,
            ),
            body: run.output_tail.clone(),
        }
    };
    Case {
        classname,
        name: check.name.clone(),
        time_ms: run.duration_ms,
        result,
        flaky_attempts: if run.flaky {
            run.failed_attempts.clone()
        } else {
            Vec::new()
        },
        rerun_failures: if run.passed {
            Vec::new()
        } else {
            run.failed_attempts.clone()
        },
        system_out: run
            .passed
            .then(|| run.output_tail.clone())
            .filter(|out| !out.is_empty()),
    }
}

fn review_case(task: &TaskReport) -> Case {
    let time_ms = task
        .stages
        .iter()
        .filter(|s| s.stage == "preview")
        .map(|s| s.duration_ms)
        .sum();
    let (result, system_out) = match &task.review {
        None => (ended_early(task), None),
        Some(review) => {
            // A bug hunt's findings decide it, never the verdict.
            let blocking = review.blocks() && task.kind != crate::task::TaskKind::BugHunt.as_str();
            let result = if blocking {
                CaseResult::Failed {
                    kind: "review_rejected",
                    message: "the review requested changes".to_string(),
                    body: review_text(review),
                }
            } else {
                CaseResult::Passed
            };
            (result, (!blocking).then(|| review_text(review)))
        }
    };
    Case {
        classname: task.name.clone(),
        name: "review".to_string(),
        time_ms,
        result,
        flaky_attempts: Vec::new(),
        rerun_failures: Vec::new(),
        system_out,
    }
}

fn review_text(review: &super::model::Review) -> String {
    let mut text = review.summary.clone();
    if !review.risks.is_empty() {
        text.push_str("\n\nRisks:\n");
        for risk in &review.risks {
            text.push_str("- ");
            text.push_str(risk);
            text.push('\n');
        }
    }
    text
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

//! The texts `kkrun export` writes: the commit message and the pull-request
//! body, both built from the task's record in `report.json`.
//!
//! The report is read through a lenient view of only the fields used here,
//! so a report written by another kkrun version (with fields added) still
//! exports.

use serde::Deserialize;

/// The longest commit title kept whole; longer ones are cut at a word.
const TITLE_WIDTH: usize = 72;

/// The part of `report.json` that export reads.
#[derive(Debug, Clone, Deserialize)]
pub struct RunView {
    /// The run id.
    pub run_id: String,
    /// The tasks of the run.
    #[serde(default)]
    pub tasks: Vec<TaskView>,
}

/// One task of [`RunView`].
#[derive(Debug, Clone, Deserialize)]
pub struct TaskView {
    /// The task's name.
    pub name: String,
    /// The task's one-line description.
    #[serde(default)]
    pub description: String,
    /// `fix`, `refactor`, `feature` or `bug-hunt`.
    #[serde(default)]
    pub kind: String,
    /// The `provider:model` used.
    #[serde(default)]
    pub model: String,
    /// How the task ended.
    #[serde(default)]
    pub outcome: String,
    /// Why, in one line.
    #[serde(default)]
    pub reason: String,
    /// The preview stage's review.
    #[serde(default)]
    pub review: Option<ReviewView>,
    /// The task's checks.
    #[serde(default)]
    pub checks: Vec<CheckView>,
    /// Tokens used.
    #[serde(default)]
    pub usage: Option<UsageView>,
    /// Cost in USD; `None` when a price is unknown.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// The review of a [`TaskView`].
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewView {
    /// `approve` or `request_changes`.
    #[serde(default)]
    pub verdict: String,
    /// Markdown summary.
    #[serde(default)]
    pub summary: String,
    /// Risks the reviewer sees.
    #[serde(default)]
    pub risks: Vec<String>,
}

/// One check of a [`TaskView`].
#[derive(Debug, Clone, Deserialize)]
pub struct CheckView {
    /// The check's name.
    pub name: String,
    /// `fixed`, `still_failing`, `newly_broken`, `passing` or `not_run`.
    #[serde(default)]
    pub status: String,
    /// The run on the base.
    #[serde(default)]
    pub baseline: Option<CheckRunView>,
    /// The final run.
    #[serde(default, rename = "final")]
    pub final_run: Option<CheckRunView>,
}

/// One run of a [`CheckView`].
#[derive(Debug, Clone, Deserialize)]
pub struct CheckRunView {
    /// Whether it passed.
    pub passed: bool,
    /// Whether it passed only on a retry.
    #[serde(default)]
    pub flaky: bool,
}

/// Token counts of a [`TaskView`].
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct UsageView {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
}

/// The commit message: the task's description as the title (else the
/// review's first sentence, else the task name), the review's summary and
/// risks, the checks table, and `Kkrun-*` trailers.
pub fn commit_message(run_id: &str, task: &TaskView) -> String {
    let mut message = title(task);
    message.push_str("\n\n");
    if let Some(review) = &task.review {
        let summary = review.summary.trim();
        if !summary.is_empty() {
            message.push_str(summary);
            message.push_str("\n\n");
        }
        if !review.risks.is_empty() {
            message.push_str("Risks:\n");
            for risk in &review.risks {
                message.push_str(&format!("- {}\n", one_line(risk)));
            }
            message.push('\n');
        }
    }
    if !task.checks.is_empty() {
        message.push_str(&check_table_text(&task.checks));
        message.push('\n');
    }
    message.push_str(&format!("Kkrun-Run: {}\n", one_line(run_id)));
    message.push_str(&format!("Kkrun-Task: {}\n", one_line(&task.name)));
    message.push_str(&format!("Kkrun-Model: {}\n", one_line(&task.model)));
    message.push_str(&format!("Kkrun-Cost: {}\n", cost(task.cost_usd)));
    message
}

/// The pull-request body in Markdown: summary, risks, checks, cost, and
/// where it came from.
pub fn pr_body(run_id: &str, task: &TaskView) -> String {
    let mut body = String::from("## Summary\n\n");
    match task.review.as_ref().map(|r| r.summary.trim()) {
        Some(summary) if !summary.is_empty() => body.push_str(summary),
        _ => body.push_str(&format!(
            "{} (the task has no review; outcome {}: {})",
            if task.description.is_empty() {
                &task.name
            } else {
                &task.description
            },
            task.outcome,
            task.reason
        )),
    }
    body.push_str("\n\n## Risks\n\n");
    match task.review.as_ref().map(|r| r.risks.as_slice()) {
        Some(risks) if !risks.is_empty() => {
            for risk in risks {
                body.push_str(&format!("- {}\n", one_line(risk)));
            }
        }
        _ => body.push_str("None named by the review.\n"),
    }
    body.push_str("\n## Checks\n\n");
    if task.checks.is_empty() {
        body.push_str("The task has no checks.\n");
    } else {
        body.push_str("| check | base | now | status |\n|---|---|---|---|\n");
        for check in &task.checks {
            body.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                check.name.replace('|', "\\|"),
                run_word(check.baseline.as_ref()),
                run_word(check.final_run.as_ref()),
                check.status.replace('_', " ")
            ));
        }
    }
    body.push_str("\n## Cost\n\n");
    let tokens = task
        .usage
        .map(|u| {
            format!(
                "{} input and {} output tokens",
                u.input_tokens, u.output_tokens
            )
        })
        .unwrap_or_else(|| "tokens not recorded".to_owned());
    body.push_str(&format!("{tokens}, {}.\n", cost(task.cost_usd)));
    let verdict = task
        .review
        .as_ref()
        .map(|r| r.verdict.replace('_', " "))
        .unwrap_or_else(|| "no review".to_owned());
    body.push_str(&format!(
        "\n---\nkkrun run `{run_id}`, task `{}` ({}), model `{}`: outcome {}, review {verdict}.\n",
        task.name,
        if task.kind.is_empty() {
            "task"
        } else {
            &task.kind
        },
        task.model,
        task.outcome,
    ));
    body
}

fn title(task: &TaskView) -> String {
    let first_sentence = task.review.as_ref().and_then(|review| {
        let text = one_line(review.summary.trim_start_matches(['#', ' ']));
        let end = text.find(". ").map(|i| i + 1).unwrap_or(text.len());
        let sentence = text[..end].trim_end_matches('.').trim().to_owned();
        (!sentence.is_empty()).then_some(sentence)
    });
    let text = [Some(one_line(&task.description)), first_sentence]
        .into_iter()
        .flatten()
        .find(|text| !text.is_empty())
        .unwrap_or_else(|| format!("kkrun: {}", task.name));
    cut_at_word(&text, TITLE_WIDTH)
}

fn cut_at_word(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    if let Some(space) = cut.rfind(' ').filter(|&i| i > width / 2) {
        cut.truncate(space);
    }
    format!("{}…", cut.trim_end())
}

fn check_table_text(checks: &[CheckView]) -> String {
    let width = checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .max("check".len());
    let mut text = format!("{:<width$}  {:<6}  {:<6}  status\n", "check", "base", "now");
    for check in checks {
        text.push_str(&format!(
            "{:<width$}  {:<6}  {:<6}  {}\n",
            one_line(&check.name),
            run_word(check.baseline.as_ref()),
            run_word(check.final_run.as_ref()),
            check.status.replace('_', " ")
        ));
    }
    text
}

fn run_word(run: Option<&CheckRunView>) -> &'static str {
    match run {
        None => "-",
        Some(run) if run.passed && run.flaky => "flaky",
        Some(run) if run.passed => "pass",
        Some(_) => "fail",
    }
}

fn cost(cost: Option<f64>) -> String {
    match cost.filter(|c| c.is_finite()) {
        Some(cost) => format!("${cost:.4}"),
        None => "unknown".to_owned(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskView {
        serde_json::from_value(serde_json::json!({
            "name": "fix-iso-weeks",
            "description": "Accept ISO week dates in parse_date",
            "kind": "fix",
            "model": "openai:gpt-4.1",
            "outcome": "passed",
            "reason": "all 1 check(s) pass",
            "review": {
                "verdict": "approve",
                "summary": "`parse_date` now accepts week dates. Tests unchanged.",
                "risks": ["W54 raises\nValueError"],
                "advisory": false
            },
            "checks": [
                {"name": "unit", "status": "fixed",
                 "baseline": {"passed": false}, "final": {"passed": true}},
                {"name": "lint", "status": "passing",
                 "baseline": {"passed": true}, "final": {"passed": true, "flaky": true}}
            ],
            "usage": {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 7},
            "cost_usd": 0.01234,
            "field_of_a_later_version": true
        }))
        .unwrap()
    }

    #[test]
    fn commit_message_has_title_body_checks_and_trailers() {
        assert_eq!(
            commit_message("R1", &task()),
            "Accept ISO week dates in parse_date\n\n\
             `parse_date` now accepts week dates. Tests unchanged.\n\n\
             Risks:\n- W54 raises ValueError\n\n\
             check  base    now     status\n\
             unit   fail    pass    fixed\n\
             lint   pass    flaky   passing\n\n\
             Kkrun-Run: R1\n\
             Kkrun-Task: fix-iso-weeks\n\
             Kkrun-Model: openai:gpt-4.1\n\
             Kkrun-Cost: $0.0123\n"
        );
    }

    #[test]
    fn title_falls_back_to_the_review_then_the_name_and_is_cut() {
        let mut task = task();
        task.description.clear();
        assert!(commit_message("R", &task).starts_with("`parse_date` now accepts week dates\n\n"));
        task.review = None;
        task.cost_usd = None;
        let message = commit_message("R", &task);
        assert!(message.starts_with("kkrun: fix-iso-weeks\n\n"), "{message}");
        assert!(message.ends_with("Kkrun-Cost: unknown\n"), "{message}");
        task.description = "word ".repeat(30);
        let title = commit_message("R", &task)
            .lines()
            .next()
            .unwrap()
            .to_owned();
        assert!(title.chars().count() <= TITLE_WIDTH, "{title}");
        assert!(title.ends_with("word…"), "{title}");
    }

    #[test]
    fn pr_body_has_summary_risks_checks_and_cost() {
        let body = pr_body("R1", &task());
        assert!(body.starts_with("## Summary\n\n`parse_date` now accepts week dates."));
        assert!(body.contains("## Risks\n\n- W54 raises ValueError\n"));
        assert!(body.contains("| `unit` | fail | pass | fixed |\n"));
        assert!(body.contains("| `lint` | pass | flaky | passing |\n"));
        assert!(body.contains("## Cost\n\n100 input and 7 output tokens, $0.0123.\n"));
        assert!(body.contains("kkrun run `R1`, task `fix-iso-weeks` (fix)"));
        let mut bare = task();
        bare.review = None;
        bare.checks.clear();
        let body = pr_body("R1", &bare);
        assert!(body.contains("(the task has no review; outcome passed"));
        assert!(body.contains("None named by the review."));
        assert!(body.contains("The task has no checks."));
    }
}

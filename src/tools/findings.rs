//! `report_finding` and `withdraw_finding`: the bug-hunt tools. A finding
//! is checked against the workspace when it is reported (the file exists,
//! the lines are in range, the reproducer passes the shell policy), so the
//! model can correct it at once; kkrun confirms it later by reproduction.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Deserialize;
use serde_json::json;

use super::ToolError;
use super::confine::confine;
use super::context::ToolContext;
use super::fs::read_text;
use super::policy::ShellGuard;
use crate::events::{EventKind, EventSink};
use crate::findings::fingerprint::{fingerprint, with_occurrence};
use crate::findings::{BaselineFindings, BaselineState, Finding, FindingStatus, Severity};
use crate::provider::ToolSpec;
use crate::task::Stage;

/// Findings one task may report; beyond it the model is told to stop and
/// prioritise (each finding may cost a reproduction run).
pub const MAX_FINDINGS: usize = 200;

/// Longest `title` accepted, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// Longest `rule_id` accepted.
const MAX_RULE_ID_CHARS: usize = 64;

/// Which finding tools a stage gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingTools {
    /// `report_finding` (the hunting stages of a bug hunt).
    Report,
    /// `withdraw_finding` (the preview of a bug hunt).
    Withdraw,
}

impl FindingTools {
    /// The tool's name.
    pub fn tool_name(self) -> &'static str {
        match self {
            FindingTools::Report => "report_finding",
            FindingTools::Withdraw => "withdraw_finding",
        }
    }
}

/// The findings of one task, shared by its stages, and the finding tool the
/// current stage is offered.
#[derive(Debug, Clone)]
pub struct FindingsDesk {
    ledger: Arc<Mutex<Vec<Finding>>>,
    repo_root: PathBuf,
    baseline: Option<Arc<BaselineFindings>>,
    offer: Option<FindingTools>,
    stage: Stage,
    events: Option<EventSink>,
}

impl FindingsDesk {
    /// An empty desk for a task in the repository whose work tree root is
    /// `repo_root`; reported paths are made relative to it, and each
    /// finding is `known` when its fingerprint is in `baseline`.
    pub fn new(repo_root: &Path, baseline: Option<BaselineFindings>) -> FindingsDesk {
        FindingsDesk {
            ledger: Arc::new(Mutex::new(Vec::new())),
            baseline: baseline.map(Arc::new),
            repo_root: repo_root
                .canonicalize()
                .unwrap_or_else(|_| repo_root.to_path_buf()),
            offer: None,
            stage: Stage::Code,
            events: None,
        }
    }

    /// The same findings, offering `offer` to `stage`, whose events go to
    /// `events`.
    pub fn for_stage(
        &self,
        stage: Stage,
        offer: Option<FindingTools>,
        events: EventSink,
    ) -> FindingsDesk {
        FindingsDesk {
            offer,
            stage,
            events: Some(events),
            ..self.clone()
        }
    }

    /// The spec of the offered tool, if any.
    pub fn specs(&self) -> Vec<ToolSpec> {
        match self.offer {
            Some(FindingTools::Report) => vec![report_finding_spec()],
            Some(FindingTools::Withdraw) => vec![withdraw_finding_spec()],
            None => Vec::new(),
        }
    }

    /// Whether the current stage is offered `tool`.
    pub fn offers(&self, tool: &str) -> bool {
        self.offer.is_some_and(|offer| offer.tool_name() == tool)
    }

    /// Every finding so far, in the order reported.
    pub fn findings(&self) -> Vec<Finding> {
        self.lock().clone()
    }

    /// Replaces the findings (after reproduction and baseline comparison).
    pub fn replace(&self, findings: Vec<Finding>) {
        *self.lock() = findings;
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Finding>> {
        // A panic elsewhere cannot leave the list half-updated: every change
        // is a single push or field assignment.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, kind: EventKind) {
        if let Some(events) = &self.events {
            events.emit(kind);
        }
    }
}

/// Every finding tool's spec, for messages that list what exists.
pub fn all_specs() -> Vec<ToolSpec> {
    vec![report_finding_spec(), withdraw_finding_spec()]
}

pub(crate) fn report_finding_spec() -> ToolSpec {
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    ToolSpec {
        name: "report_finding".to_string(),
        description: "Report one bug you found, with where it is and what shows it. kkrun checks that the file \
                      exists and the lines are in range. Give `reproduce` whenever you can: a shell command (under \
                      the task's shell policy) that exits non-zero because of this bug and 0 once it is fixed. kkrun \
                      runs it on the untouched original code, in a scratch copy that also holds the files you \
                      added (such as a reproduction test), and only a failing run confirms the finding. Report each \
                      bug once; the answer gives the finding's id."
            .to_string(),
        parameters: json!({
            "type": "object",
            "properties": {
                "file": {"type": "string", "description": "Path of the file with the bug, relative to the workspace root."},
                "start_line": {"type": "integer", "minimum": 1, "description": "First line of the buggy code (1-based)."},
                "end_line": {"type": "integer", "minimum": 1, "description": "Last line of the buggy code (inclusive); default start_line."},
                "severity": {"type": "string", "enum": severities, "description": "critical: data loss or an exploitable hole; high: wrong results or crashes on ordinary input; medium: on unusual input; low: minor; note: worth knowing."},
                "rule_id": {"type": "string", "description": "The kind of bug, kebab-case and stable across runs, e.g. `off-by-one`, `sql-injection`, `unchecked-error`."},
                "title": {"type": "string", "description": "One line saying what is wrong."},
                "message": {"type": "string", "description": "What is wrong, why it matters, and how to fix it."},
                "evidence": {"type": "string", "description": "What shows it: the input, the code path, the observed versus the expected result."},
                "reproduce": {"type": "string", "description": "A shell command, run in the workspace root, that fails (exit non-zero) because of this bug."}
            },
            "required": ["file", "start_line", "severity", "rule_id", "title", "message", "evidence"],
            "additionalProperties": false
        }),
    }
}

pub(crate) fn withdraw_finding_spec() -> ToolSpec {
    ToolSpec {
        name: "withdraw_finding".to_string(),
        description: "Withdraw a finding you judge to be false (not a bug, a duplicate, or a reproduction that fails \
                      for another reason). Withdrawn findings stay in report.json with your reason but leave the \
                      SARIF output and never fail the task."
            .to_string(),
        parameters: json!({
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "The finding's id, such as `F1`."},
                "reason": {"type": "string", "description": "Why the finding is false."}
            },
            "required": ["id", "reason"],
            "additionalProperties": false
        }),
    }
}

/// The arguments of `report_finding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportFindingArgs {
    file: String,
    start_line: u64,
    #[serde(default)]
    end_line: Option<u64>,
    severity: Severity,
    rule_id: String,
    title: String,
    message: String,
    evidence: String,
    #[serde(default)]
    reproduce: Option<String>,
}

/// The arguments of `withdraw_finding`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WithdrawFindingArgs {
    id: String,
    reason: String,
}

/// Runs `report_finding`.
pub(crate) fn report_finding(
    ctx: &ToolContext,
    desk: &FindingsDesk,
    args: ReportFindingArgs,
) -> Result<String, ToolError> {
    let rule_id = args.rule_id.trim().to_string();
    if !is_kebab_case(&rule_id) {
        return Err(ToolError::Failed(format!(
            "`rule_id` must be kebab-case (lowercase letters and digits joined by `-`, at most \
             {MAX_RULE_ID_CHARS} characters), naming the kind of bug, e.g. `off-by-one`; got `{}`",
            args.rule_id
        )));
    }
    let title = args.title.trim().to_string();
    if title.is_empty() || title.contains('\n') || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ToolError::Failed(format!(
            "`title` must be one non-empty line of at most {MAX_TITLE_CHARS} characters"
        )));
    }
    for (field, value) in [("message", &args.message), ("evidence", &args.evidence)] {
        if value.trim().is_empty() {
            return Err(ToolError::Failed(format!(
                "`{field}` is empty; say {}",
                if field == "message" {
                    "what is wrong and why it matters"
                } else {
                    "what shows the bug: the input, the code path, the observed result"
                }
            )));
        }
    }
    let reproduce = match args.reproduce.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(command) => {
            let guard = ShellGuard::new(&ctx.shell).map_err(|e| {
                ToolError::Refused(format!(
                    "`reproduce` cannot run: the task's {e}; report the finding without `reproduce`"
                ))
            })?;
            guard.check(command).map_err(|refusal| {
                ToolError::Refused(format!(
                    "`reproduce` would be refused when kkrun runs it: {refusal}; give a command the policy \
                     allows, or leave `reproduce` out"
                ))
            })?;
            Some(command.to_string())
        }
    };

    let path = confine(&ctx.workspace, &args.file)?;
    let content = read_text(&path)?;
    let line_count = u64::try_from(content.lines().count()).unwrap_or(u64::MAX);
    let end_line = args.end_line.unwrap_or(args.start_line);
    if args.start_line == 0 || args.start_line > line_count {
        return Err(ToolError::Failed(format!(
            "`start_line` {} is outside `{}`, which has {line_count} line(s); lines are 1-based",
            args.start_line, path.display
        )));
    }
    if end_line < args.start_line || end_line > line_count {
        return Err(ToolError::Failed(format!(
            "`end_line` {end_line} must be between start_line {} and {line_count}, the last line of `{}`",
            args.start_line, path.display
        )));
    }
    let file = repo_relative(&desk.repo_root, &path.absolute).unwrap_or(path.display.clone());

    let mut findings = desk.lock();
    if findings.len() >= MAX_FINDINGS {
        return Err(ToolError::Refused(format!(
            "this task already has {MAX_FINDINGS} findings, the most one task may report; finish the stage"
        )));
    }
    let mut fingerprint = fingerprint(&rule_id, &file, &content, args.start_line, end_line);
    let mut occurrence = 1;
    while let Some(same) = findings.iter().find(|f| f.fingerprint == fingerprint) {
        if same.file == file && same.start_line == args.start_line && same.end_line == end_line {
            return Err(ToolError::Failed(format!(
                "this is already reported as {} ({}); report each bug once",
                same.id, same.title
            )));
        }
        occurrence += 1;
        fingerprint = with_occurrence(&fingerprint, occurrence);
    }
    let baseline_state = match &desk.baseline {
        Some(baseline) if baseline.contains(&fingerprint) => BaselineState::Known,
        _ => BaselineState::New,
    };
    let finding = Finding {
        id: format!("F{}", findings.len() + 1),
        rule_id,
        severity: args.severity,
        title,
        message: args.message.trim().to_string(),
        evidence: args.evidence.trim().to_string(),
        file,
        start_line: args.start_line,
        end_line,
        reproduce,
        status: FindingStatus::Unconfirmed,
        fingerprint,
        baseline_state,
        reproduction: None,
        withdrawn_reason: None,
        stage: desk.stage,
    };
    let answer = format!(
        "recorded as {} ({} {} at {}){}",
        finding.id,
        finding.severity.as_str(),
        finding.rule_id,
        finding.location(),
        if finding.reproduce.is_some() {
            "; kkrun will run its reproducer on the untouched base"
        } else {
            "; without `reproduce` it stays unconfirmed"
        }
    );
    findings.push(finding.clone());
    drop(findings);
    desk.emit(EventKind::FindingReported {
        finding: Box::new(finding),
    });
    Ok(answer)
}

/// Runs `withdraw_finding`.
pub(crate) fn withdraw_finding(
    desk: &FindingsDesk,
    args: WithdrawFindingArgs,
) -> Result<String, ToolError> {
    let reason = args.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ToolError::Failed(
            "`reason` is empty; say why the finding is false".to_string(),
        ));
    }
    let id = args.id.trim().to_ascii_uppercase();
    let mut findings = desk.lock();
    let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
    let Some(finding) = findings.iter_mut().find(|f| f.id == id) else {
        return Err(ToolError::Failed(if ids.is_empty() {
            "there are no findings to withdraw".to_string()
        } else {
            format!(
                "there is no finding `{}`; the findings are: {}",
                args.id,
                ids.join(", ")
            )
        }));
    };
    if finding.status == FindingStatus::Withdrawn {
        return Err(ToolError::Failed(format!("{id} is already withdrawn")));
    }
    finding.status = FindingStatus::Withdrawn;
    finding.withdrawn_reason = Some(reason.clone());
    drop(findings);
    desk.emit(EventKind::FindingWithdrawn {
        id: id.clone(),
        reason,
    });
    Ok(format!("{id} withdrawn"))
}

fn is_kebab_case(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_RULE_ID_CHARS
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// `absolute` relative to the work tree root, `/`-separated.
fn repo_relative(root: &Path, absolute: &Path) -> Option<String> {
    let relative = absolute.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
    Some(parts?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_kebab_case() {
        for good in ["off-by-one", "sql-injection", "x", "utf8-2"] {
            assert!(is_kebab_case(good), "{good}");
        }
        for bad in ["", "Off-By-One", "off_by_one", "-x", "x-", "a--b", "a b"] {
            assert!(!is_kebab_case(bad), "{bad}");
        }
    }
}

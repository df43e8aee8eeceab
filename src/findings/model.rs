//! A finding as reports carry it: what the agent reported, what kkrun made
//! of it (reproduction, fingerprint, baseline), and how it counts.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad a finding is, as the agent rates it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Data loss, remote code execution, a security hole anyone can reach.
    Critical,
    /// Wrong results or crashes on ordinary input.
    High,
    /// Wrong results on unusual input, or a limited security weakness.
    Medium,
    /// A minor defect.
    Low,
    /// Worth knowing, not clearly a bug.
    Note,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Note,
    ];

    /// The name as written in tool arguments and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Note => "note",
        }
    }

    /// The SARIF `level`: critical and high are `error`, medium is
    /// `warning`, low and note are `note`.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low | Severity::Note => "note",
        }
    }

    /// The rule's `security-severity` score (0.0–10.0, as GitHub code
    /// scanning buckets it: over 9.0 critical, 7.0–8.9 high, 4.0–6.9
    /// medium, 0.1–3.9 low).
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.5",
            Severity::Low => "2.0",
            Severity::Note => "0.0",
        }
    }
}

/// What kkrun made of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// Its `reproduce` command failed on the untouched base: the bug is real.
    Confirmed,
    /// No `reproduce` command, or it passed, hung past its timeout, was
    /// refused by the shell policy or could not start.
    Unconfirmed,
    /// The preview stage withdrew it as a false positive.
    Withdrawn,
}

impl FindingStatus {
    /// The status as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Confirmed => "confirmed",
            FindingStatus::Unconfirmed => "unconfirmed",
            FindingStatus::Withdrawn => "withdrawn",
        }
    }
}

/// Whether a finding was already known from `--baseline-findings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineState {
    /// Its fingerprint is not in the baseline (or there is no baseline).
    New,
    /// Its fingerprint is in the baseline.
    Known,
}

impl BaselineState {
    /// The state as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineState::New => "new",
            BaselineState::Known => "known",
        }
    }
}

/// How a finding's `reproduce` command went on the untouched base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reproduction {
    /// `failed` (exit ≠ 0: the finding is confirmed), `passed` (exit 0),
    /// `timed_out`, `refused` (the shell policy) or `error` (it could not
    /// run: no base snapshot, bash missing, I/O).
    pub result: ReproductionResult,
    /// The command's exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// The last 4 KiB of its output (stdout and stderr interleaved), or why
    /// it did not run.
    pub output_tail: String,
}

/// How a `reproduce` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReproductionResult {
    /// It exited non-zero: the bug shows.
    Failed,
    /// It exited 0: the bug did not show.
    Passed,
    /// It was still running at the timeout and was killed.
    TimedOut,
    /// The task's shell policy refused the command.
    Refused,
    /// It could not be run.
    Error,
}

impl ReproductionResult {
    /// The result as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ReproductionResult::Failed => "failed",
            ReproductionResult::Passed => "passed",
            ReproductionResult::TimedOut => "timed_out",
            ReproductionResult::Refused => "refused",
            ReproductionResult::Error => "error",
        }
    }
}

/// One finding of a bug hunt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The finding's id in its task: `F1`, `F2`, … in the order reported.
    pub id: String,
    /// The kind of bug, kebab-case and stable (`off-by-one`, `sql-injection`).
    pub rule_id: String,
    /// How bad it is.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// What is wrong and why it matters.
    pub message: String,
    /// What shows it: the input, the code path, the observed result.
    pub evidence: String,
    /// The file, relative to the repository root, `/`-separated.
    pub file: String,
    /// First line of the finding (1-based).
    pub start_line: u64,
    /// Last line of the finding (inclusive); equal to `start_line` when the
    /// agent gave none.
    pub end_line: u64,
    /// A shell command that fails because of the bug, run by kkrun on the
    /// untouched base.
    pub reproduce: Option<String>,
    /// `confirmed`, `unconfirmed` or `withdrawn`.
    pub status: FindingStatus,
    /// Stable identity across runs: a hash of the rule id, the path and the
    /// normalised lines around the finding (not the line number).
    pub fingerprint: String,
    /// `new` or `known` against `--baseline-findings`.
    pub baseline_state: BaselineState,
    /// The reproduction run; `null` without a `reproduce` command or when
    /// the task ended before reproduction.
    pub reproduction: Option<Reproduction>,
    /// Why the preview stage withdrew it.
    pub withdrawn_reason: Option<String>,
    /// The stage that reported it.
    pub stage: crate::task::Stage,
}

impl Finding {
    /// `file:start_line` (or `file:start-end`).
    pub fn location(&self) -> String {
        if self.end_line > self.start_line {
            format!("{}:{}-{}", self.file, self.start_line, self.end_line)
        } else {
            format!("{}:{}", self.file, self.start_line)
        }
    }
}

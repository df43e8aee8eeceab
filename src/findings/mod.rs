//! Bug-hunt findings: the model of a finding, its stable fingerprint, its
//! confirmation by reproduction on the untouched base, the comparison with
//! a previous run's findings, and the `fail_on` rule.
//!
//! The tools that record findings live in `tools::findings`; the SARIF
//! output in `report::sarif`.

pub mod baseline;
pub mod fingerprint;
mod model;
pub mod reproduce;

pub use baseline::{BaselineError, BaselineFindings};
pub use model::{
    BaselineState, Finding, FindingStatus, Reproduction, ReproductionResult, Severity,
};

use crate::task::FailOn;

/// The findings that meet `fail_on` (withdrawn ones never do). A bug hunt
/// with any of them fails.
pub fn failing(fail_on: FailOn, findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| match fail_on {
            FailOn::Never => false,
            FailOn::Any => f.status != FindingStatus::Withdrawn,
            FailOn::Confirmed => f.status == FindingStatus::Confirmed,
            FailOn::NewConfirmed => {
                f.status == FindingStatus::Confirmed && f.baseline_state == BaselineState::New
            }
        })
        .collect()
}

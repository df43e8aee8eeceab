//! `--baseline-findings FILE`: the fingerprints of a previous run's
//! findings, read from its `findings.sarif` or its `report.json`, which
//! decide whether tonight's findings are `new` or `known`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::fingerprint::FINGERPRINT_KEY;
use super::{BaselineState, Finding, FindingStatus};

/// Why a baseline file cannot be used. Bad input: nothing runs (exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// The file cannot be read.
    #[error("--baseline-findings {}: cannot read it: {source} (hint: pass a previous run's findings.sarif or report.json)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("--baseline-findings {}: not JSON ({source}) (hint: pass a previous run's findings.sarif or report.json)", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// The parse error, with its line and column.
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but neither SARIF nor a kkrun report.
    #[error("--baseline-findings {}: {what} (hint: pass a previous run's findings.sarif or report.json)", path.display())]
    Unrecognised {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
}

/// The fingerprints of a previous run's findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineFindings {
    fingerprints: BTreeSet<String>,
}

impl BaselineFindings {
    /// Reads a `findings.sarif` (SARIF 2.1.0 with kkrun's
    /// `partialFingerprints`) or a kkrun `report.json`. Withdrawn findings
    /// of a report are left out, as SARIF leaves them out.
    pub fn load(path: &Path) -> Result<BaselineFindings, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_owned(),
            source,
        })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|source| BaselineError::NotJson {
                path: path.to_owned(),
                source,
            })?;
        Self::from_json(&value).map_err(|what| BaselineError::Unrecognised {
            path: path.to_owned(),
            what,
        })
    }

    /// The fingerprints in a parsed SARIF log or report.
    pub fn from_json(value: &Value) -> Result<BaselineFindings, String> {
        let mut fingerprints = BTreeSet::new();
        if let Some(runs) = value.get("runs") {
            let runs = runs
                .as_array()
                .ok_or("`runs` is not an array, so this is not a SARIF log")?;
            for result in runs
                .iter()
                .filter_map(|run| run.get("results").and_then(Value::as_array))
                .flatten()
            {
                if let Some(fp) = result
                    .pointer(&format!(
                        "/partialFingerprints/{}",
                        FINGERPRINT_KEY.replace('/', "~1")
                    ))
                    .and_then(Value::as_str)
                {
                    fingerprints.insert(fp.to_string());
                }
            }
        } else if let Some(tasks) = value.get("tasks") {
            if value.get("schema_version").is_none() {
                return Err(
                    "it has `tasks` but no `schema_version`: not a kkrun report.json".into(),
                );
            }
            let tasks = tasks.as_array().ok_or("`tasks` is not an array")?;
            for finding in tasks
                .iter()
                .filter_map(|task| task.get("findings").and_then(Value::as_array))
                .flatten()
            {
                let withdrawn = finding.get("status").and_then(Value::as_str)
                    == Some(FindingStatus::Withdrawn.as_str());
                if let (false, Some(fp)) = (
                    withdrawn,
                    finding.get("fingerprint").and_then(Value::as_str),
                ) {
                    fingerprints.insert(fp.to_string());
                }
            }
        } else {
            return Err(
                "it is neither a SARIF log (no `runs`) nor a kkrun report.json (no `tasks`)".into(),
            );
        }
        Ok(BaselineFindings { fingerprints })
    }

    /// A baseline of exactly these fingerprints (as `run.started` records
    /// them for `kkrun resume`).
    pub fn from_fingerprints(fingerprints: impl IntoIterator<Item = String>) -> BaselineFindings {
        BaselineFindings {
            fingerprints: fingerprints.into_iter().collect(),
        }
    }

    /// The baseline's fingerprints, sorted.
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.fingerprints.iter().map(String::as_str)
    }

    /// How many findings the baseline holds.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// Whether the baseline holds no findings.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Whether a finding with `fingerprint` was in the baseline.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints.contains(fingerprint)
    }

    /// Marks each finding `known` or `new`.
    pub fn mark(&self, findings: &mut [Finding]) {
        for finding in findings {
            finding.baseline_state = if self.contains(&finding.fingerprint) {
                BaselineState::Known
            } else {
                BaselineState::New
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_sarif_fingerprints() {
        let sarif = json!({"version": "2.1.0", "runs": [{"results": [
            {"partialFingerprints": {"kkrun/v1": "abc:1"}},
            {"partialFingerprints": {"other": "zzz"}}
        ]}]});
        let baseline = BaselineFindings::from_json(&sarif).unwrap_or_default();
        assert!(baseline.contains("abc:1"));
        assert_eq!(baseline.len(), 1);
    }

    #[test]
    fn reads_report_fingerprints_without_withdrawn_ones() {
        let report = json!({"schema_version": 2, "tasks": [{"findings": [
            {"fingerprint": "a:1", "status": "confirmed"},
            {"fingerprint": "b:1", "status": "withdrawn"}
        ]}, {"name": "no findings key"}]});
        let baseline = BaselineFindings::from_json(&report).unwrap_or_default();
        assert!(baseline.contains("a:1"));
        assert!(!baseline.contains("b:1"));
    }

    #[test]
    fn rejects_other_json() {
        assert!(BaselineFindings::from_json(&json!({"hello": 1})).is_err());
        assert!(BaselineFindings::from_json(&json!({"runs": 3})).is_err());
        assert!(BaselineFindings::from_json(&json!({"tasks": []})).is_err());
    }
}

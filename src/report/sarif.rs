//! `findings.sarif`: the findings of a run's bug hunts as SARIF 2.1.0, the
//! format GitHub code scanning (and most security dashboards) ingest.
//!
//! One SARIF run per bug-hunt task, told apart by `automationDetails.id`
//! (`kkrun/<task>/<run-id>`), so several hunts on one commit do not close
//! each other's alerts. Paths are repository-relative with the
//! `%SRCROOT%` base, identity is kkrun's fingerprint under
//! `partialFingerprints`, withdrawn findings are left out, and every text
//! goes through credential redaction. GitHub's upload limits are enforced
//! here: at most [`MAX_RESULTS_PER_RUN`] results per run and
//! [`MAX_GZIPPED_BYTES`] for the gzipped file, keeping the most severe.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

use super::model::{Report, TaskReport};
use crate::findings::fingerprint::FINGERPRINT_KEY;
use crate::findings::{Finding, FindingStatus, Severity};
use crate::provider::redact_credentials;

/// GitHub code scanning rejects a SARIF run with more results than this.
pub const MAX_RESULTS_PER_RUN: usize = 25_000;

/// GitHub code scanning rejects a SARIF upload larger than this once
/// gzipped (10 MB, counted in decimal megabytes to stay on the safe side).
pub const MAX_GZIPPED_BYTES: usize = 10_000_000;

/// The URI base every location is relative to: the repository root.
pub const SRCROOT: &str = "%SRCROOT%";

/// The limits a SARIF file is cut to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SarifLimits {
    /// Results per run.
    pub max_results_per_run: usize,
    /// Bytes of the whole file after gzip.
    pub max_gzipped_bytes: usize,
}

impl Default for SarifLimits {
    fn default() -> Self {
        SarifLimits {
            max_results_per_run: MAX_RESULTS_PER_RUN,
            max_gzipped_bytes: MAX_GZIPPED_BYTES,
        }
    }
}

/// Results left out of one task's SARIF run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The task.
    pub task: String,
    /// Results left out.
    pub count: usize,
    /// Results the task had to report (withdrawn ones not counted).
    pub of: usize,
    /// Which limit: `results per run` or `gzipped size`.
    pub limit: &'static str,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "findings.sarif: {} of {} finding(s) of task {} left out to stay within GitHub's limit on {}; \
             the most severe were kept, and report.json has them all",
            self.count, self.of, self.task, self.limit
        )
    }
}

/// A rendered SARIF log.
#[derive(Debug, Clone, PartialEq)]
pub struct Sarif {
    /// The log, ready to be written.
    pub log: Value,
    /// What the limits made it leave out.
    pub dropped: Vec<Dropped>,
}

/// The SARIF log of `report`'s bug hunts, or `None` when the run has none.
pub fn render(report: &Report, limits: SarifLimits) -> Option<Sarif> {
    let hunts: Vec<&TaskReport> = report
        .tasks
        .iter()
        .filter(|task| task.kind == crate::task::TaskKind::BugHunt.as_str())
        .collect();
    if hunts.is_empty() {
        return None;
    }
    // Each task's reportable findings, most severe first: what is cut is
    // always the tail.
    let mut ranked: Vec<Vec<&Finding>> = hunts
        .iter()
        .map(|task| {
            let mut findings: Vec<&Finding> = task
                .findings
                .iter()
                .filter(|f| f.status != FindingStatus::Withdrawn)
                .collect();
            findings.sort_by_key(|f| rank(f));
            findings
        })
        .collect();
    let totals: Vec<usize> = ranked.iter().map(Vec::len).collect();
    let mut dropped: Vec<Dropped> = Vec::new();
    for (task, findings) in hunts.iter().zip(ranked.iter_mut()) {
        if findings.len() > limits.max_results_per_run {
            dropped.push(Dropped {
                task: task.name.clone(),
                count: findings.len() - limits.max_results_per_run,
                of: findings.len(),
                limit: "results per run",
            });
            findings.truncate(limits.max_results_per_run);
        }
    }

    let build = |kept: &[Vec<&Finding>], dropped: &[Dropped]| -> Value {
        let runs: Vec<Value> = hunts
            .iter()
            .zip(kept)
            .map(|(task, findings)| {
                let notes: Vec<&Dropped> = dropped.iter().filter(|d| d.task == task.name).collect();
                sarif_run(report, task, findings, &notes)
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": runs,
        })
    };

    let log = build(&ranked, &dropped);
    if gzipped_len(&log) <= limits.max_gzipped_bytes {
        return Some(Sarif { log, dropped });
    }
    // Too big: keep the globally most severe `n` results, with `n` found by
    // bisection (the size grows with `n`).
    let mut everything: Vec<(usize, &Finding)> = ranked
        .iter()
        .enumerate()
        .flat_map(|(run, findings)| findings.iter().map(move |f| (run, *f)))
        .collect();
    everything.sort_by_key(|(_, f)| rank(f));
    let keep_top = |n: usize| -> Vec<Vec<&Finding>> {
        let mut kept: Vec<Vec<&Finding>> = vec![Vec::new(); ranked.len()];
        for (run, finding) in everything.iter().take(n) {
            kept[*run].push(*finding);
        }
        kept
    };
    let with_size_drops = |kept: &[Vec<&Finding>]| -> Vec<Dropped> {
        let mut all = dropped.clone();
        for ((task, findings), total) in hunts.iter().zip(kept).zip(&totals) {
            let already: usize = all
                .iter()
                .filter(|d| d.task == task.name)
                .map(|d| d.count)
                .sum();
            let cut = total - findings.len() - already;
            if cut > 0 {
                all.push(Dropped {
                    task: task.name.clone(),
                    count: cut,
                    of: *total,
                    limit: "gzipped size",
                });
            }
        }
        all
    };
    let (mut low, mut high) = (0, everything.len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        let kept = keep_top(mid);
        if gzipped_len(&build(&kept, &with_size_drops(&kept))) <= limits.max_gzipped_bytes {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let kept = keep_top(low);
    let dropped = with_size_drops(&kept);
    Some(Sarif {
        log: build(&kept, &dropped),
        dropped,
    })
}

/// Most severe first, then confirmed before unconfirmed, then report order.
fn rank(finding: &Finding) -> (Severity, bool, u64) {
    let order = finding
        .id
        .trim_start_matches('F')
        .parse::<u64>()
        .unwrap_or(u64::MAX);
    (
        finding.severity,
        finding.status != FindingStatus::Confirmed,
        order,
    )
}

fn sarif_run(
    report: &Report,
    task: &TaskReport,
    findings: &[&Finding],
    dropped: &[&Dropped],
) -> Value {
    // One rule per rule id, rated by its most severe finding.
    let mut rules: BTreeMap<&str, (Severity, &str)> = BTreeMap::new();
    for finding in findings {
        let entry = rules
            .entry(finding.rule_id.as_str())
            .or_insert((finding.severity, finding.title.as_str()));
        if finding.severity < entry.0 {
            *entry = (finding.severity, finding.title.as_str());
        }
    }
    let rule_index: BTreeMap<&str, usize> =
        rules.keys().enumerate().map(|(i, id)| (*id, i)).collect();
    let rules: Vec<Value> = rules
        .iter()
        .map(|(id, (severity, _))| {
            json!({
                "id": id,
                "name": rule_name(id),
                "shortDescription": {"text": id.replace('-', " ")},
                "defaultConfiguration": {"level": severity.sarif_level()},
                "properties": {
                    "security-severity": severity.security_severity(),
                    "tags": ["kkrun", "bug-hunt"],
                },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|finding| sarif_result(finding, rule_index.get(finding.rule_id.as_str()).copied()))
        .collect();
    let notifications: Vec<Value> = dropped
        .iter()
        .map(|d| {
            json!({
                "level": "warning",
                "message": {"text": d.to_string()},
                "descriptor": {"id": "kkrun-results-dropped"},
            })
        })
        .collect();
    let successful = !matches!(
        task.outcome,
        super::TaskOutcome::Error
            | super::TaskOutcome::Interrupted
            | super::TaskOutcome::BudgetExhausted
            | super::TaskOutcome::TimedOut
    );
    let mut invocation = json!({
        "executionSuccessful": successful,
        "startTimeUtc": task.started_at,
    });
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = Value::Array(notifications);
    }
    if !successful {
        invocation["exitCodeDescription"] = Value::String(redact_credentials(&format!(
            "{}: {}",
            task.outcome.as_str(),
            task.reason
        )));
    }
    let mut properties = json!({
        "task": task.name,
        "taskFile": task.file,
        "outcome": task.outcome.as_str(),
    });
    if let Some(commit) = &task.base_commit {
        properties["baseCommit"] = Value::String(commit.clone());
    }
    json!({
        "tool": {
            "driver": {
                "name": "kkrun",
                "semanticVersion": report.kkrun_version,
                "rules": rules,
            }
        },
        "automationDetails": {"id": format!("kkrun/{}/{}", task.name, report.run_id)},
        "invocations": [invocation],
        "columnKind": "utf16CodeUnits",
        "results": results,
        "properties": properties,
    })
}

fn sarif_result(finding: &Finding, rule_index: Option<usize>) -> Value {
    let mut result = json!({
        "ruleId": finding.rule_id,
        "level": finding.severity.sarif_level(),
        "message": {"text": redact_credentials(&format!("{}\n\n{}", finding.title, finding.message))},
        "locations": [{
            "physicalLocation": {
                "artifactLocation": {"uri": uri_path(&finding.file), "uriBaseId": SRCROOT},
                "region": {"startLine": finding.start_line, "endLine": finding.end_line},
            }
        }],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
        "properties": {
            "id": finding.id,
            "title": redact_credentials(&finding.title),
            "severity": finding.severity.as_str(),
            "status": finding.status.as_str(),
            "evidence": redact_credentials(&finding.evidence),
        },
    });
    if let Some(index) = rule_index {
        result["ruleIndex"] = json!(index);
    }
    result["baselineState"] = json!(match finding.baseline_state {
        crate::findings::BaselineState::New => "new",
        crate::findings::BaselineState::Known => "unchanged",
    });
    if let Some(command) = &finding.reproduce {
        result["properties"]["reproduce"] = Value::String(redact_credentials(command));
    }
    if let Some(reproduction) = &finding.reproduction {
        result["properties"]["reproduction"] = json!({
            "result": reproduction.result.as_str(),
            "exitCode": reproduction.exit_code,
            "outputTail": redact_credentials(&reproduction.output_tail),
        });
    }
    result
}

/// `off-by-one` → `OffByOne`: SARIF's `name` is an identifier-like label.
fn rule_name(id: &str) -> String {
    id.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A relative path as a URI reference: every byte outside the unreserved
/// set and `/` is percent-encoded, so spaces and `#` survive.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The log's size once serialized as written and gzipped.
fn gzipped_len(log: &Value) -> usize {
    let text = serde_json::to_vec_pretty(log).unwrap_or_default();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    match encoder.write_all(&text).and_then(|()| encoder.finish()) {
        Ok(bytes) => bytes.len(),
        // Compression into memory cannot fail short of running out of it;
        // the uncompressed size is then an upper bound.
        Err(_) => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri_path("src/a b#c.py"), "src/a%20b%23c.py");
        assert_eq!(uri_path("ünï.rs"), "%C3%BCn%C3%AF.rs");
    }

    #[test]
    fn rule_names_are_camel_case() {
        assert_eq!(rule_name("off-by-one"), "OffByOne");
        assert_eq!(rule_name("sql-injection"), "SqlInjection");
    }
}

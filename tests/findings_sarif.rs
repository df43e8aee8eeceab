//! `findings.sarif`: validated against the official SARIF 2.1.0 schema, the
//! mapping of every field, and GitHub's limits (25,000 results per run, the
//! gzipped size), which keep the most severe findings and say what was cut.
//!
//! `tests/sarif-schema-2.1.0.json` is the SARIF 2.1.0 JSON Schema of the
//! OASIS SARIF Technical Committee, as redistributed by github/codeql-action
//! (`src/sarif-schema-2.1.0.json`), copied unchanged. That copy puts the
//! `anyOf` of `region` (one of `startLine`, `charOffset`, `byteOffset` is
//! required) inside `properties`, which no JSON Schema validator accepts as
//! a schema; [`official_schema`] moves it back to where the OASIS original
//! has it before validating.

use kkrun::findings::{BaselineFindings, Finding};
use kkrun::report::sarif::{MAX_RESULTS_PER_RUN, SarifLimits, render};
use kkrun::report::{Report, TaskReport};
use serde_json::{Value, json};

const SECRET: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz123456";

fn finding(id: usize, severity: &str, status: &str) -> Value {
    json!({
        "id": format!("F{id}"),
        "rule_id": if id.is_multiple_of(2) { "off-by-one" } else { "sql-injection" },
        "severity": severity,
        "title": format!("bug number {id}"),
        "message": format!("the loop in calc.py stops one short (case {id})"),
        "evidence": format!("add(2, 3) returns -1; token {SECRET}"),
        "file": "src/my calc.py",
        "start_line": 3 + id,
        "end_line": 4 + id,
        "reproduce": "python3 test_add.py",
        "status": status,
        "fingerprint": format!("{id:040x}:1"),
        "baseline_state": "new",
        "reproduction": {"result": "failed", "exit_code": 1, "duration_ms": 5, "output_tail": "exit code 1\nassert failed"},
        "withdrawn_reason": if status == "withdrawn" { json!("not a bug") } else { Value::Null },
        "stage": "code",
    })
}

fn task(name: &str, kind: &str, findings: Vec<Value>) -> Value {
    json!({
        "name": name, "description": "", "file": "tasks/hunt.yaml", "line": 2, "kind": kind,
        "workspace": "/repo", "model": "replay:x.jsonl", "base_commit": "0123456789abcdef0123456789abcdef01234567",
        "outcome": "failed", "reason": "1 finding(s) meet fail_on", "started_at": "2026-12-01T22:00:00Z",
        "duration_ms": 10, "stages": [], "checks": [], "files_changed": [], "plan": null, "review": null,
        "snapshots": [], "restored_to_base": null,
        "usage": {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0},
        "cost_usd": null, "tool_calls": {}, "findings": findings,
        "artifacts": {"plan": null, "transcript": null, "patch": null},
    })
}

fn report(tasks: Vec<Value>) -> Report {
    let tasks: Vec<TaskReport> = tasks
        .into_iter()
        .map(|t| serde_json::from_value(t).unwrap())
        .collect();
    Report {
        schema_version: kkrun::report::REPORT_SCHEMA_VERSION,
        kkrun_version: "0.1.0".into(),
        run_id: "20261201T220000Z-abc123".into(),
        started_at: "2026-12-01T22:00:00Z".into(),
        finished_at: "2026-12-01T22:01:00Z".into(),
        duration_ms: 60_000,
        command_line: vec!["kkrun".into()],
        exit_code: 1,
        totals: kkrun::report::Totals::from_tasks(&tasks),
        tasks,
        partition: None,
        merged: None,
        rebuilt: None,
    }
}

/// The schema, with keywords misplaced under `properties` (values that are
/// not schemas) moved up to the definition they belong to.
fn official_schema() -> Value {
    let mut schema: Value = serde_json::from_str(include_str!("sarif-schema-2.1.0.json")).unwrap();
    let definitions = schema["definitions"].as_object_mut().unwrap();
    let mut moved = 0;
    for definition in definitions.values_mut() {
        let Some(properties) = definition
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let misplaced: Vec<String> = properties
            .iter()
            .filter(|(_, v)| !v.is_object() && !v.is_boolean())
            .map(|(k, _)| k.clone())
            .collect();
        let values: Vec<(String, Value)> = misplaced
            .into_iter()
            .map(|key| {
                let value = properties.remove(&key).unwrap();
                (key, value)
            })
            .collect();
        for (key, value) in values {
            definition[key.as_str()] = value;
            moved += 1;
        }
    }
    assert_eq!(
        moved, 1,
        "the schema copy changed: review official_schema()"
    );
    schema
}

fn validate(log: &Value) {
    let schema = official_schema();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(log)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF does not validate:\n{}",
        errors.join("\n")
    );
}

#[test]
fn findings_sarif_validates_and_maps_every_field() {
    let report = report(vec![
        task(
            "hunt",
            "bug-hunt",
            vec![
                finding(1, "critical", "confirmed"),
                finding(2, "medium", "unconfirmed"),
                finding(3, "low", "withdrawn"),
                finding(4, "high", "confirmed"),
            ],
        ),
        task("other-hunt", "bug-hunt", vec![]),
        task("a-fix", "fix", vec![]),
    ]);
    let sarif = render(&report, SarifLimits::default()).unwrap();
    validate(&sarif.log);
    assert!(sarif.dropped.is_empty());
    let log = &sarif.log;
    assert_eq!(log["version"], "2.1.0");
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "one run per bug hunt, none for the fix");
    let run = &runs[0];
    assert_eq!(
        run["automationDetails"]["id"],
        "kkrun/hunt/20261201T220000Z-abc123"
    );
    assert_eq!(
        runs[1]["automationDetails"]["id"],
        "kkrun/other-hunt/20261201T220000Z-abc123"
    );
    assert_eq!(
        runs[1]["results"],
        json!([]),
        "an empty hunt is an empty run"
    );
    assert_eq!(run["tool"]["driver"]["name"], "kkrun");

    let results = run["results"].as_array().unwrap();
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["properties"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["F1", "F4", "F2"],
        "withdrawn left out, most severe first"
    );
    let levels: Vec<&str> = results
        .iter()
        .map(|r| r["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "error", "warning"]);
    let first = &results[0];
    let location = &first["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "src/my%20calc.py");
    assert_eq!(location["artifactLocation"]["uriBaseId"], "%SRCROOT%");
    assert_eq!(location["region"]["startLine"], 4);
    assert_eq!(location["region"]["endLine"], 5);
    assert_eq!(
        first["partialFingerprints"]["kkrun/v1"],
        format!("{:040x}:1", 1)
    );
    assert_eq!(first["baselineState"], "new");
    assert_eq!(first["properties"]["status"], "confirmed");

    // One rule per rule id, rated by its most severe finding.
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let rule_ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(rule_ids, ["off-by-one", "sql-injection"]);
    assert_eq!(rules[0]["properties"]["security-severity"], "8.0");
    assert_eq!(rules[1]["properties"]["security-severity"], "9.5");
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }

    let text = serde_json::to_string(log).unwrap();
    assert!(
        !text.contains(SECRET),
        "a credential reached the SARIF file"
    );
    assert!(text.contains("[redacted]"));
}

#[test]
fn a_run_without_bug_hunts_has_no_sarif() {
    let report = report(vec![task("a-fix", "fix", vec![])]);
    assert!(render(&report, SarifLimits::default()).is_none());
}

#[test]
fn known_findings_are_unchanged_in_sarif_and_known_in_reports() {
    let mut findings: Vec<Finding> = vec![
        serde_json::from_value(finding(1, "high", "confirmed")).unwrap(),
        serde_json::from_value(finding(2, "high", "confirmed")).unwrap(),
    ];
    // Last night's SARIF had F1 only.
    let last_night = report(vec![task(
        "hunt",
        "bug-hunt",
        vec![finding(1, "high", "confirmed")],
    )]);
    let last_night = render(&last_night, SarifLimits::default()).unwrap().log;
    let baseline = BaselineFindings::from_json(&last_night).unwrap();
    baseline.mark(&mut findings);
    assert_eq!(findings[0].baseline_state.as_str(), "known");
    assert_eq!(findings[1].baseline_state.as_str(), "new");
    let tonight = report(vec![task(
        "hunt",
        "bug-hunt",
        findings
            .iter()
            .map(|f| serde_json::to_value(f).unwrap())
            .collect(),
    )]);
    let log = render(&tonight, SarifLimits::default()).unwrap().log;
    validate(&log);
    let states: Vec<&str> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["baselineState"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["unchanged", "new"]);
    // A report.json works as a baseline too.
    let as_report = serde_json::to_value(&tonight).unwrap();
    let from_report = BaselineFindings::from_json(&as_report).unwrap();
    assert!(from_report.contains(&findings[1].fingerprint));
}

#[test]
fn more_than_25000_results_keep_the_most_severe_and_say_what_was_dropped() {
    let severities = ["note", "low", "medium", "high", "critical"];
    let findings: Vec<Value> = (1..=MAX_RESULTS_PER_RUN + 3)
        .map(|i| {
            // The three least severe come first, so order alone would keep them.
            let severity = if i <= 3 {
                "note"
            } else {
                severities[1 + i % 4]
            };
            finding(i, severity, "confirmed")
        })
        .collect();
    let report = report(vec![task("hunt", "bug-hunt", findings)]);
    let sarif = render(&report, SarifLimits::default()).unwrap();
    let results = sarif.log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), MAX_RESULTS_PER_RUN);
    assert!(
        results
            .iter()
            .all(|r| r["properties"]["severity"] != "note"),
        "a note survived while more severe results were dropped"
    );
    assert_eq!(sarif.dropped.len(), 1);
    assert_eq!(sarif.dropped[0].count, 3);
    assert_eq!(sarif.dropped[0].limit, "results per run");
    let notes = &sarif.log["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert!(
        notes[0]["message"]["text"]
            .as_str()
            .unwrap()
            .contains("3 of 25003"),
        "{notes}"
    );
}

#[test]
fn the_gzipped_size_limit_keeps_the_most_severe_results() {
    let findings: Vec<Value> = (1..=400)
        .map(|i| {
            let mut f = finding(
                i,
                if i.is_multiple_of(10) {
                    "critical"
                } else {
                    "low"
                },
                "confirmed",
            );
            // Incompressible text, so the limit bites at a few dozen results.
            let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let noise: String = (0..60)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{state:016x}")
                })
                .collect();
            f["evidence"] = json!(noise);
            f
        })
        .collect();
    let report = report(vec![task("hunt", "bug-hunt", findings)]);
    let limits = SarifLimits {
        max_results_per_run: MAX_RESULTS_PER_RUN,
        max_gzipped_bytes: 40_000,
    };
    let sarif = render(&report, limits).unwrap();
    validate(&sarif.log);
    let bytes = serde_json::to_vec_pretty(&sarif.log).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    assert!(gz.finish().unwrap().len() <= 40_000);
    let results = sarif.log["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.len() < 400);
    let criticals = results
        .iter()
        .filter(|r| r["properties"]["severity"] == "critical")
        .count();
    assert_eq!(criticals, results.len().min(40), "the criticals go last");
    assert_eq!(sarif.dropped[0].limit, "gzipped size");
    assert_eq!(sarif.dropped[0].count, 400 - results.len());
}

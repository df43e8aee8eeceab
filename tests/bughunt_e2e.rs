//! A bug hunt through the real binary: findings reported by the (replayed)
//! model, checked against the workspace, confirmed by reproduction on the
//! base, withdrawn by the preview, and the outcome decided by `fail_on`
//! and `--baseline-findings`; report.json, findings.sarif, junit.xml,
//! summary.md and the GitHub annotations all carry them.

mod e2e_support;

use e2e_support::{CALC, Fixture, Run, call, finish, plan, review, stage_ends};
use kkrun::provider::script::ScriptedTurn;
use serde_json::{Value, json};

fn report_finding(id: &str, args: Value) -> ScriptedTurn {
    call(id, "report_finding", args)
}

/// Blueprint plans; code reports a confirmed bug (`add` subtracts), a
/// finding whose reproducer passes, one outside the file (refused, the
/// model corrects nothing), one without a reproducer; preview withdraws
/// the last and approves.
fn hunt_turns() -> Vec<ScriptedTurn> {
    vec![
        plan(),
        report_finding(
            "f1",
            json!({"file": "calc.py", "start_line": 2, "severity": "high", "rule_id": "wrong-operator",
                   "title": "add() subtracts", "message": "`add` returns a - b.",
                   "evidence": "add(2, 3) returns -1", "reproduce": "python3 test_add.py"}),
        ),
        report_finding(
            "f-bad",
            json!({"file": "calc.py", "start_line": 99, "severity": "low", "rule_id": "nothing",
                   "title": "t", "message": "m", "evidence": "e"}),
        ),
        report_finding(
            "f2",
            json!({"file": "calc.py", "start_line": 5, "end_line": 6, "severity": "medium",
                   "rule_id": "overflow", "title": "mul() may overflow", "message": "Large ints.",
                   "evidence": "none really", "reproduce": "python3 test_mul.py"}),
        ),
        report_finding(
            "f3",
            json!({"file": "calc.py", "start_line": 1, "severity": "note", "rule_id": "naming",
                   "title": "short names", "message": "a and b", "evidence": "the signature"}),
        ),
        finish("code"),
        call(
            "w3",
            "withdraw_finding",
            json!({"id": "F3", "reason": "style, not a bug"}),
        ),
        review("approve"),
    ]
}

fn hunt(fx: &Fixture, name: &str, extra: &str) -> String {
    fx.task(name, &format!("kind: bug-hunt\n{extra}"), &hunt_turns())
}

fn statuses(report: &Value) -> Vec<(String, String, String)> {
    report["tasks"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                f["baseline_state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn owned(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn a_bug_hunt_confirms_reports_and_fails_on_a_new_confirmed_finding() {
    let fx = Fixture::new();
    let task = hunt(&fx, "hunt", "");
    let run = fx.run("out", &[&task]);
    run.expect_code(1);
    let report = run.report();
    assert_eq!(report["schema_version"], 2);
    let t = &report["tasks"][0];
    assert_eq!(t["outcome"], "failed");
    assert!(
        t["reason"]
            .as_str()
            .unwrap()
            .contains("meet fail_on: new-confirmed"),
        "{}",
        t["reason"]
    );
    assert_eq!(
        stage_ends(&report, 0),
        [
            "blueprint:finished",
            "code:finished",
            "debug:skipped",
            "preview:finished"
        ]
    );
    assert_eq!(
        statuses(&report),
        owned(&[
            ("F1", "confirmed", "new"),
            ("F2", "unconfirmed", "new"),
            ("F3", "withdrawn", "new")
        ])
    );
    let f1 = &t["findings"][0];
    assert_eq!(f1["file"], "calc.py");
    assert_eq!(f1["reproduction"]["result"], "failed");
    assert!(
        f1["reproduction"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("add(2, 3) == -1")
    );
    assert_eq!(t["findings"][1]["reproduction"]["result"], "passed");
    assert_eq!(t["findings"][2]["withdrawn_reason"], "style, not a bug");
    assert!(t["findings"][2]["reproduction"].is_null());

    // The out-of-range report went back to the model as a tool error.
    let bad = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "tool.call" && e["call_id"] == "f-bad")
        .unwrap();
    assert_eq!(bad["outcome"], "error");
    assert!(
        bad["output"].as_str().unwrap().contains("has 6 line(s)"),
        "{bad}"
    );
    let kinds: Vec<String> = run
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|k| k.starts_with("finding."))
        .collect();
    assert_eq!(
        kinds,
        [
            "finding.reported",
            "finding.reported",
            "finding.reported",
            "finding.reproduced",
            "finding.reproduced",
            "finding.withdrawn"
        ]
    );

    // SARIF: withdrawn left out, the rest at their lines.
    let sarif: Value = serde_json::from_str(&run.file("findings.sarif")).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "wrong-operator");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    assert_eq!(
        results[0]["partialFingerprints"]["kkrun/v1"],
        t["findings"][0]["fingerprint"]
    );

    let junit = run.file("junit.xml");
    assert!(
        junit.contains(r#"name="F1 wrong-operator" classname="hunt.findings""#),
        "{junit}"
    );
    assert!(junit.contains(r#"type="finding_confirmed""#));
    assert!(junit.contains("withdrawn (style, not a bug)"));
    if std::process::Command::new("xmllint")
        .arg("--version")
        .output()
        .is_ok()
    {
        let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit-10.xsd");
        let output = std::process::Command::new("xmllint")
            .args(["--noout", "--schema", xsd])
            .arg(run.out.join("junit.xml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = run.file("summary.md");
    assert!(summary.contains("### Findings"), "{summary}");
    assert!(
        summary.contains("| F1 | high | confirmed | new | `calc.py:2` | add() subtracts |"),
        "{summary}"
    );
    assert!(summary.contains("<details><summary>F1 wrong-operator: add() subtracts</summary>"));

    // The hunt changed nothing in the user's tree.
    assert_eq!(
        std::fs::read_to_string(fx.repo().join("calc.py")).unwrap(),
        CALC
    );
}

/// The hunt run into `first`, then again into `second` with the first's
/// findings as its baseline (which makes them known: exit 0).
fn hunt_twice(fx: &Fixture) -> (String, Run) {
    let task = hunt(fx, "hunt", "");
    fx.run("first", &[&task]).expect_code(1);
    let second = fx.run(
        "second",
        &[&task, "--baseline-findings", "first/findings.sarif"],
    );
    second.expect_code(0);
    (task, second)
}

#[test]
fn a_baseline_makes_last_nights_findings_known() {
    let fx = Fixture::new();
    let (task, second) = hunt_twice(&fx);
    let report = second.report();
    assert_eq!(
        statuses(&report),
        owned(&[
            ("F1", "confirmed", "known"),
            ("F2", "unconfirmed", "known"),
            ("F3", "withdrawn", "new")
        ])
    );
    let sarif: Value = serde_json::from_str(&second.file("findings.sarif")).unwrap();
    assert_eq!(sarif["runs"][0]["results"][0]["baselineState"], "unchanged");

    // A report.json works as a baseline as well.
    let third = fx.run(
        "third",
        &[&task, "--baseline-findings", "first/report.json"],
    );
    third.expect_code(0);
}

/// A killed hunt's remaining stages are judged against the run's own
/// baseline, which `run.started` carries, not the file: here it is gone.
#[test]
fn a_resumed_hunt_keeps_its_baseline() {
    let fx = Fixture::new();
    let (_, second) = hunt_twice(&fx);
    let uninterrupted = statuses(&second.report());

    // Killed after the blueprint, before the code stage found anything.
    let events_path = second.out.join("events.jsonl");
    let text = std::fs::read_to_string(&events_path).unwrap();
    let cut = text
        .lines()
        .position(|l| {
            l.contains("\"type\":\"stage.finished\"") && l.contains("\"stage\":\"blueprint\"")
        })
        .unwrap();
    let kept: Vec<&str> = text.lines().take(cut + 1).collect();
    std::fs::write(&events_path, kept.join("\n") + "\n").unwrap();
    std::fs::remove_file(second.out.join("report.json")).unwrap();
    std::fs::remove_dir_all(fx.root().join("first")).unwrap();

    let resumed = Run::capture(fx.kkrun(&["resume", "second"]), &second.out);
    resumed.expect_code(0);
    assert_eq!(statuses(&resumed.report()), uninterrupted);
}

#[test]
fn fail_on_decides_the_outcome() {
    let fx = Fixture::new();
    for (name, fail_on, code) in [
        ("on-never", "never", 0),
        ("on-any", "any", 1),
        ("on-confirmed", "confirmed", 1),
    ] {
        let task = hunt(&fx, name, &format!("fail_on: {fail_on}\n"));
        let run: Run = fx.run(name, &[&task]);
        run.expect_code(code);
    }
}

#[test]
fn bad_baselines_and_misplaced_fail_on_are_bad_input() {
    let fx = Fixture::new();
    let task = hunt(&fx, "hunt", "");
    std::fs::write(fx.root().join("bad.json"), "{\"hello\": 1}").unwrap();
    let run = fx.run("out", &[&task, "--baseline-findings", "bad.json"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("--baseline-findings bad.json"),
        "{}",
        run.stderr()
    );
    let run = fx.run("out", &[&task, "--baseline-findings", "missing.sarif"]);
    run.expect_code(2);

    let fix = fx.task("not-a-hunt", "fail_on: any\n", &hunt_turns());
    let output = fx.kkrun(&["validate", &fix]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`fail_on` applies only to `kind: bug-hunt`"),
        "{stderr}"
    );
    assert!(stderr.contains("not-a-hunt.yaml:"), "{stderr}");
}

#[test]
fn github_annotations_point_at_the_findings() {
    let fx = Fixture::new();
    let task = hunt(&fx, "hunt", "");
    let summary = fx.root().join("step-summary.md");
    let mut command = fx.kkrun(&["run", "--out", "out", &task]);
    command
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary);
    let run = Run::capture(command, &fx.root().join("out"));
    run.expect_code(1);
    let stdout = run.stdout();
    assert!(
        stdout.contains("::error file=calc.py,line=2,endLine=2,title=kkrun hunt%3A F1 high wrong-operator (confirmed%2C new)::add() subtracts"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::warning file=calc.py,line=5,endLine=6,"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("F3"),
        "a withdrawn finding was annotated: {stdout}"
    );
}

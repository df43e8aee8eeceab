//! The report writers on a report that exercises every branch: the JSON
//! Schema is current and validates the report, junit.xml validates against
//! the Jenkins JUnit schema (junit-10.xsd) even with hostile check output,
//! and the Markdown summary says what happened.

use std::collections::BTreeMap;
use std::process::Command;

use kkrun::events::StageEndKind;
use kkrun::provider::Usage as TokenUsage;
use kkrun::report::{
    Artifacts, CheckReport, CheckRun, CheckStatus, FileChange as FileChangeReport, Report, Review,
    SnapshotReport, StageReport, TaskOutcome, TaskReport, Totals, Verdict,
};

fn run(passed: bool, output: &str) -> CheckRun {
    CheckRun {
        passed,
        flaky: false,
        exit_code: Some(if passed { 0 } else { 1 }),
        timed_out: false,
        attempts: 1,
        duration_ms: 1234,
        output_tail: output.to_string(),
        failed_attempts: Vec::new(),
    }
}

fn task(name: &str, file: &str, outcome: TaskOutcome) -> TaskReport {
    TaskReport {
        name: name.into(),
        description: format!("{name} description"),
        file: file.into(),
        line: 3,
        kind: "fix".into(),
        workspace: "/work/repo".into(),
        model: "replay:cassette.jsonl".into(),
        matrix: None,
        worktree: None,
        base_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        outcome,
        reason: format!("{} for a reason", outcome.as_str()),
        started_at: "2026-11-24T10:15:00Z".into(),
        duration_ms: 65_000,
        stages: vec![StageReport {
            stage: "preview".into(),
            round: 1,
            end: StageEndKind::Finished,
            detail: None,
            started_at: "2026-11-24T10:16:00Z".into(),
            duration_ms: 5000,
            turns: 2,
            usage: TokenUsage {
                cache_write_input_tokens: 0,
                reasoning_tokens: 0,
                input_tokens: 1200,
                cached_input_tokens: 1000,
                output_tokens: 300,
                estimated: false,
            },
            cost_usd: Some(0.01),
            tool_calls: BTreeMap::from([("read_file".to_string(), 2)]),
            snapshot: Some(SnapshotReport {
                stage: "preview".into(),
                ref_name: format!("refs/kkrun/20261124T101500Z-ab12cd/{name}/04-preview"),
                commit: "89abcdef0123456789abcdef0123456789abcdef".into(),
            }),
        }],
        checks: Vec::new(),
        files_changed: vec![FileChangeReport {
            path: "src/a.rs".into(),
            status: "modified".into(),
            additions: 3,
            deletions: 1,
        }],
        plan: None,
        review: None,
        snapshots: Vec::new(),
        restored_to_base: None,
        policy_violations: Vec::new(),
        usage: TokenUsage {
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
            input_tokens: 5000,
            cached_input_tokens: 0,
            output_tokens: 700,
            estimated: false,
        },
        cost_usd: Some(0.05),
        tool_calls: BTreeMap::new(),
        findings: Vec::new(),
        artifacts: Artifacts {
            plan: None,
            transcript: None,
            patch: Some(format!("{name}/final.patch")),
            output: None,
        },
        mcp_servers: Vec::new(),
        resumed: None,
        instructions: Vec::new(),
        setup: Vec::new(),
        sandbox: None,
        output: None,
    }
}

fn sample_report() -> Report {
    let mut passed = task("passes", "tasks/a.yaml", TaskOutcome::Passed);
    let mut flaky = run(true, "ok on the second try");
    flaky.flaky = true;
    flaky.attempts = 2;
    flaky.failed_attempts = vec!["first try \x1b[31mfailed\x1b[0m".into()];
    passed.checks = vec![
        CheckReport {
            name: "unit".into(),
            run: "cargo test".into(),
            line: 11,
            status: CheckStatus::Fixed,
            baseline: Some(run(false, "x")),
            final_run: Some(run(true, "test result: ok")),
        },
        CheckReport {
            name: "flaky".into(),
            run: "./flaky.sh".into(),
            line: 12,
            status: CheckStatus::Passing,
            baseline: Some(run(true, "")),
            final_run: Some(flaky),
        },
    ];
    passed.review = Some(Review {
        verdict: Verdict::Approve,
        summary: "Fixed the parser.".into(),
        risks: vec![],
        advisory: false,
    });

    let mut failed = task("fails", "tasks/a.yaml", TaskOutcome::Failed);
    // Output a real check might print: colours, NUL and other control
    // characters, a byte-order mark, characters XML forbids.
    let hostile =
        "\x1b[1;31merror\x1b[0m: expected `<T>` & got \"x\"\x00\x07\x0b\u{FFFE}\u{FFFF} ]]> 🦀\r\n";
    failed.checks = vec![CheckReport {
        name: "lint <strict>".into(),
        run: "cargo clippy -- -D warnings".into(),
        line: 13,
        status: CheckStatus::NewlyBroken,
        baseline: Some(run(true, "")),
        final_run: Some(CheckRun {
            attempts: 3,
            failed_attempts: vec![
                "first \x1b[31mfailure\x1b[0m".into(),
                "second failure".into(),
            ],
            ..run(false, hostile)
        }),
    }];
    failed.review = Some(Review {
        verdict: Verdict::RequestChanges,
        summary: "The change breaks lint.".into(),
        risks: vec!["lint".into()],
        advisory: false,
    });

    let mut budget = task("runs-out", "tasks/b.yaml", TaskOutcome::BudgetExhausted);
    budget.checks = vec![CheckReport {
        name: "unit".into(),
        run: "cargo test".into(),
        line: 14,
        status: CheckStatus::NotRun,
        baseline: Some(run(false, "")),
        final_run: None,
    }];
    budget.cost_usd = None;

    let tasks = vec![passed, failed, budget];
    Report {
        schema_version: kkrun::report::REPORT_SCHEMA_VERSION,
        kkrun_version: "0.1.0".into(),
        run_id: "20261124T101500Z-ab12cd".into(),
        started_at: "2026-11-24T10:15:00Z".into(),
        finished_at: "2026-11-24T10:20:00Z".into(),
        duration_ms: 300_000,
        command_line: vec!["kkrun".into(), "tasks/".into()],
        exit_code: 4,
        totals: Totals::from_tasks(&tasks),
        tasks,
        partition: None,
        merged: None,
        rebuilt: None,
    }
}

#[test]
fn the_committed_report_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/report.schema.json"
    ))
    .unwrap();
    let generated = format!(
        "{}\n",
        serde_json::to_string_pretty(&kkrun::report::report_schema()).unwrap()
    );
    assert!(
        committed == generated,
        "schemas/report.schema.json is stale: regenerate it with `cargo run -- schema report > schemas/report.schema.json`"
    );
}

#[test]
fn reports_validate_against_the_schema() {
    let schema = kkrun::report::report_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let report = serde_json::to_value(sample_report()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the schema is strict: an unknown field is rejected.
    let mut bad = report.clone();
    bad["tasks"][0]["surprise"] = serde_json::json!(1);
    assert!(!validator.is_valid(&bad));
}

#[test]
fn junit_maps_checks_reviews_and_early_ends() {
    let xml = kkrun::report::junit::render(&sample_report()).unwrap();
    // One suite per task file, in order of appearance.
    let a = xml.find("<testsuite name=\"tasks/a.yaml\"").unwrap();
    let b = xml.find("<testsuite name=\"tasks/b.yaml\"").unwrap();
    assert!(a < b);
    assert!(xml.contains("<testsuites name=\"kkrun 20261124T101500Z-ab12cd\" tests=\"7\" failures=\"2\" errors=\"2\""), "{xml}");
    assert!(
        xml.contains("<flakyFailure type=\"check_failed\" message=\"attempt 1 failed\">"),
        "{xml}"
    );
    assert!(xml.contains("classname=\"fails\""));
    assert!(xml.contains("<error type=\"budget_exhausted\""), "{xml}");
    assert!(!xml.contains('\x1b') && !xml.contains('\u{0}') && !xml.contains('\u{FFFE}'));
    assert!(
        xml.contains("error: expected `&lt;T&gt;` &amp; got"),
        "{xml}"
    );
}

#[test]
fn junit_failure_message_leads_with_status_and_check_line_and_keeps_reruns() {
    let xml = kkrun::report::junit::render(&sample_report()).unwrap();
    assert!(
        xml.contains("<failure type=\"check_failed\" message=\"newly broken: check lint &lt;strict&gt; (tasks/a.yaml:13): `cargo clippy -- -D warnings` failed (exit code 1; attempt 3 of 3; passed at base)\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<rerunFailure type=\"check_failed\" message=\"attempt 1 of 3 failed\">\n        <system-out>first failure</system-out>")
            && xml.contains("<rerunFailure type=\"check_failed\" message=\"attempt 2 of 3 failed\">\n        <system-out>second failure</system-out>"),
        "{xml}"
    );
    // One testcase per check, retries or not.
    assert_eq!(
        xml.matches("name=\"lint &lt;strict&gt;\"").count(),
        1,
        "{xml}"
    );
}

#[test]
fn junit_validates_against_the_jenkins_schema() {
    let Ok(status) = Command::new("xmllint").arg("--version").output() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "xmllint is required in CI (Debian/Ubuntu: libxml2-utils)"
        );
        eprintln!(
            "skipping: xmllint is not installed (Debian/Ubuntu: apt-get install libxml2-utils)"
        );
        return;
    };
    assert!(status.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junit.xml");
    std::fs::write(
        &path,
        kkrun::report::junit::render(&sample_report()).unwrap(),
    )
    .unwrap();
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit-10.xsd");
    let output = Command::new("xmllint")
        .args(["--noout", "--schema", xsd])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "junit.xml does not validate:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(&path).unwrap()
    );
}

#[test]
fn the_summary_says_what_happened() {
    let md = kkrun::report::markdown::render(&sample_report());
    assert!(md.starts_with("# kkrun: 1 of 3 tasks passed"), "{md}");
    assert!(
        md.contains("| passes | ✅ passed | 2/2 (1 fixed, 1 flaky) |"),
        "{md}"
    );
    assert!(
        md.contains("| `lint <strict>` | pass | fail (exit 1) | newly broken |"),
        "{md}"
    );
    assert!(md.contains("### Review: request changes"), "{md}");
    assert!(
        md.contains("kkrun rollback 20261124T101500Z-ab12cd fails --to base")
            || md.contains("- `src/a.rs` (modified, +3 −1)"),
        "{md}"
    );
    assert!(
        !md.contains('\x1b'),
        "ANSI escapes are stripped from the summary"
    );
}

#[test]
fn github_annotations_point_at_the_check_line_in_the_task_file() {
    let lines = kkrun::report::github::annotations(&sample_report());
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::error file=tasks/a.yaml,line=13,title=kkrun fails%3A check lint <strict> newly broken::newly broken: `cargo clippy -- -D warnings` failed%0A"
        )),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::error file=tasks/b.yaml,line=3,title=kkrun runs-out%3A budget_exhausted::"
        )),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("::error") && l.contains("kkrun passes")),
        "passed tasks get no error: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::warning file=tasks/a.yaml,line=12,title=kkrun passes%3A check flaky is flaky::"
        )),
        "a flaky pass is a warning at its check: {lines:#?}"
    );
}

#[test]
fn github_annotations_are_capped_most_important_first_with_a_notice() {
    let mut report = sample_report();
    report.tasks.clear();
    for n in 0..12 {
        let mut failing = task(&format!("t{n}"), "tasks/many.yaml", TaskOutcome::Failed);
        let newly = n % 4 == 3;
        let mut flaky = run(true, "ok");
        flaky.flaky = true;
        flaky.attempts = 2;
        failing.checks = vec![
            CheckReport {
                name: "unit".into(),
                run: "make test".into(),
                line: 100 + n,
                status: if newly {
                    CheckStatus::NewlyBroken
                } else {
                    CheckStatus::StillFailing
                },
                baseline: Some(run(!newly, "")),
                final_run: Some(run(false, "boom")),
            },
            CheckReport {
                name: "flaky".into(),
                run: "make flaky".into(),
                line: 200 + n,
                status: CheckStatus::Passing,
                baseline: Some(run(true, "")),
                final_run: Some(flaky),
            },
        ];
        report.tasks.push(failing);
    }
    let lines = kkrun::report::github::annotations(&report);
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("::error ")).collect();
    let warnings = lines.iter().filter(|l| l.starts_with("::warning ")).count();
    assert_eq!(errors.len(), 10, "{lines:#?}");
    assert_eq!(warnings, 10, "{lines:#?}");
    // 12 checks + 12 tasks are errors, 12 flaky checks warnings: 14 + 2 left out.
    assert_eq!(
        lines.last().unwrap(),
        "::notice title=kkrun::16 more annotations in the step summary"
    );
    assert_eq!(lines.len(), 21);
    // The three newly broken checks lead, then the tasks, in run order.
    for (position, n) in [3, 7, 11].iter().enumerate() {
        assert!(
            errors[position].contains(&format!("line={},", 100 + n))
                && errors[position].contains("newly broken"),
            "{errors:#?}"
        );
    }
    assert!(
        errors[3].contains("title=kkrun t0%3A failed"),
        "{errors:#?}"
    );
}

fn finding(id: &str, severity: kkrun::findings::Severity) -> kkrun::findings::Finding {
    kkrun::findings::Finding {
        id: id.into(),
        rule_id: "off-by-one".into(),
        severity,
        title: format!("bug {id}"),
        message: "wrong".into(),
        evidence: "seen".into(),
        file: "src/lib.rs".into(),
        start_line: 3,
        end_line: 4,
        reproduce: None,
        status: kkrun::findings::FindingStatus::Unconfirmed,
        fingerprint: format!("fp-{id}"),
        baseline_state: kkrun::findings::BaselineState::New,
        reproduction: None,
        withdrawn_reason: None,
        stage: kkrun::task::Stage::Blueprint,
    }
}

#[test]
fn findings_share_the_annotation_cap_with_the_checks() {
    use kkrun::findings::Severity;
    let mut report = sample_report();
    report.tasks.clear();
    let mut hunt = task("hunt", "tasks/hunt.yaml", TaskOutcome::Failed);
    hunt.findings = (1..=12)
        .map(|n| finding(&format!("F{n}"), Severity::High))
        .chain((13..=24).map(|n| finding(&format!("F{n}"), Severity::Low)))
        .collect();
    report.tasks.push(hunt);
    let lines = kkrun::report::github::annotations(&report);
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    // 1 failed task + 12 high findings are errors; 12 low findings notices.
    assert_eq!(count("::error "), 10, "{lines:#?}");
    assert_eq!(count("::warning "), 0, "{lines:#?}");
    // Nine notices and the one that counts what was left out: GitHub's ten.
    assert_eq!(count("::notice "), 10, "{lines:#?}");
    assert!(
        lines[0].contains("title=kkrun hunt%3A failed"),
        "the task leads: {lines:#?}"
    );
    assert!(
        lines[1].starts_with("::error file=src/lib.rs,line=3,endLine=4,"),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        "::notice title=kkrun::6 more annotations in the step summary"
    );
}

//! What a run leaves behind, checked on real runs of the real binary: the
//! report against its committed schema, snapshots of `report.json` and
//! `summary.md`, GitHub Actions workflow commands and step summary, the
//! console on stderr, `events.jsonl`, and the run directory's layout.
//!
//! The model's side is replayed from scripted cassettes; the checks are real
//! processes and the snapshots real git commits.

mod e2e_support;

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use e2e_support::redact::{RUN_ID, TIMESTAMP, redact_summary, redact_text};
use e2e_support::{
    Fixture, Run, TaskFile, commit_all, finish, fix_add, fix_but_break_mul, git, kkrun, plan,
    read_calc, review,
};
use kkrun::provider::script::ScriptedTurn;
use regex::Regex;
use serde_json::{Value, json};

/// Fixes `add`: every check passes.
fn passing_turns() -> Vec<ScriptedTurn> {
    vec![
        read_calc(),
        plan(),
        fix_add(),
        finish("code"),
        review("approve"),
    ]
}

/// 1100 tokens a turn: a 3000-token budget runs out in the code stage.
fn budget_turns() -> Vec<ScriptedTurn> {
    passing_turns()
}

const FAILING_YAML: &str = "stages:\n  debug: { max_rounds: 1 }\n";
const BUDGET_YAML: &str = "budget: { max_tokens: 3000 }\n";

/// `report.json` with times, durations, run ids, commit ids and absolute
/// paths replaced by placeholders; everything else (costs too) stays.
fn redact_report(report: &Value, root: &Path) -> String {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    match key.as_str() {
                        "duration_ms" => *value = json!("[DURATION]"),
                        "started_at" | "finished_at" => *value = json!("[TIME]"),
                        // What the sandbox could enforce depends on the machine.
                        "sandbox" => *value = json!("[SANDBOX]"),
                        _ => walk(value),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut report = report.clone();
    walk(&mut report);
    // The binary's own path, which depends on where the crate is built.
    report["command_line"][0] = json!("kkrun");
    redact_text(&serde_json::to_string_pretty(&report).unwrap(), root)
}

fn validate(schema: &Value, report: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// Validates the run's `junit.xml` against the Jenkins JUnit schema, when
/// xmllint is there (CI installs it).
fn assert_junit_validates(run: &Run) {
    if Command::new("xmllint").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "xmllint is required in CI (Debian/Ubuntu: libxml2-utils)"
        );
        eprintln!("skipping junit.xml validation: xmllint is not installed");
        return;
    }
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/junit-10.xsd");
    let output = Command::new("xmllint")
        .args(["--noout", "--schema", xsd])
        .arg(run.out.join("junit.xml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "junit.xml does not validate:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        run.file("junit.xml")
    );
}

/// Asserts everything the report promises about the repository and the run.
fn assert_report_is_sound(run: &Run, repo: &Path, task_file: &str) -> Value {
    let report = run.report();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for schema in [committed, kkrun::report::report_schema()] {
        let errors = validate(&schema, &report);
        assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
    }
    assert_eq!(
        report["schema_version"],
        json!(kkrun::report::REPORT_SCHEMA_VERSION)
    );
    assert_eq!(report["kkrun_version"], env!("CARGO_PKG_VERSION"));
    let run_id = report["run_id"].as_str().unwrap();
    assert!(
        Regex::new(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
            .unwrap()
            .is_match(run_id),
        "{run_id}"
    );
    let command_line: Vec<&str> = report["command_line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(command_line[0].ends_with("kkrun"), "{command_line:?}");
    assert!(
        command_line.contains(&"run") && command_line.contains(&task_file),
        "{command_line:?}"
    );
    assert_eq!(report["exit_code"], run.code());
    assert_junit_validates(run);

    let task = &report["tasks"][0];
    assert_eq!(task["file"], task_file);
    assert_eq!(task["line"], 2, "the line of the task's `name:` key");
    let base = task["base_commit"].as_str().unwrap();
    assert_eq!(git(repo, &["cat-file", "-t", base]).trim(), "commit");
    let prefix = format!("refs/kkrun/{run_id}/{}/", task["name"].as_str().unwrap());
    let snapshots = task["snapshots"].as_array().unwrap();
    assert!(!snapshots.is_empty());
    for snapshot in snapshots {
        let (name, commit) = (
            snapshot["ref_name"].as_str().unwrap(),
            snapshot["commit"].as_str().unwrap(),
        );
        assert!(name.starts_with(&prefix), "{name} is not under {prefix}");
        assert_eq!(git(repo, &["cat-file", "-t", commit]).trim(), "commit");
        assert_eq!(git(repo, &["rev-parse", name]).trim(), commit);
    }
    assert_eq!(snapshots[0]["stage"], "base");
    // Every stage that ran has its snapshot, and it is one of the task's.
    for stage in task["stages"].as_array().unwrap() {
        if stage["end"] == "skipped" {
            assert_eq!(stage["snapshot"], Value::Null);
            continue;
        }
        let snapshot = &stage["snapshot"];
        assert!(snapshots.contains(snapshot), "{stage:#}");
        assert_eq!(
            git(
                repo,
                &["cat-file", "-t", snapshot["commit"].as_str().unwrap()]
            )
            .trim(),
            "commit"
        );
    }
    report
}

fn tool_counts(value: &Value) -> Vec<(String, u64)> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(tool, n)| (tool.clone(), n.as_u64().unwrap()))
        .collect()
}

fn pairs(items: &[(&str, u64)]) -> Vec<(String, u64)> {
    items.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

#[test]
fn real_reports_validate_against_the_committed_schema() {
    let fx = Fixture::new();

    let passing = fx.task("passing", "", &passing_turns());
    let run = fx.run("out-pass", &[&passing]);
    run.expect_code(0);
    let report = assert_report_is_sound(&run, &fx.repo(), &passing);
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "passed");
    assert_eq!(
        task["files_changed"],
        json!([{"path": "calc.py", "status": "modified", "additions": 1, "deletions": 1}])
    );
    assert_eq!(
        tool_counts(&task["tool_calls"]),
        pairs(&[
            ("edit_file", 1),
            ("finish_stage", 1),
            ("read_file", 1),
            ("submit_plan", 1),
            ("submit_review", 1)
        ])
    );
    assert_eq!(
        tool_counts(&task["stages"][0]["tool_calls"]),
        pairs(&[("read_file", 1), ("submit_plan", 1)])
    );
    assert_eq!(task["usage"]["input_tokens"], 5000);
    assert_eq!(task["usage"]["output_tokens"], 500);

    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let failing = fx.task("failing", FAILING_YAML, &fix_but_break_mul());
    let run = fx.run("out-fail", &[&failing]);
    run.expect_code(1);
    let report = assert_report_is_sound(&run, &fx.repo(), &failing);
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "failed");
    assert_eq!(
        task["files_changed"],
        json!([{"path": "calc.py", "status": "modified", "additions": 2, "deletions": 2}])
    );
    assert_eq!(
        tool_counts(&task["tool_calls"]),
        pairs(&[
            ("edit_file", 2),
            ("finish_stage", 2),
            ("submit_plan", 1),
            ("submit_review", 1)
        ])
    );

    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let budget = fx.task("budget", BUDGET_YAML, &budget_turns());
    let run = fx.run("out-budget", &[&budget]);
    run.expect_code(4);
    let report = assert_report_is_sound(&run, &fx.repo(), &budget);
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "budget_exhausted");
    assert_eq!(task["stages"][1]["end"], "max_tokens");
    assert_eq!(
        task["files_changed"],
        json!([{"path": "calc.py", "status": "modified", "additions": 1, "deletions": 1}])
    );
    assert_eq!(
        tool_counts(&task["tool_calls"]),
        pairs(&[("edit_file", 1), ("read_file", 1), ("submit_plan", 1)])
    );
    // The final checks still ran after the budget's end: the fix is in.
    let statuses: Vec<&Value> = task["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| &check["status"])
        .collect();
    assert_eq!(statuses, [&json!("fixed"), &json!("passing")]);
}

#[test]
fn report_and_summary_snapshots_of_a_passing_run() {
    let fx = Fixture::new();
    let task = fx.task("passing", "", &passing_turns());
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    insta::assert_snapshot!(
        "passing_report_json",
        redact_report(&run.report(), fx.root())
    );
    insta::assert_snapshot!(
        "passing_summary_md",
        redact_summary(&run.file("summary.md"), fx.root())
    );
}

#[test]
fn report_and_summary_snapshots_of_a_failing_run() {
    let fx = Fixture::new();
    let task = fx.task("failing", FAILING_YAML, &fix_but_break_mul());
    let run = fx.run("out", &[&task]);
    run.expect_code(1);
    insta::assert_snapshot!(
        "failing_report_json",
        redact_report(&run.report(), fx.root())
    );
    insta::assert_snapshot!(
        "failing_summary_md",
        redact_summary(&run.file("summary.md"), fx.root())
    );
}

#[test]
fn github_actions_gets_groups_annotations_and_the_step_summary() {
    let fx = Fixture::new();
    let task = fx.task("failing", FAILING_YAML, &fix_but_break_mul());
    let step_summary = fx.root().join("step-summary.md");
    std::fs::write(&step_summary, "# an earlier step\n").unwrap();
    let github = |args: &[&str]| {
        let mut command = fx.kkrun(args);
        command
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &step_summary);
        command
    };
    // At the check's own line (its `name:` in the task file).
    let annotation = "::error file=tasks/failing.yaml,line=10,title=kkrun failing%3A check mul newly broken::newly broken: `python3 test_mul.py` failed%0Amul(2, 3) == 8";

    let run = Run::capture(
        github(&["run", "--out", "out", &task]),
        &fx.root().join("out"),
    );
    run.expect_code(1);
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"::group::kkrun task failing"),
        "{stdout}"
    );
    assert!(lines.contains(&"::endgroup::"), "{stdout}");
    assert!(lines.contains(&annotation), "{stdout}");
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::error file=tasks/failing.yaml,line=2,title=kkrun failing%3A failed::1 of 2 check(s) failed: mul (newly broken)"
        )),
        "{stdout}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with("::")),
        "stdout carries only workflow commands: {stdout}"
    );
    let summary = run.file("summary.md");
    let appended = std::fs::read_to_string(&step_summary).unwrap();
    assert_eq!(appended, format!("# an earlier step\n{summary}\n"));

    // With --json the workflow commands move to stderr; stdout is pure JSONL.
    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let run = Run::capture(
        github(&["run", "--json", "--out", "out-json", &task]),
        &fx.root().join("out-json"),
    );
    run.expect_code(1);
    let stdout = run.stdout();
    for line in stdout.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("stdout line {line:?} is not JSON: {e}"));
    }
    assert_eq!(stdout, run.file("events.jsonl"));
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.contains(&"::group::kkrun task failing"), "{stderr}");
    assert!(lines.contains(&"::endgroup::"), "{stderr}");
    assert!(lines.contains(&annotation), "{stderr}");
    let appended = std::fs::read_to_string(&step_summary).unwrap();
    assert_eq!(
        appended,
        format!("# an earlier step\n{summary}\n{}\n", run.file("summary.md"))
    );
}

#[test]
fn outside_github_there_are_no_workflow_commands() {
    let fx = Fixture::new();
    let task = fx.task("failing", FAILING_YAML, &fix_but_break_mul());
    let run = fx.run("out", &[&task]);
    run.expect_code(1);
    assert_eq!(run.stdout(), "", "stdout stays empty without --json");
    assert!(!run.stderr().contains("::"), "{}", run.stderr());
}

static PLAIN_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\[\d{2}:\d{2}:\d{2}\] (kkrun|passing)[: ]").unwrap());

#[test]
fn the_console_prints_plain_timestamped_lines_in_ci() {
    let fx = Fixture::new();
    let task = fx.task("passing", "", &passing_turns());

    let run = fx.run("out-plain", &[&task]);
    run.expect_code(0);
    let stderr = run.stderr();
    assert!(!stderr.contains('\x1b'), "no ANSI escapes: {stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    let (last, progress) = lines.split_last().unwrap();
    assert_eq!(*last, "kkrun: reports in out-plain");
    for line in progress {
        assert!(PLAIN_LINE.is_match(line), "{line:?} in\n{stderr}");
    }
    for expected in [
        "] kkrun: run ",
        "] passing: started with replay:",
        "] passing blueprint: started",
        "] passing blueprint: finished after 2 turn(s)",
        "] passing: baseline checks: 1 passed, 1 failed (failing: add)",
        "] passing: debug checks: 2 passed, 0 failed",
        "] passing debug: skipped",
        "] passing: passed — all 2 check(s) pass",
        "] kkrun: 1 passed, 0 not passed; exit code 0",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("read_file"),
        "tool calls only with -v: {stderr}"
    );
    assert_eq!(run.stdout(), "");

    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let run = fx.run("out-color", &["--color", "always", &task]);
    run.expect_code(0);
    let stderr = run.stderr();
    assert!(stderr.contains("\x1b[32m"), "{stderr:?}");
    assert!(stderr.contains("\x1b[0m"), "{stderr:?}");
    assert_eq!(
        kkrun::report::text::strip_ansi(&stderr).lines().count(),
        lines.len(),
        "colour changes no line"
    );

    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let mut command = fx.kkrun(&["run", "--color", "auto", "--out", "out-no-color", &task]);
    command.env("NO_COLOR", "1");
    let run = Run::capture(command, &fx.root().join("out-no-color"));
    run.expect_code(0);
    assert!(!run.stderr().contains('\x1b'), "{:?}", run.stderr());

    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let run = fx.run("out-quiet", &["-q", &task]);
    run.expect_code(0);
    let stderr = run.stderr();
    // -q still says when the sandbox is incomplete on this machine.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.contains("; sandbox: "))
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        PLAIN_LINE.is_match(lines[0])
            && lines[0].contains("] passing: passed — all 2 check(s) pass"),
        "{stderr}"
    );
    assert!(
        lines[1].ends_with("] kkrun: 1 passed, 0 not passed; exit code 0"),
        "{stderr}"
    );

    git(&fx.repo(), &["checkout", "-q", "--", "calc.py"]);
    let run = fx.run("out-verbose", &["-v", &task]);
    run.expect_code(0);
    let stderr = run.stderr();
    for expected in [
        "] passing blueprint:   read_file {\"path\":\"calc.py\"} → ok (",
        "] passing code:   edit_file ",
        "] passing blueprint: turn 1, 1100 tokens, 1 tool call(s)",
        "] passing: snapshot refs/kkrun/",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in\n{stderr}"
        );
    }
    assert!(!stderr.contains('\x1b'));
}

#[test]
fn events_jsonl_is_complete_and_matches_the_report() {
    let fx = Fixture::new();
    // Two tasks: the first is restored to its base before the second runs,
    // which adds a safety snapshot.
    let first = fx.task("first", "", &passing_turns());
    let second = fx.task("second", FAILING_YAML, &fix_but_break_mul());
    let run = fx.run("out", &[&first, &second]);
    run.expect_code(1);
    let report = run.report();
    let events = run.events();

    let first_event = events.first().unwrap();
    assert_eq!(first_event["type"], "run.started");
    assert_eq!(
        first_event["schema_version"],
        json!(kkrun::events::EVENTS_SCHEMA_VERSION)
    );
    assert_eq!(first_event["run_id"], report["run_id"]);
    assert_eq!(first_event["tasks"], json!(["first", "second"]));
    let last_event = events.last().unwrap();
    assert_eq!(last_event["type"], "run.finished");
    assert_eq!(last_event["exit_code"], 1);
    assert_eq!(last_event["passed"], 1);
    assert_eq!(last_event["not_passed"], 1);
    for event in &events {
        assert!(TIMESTAMP.is_match(event["ts"].as_str().unwrap()), "{event}");
        assert!(event["elapsed_ms"].is_u64(), "{event}");
    }

    // Tasks open and close in order, each once.
    let task_events: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["type"] == "task.started" || e["type"] == "task.finished")
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["task"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("task.started", "first"),
        ("task.finished", "first"),
        ("task.started", "second"),
        ("task.finished", "second"),
    ]
    .iter()
    .map(|(t, n)| (t.to_string(), n.to_string()))
    .collect();
    assert_eq!(task_events, expected);
    for (index, task) in report["tasks"].as_array().unwrap().iter().enumerate() {
        let finished = events
            .iter()
            .find(|e| e["type"] == "task.finished" && e["task"] == task["name"])
            .unwrap();
        assert_eq!(finished["outcome"], task["outcome"], "task {index}");
        assert_eq!(finished["reason"], task["reason"], "task {index}");

        // Every snapshot in the report was announced, in the same order.
        let announced: Vec<(Value, Value)> = events
            .iter()
            .filter(|e| e["type"] == "snapshot.taken" && e["task"] == task["name"])
            .map(|e| (e["ref_name"].clone(), e["commit"].clone()))
            .collect();
        let recorded: Vec<(Value, Value)> = task["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["ref_name"].clone(), s["commit"].clone()))
            .collect();
        assert_eq!(announced, recorded, "task {index}");
    }
    assert_eq!(
        report["tasks"][0]["restored_to_base"],
        "the next task starts from the same base"
    );
    assert!(
        report["tasks"][0]["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stage"] == "safety"),
        "{:#}",
        report["tasks"][0]["snapshots"]
    );
}

#[test]
fn runs_go_under_dot_kkrun_with_latest_pointing_at_the_newest() {
    let fx = Fixture::new();
    // kkrun runs from the repository's root, with the task files committed.
    let repo = fx.repo();
    let tasks = repo.join("ci-tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    TaskFile::new("fix-add", &passing_turns()).write(&tasks, "..");
    commit_all(&repo, "tasks");

    let runs = repo.join(".kkrun/runs");
    let latest = runs.join("latest");
    let mut ids = Vec::new();
    for _ in 0..2 {
        // `--restore always` puts the work tree back to its base, so the
        // second run starts from the same state and the repository ends clean.
        let command = kkrun(
            &repo,
            &["run", "--restore", "always", "ci-tasks/fix-add.yaml"],
        );
        let run = Run::capture(command, &latest);
        run.expect_code(0);
        let id = std::fs::read_link(&latest)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(RUN_ID.is_match(&id), "{id}");
        assert!(runs.join(&id).is_dir());
        let report = run.report();
        assert_eq!(report["run_id"], id.as_str());
        assert!(
            run.stderr()
                .contains(&format!("kkrun: reports in .kkrun/runs/{id}\n")),
            "{}",
            run.stderr()
        );
        assert_eq!(
            report["tasks"][0]["files_changed"],
            json!([{"path": "calc.py", "status": "modified", "additions": 1, "deletions": 1}]),
            "kkrun's own files are not part of the agent's work"
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    let mut listed: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut expected = vec![ids[0].clone(), ids[1].clone(), "latest".to_string()];
    expected.sort();
    assert_eq!(listed, expected, "only run directories and `latest`");
    for id in &ids {
        for file in ["report.json", "junit.xml", "summary.md", "events.jsonl"] {
            assert!(runs.join(id).join(file).is_file(), "{id}/{file}");
        }
    }

    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).unwrap();
    assert_eq!(
        exclude.lines().filter(|l| l.trim() == ".kkrun/").count(),
        1,
        "{exclude}"
    );
    assert_eq!(
        git(&repo, &["status", "--porcelain", "--untracked-files=all"]),
        "",
        "kkrun leaves nothing for git to see"
    );
}

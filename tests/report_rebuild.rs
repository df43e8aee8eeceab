//! `kkrun report rebuild RUN_DIR`: the reports come from `events.jsonl`
//! alone. For the README example (passing) and a failing run, the rebuilt
//! files are byte-identical to the ones the run wrote; a stream cut off
//! before `run.finished` still gives a complete, valid report.

mod e2e_support;

use e2e_support::{
    Fixture, Run, assert_rebuild_is_byte_identical, committed_schema_errors, example_checkout,
    fix_and_approve, fix_but_break_mul, kkrun,
};
use serde_json::{Value, json};

#[test]
fn the_readme_example_rebuilds_byte_for_byte() {
    let dir = example_checkout();
    let output = kkrun(
        dir.path(),
        &["tasks/fix-iso-weeks.yaml", "--restore", "always"],
    )
    .output()
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run_dir = dir.path().join(".kkrun/runs/latest");
    assert_rebuild_is_byte_identical(dir.path(), &run_dir);
}

fn failing_run(fx: &Fixture, out: &str) -> Run {
    let task = fx.task(
        "failing",
        "stages:\n  debug: { max_rounds: 1 }\n",
        &fix_but_break_mul(),
    );
    let run = fx.run(out, &[&task]);
    run.expect_code(1);
    run
}

#[test]
fn a_failing_run_rebuilds_byte_for_byte() {
    let fx = Fixture::new();
    let run = failing_run(&fx, "out");
    assert_rebuild_is_byte_identical(fx.root(), &run.out);
}

#[test]
fn a_stream_without_run_finished_gives_a_valid_report_of_interrupted_tasks() {
    let fx = Fixture::new();
    // Two tasks, so the cut leaves one mid-way and one never started.
    let first = fx.task("first", "", &fix_and_approve());
    let second = fx.task("second", "", &fix_and_approve());
    let run = fx.run("out", &[&first, &second]);
    run.expect_code(0);
    let text = run.file("events.jsonl");

    // Cut the stream inside the first task's code stage, as a SIGKILL would,
    // leaving half a line behind.
    let lines: Vec<&str> = text.lines().collect();
    let code_started = lines
        .iter()
        .position(|l| l.contains(r#""type":"stage.started""#) && l.contains(r#""stage":"code""#))
        .unwrap();
    let killed = fx.root().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let mut cut = lines[..=code_started + 1].join("\n");
    cut.push('\n');
    cut.push_str(&lines[code_started + 2][..10]);
    std::fs::write(killed.join("events.jsonl"), &cut).unwrap();

    let output = kkrun(fx.root(), &["report", "rebuild", "killed"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("cut off mid-write"), "{stdout}");
    assert!(
        stdout.contains("2 unfinished task(s) reported as interrupted"),
        "{stdout}"
    );

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("report.json")).unwrap())
            .unwrap();
    let errors = committed_schema_errors(&report);
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
    assert!(
        report["rebuilt"]
            .as_str()
            .unwrap()
            .contains("ends without run.finished"),
        "{report:#}"
    );
    assert_eq!(report["exit_code"], 130);
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for task in tasks {
        assert_eq!(task["outcome"], "interrupted", "{task:#}");
        assert_eq!(task["reason"], "the run ended without its final record");
        assert_eq!(
            task["file"],
            format!("tasks/{}.yaml", task["name"].as_str().unwrap())
        );
    }
    let first = &tasks[0];
    let stages: Vec<(&str, &str)> = first["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["end"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, [("blueprint", "finished"), ("code", "interrupted")]);
    assert!(first["plan"].is_object(), "{first:#}");
    assert_eq!(first["checks"][0]["status"], "not_run");
    assert_eq!(first["checks"][0]["baseline"]["passed"], false);
    assert_eq!(tasks[1]["stages"], json!([]));
    assert_eq!(report["totals"]["outcomes"], json!({"interrupted": 2}));

    let junit = std::fs::read_to_string(killed.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"<error type="interrupted""#), "{junit}");
    let summary = std::fs::read_to_string(killed.join("summary.md")).unwrap();
    assert!(
        summary.starts_with("# kkrun: 0 of 2 tasks passed"),
        "{summary}"
    );
}

#[test]
fn a_damaged_stream_is_refused_naming_its_line() {
    let fx = Fixture::new();
    let run = failing_run(&fx, "out");
    let text = run.file("events.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = "{\"type\": \"no.such.event\"}".to_string();
    std::fs::write(run.out.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    let before = std::fs::read(run.out.join("report.json")).unwrap();

    let output = kkrun(fx.root(), &["report", "rebuild", "out"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("events.jsonl:3: not a kkrun event"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(run.out.join("report.json")).unwrap(),
        before,
        "a refused rebuild leaves the reports alone"
    );

    let output = kkrun(fx.root(), &["report", "rebuild", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nowhere/events.jsonl: no such file"),
        "{stderr}"
    );
}

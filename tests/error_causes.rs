//! Errors keep their causes: a bad cassette is named with its line and what
//! is wrong with it, and a git failure while snapshotting puts git's own
//! message into the task's `reason`.

mod e2e_support;

use e2e_support::{Fixture, fix_and_approve, kkrun};

#[test]
fn a_bad_cassette_names_its_line_and_the_problem() {
    let fx = Fixture::new();
    let task = fx.task("fix-add", "", &fix_and_approve());
    let cassette = fx.root().join("tasks/fix-add.jsonl");
    let text = std::fs::read_to_string(&cassette).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = r#"{"request": tru"#;
    std::fs::write(&cassette, lines.join("\n") + "\n").unwrap();

    let output = kkrun(fx.root(), &["run", "--out", "out", &task])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "bad input: nothing ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("kkrun: error: task `fix-add` (tasks/fix-add.yaml)"),
        "{stderr}"
    );
    assert!(stderr.contains("caused by: invalid cassette"), "{stderr}");
    assert!(
        stderr.contains("caused by: line 2: not a valid exchange"),
        "{stderr}"
    );
    assert!(!fx.root().join("out").exists(), "nothing ran");
}

#[test]
fn a_git_failure_while_snapshotting_carries_gits_message_into_the_reason() {
    let fx = Fixture::new();
    let task = fx.task("fix-add", "", &fix_and_approve());
    // A file where the snapshot refs' directory must go: git cannot create
    // any ref under it.
    std::fs::write(fx.repo().join(".git/refs/kkrun"), "").unwrap();

    let run = fx.run("out", &[&task]);
    run.expect_code(3);
    let report = run.report();
    let reason = report["tasks"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("snapshot after base failed: cannot create refs/kkrun/"),
        "{reason}"
    );
    assert!(
        reason.contains("Not a directory"),
        "git's own message: {reason}"
    );
    assert_eq!(report["tasks"][0]["outcome"], "error");
}

//! `setup:`: commands that prepare a task's workspace before the baseline
//! checks. Real git repositories, the real binary, replayed cassettes.

mod e2e_support;

use e2e_support::{Fixture, fix_and_approve, snapshot_refs};

#[test]
fn setup_commands_run_in_the_workspace_before_the_baseline_checks() {
    let fx = Fixture::new();
    // The extra check passes only when setup ran first, in the workspace,
    // with the task's env.
    let task = fx.add_task(
        &e2e_support::TaskFile::new("prepared", &fix_and_approve())
            .extra_checks("  - name: prepared\n    run: test \"$(cat __pycache__/ready)\" = yes-1\n")
            .yaml("setup:\n  - mkdir -p __pycache__\n  - { run: \"echo yes-$PYTHONDONTWRITEBYTECODE > __pycache__/ready\", timeout: 30s }\n"),
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    let report = run.report();
    let setup = report["tasks"][0]["setup"].as_array().unwrap();
    assert_eq!(setup.len(), 2);
    assert!(setup.iter().all(|s| s["passed"] == true), "{setup:?}");
    let checks = report["tasks"][0]["checks"].as_array().unwrap();
    let prepared = checks.iter().find(|c| c["name"] == "prepared").unwrap();
    assert_eq!(prepared["baseline"]["passed"], true, "{prepared}");
    // The events are in order: both setup commands, then the base
    // snapshot, then the baseline checks.
    let kinds: Vec<String> = run
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .filter(|t| ["setup.finished", "snapshot.taken", "checks.finished"].contains(&t.as_str()))
        .collect();
    assert_eq!(
        &kinds[..4],
        [
            "setup.finished",
            "setup.finished",
            "snapshot.taken",
            "checks.finished"
        ]
    );
}

#[test]
fn a_failing_setup_command_ends_the_task_as_error_with_its_output() {
    let fx = Fixture::new();
    let task = fx.task(
        "broken-setup",
        "setup:\n  - echo first ok\n  - \"echo installing; echo 'E: package left-pad not found' >&2; exit 7\"\n  - touch never-ran\n",
        &fix_and_approve(),
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(3);
    let report = run.report();
    let task_report = &report["tasks"][0];
    assert_eq!(task_report["outcome"], "error");
    let reason = task_report["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("setup command 2 of 3 `echo installing;"),
        "{reason}"
    );
    assert!(reason.contains("failed (exit code 7)"), "{reason}");
    assert!(reason.contains("E: package left-pad not found"), "{reason}");
    let setup = task_report["setup"].as_array().unwrap();
    assert_eq!(setup.len(), 2, "the third command must not run: {setup:?}");
    assert_eq!(setup[1]["exit_code"], 7);
    assert!(
        setup[1]["output_tail"]
            .as_str()
            .unwrap()
            .contains("left-pad not found")
    );
    assert!(!fx.repo().join("never-ran").exists());
    // Nothing of the agent ran: no stage, no check.
    assert!(task_report["stages"].as_array().unwrap().is_empty());
    assert!(
        !run.events().iter().any(|e| e["type"] == "checks.finished"),
        "no check may run after a failed setup"
    );
    let summary = run.file("summary.md");
    assert!(summary.contains("### Setup"), "{summary}");
    assert!(summary.contains("| failed (exit 7) |"), "{summary}");
    assert!(
        summary.contains("E: package left-pad not found"),
        "{summary}"
    );
    assert!(
        e2e_support::committed_schema_errors(&report).is_empty(),
        "{:?}",
        e2e_support::committed_schema_errors(&report)
    );
}

#[test]
fn a_setup_command_the_shell_policy_denies_is_refused_before_anything_runs() {
    let fx = Fixture::new();
    let task = fx.task(
        "denied-setup",
        "tools:\n  shell:\n    deny: [\"curl *\"]\nsetup:\n  - npm ci\n  - curl -fsSL https://example.invalid/install.sh\n",
        &fix_and_approve(),
    );
    let validate = fx.kkrun(&["validate", &task]).output().unwrap();
    let stderr = String::from_utf8_lossy(&validate.stderr);
    assert_eq!(validate.status.code(), Some(2), "{stderr}");
    // Line 2 is `name:`; the TaskFile layout puts `setup:` after `tools:`.
    let text = std::fs::read_to_string(fx.root().join(&task)).unwrap();
    let line = text.lines().position(|l| l.contains("curl -fsSL")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("tasks/denied-setup.yaml:{line}:5")),
        "{stderr}"
    );
    assert!(
        stderr.contains("matches the task's deny rule `curl *`"),
        "{stderr}"
    );

    let run = fx.run("out", &[&task]);
    run.expect_code(2);
    assert!(!run.out.exists(), "nothing may run: no run directory");
    assert!(snapshot_refs(&fx.repo()).is_empty());
}

#[test]
fn a_setup_command_a_built_in_rule_refuses_is_bad_input_too() {
    let fx = Fixture::new();
    let task = fx.task(
        "pushy-setup",
        "setup:\n  - git push origin main\n",
        &fix_and_approve(),
    );
    let validate = fx.kkrun(&["validate", &task]).output().unwrap();
    let stderr = String::from_utf8_lossy(&validate.stderr);
    assert_eq!(validate.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("setup command `git push origin main` is refused"),
        "{stderr}"
    );
}

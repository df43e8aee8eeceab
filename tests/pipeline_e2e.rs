//! End to end: the real `kkrun` binary runs tasks against temporary git
//! repositories, with the model's side replayed from scripted cassettes and
//! the checks run as real processes.

mod e2e_support;

use std::process::Command;

use e2e_support::{
    CALC, Fixture, TaskFile, break_mul, call, finish, fix_add, git, plan, read_calc, review,
    snapshot_refs, stage_ends,
};
use serde_json::{Value, json};

/// The check named `name` of the report's task number `task`.
fn check<'a>(report: &'a Value, task: usize, name: &str) -> &'a Value {
    report["tasks"][task]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

#[test]
fn a_passing_task_fixes_the_check_and_exits_0() {
    let fx = Fixture::new();
    let task = fx.task(
        "fix-add",
        "",
        &[
            read_calc(),
            plan(),
            fix_add(),
            finish("done"),
            review("approve"),
        ],
    );
    let head_before = git(&fx.repo(), &["rev-parse", "HEAD"]);
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["tasks"][0]["outcome"], "passed");
    assert_eq!(check(&report, 0, "add")["status"], "fixed");
    assert_eq!(check(&report, 0, "mul")["status"], "passing");
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
        snapshot_refs(&fx.repo()),
        ["00-base", "01-blueprint", "02-code", "03-preview"]
    );
    // The user's repository: HEAD unchanged, the fix in the work tree.
    assert_eq!(git(&fx.repo(), &["rev-parse", "HEAD"]), head_before);
    assert!(
        std::fs::read_to_string(fx.repo().join("calc.py"))
            .unwrap()
            .contains("a + b")
    );
    for file in [
        "report.json",
        "junit.xml",
        "summary.md",
        "events.jsonl",
        "fix-add/plan.json",
        "fix-add/transcript.jsonl",
        "fix-add/final.patch",
    ] {
        assert!(fx.out().join(file).is_file(), "{file} missing");
    }
    let patch = std::fs::read_to_string(fx.out().join("fix-add/final.patch")).unwrap();
    assert!(patch.contains("+    return a + b"), "{patch}");
}

#[test]
fn fixed_and_newly_broken_checks_are_told_apart_and_exit_1() {
    let fx = Fixture::new();
    let task = fx.task(
        "mixed",
        "stages:\n  debug: { max_rounds: 1 }\n",
        // The debug stage claims success; kkrun's own final checks decide.
        &[
            plan(),
            fix_add(),
            break_mul(),
            finish("code"),
            finish("debug"),
            review("approve"),
        ],
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["tasks"][0]["outcome"], "failed");
    assert_eq!(check(&report, 0, "add")["status"], "fixed");
    assert_eq!(check(&report, 0, "mul")["status"], "newly_broken");
    let reason = report["tasks"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("mul (newly broken)"), "{reason}");
}

#[test]
fn a_debug_round_can_send_the_work_back_to_code() {
    let fx = Fixture::new();
    let wrong = call(
        "wrong",
        "edit_file",
        json!({"path": "calc.py", "old": "return a - b", "new": "return a * b"}),
    );
    let back = call(
        "back",
        "return_to_code",
        json!({"reason": "add multiplies", "redo": "use +"}),
    );
    let refix = call(
        "refix",
        "edit_file",
        json!({"path": "calc.py", "old": "def add(a, b):\n    return a * b", "new": "def add(a, b):\n    return a + b"}),
    );
    let task = fx.task(
        "loop",
        "",
        &[
            plan(),
            wrong,
            finish("c1"),
            back,
            refix,
            finish("c2"),
            review("approve"),
        ],
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        stage_ends(&report, 0),
        [
            "blueprint:finished",
            "code:finished",
            "debug:return_to_code",
            "code:finished",
            "debug:skipped",
            "preview:finished"
        ]
    );
    assert_eq!(
        snapshot_refs(&fx.repo()),
        [
            "00-base",
            "01-blueprint",
            "02-code",
            "03-debug",
            "04-code",
            "05-preview"
        ]
    );
    assert_eq!(report["tasks"][0]["stages"][3]["round"], 2);
}

#[test]
fn checks_still_failing_after_max_rounds_exit_1_with_the_output_in_junit() {
    let fx = Fixture::new();
    let back = call(
        "back",
        "return_to_code",
        json!({"reason": "still wrong", "redo": "try again"}),
    );
    let task = fx.task(
        "stubborn",
        "stages:\n  debug: { max_rounds: 2 }\n",
        &[
            plan(),
            finish("c1"),
            back,
            finish("c2"),
            finish("d2"),
            review("request_changes"),
        ],
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(check(&report, 0, "add")["status"], "still_failing");
    assert_eq!(
        snapshot_refs(&fx.repo()),
        [
            "00-base",
            "01-blueprint",
            "02-code",
            "03-debug",
            "04-code",
            "05-debug",
            "06-preview"
        ]
    );
    let junit = std::fs::read_to_string(fx.out().join("junit.xml")).unwrap();
    assert!(junit.contains("<failure type=\"check_failed\""), "{junit}");
    assert!(
        junit.contains("add(2, 3) == -1"),
        "the failure carries the output tail: {junit}"
    );
}

#[test]
fn a_flaky_check_that_passes_on_retry_counts_as_a_pass() {
    let fx = Fixture::new();
    // Fails on every odd run, passes on every even one.
    let counter = fx.root().join("flaky-count");
    let flaky_check = format!(
        "  - name: flaky\n    retries: 1\n    run: n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; test $((n % 2)) -eq 1\n",
        c = counter.display()
    );
    let task = fx.add_task(
        &TaskFile::new(
            "flaky",
            &[plan(), fix_add(), finish("c"), review("approve")],
        )
        .extra_checks(&flaky_check),
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 0, "{report:#}");
    let flaky = check(&report, 0, "flaky");
    assert_eq!(flaky["final"]["flaky"], true, "{flaky:#}");
    assert_eq!(flaky["final"]["passed"], true);
    let junit = std::fs::read_to_string(fx.out().join("junit.xml")).unwrap();
    assert!(junit.contains("<flakyFailure"), "{junit}");
}

#[test]
fn a_review_that_requests_changes_fails_the_task_unless_advisory() {
    let fx = Fixture::new();
    let turns = [plan(), fix_add(), finish("c"), review("request_changes")];
    let task = fx.task("strict", "", &turns);
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        report["tasks"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("review requested changes")
    );

    let fx = Fixture::new();
    let task = fx.task(
        "lenient",
        "stages:\n  preview: { advisory: true }\n",
        &turns,
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["tasks"][0]["review"]["advisory"], true);
}

#[test]
fn running_out_of_tokens_mid_code_exits_4_and_keeps_the_work() {
    let fx = Fixture::new();
    // Each scripted turn costs 1100 tokens: blueprint uses 2200, the first
    // code turn brings the task to 3300, over the 3000 budget.
    let task = fx.task(
        "budget",
        "budget: { max_tokens: 3000 }\n",
        &[
            read_calc(),
            plan(),
            fix_add(),
            finish("never reached"),
            review("approve"),
        ],
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 4, "{report:#}");
    assert_eq!(report["tasks"][0]["outcome"], "budget_exhausted");
    assert_eq!(
        stage_ends(&report, 0),
        ["blueprint:finished", "code:max_tokens"]
    );
    assert_eq!(
        snapshot_refs(&fx.repo()),
        ["00-base", "01-blueprint", "02-code"]
    );
    assert!(
        std::fs::read_to_string(fx.repo().join("calc.py"))
            .unwrap()
            .contains("a + b"),
        "work kept"
    );
}

#[test]
fn on_failure_rollback_restores_the_base_exactly() {
    let fx = Fixture::new();
    let create = call(
        "new",
        "write_file",
        json!({"path": "notes/new.txt", "content": "scratch\n"}),
    );
    let task = fx.task(
        "rollback",
        "on_failure: rollback\n",
        &[
            plan(),
            fix_add(),
            create,
            finish("c"),
            review("request_changes"),
        ],
    );
    std::fs::write(fx.repo().join("untracked-before.txt"), "mine\n").unwrap();
    let status_before = git(&fx.repo(), &["status", "--porcelain"]);
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        report["tasks"][0]["restored_to_base"],
        "on_failure: rollback"
    );
    assert_eq!(
        std::fs::read_to_string(fx.repo().join("calc.py")).unwrap(),
        CALC
    );
    assert!(!fx.repo().join("notes/new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(fx.repo().join("untracked-before.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(git(&fx.repo(), &["status", "--porcelain"]), status_before);
    // The agent's work is still in the snapshots and the patch.
    let patch = std::fs::read_to_string(fx.out().join("rollback/final.patch")).unwrap();
    assert!(patch.contains("notes/new.txt"), "{patch}");
}

#[test]
fn two_tasks_in_one_run_start_from_the_same_base() {
    let fx = Fixture::new();
    let first = fx.task(
        "first",
        "",
        &[plan(), fix_add(), finish("c"), review("approve")],
    );
    let second = fx.task(
        "second",
        "",
        &[plan(), fix_add(), finish("c"), review("approve")],
    );
    let (code, report) = fx.run_tasks(&[&first, &second]);
    assert_eq!(code, 0, "{report:#}");
    // The second task saw the original bug at its baseline: the first task's
    // fix was rolled back between the tasks.
    assert_eq!(check(&report, 1, "add")["baseline"]["passed"], false);
    assert_eq!(check(&report, 1, "add")["status"], "fixed");
    assert_eq!(
        report["tasks"][0]["restored_to_base"],
        "the next task starts from the same base"
    );
    assert_eq!(report["tasks"][1]["restored_to_base"], Value::Null);
}

#[test]
fn a_rejected_api_key_exits_3_with_a_complete_report() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // Answer every connection with 401; kkrun must not retry it.
        listener.set_nonblocking(false).unwrap();
        let mut served = 0;
        while let Ok((mut stream, _)) = listener.accept() {
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let body = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            served += 1;
            if served >= 1 {
                break;
            }
        }
        served
    });
    let fx = Fixture::new();
    let task = fx.add_task(&TaskFile::new("auth", &[]).model("openai:gpt-4.1"));
    // Without the preflight the refusal comes at the first turn, and the
    // task's record says so.
    let output = fx.run_live(address, &task);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.join().unwrap(), 1, "a 401 is not retried");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.out().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["tasks"][0]["outcome"], "error");
    let reason = report["tasks"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("401"), "{reason}");
    for file in ["report.json", "events.jsonl", "summary.md", "junit.xml"] {
        let text = std::fs::read_to_string(fx.out().join(file)).unwrap();
        assert!(
            !text.contains("sk-test-not-a-real-key-123456"),
            "the key leaked into {file}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigint_mid_stage_exits_130_with_a_complete_record() {
    let fx = Fixture::new();
    let sleep = call("sleep", "shell", json!({"command": "sleep 30"}));
    let task = fx.task(
        "interrupted",
        "",
        &[plan(), sleep, finish("c"), review("approve")],
    );
    let mut child = fx
        .kkrun(&["run", "--json", "--out", fx.out().to_str().unwrap(), &task])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the code stage has started its shell command.
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["type"] == "stage.started" && event["stage"] == "code" {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the shell command was not killed"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.out().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["exit_code"], 130);
    assert_eq!(report["tasks"][0]["outcome"], "interrupted");
    assert!(
        snapshot_refs(&fx.repo()).contains(&"02-interrupted".to_string()),
        "{:?}",
        snapshot_refs(&fx.repo())
    );
    // events.jsonl is valid line by line and ends with run.finished.
    let events = std::fs::read_to_string(fx.out().join("events.jsonl")).unwrap();
    let parsed: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.first().unwrap()["type"], "run.started");
    assert_eq!(parsed.last().unwrap()["type"], "run.finished");
    assert_eq!(
        rest.last()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].clone()),
        Some(json!("run.finished"))
    );
}

#[test]
fn json_mode_writes_only_events_on_stdout() {
    let fx = Fixture::new();
    let task = fx.task(
        "quiet",
        "",
        &[plan(), fix_add(), finish("c"), review("approve")],
    );
    let output = fx
        .kkrun(&["run", "--json", "--out", fx.out().to_str().unwrap(), &task])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect();
    assert_eq!(events[0]["type"], "run.started");
    assert_eq!(events[0]["schema_version"], 1);
    assert_eq!(events.last().unwrap()["type"], "run.finished");
    assert_eq!(
        stdout,
        std::fs::read_to_string(fx.out().join("events.jsonl")).unwrap()
    );
}

#[test]
fn a_run_directory_inside_the_work_tree_survives_restores_and_is_never_snapshotted() {
    let fx = Fixture::new();
    let first = fx.task(
        "first",
        "",
        &[plan(), fix_add(), finish("c"), review("approve")],
    );
    let second = fx.task(
        "second",
        "",
        &[plan(), fix_add(), finish("c"), review("approve")],
    );
    let out = fx.repo().join("kkrun-results");
    let output = fx
        .kkrun(&["run", "--out", out.to_str().unwrap(), &first, &second])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for task in 0..2 {
        let files: Vec<&str> = report["tasks"][task]["files_changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            files,
            ["calc.py"],
            "the run directory is not part of the change"
        );
    }
    assert!(
        out.join("first/final.patch").is_file(),
        "the first task's files survived the restore"
    );

    let refused = fx
        .kkrun(&["run", "--out", fx.repo().to_str().unwrap(), &first])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("root of a git work tree"));
}

#[test]
fn snapshot_events_say_whether_the_tree_was_scanned() {
    let fx = Fixture::new();
    let task = fx.task("scan-kinds", "", &e2e_support::fix_and_approve());
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    let scans: Vec<(String, String)> = run
        .events()
        .iter()
        .filter(|event| event["type"] == "snapshot.taken")
        .map(|event| {
            (
                event["snapshot_stage"].as_str().unwrap().to_owned(),
                event["scan"].as_str().unwrap_or("absent").to_owned(),
            )
        })
        .collect();
    let pair = |stage: &str, scan: &str| (stage.to_owned(), scan.to_owned());
    assert_eq!(
        scans,
        [
            // Nothing is known before the first snapshot.
            pair("base", "full"),
            // The baseline checks ran after 00-base.
            pair("blueprint", "full"),
            // Only edit_file wrote during code.
            pair("code", "incremental"),
            // The checks ran again after code.
            pair("preview", "full"),
        ]
    );
}

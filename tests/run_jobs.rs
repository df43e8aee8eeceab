//! `--jobs N`: up to N tasks at once, each in its own worktree. Real git
//! repositories, the real binary, and a loopback OpenAI-wire server that
//! plays the model of every task and counts the requests in flight.

mod e2e_support;

use std::time::Duration;

use e2e_support::task_server::{ServerOptions, TaskServer};
use e2e_support::{
    Fixture, Run, TaskFile, assert_rebuild_is_byte_identical, git, outcomes, user_view,
};
use serde_json::Value;

/// `count` tasks named `task-1`… that fix `add` through the live server.
fn live_tasks(fx: &Fixture, count: usize) -> Vec<String> {
    (1..=count)
        .map(|i| fx.add_task(&TaskFile::new(&format!("task-{i}"), &[]).model("openai:gpt-4.1")))
        .collect()
}

/// `kkrun run --no-preflight --out out ARGS... TASKS...` against `server`.
fn run_live(fx: &Fixture, server: &TaskServer, args: &[&str], tasks: &[String]) -> Run {
    let mut all = vec!["run", "--no-preflight", "--out", "out"];
    all.extend_from_slice(args);
    all.extend(tasks.iter().map(String::as_str));
    let mut command = fx.kkrun(&all);
    command
        .env("OPENAI_BASE_URL", server.base_url())
        .env("OPENAI_API_KEY", "sk-test-jobs-0123456789");
    Run::capture(command, &fx.out())
}

/// Not on a terminal, every progress line of a task starts with the time
/// and the task's name, and no line holds two tasks' text.
fn assert_console_lines_name_one_task(stderr: &str, tasks: usize) {
    let names: Vec<String> = (1..=tasks).map(|i| format!("task-{i}")).collect();
    let mut seen = 0;
    for line in stderr.lines() {
        let named: Vec<&String> = names.iter().filter(|n| line.contains(n.as_str())).collect();
        if named.is_empty() {
            continue;
        }
        assert_eq!(named.len(), 1, "a line mixes tasks: {line:?}\n{stderr}");
        let (time, rest) = line.split_once("] ").unwrap_or(("", ""));
        assert!(
            time.starts_with('[') && rest.starts_with(named[0].as_str()),
            "a task's line must start with [time] and its name: {line:?}"
        );
        seen += 1;
    }
    // Each task prints at least its start, stages and result.
    assert!(seen >= tasks * 4, "{stderr}");
}

#[test]
fn four_tasks_with_two_jobs_overlap_all_pass_and_leave_the_users_tree_alone() {
    let fx = Fixture::new();
    let server = TaskServer::start(ServerOptions {
        latency: Duration::from_millis(300),
        max_in_flight: None,
    });
    let tasks = live_tasks(&fx, 4);
    let repo = fx.repo();
    let before = user_view(&repo);
    let worktrees = fx.root().join("worktrees");

    let run = run_live(
        &fx,
        &server,
        &["--jobs", "2", "--worktrees", worktrees.to_str().unwrap()],
        &tasks,
    );
    run.expect_code(0);

    assert_eq!(user_view(&repo), before, "the user's repository changed");
    // Two tasks were talking to the model at the same time.
    assert!(
        server.max_in_flight() >= 2,
        "max in flight {}",
        server.max_in_flight()
    );
    let report = run.report();
    assert_eq!(
        outcomes(&report),
        (1..=4)
            .map(|i| (format!("task-{i}"), "passed".to_string()))
            .collect::<Vec<_>>(),
        "tasks are reported in task order"
    );
    for task in report["tasks"].as_array().unwrap() {
        let stages: Vec<String> = task["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}:{}",
                    s["stage"].as_str().unwrap(),
                    s["end"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            stages,
            [
                "blueprint:finished",
                "code:finished",
                "debug:skipped",
                "preview:finished"
            ],
            "{task}"
        );
        let name = task["name"].as_str().unwrap();
        let patch = run.file(&format!("{name}/final.patch"));
        assert!(patch.contains("+    return a + b"), "{name}: {patch}");
    }
    // The events of the tasks interleave, and one aggregator still builds
    // the same reports from them.
    let started: Vec<usize> = run
        .events()
        .iter()
        .enumerate()
        .filter(|(_, e)| e["type"] == "task.started")
        .map(|(i, _)| i)
        .collect();
    let first_finished = run
        .events()
        .iter()
        .position(|e| e["type"] == "task.finished")
        .unwrap();
    assert!(
        started[1] < first_finished,
        "the second task started before the first finished"
    );
    assert_console_lines_name_one_task(&run.stderr(), 4);
    assert_rebuild_is_byte_identical(fx.root(), &fx.out());
    assert!(
        std::fs::read_dir(&worktrees).unwrap().next().is_none(),
        "worktrees removed"
    );
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
}

#[test]
fn jobs_and_a_partition_run_only_the_shard_concurrently() {
    let fx = Fixture::new();
    let server = TaskServer::start(ServerOptions::default());
    let tasks = live_tasks(&fx, 4);
    let run = run_live(
        &fx,
        &server,
        &["--jobs", "2", "--partition", "slice:1/2"],
        &tasks,
    );
    run.expect_code(0);
    let report = run.report();
    assert_eq!(
        outcomes(&report),
        [
            ("task-1".to_string(), "passed".to_string()),
            ("task-3".to_string(), "passed".to_string())
        ]
    );
    assert_eq!(report["partition"]["total_tasks"], 4);
}

#[test]
fn jobs_zero_is_refused_naming_the_flag() {
    let fx = Fixture::new();
    let tasks = live_tasks(&fx, 1);
    for bad in ["0", "many"] {
        let output = fx
            .kkrun(&["run", "--jobs", bad, &tasks[0]])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--jobs {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--jobs"), "{stderr}");
        if bad == "0" {
            assert!(stderr.contains("must be at least 1"), "{stderr}");
        }
    }
    assert!(!fx.out().exists());
}

#[test]
fn eight_jobs_against_a_server_that_refuses_more_than_two_in_flight_all_pass() {
    let fx = Fixture::new();
    // More than two requests in flight get 429 with `Retry-After: 1`; the
    // default cap (4) lets more than that through at first, so the run must
    // recover through the shared backoff and the lowered cap.
    // Each turn takes long enough that the tasks' requests overlap.
    let server = TaskServer::start(ServerOptions {
        latency: Duration::from_millis(600),
        max_in_flight: Some(2),
    });
    let tasks = live_tasks(&fx, 8);
    let run = run_live(&fx, &server, &["--jobs", "8"], &tasks);
    run.expect_code(0);
    let report = run.report();
    assert_eq!(
        outcomes(&report),
        (1..=8)
            .map(|i| (format!("task-{i}"), "passed".to_string()))
            .collect::<Vec<_>>()
    );
    assert!(server.max_in_flight() <= 2);
    assert!(
        server.refused() > 0,
        "the server never refused: nothing was tested"
    );
    // Every refusal was retried: each of the 8 tasks got its 4 turns.
    assert_eq!(server.served(), 8 * 4, "refused {}", server.refused());
    let retries = run
        .events()
        .iter()
        .filter(|e| e["type"] == "provider.retry")
        .count();
    assert_eq!(retries, server.refused());
}

#[test]
fn max_requests_caps_the_requests_in_flight_of_an_endpoint() {
    let fx = Fixture::new();
    let server = TaskServer::start(ServerOptions {
        latency: Duration::from_millis(200),
        max_in_flight: Some(2),
    });
    let tasks = live_tasks(&fx, 4);
    let run = run_live(
        &fx,
        &server,
        &["--jobs", "4", "--max-requests", "2"],
        &tasks,
    );
    run.expect_code(0);
    assert_eq!(
        server.refused(),
        0,
        "the cap keeps the server under its limit"
    );
    assert_eq!(server.served(), 4 * 4);
}

#[cfg(unix)]
#[test]
fn sigint_with_two_tasks_in_flight_interrupts_both_and_writes_the_record() {
    use e2e_support::{call, finish, plan, review};
    use serde_json::json;
    let fx = Fixture::new();
    let sleep = || call("sleep", "shell", json!({"command": "sleep 30"}));
    let tasks: Vec<String> = (1..=3)
        .map(|i| {
            fx.task(
                &format!("task-{i}"),
                "",
                &[plan(), sleep(), finish("c"), review("approve")],
            )
        })
        .collect();
    let mut args = vec!["run", "--json", "--jobs", "2", "--out", "out"];
    args.extend(tasks.iter().map(String::as_str));
    let mut child = fx
        .kkrun(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both running tasks have started their code stage.
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut coding = 0;
    for line in lines.by_ref() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["type"] == "stage.started" && event["stage"] == "code" {
            coding += 1;
            if coding == 2 {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.finished");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.out().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["exit_code"], 130);
    let outcomes: Vec<(String, String)> = outcomes(&report);
    assert_eq!(
        outcomes,
        (1..=3)
            .map(|i| (format!("task-{i}"), "interrupted".to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        report["tasks"][2]["reason"], "not started: the run was interrupted",
        "the third task never started"
    );
}

#[test]
fn tasks_created_at_once_all_start_from_the_users_uncommitted_state() {
    let fx = Fixture::new();
    let server = TaskServer::start(ServerOptions {
        latency: Duration::from_millis(20),
        max_in_flight: None,
    });
    let tasks = live_tasks(&fx, 6);
    let repo = fx.repo();
    // Uncommitted work the worktrees must carry: a modified tracked file,
    // a staged new file and an untracked one in a new directory.
    std::fs::write(repo.join("test_mul.py"), "print('edited')\n").unwrap();
    std::fs::write(repo.join("staged.txt"), "staged\n").unwrap();
    git(&repo, &["add", "staged.txt"]);
    std::fs::create_dir_all(repo.join("notes")).unwrap();
    std::fs::write(repo.join("notes/todo.txt"), "untracked\n").unwrap();
    let before = user_view(&repo);

    let run = run_live(&fx, &server, &["--jobs", "6"], &tasks);
    run.expect_code(0);
    assert_eq!(user_view(&repo), before, "the user's repository changed");
    let report = run.report();
    let bases: Vec<String> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| {
            let base = &task["snapshots"][0];
            assert_eq!(base["stage"], "base", "{task}");
            git(
                &repo,
                &[
                    "rev-parse",
                    &format!("{}^{{tree}}", base["commit"].as_str().unwrap()),
                ],
            )
        })
        .collect();
    assert!(bases.iter().all(|tree| tree == &bases[0]), "{bases:?}");
    let files = git(&repo, &["ls-tree", "-r", "--name-only", bases[0].trim()]);
    for path in ["staged.txt", "notes/todo.txt", "test_mul.py"] {
        assert!(files.lines().any(|line| line == path), "{path}: {files}");
    }
    let edited = git(
        &repo,
        &["show", &format!("{}:test_mul.py", bases[0].trim())],
    );
    assert_eq!(edited, "print('edited')\n");
}

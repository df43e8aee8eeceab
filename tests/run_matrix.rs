//! Model matrices end to end: `models:` in a task file and several
//! `--model` flags run each task once per model, each instance in its own
//! worktree, and summary.md compares them. Real git repositories, the real
//! binary, replayed cassettes and a loopback OpenAI-wire server.

mod e2e_support;

use std::time::Duration;

use e2e_support::task_server::{ServerOptions, TaskServer};
use e2e_support::{
    CALC, Fixture, Run, TaskFile, assert_rebuild_is_byte_identical, committed_schema_errors,
    fix_and_approve, fix_but_break_mul, git, outcomes, user_view,
};
use kkrun::provider::{Cassette, WireFormat};
use serde_json::json;

/// `tasks/fix-add.yaml` comparing two recorded models: `fixer` fixes `add`,
/// `breaker` breaks `mul` on the way.
fn matrix_task(fx: &Fixture) -> String {
    let tasks = fx.root().join("tasks");
    Cassette::from_turns(WireFormat::OpenAi, "gpt-4.1", &fix_and_approve())
        .write_to(&tasks.join("fixer.jsonl"))
        .unwrap();
    Cassette::from_turns(WireFormat::OpenAi, "gpt-4.1-mini", &fix_but_break_mul())
        .write_to(&tasks.join("breaker.jsonl"))
        .unwrap();
    std::fs::write(
        tasks.join("fix-add.yaml"),
        "version: 1\nname: fix-add\nprompt: Make add() add.\nworkspace: ../repo\n\
         models: [replay:fixer.jsonl, replay:breaker.jsonl]\n\
         checks:\n  - name: add\n    run: python3 test_add.py\n  - name: mul\n    run: python3 test_mul.py\n\
         stages:\n  debug: { max_rounds: 1 }\n\
         env:\n  PYTHONDONTWRITEBYTECODE: \"1\"\n",
    )
    .unwrap();
    "tasks/fix-add.yaml".to_string()
}

/// The rows of summary.md's comparison table for `task`, split into cells.
fn comparison_rows(summary: &str, task: &str) -> Vec<Vec<String>> {
    let heading = format!("### `{task}`\n");
    let start = summary
        .find(&heading)
        .unwrap_or_else(|| panic!("no comparison for {task}:\n{summary}"));
    summary[start + heading.len()..]
        .lines()
        .skip_while(|line| line.is_empty())
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn models_in_a_task_file_run_once_each_isolated_and_side_by_side() {
    let fx = Fixture::new();
    let task = matrix_task(&fx);
    let repo = fx.repo();
    let before = user_view(&repo);

    // No --isolate: a matrix isolates its instances by itself.
    let run = fx.run("out", &[&task]);
    run.expect_code(1);
    assert_eq!(user_view(&repo), before, "the user's repository changed");

    let report = run.report();
    assert_eq!(
        outcomes(&report),
        [
            ("fix-add@fixer".to_string(), "passed".to_string()),
            ("fix-add@breaker".to_string(), "failed".to_string()),
        ]
    );
    assert_eq!(
        report["tasks"][0]["matrix"],
        json!({"task": "fix-add", "model": "replay:fixer.jsonl"})
    );
    assert_eq!(
        report["tasks"][1]["matrix"],
        json!({"task": "fix-add", "model": "replay:breaker.jsonl"})
    );
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());
    for task in report["tasks"].as_array().unwrap() {
        let worktree = task["worktree"]
            .as_str()
            .expect("an isolated task's worktree");
        assert!(!worktree.starts_with(repo.to_str().unwrap()), "{worktree}");
    }

    // Each instance has its own snapshots in the shared repository.
    let run_id = report["run_id"].as_str().unwrap();
    for instance in ["fix-add@fixer", "fix-add@breaker"] {
        let refs = git(
            &repo,
            &[
                "for-each-ref",
                "--format=%(refname)",
                &format!("refs/kkrun/{run_id}/{instance}/"),
            ],
        );
        assert!(refs.contains("/00-base"), "{instance}: {refs}");
        assert!(refs.contains("-preview"), "{instance}: {refs}");
    }

    let summary = run.file("summary.md");
    assert!(summary.contains("\n## Models compared\n"), "{summary}");
    // An isolated task's change is taken with `kkrun apply`, not undone.
    assert!(
        summary.contains(&format!("`kkrun apply {run_id} fix-add@fixer`")),
        "{summary}"
    );
    assert!(!summary.contains("kkrun rollback"), "{summary}");
    let rows = comparison_rows(&summary, "fix-add");
    assert_eq!(rows.len(), 2, "{summary}");
    assert_eq!(rows[0][0], "`replay:fixer.jsonl`");
    assert!(rows[0][1].contains("passed"), "{:?}", rows[0]);
    assert_eq!(rows[0][2], "2/2 (1 fixed)");
    assert_eq!(rows[0][3], "4", "four model turns: {:?}", rows[0]);
    assert_eq!(rows[1][0], "`replay:breaker.jsonl`");
    assert!(rows[1][1].contains("failed"), "{:?}", rows[1]);
    assert!(rows[1][2].contains("newly broken"), "{:?}", rows[1]);
    assert_eq!(rows[1][3], "6", "six model turns: {:?}", rows[1]);
    for row in &rows {
        assert_eq!(
            row.len(),
            7,
            "model, outcome, checks, turns, tokens, cost, time: {row:?}"
        );
        assert!(
            row[5].starts_with('$'),
            "a recorded model has a price: {row:?}"
        );
    }
    let junit = run.file("junit.xml");
    assert!(junit.contains("name=\"fix-add@fixer\""), "{junit}");
    assert!(junit.contains("name=\"fix-add@breaker\""), "{junit}");
    assert_rebuild_is_byte_identical(fx.root(), &run.out);

    // The passing instance's change comes back to the user's tree.
    let applied = fx
        .kkrun(&["apply", "out", "fix-add@fixer", "--repo", "repo"])
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("calc.py")).unwrap(),
        CALC.replace("a - b", "a + b")
    );
}

/// `kkrun run --no-preflight --out out ARGS...` against `server`.
fn run_live(fx: &Fixture, server: &TaskServer, args: &[&str]) -> Run {
    let mut all = vec!["run", "--no-preflight", "--out", "out"];
    all.extend_from_slice(args);
    let mut command = fx.kkrun(&all);
    command
        .env("OPENAI_BASE_URL", server.base_url())
        .env("OPENAI_API_KEY", "sk-test-matrix-0123456789");
    Run::capture(command, &fx.out())
}

#[test]
fn several_model_flags_run_every_task_once_per_model() {
    let fx = Fixture::new();
    let server = TaskServer::start(ServerOptions {
        latency: Duration::from_millis(50),
        max_in_flight: None,
    });
    let first = fx.add_task(&TaskFile::new("first", &[]).model("openai:gpt-4.1"));
    let second = fx.add_task(&TaskFile::new("second", &[]).model("openai:gpt-4.1"));
    let repo = fx.repo();
    let before = user_view(&repo);
    let models = [
        "--model",
        "openai:gpt-4.1",
        "--model",
        "openai:gpt-4.1-mini",
    ];

    let mut args = models.to_vec();
    args.extend(["--dry-run", &first]);
    let plan = fx.kkrun(&[&["run"], &args[..]].concat()).output().unwrap();
    let plan = String::from_utf8(plan.stdout).unwrap();
    assert!(plan.contains("task first@gpt-4.1  ("), "{plan}");
    assert!(plan.contains("task first@gpt-4.1-mini  ("), "{plan}");
    assert!(
        plan.contains("matrix:      task first with openai:gpt-4.1-mini, in its own worktree"),
        "{plan}"
    );

    let mut args = models.to_vec();
    args.extend(["--jobs", "2", "--worktrees", "wts", &first, &second]);
    let run = run_live(&fx, &server, &args);
    run.expect_code(0);
    assert_eq!(user_view(&repo), before, "the user's repository changed");
    // `--worktrees` applies to a matrix's worktrees, removed afterwards.
    let wts = fx.root().join("wts").canonicalize().unwrap();
    assert_eq!(std::fs::read_dir(&wts).unwrap().count(), 0);

    let report = run.report();
    for task in report["tasks"].as_array().unwrap() {
        let worktree = task["worktree"].as_str().unwrap();
        assert!(worktree.starts_with(wts.to_str().unwrap()), "{worktree}");
    }
    let expected: Vec<(String, String)> = [
        "first@gpt-4.1",
        "first@gpt-4.1-mini",
        "second@gpt-4.1",
        "second@gpt-4.1-mini",
    ]
    .iter()
    .map(|name| (name.to_string(), "passed".to_string()))
    .collect();
    assert_eq!(outcomes(&report), expected);
    let models: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        [
            "openai:gpt-4.1",
            "openai:gpt-4.1-mini",
            "openai:gpt-4.1",
            "openai:gpt-4.1-mini"
        ]
    );
    let summary = run.file("summary.md");
    for task in ["first", "second"] {
        let rows = comparison_rows(&summary, task);
        let shown: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(shown, ["`openai:gpt-4.1`", "`openai:gpt-4.1-mini`"]);
    }
    // The mini model is cheaper at the same token counts.
    let cost = |i: usize| report["tasks"][i]["cost_usd"].as_f64().unwrap();
    assert!(cost(1) < cost(0), "{} vs {}", cost(1), cost(0));
}

#[test]
fn a_model_given_twice_is_refused_before_anything_runs() {
    let fx = Fixture::new();
    let task = fx.add_task(&TaskFile::new("first", &[]).model("openai:gpt-4.1"));
    let run = fx.run(
        "out",
        &[
            "--model",
            "openai:gpt-4.1",
            "--model",
            "openai:gpt-4.1",
            &task,
        ],
    );
    run.expect_code(2);
    assert!(
        run.stderr()
            .contains("--model `openai:gpt-4.1` is given twice"),
        "{}",
        run.stderr()
    );
    assert!(!fx.out().exists(), "nothing ran");
}

#[test]
fn every_model_is_told_the_tasks_own_name_so_recordings_replay_in_a_matrix() {
    // The README example's cassette was recorded without a matrix; its
    // requests must match byte for byte, so the instances' prompts cannot
    // carry `@model`.
    let checkout = e2e_support::example_checkout();
    let cassettes = checkout.path().join("tasks/cassettes");
    for copy in ["model-a.jsonl", "model-b.jsonl"] {
        std::fs::copy(cassettes.join("fix-iso-weeks.jsonl"), cassettes.join(copy)).unwrap();
    }
    let run = Run::capture(
        e2e_support::kkrun(
            checkout.path(),
            &[
                "run",
                "--out",
                "out",
                "--model",
                "replay:tasks/cassettes/model-a.jsonl",
                "--model",
                "replay:tasks/cassettes/model-b.jsonl",
                "tasks/fix-iso-weeks.yaml",
            ],
        ),
        &checkout.path().join("out"),
    );
    run.expect_code(0);
    let expected = [
        ("fix-iso-weeks@model-a".to_string(), "passed".to_string()),
        ("fix-iso-weeks@model-b".to_string(), "passed".to_string()),
    ];
    assert_eq!(outcomes(&run.report()), expected);

    // Resumed, the instances are those of the `--model`s the run was given.
    cut_stream(&run.out, |l| {
        l.contains("\"type\":\"stage.finished\"") && l.contains("\"stage\":\"code\"")
    });
    let resumed = Run::capture(
        e2e_support::kkrun(checkout.path(), &["resume", "out"]),
        &run.out,
    );
    resumed.expect_code(0);
    assert!(
        resumed.stderr().contains("resumed after code"),
        "{}",
        resumed.stderr()
    );
    assert_eq!(outcomes(&resumed.report()), expected);
}

/// Cuts the run's stream right after the first line `at` matches, as a
/// kill there would, and removes the report the run wrote at its end.
fn cut_stream(out: &std::path::Path, at: impl Fn(&str) -> bool) {
    let events = out.join("events.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.iter().position(|l| at(l)).unwrap();
    let kept: String = lines[..=cut].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&events, kept).unwrap();
    std::fs::remove_file(out.join("report.json")).unwrap();
}

#[test]
fn a_cut_short_matrix_run_resumes_isolated_not_in_the_users_tree() {
    let fx = Fixture::new();
    let task = matrix_task(&fx);
    let repo = fx.repo();
    let before = user_view(&repo);
    let first = fx.run("out", &[&task]);
    first.expect_code(1);
    let expected = outcomes(&first.report());
    let expected_rows = comparison_rows(&first.file("summary.md"), "fix-add");
    // Killed once the first instance had started (nothing on the command
    // line says the run was isolated: the task file's `models:` did).
    cut_stream(&fx.out(), |l| l.contains("\"type\":\"task.started\""));
    let resumed = Run::capture(fx.kkrun(&["resume", "out"]), &fx.out());
    resumed.expect_code(1);
    assert_eq!(outcomes(&resumed.report()), expected);
    assert_eq!(
        comparison_rows(&resumed.file("summary.md"), "fix-add")
            .iter()
            .map(|row| (row[0].clone(), row[1].clone()))
            .collect::<Vec<_>>(),
        expected_rows
            .iter()
            .map(|row| (row[0].clone(), row[1].clone()))
            .collect::<Vec<_>>()
    );
    for task in resumed.report()["tasks"].as_array().unwrap() {
        assert!(task["worktree"].is_string(), "{task:#}");
    }
    assert_eq!(user_view(&repo), before, "the user's repository changed");
}

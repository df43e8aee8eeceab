//! Guards around a run, on the real binary: budgets that count an estimate
//! when the server reports no usage, `--out` refusals, and the default
//! workspace (the repository holding the task file).

mod e2e_support;
mod support;

use std::path::Path;

use e2e_support::{
    Fixture, Run, TaskFile, commit_all, finish, fix_add, git, kkrun, plan, read_calc, review,
};
use kkrun::provider::script::{ScriptedTurn, encode_openai_sse};
use kkrun::provider::{Cassette, WireFormat};
use serde_json::Value;
use support::{Reply, TestServer};

/// The chat-completions stream of `turn` without its usage chunk, as
/// llama.cpp's server streams.
fn without_usage(turn: &ScriptedTurn) -> String {
    let body = encode_openai_sse(turn);
    let kept: Vec<&str> = body
        .split_inclusive("\n\n")
        .filter(|frame| !frame.contains("\"usage\""))
        .collect();
    assert!(kept.len() < body.split_inclusive("\n\n").count());
    kept.concat()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_usage_is_budgeted_on_an_estimate() {
    let turns = [
        read_calc(),
        plan(),
        fix_add(),
        finish("code"),
        review("approve"),
    ];
    let server =
        TestServer::start(turns.iter().map(|t| Reply::sse(without_usage(t))).collect()).await;
    let fx = Fixture::new();
    // Each request carries the prompts and the tool schemas: thousands of
    // estimated tokens, so a 2000-token budget ends the blueprint stage.
    let task = fx.add_task(
        &TaskFile::new("estimate", &turns)
            .model("openai:local-model")
            .extra_checks("  - name: missing\n    run: kkrun-no-such-command --version\n")
            .yaml("budget: { max_tokens: 2000 }\n"),
    );
    let mut command = fx.kkrun(&["run", "--no-preflight", "--out", "out", &task]);
    command.env("OPENAI_BASE_URL", format!("{}/v1", server.url()));
    let out = fx.out();
    let run = tokio::task::spawn_blocking(move || Run::capture(command, &out))
        .await
        .unwrap();
    run.expect_code(4);

    let report = run.report();
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "budget_exhausted", "{task:#}");
    assert_eq!(task["usage"]["estimated"], true);
    assert!(task["usage"]["input_tokens"].as_u64().unwrap() >= 2000);
    assert_eq!(
        report["totals"]["usage"]["estimated"], true,
        "{:#}",
        report["totals"]
    );
    assert_eq!(task["stages"][0]["usage"]["estimated"], true);

    let events = run.events();
    let turn = events.iter().find(|e| e["type"] == "model.turn").unwrap();
    assert_eq!(turn["usage"]["estimated"], true, "{turn}");
    let warnings: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "warning")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("reported no token usage")),
        "{warnings:?}"
    );
    // The baseline check whose command does not exist is named.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("exited 127") && w.contains("`kkrun-no-such-command`")),
        "{warnings:?}"
    );
    let budget = events
        .iter()
        .find(|e| e["type"] == "budget.exhausted")
        .unwrap();
    assert_eq!(budget["budget"], "max_tokens");
}

/// Runs kkrun in `dir` and returns the exit code and stderr.
fn refused(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = kkrun(dir, args).output().unwrap();
    assert!(output.stdout.is_empty());
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn out_refuses_git_directories_and_foreign_directories() {
    let fx = Fixture::new();
    let task = fx.task(
        "guarded",
        "",
        &[plan(), fix_add(), finish("code"), review("approve")],
    );
    let task_from_repo = format!("../{task}");
    let exclude = fx.repo().join(".git/info/exclude");
    let exclude_before = std::fs::read_to_string(&exclude).unwrap_or_default();
    let repo = fx.repo();

    for out in [".git", ".git/kkrun", "./sub/../.git/refs"] {
        let (code, stderr) = refused(&repo, &["run", "--out", out, &task_from_repo]);
        assert_eq!(code, 2, "{out}: {stderr}");
        assert!(stderr.contains("inside a git directory"), "{out}: {stderr}");
    }
    let (code, stderr) = refused(&repo, &["run", "--out", ".", &task_from_repo]);
    assert_eq!(code, 2);
    assert!(stderr.contains("root of a git work tree"), "{stderr}");
    // `tasks/` holds the task files: a directory that is not a run.
    let (code, stderr) = refused(fx.root(), &["run", "--out", "tasks", &task]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a kkrun run"), "{stderr}");
    assert!(stderr.contains("--out tasks"), "{stderr}");
    std::fs::write(fx.root().join("notes.txt"), "keep").unwrap();
    let (code, _) = refused(fx.root(), &["run", "--out", "notes.txt", &task]);
    assert_eq!(code, 2);
    assert!(!fx.repo().join(".git/kkrun").exists());

    // A new directory inside the work tree ignores itself; the exclude file
    // gains only `.kkrun/`.
    let run = Run::capture(
        kkrun(&repo, &["run", "--out", "results", &task_from_repo]),
        &repo.join("results"),
    );
    run.expect_code(0);
    let exclude_after = std::fs::read_to_string(&exclude).unwrap();
    let added: Vec<&str> = exclude_after
        .lines()
        .filter(|l| !exclude_before.lines().any(|b| b == *l))
        .collect();
    assert_eq!(added, [".kkrun/"]);
    assert!(repo.join("results/.gitignore").is_file());
    let status = git(&repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(!status.contains("results"), "{status}");

    // The same directory again: an earlier run's directory is reused, and
    // its files are this run's.
    let before = run.report()["run_id"].clone();
    git(&repo, &["checkout", "-q", "--", "calc.py"]);
    let again = Run::capture(
        kkrun(&repo, &["run", "--out", "results", &task_from_repo]),
        &repo.join("results"),
    );
    again.expect_code(0);
    assert_ne!(again.report()["run_id"], before);
    let starts = again
        .events()
        .iter()
        .filter(|e| e["type"] == "run.started")
        .count();
    assert_eq!(starts, 1);
    // An empty directory is fine too.
    std::fs::create_dir(fx.root().join("empty")).unwrap();
    git(&repo, &["checkout", "-q", "--", "calc.py"]);
    let empty = Run::capture(
        kkrun(fx.root(), &["run", "--out", "empty", &task]),
        &fx.root().join("empty"),
    );
    empty.expect_code(0);
}

/// Writes `repo/tasks/fix.yaml` with no `workspace:` (and its cassette).
fn task_without_workspace(fx: &Fixture) -> &'static str {
    let dir = fx.repo().join("tasks");
    std::fs::create_dir_all(&dir).unwrap();
    Cassette::from_turns(
        WireFormat::OpenAi,
        "gpt-4.1",
        &[plan(), fix_add(), finish("code"), review("approve")],
    )
    .write_to(&dir.join("fix.jsonl"))
    .unwrap();
    std::fs::write(
        dir.join("fix.yaml"),
        "version: 1\nname: fix\nprompt: Make add() add.\nmodel: replay:fix.jsonl\n\
         checks:\n  - name: add\n    run: python3 test_add.py\n\
         env:\n  PYTHONDONTWRITEBYTECODE: \"1\"\n",
    )
    .unwrap();
    commit_all(&fx.repo(), "tasks");
    "tasks/fix.yaml"
}

#[test]
fn without_workspace_a_task_works_on_the_repository_holding_it() {
    let fx = Fixture::new();
    let task = task_without_workspace(&fx);
    let repo = fx.repo();
    let validate = kkrun(&repo, &["validate", task]).output().unwrap();
    assert!(validate.status.success(), "{validate:?}");
    let run = Run::capture(
        kkrun(&repo, &["run", "--out", "../out", task]),
        &fx.root().join("out"),
    );
    run.expect_code(0);
    let report: Value = run.report();
    let workspace = report["tasks"][0]["workspace"].as_str().unwrap();
    assert_eq!(
        Path::new(workspace).canonicalize().unwrap(),
        repo.canonicalize().unwrap(),
        "{workspace}"
    );
    assert_eq!(
        report["tasks"][0]["checks"][0]["status"], "fixed",
        "{:#}",
        report["tasks"][0]["checks"]
    );
}

#[test]
fn without_workspace_a_task_file_outside_a_repository_is_an_error() {
    let fx = Fixture::new();
    std::fs::write(
        fx.root().join("tasks/lost.yaml"),
        "version: 1\nname: lost\nprompt: Do it.\nmodel: openai:gpt-4.1\n",
    )
    .unwrap();
    let output = kkrun(fx.root(), &["validate", "tasks/lost.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tasks/lost.yaml:2"), "{stderr}");
    assert!(stderr.contains("not inside a git work tree"), "{stderr}");
    assert!(stderr.contains("set `workspace:`"), "{stderr}");
}

#[test]
fn a_budget_end_still_runs_the_final_checks() {
    let fx = Fixture::new();
    // 1100 tokens a turn: the budget runs out in code, after the fix.
    let task = fx.task(
        "budget",
        "budget: { max_tokens: 3000 }\n",
        &[
            read_calc(),
            plan(),
            fix_add(),
            finish("code"),
            review("approve"),
        ],
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(4);
    let report = run.report();
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "budget_exhausted");
    let reason = task["reason"].as_str().unwrap();
    assert!(reason.contains("the final checks pass"), "{reason}");
    let statuses: Vec<&str> = task["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["fixed", "passing"], "{:#}", task["checks"]);
    let phases: Vec<Value> = run
        .events()
        .into_iter()
        .filter(|e| e["type"] == "checks.finished")
        .map(|e| e["phase"].clone())
        .collect();
    assert_eq!(phases, ["baseline", "final"]);
    // JUnit: the checks pass; only the review, which never ran, is an error.
    let junit = run.file("junit.xml");
    assert_eq!(junit.matches("<error").count(), 1, "{junit}");
    assert!(junit.contains("type=\"budget_exhausted\""), "{junit}");
}

//! `kkrun apply RUN TASK` and `--apply`: an isolated task's change written
//! into the user's work tree, merged with what changed there since, or
//! refused naming the conflicting paths with nothing changed.

mod e2e_support;

use std::path::Path;

use e2e_support::{Fixture, call, finish, fix_and_approve, git, plan, review};
use kkrun::provider::script::ScriptedTurn;
use serde_json::json;

/// Fixes `add` another way than [`e2e_support::fix_add`]: both pass, and
/// they conflict with each other.
fn fix_add_swapped() -> Vec<ScriptedTurn> {
    vec![
        plan(),
        call(
            "fix",
            "edit_file",
            json!({"path": "calc.py", "old": "return a - b", "new": "return b + a"}),
        ),
        finish("code"),
        review("approve"),
    ]
}

fn calc(repo: &Path) -> String {
    std::fs::read_to_string(repo.join("calc.py")).unwrap()
}

fn apply(fx: &Fixture, task: &str) -> std::process::Output {
    fx.kkrun(&["apply", "out", task, "--repo", "repo"])
        .output()
        .unwrap()
}

#[test]
fn apply_writes_the_change_keeps_the_users_other_edits_and_never_touches_head_or_the_index() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let task = fx.task("fix-add", "", &fix_and_approve());
    fx.run("out", &["--isolate", "--worktrees", "wts", &task])
        .expect_code(0);
    assert!(calc(&repo).contains("a - b"));

    // Edits made while the task ran, elsewhere: they survive the apply.
    std::fs::write(repo.join("notes.txt"), "mine\n").unwrap();
    std::fs::write(repo.join("staged.txt"), "staged\n").unwrap();
    git(&repo, &["add", "staged.txt"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let staged = git(&repo, &["diff", "--cached"]);
    let branches = git(&repo, &["branch", "-a", "-v"]);

    let out = apply(&fx, "fix-add");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("applied task fix-add of run"), "{stdout}");
    assert!(stdout.contains("modified  calc.py (+1 -1)"), "{stdout}");
    assert!(stdout.contains("undo with: kkrun rollback"), "{stdout}");
    assert!(calc(&repo).contains("a + b"));
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&repo, &["diff", "--cached"]), staged);
    assert_eq!(git(&repo, &["branch", "-a", "-v"]), branches);
    assert!(git(&repo, &["status", "--porcelain"]).contains(" M calc.py"));

    // Twice is harmless.
    let again = apply(&fx, "fix-add");
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already holds its change"));
}

#[test]
fn a_conflicting_apply_is_refused_with_exit_2_naming_the_paths_and_changes_nothing() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let task = fx.task("fix-add", "", &fix_and_approve());
    fx.run("out", &["--isolate", "--worktrees", "wts", &task])
        .expect_code(0);
    let mine = calc(&repo).replace("return a - b", "return a * 1 + b");
    std::fs::write(repo.join("calc.py"), &mine).unwrap();
    let refs = git(&repo, &["for-each-ref", "refs/kkrun/"]);

    let out = apply(&fx, "fix-add");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be applied"), "{stderr}");
    assert!(stderr.contains("calc.py"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(calc(&repo), mine);
    assert_eq!(
        git(&repo, &["for-each-ref", "refs/kkrun/"]),
        refs,
        "no safety snapshot either"
    );
}

#[test]
fn apply_names_an_unknown_task_and_run() {
    let fx = Fixture::new();
    let task = fx.task("fix-add", "", &fix_and_approve());
    fx.run("out", &["--isolate", "--worktrees", "wts", &task])
        .expect_code(0);
    let out = apply(&fx, "nope");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kkrun apply: run"));
    let out = fx
        .kkrun(&["apply", "missing", "fix-add", "--repo", "repo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no report.json"));
}

#[test]
fn run_apply_applies_passing_tasks_in_order_and_stops_at_the_first_conflict() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let failing = fx.task(
        "a-rejected",
        "",
        &[
            plan(),
            e2e_support::fix_add(),
            finish("code"),
            review("request_changes"),
        ],
    );
    let first = fx.task("b-fix", "", &fix_and_approve());
    let second = fx.task("c-swapped", "", &fix_add_swapped());
    let run = fx.run(
        "out",
        &["--apply", "--worktrees", "wts", &failing, &first, &second],
    );
    run.expect_code(2);
    assert!(
        calc(&repo).contains("return a + b"),
        "b-fix was applied:\n{}",
        calc(&repo)
    );
    let stderr = run.stderr();
    assert!(stderr.contains("applied task b-fix"), "{stderr}");
    assert!(!stderr.contains("applied task a-rejected"), "{stderr}");
    assert!(stderr.contains("--apply stopped at a conflict"), "{stderr}");
    assert!(stderr.contains("task c-swapped of run"), "{stderr}");
    assert_eq!(run.report()["exit_code"], 2);
    // --apply implies --isolate: no worktree is left, HEAD did not move.
    assert!(
        std::fs::read_dir(fx.root().join("wts"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), " M calc.py\n");
}

#[test]
fn run_apply_of_a_passing_task_exits_0() {
    let fx = Fixture::new();
    let task = fx.task("fix-add", "", &fix_and_approve());
    let run = fx.run("out", &["--apply", &task]);
    run.expect_code(0);
    assert!(calc(&fx.repo()).contains("return a + b"));
}

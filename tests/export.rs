//! `kkrun export` through the real binary on real repositories: the branch
//! holds exactly base + the task's change; HEAD, the index, the work tree and
//! other branches stay as they were; conflicts and existing branches are
//! refused; `--force` replaces.

mod e2e_support;
mod snapshot_support;

use std::path::Path;

use assert_cmd::Command;
use kkrun::snapshot::{SnapshotMeta, SnapshotStore};
use snapshot_support::TestRepo;

const RUN: &str = "20261124T101500Z-ab12cd";

fn kkrun(dir: &Path) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("kkrun"));
    command
        .current_dir(dir)
        .env_remove("KKRUN_GIT_NAME")
        .env_remove("KKRUN_GIT_EMAIL")
        .env_remove("GITHUB_ACTIONS")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    command
}

/// The report a run of task `fix` would have written, reduced to what
/// export reads plus a field export does not know.
fn write_report(root: &Path) {
    let dir = root.join(".kkrun/runs").join(RUN);
    std::fs::create_dir_all(&dir).unwrap();
    let report = serde_json::json!({
        "schema_version": 1,
        "run_id": RUN,
        "tasks": [{
            "name": "fix",
            "description": "Make the greeting polite",
            "kind": "fix",
            "model": "openai:gpt-4.1",
            "outcome": "passed",
            "reason": "all 1 check(s) pass",
            "review": {"verdict": "approve", "summary": "Says please now.", "risks": ["Tone."],
                       "advisory": false},
            "checks": [{"name": "unit", "status": "fixed", "baseline": {"passed": false},
                        "final": {"passed": true}}],
            "usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 2},
            "cost_usd": 0.5,
            "a_field_of_a_later_version": {}
        }]
    });
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
}

/// `main` holds `ws/a.txt`, `ws/b.txt` and `other.txt`; task `fix` ran in
/// `ws/` on a work tree with an uncommitted `ws/dirty.txt`, modified
/// `ws/a.txt`, added `ws/c.txt` and removed `ws/b.txt`; meanwhile
/// `other.txt`, outside the workspace, changed too.
fn repo_with_task() -> TestRepo {
    let repo = TestRepo::with_commit(&[
        ("ws/a.txt", "one\ntwo\nthree\nfour\nfive\nsix\n"),
        ("ws/b.txt", "bee\n"),
        ("other.txt", "other\n"),
    ]);
    repo.write("ws/dirty.txt", "uncommitted before the run\n");
    let store = SnapshotStore::open(&repo.path("ws")).unwrap();
    store
        .take(RUN, "fix", &SnapshotMeta::new("base", "ok"))
        .unwrap();
    repo.write("ws/a.txt", "one\ntwo\nthree\nfour\nfive\nsix, please\n");
    repo.write("ws/c.txt", "sea\n");
    repo.remove("ws/b.txt");
    repo.write("other.txt", "changed by someone else\n");
    store
        .take(RUN, "fix", &SnapshotMeta::new("code", "ok"))
        .unwrap();
    write_report(repo.root());
    repo
}

fn name_status(repo: &TestRepo, from: &str, to: &str) -> String {
    repo.git(&["diff", "--name-status", "--no-renames", from, to])
}

#[test]
fn the_branch_is_one_commit_on_head_with_exactly_the_change() {
    let repo = repo_with_task();
    let head = repo.git(&["rev-parse", "HEAD"]);
    let protected = repo.protected_state();
    let files = repo.files();

    let out = kkrun(repo.root())
        .args(["export", RUN, "fix", "--branch", "kkrun/fix"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.starts_with("created branch kkrun/fix at "),
        "{stdout}"
    );
    assert!(stdout.contains("3 files changed"), "{stdout}");
    assert!(stdout.contains("git push origin kkrun/fix\n"), "{stdout}");

    // One commit whose parent is HEAD, holding the workspace's change only:
    // not the file that was dirty before the run, not other.txt.
    assert_eq!(repo.git(&["rev-parse", "kkrun/fix^"]), head);
    assert_eq!(
        name_status(&repo, "HEAD", "kkrun/fix"),
        "M\tws/a.txt\nD\tws/b.txt\nA\tws/c.txt\n"
    );
    assert_eq!(
        repo.git(&["show", "kkrun/fix:ws/a.txt"]),
        "one\ntwo\nthree\nfour\nfive\nsix, please\n"
    );
    let message = repo.git(&["log", "-1", "--format=%B", "kkrun/fix"]);
    assert!(
        message.starts_with("Make the greeting polite\n\nSays please now.\n\nRisks:\n- Tone.\n"),
        "{message}"
    );
    for trailer in [
        format!("Kkrun-Run: {RUN}"),
        "Kkrun-Task: fix".into(),
        "Kkrun-Model: openai:gpt-4.1".into(),
        "Kkrun-Cost: $0.5000".into(),
    ] {
        let found = repo.git(&["log", "-1", "--format=%(trailers:only,unfold)", "kkrun/fix"]);
        assert!(found.contains(&trailer), "{trailer} missing from {found}");
    }

    // Nothing else moved: HEAD, the index, the other branches, the files.
    let mut after = repo.protected_state();
    assert!(after.remove("refs/heads/kkrun/fix").is_some());
    after.remove("logs/refs/heads/kkrun/fix");
    assert_eq!(after, protected);
    assert_eq!(repo.files(), files);
}

#[test]
fn a_change_that_conflicts_with_the_base_is_refused_naming_the_paths() {
    let repo = repo_with_task();
    repo.git(&["checkout", "-q", "-b", "moved", "main"]);
    std::fs::write(repo.path("ws/a.txt"), "one\ntwo\nthree\nfour\nfive\nSIX\n").unwrap();
    std::fs::write(repo.path("ws/b.txt"), "bee, edited\n").unwrap();
    repo.git(&[
        "commit", "-q", "-m", "moved on", "--", "ws/a.txt", "ws/b.txt",
    ]);
    repo.git(&["checkout", "-q", "main"]);
    let protected = repo.protected_state();

    let out = kkrun(repo.root())
        .args([
            "export",
            RUN,
            "fix",
            "--branch",
            "kkrun/fix",
            "--base",
            "moved",
        ])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("does not apply to moved: 2 conflicting paths: ws/a.txt, ws/b.txt"),
        "{stderr}"
    );
    assert!(out.get_output().stdout.is_empty());
    assert_eq!(repo.protected_state(), protected);
}

#[test]
fn a_base_that_moved_elsewhere_in_a_file_still_takes_the_change() {
    let repo = repo_with_task();
    repo.git(&["checkout", "-q", "-b", "moved", "main"]);
    std::fs::write(repo.path("ws/a.txt"), "ONE\ntwo\nthree\nfour\nfive\nsix\n").unwrap();
    std::fs::write(repo.path("other.txt"), "other, on moved\n").unwrap();
    // Only these paths: the task's deletion of ws/b.txt stays in the work tree.
    repo.git(&[
        "commit",
        "-q",
        "-m",
        "moved on",
        "--",
        "ws/a.txt",
        "other.txt",
    ]);
    repo.git(&["checkout", "-q", "main"]);
    kkrun(repo.root())
        .args([
            "export",
            RUN,
            "fix",
            "--branch",
            "kkrun/fix",
            "--base",
            "moved",
        ])
        .assert()
        .success();
    assert_eq!(
        repo.git(&["rev-parse", "kkrun/fix^"]),
        repo.git(&["rev-parse", "moved"])
    );
    assert_eq!(
        repo.git(&["show", "kkrun/fix:ws/a.txt"]),
        "ONE\ntwo\nthree\nfour\nfive\nsix, please\n"
    );
    assert_eq!(
        name_status(&repo, "moved", "kkrun/fix"),
        "M\tws/a.txt\nD\tws/b.txt\nA\tws/c.txt\n"
    );
}

#[test]
fn an_existing_branch_needs_force_and_a_checked_out_one_is_never_moved() {
    let repo = repo_with_task();
    repo.git(&["branch", "kkrun/fix", "main"]);
    let before = repo.git(&["rev-parse", "kkrun/fix"]);
    let out = kkrun(repo.root())
        .args(["export", RUN, "fix", "--branch", "kkrun/fix"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("branch kkrun/fix already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(repo.git(&["rev-parse", "kkrun/fix"]), before);

    let out = kkrun(repo.root())
        .args(["export", RUN, "fix", "--branch", "kkrun/fix", "--force"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.starts_with("replaced branch kkrun/fix"), "{stdout}");
    assert!(stdout.contains("--force-with-lease"), "{stdout}");
    assert_eq!(repo.git(&["rev-parse", "kkrun/fix^"]), before);

    // main is checked out here: even --force leaves it alone.
    let main = repo.git(&["rev-parse", "main"]);
    let out = kkrun(repo.root())
        .args(["export", RUN, "fix", "--branch", "main", "--force"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("is checked out in"), "{stderr}");
    assert_eq!(repo.git(&["rev-parse", "main"]), main);
}

#[test]
fn bad_input_exits_2_and_says_what_to_do() {
    let repo = repo_with_task();
    let cases: [(&[&str], &str); 5] = [
        (
            &["export", "nope", "fix", "--branch", "x"],
            "no report.json for run \"nope\"",
        ),
        (
            &["export", RUN, "other", "--branch", "x"],
            "has no task \"other\"; tasks: fix",
        ),
        (
            &["export", RUN, "fix", "--branch", "a..b"],
            "invalid branch name \"a..b\"",
        ),
        (
            &[
                "export",
                RUN,
                "fix",
                "--branch",
                "x",
                "--base",
                "no-such-ref",
            ],
            "--base \"no-such-ref\" is not a commit",
        ),
        (&["export", RUN, "fix"], "--branch"),
    ];
    for (args, expected) in cases {
        let out = kkrun(repo.root()).args(args).assert().code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // A base that already holds the change leaves nothing to export.
    kkrun(repo.root())
        .args(["export", RUN, "fix", "--branch", "first"])
        .assert()
        .success();
    let out = kkrun(repo.root())
        .args([
            "export", RUN, "fix", "--branch", "second", "--base", "first",
        ])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("has no change to export onto first"),
        "{stderr}"
    );
}

#[test]
fn pr_body_goes_to_stdout_alone_and_creates_nothing_without_branch() {
    let repo = repo_with_task();
    let protected = repo.protected_state();
    let out = kkrun(repo.root())
        .args(["export", RUN, "fix", "--pr-body"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.starts_with("## Summary\n\nSays please now.\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| `unit` | fail | pass | fixed |"),
        "{stdout}"
    );
    assert!(stdout.contains("$0.5000"), "{stdout}");
    assert_eq!(repo.protected_state(), protected);

    let out = kkrun(repo.root())
        .args(["export", RUN, "fix", "--pr-body", "--branch", "kkrun/fix"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stdout.starts_with("## Summary"), "{stdout}");
    assert!(stderr.contains("created branch kkrun/fix"), "{stderr}");
    repo.git(&["rev-parse", "--verify", "kkrun/fix"]);
}

/// A real run, then export from its run directory as a CI job would after
/// downloading the artifact.
#[test]
fn a_real_run_exports_from_its_run_directory() {
    use e2e_support::{Fixture, finish, fix_add, git, plan, read_calc, review};
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
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 0, "{report:#}");
    let out_dir = fx.out();
    let out = kkrun(&fx.repo())
        .args([
            "export",
            out_dir.to_str().unwrap(),
            "fix-add",
            "--branch",
            "kkrun/fix-add",
        ])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("1 file changed"), "{stdout}");
    let shown = git(&fx.repo(), &["show", "kkrun/fix-add:calc.py"]);
    assert!(shown.contains("return a + b"), "{shown}");
    let patch = git(&fx.repo(), &["diff", "HEAD", "kkrun/fix-add"]);
    let final_patch = std::fs::read_to_string(out_dir.join("fix-add/final.patch")).unwrap();
    assert_eq!(patch, final_patch);
}

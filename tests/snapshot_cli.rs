//! `kkrun snapshots`, `diff`, `rollback` and `gc` through the real binary.

mod snapshot_support;

use assert_cmd::Command;
use kkrun::snapshot::{SnapshotMeta, SnapshotStore};
use predicates::prelude::*;
use snapshot_support::TestRepo;

const RUN: &str = "20261124T101500Z-ab12cd";
const RUN2: &str = "20261125T090000Z-ffffff";

fn kkrun(dir: &std::path::Path) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("kkrun"));
    command
        .current_dir(dir)
        .env_remove("KKRUN_GIT_NAME")
        .env_remove("KKRUN_GIT_EMAIL");
    command
}

/// A repository with one task that went through base → code → debug.
fn repo_with_run() -> TestRepo {
    let repo = TestRepo::with_commit(&[("a.txt", "one\n"), ("b.txt", "bee\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    store
        .take(RUN, "fix", &SnapshotMeta::new("base", "ok"))
        .unwrap();
    repo.write("a.txt", "one\ntwo\n");
    repo.write("c.txt", "sea\n");
    store
        .take(RUN, "fix", &SnapshotMeta::new("code", "ok"))
        .unwrap();
    repo.remove("b.txt");
    store
        .take(RUN, "fix", &SnapshotMeta::new("debug", "failed"))
        .unwrap();
    repo
}

#[test]
fn snapshots_lists_runs_then_tasks_then_snapshots() {
    let repo = repo_with_run();
    let store = SnapshotStore::open(repo.root()).unwrap();
    store
        .take(RUN2, "other", &SnapshotMeta::new("base", "ok"))
        .unwrap();

    let out = kkrun(repo.root()).arg("snapshots").assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.starts_with(&format!("{RUN}\n  fix  3 snapshots, last 02-debug at ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{RUN2}\n  other  1 snapshot, last 00-base at ")),
        "{stdout}"
    );

    let out = kkrun(repo.root())
        .args(["snapshots", RUN, "fix"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("run {RUN}, task fix (workspace .)"));
    assert!(
        lines[1]
            .split_whitespace()
            .eq(["SNAPSHOT", "TIME", "FILES", "STATUS", "COMMIT"])
    );
    let rows: Vec<Vec<&str>> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.iter().map(|r| (r[0], r[2], r[3])).collect::<Vec<_>>(),
        [
            ("00-base", "0", "ok"),
            ("01-code", "2", "ok"),
            ("02-debug", "1", "failed")
        ]
    );

    // RUN alone lists every task of the run, from a subdirectory too.
    std::fs::create_dir(repo.path("sub")).unwrap();
    kkrun(&repo.path("sub"))
        .args(["snapshots", RUN])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "run 20261124T101500Z-ab12cd, task fix",
        ));
}

#[test]
fn snapshots_in_a_repository_without_runs() {
    let repo = TestRepo::with_commit(&[("a", "1")]);
    kkrun(repo.root())
        .arg("snapshots")
        .assert()
        .success()
        .stdout("no kkrun snapshots in this repository\n");
}

#[test]
fn unknown_run_task_or_stage_exits_2_listing_what_exists() {
    let repo = repo_with_run();
    kkrun(repo.root())
        .args(["snapshots", "nope"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "no run \"nope\" in this repository; runs: {RUN}"
        )));
    kkrun(repo.root())
        .args(["snapshots", RUN, "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has no task \"nope\"; tasks: fix"));
    kkrun(repo.root())
        .args(["diff", RUN, "fix", "--from", "preview"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "snapshots: 00-base, 01-code, 02-debug",
        ));
    kkrun(repo.root())
        .args(["rollback", "nope", "fix", "--to", "base"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(RUN));
    kkrun(repo.root())
        .args(["snapshots", "bad/run"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no run \"bad/run\""));
}

#[test]
fn outside_a_repository_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    kkrun(dir.path())
        .arg("snapshots")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not inside a git work tree"));
    kkrun(dir.path())
        .args(["snapshots", "--repo", "missing-dir"])
        .assert()
        .code(2);
}

#[test]
fn diff_prints_a_patch_and_a_stat() {
    let repo = repo_with_run();
    let out = kkrun(repo.root())
        .args(["diff", RUN, "fix"])
        .assert()
        .success();
    let patch = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(patch.contains("diff --git a/a.txt b/a.txt"), "{patch}");
    assert!(patch.contains("+two"), "{patch}");
    assert!(patch.contains("deleted file mode 100644"), "{patch}");

    // The patch takes the base state to the last snapshot.
    kkrun(repo.root())
        .args(["rollback", RUN, "fix", "--to", "base"])
        .assert()
        .success();
    let file = repo.path("../fix.patch");
    std::fs::write(&file, &patch).unwrap();
    repo.git(&["apply", "--check", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();

    kkrun(repo.root())
        .args([
            "diff", RUN, "fix", "--from", "base", "--to", "01-code", "--stat",
        ])
        .assert()
        .success()
        .stdout(
            "M      +1      -0  a.txt\n\
             A      +1      -0  c.txt\n\
             2 files changed, 2 insertions(+), 0 deletions(-)\n",
        );
    // After the rollback the live tree equals the base.
    kkrun(repo.root())
        .args(["diff", RUN, "fix", "--to", "worktree", "--stat"])
        .assert()
        .success()
        .stdout("0 files changed, 0 insertions(+), 0 deletions(-)\n");
}

#[test]
fn rollback_restores_and_prints_how_to_undo() {
    let repo = repo_with_run();
    let protected = repo.protected_state();
    kkrun(repo.root())
        .args(["rollback", RUN, "fix", "--to", "code"])
        .assert()
        .success()
        .stdout(format!(
            "restored . to 01-code ({})\nthe previous state is saved as 03-safety; undo with: \
             kkrun rollback {RUN} fix --to 03-safety\n",
            &SnapshotStore::open(repo.root())
                .unwrap()
                .resolve(RUN, "fix", "code")
                .unwrap()
                .commit[..12]
        ));
    assert_eq!(repo.read("b.txt"), "bee\n");
    assert_eq!(repo.read("c.txt"), "sea\n");
    kkrun(repo.root())
        .args(["rollback", RUN, "fix", "--to", "03-safety"])
        .assert()
        .success();
    assert!(!repo.path("b.txt").exists());
    assert_eq!(repo.protected_state(), protected);
}

#[test]
fn rollback_from_the_root_stays_in_the_task_workspace() {
    let repo = TestRepo::with_commit(&[("app/main.py", "1\n"), ("lib/x.py", "1\n")]);
    let store = SnapshotStore::open(&repo.path("app")).unwrap();
    store
        .take(RUN, "t", &SnapshotMeta::new("base", "ok"))
        .unwrap();
    repo.write("app/main.py", "2\n");
    repo.write("lib/x.py", "2\n");
    store
        .take(RUN, "t", &SnapshotMeta::new("code", "ok"))
        .unwrap();

    kkrun(repo.root())
        .args(["diff", RUN, "t", "--stat"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("app/main.py").and(predicate::str::contains("lib/").not()),
        );
    kkrun(repo.root())
        .args(["rollback", RUN, "t", "--to", "base"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("restored app to 00-base"));
    assert_eq!(repo.read("app/main.py"), "1\n");
    assert_eq!(repo.read("lib/x.py"), "2\n");
}

/// A snapshot ref whose commit is `days` old, as an old run would have left.
fn old_run(repo: &TestRepo, run: &str, days: i64) {
    let head = repo.repo.head().unwrap().peel_to_commit().unwrap();
    let when = git2::Time::new(jiff::Timestamp::now().as_second() - days * 86_400, 0);
    let sig = git2::Signature::new("kkrun", "kkrun@localhost", &when).unwrap();
    let commit = repo
        .repo
        .commit(
            None,
            &sig,
            &sig,
            "kkrun base: t\n",
            &head.tree().unwrap(),
            &[&head],
        )
        .unwrap();
    repo.repo
        .reference(
            &format!("refs/kkrun/{run}/t/00-base"),
            commit,
            false,
            "test",
        )
        .unwrap();
}

#[test]
fn gc_keep_last_removes_the_oldest_runs() {
    let repo = repo_with_run();
    old_run(&repo, "20200101T000000Z-000001", 0);
    old_run(&repo, "20200102T000000Z-000002", 0);

    kkrun(repo.root())
        .args(["gc", "--keep-last", "1", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "would remove 2 runs (2 refs), keep 1; nothing was changed",
        ));
    assert_eq!(
        SnapshotStore::open(repo.root())
            .unwrap()
            .runs()
            .unwrap()
            .len(),
        3
    );

    kkrun(repo.root())
        .args(["gc", "--keep-last", "1"])
        .assert()
        .success()
        .stdout(
            "removed run 20200101T000000Z-000001 (1 ref)\n\
             removed run 20200102T000000Z-000002 (1 ref)\n\
             removed 2 runs (2 refs), kept 1; the snapshot objects are deleted by the next `git gc`\n",
        );
    let runs = SnapshotStore::open(repo.root()).unwrap().runs().unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        [RUN]
    );
    repo.git(&["gc", "--prune=now", "--quiet"]);
    repo.git(&["fsck", "--strict"]);
    // Snapshots that are still referenced survive `git gc`.
    assert_eq!(
        SnapshotStore::open(repo.root())
            .unwrap()
            .list(RUN, "fix")
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn gc_older_than_uses_the_last_snapshot_time() {
    let repo = repo_with_run();
    old_run(&repo, "20200101T000000Z-000001", 30);
    old_run(&repo, "20200102T000000Z-000002", 3);
    kkrun(repo.root())
        .args(["gc", "--older-than", "7d"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "removed run 20200101T000000Z-000001 (1 ref)\nremoved 1 run (1 ref), kept 2",
        ));
}

#[test]
fn gc_needs_a_selection_and_a_valid_age() {
    let repo = repo_with_run();
    kkrun(repo.root())
        .arg("gc")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--keep-last N"));
    kkrun(repo.root())
        .args(["gc", "--older-than", "a week"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --older-than"));
    kkrun(repo.root())
        .args(["gc", "--keep-last", "1", "--older-than", "7d"])
        .assert()
        .code(2);
    assert_eq!(
        SnapshotStore::open(repo.root())
            .unwrap()
            .runs()
            .unwrap()
            .len(),
        1
    );
}

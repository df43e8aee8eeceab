//! `--isolate`: every task in its own linked worktree outside the user's
//! work tree. Real git repositories, the real binary, replayed cassettes.

mod e2e_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use e2e_support::{Fixture, Run, fix_and_approve, git, snapshot_refs};

/// Everything about the user's repository that isolation must leave alone:
/// every file under the work tree (`.git/` included, less the parts kkrun
/// is allowed to write: objects, snapshot refs, the worktree registry and
/// the `.kkrun/` exclude line) with its bytes, plus what git says.
fn user_state(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let skipped = [
                ".git/objects",
                ".git/refs/kkrun",
                ".git/worktrees",
                ".git/info",
                ".git/logs/refs/kkrun",
                ".git/packed-refs",
            ];
            if skipped
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(repo, repo, &mut out);
    for (name, args) in [
        (
            "git status",
            &[
                "status",
                "--porcelain=v2",
                "--branch",
                "--untracked-files=all",
            ][..],
        ),
        ("git diff", &["diff"][..]),
        ("git diff --cached", &["diff", "--cached"][..]),
        ("git branch", &["branch", "-a", "-v"][..]),
        ("git stash", &["stash", "list"][..]),
        ("git worktree", &["worktree", "list", "--porcelain"][..]),
    ] {
        out.insert(format!("<{name}>"), git(repo, args).into_bytes());
    }
    out
}

/// Gives the fixture's repository uncommitted state of every kind: a staged
/// new file, an unstaged change, an untracked file, a stash, an ignored file.
fn make_uncommitted_state(repo: &Path) {
    std::fs::write(repo.join("stashed.txt"), "stashed\n").unwrap();
    git(repo, &["add", "stashed.txt"]);
    git(
        repo,
        &["-c", "user.name=t", "-c", "user.email=t@t", "stash", "-q"],
    );
    std::fs::write(repo.join("staged.txt"), "staged\n").unwrap();
    git(repo, &["add", "staged.txt"]);
    std::fs::write(repo.join(".gitignore"), "__pycache__/\n*.tmp\n").unwrap();
    std::fs::write(repo.join("notes.txt"), "untracked\n").unwrap();
    std::fs::write(repo.join("cache.tmp"), "ignored\n").unwrap();
}

fn run_isolated(fx: &Fixture, extra: &[&str], task: &str) -> Run {
    let worktrees = fx.root().join("worktrees");
    let mut args = vec!["--isolate", "--worktrees", worktrees.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(task);
    fx.run("out", &args)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn an_isolated_task_never_touches_the_users_tree_and_its_work_comes_back_as_snapshots() {
    let fx = Fixture::new();
    let repo = fx.repo();
    make_uncommitted_state(&repo);
    let task = fx.task("fix-add", "", &fix_and_approve());
    let before = user_state(&repo);

    let run = run_isolated(&fx, &[], &task);
    run.expect_code(0);

    assert_eq!(user_state(&repo), before, "the user's repository changed");
    assert!(
        std::fs::read_to_string(repo.join("calc.py"))
            .unwrap()
            .contains("a - b"),
        "the fix must not reach the user's tree"
    );
    // The snapshots are in the shared repository, and 00-base is the
    // user's state: staged, modified and untracked files, nothing ignored,
    // nothing stashed.
    let refs = snapshot_refs(&repo);
    assert_eq!(
        refs.first().map(String::as_str),
        Some("00-base"),
        "{refs:?}"
    );
    let base_ref = git(
        &repo,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/kkrun/*/fix-add/00-base",
        ],
    );
    let base_files = git(&repo, &["ls-tree", "-r", "--name-only", base_ref.trim()]);
    let base_files: Vec<&str> = base_files.lines().collect();
    assert_eq!(
        base_files,
        [
            ".gitignore",
            "calc.py",
            "notes.txt",
            "staged.txt",
            "test_add.py",
            "test_mul.py"
        ]
    );
    assert_eq!(
        git(&repo, &["show", &format!("{}:.gitignore", base_ref.trim())]),
        "__pycache__/\n*.tmp\n"
    );
    let patch = run.file("fix-add/final.patch");
    assert!(patch.contains("+    return a + b"), "{patch}");
    assert!(
        !patch.contains("notes.txt"),
        "final.patch holds only the task's change: {patch}"
    );
    // The worktree is gone, files and registration.
    assert_eq!(entries(&fx.root().join("worktrees")), Vec::<PathBuf>::new());
    assert!(entries(&repo.join(".git/worktrees")).is_empty());
}

#[test]
fn a_kept_worktree_shows_what_the_users_tree_shows_plus_the_tasks_change() {
    let fx = Fixture::new();
    let repo = fx.repo();
    make_uncommitted_state(&repo);
    let task = fx.task("fix-add", "", &fix_and_approve());

    let run = run_isolated(&fx, &["--keep-worktrees"], &task);
    run.expect_code(0);
    let kept = entries(&fx.root().join("worktrees"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    let worktree = &kept[0];
    assert!(
        run.stderr()
            .contains("kept the isolated worktree of task `fix-add`"),
        "{}",
        run.stderr()
    );

    // Detached at the user's HEAD, on no branch.
    assert_eq!(
        git(worktree, &["rev-parse", "HEAD"]),
        git(&repo, &["rev-parse", "HEAD"])
    );
    assert!(
        git(worktree, &["status", "--branch", "--porcelain"]).starts_with("## HEAD (no branch)")
    );
    let status = |dir: &Path| {
        let mut lines: Vec<String> = git(dir, &["status", "--porcelain", "--untracked-files=all"])
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let mut expected = status(&repo);
    expected.push(" M calc.py".to_string());
    expected.sort();
    assert_eq!(status(worktree), expected);
    assert_eq!(
        git(worktree, &["diff", "--cached"]),
        git(&repo, &["diff", "--cached"])
    );
    assert_eq!(
        git(worktree, &["diff", "--", ".gitignore"]),
        git(&repo, &["diff", "--", ".gitignore"])
    );
    // Ignored files are not copied; the stash is not applied.
    assert!(!worktree.join("cache.tmp").exists());
    assert!(!worktree.join("stashed.txt").exists());
    // It is a registered worktree the user can remove with git.
    assert!(git(&repo, &["worktree", "list"]).contains(worktree.to_str().unwrap()));
    git(
        &repo,
        &["worktree", "remove", "--force", worktree.to_str().unwrap()],
    );
}

/// Marks the kept worktree as left by a process that is gone, as a killed
/// run leaves it.
fn make_stale(repo: &Path) -> PathBuf {
    let admin = entries(&repo.join(".git/worktrees"));
    assert_eq!(admin.len(), 1, "{admin:?}");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(
        admin[0].join("locked"),
        format!("kkrun run 20260101T000000Z-000000 (pid {dead})\n"),
    )
    .unwrap();
    PathBuf::from(
        std::fs::read_to_string(admin[0].join("gitdir"))
            .unwrap()
            .trim(),
    )
    .parent()
    .unwrap()
    .to_path_buf()
}

/// `kkrun gc` keeping every run, so that it removes only stale
/// worktrees; it must succeed. Returns its stdout.
fn gc_all(fx: &Fixture) -> String {
    let gc = fx
        .kkrun(&["gc", "--keep-last", "100", "--repo", "repo"])
        .output()
        .unwrap();
    assert_eq!(
        gc.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    String::from_utf8(gc.stdout).unwrap()
}

#[test]
fn stale_worktrees_of_a_killed_run_are_removed_by_the_next_run_and_by_gc() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let task = fx.task("fix-add", "", &fix_and_approve());

    run_isolated(&fx, &["--keep-worktrees"], &task).expect_code(0);
    let stale = make_stale(&repo);
    assert!(stale.exists());
    let run = run_isolated(&fx, &[], &task);
    run.expect_code(0);
    assert!(!stale.exists(), "the next run removes the stale worktree");
    assert!(
        run.stderr().contains("removed the stale isolated worktree"),
        "{}",
        run.stderr()
    );
    assert!(entries(&repo.join(".git/worktrees")).is_empty());

    run_isolated(&fx, &["--keep-worktrees"], &task).expect_code(0);
    let stale = make_stale(&repo);
    let gc = gc_all(&fx);
    assert!(!stale.exists(), "gc removes the stale worktree");
    assert!(gc.contains("stale isolated worktree"));
    assert!(entries(&repo.join(".git/worktrees")).is_empty());
}

#[test]
fn a_live_runs_worktree_and_a_kept_one_are_not_stale() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let task = fx.task("fix-add", "", &fix_and_approve());
    run_isolated(&fx, &["--keep-worktrees"], &task).expect_code(0);
    let kept = entries(&fx.root().join("worktrees"));
    gc_all(&fx);
    assert_eq!(
        entries(&fx.root().join("worktrees")),
        kept,
        "a kept worktree stays"
    );
    // Locked by this (live) test process: not stale either.
    let admin = entries(&repo.join(".git/worktrees"));
    std::fs::write(
        admin[0].join("locked"),
        format!("kkrun run x (pid {})\n", std::process::id()),
    )
    .unwrap();
    gc_all(&fx);
    assert_eq!(entries(&fx.root().join("worktrees")), kept);
}

#[test]
fn a_worktree_whose_process_id_was_given_to_another_process_is_stale() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let task = fx.task("fix-add", "", &fix_and_approve());
    run_isolated(&fx, &["--keep-worktrees"], &task).expect_code(0);
    let admin = entries(&repo.join(".git/worktrees"));
    // The run's process id now belongs to this test process, which started
    // at another time (clock tick 1, long before it).
    std::fs::write(
        admin[0].join("locked"),
        format!("kkrun run x (pid {}, start 1)\n", std::process::id()),
    )
    .unwrap();
    let gc = gc_all(&fx);
    assert!(gc.contains("stale isolated worktree"));
    assert!(entries(&repo.join(".git/worktrees")).is_empty());
}

#[test]
fn a_workspace_in_a_subdirectory_maps_to_the_same_subdirectory_of_the_worktree() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    std::fs::write(repo.join("sub/a.txt"), "a\n").unwrap();
    std::fs::write(repo.join("top.txt"), "top\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    e2e_support::commit_all(&repo, "base");
    std::fs::write(repo.join("sub/b.txt"), "new\n").unwrap();
    std::fs::remove_file(repo.join("top.txt")).unwrap();

    let store = kkrun::snapshot::SnapshotStore::open(&repo.join("sub")).unwrap();
    let pool = kkrun::snapshot::WorktreePool::new(dir.path().join("wts"), "run1", false);
    let worktree = pool.create(&store, "task").unwrap();
    assert_eq!(worktree.workspace, worktree.root.join("sub"));
    assert_eq!(
        std::fs::read_to_string(worktree.workspace.join("a.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(worktree.workspace.join("b.txt")).unwrap(),
        "new\n"
    );
    assert!(
        !worktree.root.join("top.txt").exists(),
        "a deletion is laid on top too"
    );
    assert_eq!(
        git(&worktree.root, &["status", "--porcelain"]),
        git(&repo, &["status", "--porcelain"])
    );
    pool.release(&worktree).unwrap();
    assert!(!worktree.root.exists());
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 1);
}

/// Every worktree of a run starts from the user's tree as the run's first
/// worktree found it: an edit the user makes meanwhile reaches no later
/// task of the run (a model matrix compares models on one base), only the
/// next run.
#[test]
fn every_worktree_of_a_run_starts_from_the_same_user_state() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("a.txt"), "committed\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    e2e_support::commit_all(&repo, "base");
    std::fs::write(repo.join("a.txt"), "at the start of the run\n").unwrap();

    let store = kkrun::snapshot::SnapshotStore::open(&repo).unwrap();
    let pool = kkrun::snapshot::WorktreePool::new(dir.path().join("wts"), "run1", false);
    let first = pool.create(&store, "first").unwrap();
    std::fs::write(repo.join("a.txt"), "edited during the run\n").unwrap();
    std::fs::write(repo.join("b.txt"), "new during the run\n").unwrap();
    let second = pool.create(&store, "second").unwrap();
    for worktree in [&first, &second] {
        assert_eq!(
            std::fs::read_to_string(worktree.root.join("a.txt")).unwrap(),
            "at the start of the run\n"
        );
        assert!(!worktree.root.join("b.txt").exists());
    }
    let next_run = kkrun::snapshot::WorktreePool::new(dir.path().join("wts"), "run2", false);
    let later = next_run.create(&store, "first").unwrap();
    assert_eq!(
        std::fs::read_to_string(later.root.join("a.txt")).unwrap(),
        "edited during the run\n"
    );
    for (pool, worktree) in [(&pool, &first), (&pool, &second), (&next_run, &later)] {
        pool.release(worktree).unwrap();
    }
}

#[test]
fn a_repository_without_a_commit_is_refused_before_anything_runs() {
    let fx = Fixture::new();
    let repo = fx.repo();
    std::fs::remove_dir_all(repo.join(".git")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let task = fx.task("fix-add", "", &fix_and_approve());
    let run = run_isolated(&fx, &[], &task);
    run.expect_code(2);
    assert!(
        run.stderr().contains("has no commit yet"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("without --isolate"),
        "{}",
        run.stderr()
    );
    assert!(!fx.out().exists());
    assert!(!fx.root().join("worktrees").exists());
}

#[test]
fn worktree_flags_imply_isolate() {
    let fx = Fixture::new();
    let task = fx.task("fix-add", "", &fix_and_approve());
    let calc = std::fs::read_to_string(fx.repo().join("calc.py")).unwrap();
    for flag in [&["--keep-worktrees"][..], &["--worktrees", "wts"][..]] {
        let run = fx.run("out", &[flag, &[task.as_str()]].concat());
        run.expect_code(0);
        let worktree = run.report()["tasks"][0]["worktree"]
            .as_str()
            .map(str::to_owned);
        assert!(worktree.is_some(), "{flag:?}: the task ran isolated");
        assert_eq!(
            std::fs::read_to_string(fx.repo().join("calc.py")).unwrap(),
            calc,
            "{flag:?}: the user's tree is untouched"
        );
        std::fs::remove_dir_all(fx.out()).unwrap();
    }
}

/// An ignored `vendor/` with what `copy_ignored:` must keep: a module the
/// checks import, an executable script, a symlink (relative, to a file of
/// vendor/) and a read-only file.
fn make_vendor(repo: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(repo.join(".gitignore"), "__pycache__/\nvendor/\n").unwrap();
    e2e_support::commit_all(repo, "ignore vendor/");
    let lib = repo.join("vendor/lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("helper.py"), "READY = 42\n").unwrap();
    std::fs::write(repo.join("vendor/run.sh"), "#!/bin/sh\necho vendored\n").unwrap();
    std::fs::set_permissions(
        repo.join("vendor/run.sh"),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    std::fs::write(repo.join("vendor/frozen.txt"), "frozen\n").unwrap();
    std::fs::set_permissions(
        repo.join("vendor/frozen.txt"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::os::unix::fs::symlink("lib/helper.py", repo.join("vendor/link.py")).unwrap();
}

#[test]
fn copy_ignored_brings_ignored_files_into_the_worktree_for_setup_and_checks() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let repo = fx.repo();
    make_vendor(&repo);
    // Setup needs the copied script; the extra check needs the module and
    // what setup wrote (into the ignored vendor/, so not into the change).
    let task = fx.add_task(
        &e2e_support::TaskFile::new("vendored", &fix_and_approve())
            .extra_checks(
                "  - name: vendored\n    run: python3 -c 'import sys; sys.path.insert(0, \"vendor/lib\"); \
                 import helper; assert helper.READY == 42' && test \"$(cat vendor/setup.out)\" = vendored\n",
            )
            .yaml("copy_ignored: [\"vendor/**\", \"no-such-dir/**\"]\nsetup:\n  - ./vendor/run.sh > vendor/setup.out\n"),
    );
    let before = user_state(&repo);

    let run = run_isolated(&fx, &["--keep-worktrees"], &task);
    run.expect_code(0);
    // The kept worktree is listed by `git worktree list`; nothing else of
    // the user's repository may change.
    let mut after = user_state(&repo);
    let mut before = before;
    after.remove("<git worktree>");
    before.remove("<git worktree>");
    assert_eq!(after, before, "the user's repository changed");
    assert!(!repo.join("vendor/setup.out").exists());

    let report = run.report();
    let setup = &report["tasks"][0]["setup"];
    assert_eq!(setup.as_array().unwrap().len(), 1, "{setup}");
    assert_eq!(setup[0]["command"], "./vendor/run.sh > vendor/setup.out");
    assert_eq!(setup[0]["passed"], true);
    assert_eq!(setup[0]["exit_code"], 0);
    let checks = report["tasks"][0]["checks"].as_array().unwrap();
    let vendored = checks.iter().find(|c| c["name"] == "vendored").unwrap();
    assert_eq!(vendored["status"], "passing", "{vendored}");
    assert!(
        e2e_support::committed_schema_errors(&report).is_empty(),
        "{:?}",
        e2e_support::committed_schema_errors(&report)
    );
    let warnings: Vec<String> = run
        .events()
        .iter()
        .filter(|e| e["type"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`no-such-dir/**` matches no ignored path")),
        "{warnings:?}"
    );
    // The setup ran before the base snapshot, and what it wrote is ignored:
    // the task's change is the fix alone.
    let files: Vec<&str> = report["tasks"][0]["files_changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["calc.py"]);

    // The kept worktree has the copies, with their modes and the symlink.
    let kept = entries(&fx.root().join("worktrees"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    let vendor = kept[0].join("vendor");
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&vendor.join("run.sh")), 0o751);
    assert_eq!(mode(&vendor.join("frozen.txt")), 0o444);
    assert!(
        std::fs::symlink_metadata(vendor.join("link.py"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_link(vendor.join("link.py")).unwrap(),
        Path::new("lib/helper.py")
    );
    assert_eq!(
        std::fs::read_to_string(vendor.join("link.py")).unwrap(),
        "READY = 42\n"
    );
    // A copy, not a hard link: the user's file has one link.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(repo.join("vendor/lib/helper.py"))
            .unwrap()
            .nlink(),
        1
    );
    std::fs::set_permissions(
        vendor.join("frozen.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    git(
        &repo,
        &["worktree", "remove", "--force", kept[0].to_str().unwrap()],
    );
}

#[test]
fn without_isolation_copy_ignored_does_nothing_and_says_so() {
    let fx = Fixture::new();
    let task = fx.task(
        "plain",
        "copy_ignored: [\"vendor/**\"]\n",
        &fix_and_approve(),
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    assert!(
        run.stderr()
            .contains("`copy_ignored` does nothing without --isolate"),
        "{}",
        run.stderr()
    );
}

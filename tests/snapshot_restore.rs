//! Restoring snapshots and diffing them, on real repositories.

mod snapshot_support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use kkrun::snapshot::{SnapshotMeta, SnapshotStore};
use proptest::prelude::*;
use snapshot_support::{Entry, TestRepo, git_in, worktree_files};

const RUN: &str = "20261124T101500Z-ab12cd";

fn meta(stage: &str) -> SnapshotMeta {
    SnapshotMeta::new(stage, "ok")
}

#[test]
fn restore_brings_back_deleted_removes_created_and_keeps_ignored() {
    let repo = TestRepo::with_commit(&[
        (".gitignore", "*.log\nbuild/\n"),
        ("a.txt", "a\n"),
        ("dir/b.txt", "b\n"),
        ("run.sh", "#!/bin/sh\n"),
    ]);
    repo.set_executable("run.sh", true);
    repo.commit_all("exec");
    repo.write("untracked.txt", "u\n");
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let at_base = repo.files();
    let protected = repo.protected_state();

    repo.write("a.txt", "changed\n");
    repo.remove("dir/b.txt");
    repo.remove("untracked.txt");
    repo.write("new/deep/c.txt", "c\n");
    repo.write("debug.log", "kept\n");
    repo.write("build/out.bin", "kept\n");
    repo.set_executable("run.sh", false);
    repo.set_executable("a.txt", true);
    store.take(RUN, "t", &meta("code")).unwrap();
    let before_restore = repo.files();

    let safety = store.restore(RUN, "t", &base).unwrap();
    assert_eq!(safety.label(), "02-safety");
    assert_eq!(safety.status, "before restoring 00-base");

    let mut expected = at_base.clone();
    expected.insert("debug.log".into(), before_restore["debug.log"].clone());
    expected.insert(
        "build/out.bin".into(),
        before_restore["build/out.bin"].clone(),
    );
    assert_eq!(repo.files(), expected);
    assert!(!repo.path("new").exists(), "empty directories left behind");
    assert_eq!(repo.protected_state(), protected);

    // The safety snapshot undoes the restore.
    store.restore(RUN, "t", &safety).unwrap();
    assert_eq!(repo.files(), before_restore);
    assert_eq!(repo.protected_state(), protected);
    assert_eq!(
        store
            .list(RUN, "t")
            .unwrap()
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>(),
        ["00-base", "01-code", "02-safety", "03-safety"]
    );
    repo.git(&["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn restore_and_diff_are_scoped_to_the_workspace() {
    let repo = TestRepo::with_commit(&[("app/main.py", "print(1)\n"), ("lib/util.py", "x = 1\n")]);
    let store = SnapshotStore::open(&repo.path("app")).unwrap();
    assert_eq!(store.workspace_relative(), "app");
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    // The tree is the whole repository.
    assert!(snapshot_support::tree_paths(&repo.repo, &base.commit).contains_key("lib/util.py"));

    repo.write("app/main.py", "print(2)\n");
    repo.write("app/new.py", "new\n");
    repo.write("lib/util.py", "x = 2\n");
    repo.write("outside.txt", "o\n");
    let code = store.take(RUN, "t", &meta("code")).unwrap();
    assert_eq!(
        code.files_changed, 2,
        "only files inside the workspace count"
    );
    assert_eq!(code.workspace, "app");

    let diff = store.diff(&base, Some(&code)).unwrap();
    assert_eq!(
        diff.files
            .iter()
            .map(|f| (f.path.as_str(), f.status.as_str()))
            .collect::<Vec<_>>(),
        [("app/main.py", "modified"), ("app/new.py", "added")]
    );
    assert!(!diff.patch.contains("lib/util.py"));

    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.read("app/main.py"), "print(1)\n");
    assert!(!repo.path("app/new.py").exists());
    assert_eq!(
        repo.read("lib/util.py"),
        "x = 2\n",
        "outside the workspace: untouched"
    );
    assert_eq!(repo.read("outside.txt"), "o\n");
}

#[test]
fn diff_between_snapshots_is_a_patch_git_applies() {
    let repo = TestRepo::with_commit(&[
        ("keep.txt", "1\n2\n3\n"),
        ("old-name.txt", "rename me\nplease\nthanks\n"),
        ("bye.txt", "gone\n"),
        ("link-or-file", "file\n"),
    ]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let at_base = repo.files();

    repo.write("keep.txt", "1\ntwo\n3\n4\n");
    std::fs::rename(repo.path("old-name.txt"), repo.path("new-name.txt")).unwrap();
    repo.remove("bye.txt");
    repo.write("bin.dat", [0u8, 159, 146, 150, 0, 1, 2]);
    repo.remove("link-or-file");
    std::os::unix::fs::symlink("keep.txt", repo.path("link-or-file")).unwrap();
    repo.write("uni code é.txt", "héllo\n");
    let code = store.take(RUN, "t", &meta("code")).unwrap();
    let at_code = repo.files();

    let diff = store.diff(&base, Some(&code)).unwrap();
    let files: Vec<_> = diff
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.status.as_str(), f.additions, f.deletions))
        .collect();
    assert_eq!(
        files,
        [
            ("bin.dat", "added", 0, 0),
            ("bye.txt", "deleted", 0, 1),
            ("keep.txt", "modified", 2, 1),
            ("link-or-file", "typechange", 0, 0),
            ("new-name.txt", "renamed", 0, 0),
            ("uni code é.txt", "added", 1, 0),
        ]
    );
    assert!(
        diff.patch.contains("rename from old-name.txt"),
        "{}",
        diff.patch
    );
    assert!(diff.patch.contains("GIT binary patch"), "{}", diff.patch);

    // Applying the patch to the base state gives the code state.
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.files(), at_base);
    let patch = repo.path("../change.patch");
    std::fs::write(&patch, &diff.patch).unwrap();
    repo.git(&["apply", patch.to_str().unwrap()]);
    std::fs::remove_file(&patch).unwrap();
    assert_eq!(repo.files(), at_code);
}

#[test]
fn diff_against_the_live_work_tree() {
    let repo = TestRepo::with_commit(&[("a.txt", "a\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    assert!(store.diff(&base, None).unwrap().files.is_empty());
    repo.write("a.txt", "a\nb\n");
    repo.write("new.txt", "n\n");
    repo.write(".gitignore", "*.tmp\n");
    repo.write("x.tmp", "ignored\n");
    let diff = store.diff(&base, None).unwrap();
    assert_eq!(
        diff.files
            .iter()
            .map(|f| (f.path.as_str(), f.additions))
            .collect::<Vec<_>>(),
        [(".gitignore", 1), ("a.txt", 1), ("new.txt", 1)]
    );
    // Nothing was recorded: no new ref.
    assert_eq!(store.list(RUN, "t").unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// Property: snapshot, mutate, restore gives the snapshot back exactly, and the
// user's index, HEAD, branches and stash never change.

const NAMES: &[&str] = &[
    "x",
    "y.txt",
    "z z.md",
    "é.rs",
    "a/x",
    "a/b/y.txt",
    "a/b/c/z z.md",
    "d/é.rs",
    "d/e",
];
const IGNORED: &[&str] = &["n.log", "a/n.log", "build/out.o", "a/b/build/x"];

#[derive(Debug, Clone)]
enum Op {
    Write(usize, Vec<u8>),
    Delete(usize),
    Chmod(usize, bool),
    Rename(usize, usize),
    Symlink(usize, usize),
    FileToDir(usize),
    DirToFile(usize),
    WriteIgnored(usize, Vec<u8>),
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        "[a-z\n]{0,40}".prop_map(String::into_bytes),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        3 => (name.clone(), content()).prop_map(|(i, c)| Op::Write(i, c)),
        2 => name.clone().prop_map(Op::Delete),
        1 => (name.clone(), any::<bool>()).prop_map(|(i, x)| Op::Chmod(i, x)),
        1 => (name.clone(), name.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => (name.clone(), name.clone()).prop_map(|(a, b)| Op::Symlink(a, b)),
        1 => name.clone().prop_map(Op::FileToDir),
        1 => prop_oneof![Just("a"), Just("a/b"), Just("d")].prop_map(|d| Op::DirToFile(
            NAMES.iter().position(|n| n.starts_with(d)).unwrap()
        )),
        1 => (0..IGNORED.len(), content()).prop_map(|(i, c)| Op::WriteIgnored(i, c)),
    ]
}

/// Applies `op`, skipping it when the paths do not allow it: the point is to
/// reach many different trees, not to model every failure.
fn apply(root: &std::path::Path, op: &Op) {
    use std::os::unix::fs::PermissionsExt;
    let path = |i: usize| root.join(NAMES[i]);
    let clear_parents = |p: &std::path::Path| {
        // A file standing where a parent directory must be goes away.
        let mut dir = p.parent();
        while let Some(d) = dir {
            if d == root {
                break;
            }
            if std::fs::symlink_metadata(d).is_ok_and(|m| !m.is_dir()) {
                std::fs::remove_file(d).unwrap();
            }
            dir = d.parent();
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    };
    let is_file = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir());
    match op {
        Op::Write(i, c) | Op::WriteIgnored(i, c) => {
            let p = match op {
                Op::Write(..) => path(*i),
                _ => root.join(IGNORED[*i]),
            };
            clear_parents(&p);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&p).unwrap();
            } else if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(&p).unwrap();
            }
            std::fs::write(&p, c).unwrap();
        }
        Op::Delete(i) => {
            if is_file(&path(*i)) {
                std::fs::remove_file(path(*i)).unwrap();
            }
        }
        Op::Chmod(i, x) => {
            let p = path(*i);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                let mode = if *x { 0o755 } else { 0o644 };
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        Op::Rename(a, b) => {
            let (from, to) = (path(*a), path(*b));
            if a != b && is_file(&from) && !std::fs::symlink_metadata(&to).is_ok_and(|m| m.is_dir())
            {
                clear_parents(&to);
                std::fs::rename(&from, &to).unwrap();
            }
        }
        Op::Symlink(a, b) => {
            let p = path(*a);
            if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                clear_parents(&p);
                if is_file(&p) {
                    std::fs::remove_file(&p).unwrap();
                }
                std::os::unix::fs::symlink(NAMES[*b], &p).unwrap();
            }
        }
        Op::FileToDir(i) => {
            let p = path(*i);
            if is_file(&p) {
                std::fs::remove_file(&p).unwrap();
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(p.join("inner"), "was a file\n").unwrap();
            }
        }
        Op::DirToFile(i) => {
            let dir = path(*i).parent().unwrap().to_path_buf();
            if dir != root && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&dir).unwrap();
                std::fs::write(&dir, "was a directory\n").unwrap();
            }
        }
    }
}

fn is_ignored(path: &str) -> bool {
    path.ends_with(".log") || path.starts_with("build/") || path.contains("/build/")
}

fn split(files: BTreeMap<String, Entry>) -> (BTreeMap<String, Entry>, BTreeMap<String, Entry>) {
    files.into_iter().partition(|(path, _)| !is_ignored(path))
}

fn case(initial: Vec<Op>, committed: usize, edits: Vec<Op>) {
    let repo = TestRepo::new();
    let root: PathBuf = repo.root().to_owned();
    repo.write(".gitignore", "*.log\nbuild/\n");
    for op in initial.iter().take(committed) {
        apply(&root, op);
    }
    repo.commit_all("initial");
    // A stash, a second branch and a staged change: all must survive as is.
    let mut git = git2::Repository::open(&root).unwrap();
    repo.write(".gitignore", "*.log\nbuild/\n# stashed\n");
    let sig = git2::Signature::now("Test", "test@example.com").unwrap();
    git.stash_save(&sig, "wip", None).unwrap();
    let head = git.head().unwrap().peel_to_commit().unwrap();
    git.branch("other", &head, false).unwrap();
    for op in initial.iter().skip(committed) {
        apply(&root, op);
    }
    repo.write("staged.txt", "staged\n");
    let mut index = git.index().unwrap();
    index.add_path(std::path::Path::new("staged.txt")).unwrap();
    index.write().unwrap();

    let store = SnapshotStore::open(&root).unwrap();
    let protected = repo.protected_state();
    let snapshot = store.take(RUN, "p", &meta("base")).unwrap();
    let (at_snapshot, _) = split(worktree_files(&root));

    for op in &edits {
        apply(&root, op);
    }
    store.take(RUN, "p", &meta("code")).unwrap();
    let (_, mut ignored_after_edits) = split(worktree_files(&root));
    // Ignored files standing where the snapshot has a file make way for it.
    ignored_after_edits.retain(|path, _| {
        !std::path::Path::new(path)
            .ancestors()
            .skip(1)
            .any(|dir| at_snapshot.contains_key(dir.to_str().unwrap()))
    });

    store.restore(RUN, "p", &snapshot).unwrap();
    let (restored, ignored) = split(worktree_files(&root));
    assert_eq!(restored, at_snapshot, "edits: {edits:?}");
    assert_eq!(ignored, ignored_after_edits, "ignored files changed");
    assert_eq!(
        repo.protected_state(),
        protected,
        "index, HEAD, branches or stash changed"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(32), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_mutate_restore_round_trips(
        initial in proptest::collection::vec(op(), 1..12),
        committed in 0usize..12,
        edits in proptest::collection::vec(op(), 1..12),
    ) {
        case(initial, committed, edits);
    }
}

#[test]
fn restore_round_trips_through_the_git_cli_view() {
    // The git CLI agrees that a restored tree equals the snapshot.
    let repo = TestRepo::with_commit(&[("a", "1\n"), ("b/c", "2\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    repo.write("u", "untracked\n");
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    repo.write("a", "changed\n");
    repo.remove("u");
    repo.write("b/new", "n\n");
    store.restore(RUN, "t", &base).unwrap();
    let tmp_index = repo.path("../tmp-index");
    let out = std::process::Command::new("git")
        .args(["add", "-A"])
        .current_dir(repo.root())
        .env("GIT_INDEX_FILE", &tmp_index)
        .status()
        .unwrap();
    assert!(out.success());
    let tree = std::process::Command::new("git")
        .args(["write-tree"])
        .current_dir(repo.root())
        .env("GIT_INDEX_FILE", &tmp_index)
        .output()
        .unwrap();
    std::fs::remove_file(&tmp_index).unwrap();
    let expected = git_in(
        repo.root(),
        &["rev-parse", &format!("{}^{{tree}}", base.commit)],
    );
    assert_eq!(String::from_utf8(tree.stdout).unwrap(), expected);
}

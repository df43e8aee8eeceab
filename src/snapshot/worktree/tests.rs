//! The parallel scan must record exactly the tree libgit2's add-all and
//! `git add -A` record.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use git2::{IndexAddOption, Repository, Signature};
use proptest::prelude::*;

use super::{Scan, SnapshotStore};

const PATHS: &[&str] = &[
    "a.txt",
    "b.log",
    "keep.log",
    "dir/c.rs",
    "dir/sub/d.md",
    "dir/sub/tmp/e",
    "build/out.o",
    "src/build/f",
    "with space/ü.txt",
    "x",
];

#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8),
    Delete(usize),
    Exec(usize),
    Link(usize, usize),
    ToDir(usize),
    ToFile(usize),
    Stage(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let path = 0..PATHS.len();
    prop_oneof![
        4 => (path.clone(), any::<u8>()).prop_map(|(p, c)| Op::Write(p, c)),
        2 => path.clone().prop_map(Op::Delete),
        1 => path.clone().prop_map(Op::Exec),
        1 => (path.clone(), path.clone()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => path.clone().prop_map(Op::ToDir),
        1 => path.clone().prop_map(Op::ToFile),
        1 => path.clone().prop_map(Op::Stage),
    ]
}

fn clear(root: &Path, rel: &str) {
    let path = root.join(rel);
    let mut parent = path.parent();
    while let Some(dir) = parent.filter(|d| *d != root) {
        if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
            std::fs::remove_file(dir).unwrap();
        }
        parent = dir.parent();
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path).unwrap(),
        Ok(_) => std::fs::remove_file(&path).unwrap(),
        Err(_) => {}
    }
}

fn apply(repo: &Repository, op: &Op) {
    let root = repo.workdir().unwrap();
    let is_file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    match op {
        Op::Write(i, c) => {
            clear(root, PATHS[*i]);
            std::fs::write(
                root.join(PATHS[*i]),
                vec![b'a' + c % 26; usize::from(*c % 7)],
            )
            .unwrap();
        }
        Op::Delete(i) => {
            if is_file(&root.join(PATHS[*i])) {
                std::fs::remove_file(root.join(PATHS[*i])).unwrap();
            }
        }
        Op::Exec(i) => {
            let path = root.join(PATHS[*i]);
            if is_file(&path) {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() ^ 0o111;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        Op::Link(a, b) => {
            clear(root, PATHS[*a]);
            std::os::unix::fs::symlink(PATHS[*b], root.join(PATHS[*a])).unwrap();
        }
        Op::ToDir(i) => {
            let path = root.join(PATHS[*i]);
            if is_file(&path) {
                std::fs::remove_file(&path).unwrap();
                std::fs::create_dir(&path).unwrap();
                std::fs::write(path.join("inside"), "i").unwrap();
            }
        }
        Op::ToFile(i) => {
            let dir = root.join(PATHS[*i]);
            let dir = dir.parent().unwrap();
            if dir != root && std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(dir).unwrap();
                std::fs::write(dir, "was a directory").unwrap();
            }
        }
        Op::Stage(i) => {
            if is_file(&root.join(PATHS[*i])) {
                let mut index = repo.index().unwrap();
                index.add_path(Path::new(PATHS[*i])).unwrap();
                index.write().unwrap();
            }
        }
    }
}

fn git_add_all_tree(root: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let index = scratch.path().join("index");
    if root.join(".git/index").exists() {
        std::fs::copy(root.join(".git/index"), &index).unwrap();
    }
    for args in [&["add", "-A"][..], &["write-tree"][..]] {
        let out = Command::new("git")
            .args(args)
            .current_dir(root)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "write-tree" {
            return String::from_utf8(out.stdout).unwrap().trim().to_owned();
        }
    }
    unreachable!()
}

fn case(committed: Vec<Op>, edits: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    std::fs::write(
        dir.path().join(".gitignore"),
        "*.log\n!keep.log\nbuild/\ndir/**/tmp\n",
    )
    .unwrap();
    for op in &committed {
        apply(&repo, op);
    }
    let mut index = repo.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.update_all(["*"], None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
        .unwrap();
    for op in &edits {
        apply(&repo, op);
    }

    let store = SnapshotStore::open(dir.path()).unwrap();
    let parallel = store
        .worktree_index_with(&store.repo().unwrap(), Scan::Parallel)
        .unwrap()
        .tree;
    let add_all = store
        .worktree_index_with(&store.repo().unwrap(), Scan::AddAll)
        .unwrap()
        .tree;
    assert_eq!(parallel, add_all, "edits: {edits:?}");
    assert_eq!(
        parallel.to_string(),
        git_add_all_tree(dir.path()),
        "edits: {edits:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parallel_scan_records_what_add_all_records(
        committed in proptest::collection::vec(op(), 0..10),
        edits in proptest::collection::vec(op(), 0..10),
    ) {
        case(committed, edits);
    }
}

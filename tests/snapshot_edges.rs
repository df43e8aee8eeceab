//! The edge cases of ghost snapshots, one test each, and concurrency.

mod snapshot_support;

use std::path::Path;

use assert_cmd::Command;
use kkrun::snapshot::{SnapshotError, SnapshotMeta, SnapshotStore};
use predicates::prelude::*;
use snapshot_support::{Entry, TestRepo, blob_at, git_in, tree_paths};

const RUN: &str = "20261124T101500Z-ab12cd";

fn meta(stage: &str) -> SnapshotMeta {
    SnapshotMeta::new(stage, "ok")
}

#[test]
fn unborn_head_round_trip() {
    let repo = TestRepo::new();
    repo.write("a.txt", "a\n");
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let at_base = repo.files();
    repo.write("a.txt", "changed\n");
    repo.write("b.txt", "b\n");
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.files(), at_base);
    assert!(repo.repo.head().is_err(), "HEAD stays unborn");
    assert!(!repo.path(".git/index").exists());
}

#[test]
fn detached_head() {
    let repo = TestRepo::with_commit(&[("a.txt", "1\n")]);
    let first = repo.repo.head().unwrap().peel_to_commit().unwrap().id();
    repo.write("a.txt", "2\n");
    repo.commit_all("second");
    repo.git(&["checkout", "-q", "--detach", &first.to_string()]);
    let head_file = std::fs::read(repo.path(".git/HEAD")).unwrap();

    let store = SnapshotStore::open(repo.root()).unwrap();
    assert_eq!(store.head_commit().unwrap(), Some(first.to_string()));
    repo.write("a.txt", "3\n");
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let commit = repo.repo.find_commit(base.commit.parse().unwrap()).unwrap();
    assert_eq!(commit.parent_id(0).unwrap(), first);
    repo.write("a.txt", "4\n");
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.read("a.txt"), "3\n");
    assert_eq!(std::fs::read(repo.path(".git/HEAD")).unwrap(), head_file);
}

#[test]
fn submodules_are_recorded_as_gitlinks_and_not_descended() {
    let sub = TestRepo::with_commit(&[("inner.txt", "inner\n")]);
    let repo = TestRepo::with_commit(&[("top.txt", "top\n")]);
    repo.git(&[
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        sub.root().to_str().unwrap(),
        "libsub",
    ]);
    repo.git(&["commit", "-q", "-m", "add submodule"]);
    let sub_head = git_in(&repo.path("libsub"), &["rev-parse", "HEAD"]);
    // A dirty file inside the submodule and an untracked nested repository.
    std::fs::write(repo.path("libsub/inner.txt"), "dirty\n").unwrap();
    let nested = TestRepo::with_commit(&[("n.txt", "n\n")]);
    let nested_head = nested.repo.head().unwrap().peel_to_commit().unwrap().id();
    std::fs::rename(nested.root(), repo.path("vendor")).unwrap();
    std::mem::forget(nested.dir);

    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let paths = tree_paths(&repo.repo, &base.commit);
    assert_eq!(paths.get("libsub"), Some(&0o160000));
    assert_eq!(paths.get("vendor"), Some(&0o160000));
    assert!(
        !paths
            .keys()
            .any(|p| p.starts_with("libsub/") || p.starts_with("vendor/"))
    );
    let tree = repo
        .repo
        .find_commit(base.commit.parse().unwrap())
        .unwrap()
        .tree()
        .unwrap();
    assert_eq!(
        tree.get_path(Path::new("libsub")).unwrap().id().to_string(),
        sub_head.trim()
    );
    assert_eq!(
        tree.get_path(Path::new("vendor")).unwrap().id(),
        nested_head
    );

    // Restoring leaves the submodule's own files alone.
    repo.write("top.txt", "changed\n");
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.read("top.txt"), "top\n");
    assert_eq!(repo.read("libsub/inner.txt"), "dirty\n");
    assert_eq!(repo.read("vendor/n.txt"), "n\n");
    repo.git(&["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn spaces_and_unicode_names() {
    let repo = TestRepo::with_commit(&[("plain.txt", "p\n")]);
    let names = [
        "with space.txt",
        "dir with space/ünïcödé.md",
        "日本語/ファイル.txt",
        "emoji-🦀.rs",
    ];
    for name in names {
        repo.write(name, name);
    }
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    for name in names {
        assert_eq!(blob_at(&repo.repo, &base.commit, name), name.as_bytes());
    }
    let at_base = repo.files();
    for name in names {
        repo.remove(name);
    }
    repo.write("another name.txt", "x");
    let code = store.take(RUN, "t", &meta("code")).unwrap();
    let diff = store.diff(&base, Some(&code)).unwrap();
    assert!(
        diff.files
            .iter()
            .any(|f| f.path == "日本語/ファイル.txt" && f.status == "deleted")
    );
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.files(), at_base);
}

#[test]
fn file_replaced_by_directory_and_back() {
    let repo = TestRepo::with_commit(&[("thing", "a file\n"), ("dir/inner.txt", "inner\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let at_base = repo.files();

    repo.remove("thing");
    repo.write("thing/now-a-dir.txt", "x\n");
    std::fs::remove_dir_all(repo.path("dir")).unwrap();
    repo.write("dir", "now a file\n");
    let swapped = store.take(RUN, "t", &meta("code")).unwrap();
    let paths = tree_paths(&repo.repo, &swapped.commit);
    assert!(paths.contains_key("thing/now-a-dir.txt") && paths.contains_key("dir"));
    let at_swapped = repo.files();

    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.files(), at_base);
    store.restore(RUN, "t", &swapped).unwrap();
    assert_eq!(repo.files(), at_swapped);
}

#[test]
fn fifty_megabyte_binary_file() {
    let repo = TestRepo::with_commit(&[("small.txt", "s\n")]);
    // Not all-zero, so the content really is compared; repetitive enough to
    // keep zlib quick in debug builds.
    let block: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big: Vec<u8> = block
        .iter()
        .copied()
        .cycle()
        .take(50 * 1024 * 1024)
        .collect();
    repo.write("assets/big.bin", &big);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    assert_eq!(base.files_changed, 1);

    repo.write("assets/big.bin", b"truncated");
    let code = store.take(RUN, "t", &meta("code")).unwrap();
    let diff = store.diff(&base, Some(&code)).unwrap();
    assert_eq!(diff.files.len(), 1);
    assert_eq!(diff.files[0].path, "assets/big.bin");
    store.restore(RUN, "t", &base).unwrap();
    assert!(std::fs::read(repo.path("assets/big.bin")).unwrap() == big);
}

#[test]
fn autocrlf_files_come_back_byte_identical() {
    let repo = TestRepo::with_commit(&[("keep.txt", "x\n")]);
    let mut config = repo.repo.config().unwrap();
    config.set_str("core.autocrlf", "true").unwrap();
    repo.write("dos.txt", "line one\r\nline two\r\n");
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    // Stored normalised, as `git add` would.
    assert_eq!(
        blob_at(&repo.repo, &base.commit, "dos.txt"),
        b"line one\nline two\n"
    );
    repo.write("dos.txt", "edited\r\n");
    store.take(RUN, "t", &meta("code")).unwrap();
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(
        std::fs::read(repo.path("dos.txt")).unwrap(),
        b"line one\r\nline two\r\n"
    );
}

#[test]
fn symlinks_are_recorded_as_links() {
    let repo = TestRepo::with_commit(&[("target.txt", "t\n")]);
    std::os::unix::fs::symlink("target.txt", repo.path("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/outside", repo.path("dangling")).unwrap();
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let paths = tree_paths(&repo.repo, &base.commit);
    assert_eq!(paths.get("link"), Some(&0o120000));
    assert_eq!(
        blob_at(&repo.repo, &base.commit, "dangling"),
        b"/nonexistent/outside"
    );
    std::fs::remove_file(repo.path("link")).unwrap();
    repo.write("link", "now a file\n");
    store.restore(RUN, "t", &base).unwrap();
    assert_eq!(repo.files()["link"], Entry::Symlink("target.txt".into()));
    assert_eq!(repo.read("target.txt"), "t\n", "written through the link");
}

/// Sets a directory's access time far in the past (and its modification time
/// to now), so that listing it moves the access time, even with `relatime`.
fn age_access_time(dir: &Path) {
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800);
    let times = std::fs::FileTimes::new()
        .set_accessed(old)
        .set_modified(std::time::SystemTime::now());
    std::fs::File::open(dir).unwrap().set_times(times).unwrap();
}

fn was_listed(dir: &Path) -> bool {
    let accessed = std::fs::metadata(dir).unwrap().accessed().unwrap();
    accessed > std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800)
}

#[test]
fn ignored_directories_are_not_walked() {
    let repo = TestRepo::with_commit(&[(".gitignore", "node_modules/\n")]);
    repo.write("node_modules/pkg/index.js", "x");
    repo.write("src/new.rs", "x");
    // Control: an untracked directory that is not ignored is listed. Where
    // the file system does not record access times, there is nothing to see.
    age_access_time(&repo.path("src"));
    age_access_time(&repo.path("node_modules"));
    age_access_time(&repo.path("node_modules/pkg"));
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    assert_eq!(
        tree_paths(&repo.repo, &base.commit)
            .keys()
            .collect::<Vec<_>>(),
        [".gitignore", "src/new.rs"]
    );
    if !was_listed(&repo.path("src")) {
        eprintln!("access times are not recorded here; skipping the walk check");
        return;
    }
    assert!(
        !was_listed(&repo.path("node_modules")),
        "the ignored directory was listed"
    );
    assert!(!was_listed(&repo.path("node_modules/pkg")));
}

/// Runs `kkrun` as an unprivileged user when the tests run as root, since
/// root can write to a read-only directory.
fn kkrun_as_owner(dir: &Path) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("kkrun"));
    command.current_dir(dir).env("HOME", dir);
    if is_root() {
        use std::os::unix::process::CommandExt;
        let mut std_command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("kkrun"));
        std_command
            .current_dir(dir)
            .env("HOME", dir)
            .uid(65534)
            .gid(65534);
        command = Command::from_std(std_command);
    }
    command
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn chown_tree(path: &Path) {
    std::os::unix::fs::lchown(path, Some(65534), Some(65534)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

fn set_writable(path: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode();
    let mode = if writable {
        mode | 0o200
    } else {
        mode & !0o222
    };
    if meta.is_dir() && writable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            set_writable(&entry.unwrap().path(), writable);
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_git_directory_is_an_infrastructure_error() {
    let repo = TestRepo::with_commit(&[("a.txt", "a\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    store.take(RUN, "t", &meta("base")).unwrap();
    repo.write("a.txt", "changed\n");
    if is_root() {
        chown_tree(repo.root());
    }
    set_writable(&repo.path(".git"), false);
    let assert = kkrun_as_owner(repo.root())
        .args(["rollback", RUN, "t", "--to", "base"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is not writable"));
    set_writable(&repo.path(".git"), true);
    drop(assert);
    assert_eq!(
        repo.read("a.txt"),
        "changed\n",
        "nothing restored without a safety snapshot"
    );
    if !is_root() {
        return;
    }
    // Reading still works as that user.
    kkrun_as_owner(repo.root())
        .arg("snapshots")
        .assert()
        .success();
}

#[test]
fn read_only_git_directory_through_the_library() {
    if is_root() {
        // Covered through the binary above: root ignores permissions.
        return;
    }
    let repo = TestRepo::with_commit(&[("a.txt", "a\n")]);
    repo.write("a.txt", "changed\n");
    let store = SnapshotStore::open(repo.root()).unwrap();
    set_writable(&repo.path(".git"), false);
    let err = store.take(RUN, "t", &meta("base")).unwrap_err();
    set_writable(&repo.path(".git"), true);
    assert!(
        matches!(err, SnapshotError::ReadOnlyRepository { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 3);
}

#[test]
fn threads_snapshotting_one_repository() {
    let repo = TestRepo::with_commit(&[("a.txt", "a\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let store = store.clone();
            scope.spawn(move || {
                for _ in 0..8 {
                    store.take(RUN, &format!("task{t}"), &meta("code")).unwrap();
                }
            });
        }
        // Two threads racing on the same task.
        for _ in 0..2 {
            let store = store.clone();
            scope.spawn(move || {
                for _ in 0..8 {
                    store.take(RUN, "shared", &meta("code")).unwrap();
                }
            });
        }
    });
    for task in ["task0", "task1", "task2", "task3"] {
        assert_chain(&repo, &store, task, 8);
    }
    assert_chain(&repo, &store, "shared", 16);
    repo.git(&["fsck", "--strict", "--no-dangling"]);
}

/// Snapshots 0..n exist, in one linear chain.
fn assert_chain(repo: &TestRepo, store: &SnapshotStore, task: &str, n: u32) {
    let list = store.list(RUN, task).unwrap();
    assert_eq!(
        list.iter().map(|s| s.index).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    for pair in list.windows(2) {
        let child = repo
            .repo
            .find_commit(pair[1].commit.parse().unwrap())
            .unwrap();
        assert_eq!(child.parent_id(0).unwrap().to_string(), pair[0].commit);
    }
}

#[test]
fn processes_snapshotting_one_repository() {
    if let Some(dir) = std::env::var_os("KKRUN_CONCURRENCY_CHILD") {
        let store = SnapshotStore::open(Path::new(&dir)).unwrap();
        let task = std::env::var("KKRUN_CONCURRENCY_TASK").unwrap();
        for i in 0..15 {
            std::fs::write(Path::new(&dir).join(format!("{task}-{i}.txt")), "x").unwrap();
            store.take(RUN, &task, &meta("code")).unwrap();
        }
        return;
    }
    let repo = TestRepo::with_commit(&[("a.txt", "a\n")]);
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|task| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "processes_snapshotting_one_repository",
                    "--quiet",
                ])
                .env("KKRUN_CONCURRENCY_CHILD", repo.root())
                .env("KKRUN_CONCURRENCY_TASK", task)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let store = SnapshotStore::open(repo.root()).unwrap();
    assert_chain(&repo, &store, "one", 15);
    assert_chain(&repo, &store, "two", 15);
    repo.git(&["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn a_held_ref_lock_is_waited_for() {
    let repo = TestRepo::with_commit(&[("a.txt", "a\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let lock = repo.path(&format!(".git/refs/kkrun/{RUN}/t/00-base.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::remove_file(lock).unwrap();
    });
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    release.join().unwrap();
    assert_eq!(base.label(), "00-base");
}

//! What the git-state guard adds to every agent command on a large
//! repository.
//!
//! Creates a repository of ~70,000 files (committed with the git CLI and
//! packed, like a clone) with 1,000 tags, 200 branches and two stash
//! entries, then times, as medians:
//!
//! - `guard per command`: what one command pays, `capture` before it and
//!   `check_after` after it when nothing changed (the index is recognised by
//!   its fingerprint and not read);
//! - `guard, index changed`: the same after the index was rewritten with
//!   the same entries (what `git status` does when it refreshes stat data),
//!   so the guard loads and compares all entries;
//! - `git status --porcelain` for scale.
//!
//! Run with `cargo bench --bench git_guard`. `KKRUN_BENCH_FILES` changes
//! the file count and `KKRUN_BENCH_ROUNDS` the number of timed rounds.

mod support;

use std::path::Path;
use std::time::Instant;

use kkrun::guard::GitGuard;
use support::{
    benching, commit_all, env_number, file_path, git, init_with_files, median, ms, pack,
};

fn main() {
    let benching = benching();
    let files = env_number("KKRUN_BENCH_FILES", if benching { 70_000 } else { 2_000 });
    let rounds = env_number("KKRUN_BENCH_ROUNDS", if benching { 15 } else { 2 });

    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    let setup = Instant::now();
    create_repository(root, files);
    eprintln!(
        "created {files} files, 1000 tags, 200 branches in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    let index_bytes = std::fs::metadata(root.join(".git/index"))
        .map(|m| m.len())
        .unwrap_or(0);

    let guard = GitGuard::open(root).expect("open the repository");
    let steady = median(rounds, || {
        let started = Instant::now();
        let before = guard.capture().expect("capture");
        let violation = guard.check_after("true", &before);
        assert!(violation.is_none(), "{violation:?}");
        started.elapsed()
    });
    let refreshed = median(rounds, || {
        let before = guard.capture().expect("capture");
        // Same entries, new file: the fingerprint no longer matches.
        rewrite_index(root);
        let started = Instant::now();
        let violation = guard.check_after("git status", &before);
        assert!(violation.is_none(), "{violation:?}");
        started.elapsed()
    });
    let status = median(rounds, || {
        let started = Instant::now();
        git(root, &["status", "--porcelain"]);
        started.elapsed()
    });

    println!(
        "files: {files} (index {:.1} MiB), rounds: {rounds} (median)",
        index_bytes as f64 / 1048576.0
    );
    println!(
        "guard per command (capture + check, unchanged): {:8.2} ms",
        ms(steady)
    );
    println!(
        "guard, index rewritten (full index compare):    {:8.2} ms",
        ms(refreshed)
    );
    println!(
        "git status --porcelain:                         {:8.2} ms",
        ms(status)
    );
}

/// Writes the index again with the same entries, as `git status` does when
/// it refreshes stat data: new mtime, new inode.
fn rewrite_index(root: &Path) {
    let path = root.join(".git/index");
    let bytes = std::fs::read(&path).expect("read the index");
    let temporary = root.join(".git/index.bench");
    std::fs::write(&temporary, bytes).expect("write the index");
    std::fs::rename(&temporary, &path).expect("replace the index");
}

fn create_repository(root: &Path, files: usize) {
    init_with_files(root, files, |i| format!("file {i}\n"));
    commit_all(root);
    let repo = git2::Repository::open(root).expect("open");
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .expect("HEAD commit")
        .id();
    for i in 0..1000 {
        repo.reference(&format!("refs/tags/v{i}"), head, false, "bench")
            .expect("tag");
    }
    for i in 0..200 {
        repo.reference(&format!("refs/heads/b{i}"), head, false, "bench")
            .expect("branch");
    }
    git(root, &["pack-refs", "--all"]);
    for i in 0..2 {
        std::fs::write(root.join(file_path(i)), format!("stashed {i}\n")).expect("change");
        git(root, &["stash", "-q"]);
    }
    pack(root);
}

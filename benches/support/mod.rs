//! What the benchmarks on a large repository share: the layout of its
//! files, the git CLI without the user's configuration, the environment
//! knobs and the medians.
//!
//! Use it from a benchmark with `mod support;`. Each benchmark uses a
//! different subset, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whether `cargo bench` runs the benchmark: it passes `--bench`, while
/// `cargo test --benches` does not, and a smoke run there must stay small.
pub fn benching() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The number in the environment variable `name`, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Spreads files over a two-level directory tree, 100 files per directory,
/// like a real source tree.
pub fn file_path(i: usize) -> String {
    format!("d{:03}/s{:02}/f{i}.txt", i / 1000, (i / 100) % 10)
}

/// The content of file `i` in the snapshot and worktree benchmarks: a name
/// line and up to 199 bytes more, so the files are not all the same size.
pub fn padded_content(i: usize) -> String {
    format!("file {i}\n{}\n", "x".repeat(i % 200))
}

/// `git init` in `root`, then `files` files laid out by [`file_path`] with
/// `content`; nothing is staged.
pub fn init_with_files(root: &Path, files: usize, content: impl Fn(usize) -> String) {
    git(root, &["init", "-q", "-b", "main"]);
    for i in 0..files {
        let path = root.join(file_path(i));
        if i % 100 == 0 {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create a directory");
        }
        std::fs::write(&path, content(i)).expect("write a file");
    }
}

/// Stages everything and commits it, with no background auto-gc competing
/// with the measurements.
pub fn commit_all(root: &Path) {
    git(root, &["add", "-A"]);
    git(root, &["-c", "gc.auto=0", "commit", "-q", "-m", "initial"]);
}

/// Packs every object, as in a cloned repository.
pub fn pack(root: &Path) {
    git(root, &["repack", "-a", "-d", "-q"]);
    git(root, &["prune-packed"]);
}

/// A repository of `files` files with [`padded_content`], committed and
/// packed.
pub fn create_repository(root: &Path, files: usize) {
    init_with_files(root, files, padded_content);
    commit_all(root);
    pack(root);
}

/// Changes 10 tracked files and adds 5 new ones: the uncommitted state the
/// snapshot and worktree benchmarks start from.
pub fn change_some_files(root: &Path, files: usize) {
    for i in 0..10 {
        let path = root.join(file_path(i * 997 % files));
        std::fs::write(&path, format!("changed {i}\n")).expect("change a file");
    }
    for i in 0..5 {
        std::fs::write(root.join(format!("new-{i}.txt")), format!("new {i}\n"))
            .expect("add a file");
    }
}

/// Runs `git ARGS...` in `root` with no system or global configuration and
/// a fixed identity; returns its stdout.
pub fn git(root: &Path, args: &[&str]) -> String {
    git_env(root, args, &[])
}

/// [`git`] with extra environment variables.
pub fn git_env(root: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> String {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("git prints UTF-8")
}

/// The median of `rounds` calls of `measure`, after one warm-up call that
/// fills the page cache.
pub fn median(rounds: usize, mut measure: impl FnMut() -> Duration) -> Duration {
    measure();
    let mut times: Vec<Duration> = (0..rounds.max(1)).map(|_| measure()).collect();
    times.sort();
    times[times.len() / 2]
}

/// The medians of both halves of `measure`'s pairs, after one warm-up
/// round.
pub fn median_pair(
    rounds: usize,
    mut measure: impl FnMut() -> (Duration, Duration),
) -> (Duration, Duration) {
    measure();
    let (mut first, mut second): (Vec<Duration>, Vec<Duration>) =
        (0..rounds.max(1)).map(|_| measure()).unzip();
    first.sort();
    second.sort();
    (first[first.len() / 2], second[second.len() / 2])
}

/// Milliseconds, for printing.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

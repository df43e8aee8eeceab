//! Isolated worktree creation and removal on a large repository, side by
//! side with git's own worktrees.
//!
//! Creates a repository of ~70,000 files in a temporary directory
//! (committed with the git CLI and packed, like a clone), changes 10 files
//! and adds 5 (the uncommitted state an isolated worktree carries), then
//! times, as the median of the rounds after one warm-up round:
//!
//! - kkrun: `WorktreePool::create` then `WorktreePool::release`, what
//!   `--isolate` does around each task (register the worktree, check out
//!   HEAD, lay the uncommitted state and the staged index on top; remove
//!   files and registration);
//! - `git worktree add --detach` then `git worktree remove --force`, which
//!   checks out HEAD only (no uncommitted state).
//!
//! Run with `cargo bench --bench worktree`. `KKRUN_BENCH_FILES` changes the
//! file count and `KKRUN_BENCH_ROUNDS` the number of timed rounds.

mod support;

use std::time::{Duration, Instant};

use kkrun::snapshot::{SnapshotStore, WorktreePool};
use support::{benching, change_some_files, create_repository, env_number, git, median_pair, ms};

fn main() {
    let benching = benching();
    let files = env_number("KKRUN_BENCH_FILES", if benching { 70_000 } else { 2_000 });
    let rounds = env_number("KKRUN_BENCH_ROUNDS", if benching { 7 } else { 1 });

    let dir = tempfile::tempdir().expect("temporary directory");
    let repo = dir.path().join("repo");
    let worktrees = dir.path().join("worktrees");
    std::fs::create_dir_all(&repo).expect("create the repository directory");
    let started = Instant::now();
    create_repository(&repo, files);
    eprintln!(
        "created and committed {files} files in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    change_some_files(&repo, files);
    git(&repo, &["status", "--porcelain"]);

    let store = SnapshotStore::open(&repo).expect("open the repository");
    let pool = WorktreePool::new(worktrees.clone(), "20261124T101500Z-bench0", false);
    let mut round = 0;
    let (kkrun_create, kkrun_remove) = median_pair(rounds, || {
        round += 1;
        let started = Instant::now();
        let worktree = pool
            .create(&store, &format!("t{round}"))
            .expect("create the isolated worktree");
        let created = started.elapsed();
        let started = Instant::now();
        pool.release(&worktree)
            .expect("remove the isolated worktree");
        (created, started.elapsed())
    });
    let mut round = 0;
    let (git_add, git_remove) = median_pair(rounds, || {
        round += 1;
        let path = worktrees.join(format!("git-{round}"));
        let path = path.to_str().expect("UTF-8 temporary path");
        let started = Instant::now();
        git(&repo, &["worktree", "add", "-q", "--detach", path]);
        let created = started.elapsed();
        let started = Instant::now();
        git(&repo, &["worktree", "remove", "--force", path]);
        (created, started.elapsed())
    });
    let status = median_pair(rounds, || {
        let started = Instant::now();
        git(&repo, &["status", "--porcelain"]);
        (started.elapsed(), Duration::ZERO)
    })
    .0;

    println!("files: {files}, rounds: {rounds} (median)");
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "method", "create ms", "remove ms", "total ms"
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "kkrun (WorktreePool::create + release)",
        ms(kkrun_create),
        ms(kkrun_remove),
        ms(kkrun_create + kkrun_remove)
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10.1}",
        "git worktree add --detach + remove --force",
        ms(git_add),
        ms(git_remove),
        ms(git_add + git_remove)
    );
    println!(
        "{:<44} {:>10.1}",
        "git status --porcelain (for scale)",
        ms(status)
    );
    println!(
        "kkrun / git: create {:.2}, remove {:.2}, total {:.2}",
        ms(kkrun_create) / ms(git_add),
        ms(kkrun_remove) / ms(git_remove),
        ms(kkrun_create + kkrun_remove) / ms(git_add + git_remove)
    );
}

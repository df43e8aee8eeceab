//! Snapshot speed on a large repository, side by side with git.
//!
//! Creates a repository of ~70,000 files in a temporary directory (commits it
//! with the git CLI and packs it, like a clone), plus an ignored directory of
//! 2,000 files, changes 10 files and adds 5, then times:
//!
//! - `kkrun`: `SnapshotStore::take` (private index copy, add-all, tree,
//!   commit, ref);
//! - `git status --porcelain`;
//! - the git CLI method: a temporary `GIT_INDEX_FILE` copied from the
//!   repository's index, `git add -A`, `git write-tree`, `git commit-tree`;
//! - the same commands from an empty temporary index (no stat cache, so git
//!   hashes every file), the way ghost commits are often taken.
//!
//! Then, on the same repository, the snapshots and the restore of a trivial
//! 4-stage run as the pipeline takes them (`00-base`, blueprint, code after
//! one `write_file`, debug skipped for want of checks, preview, then the
//! restore to `00-base` before the next task), once with every snapshot
//! scanning the tree and once with the task's change log (incremental
//! snapshots), each against one `git status`, with the time of each step
//! of the incremental run.
//!
//! Run with `cargo bench --bench snapshot`. `KKRUN_BENCH_FILES` changes the
//! file count and `KKRUN_BENCH_ROUNDS` the number of timed rounds; each
//! figure is the median of the rounds.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kkrun::provider::ToolCall;
use kkrun::snapshot::{SnapshotMeta, SnapshotStore};
use kkrun::tools::{ToolContext, ToolSet};
use support::{
    benching, change_some_files, commit_all, env_number, file_path, git, git_env, init_with_files,
    median, ms, pack, padded_content,
};

fn main() {
    let benching = benching();
    let files = env_number("KKRUN_BENCH_FILES", if benching { 70_000 } else { 2_000 });
    let rounds = env_number("KKRUN_BENCH_ROUNDS", if benching { 9 } else { 2 });

    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    let setup = Instant::now();
    create_repository(root, files);
    eprintln!(
        "created and committed {files} files in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    // 10 changed files and 5 new ones.
    change_some_files(root, files);
    // Let git refresh the index once, as it would after any command the user
    // ran, so every method starts from the same index.
    git(root, &["status", "--porcelain"]);

    let store = SnapshotStore::open(root).expect("open the repository");
    let meta = SnapshotMeta::new("code", "ok");
    let mut round = 0;
    let kkrun = median(rounds, || {
        round += 1;
        let started = Instant::now();
        store
            .take("20261124T101500Z-bench0", &format!("t{round}"), &meta)
            .expect("take a snapshot");
        started.elapsed()
    });
    let status = median(rounds, || {
        let started = Instant::now();
        git(root, &["status", "--porcelain"]);
        started.elapsed()
    });
    let cli = median(rounds, || {
        let scratch = tempfile::tempdir().expect("temporary directory");
        let index = scratch.path().join("index");
        let started = Instant::now();
        std::fs::copy(root.join(".git/index"), &index).expect("copy the index");
        let env = [("GIT_INDEX_FILE", index.as_os_str())];
        git_env(root, &["add", "-A"], &env);
        let tree = git_env(root, &["write-tree"], &env);
        git_env(
            root,
            &["commit-tree", tree.trim(), "-p", "HEAD", "-m", "snapshot"],
            &env,
        );
        started.elapsed()
    });

    // The same commands starting from an empty temporary index, the way a
    // ghost commit is often taken: git then reads and hashes every file.
    let cli_fresh = median(rounds, || {
        let scratch = tempfile::tempdir().expect("temporary directory");
        let index = scratch.path().join("index");
        let started = Instant::now();
        let env = [("GIT_INDEX_FILE", index.as_os_str())];
        git_env(root, &["add", "-A"], &env);
        let tree = git_env(root, &["write-tree"], &env);
        git_env(
            root,
            &["commit-tree", tree.trim(), "-p", "HEAD", "-m", "snapshot"],
            &env,
        );
        started.elapsed()
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let edited = file_path(files / 2);
    let mut run_round = 0;
    let mut run = |tracked: bool| {
        run_round += 1;
        trivial_run(root, &runtime, tracked, run_round, &edited)
    };
    let run_full = median(rounds, || run(false).0);
    // Each step of the incremental runs, for the breakdown (the first
    // entry is the warm-up round's).
    let mut steps: Vec<[Duration; 5]> = Vec::new();
    let run_incremental = median(rounds, || {
        let (total, times) = run(true);
        steps.push(times);
        total
    });
    let step_median = |i: usize| {
        let mut times: Vec<Duration> = steps.iter().skip(1).map(|s| s[i]).collect();
        times.sort();
        times[times.len() / 2]
    };

    println!("files: {files}, rounds: {rounds} (median)");
    println!("{:<36} {:>9}", "method", "ms");
    println!(
        "{:<36} {:>9.1}",
        "kkrun snapshot (SnapshotStore::take)",
        ms(kkrun)
    );
    println!("{:<36} {:>9.1}", "git status --porcelain", ms(status));
    println!(
        "{:<36} {:>9.1}",
        "git add -A + write-tree + commit-tree",
        ms(cli)
    );
    println!(
        "{:<36} {:>9.1}",
        "same, from an empty temporary index",
        ms(cli_fresh)
    );
    println!(
        "kkrun / git status = {:.2} (target <= 1.2); kkrun / git CLI method = {:.2} (target <= 0.5); \
         kkrun / git CLI method from an empty index = {:.2}",
        ms(kkrun) / ms(status),
        ms(kkrun) / ms(cli),
        ms(kkrun) / ms(cli_fresh)
    );
    println!("trivial 4-stage run, 4 snapshots + restore to 00-base:");
    println!(
        "{:<36} {:>9.1}   {:.2} x git status",
        "every snapshot scanning",
        ms(run_full),
        ms(run_full) / ms(status)
    );
    println!(
        "{:<36} {:>9.1}   {:.2} x git status (target <= 2)",
        "incremental (change log)",
        ms(run_incremental),
        ms(run_incremental) / ms(status)
    );
    println!("incremental run, each step (median):");
    for (i, step) in STEPS.iter().enumerate() {
        println!(
            "  {:<34} {:>9.1}   {:.2} x git status",
            step,
            ms(step_median(i)),
            ms(step_median(i)) / ms(status)
        );
    }
}

/// The steps of [`trivial_run`], in order.
const STEPS: [&str; 5] = [
    "snapshot 00-base",
    "snapshot blueprint",
    "snapshot code (after write_file)",
    "snapshot preview",
    "restore to 00-base",
];

/// The snapshot and restore time of one trivial 4-stage task, and of each
/// of its [`STEPS`]; the tool call between them is not counted.
fn trivial_run(
    root: &Path,
    runtime: &tokio::runtime::Runtime,
    tracked: bool,
    round: usize,
    edited: &str,
) -> (Duration, [Duration; 5]) {
    let ctx = ToolContext::from_parts(root, Default::default(), Default::default(), Vec::new());
    let mut store = SnapshotStore::open(root).expect("open the repository");
    if tracked {
        store = store.tracking(ctx.changes.clone());
    }
    let run_id = "20261202T101500Z-bench1";
    let task = format!("run{round}");
    let mut steps = Vec::new();
    let mut take = |stage: &str| {
        let started = Instant::now();
        let info = store
            .take(run_id, &task, &SnapshotMeta::new(stage, "ok"))
            .expect("take a snapshot");
        steps.push(started.elapsed());
        info
    };
    let base = take("base");
    take("blueprint");
    let call = ToolCall {
        id: "call_1".to_owned(),
        name: "write_file".to_owned(),
        arguments: serde_json::json!({"path": edited, "content": format!("round {round}\n")})
            .to_string(),
    };
    let result = runtime.block_on(kkrun::tools::execute(&ctx, ToolSet::Code, &call));
    assert_eq!(
        result.outcome,
        kkrun::events::ToolOutcome::Ok,
        "{}",
        result.content
    );
    take("code");
    take("preview");
    let started = Instant::now();
    store
        .restore(run_id, &task, &base)
        .expect("restore 00-base");
    steps.push(started.elapsed());
    let steps: [Duration; 5] = steps.try_into().expect("five steps");
    (steps.iter().sum(), steps)
}

/// The repository: `files` files, an ignored `build/` of 2,000 files that
/// must not be walked, committed and packed.
fn create_repository(root: &Path, files: usize) {
    init_with_files(root, files, padded_content);
    std::fs::write(root.join(".gitignore"), "build/\n").expect("write .gitignore");
    for i in 0..2_000 {
        let path = root.join(format!("build/o{}/x{i}.o", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create a directory");
        }
        std::fs::write(path, "object").expect("write an ignored file");
    }
    commit_all(root);
    pack(root);
}

//! A restore that is killed cannot lose files: a real `kkrun rollback` of
//! every file of a repository is SIGKILLed at 20 points spread over its measured
//! duration, and after each kill the next kkrun command (`kkrun snapshots`)
//! leaves the work tree exactly in the state before or the state after the
//! restore, finishing an interrupted restore with one line on stderr.
//!
//! The repository is built once; the kills alternate the direction of the
//! restore, so every try starts from a complete state. By default the
//! repository has 300 files, which keeps the test to seconds on a loaded
//! 2-core CI machine; `KKRUN_RESTORE_FILES=3000` runs the full size
//! (about 7 minutes in a debug build on a loaded 2-core machine).

mod snapshot_support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kkrun::snapshot::{SnapshotMeta, SnapshotStore};
use snapshot_support::{Entry, TestRepo};

const RUN: &str = "20261124T101500Z-ab12cd";
const KILLS: usize = 20;

fn kkrun(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kkrun"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("KKRUN_GIT_NAME")
        .env_remove("KKRUN_GIT_EMAIL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// `base`: `files` committed files. `code`: most of them changed, some
/// deleted, as many added, one made executable, one turned into a symlink.
fn repo_with_two_states(files: usize) -> TestRepo {
    let repo = TestRepo::new();
    for i in 0..files {
        repo.write(&format!("d{:02}/f{i:04}.txt", i % 30), format!("old {i}\n"));
    }
    repo.commit_all("initial");
    let store = SnapshotStore::open(repo.root()).unwrap();
    store
        .take(RUN, "t", &SnapshotMeta::new("base", "ok"))
        .unwrap();
    let removed = files / 30;
    for i in 0..files {
        let path = format!("d{:02}/f{i:04}.txt", i % 30);
        if i < removed {
            repo.remove(&path);
        } else {
            repo.write(&path, format!("new {i}\n{}\n", "x".repeat(i % 200)));
        }
    }
    for i in 0..removed {
        repo.write(
            &format!("added/n{:02}/a{i:04}.txt", i % 10),
            format!("a {i}\n"),
        );
    }
    let last = files - 1;
    repo.set_executable(&format!("d{:02}/f{last:04}.txt", last % 30), true);
    let link = format!("d{:02}/f{:04}.txt", (files - 2) % 30, files - 2);
    repo.remove(&link);
    std::os::unix::fs::symlink("elsewhere.txt", repo.path(&link)).unwrap();
    store
        .take(RUN, "t", &SnapshotMeta::new("code", "ok"))
        .unwrap();
    repo
}

#[test]
fn a_killed_rollback_leaves_the_before_or_the_after_state() {
    let files: usize = std::env::var("KKRUN_RESTORE_FILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let setup = Instant::now();
    let repo = repo_with_two_states(files);
    eprintln!("the repository took {:?} to build", setup.elapsed());
    let code_state = repo.files();

    // One whole rollback, timed, gives the window the kills are spread over.
    let started = Instant::now();
    let out = kkrun(repo.root(), &["rollback", RUN, "t", "--to", "base"])
        .output()
        .unwrap();
    let full = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base_state = repo.files();
    assert_ne!(base_state, code_state);
    assert!(
        base_state.len() == files && base_state.values().all(|e| matches!(e, Entry::File { .. }))
    );
    eprintln!("one rollback of {files} files took {full:?}");

    let name = |at_base: bool| if at_base { "base" } else { "code" };
    let mut at_base = true;
    let mut recovered = 0;
    let mut untouched = 0;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    for kill in 0..KILLS {
        // Stratified: the k-th kill lands somewhere in the k-th twentieth of
        // the measured duration, so the whole restore is covered.
        let slot = full.as_secs_f64() / KILLS as f64;
        let delay = Duration::from_secs_f64(slot * (kill as f64 + rng.f64()));
        let mut child = kkrun(repo.root(), &["rollback", RUN, "t", "--to", name(!at_base)])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SIGKILL (a no-op error if it already finished).
        let _ = child.kill();
        child.wait().unwrap();

        let next = kkrun(repo.root(), &["snapshots", RUN, "t"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&next.stderr);
        assert!(next.status.success(), "kill {kill} (seed {seed}): {stderr}");
        if stderr.contains("kkrun: finished an interrupted restore of . (to ") {
            recovered += 1;
        }
        let now = repo.files();
        let before: &BTreeMap<_, _> = if at_base { &base_state } else { &code_state };
        let after: &BTreeMap<_, _> = if at_base { &code_state } else { &base_state };
        if now == *after {
            at_base = !at_base;
        } else {
            assert!(
                now == *before,
                "kill {kill} after {delay:?} (seed {seed}) left neither state: {} paths differ \
                 from before, {} from after",
                differing(&now, before),
                differing(&now, after),
            );
            untouched += 1;
        }
        let kkrun_dir = repo.repo.path().join("kkrun");
        assert!(!kkrun_dir.join("restore-journal.json").exists());
        assert!(!kkrun_dir.join("restore-staging").exists());
    }
    eprintln!(
        "{KILLS} kills: {recovered} restores finished by the next command, {untouched} killed \
         before the restore began (seed {seed})"
    );
    assert!(
        recovered > 0,
        "no kill landed inside a restore (seed {seed}); the test did not test anything"
    );
}

fn differing(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> usize {
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).count()
}

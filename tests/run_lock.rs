//! One run per work tree: real `kkrun run` processes on one repository. A
//! second run fails at once with exit 2 naming the first run's id and pid,
//! `--wait-lock` waits for it instead, `kkrun rollback` is refused while a
//! run holds the lock, and a lock file left by a dead process is taken
//! over with a notice.

mod e2e_support;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_support::{Fixture, TaskFile, fix_and_approve};
use serde_json::Value;

/// A passing task whose checks take a while (`sleep 2` on the base and
/// again after the stages), so a run holds its lock for a few seconds.
fn slow_task(fx: &Fixture) -> String {
    fx.add_task(
        &TaskFile::new("fix-add", &fix_and_approve())
            .extra_checks("  - name: slow\n    run: sleep 2\n"),
    )
}

fn spawn(fx: &Fixture, out: &str, extra: &[&str], task: &str) -> Child {
    let mut args = vec!["run", "--out", out, "--restore", "always"];
    args.extend_from_slice(extra);
    args.push(task);
    fx.kkrun(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn lock_file(repo: &Path) -> std::path::PathBuf {
    repo.join(".git/kkrun/run.lock")
}

/// Waits until a run has written itself into the lock file.
fn holder(repo: &Path) -> Value {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(lock_file(repo))
            && let Ok(value) = serde_json::from_str::<Value>(&text)
        {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_run_fails_at_once_naming_the_first_and_wait_lock_waits() {
    let fx = Fixture::new();
    let task = slow_task(&fx);
    let first = spawn(&fx, "out1", &[], &task);
    let holder = holder(&fx.repo());
    let (run_id, pid) = (
        holder["run_id"].as_str().unwrap(),
        holder["pid"].as_u64().unwrap(),
    );
    assert_eq!(u64::from(first.id()), pid);

    let second = fx.kkrun(&["run", "--out", "out2", &task]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(code(&second), 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by run {run_id} (pid {pid}) (hint: wait for it, or pass --wait-lock 10m)"
        )),
        "{stderr}"
    );
    assert!(!fx.root().join("out2").exists(), "nothing ran");

    let rollback = fx
        .kkrun(&[
            "rollback", run_id, "fix-add", "--to", "base", "--repo", "repo",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&rollback.stderr);
    assert_eq!(code(&rollback), 2, "{stderr}");
    assert!(
        stderr.contains(&format!("in use by run {run_id}")),
        "{stderr}"
    );

    let waited = fx
        .kkrun(&["run", "--out", "out3", "--wait-lock", "2m", &task])
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert_eq!(
        code(&first),
        0,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        code(&waited),
        0,
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    // Released and emptied at the end.
    assert_eq!(std::fs::read_to_string(lock_file(&fx.repo())).unwrap(), "");
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over_with_a_notice() {
    let fx = Fixture::new();
    let task = fx.add_task(&TaskFile::new("fix-add", &fix_and_approve()));
    let path = lock_file(&fx.repo());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // Above the kernel's largest pid: certainly not running.
    std::fs::write(
        &path,
        r#"{"run_id":"20260101T000000Z-dead00","pid":4194304,"started":"2026-01-01T00:00:00Z","command":"run"}"#,
    )
    .unwrap();
    let run = fx.kkrun(&["run", "--out", "out", &task]).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(code(&run), 0, "{stderr}");
    assert!(
        stderr.contains(
            "kkrun: took over the lock of the work tree \
             "
        ) && stderr
            .contains("from run 20260101T000000Z-dead00 (pid 4194304), which is no longer running"),
        "{stderr}"
    );
}

/// The issue's measurement, with 4 processes: runs started together on one
/// work tree used to wipe each other's edits and report false failures.
/// Now all but one exit 2 at once; with `--wait-lock` all of them pass.
#[test]
fn concurrent_runs_on_one_work_tree_never_give_false_failures() {
    const RUNS: usize = 4;
    let fx = Fixture::new();
    let task = slow_task(&fx);
    let children: Vec<Child> = (0..RUNS)
        .map(|i| spawn(&fx, &format!("out{i}"), &[], &task))
        .collect();
    let mut codes: Vec<i32> = children
        .into_iter()
        .map(|child| code(&child.wait_with_output().unwrap()))
        .collect();
    codes.sort();
    assert_eq!(codes, [0, 2, 2, 2]);

    let children: Vec<Child> = (0..RUNS)
        .map(|i| spawn(&fx, &format!("waited{i}"), &["--wait-lock", "5m"], &task))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            code(&output),
            0,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

//! `kkrun resume`: real runs of the example tasks, killed with SIGKILL at
//! random points, then resumed; the result must be the one an uninterrupted
//! run gives. The seed of the random points is printed; set
//! `KKRUN_RESUME_SEED` to replay one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod e2e_support;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Kills per property test (the issue asks for at least 20).
const KILLS: usize = 20;

fn kkrun(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("kkrun"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("KKRUN_MODEL")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("CI", "true")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    command
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        describe(&output)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_name() == "__pycache__" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A git repository holding this project's `tasks/` and `examples/dates`,
/// as a user's clone would.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(ROOT).join("tasks"), &dir.path().join("tasks"));
    copy_dir(
        &Path::new(ROOT).join("examples/dates"),
        &dir.path().join("examples/dates"),
    );
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(
        dir.path(),
        &[
            "-c",
            "user.name=dev",
            "-c",
            "user.email=dev@localhost",
            "commit",
            "-qm",
            "base",
        ],
    );
    dir
}

/// A check's name, status and whether its final run passed.
type CheckOutcome = (String, String, Option<bool>);

/// What must not depend on whether the run was killed: the example's
/// files, the exit code, and per task its name, outcome, checks and
/// `final.patch` (an isolated task's change is only there).
#[derive(Debug, PartialEq)]
struct Result {
    tree: BTreeMap<PathBuf, String>,
    exit_code: i32,
    tasks: Vec<(String, String, Vec<CheckOutcome>)>,
    patches: BTreeMap<String, Option<String>>,
}

fn files(dir: &Path, base: &Path, into: &mut BTreeMap<PathBuf, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "__pycache__" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            files(&entry.path(), base, into);
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            into.insert(entry.path().strip_prefix(base).unwrap().to_path_buf(), text);
        }
    }
}

fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join(".kkrun/runs/latest/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn result(dir: &Path) -> Result {
    let report = report(dir);
    let mut tree = BTreeMap::new();
    files(&dir.join("examples"), dir, &mut tree);
    let tasks: Vec<(String, String, Vec<CheckOutcome>)> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| {
            let checks = task["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["status"].as_str().unwrap().to_string(),
                        c["final"]["passed"].as_bool(),
                    )
                })
                .collect();
            (
                task["name"].as_str().unwrap().to_string(),
                task["outcome"].as_str().unwrap().to_string(),
                checks,
            )
        })
        .collect();
    let run_dir = dir.join(".kkrun/runs/latest");
    let patches = tasks
        .iter()
        .map(|(name, _, _)| {
            let patch = std::fs::read_to_string(run_dir.join(name).join("final.patch")).ok();
            (name.clone(), patch)
        })
        .collect();
    Result {
        tree,
        exit_code: report["exit_code"].as_i64().unwrap() as i32,
        tasks,
        patches,
    }
}

fn seed() -> u64 {
    let seed = std::env::var("KKRUN_RESUME_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("KKRUN_RESUME_SEED={seed}");
    seed
}

/// Starts kkrun and SIGKILLs it after `delay` unless it ended first.
fn run_and_kill(dir: &Path, args: &[&str], delay: Duration) {
    let mut child = kkrun(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // `Child::kill` is SIGKILL on Unix.
    let _ = child.kill();
    let _ = child.wait();
}

fn events_in(dir: &Path) -> usize {
    let runs = dir.join(".kkrun/runs");
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "latest")
        .map(|e| {
            std::fs::read_to_string(e.path().join("events.jsonl"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        })
        .sum()
}

/// The report a resumed run wrote says so, with every attempt, and its
/// usage is the sum of theirs; `kkrun report rebuild` writes it again
/// byte for byte from the appended events.
fn check_resumed_report(dir: &Path) {
    let report = report(dir);
    let errors = e2e_support::committed_schema_errors(&report);
    assert!(errors.is_empty(), "{errors:#?}");
    for task in report["tasks"].as_array().unwrap() {
        let Some(resumed) = task.get("resumed") else {
            continue;
        };
        let attempts = resumed["attempts"].as_array().unwrap();
        assert!(attempts.len() >= 2, "{resumed}");
        for field in ["input_tokens", "output_tokens"] {
            let sum: u64 = attempts
                .iter()
                .map(|a| a["usage"][field].as_u64().unwrap())
                .sum();
            assert_eq!(task["usage"][field].as_u64().unwrap(), sum, "{task}");
        }
        assert_eq!(
            attempts.last().unwrap()["ended"],
            task["outcome"],
            "{resumed}"
        );
    }
    let run_dir = dir.join(".kkrun/runs/latest");
    let written = std::fs::read(run_dir.join("report.json")).unwrap();
    let rebuilt = kkrun(dir, &["report", "rebuild", ".kkrun/runs/latest"])
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{}", describe(&rebuilt));
    assert_eq!(
        String::from_utf8(std::fs::read(run_dir.join("report.json")).unwrap()).unwrap(),
        String::from_utf8(written).unwrap()
    );
}

/// Resumes until the run is complete (a resume may be killed too, which
/// `kill_resume` asks for once, after a random delay below `span`).
fn resume_to_the_end(dir: &Path, rng: &mut fastrand::Rng, kill_resume: bool, span: Duration) {
    if kill_resume {
        run_and_kill(dir, &["resume"], span.mul_f64(rng.f64()));
    }
    let output = kkrun(dir, &["resume"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("panicked"),
        "{}",
        describe(&output)
    );
    if stdout.contains("nothing to resume") {
        return;
    }
    assert!(
        output.status.code().is_some_and(|c| c != 2 && c != 3),
        "{}",
        describe(&output)
    );
}

/// Kills `args` at random points of its run and resumes it; each time
/// the result equals that of a run that was not killed.
fn property(args: &[&str]) {
    let clean = checkout();
    let started = Instant::now();
    let output = kkrun(clean.path(), args).output().unwrap();
    let span = started.elapsed();
    let expected = result(clean.path());
    assert!(
        expected.tasks.iter().all(|t| t.1 == "passed"),
        "{expected:?}\n{}",
        describe(&output)
    );
    let mut rng = fastrand::Rng::with_seed(seed());
    let mut resumed = 0;
    for kill in 0..KILLS {
        let dir = checkout();
        let delay = span.mul_f64(rng.f64());
        run_and_kill(dir.path(), args, delay);
        if events_in(dir.path()) == 0 {
            // Killed before the first event: nothing to resume, said so.
            let output = kkrun(dir.path(), &["resume"]).output().unwrap();
            if dir.path().join(".kkrun/runs").exists() {
                assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(stderr.contains("nothing to resume"), "{stderr}");
            }
            let output = kkrun(dir.path(), args).output().unwrap();
            assert!(output.status.code().is_some(), "{}", describe(&output));
        } else {
            resumed += 1;
            resume_to_the_end(dir.path(), &mut rng, kill % 4 == 3, span);
            check_resumed_report(dir.path());
        }
        assert_eq!(
            result(dir.path()),
            expected,
            "kill {kill} after {delay:?} (of {span:?})"
        );
        // Worktrees of killed attempts were removed by the next one.
        assert_eq!(worktrees(dir.path()), Vec::<String>::new(), "kill {kill}");
    }
    assert!(
        resumed >= KILLS / 2,
        "only {resumed} kills left a run to resume"
    );
}

/// The isolated worktrees registered in the repository at `dir`.
fn worktrees(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join(".git/worktrees")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn the_readme_example_killed_anywhere_resumes_to_the_same_result() {
    property(&["tasks/fix-iso-weeks.yaml", "--restore", "always"]);
}

#[test]
fn a_two_task_run_killed_anywhere_resumes_to_the_same_result() {
    property(&["tasks/fix-iso-weeks.yaml", "tasks/dates-nightly.yaml"]);
}

/// Isolated tasks (`--jobs 2`) resume in new worktrees at their last
/// snapshots; the user's work tree is never touched, and no worktree is
/// left behind.
#[test]
fn an_isolated_run_killed_anywhere_resumes_to_the_same_result() {
    property(&[
        "tasks/fix-iso-weeks.yaml",
        "tasks/dates-nightly.yaml",
        "--jobs",
        "2",
    ]);
}

#[test]
fn a_run_killed_before_its_first_event_is_a_clear_error() {
    let dir = checkout();
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("nothing to resume"),
        "{}",
        describe(&output)
    );
    let run = dir.path().join(".kkrun/runs/20261202T000000Z-000001");
    std::fs::create_dir_all(&run).unwrap();
    // Killed after creating its directory, before creating events.jsonl.
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no events.jsonl") && stderr.contains("nothing to resume"),
        "{stderr}"
    );
    std::fs::write(run.join("events.jsonl"), "").unwrap();
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no events") && stderr.contains("nothing to resume"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(run.join("events.jsonl")).unwrap(),
        ""
    );
}

#[test]
fn a_finished_run_is_not_run_again() {
    let dir = checkout();
    let output = kkrun(dir.path(), &["tasks/fix-iso-weeks.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let events = dir.path().join(".kkrun/runs/latest/events.jsonl");
    let before = std::fs::read_to_string(&events).unwrap();
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("nothing to resume"),
        "{}",
        describe(&output)
    );
    assert_eq!(std::fs::read_to_string(&events).unwrap(), before);
}

/// Cuts `events.jsonl` of the latest run after the first line `at` picks,
/// as a kill there would leave it, and removes the reports.
fn cut_stream(dir: &Path, mut at: impl FnMut(&str) -> bool) {
    let events_path = dir.join(".kkrun/runs/latest/events.jsonl");
    let text = std::fs::read_to_string(&events_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.iter().position(|l| at(l)).unwrap();
    let mut kept = lines[..=cut].join("\n");
    kept.push('\n');
    std::fs::write(&events_path, kept).unwrap();
    std::fs::remove_file(dir.join(".kkrun/runs/latest/report.json")).unwrap();
}

#[test]
fn the_budget_counts_what_the_cut_short_attempt_spent() {
    let dir = checkout();
    let output = kkrun(
        dir.path(),
        &["tasks/fix-iso-weeks.yaml", "--restore", "always"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let total = report(dir.path())["tasks"][0]["usage"].clone();
    let total = total["input_tokens"].as_u64().unwrap() + total["output_tokens"].as_u64().unwrap();
    // Killed after two turns of the code stage: they are lost work, done
    // again by the resumed run, and still spent.
    let mut code_turns = 0;
    cut_stream(dir.path(), |line| {
        if line.contains("\"type\":\"model.turn\"") && line.contains("\"stage\":\"code\"") {
            code_turns += 1;
        }
        code_turns == 2
    });
    // A budget the uninterrupted run stays within.
    let file = dir.path().join("tasks/fix-iso-weeks.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{text}budget:\n  max_tokens: {}\n", total + 100),
    )
    .unwrap();
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", describe(&output));
    let report = report(dir.path());
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "budget_exhausted", "{task}");
    let used = task["usage"]["input_tokens"].as_u64().unwrap()
        + task["usage"]["output_tokens"].as_u64().unwrap();
    assert!(used > total + 100, "{used} <= {}", total + 100);
    let first = &task["resumed"]["attempts"][0];
    assert_eq!(first["ended"], "killed");
    assert_eq!(task["resumed"]["after"], "the plan");
    check_resumed_report(dir.path());
}

#[test]
fn a_resumed_task_continues_after_its_last_stage_and_counts_both_attempts() {
    let dir = checkout();
    let output = kkrun(
        dir.path(),
        &["tasks/fix-iso-weeks.yaml", "--restore", "always"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let expected = result(dir.path());
    let uninterrupted = report(dir.path());
    // Cut the stream right after the code stage, as a kill there would
    // (the events up to then are what a killed run leaves).
    let events_path = dir.path().join(".kkrun/runs/latest/events.jsonl");
    let text = std::fs::read_to_string(&events_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines
        .iter()
        .position(|l| l.contains("\"type\":\"stage.finished\"") && l.contains("\"stage\":\"code\""))
        .unwrap();
    let mut kept = lines[..=cut].join("\n");
    kept.push_str("\n{\"ts\":\"2026-12-02T00:00:00Z\",\"elap"); // torn by the kill
    std::fs::write(&events_path, kept).unwrap();
    std::fs::remove_file(dir.path().join(".kkrun/runs/latest/report.json")).unwrap();
    let output = kkrun(dir.path(), &["resume", "latest"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("resumed after code"),
        "{}",
        describe(&output)
    );
    assert_eq!(result(dir.path()), expected);
    let resumed = report(dir.path());
    let task = &resumed["tasks"][0];
    assert_eq!(task["resumed"]["after"], "code");
    let summary =
        std::fs::read_to_string(dir.path().join(".kkrun/runs/latest/summary.md")).unwrap();
    assert!(
        summary.contains("**Resumed** after code (2 attempts: killed, "),
        "{summary}"
    );
    let stages: Vec<&str> = task["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["blueprint", "code", "debug", "preview"]);
    // Debug and preview ran once, from the cassette's next exchanges: the
    // usage is the uninterrupted run's.
    assert_eq!(task["usage"], uninterrupted["tasks"][0]["usage"]);
    assert_eq!(task["review"], uninterrupted["tasks"][0]["review"]);
    check_resumed_report(dir.path());
    // The stream is one event a line again: the torn line is gone.
    let text = std::fs::read_to_string(&events_path).unwrap();
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    assert!(text.contains("\"type\":\"run.resumed\""));
}

/// A kill between libgit2 creating a ref's lock file and renaming it into
/// place leaves `<ref>.lock`; the resumed run must write that ref anyway.
#[test]
fn a_ref_lock_left_by_the_killed_process_does_not_fail_the_resumed_snapshot() {
    let dir = checkout();
    let output = kkrun(dir.path(), &["tasks/fix-iso-weeks.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let expected = result(dir.path());
    // The process is killed while writing the preview snapshot's ref: the
    // stream ends with the debug stage, and the ref is only its lock file.
    cut_stream(dir.path(), |l| {
        l.contains("\"type\":\"stage.finished\"") && l.contains("\"stage\":\"debug\"")
    });
    let refs = Command::new("git")
        .current_dir(dir.path())
        .args([
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/kkrun/",
        ])
        .output()
        .unwrap();
    let refs = String::from_utf8(refs.stdout).unwrap();
    let (preview, oid) = refs
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(name, _)| name.ends_with("-preview"))
        .unwrap_or_else(|| panic!("no preview snapshot in\n{refs}"));
    git(dir.path(), &["update-ref", "-d", preview]);
    let lock = dir.path().join(".git").join(format!("{preview}.lock"));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, format!("{oid}\n")).unwrap();

    let output = kkrun(dir.path(), &["resume", "latest"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "removed the lock of {preview}, left by the run's earlier process"
        )),
        "{}",
        describe(&output)
    );
    assert!(!lock.exists());
    assert_eq!(result(dir.path()), expected);
    let task = &report(dir.path())["tasks"][0];
    assert_eq!(task["outcome"], "passed", "{task:#}");
    let snapshots: Vec<&str> = task["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["ref_name"].as_str())
        .collect();
    assert!(snapshots.contains(&preview), "{snapshots:?}");
}

#[test]
fn an_isolated_task_resumes_in_a_new_worktree_at_its_last_snapshot() {
    let dir = checkout();
    let output = kkrun(dir.path(), &["tasks/fix-iso-weeks.yaml", "--isolate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let expected = result(dir.path());
    let refs_before = e2e_support::snapshot_refs(dir.path());
    cut_stream(dir.path(), |l| {
        l.contains("\"type\":\"stage.finished\"") && l.contains("\"stage\":\"code\"")
    });
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("resumed after code"), "{stderr}");
    assert_eq!(result(dir.path()), expected);
    // The user's work tree was never touched, and the worktree is gone.
    assert_eq!(e2e_support::git(dir.path(), &["status", "--porcelain"]), "");
    assert_eq!(worktrees(dir.path()), Vec::<String>::new());
    let task = &report(dir.path())["tasks"][0];
    let worktree = task["worktree"].as_str().unwrap();
    assert!(!Path::new(worktree).exists(), "{worktree}");
    assert_eq!(task["resumed"]["after"], "code");
    // The new worktree started at the code snapshot: nothing to restore,
    // so no safety snapshot; debug and preview took theirs again, numbered
    // after the cut-short attempt's.
    let mut refs = refs_before;
    refs.extend(["05-debug".to_string(), "06-preview".to_string()]);
    assert_eq!(e2e_support::snapshot_refs(dir.path()), refs);
    check_resumed_report(dir.path());
}

/// `--keep-worktrees` carries over; the worktree the cut-short attempt
/// kept under the task's name is replaced, with a warning.
#[test]
fn a_kept_worktree_of_the_cut_short_attempt_is_replaced_on_resume() {
    let dir = checkout();
    let wts = dir.path().join("wts");
    let wts_arg = wts.to_str().unwrap();
    let args = [
        "tasks/fix-iso-weeks.yaml",
        "--keep-worktrees",
        "--worktrees",
        wts_arg,
    ];
    let output = kkrun(dir.path(), &args).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let expected = result(dir.path());
    assert_eq!(worktrees(dir.path()).len(), 1);
    cut_stream(dir.path(), |l| {
        l.contains("\"type\":\"stage.finished\"") && l.contains("\"stage\":\"blueprint\"")
    });
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the worktree an earlier attempt of the task left"),
        "{stderr}"
    );
    assert!(stderr.contains("kept the isolated worktree"), "{stderr}");
    assert_eq!(result(dir.path()), expected);
    let kept = worktrees(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(wts.join(&kept[0]).join("examples/dates").is_dir());
    assert_eq!(
        e2e_support::git(dir.path(), &["status", "--porcelain", "--", "examples"]),
        ""
    );
}

#[test]
fn a_run_whose_process_still_holds_it_is_not_resumed() {
    let dir = checkout();
    let output = kkrun(dir.path(), &["tasks/fix-iso-weeks.yaml", "--isolate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    cut_stream(dir.path(), |l| l.contains("\"type\":\"task.started\""));
    let run_dir = dir.path().join(".kkrun/runs/latest");
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let run_id = report_run_id(&events);
    // This process plays the run, still running: it holds the run's lock.
    let _lock = e2e_support::hold_run_lock(&run_dir, &run_id);
    let output = kkrun(dir.path(), &["resume"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "is in use by run {run_id} (pid {}) (hint: wait for it",
            std::process::id()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap(),
        events
    );
    assert_eq!(worktrees(dir.path()), Vec::<String>::new());
}

/// The run id of a stream's `run.started`.
fn report_run_id(events: &str) -> String {
    let first: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    first["run_id"].as_str().unwrap().to_string()
}

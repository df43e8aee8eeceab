//! The run store (`kkrun runs list|show|fsck|gc`, `kkrun gc`) and the rough
//! edges around it (`latest` as a run id, `diff` after `rollback`,
//! `--json`, bare `kkrun`, tidy paths, file modes, JUnit types), through
//! the real binary on real runs of replayed tasks in a real git repository.

mod e2e_support;

use std::path::{Path, PathBuf};

use e2e_support::{Fixture, finish, fix_add, fix_and_approve, git, plan, read_calc, review};
use serde_json::Value;

/// Output of a finished kkrun command.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn kkrun(fx: &Fixture, args: &[&str]) -> Out {
    let output = fx.kkrun(args).output().unwrap();
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Runs `task` into `.kkrun/runs/` (restoring the base afterwards, so the
/// next run starts from the same tree); returns the new run's id.
fn run(fx: &Fixture, task: &str, code: i32) -> String {
    kkrun(fx, &["run", "--restore", "always", task]).expect(code);
    latest(fx)
}

fn runs_dir(fx: &Fixture) -> PathBuf {
    fx.root().join(".kkrun/runs")
}

fn latest(fx: &Fixture) -> String {
    std::fs::read_link(runs_dir(fx).join("latest"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Fixes `add` but the review requests changes: the checks pass, the task
/// fails on the verdict.
fn rejected_turns() -> Vec<kkrun::provider::script::ScriptedTurn> {
    vec![
        read_calc(),
        plan(),
        fix_add(),
        finish("code"),
        review("request_changes"),
    ]
}

fn refs_of(repo: &Path, run: &str) -> Vec<String> {
    git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/kkrun/{run}/"),
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn runs_list_and_show_read_reports_and_the_events_of_a_killed_run() {
    let fx = Fixture::new();
    let pass = fx.task("fix-add", "", &fix_and_approve());
    let reject = fx.task("rejected", "", &rejected_turns());
    let first = run(&fx, &pass, 0);
    let second = run(&fx, &reject, 1);

    // A rejected review has its own JUnit type.
    let junit = std::fs::read_to_string(runs_dir(&fx).join(&second).join("junit.xml")).unwrap();
    assert!(
        junit
            .contains("<failure type=\"review_rejected\" message=\"the review requested changes\""),
        "{junit}"
    );
    assert!(!junit.contains("check_failed"), "{junit}");

    // A third run, killed: no report.json, events.jsonl cut before
    // run.finished (the line after it torn mid-write).
    let third = run(&fx, &pass, 0);
    let dir = runs_dir(&fx).join(&third);
    std::fs::remove_file(dir.join("report.json")).unwrap();
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let kept: Vec<&str> = events
        .lines()
        .filter(|l| !l.contains("\"run.finished\""))
        .collect();
    std::fs::write(
        dir.join("events.jsonl"),
        format!("{}\n{{\"ts\":\"2026", kept.join("\n")),
    )
    .unwrap();

    let out = kkrun(&fx, &["runs", "list", "--repo", "repo"]).expect(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].split_whitespace().eq([
        "RUN", "STARTED", "TASKS", "PASSED", "FAILED", "EXIT", "COST", "OUTCOME"
    ]));
    let row = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (r1, r2, r3) = (row(lines[1]), row(lines[2]), row(lines[3]));
    assert_eq!(r1[0], first, "oldest first");
    assert_eq!(&r1[2..6], ["1", "1", "0", "0"]);
    assert_eq!(r1[7], "passed");
    assert!(r1[6].starts_with('$'), "a known price gives a cost: {r1:?}");
    assert_eq!(r2[0], second);
    assert_eq!(&r2[2..6], ["1", "0", "1", "1"]);
    assert_eq!(r2[7], "failed");
    assert_eq!(r3[0], third);
    assert!(
        lines[3].ends_with(&format!("incomplete (resume with: kkrun resume {third})")),
        "{}",
        lines[3]
    );

    let doc = kkrun(&fx, &["runs", "list", "--json", "--repo", "repo"])
        .expect(0)
        .json();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["run_id"], first.as_str());
    assert_eq!(runs[0]["outcome"], "passed");
    assert_eq!(runs[0]["exit_code"], 0);
    assert_eq!(runs[0]["source"], "report");
    assert_eq!(runs[1]["outcome"], "failed");
    assert_eq!(runs[2]["outcome"], "incomplete");
    assert_eq!(runs[2]["exit_code"], Value::Null);
    assert_eq!(runs[2]["source"], "events");

    // `latest` is the third run; show it by id instead, and the first by
    // `latest`'s neighbour.
    let doc = kkrun(
        &fx,
        &[
            "runs", "show", &first, "fix-add", "--json", "--repo", "repo",
        ],
    )
    .expect(0)
    .json();
    let task = &doc["tasks"][0];
    assert_eq!(task["name"], "fix-add");
    assert_eq!(task["outcome"], "passed");
    let stages: Vec<&str> = task["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["blueprint", "code", "debug", "preview"]);
    assert_eq!(task["checks"][0]["name"], "add");
    assert_eq!(task["checks"][0]["status"], "fixed");
    assert_eq!(task["checks"][0]["baseline_passed"], false);
    assert_eq!(task["checks"][0]["final_passed"], true);
    let snapshots = task["snapshots"].as_array().unwrap();
    assert!(snapshots.len() >= 4);
    assert!(
        snapshots.iter().all(|s| s["exists"] == true),
        "{snapshots:?}"
    );
    assert_eq!(task["files_changed"][0]["path"], "calc.py");

    let out = kkrun(&fx, &["runs", "show", "latest", "--repo", "repo"]).expect(0);
    assert!(
        out.stdout.starts_with(&format!("run {third} (")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("resume with: kkrun resume {third}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  files changed:\n    modified"),
        "{}",
        out.stdout
    );
    let out = kkrun(&fx, &["runs", "show", &first, "nope", "--repo", "repo"]).expect(2);
    assert!(out.stderr.contains("fix-add"), "{}", out.stderr);
}

#[test]
fn runs_fsck_finds_each_problem_with_its_fix_and_is_clean_after_the_fixes() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let pass = fx.task("fix-add", "", &fix_and_approve());
    let first = run(&fx, &pass, 0);
    let second = run(&fx, &pass, 0);

    let out = kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(0);
    assert_eq!(
        out.stdout,
        format!(
            "checked 2 run directories in {}: no problems\n",
            runs_dir(&fx).display()
        )
    );

    // report.json edited; one of the second run's refs deleted; refs of a
    // run with no directory; a run directory the process never wrote to.
    let report_path = runs_dir(&fx).join(&first).join("report.json");
    let mut edited: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    edited["tasks"][0]["reason"] = "edited by hand".into();
    std::fs::write(&report_path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let second_refs = refs_of(&repo, &second);
    let deleted = second_refs.last().unwrap().clone();
    let commit = git(&repo, &["rev-parse", &deleted]).trim().to_string();
    git(&repo, &["update-ref", "-d", &deleted]);
    let orphan = "20200101T000000Z-0000ff";
    git(
        &repo,
        &[
            "update-ref",
            &format!("refs/kkrun/{orphan}/t/00-base"),
            &commit,
        ],
    );
    let empty = runs_dir(&fx).join("20200101T000000Z-000001");
    std::fs::create_dir_all(&empty).unwrap();

    let out = kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let find = |kind: &str| -> String {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{kind}: ")))
            .unwrap_or_else(|| panic!("no {kind} in:\n{}", out.stdout))
            .to_string()
    };
    let disagrees = find("report_disagrees");
    assert!(
        disagrees.ends_with(&format!(
            "(fix: kkrun report rebuild {})",
            runs_dir(&fx).join(&first).display()
        )),
        "{disagrees}"
    );
    let missing = find("ref_missing");
    assert!(
        missing.contains(&deleted)
            && missing.ends_with(&format!("(fix: git -C repo update-ref {deleted} {commit})")),
        "{missing}"
    );
    assert!(find("orphan_refs").contains(&format!("refs/kkrun/{orphan}/")));
    assert!(find("no_events").contains("20200101T000000Z-000001"));
    assert!(
        lines.last().unwrap().ends_with(": 4 problems"),
        "{}",
        out.stdout
    );

    let doc = kkrun(&fx, &["runs", "fsck", "--json", "--repo", "repo"])
        .expect(1)
        .json();
    assert_eq!(doc["checked"], 3);
    let kinds: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");

    // The fixes it printed, run as printed.
    kkrun(
        &fx,
        &[
            "report",
            "rebuild",
            runs_dir(&fx).join(&first).to_str().unwrap(),
        ],
    )
    .expect(0);
    git(&repo, &["update-ref", &deleted, &commit]);
    git(
        &repo,
        &[
            "update-ref",
            "-d",
            &format!("refs/kkrun/{orphan}/t/00-base"),
        ],
    );
    std::fs::remove_dir(&empty).unwrap();
    kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(0);

    // A torn last line and a missing run.finished: resume is the fix.
    let events = runs_dir(&fx).join(&second).join("events.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    let cut: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"run.finished\""))
        .collect();
    std::fs::write(&events, format!("{}\n{{\"ts\"", cut.join("\n"))).unwrap();
    let out = kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(1);
    assert!(
        out.stdout.lines().any(|l| l.starts_with("torn_last_line: ")
            && l.ends_with(&format!("(fix: kkrun resume {second})"))),
        "{}",
        out.stdout
    );
}

#[test]
fn runs_gc_removes_directories_refs_together_and_keeps_latest() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let pass = fx.task("fix-add", "", &fix_and_approve());
    let first = run(&fx, &pass, 0);
    let second = run(&fx, &pass, 0);
    let third = run(&fx, &pass, 0);

    let doc = kkrun(
        &fx,
        &[
            "runs",
            "gc",
            "--keep-last",
            "1",
            "--dry-run",
            "--json",
            "--repo",
            "repo",
        ],
    )
    .expect(0)
    .json();
    assert_eq!(doc["dry_run"], true);
    let removed: Vec<&str> = doc["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [first.as_str(), second.as_str()]);
    assert!(doc["removed"][0]["refs"].as_u64().unwrap() >= 4);
    assert_eq!(doc["kept"], 1);
    assert!(
        runs_dir(&fx).join(&first).is_dir(),
        "a dry run changes nothing"
    );
    assert!(!refs_of(&repo, &first).is_empty());

    // `kkrun gc` is `kkrun runs gc`: the directory goes with the refs.
    let out = kkrun(&fx, &["gc", "--keep-last", "2", "--repo", "repo"]).expect(0);
    assert!(
        out.stdout.starts_with(&format!(
            "removed run {first} ({} refs, directory {})",
            doc["removed"][0]["refs"],
            runs_dir(&fx).join(&first).display()
        )),
        "{}",
        out.stdout
    );
    assert!(!runs_dir(&fx).join(&first).exists());
    assert!(refs_of(&repo, &first).is_empty());
    assert!(!refs_of(&repo, &second).is_empty());

    // The run `latest` points at stays unless asked for.
    let out = kkrun(&fx, &["runs", "gc", "--keep-last", "0", "--repo", "repo"]).expect(0);
    assert!(
        out.stdout
            .contains(&format!("kept run {third}: `latest` points at it")),
        "{}",
        out.stdout
    );
    assert!(!runs_dir(&fx).join(&second).exists());
    assert!(runs_dir(&fx).join(&third).is_dir());
    assert!(!refs_of(&repo, &third).is_empty());
    kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(0);

    kkrun(
        &fx,
        &[
            "runs",
            "gc",
            "--keep-last",
            "0",
            "--include-latest",
            "--repo",
            "repo",
        ],
    )
    .expect(0);
    assert!(!runs_dir(&fx).join(&third).exists());
    assert!(!runs_dir(&fx).join("latest").exists());
    assert!(refs_of(&repo, &third).is_empty());
    let out = kkrun(&fx, &["runs", "list", "--repo", "repo"]).expect(0);
    assert!(out.stdout.starts_with("no runs in "), "{}", out.stdout);
}

#[test]
fn runs_gc_spares_a_run_whose_process_holds_its_directory() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let pass = fx.task("fix-add", "", &fix_and_approve());
    let first = run(&fx, &pass, 0);
    run(&fx, &pass, 0);
    // The first run is still running: no `run.finished` or report yet, and
    // this process plays its process, holding its lock.
    let first_dir = runs_dir(&fx).join(&first);
    let events = std::fs::read_to_string(first_dir.join("events.jsonl")).unwrap();
    let mut lines: Vec<&str> = events.lines().collect();
    lines.pop();
    std::fs::write(first_dir.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    std::fs::remove_file(first_dir.join("report.json")).unwrap();
    let lock = e2e_support::hold_run_lock(&first_dir, &first);
    let out = kkrun(&fx, &["runs", "gc", "--run", &first, "--repo", "repo"]).expect(0);
    assert!(
        out.stdout.contains(&format!(
            "kept run {first}: it is running (process {} holds its run directory)",
            std::process::id()
        )),
        "{}",
        out.stdout
    );
    assert!(runs_dir(&fx).join(&first).is_dir());
    assert!(!refs_of(&repo, &first).is_empty());
    let list = kkrun(&fx, &["runs", "list", "--json", "--repo", "repo"])
        .expect(0)
        .json();
    assert_eq!(list["runs"][0]["outcome"], "running", "{list:#}");
    assert_eq!(
        list["runs"][0]["hint"],
        format!("in progress: kkrun run (process {})", std::process::id())
    );
    kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(0);
    drop(lock);
    let list = kkrun(&fx, &["runs", "list", "--json", "--repo", "repo"])
        .expect(0)
        .json();
    assert_eq!(list["runs"][0]["outcome"], "incomplete", "{list:#}");
    kkrun(&fx, &["runs", "fsck", "--repo", "repo"]).expect(1);
    kkrun(&fx, &["runs", "gc", "--run", &first, "--repo", "repo"]).expect(0);
    assert!(!runs_dir(&fx).join(&first).exists());
    assert!(refs_of(&repo, &first).is_empty());
}

#[test]
fn latest_works_as_a_run_id_and_diff_after_rollback_shows_the_result() {
    let fx = Fixture::new();
    let repo = fx.repo();
    let pass = fx.task("fix-add", "", &fix_and_approve());
    let id = run(&fx, &pass, 0);

    let by_latest = kkrun(&fx, &["diff", "latest", "fix-add", "--repo", "repo"]).expect(0);
    let by_id = kkrun(&fx, &["diff", &id, "fix-add", "--repo", "repo"]).expect(0);
    assert_eq!(by_latest.stdout, by_id.stdout);
    assert!(
        by_latest
            .stdout
            .contains("-    return a - b\n+    return a + b"),
        "{}",
        by_latest.stdout
    );

    // --restore always put the base back; roll forward to the result, then
    // back to the base: two safety snapshots are appended.
    kkrun(
        &fx,
        &[
            "rollback", "latest", "fix-add", "--to", "preview", "--repo", "repo",
        ],
    )
    .expect(0);
    let out = kkrun(
        &fx,
        &[
            "rollback", "latest", "fix-add", "--to", "base", "--repo", "repo",
        ],
    )
    .expect(0);
    assert!(
        out.stdout
            .contains(&format!("kkrun rollback {id} fix-add --to")),
        "{}",
        out.stdout
    );
    let after = kkrun(&fx, &["diff", &id, "fix-add", "--repo", "repo"]).expect(0);
    assert_eq!(
        after.stdout, by_id.stdout,
        "the task's result, not the safety snapshot"
    );

    let doc = kkrun(&fx, &["snapshots", "latest", "--json", "--repo", "repo"])
        .expect(0)
        .json();
    assert_eq!(doc["runs"][0]["run_id"], id.as_str());
    let task = &doc["runs"][0]["tasks"][0];
    assert_eq!(task["task"], "fix-add");
    assert_eq!(task["workspace"], ".");
    let labels: Vec<&str> = task["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels.first(), Some(&"00-base"));
    let n = labels.len();
    assert!(
        labels[n - 2].ends_with("-safety") && labels[n - 1].ends_with("-safety"),
        "{labels:?}"
    );
    let all = kkrun(&fx, &["snapshots", "--json", "--repo", "repo"])
        .expect(0)
        .json();
    assert_eq!(all["runs"].as_array().unwrap().len(), 1);

    // export, too, takes `latest`.
    kkrun(
        &fx,
        &[
            "export",
            "latest",
            "fix-add",
            "--branch",
            "kkrun/fix-add",
            "--repo",
            "repo",
        ],
    )
    .expect(0);
    assert!(git(&repo, &["branch", "--list", "kkrun/fix-add"]).contains("kkrun/fix-add"));

    // Every file of the run directory has the same mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = runs_dir(&fx).join(&id);
        let mode = |name: &str| {
            std::fs::metadata(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .permissions()
                .mode()
                & 0o777
        };
        let events = mode("events.jsonl");
        for name in [
            "report.json",
            "junit.xml",
            "summary.md",
            "fix-add/final.patch",
            "fix-add/plan.json",
            "fix-add/transcript.jsonl",
        ] {
            assert_eq!(mode(name), events, "{name} vs events.jsonl");
        }
        assert_ne!(
            events & 0o044,
            0,
            "readable by others under the usual umask"
        );
    }
}

#[test]
fn bare_kkrun_validate_json_and_tidy_paths() {
    let fx = Fixture::new();
    let out = kkrun(&fx, &[]).expect(2);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("Commands:") && out.stderr.contains("  runs "),
        "{}",
        out.stderr
    );

    let task = fx.task("fix-add", "", &fix_and_approve());
    let doc = kkrun(&fx, &["validate", "--json", &task]).expect(0).json();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["files"][0]["file"], task.as_str());
    assert_eq!(doc["files"][0]["tasks"][0], "fix-add");

    let bad = fx.root().join("tasks/bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nname: bad\nprompt: x\nworkspace: ./nope\nmodel: replay:x.jsonl\nchecks:\n  - name: a\n    run: \"true\"\n",
    )
    .unwrap();
    let out = kkrun(&fx, &["validate", "././tasks/bad.yaml"]).expect(2);
    assert!(!out.stderr.contains("././"), "{}", out.stderr);
    assert!(!out.stderr.contains("`./tasks"), "{}", out.stderr);
    assert!(
        out.stderr.contains("--> tasks/bad.yaml:4:12"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(looked for `tasks/nope`)"),
        "{}",
        out.stderr
    );
    let doc = kkrun(&fx, &["validate", "--json", "./tasks/bad.yaml"])
        .expect(2)
        .json();
    assert_eq!(doc["valid"], false);
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors[0]["file"], "tasks/bad.yaml");
    assert_eq!(errors[0]["line"], 4);
    assert_eq!(errors[0]["column"], 12);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

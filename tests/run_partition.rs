//! `--partition hash:K/N | slice:K/N` on the README's example task set
//! (`tasks/`, replayed offline from `tasks/cassettes`): a shard runs only its
//! tasks and its report records the partition and the full task count; a
//! bad value is refused naming the flag, with nothing run or written.

mod e2e_support;

use std::path::Path;

use e2e_support::{Run, committed_schema_errors, example_checkout, kkrun};
use serde_json::Value;

/// The example set in run order.
const ALL: [&str; 3] = ["week-date-errors", "fix-iso-weeks", "hunt-paging"];

/// Runs one shard of `tasks/` into `.kkrun/<out>` (inside the work tree's
/// excluded directory, like the default run directories).
fn shard(dir: &Path, partition: &str, out: &str) -> Run {
    Run::capture(
        kkrun(
            dir,
            &[
                "run",
                "--partition",
                partition,
                "--out",
                &format!(".kkrun/{out}"),
                "--restore",
                "always",
                "tasks/",
            ],
        ),
        &dir.join(".kkrun").join(out),
    )
}

fn names(report: &Value) -> Vec<String> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_slice_shard_runs_its_round_robin_share_and_records_the_partition() {
    let dir = example_checkout();
    let run = shard(dir.path(), "slice:1/2", "s1");
    // The bug hunt (in slice 1) fails by design.
    run.expect_code(1);
    let report = run.report();
    assert_eq!(names(&report), ["week-date-errors", "hunt-paging"]);
    assert_eq!(report["totals"]["tasks"], 2);
    let partition = &report["partition"];
    assert_eq!(partition["spec"], "slice:1/2");
    assert_eq!(partition["kind"], "slice");
    assert_eq!(partition["shard"], 1);
    assert_eq!(partition["shards"], 2);
    assert_eq!(partition["total_tasks"], 3);
    assert_eq!(partition["all_tasks"], serde_json::json!(ALL));
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());
    // The stream says it first, so the record has it too.
    let started = &run.events()[0];
    assert_eq!(started["type"], "run.started");
    assert_eq!(started["partition"]["spec"], "slice:1/2");
    assert_eq!(started["tasks"].as_array().unwrap().len(), 2);
    assert!(
        run.file("summary.md")
            .contains("Shard 1 of 2 (`--partition slice:1/2`): 2 of 3 tasks"),
        "{}",
        run.file("summary.md")
    );

    let other = shard(dir.path(), "slice:2/2", "s2");
    other.expect_code(0);
    assert_eq!(names(&other.report()), ["fix-iso-weeks"]);
}

#[test]
fn hash_shards_cover_every_task_once_and_a_shard_may_be_empty() {
    let dir = example_checkout();
    let mut seen = Vec::new();
    let mut empty = 0;
    for k in 1..=4 {
        let partition = format!("hash:{k}/4");
        let run = shard(dir.path(), &partition, &format!("h{k}"));
        let report = run.report();
        assert_eq!(report["partition"]["total_tasks"], 3, "{partition}");
        let tasks = names(&report);
        if tasks.is_empty() {
            // Four shards, three tasks: an empty shard still leaves a
            // complete run directory for the merge, and passes.
            empty += 1;
            run.expect_code(0);
        }
        seen.extend(tasks);
    }
    seen.sort();
    let mut all = ALL.map(String::from).to_vec();
    all.sort();
    assert_eq!(seen, all);
    assert!(empty >= 1);
}

#[test]
fn bad_partitions_are_refused_naming_the_flag_and_nothing_runs() {
    let dir = example_checkout();
    for (value, says) in [
        ("3/2", "names no kind"),
        (
            "foo:1/2",
            "unknown partition kind `foo` (choose from: hash, slice)",
        ),
        ("0/2", "names no kind"),
        ("hash:0/2", "shard 0 of 2 does not exist"),
        ("slice:3/2", "shard 3 of 2 does not exist"),
        ("hash:1/0", "at least 1"),
        ("hash:one/2", "not K/N with whole numbers"),
    ] {
        let output = kkrun(dir.path(), &["run", "--partition", value, "tasks/"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--partition"), "{value}: {stderr}");
        assert!(stderr.contains(says), "{value}: {stderr}");
        assert!(output.stdout.is_empty(), "{value}");
    }
    assert!(
        !dir.path().join(".kkrun").exists(),
        "nothing may be written"
    );
    assert_eq!(e2e_support::git(dir.path(), &["status", "--porcelain"]), "");
}

#[test]
fn a_dry_run_shows_the_shard() {
    let dir = example_checkout();
    let output = kkrun(
        dir.path(),
        &["run", "--dry-run", "--partition", "slice:2/2", "tasks/"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("partition slice:2/2: 1 of 3 task(s)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("fix-iso-weeks"), "{stdout}");
    assert!(!stdout.contains("hunt-paging"), "{stdout}");
}

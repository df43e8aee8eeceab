//! `kkrun report merge DIR... --out DIR` on real shard runs of the README's
//! example task set (`tasks/`, replayed offline from `tasks/cassettes`): the
//! merge gives the outcome and counts of one unsharded run, is rebuilt byte
//! for byte from its own events, combines the shards' exit codes, reports
//! tasks no shard ran, and refuses (exit 2, writing nothing) shards of
//! different task sets or kkrun versions and a task run by two shards.

mod e2e_support;

use std::path::{Path, PathBuf};

use e2e_support::{Run, committed_schema_errors, example_checkout, kkrun};
use serde_json::Value;

/// Runs `kkrun run ARGS... --out .kkrun/<out> --restore always` in `dir`.
fn run(dir: &Path, out: &str, args: &[&str]) -> Run {
    let out_arg = format!(".kkrun/{out}");
    let mut all = vec!["run", "--out", &out_arg, "--restore", "always"];
    all.extend_from_slice(args);
    Run::capture(kkrun(dir, &all), &dir.join(".kkrun").join(out))
}

/// Runs `kkrun report merge SHARDS... --out .kkrun/<out>` in `dir`.
fn merge(dir: &Path, shards: &[&str], out: &str) -> Run {
    let dirs: Vec<String> = shards.iter().map(|s| format!(".kkrun/{s}")).collect();
    let out_arg = format!(".kkrun/{out}");
    let mut args = vec!["report", "merge"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--out", &out_arg]);
    Run::capture(kkrun(dir, &args), &dir.join(".kkrun").join(out))
}

/// Per task: name, outcome, and each check's status.
fn outcomes(report: &Value) -> Vec<(String, String, Vec<String>)> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
                t["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["status"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// The testcases of a junit.xml (name and classname attributes), sorted,
/// and the `<testsuites>` counts.
fn junit_shape(xml: &str) -> (Vec<String>, String) {
    let mut cases: Vec<String> = xml
        .lines()
        .filter(|l| l.trim_start().starts_with("<testcase "))
        .map(|l| {
            let name = attr(l, "name");
            let class = attr(l, "classname");
            format!("{class}::{name}")
        })
        .collect();
    cases.sort();
    let suites = xml
        .lines()
        .find(|l| l.trim_start().starts_with("<testsuites"))
        .unwrap();
    let counts = ["tests", "failures", "errors"]
        .map(|a| format!("{a}={}", attr(suites, a)))
        .join(" ");
    (cases, counts)
}

fn attr(line: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let start = line.find(&key).map(|i| i + key.len()).unwrap_or(0);
    line[start..].split('"').next().unwrap_or("").to_string()
}

/// Two hash shards of the example set, each a real run.
fn two_shards(dir: &Path) -> (Run, Run) {
    let first = run(dir, "s1", &["--partition", "hash:1/2", "tasks/"]);
    let second = run(dir, "s2", &["--partition", "hash:2/2", "tasks/"]);
    (first, second)
}

#[test]
fn merged_shards_give_the_outcome_and_counts_of_one_unsharded_run() {
    let dir = example_checkout();
    let whole = run(dir.path(), "whole", &["tasks/"]);
    whole.expect_code(1);
    let (first, second) = two_shards(dir.path());
    assert!(first.report()["tasks"].as_array().unwrap().len() < 3);
    assert!(second.report()["tasks"].as_array().unwrap().len() < 3);

    // Given in the other order: the result is the same.
    let merged = merge(dir.path(), &["s2", "s1"], "merged");
    merged.expect_code(1);
    assert!(
        merged.stdout().contains(
            "merged 2 run directories into .kkrun/merged: 2 of 3 task(s) passed, exit code 1"
        ),
        "{}",
        merged.stdout()
    );
    let report = merged.report();
    let whole_report = whole.report();
    assert_eq!(outcomes(&report), outcomes(&whole_report));
    assert_eq!(report["exit_code"], whole_report["exit_code"]);
    assert_eq!(report["totals"]["tasks"], 3);
    assert_eq!(
        report["totals"]["outcomes"],
        whole_report["totals"]["outcomes"]
    );
    assert_eq!(report["totals"]["usage"], whole_report["totals"]["usage"]);
    assert!(report.get("partition").is_none());
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());

    let shards = report["merged"]["shards"].as_array().unwrap();
    let partitions: Vec<&str> = shards
        .iter()
        .map(|s| s["partition"].as_str().unwrap())
        .collect();
    assert_eq!(partitions, ["hash:1/2", "hash:2/2"], "in shard order");
    assert_eq!(shards[0]["run_id"], first.report()["run_id"]);
    assert_eq!(shards[0]["exit_code"], first.code());
    assert_eq!(shards[1]["exit_code"], second.code());
    assert_eq!(report["merged"]["missing_tasks"], serde_json::json!([]));

    let shape = junit_shape(&merged.file("junit.xml"));
    assert!(
        shape.0.contains(&"fix-iso-weeks::unit".to_string()),
        "{shape:?}"
    );
    assert!(shape.1.starts_with("tests=8 failures=1"), "{shape:?}");
    assert_eq!(shape, junit_shape(&whole.file("junit.xml")));
    let summary = merged.file("summary.md");
    assert!(
        summary.contains("Merged from 2 run directories"),
        "{summary}"
    );
    // Commands that need the snapshots name the shard's run, which has them.
    let shard_run = first.report()["run_id"].as_str().unwrap().to_string();
    let shard_task = first.report()["tasks"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        summary.contains(&format!("`kkrun diff {shard_run} {shard_task}`")),
        "{summary}"
    );
    // The tasks' files came along, so the report's artifact paths resolve.
    for task in report["tasks"].as_array().unwrap() {
        let patch = task["artifacts"]["patch"].as_str().unwrap();
        assert!(merged.out.join(patch).is_file(), "{patch}");
    }
    // A bug hunt's findings are in the merged SARIF.
    assert!(merged.file("findings.sarif").contains("off-by-one"));

    // The merged directory is a run directory: its reports come from its
    // events.jsonl, byte for byte.
    let written: Vec<Vec<u8>> = ["report.json", "junit.xml", "summary.md"]
        .iter()
        .map(|f| std::fs::read(merged.out.join(f)).unwrap())
        .collect();
    let output = kkrun(dir.path(), &["report", "rebuild", ".kkrun/merged"])
        .output()
        .unwrap();
    assert!(output.status.success());
    for (name, before) in ["report.json", "junit.xml", "summary.md"]
        .iter()
        .zip(&written)
    {
        assert!(
            &std::fs::read(merged.out.join(name)).unwrap() == before,
            "{name} changed on rebuild"
        );
    }
}

#[test]
fn a_task_no_shard_ran_is_reported_and_the_exit_codes_combine() {
    let dir = example_checkout();
    // slice:2/2 is fix-iso-weeks alone, which passes (exit 0).
    let lone = run(dir.path(), "s2", &["--partition", "slice:2/2", "tasks/"]);
    lone.expect_code(0);
    let merged = merge(dir.path(), &["s2"], "merged");
    // Two tasks of the set ran nowhere: they are errors, and error (3)
    // outranks the shard's success.
    merged.expect_code(3);
    assert!(
        merged.stderr().contains(
            "2 task(s) of the full set ran in no shard, reported as error: week-date-errors, hunt-paging"
        ),
        "{}",
        merged.stderr()
    );
    let report = merged.report();
    assert_eq!(
        report["merged"]["missing_tasks"],
        serde_json::json!(["week-date-errors", "hunt-paging"])
    );
    let got: Vec<(String, String)> = outcomes(&report)
        .into_iter()
        .map(|(name, outcome, _)| (name, outcome))
        .collect();
    assert_eq!(
        got,
        [
            ("week-date-errors".to_string(), "error".to_string()),
            ("fix-iso-weeks".to_string(), "passed".to_string()),
            ("hunt-paging".to_string(), "error".to_string()),
        ]
    );
    assert!(
        report["tasks"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("missing from every shard")
    );
    assert!(
        merged
            .file("summary.md")
            .contains("**Missing from every shard**")
    );
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());

    // With the other slice the set is complete: a failed task (1) over a
    // passed shard (0) gives 1.
    run(dir.path(), "s1", &["--partition", "slice:1/2", "tasks/"]).expect_code(1);
    let merged = merge(dir.path(), &["s1", "s2"], "merged");
    merged.expect_code(1);
    assert_eq!(
        merged.report()["merged"]["missing_tasks"],
        serde_json::json!([])
    );
}

/// Asserts a refused merge: exit 2, the message, and no output directory.
fn assert_refused(merged: &Run, says: &str) {
    merged.expect_code(2);
    assert!(merged.stderr().contains(says), "{}", merged.stderr());
    assert!(!merged.out.exists(), "a refused merge must write nothing");
}

#[test]
fn shards_of_different_task_sets_are_refused() {
    let dir = example_checkout();
    run(dir.path(), "s1", &["--partition", "hash:1/2", "tasks/"]);
    // The second shard was given one task file, not the whole directory.
    run(
        dir.path(),
        "s2",
        &["--partition", "hash:2/2", "tasks/fix-iso-weeks.yaml"],
    );
    let merged = merge(dir.path(), &["s1", "s2"], "merged");
    assert_refused(&merged, "come from different task sets");
    assert!(
        merged.stderr().contains(
            "(only in the first: hunt-paging, week-date-errors; only in the second: none)"
        ),
        "{}",
        merged.stderr()
    );
}

#[test]
fn a_task_run_by_two_shards_is_refused() {
    let dir = example_checkout();
    // hash and slice shards of one set overlap.
    run(dir.path(), "s1", &["--partition", "slice:1/2", "tasks/"]);
    run(dir.path(), "s2", &["--partition", "slice:2/2", "tasks/"]);
    let merged = merge(dir.path(), &["s1", "s2", "s1"], "merged");
    assert_refused(&merged, "was run by both .kkrun/s1 and .kkrun/s1");
    run(dir.path(), "h", &["--partition", "hash:1/2", "tasks/"]);
    let merged = merge(dir.path(), &["s1", "s2", "h"], "merged");
    assert_refused(&merged, "task `week-date-errors` was run by both");
}

#[test]
fn shards_of_different_kkrun_versions_are_refused() {
    let dir = example_checkout();
    let (first, _second) = two_shards(dir.path());
    // The same shard as an older kkrun would have written it.
    let old: PathBuf = dir.path().join(".kkrun/old");
    e2e_support::copy_dir(&first.out, &old);
    let events = std::fs::read_to_string(old.join("events.jsonl")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let edited = events.replacen(
        &format!("\"kkrun_version\":\"{version}\""),
        "\"kkrun_version\":\"0.0.1\"",
        1,
    );
    assert_ne!(edited, events);
    std::fs::write(old.join("events.jsonl"), edited).unwrap();
    let merged = merge(dir.path(), &["old", "s2"], "merged");
    assert_refused(&merged, "written by different kkrun versions");
    assert!(
        merged.stderr().contains(".kkrun/old (kkrun 0.0.1)"),
        "{}",
        merged.stderr()
    );
}

#[test]
fn a_run_directory_is_never_the_merge_output() {
    let dir = example_checkout();
    let (first, _second) = two_shards(dir.path());
    let before = first.file("report.json");
    let merged = merge(dir.path(), &["s1", "s2"], "s1");
    merged.expect_code(2);
    assert!(
        merged
            .stderr()
            .contains("that is the run directory .kkrun/s1"),
        "{}",
        merged.stderr()
    );
    assert_eq!(first.file("report.json"), before);
    // A directory of other files is refused too; an earlier merge is
    // replaced whole.
    std::fs::create_dir_all(dir.path().join(".kkrun/mine")).unwrap();
    std::fs::write(dir.path().join(".kkrun/mine/notes.txt"), "keep").unwrap();
    let merged = merge(dir.path(), &["s1", "s2"], "mine");
    merged.expect_code(2);
    assert!(
        merged.stderr().contains("not an earlier merge"),
        "{}",
        merged.stderr()
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join(".kkrun/mine"))
            .unwrap()
            .count(),
        1
    );
    merge(dir.path(), &["s1", "s2"], "merged").expect_code(1);
    let again = merge(dir.path(), &["s1"], "merged");
    again.expect_code(3);
    let kept: Vec<String> = std::fs::read_dir(&again.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.contains('.'))
        .collect();
    let ran: Vec<String> = first.report()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let mut kept = kept;
    kept.sort();
    let mut ran = ran;
    ran.sort();
    assert_eq!(
        kept, ran,
        "only the tasks of the new merge have directories"
    );
    // A directory that is not a run directory is refused by name.
    let output = kkrun(
        dir.path(),
        &["report", "merge", "tasks", "--out", ".kkrun/m2"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("tasks/events.jsonl: no such file"));
    assert!(!dir.path().join(".kkrun/m2").exists());
}

#[test]
fn a_killed_shard_merges_as_its_stream_says_and_interrupted_outranks_failed() {
    let dir = example_checkout();
    // slice:1/2 is week-date-errors (passes) and hunt-paging (fails): exit 1.
    let first = run(dir.path(), "s1", &["--partition", "slice:1/2", "tasks/"]);
    first.expect_code(1);
    let second = run(dir.path(), "s2", &["--partition", "slice:2/2", "tasks/"]);
    second.expect_code(0);
    // Cut the second shard's stream inside its task, as a SIGKILL would.
    let events = second.file("events.jsonl");
    let lines: Vec<&str> = events.lines().collect();
    let code_started = lines
        .iter()
        .position(|l| l.contains(r#""type":"stage.started""#) && l.contains(r#""stage":"code""#))
        .unwrap();
    let killed = dir.path().join(".kkrun/killed");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(
        killed.join("events.jsonl"),
        format!("{}\n", lines[..=code_started].join("\n")),
    )
    .unwrap();

    let merged = merge(dir.path(), &["s1", "killed"], "merged");
    // interrupted (130) > failed (1) > passed (0).
    merged.expect_code(130);
    assert!(
        merged
            .stderr()
            .contains(".kkrun/killed: the shard's events end without run.finished"),
        "{}",
        merged.stderr()
    );
    let report = merged.report();
    let got: Vec<(String, String)> = outcomes(&report)
        .into_iter()
        .map(|(name, outcome, _)| (name, outcome))
        .collect();
    assert_eq!(
        got,
        [
            ("week-date-errors".to_string(), "passed".to_string()),
            ("fix-iso-weeks".to_string(), "interrupted".to_string()),
            ("hunt-paging".to_string(), "failed".to_string()),
        ]
    );
    let shards = report["merged"]["shards"].as_array().unwrap();
    assert_eq!(shards[1]["exit_code"], Value::Null);
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());
}

#[test]
fn a_task_name_that_is_a_path_is_refused() {
    let dir = example_checkout();
    let lone = run(dir.path(), "s2", &["--partition", "slice:2/2", "tasks/"]);
    lone.expect_code(0);
    // An artifact edited to name a task outside the merged directory.
    let events = lone.file("events.jsonl");
    let first = events.lines().next().unwrap();
    let edited = first.replacen(
        r#""tasks":["fix-iso-weeks"]"#,
        r#""tasks":["../escape"]"#,
        1,
    );
    assert_ne!(edited, first);
    std::fs::write(
        lone.out.join("events.jsonl"),
        events.replacen(first, &edited, 1),
    )
    .unwrap();
    let merged = merge(dir.path(), &["s2"], "merged");
    assert_refused(
        &merged,
        "names the task `../escape`, which is not a plain file name",
    );
    assert!(!dir.path().join(".kkrun/escape").exists());
}

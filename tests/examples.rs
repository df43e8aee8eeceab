//! The example tasks in `tasks/` run offline through every stage, replaying
//! their committed cassettes, on a copy of the example repository; and the
//! ignored test that (re)records those cassettes.
//!
//! The cassettes are recorded, not hand-written: kkrun runs the examples
//! against a local OpenAI-compatible server that streams the scripted model
//! turns below, and `--record` stores kkrun's real requests and the streamed
//! responses. After a change to prompts or tools, re-record them with
//! `cargo test --test examples -- --ignored record_example_cassettes`.

mod e2e_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use e2e_support::{example_checkout, git, kkrun, snapshot_refs, stage_ends};
use kkrun::provider::Usage;
use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn, encode_openai_sse};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join(".kkrun/runs/latest/report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_example_tasks_validate() {
    let dir = example_checkout();
    let output = kkrun(dir.path(), &["validate", "tasks/"]).output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

#[test]
fn the_readme_example_runs_offline_through_all_four_stages() {
    let dir = example_checkout();
    let output = kkrun(
        dir.path(),
        &["tasks/fix-iso-weeks.yaml", "--restore", "always"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = report(dir.path());
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "passed");
    assert_eq!(
        stage_ends(&report, 0),
        [
            "blueprint:finished",
            "code:finished",
            "debug:finished",
            "preview:finished"
        ]
    );
    assert_eq!(task["checks"][0]["status"], "fixed");
    assert_eq!(task["review"]["verdict"], "approve");
    // --restore always: the example repository is as it was, the change is in the patch.
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");
    let patch = std::fs::read_to_string(
        dir.path()
            .join(".kkrun/runs/latest/fix-iso-weeks/final.patch"),
    )
    .unwrap();
    assert!(patch.contains("+_WEEK"), "{patch}");
    assert_eq!(
        snapshot_refs(dir.path()),
        [
            "00-base",
            "01-blueprint",
            "02-code",
            "03-debug",
            "04-preview",
            "05-safety"
        ]
    );
}

#[test]
fn every_example_task_runs_offline_from_the_same_base() {
    let dir = example_checkout();
    let output = kkrun(dir.path(), &["run", "tasks/"]).output().unwrap();
    // The bug hunt finds a new confirmed bug, which fails it by design.
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = report(dir.path());
    let outcomes: Vec<(&str, &str)> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("week-date-errors", "passed"),
            ("fix-iso-weeks", "passed"),
            ("hunt-paging", "failed")
        ]
    );
}

#[test]
fn the_bug_hunt_example_runs_offline_and_writes_sarif() {
    let dir = example_checkout();
    let output = kkrun(
        dir.path(),
        &["tasks/hunt-paging.yaml", "--restore", "always"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = report(dir.path());
    let task = &report["tasks"][0];
    assert_eq!(task["outcome"], "failed");
    let findings: Vec<(&str, &str)> = task["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule_id"].as_str().unwrap(),
                f["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        findings,
        [
            ("off-by-one", "confirmed"),
            ("short-last-page", "withdrawn")
        ]
    );
    let sarif: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".kkrun/runs/latest/findings.sarif")).unwrap(),
    )
    .unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "off-by-one");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "examples/paging/paging.py"
    );
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 1);
    // The hunt changed nothing the user keeps: its reproduction test is in
    // the snapshots and the patch only.
    assert_eq!(git(dir.path(), &["status", "--porcelain"]), "");

    // Tomorrow's run with tonight's findings as the baseline passes.
    let output = kkrun(
        dir.path(),
        &[
            "tasks/hunt-paging.yaml",
            "--restore",
            "always",
            "--baseline-findings",
            ".kkrun/runs/latest/findings.sarif",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let tomorrow = self::report(dir.path());
    assert_eq!(
        tomorrow["tasks"][0]["findings"][0]["baseline_state"],
        "known"
    );
}

fn turn(
    calls: Vec<(&str, &str, Value)>,
    text: Option<&str>,
    input_tokens: u64,
    output_tokens: u64,
) -> ScriptedTurn {
    let mut turn = ScriptedTurn::tool_calls(
        calls
            .into_iter()
            .map(|(id, name, args)| ScriptedToolCall::new(id, name, &args))
            .collect(),
    );
    turn.text = text.map(str::to_string);
    turn.with_usage(Usage {
        input_tokens,
        cached_input_tokens: 0,
        output_tokens,
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    })
}

/// The model's side of `fix-iso-weeks`: the first attempt parses the week
/// with `strptime`'s `%W`, which is not the ISO week (a classic mistake);
/// debug sees the failing tests and switches to `date.fromisocalendar`.
fn fix_iso_weeks_turns() -> Vec<ScriptedTurn> {
    vec![
        turn(
            vec![("call_b1", "grep", json!({"pattern": "_ORDINAL|_CALENDAR"}))],
            Some(
                "The context shows dates.py and its tests. Let me see where the patterns are used.",
            ),
            2400,
            60,
        ),
        turn(
            vec![(
                "call_b2",
                "submit_plan",
                json!({
                    "goal": "Make parse_date accept ISO 8601 week dates (YYYY-Www-D) as documented, so test_dates.py passes.",
                    "steps": [
                        "Add a compiled pattern _WEEK for YYYY-Www-D next to _CALENDAR and _ORDINAL.",
                        "In parse_date, match _WEEK after the ordinal form and build the date from year, week and weekday.",
                        "Keep the ValueError for anything else."
                    ],
                    "files": ["dates.py"],
                    "risks": ["Week 1 of an ISO year can start in the previous calendar year."],
                    "verification": "python3 test_dates.py: test_iso_week_date and test_iso_week_date_first_week must pass, the others must keep passing."
                }),
            )],
            None,
            2700,
            220,
        ),
        turn(
            vec![(
                "call_c1",
                "edit_file",
                json!({
                    "path": "dates.py",
                    "old": "_ORDINAL = re.compile(r\"^(\\d{4})-(\\d{3})$\")\n",
                    "new": "_ORDINAL = re.compile(r\"^(\\d{4})-(\\d{3})$\")\n_WEEK = re.compile(r\"^(\\d{4})-W(\\d{2})-([1-7])$\")\n"
                }),
            )],
            Some("Adding the week pattern first."),
            2300,
            120,
        ),
        turn(
            vec![(
                "call_c2",
                "edit_file",
                json!({
                    "path": "dates.py",
                    "old": "    raise ValueError(f\"not an ISO 8601 date: {text!r}\")\n",
                    "new": "    match = _WEEK.match(text)\n    if match:\n        return datetime.datetime.strptime(text, \"%Y-W%W-%w\").date()\n    raise ValueError(f\"not an ISO 8601 date: {text!r}\")\n"
                }),
            )],
            None,
            2600,
            130,
        ),
        turn(
            vec![(
                "call_c3",
                "finish_stage",
                json!({"summary": "Added _WEEK and a branch in parse_date that parses YYYY-Www-D with strptime."}),
            )],
            None,
            2800,
            60,
        ),
        turn(
            vec![(
                "call_d1",
                "edit_file",
                json!({
                    "path": "dates.py",
                    "old": "        return datetime.datetime.strptime(text, \"%Y-W%W-%w\").date()\n",
                    "new": "        year, week, weekday = (int(part) for part in match.groups())\n        return datetime.date.fromisocalendar(year, week, weekday)\n"
                }),
            )],
            Some(
                "strptime's %W counts weeks from the first Monday of the calendar year and %w numbers Sunday 0, so neither is ISO 8601. date.fromisocalendar implements ISO weeks exactly.",
            ),
            3100,
            180,
        ),
        turn(vec![("call_d2", "run_checks", json!({}))], None, 3400, 20),
        turn(
            vec![(
                "call_d3",
                "finish_stage",
                json!({"summary": "Replaced strptime(%W/%w), which is not ISO 8601, with date.fromisocalendar; all tests pass."}),
            )],
            None,
            3600,
            50,
        ),
        turn(
            vec![(
                "call_p1",
                "submit_review",
                json!({
                    "verdict": "approve",
                    "summary": "`parse_date` now accepts ISO 8601 week dates (`2026-W48-2`). A new `_WEEK` pattern matches `YYYY-Www-D` with weekday 1–7, and `datetime.date.fromisocalendar` builds the date, which handles weeks that start in the previous year (`2026-W01-1` is 2025-12-29). `python3 test_dates.py` failed on the base and passes now; no test was changed.",
                    "risks": ["Out-of-range weeks such as W54 raise fromisocalendar's own ValueError message."]
                }),
            )],
            None,
            4200,
            190,
        ),
    ]
}

/// The model's side of `week-date-errors`: it adds week parsing with a
/// range check and a test for it; the checks pass after code, so debug is
/// skipped.
fn week_date_errors_turns() -> Vec<ScriptedTurn> {
    vec![
        turn(
            vec![(
                "call_b1",
                "submit_plan",
                json!({
                    "goal": "Accept ISO week dates in parse_date and raise a ValueError naming the week when it does not exist in that year.",
                    "steps": [
                        "Add a _WEEK pattern for YYYY-Www-D.",
                        "Build the date with date.fromisocalendar; turn its ValueError into one naming the week (W54).",
                        "Add test_iso_week_out_of_range to test_dates.py."
                    ],
                    "files": ["dates.py", "test_dates.py"],
                    "risks": [],
                    "verification": "python3 test_dates.py passes, including the new test."
                }),
            )],
            Some("The context has everything needed."),
            2500,
            200,
        ),
        turn(
            vec![
                (
                    "call_c1",
                    "edit_file",
                    json!({
                        "path": "dates.py",
                        "old": "_ORDINAL = re.compile(r\"^(\\d{4})-(\\d{3})$\")\n",
                        "new": "_ORDINAL = re.compile(r\"^(\\d{4})-(\\d{3})$\")\n_WEEK = re.compile(r\"^(\\d{4})-W(\\d{2})-([1-7])$\")\n"
                    }),
                ),
                (
                    "call_c2",
                    "edit_file",
                    json!({
                        "path": "dates.py",
                        "old": "    raise ValueError(f\"not an ISO 8601 date: {text!r}\")\n",
                        "new": "    match = _WEEK.match(text)\n    if match:\n        year, week, weekday = (int(part) for part in match.groups())\n        try:\n            return datetime.date.fromisocalendar(year, week, weekday)\n        except ValueError:\n            raise ValueError(f\"week W{week:02d} does not exist in {year}: {text!r}\") from None\n    raise ValueError(f\"not an ISO 8601 date: {text!r}\")\n"
                    }),
                ),
                (
                    "call_c3",
                    "edit_file",
                    json!({
                        "path": "test_dates.py",
                        "old": "def test_rejects_garbage():\n",
                        "new": "def test_iso_week_out_of_range():\n    try:\n        parse_date(\"2026-W54-1\")\n    except ValueError as err:\n        assert \"W54\" in str(err), str(err)\n        return\n    raise AssertionError(\"week 54 was accepted\")\n\n\ndef test_rejects_garbage():\n"
                    }),
                ),
            ],
            None,
            2600,
            420,
        ),
        turn(
            vec![(
                "call_c4",
                "shell",
                json!({"command": "python3 test_dates.py"}),
            )],
            None,
            3300,
            20,
        ),
        turn(
            vec![(
                "call_c5",
                "finish_stage",
                json!({"summary": "parse_date accepts ISO week dates; a week that does not exist raises ValueError naming it (W54). Added test_iso_week_out_of_range."}),
            )],
            None,
            3500,
            60,
        ),
        turn(
            vec![(
                "call_p1",
                "submit_review",
                json!({
                    "verdict": "approve",
                    "summary": "`parse_date` accepts ISO week dates through `date.fromisocalendar`; for a week that does not exist it raises `ValueError: week W54 does not exist in 2026: '2026-W54-1'`. The new `test_iso_week_out_of_range` covers it, and all tests pass.",
                    "risks": []
                }),
            )],
            None,
            4100,
            150,
        ),
    ]
}

/// The reproduction test the hunter writes: it prints what it saw (no
/// traceback, whose paths would differ between machines) and exits 1 while
/// the last page is lost.
const REPRO_LAST_PAGE: &str = r#""""Reproduces the lost last page: exits 1 while the bug is there."""
import sys

from paging import page, page_count

items = list(range(10))
pages = page_count(len(items), 3)
print(f"page_count(10, 3) == {pages}, expected 4")
try:
    last = page(items, 4, 3)
except IndexError as err:
    print(f"page(items, 4, 3) raised IndexError: {err}")
    sys.exit(1)
print(f"page(items, 4, 3) == {last}")
sys.exit(0 if pages == 4 and last == [9] else 1)
"#;

/// The model's side of `hunt-paging`: it plans the hunt, writes a
/// reproduction test and runs it, reports the off-by-one in `page_count`
/// (confirmed on the base) and a short last page that is in fact the
/// documented behaviour (its reproducer passes), which the preview
/// withdraws.
fn hunt_paging_turns() -> Vec<ScriptedTurn> {
    vec![
        turn(
            vec![(
                "call_b1",
                "submit_plan",
                json!({
                    "goal": "Find the bugs in paging.py and prove each one with a reproducer that fails on the current code.",
                    "steps": [
                        "Check page_count on totals that are not a multiple of the page size.",
                        "Check page() at both ends of the range, including the last, partial page.",
                        "Write a reproduction test for each bug and report it with report_finding."
                    ],
                    "files": ["paging.py", "test_repro_last_page.py"],
                    "risks": ["test_paging.py only uses lists that fill every page, so it cannot show a rounding bug."],
                    "verification": "Each reproducer exits non-zero on the untouched code."
                }),
            )],
            Some(
                "page_count uses floor division; a partial last page would be lost. Planning the hunt.",
            ),
            2300,
            210,
        ),
        turn(
            vec![(
                "call_c1",
                "write_file",
                json!({"path": "test_repro_last_page.py", "content": REPRO_LAST_PAGE}),
            )],
            None,
            2500,
            230,
        ),
        turn(
            vec![(
                "call_c2",
                "shell",
                json!({"command": "python3 test_repro_last_page.py"}),
            )],
            None,
            2800,
            20,
        ),
        turn(
            vec![(
                "call_c3",
                "report_finding",
                json!({
                    "file": "paging.py",
                    "start_line": 8,
                    "severity": "high",
                    "rule_id": "off-by-one",
                    "title": "page_count drops the last, partial page",
                    "message": "`total // size` rounds down, so a list whose length is not a multiple of the page size loses its last page: page() then refuses that page with IndexError. Use ceiling division: `-(-total // size)` or `(total + size - 1) // size`.",
                    "evidence": "page_count(10, 3) returns 3 instead of 4, and page(list(range(10)), 4, 3) raises IndexError instead of returning [9].",
                    "reproduce": "python3 test_repro_last_page.py"
                }),
            )],
            Some("Confirmed locally: page_count(10, 3) == 3."),
            3100,
            260,
        ),
        turn(
            vec![(
                "call_c4",
                "report_finding",
                json!({
                    "file": "paging.py",
                    "start_line": 16,
                    "severity": "low",
                    "rule_id": "short-last-page",
                    "title": "page() may return fewer than size items",
                    "message": "The slice can return a short page; callers that expect exactly `size` items could misbehave.",
                    "evidence": "The slice items[start:start + size] is not padded.",
                    "reproduce": "python3 -c 'import sys; from paging import page; sys.exit(0 if len(page(list(range(6)), 2, 3)) == 3 else 1)'"
                }),
            )],
            None,
            3400,
            180,
        ),
        turn(
            vec![(
                "call_c5",
                "finish_stage",
                json!({"summary": "Reported the off-by-one in page_count (reproducer: test_repro_last_page.py) and a possible short last page."}),
            )],
            None,
            3600,
            50,
        ),
        turn(
            vec![(
                "call_p1",
                "withdraw_finding",
                json!({"id": "F2", "reason": "A short last page is the documented behaviour (\"at most size of them\"), and its reproducer passes on the base."}),
            )],
            Some("F1 is confirmed by its reproducer. F2 is not a bug."),
            4000,
            90,
        ),
        turn(
            vec![(
                "call_p2",
                "submit_review",
                json!({
                    "verdict": "approve",
                    "summary": "One confirmed bug: `page_count` rounds down (`total // size`), so the last, partial page of a list is lost and `page()` raises `IndexError` for it. `test_repro_last_page.py` shows it on the untouched code. The second finding was withdrawn: a short last page is documented.",
                    "risks": ["test_paging.py never uses a partial page, which is why the suite passes."]
                }),
            )],
            None,
            4300,
            160,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "re-records tasks/cassettes/*.jsonl; run after changing prompts or tools"]
async fn record_example_cassettes() {
    for (task, turns) in [
        ("fix-iso-weeks", fix_iso_weeks_turns()),
        ("week-date-errors", week_date_errors_turns()),
        ("hunt-paging", hunt_paging_turns()),
    ] {
        let replies = turns
            .iter()
            .map(|t| support::Reply::sse(encode_openai_sse(t)))
            .collect();
        let server = support::TestServer::start(replies).await;
        let dir = example_checkout();
        let cassette: PathBuf = dir.path().join("recorded.jsonl");
        let file = match task {
            "fix-iso-weeks" => "tasks/fix-iso-weeks.yaml",
            "hunt-paging" => "tasks/hunt-paging.yaml",
            _ => "tasks/dates-nightly.yaml",
        };
        // The hunt fails by design: it finds a new confirmed bug.
        let expected = if task == "hunt-paging" { 1 } else { 0 };
        let mut cmd = kkrun(
            dir.path(),
            &[
                "run",
                "--no-preflight",
                file,
                "--model",
                "openai:kkrun-example-script",
                "--record",
            ],
        );
        cmd.arg(&cassette)
            .env("OPENAI_BASE_URL", format!("{}/v1", server.url()))
            .env("OPENAI_API_KEY", "recording-needs-no-real-key");
        let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{task}: {}",
            describe(&output)
        );
        let recorded = std::fs::read_to_string(&cassette).unwrap();
        assert!(!recorded.contains("recording-needs-no-real-key"));
        std::fs::write(
            Path::new(ROOT)
                .join("tasks/cassettes")
                .join(format!("{task}.jsonl")),
            recorded,
        )
        .unwrap();
    }
}

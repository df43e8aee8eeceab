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
fn every_example_task_passes_offline_from_the_same_base() {
    let dir = example_checkout();
    let output = kkrun(dir.path(), &["run", "tasks/"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let report = report(dir.path());
    let outcomes: Vec<(&str, &str)> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [("week-date-errors", "passed"), ("fix-iso-weeks", "passed")]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "re-records tasks/cassettes/*.jsonl; run after changing prompts or tools"]
async fn record_example_cassettes() {
    for (task, turns) in [
        ("fix-iso-weeks", fix_iso_weeks_turns()),
        ("week-date-errors", week_date_errors_turns()),
    ] {
        let replies = turns
            .iter()
            .map(|t| support::Reply::sse(encode_openai_sse(t)))
            .collect();
        let server = support::TestServer::start(replies).await;
        let dir = example_checkout();
        let cassette: PathBuf = dir.path().join("recorded.jsonl");
        let file = if task == "fix-iso-weeks" {
            "tasks/fix-iso-weeks.yaml"
        } else {
            "tasks/dates-nightly.yaml"
        };
        let mut cmd = kkrun(
            dir.path(),
            &[
                "run",
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
            Some(0),
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

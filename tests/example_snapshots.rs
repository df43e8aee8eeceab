//! Snapshots of what users see from the README example run
//! (`kkrun tasks/fix-iso-weeks.yaml`): the plain console lines printed in
//! CI, the `--json` event lines, `junit.xml` and `summary.md`. Times,
//! durations, run ids, commit ids and temporary paths are replaced by
//! placeholders; everything else is compared as is.

mod e2e_support;

use std::path::Path;
use std::sync::LazyLock;

use e2e_support::redact::{HUMAN_DURATION, redact_summary, redact_text};
use e2e_support::{example_checkout, kkrun};
use regex::Regex;
use serde_json::{Value, json};

/// The example, run as in the README, with events on stdout as well.
struct ExampleRun {
    dir: tempfile::TempDir,
    stdout: String,
    stderr: String,
}

impl ExampleRun {
    fn new(extra: &[&str]) -> ExampleRun {
        let dir = example_checkout();
        let mut args = vec!["tasks/fix-iso-weeks.yaml", "--restore", "always"];
        args.extend_from_slice(extra);
        let output = kkrun(dir.path(), &args).output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        ExampleRun {
            dir,
            stdout,
            stderr,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.root().join(".kkrun/runs/latest").join(name)).unwrap()
    }
}

static CLOCK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\[\d{2}:\d{2}:\d{2}\]").unwrap());
static JUNIT_TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\btime="\d+\.\d{3}""#).unwrap());

/// One event line with its times and durations replaced.
fn redact_event(line: &str, root: &Path) -> String {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    match key.as_str() {
                        "ts" => *value = json!("[TIME]"),
                        "elapsed_ms" | "duration_ms" => *value = json!("[MS]"),
                        _ => walk(value),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut event: Value = serde_json::from_str(line).unwrap();
    walk(&mut event);
    if let Some(command_line) = event.get_mut("command_line") {
        // The binary's own path, which depends on where the crate is built.
        command_line[0] = json!("kkrun");
    }
    redact_text(&event.to_string(), root)
}

#[test]
fn the_plain_console_lines_of_the_example() {
    let run = ExampleRun::new(&[]);
    assert_eq!(run.stdout, "", "stdout stays empty without --json");
    let lines: Vec<String> = run
        .stderr
        .lines()
        .map(|line| {
            let line = CLOCK.replace(line, "[CLOCK]");
            let line = redact_text(&line, run.root());
            HUMAN_DURATION.replace_all(&line, "[DURATION]").into_owned()
        })
        .collect();
    insta::assert_snapshot!("example_console", lines.join("\n"));
}

#[test]
fn the_json_event_lines_junit_and_summary_of_the_example() {
    let run = ExampleRun::new(&["--json"]);
    assert_eq!(run.stdout, run.file("events.jsonl"));
    let events: Vec<String> = run
        .stdout
        .lines()
        .map(|line| redact_event(line, run.root()))
        .collect();
    insta::assert_snapshot!("example_events_jsonl", events.join("\n"));

    let junit = redact_text(&run.file("junit.xml"), run.root());
    insta::assert_snapshot!(
        "example_junit_xml",
        JUNIT_TIME.replace_all(&junit, r#"time="[SECONDS]""#)
    );
    insta::assert_snapshot!(
        "example_summary_md",
        redact_summary(&run.file("summary.md"), run.root())
    );
}

//! `output_schema:` end to end: the real binary runs tasks whose preview
//! must submit a structured `output`; invalid outputs go back to the model
//! with the validator's errors, at most 3 times; the accepted object lands
//! in report.json, the `task.finished` event and `<task>/output.json`; a
//! broken schema is refused when the task file is loaded.

mod e2e_support;

use e2e_support::{Fixture, call, committed_schema_errors, finish, fix_add, plan, read_calc};
use kkrun::provider::script::ScriptedTurn;
use serde_json::{Value, json};

const INLINE_SCHEMA: &str = "output_schema:
  type: object
  properties:
    risk: { enum: [low, medium, high] }
    files: { type: array, items: { type: string } }
  required: [risk, files]
  additionalProperties: false
";

fn review_with(id: &str, output: Value) -> ScriptedTurn {
    call(
        id,
        "submit_review",
        json!({"verdict": "approve", "summary": "The operator is fixed.", "output": output}),
    )
}

fn turns(reviews: Vec<ScriptedTurn>) -> Vec<ScriptedTurn> {
    let mut turns = vec![read_calc(), plan(), fix_add(), finish("done")];
    turns.extend(reviews);
    turns
}

fn task_finished(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["type"] == "task.finished")
        .expect("a task.finished event")
}

#[test]
fn a_valid_output_lands_in_the_report_the_event_and_output_json() {
    let fx = Fixture::new();
    let output = json!({"risk": "low", "files": ["calc.py"]});
    let task = fx.task(
        "structured",
        INLINE_SCHEMA,
        &turns(vec![review_with("review", output.clone())]),
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    let report = run.report();
    assert_eq!(report["tasks"][0]["outcome"], "passed");
    assert_eq!(report["tasks"][0]["output"], output);
    assert_eq!(
        report["tasks"][0]["artifacts"]["output"],
        "structured/output.json"
    );
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());
    let written: Value = serde_json::from_str(&run.file("structured/output.json")).unwrap();
    assert_eq!(written, output);
    assert_eq!(task_finished(&run.events())["output"], output);
    // The model was offered the schema as part of submit_review.
    let transcript = run.file("structured/transcript.jsonl");
    assert!(transcript.contains("## Structured output"), "{transcript}");
}

#[test]
fn an_invalid_output_goes_back_with_the_errors_and_a_corrected_one_passes() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root().join("tasks/schemas")).unwrap();
    std::fs::write(
        fx.root().join("tasks/schemas/result.json"),
        json!({"type": "object", "properties": {"risk": {"enum": ["low", "high"]}},
               "required": ["risk"]})
        .to_string(),
    )
    .unwrap();
    let task = fx.task(
        "from-file",
        "output_schema: schemas/result.json\n",
        &turns(vec![
            review_with("review-1", json!({"risk": "none"})),
            review_with("review-2", json!({"risk": "low"})),
        ]),
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    assert_eq!(run.report()["tasks"][0]["output"], json!({"risk": "low"}));
    let transcript = run.file("from-file/transcript.jsonl");
    assert!(
        transcript.contains("`output` does not match the task's output_schema: at `/risk`"),
        "{transcript}"
    );
}

#[test]
fn still_invalid_after_three_corrections_fails_the_task_with_the_last_errors() {
    let fx = Fixture::new();
    let reviews = (1..=4)
        .map(|n| review_with(&format!("review-{n}"), json!({"risk": "low", "files": n})))
        .collect();
    let task = fx.task("stubborn", INLINE_SCHEMA, &turns(reviews));
    let run = fx.run("out", &[&task]);
    run.expect_code(1);
    let report = run.report();
    let reason = report["tasks"][0]["reason"].as_str().unwrap();
    assert_eq!(report["tasks"][0]["outcome"], "failed", "{reason}");
    assert!(
        reason.contains("still invalid after 3 corrections"),
        "{reason}"
    );
    assert!(reason.contains("at `/files`"), "{reason}");
    assert!(report["tasks"][0].get("output").is_none());
    assert!(!run.out.join("stubborn/output.json").exists());
    assert!(task_finished(&run.events()).get("output").is_none());
    // Three corrections were asked for: the first three reviews were sent
    // back, the fourth ended the stage.
    let transcript = run.file("stubborn/transcript.jsonl");
    assert_eq!(
        transcript
            .matches("does not match the task's output_schema")
            .count(),
        3,
        "{transcript}"
    );
    assert_eq!(committed_schema_errors(&report), Vec::<String>::new());
}

#[test]
fn a_review_without_a_schema_may_not_carry_output() {
    let fx = Fixture::new();
    let task = fx.task(
        "plain",
        "",
        &turns(vec![
            review_with("review-1", json!({"risk": "low"})),
            call(
                "review-2",
                "submit_review",
                json!({"verdict": "approve", "summary": "Fixed."}),
            ),
        ]),
    );
    let run = fx.run("out", &[&task]);
    run.expect_code(0);
    assert!(run.report()["tasks"][0].get("output").is_none());
    assert!(
        run.file("plain/transcript.jsonl")
            .contains("this task asks for no `output`")
    );
}

#[test]
fn broken_schemas_are_refused_at_load_with_their_location() {
    let fx = Fixture::new();
    let cases = [
        (
            "bad-inline",
            "output_schema:\n  type: objekt\n",
            "`output_schema` is not a valid JSON Schema",
            // The schema's own first line.
            15,
        ),
        (
            "missing-file",
            "output_schema: schemas/nope.json\n",
            "cannot read output schema",
            14,
        ),
        (
            "not-a-schema",
            "output_schema: 42\n",
            "`output_schema` must be a JSON Schema or the path of one, found an integer",
            14,
        ),
        (
            "bad-json",
            "output_schema: broken.json\n",
            "is not valid JSON",
            14,
        ),
    ];
    std::fs::write(fx.root().join("tasks/broken.json"), "{\"type\": ").unwrap();
    for (name, yaml, expected, line) in cases {
        let task = fx.task(name, yaml, &turns(Vec::new()));
        let output = fx.kkrun(&["validate", &task]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        // `output_schema:` follows the fixture's 13 fixed lines.
        assert!(
            stderr.contains(&format!("{name}.yaml:{line}:")),
            "{name}: {stderr}"
        );
    }
}

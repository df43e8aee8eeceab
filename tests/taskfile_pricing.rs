//! The `pricing:` and `context_window:` task-file keys: their errors with
//! positions, both file forms and the defaults merge, the schema, the
//! dry-run plan, and their effect on a real run (the report's cost and
//! compaction against the configured window).

mod e2e_support;
mod taskfile_support;

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use e2e_support::{Fixture, TaskFile, call, finish, fix_add, plan, review};
use kkrun::provider::ModelPrice;
use kkrun::provider::Usage;
use kkrun::provider::script::ScriptedTurn;
use kkrun::task::{Task, TaskFileError, TaskFileErrors, load_tasks};
use serde_json::{Value, json};
use taskfile_support::{Layout, layout};

fn errors(layout: &Layout, path: &str) -> TaskFileErrors {
    match load_tasks(&[layout.arg(path)]) {
        Ok(tasks) => panic!("expected errors, loaded {tasks:#?}"),
        Err(errors) => errors,
    }
}

/// The error at `file:line:column` whose message is exactly `message`.
fn expect<'e>(
    errors: &'e TaskFileErrors,
    line: u64,
    column: u64,
    message: &str,
) -> &'e TaskFileError {
    let found = errors.errors().iter().find(|error| {
        error.line() == line && error.column() == column && error.message() == message
    });
    found.unwrap_or_else(|| {
        panic!(
            "no error `{message}` at {line}:{column} in:\n{}",
            errors.render(false)
        )
    })
}

fn by_name<'t>(tasks: &'t [Task], name: &str) -> &'t Task {
    tasks.iter().find(|task| task.name == name).unwrap()
}

const BROKEN_SINGLE: &str = "\
version: 1
name: bad-pricing
prompt: Fix it.
pricing:
  input: -1
  outptu: 8
context_window: 512
";

#[test]
fn pricing_and_window_errors_name_the_key_and_position() {
    let layout = layout();
    layout.write("tasks/bad-pricing.yaml", BROKEN_SINGLE);
    let errors = errors(&layout, "tasks/bad-pricing.yaml");
    assert_eq!(errors.len(), 4, "{}", errors.render(false));

    let negative = expect(
        &errors,
        5,
        10,
        "`pricing.input` must be at least 0, found -1",
    );
    assert!(
        negative
            .help_text()
            .unwrap()
            .contains("USD per million tokens"),
        "{negative:?}"
    );
    let typo = expect(
        &errors,
        6,
        3,
        "unknown key `pricing.outptu` (hint: did you mean `output`?)",
    );
    assert_eq!(
        typo.help_text(),
        Some("valid keys here: input, cached_input, cache_write, output")
    );
    let missing = expect(&errors, 5, 3, "missing key `pricing.output`");
    assert!(
        missing
            .help_text()
            .unwrap()
            .contains("`pricing: { input: 2.00, output: 8.00 }`"),
        "{missing:?}"
    );
    let window = expect(
        &errors,
        7,
        17,
        "`context_window` must be at least 1024, found 512",
    );
    assert!(
        window
            .help_text()
            .unwrap()
            .contains("tokens, such as `128000`"),
        "{window:?}"
    );
    let text = errors.render(false);
    assert!(text.contains("bad-pricing.yaml:5:10\n"), "{text}");
}

#[test]
fn defaults_pricing_errors_carry_the_defaults_path() {
    let layout = layout();
    layout.write(
        "tasks/bad-defaults.yaml",
        "\
version: 1
defaults:
  pricing: { input: true, cached_input: \"$0.10\" }
  context_window: 128k
tasks:
  - name: one
    prompt: Fix it.
    pricing: []
    context_window: 1023
",
    );
    let errors = errors(&layout, "tasks/bad-defaults.yaml");
    assert_eq!(errors.len(), 6, "{}", errors.render(false));
    expect(
        &errors,
        3,
        21,
        "`defaults.pricing.input` must be a number of US dollars per million tokens, found `true`",
    );
    let quoted = expect(
        &errors,
        3,
        41,
        "`defaults.pricing.cached_input` must be a number of US dollars per million tokens, found `$0.10`",
    );
    assert!(
        quoted
            .help_text()
            .unwrap()
            .contains("without quotes or `$`")
    );
    expect(&errors, 3, 12, "missing key `defaults.pricing.output`");
    expect(
        &errors,
        4,
        19,
        "`defaults.context_window` must be a whole number, found `128k`",
    );
    expect(
        &errors,
        8,
        14,
        "`tasks[0].pricing` must be a mapping of keys, found a list",
    );
    expect(
        &errors,
        9,
        21,
        "`tasks[0].context_window` must be at least 1024, found 1023",
    );
}

#[test]
fn both_forms_load_and_a_task_pricing_replaces_the_default_whole() {
    let layout = layout();
    layout.write(
        "tasks/priced.yaml",
        "\
version: 1
name: priced
prompt: Fix it.
pricing:
  input: 2
  output: 8.5
context_window: 128000
",
    );
    layout.write(
        "tasks/priced-list.yaml",
        "\
version: 1
defaults:
  pricing: { input: 1.25, cached_input: 0.125, output: 10 }
  context_window: 400000
tasks:
  - name: inherits
    prompt: Take both from the defaults.
  - name: own-price
    prompt: Replace the price; keep the window.
    pricing: { input: 3, output: 15 }
  - name: own-window
    prompt: Replace the window; keep the price.
    context_window: 32000
  - name: free
    prompt: A zero price is a price.
    pricing: { input: 0, cached_input: 0, output: 0 }
",
    );
    let single = load_tasks(&[layout.arg("tasks/priced.yaml")]).unwrap();
    assert_eq!(
        single[0].pricing,
        Some(ModelPrice {
            input_per_mtok: 2.0,
            cached_input_per_mtok: None,
            output_per_mtok: 8.5,
            cache_write_input_per_mtok: None,
        })
    );
    assert_eq!(single[0].context_window, Some(128_000));

    let list = load_tasks(&[layout.arg("tasks/priced-list.yaml")]).unwrap();
    let defaults_price = ModelPrice {
        input_per_mtok: 1.25,
        cached_input_per_mtok: Some(0.125),
        output_per_mtok: 10.0,
        cache_write_input_per_mtok: None,
    };
    let inherits = by_name(&list, "inherits");
    assert_eq!(inherits.pricing, Some(defaults_price));
    assert_eq!(inherits.context_window, Some(400_000));
    let own_price = by_name(&list, "own-price");
    assert_eq!(
        own_price.pricing,
        Some(ModelPrice {
            input_per_mtok: 3.0,
            cached_input_per_mtok: None,
            output_per_mtok: 15.0,
            cache_write_input_per_mtok: None,
        }),
        "the default's cached price belongs to another model and is not merged in"
    );
    assert_eq!(own_price.context_window, Some(400_000));
    let own_window = by_name(&list, "own-window");
    assert_eq!(own_window.pricing, Some(defaults_price));
    assert_eq!(own_window.context_window, Some(32_000));
    let free = by_name(&list, "free").pricing.unwrap();
    assert_eq!(free.cost_usd(&Usage::default()), 0.0);

    // Unset, both keys fall back to the model's defaults at run time.
    let plain = load_tasks(&[layout.arg("tasks/valid/single.yaml")]).unwrap();
    assert_eq!((plain[0].pricing, plain[0].context_window), (None, None));
    let every = load_tasks(&[layout.arg("tasks/valid/every-key.yaml")]).unwrap();
    assert_eq!(
        every[0].pricing,
        Some(ModelPrice {
            input_per_mtok: 2.5,
            cached_input_per_mtok: Some(0.25),
            output_per_mtok: 10.0,
            cache_write_input_per_mtok: None,
        })
    );
    assert_eq!(every[0].context_window, Some(64_000));
}

#[test]
fn the_schema_checks_pricing_and_window_like_kkrun() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/task.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let as_json = |yaml: &str| -> Value { serde_saphyr::from_str(yaml).unwrap() };
    let base = "version: 1\nname: t\nprompt: p\n";
    let valid = format!(
        "{base}pricing: {{ input: 2, cached_input: 0.5, output: 8 }}\ncontext_window: 1024\n"
    );
    assert!(validator.is_valid(&as_json(&valid)), "{valid}");
    for invalid in [
        "pricing: { input: -1, output: 8 }",
        "pricing: { input: 2 }",
        "pricing: { input: 2, output: 8, outptu: 8 }",
        "pricing: { input: \"2\", output: 8 }",
        "context_window: 1023",
        "context_window: 1500.5",
    ] {
        let text = format!("{base}{invalid}\n");
        assert!(!validator.is_valid(&as_json(&text)), "{invalid} passed");
    }
}

#[test]
fn the_dry_run_plan_shows_where_price_and_window_come_from() {
    let layout = layout();
    let plan = |model: &str| {
        let output = Command::cargo_bin("kkrun")
            .unwrap()
            .current_dir(&layout.repo)
            .env_remove("KKRUN_MODEL")
            .args([
                "run",
                "--dry-run",
                "--model",
                model,
                "tasks/valid/single.yaml",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let known = plan("openai:gpt-4.1-2025-04-14");
    assert!(
        known.contains(
            "\n  pricing:     $2.00 input, $0.50 cached input, $8.00 output per million tokens (built-in, list prices of 2026-11-24)\n\
             \x20 window:      1000000 tokens (default for `gpt-4.1-2025-04-14`)\n"
        ),
        "{known}"
    );
    let unknown = plan("openai:qwen2.5-coder");
    assert!(
        unknown.contains(
            "\n  pricing:     unknown for `qwen2.5-coder`: cost is reported as null (set `pricing:` to count it)\n\
             \x20 window:      128000 tokens (default for `qwen2.5-coder`)\n"
        ),
        "{unknown}"
    );
}

// End to end: the real binary, a temporary git repository and a scripted
// cassette whose turns carry usage.

/// Runs the task into `out/`; returns the exit code, report and events.
fn run(fx: &Fixture, task: &TaskFile) -> (i32, Value, Vec<Value>) {
    let file = fx.add_task(task);
    let run = fx.run("out", &[&file]);
    (run.code(), run.report(), run.events())
}

/// Every turn's usage: 1000 input tokens (200 of them cached), 100 output.
const TURN_USAGE: Usage = Usage {
    input_tokens: 1000,
    cached_input_tokens: 200,
    output_tokens: 100,
    estimated: false,
    cache_write_input_tokens: 0,
    reasoning_tokens: 0,
};

/// A passing run: `reads` exploratory reads, a plan, the fix, the review,
/// every turn with [`TURN_USAGE`].
fn passing_turns(reads: usize) -> Vec<ScriptedTurn> {
    // Distinct reads, so the loop guard sees exploration, not repetition.
    let files = ["calc.py", "test_add.py", ".gitignore"];
    let reads = (0..reads).map(|n| {
        let args = json!({"path": files[n % files.len()], "start_line": 1 + n / files.len()});
        call(&format!("read-{n}"), "read_file", args)
    });
    reads
        .chain([plan(), fix_add(), finish("done"), review("approve")])
        .map(|turn| turn.with_usage(TURN_USAGE))
        .collect()
}

#[test]
fn a_task_price_sets_the_reported_cost_and_an_unknown_model_costs_null() {
    let fx = Fixture::new();
    let turns = passing_turns(1);
    // `scripted` is in no price table: without `pricing:` its cost is
    // unknown, never a guess.
    let priced = TaskFile::new("priced", &turns)
        .cassette_model("scripted")
        .yaml("pricing: { input: 2.00, cached_input: 0.50, output: 8.00 }\n");
    let (code, report, _) = run(&fx, &priced);
    assert_eq!(code, 0, "{report:#}");
    let task = &report["tasks"][0];
    assert_eq!(task["usage"]["input_tokens"], 5000);
    assert_eq!(task["usage"]["cached_input_tokens"], 1000);
    assert_eq!(task["usage"]["output_tokens"], 500);
    // Per turn: 800 uncached x $2 + 200 cached x $0.50 + 100 out x $8, per
    // million tokens.
    let per_turn = (800.0 * 2.0 + 200.0 * 0.5 + 100.0 * 8.0) / 1_000_000.0;
    let expected = 5.0 * per_turn;
    let cost = task["cost_usd"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-12, "{cost} != {expected}");
    let stage_sum: f64 = task["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|stage| stage["cost_usd"].as_f64().unwrap())
        .sum();
    assert!((stage_sum - expected).abs() < 1e-12, "{stage_sum}");
    assert!((report["totals"]["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12);

    let fx = Fixture::new();
    let unpriced = TaskFile::new("unpriced", &turns).cassette_model("scripted");
    let (code, report, _) = run(&fx, &unpriced);
    assert_eq!(code, 0, "{report:#}");
    let task = &report["tasks"][0];
    assert_eq!(task["usage"]["input_tokens"], 5000);
    assert_eq!(task["cost_usd"], Value::Null, "{task:#}");
    assert_eq!(report["totals"]["cost_usd"], Value::Null);

    // A model from the built-in table gets its list price with no key set.
    let fx = Fixture::new();
    let listed = TaskFile::new("listed", &turns).cassette_model("gpt-4.1-mini");
    let (code, report, _) = run(&fx, &listed);
    assert_eq!(code, 0, "{report:#}");
    let list_price = 5.0 * (800.0 * 0.40 + 200.0 * 0.10 + 100.0 * 1.60) / 1_000_000.0;
    let cost = report["tasks"][0]["cost_usd"].as_f64().unwrap();
    assert!((cost - list_price).abs() < 1e-12, "{cost} != {list_price}");
}

#[test]
fn a_small_context_window_makes_the_agent_compact() {
    let compactions = |events: &[Value]| {
        events
            .iter()
            .filter(|event| event["type"] == "context.compacted")
            .count()
    };
    // Enough reads in the blueprint stage that older turns can be folded
    // once the provider's count (1000 tokens a turn) passes the window.
    let turns = passing_turns(6);

    let fx = Fixture::new();
    let small = TaskFile::new("small-window", &turns)
        .cassette_model("scripted")
        .yaml("context_window: 1024\n");
    let (code, report, events) = run(&fx, &small);
    assert_eq!(code, 0, "{report:#}\n{events:#?}");
    assert!(compactions(&events) > 0, "no compaction in {events:#?}");

    let fx = Fixture::new();
    let default = TaskFile::new("default-window", &turns).cassette_model("scripted");
    let (code, report, events) = run(&fx, &default);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        compactions(&events),
        0,
        "the 128000-token default is far away"
    );
}

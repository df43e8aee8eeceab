//! The real binary on task files: `validate`, `schema`, `run --dry-run`,
//! usage errors, and hostile input. Invalid input exits 2 with nothing on
//! stdout.

mod taskfile_support;

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use taskfile_support::{Layout, layout};

fn kkrun(dir: &Path) -> Command {
    let mut command = Command::cargo_bin("kkrun").unwrap();
    command
        .current_dir(dir)
        .env_remove("KKRUN_MODEL")
        .env_remove("NO_COLOR")
        .timeout(Duration::from_secs(60));
    command
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(layout: &Layout, args: &[&str]) -> Outcome {
    let output = kkrun(&layout.repo).args(args).output().unwrap();
    let outcome = Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !outcome.stderr.contains("panicked"),
        "kkrun {args:?} panicked:\n{}",
        outcome.stderr
    );
    outcome
}

/// Invalid input: exit 2, stdout empty, and stderr explains.
fn assert_invalid(outcome: &Outcome, stderr_contains: &str) {
    assert_eq!(outcome.code, 2, "stderr:\n{}", outcome.stderr);
    assert_eq!(
        outcome.stdout, "",
        "stdout must stay empty on invalid input"
    );
    assert!(
        outcome.stderr.contains(stderr_contains),
        "missing `{stderr_contains}` in stderr:\n{}",
        outcome.stderr
    );
}

#[test]
fn validate_reports_every_error_of_a_broken_directory_and_exits_2() {
    let layout = layout();
    let outcome = run(
        &layout,
        &[
            "validate",
            "--color",
            "never",
            "tasks/broken",
            "tasks/duplicates",
        ],
    );
    assert_invalid(&outcome, "48 errors in 15 task files");
    for position in [
        "--> tasks/broken/bad-durations.yaml:5:12",
        "--> tasks/broken/bad-globs.yaml:4:21",
        "--> tasks/broken/bare-repository.yaml:4:12",
        "--> tasks/broken/empty-run.yaml:6:10",
        "--> tasks/broken/list-form.yaml:7:5",
        "--> tasks/broken/max-rounds-zero.yaml:6:17",
        "--> tasks/broken/missing-keys.yaml:1:1",
        "--> tasks/broken/models.yaml:3:10",
        "--> tasks/broken/not-a-work-tree.yaml:4:12",
        "--> tasks/broken/syntax.yaml:4:10",
        "--> tasks/broken/type-errors.yaml:5:15",
        "--> tasks/broken/unknown-keys.yaml:4:1",
        "--> tasks/duplicates/b.yaml:5:11",
        "::: tasks/duplicates/a.yaml:2:7",
    ] {
        assert!(
            outcome.stderr.contains(position),
            "missing {position}:\n{}",
            outcome.stderr
        );
    }
    assert_eq!(
        outcome.stderr.matches("\nerror: ").count() + 1,
        49,
        "48 errors and a count line"
    );
    assert!(!outcome.stderr.contains('\x1b'), "--color never");
}

#[test]
fn validate_prints_one_ok_line_per_file() {
    let layout = layout();
    let outcome = run(&layout, &["validate", "tasks/valid"]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(
        outcome.stdout,
        "ok: tasks/valid/every-key.yaml (1 task: every-key)\n\
         ok: tasks/valid/list.yaml (2 tasks: inherits, overrides)\n\
         ok: tasks/valid/single.yaml (1 task: single)\n"
    );
    assert_eq!(outcome.stderr, "");

    let quiet = run(&layout, &["validate", "-q", "tasks/valid/single.yaml"]);
    assert_eq!((quiet.code, quiet.stdout.as_str()), (0, ""));
}

#[test]
fn error_colours_follow_the_flag_and_no_color() {
    let layout = layout();
    let always = run(
        &layout,
        &["validate", "--color", "always", "tasks/broken/syntax.yaml"],
    );
    assert_invalid(&always, "\x1b[1;31merror\x1b[0m");
    let output = kkrun(&layout.repo)
        .env("NO_COLOR", "1")
        .args(["validate", "tasks/broken/syntax.yaml"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains('\x1b'));
}

#[test]
fn dry_run_prints_the_plan_and_exits_0() {
    let layout = layout();
    let outcome = run(
        &layout,
        &[
            "run",
            "--dry-run",
            "--model",
            "openai:gpt-4.1",
            "tasks/valid/every-key.yaml",
        ],
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let expected = "\
run plan: 1 task (dry run: nothing is executed)

task every-key  (tasks/valid/every-key.yaml:3)
  description: Sets every key of a task
  kind:        refactor
  workspace:   tasks/valid
  model:       openai:gpt-4.1
  pricing:     $2.50 input, $0.25 cached input, $10.00 output per million tokens (task file)
  window:      64000 tokens (task file)
  stages:      blueprint 5 turns -> code 30 turns -> debug 10 turns x 1 round -> preview 4 turns (advisory)
  checks:
    - unit: cargo test parse::  (timeout 1h30m, retries 2)
    - lint: cargo clippy -- -D warnings  (timeout 10m, retries 0)
  budget:      1000 tokens, $3.00, timeout 1m30s
  shell:       allow cargo *, git diff*; deny built-in rules + git push*, make *; timeout 2m
  context:     src/parse/**, Cargo.toml
  env:         FLAG, LOG, RUST_BACKTRACE
  on_failure:  rollback
";
    assert_eq!(outcome.stdout, expected);
}

#[test]
fn the_default_command_is_run_and_kkrun_model_sets_the_model() {
    let layout = layout();
    let output = kkrun(&layout.repo)
        .env("KKRUN_MODEL", "anthropic:claude-sonnet-4-5")
        .args(["--dry-run", "tasks/valid"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("run plan: 4 tasks"), "{stdout}");
    assert_eq!(
        stdout
            .matches("model:       anthropic:claude-sonnet-4-5")
            .count(),
        4
    );
}

#[test]
fn dry_run_without_any_model_says_how_to_set_one() {
    let layout = layout();
    let outcome = run(&layout, &["run", "--dry-run", "tasks/valid/single.yaml"]);
    assert_invalid(&outcome, "error: task `single` has no model");
    assert!(outcome.stderr.contains("--> tasks/valid/single.yaml:3:7"));
    assert!(outcome.stderr.contains("KKRUN_MODEL"));
}

#[test]
fn dry_run_on_invalid_files_prints_nothing_on_stdout() {
    let layout = layout();
    let outcome = run(
        &layout,
        &[
            "run",
            "--dry-run",
            "--model",
            "openai:gpt-4.1",
            "tasks/valid",
            "tasks/broken/max-rounds-zero.yaml",
        ],
    );
    assert_invalid(
        &outcome,
        "`stages.debug.max_rounds` must be at least 1, found 0",
    );
    let bad_flag = run(
        &layout,
        &[
            "run",
            "--dry-run",
            "--model",
            "gpt-4.1",
            "tasks/valid/single.yaml",
        ],
    );
    assert_invalid(&bad_flag, "in --model / KKRUN_MODEL `gpt-4.1`");
}

#[test]
fn usage_errors_exit_2_with_nothing_on_stdout() {
    let layout = layout();
    assert_invalid(&run(&layout, &["validate"]), "FILES");
    assert_invalid(&run(&layout, &["schema", "nope"]), "task");
    assert_invalid(
        &run(&layout, &["validate", "no-such-file.yaml"]),
        "cannot open task file",
    );
    assert_invalid(
        &run(&layout, &["validate", "tasks/*.nothing"]),
        "no files match `tasks/*.nothing`",
    );
}

#[test]
fn schema_prints_the_task_schema() {
    let layout = layout();
    let outcome = run(&layout, &["schema", "task"]);
    assert_eq!(outcome.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(schema["title"], "kkrun task file");
    assert_eq!(schema, kkrun::task::task_schema());
}

/// Hostile or broken input never panics and always exits 2.
#[test]
fn no_panic_on_garbage_empty_huge_deep_or_explosive_input() {
    let layout = layout();
    let mut garbage = Vec::new();
    let mut state: u32 = 0x2545_f491;
    for _ in 0..64 * 1024 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        garbage.push(state.to_le_bytes()[0]);
    }
    layout.write("hostile/garbage.yaml", &garbage);
    layout.write("hostile/empty.yaml", "");
    layout.write("hostile/comment-only.yaml", "# nothing here\n");
    layout.write("hostile/huge.yaml", "a".repeat(10 * 1024 * 1024));
    layout.write("hostile/deep-flow.yaml", "[".repeat(100_000));
    let mut deep_block = String::new();
    for depth in 0..500 {
        deep_block.push_str(&" ".repeat(depth));
        deep_block.push_str("k:\n");
    }
    layout.write("hostile/deep-block.yaml", deep_block);
    let mut laughs = String::from(
        "version: 1\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..10u8 {
        let (previous, current) = ((b'a' + level - 1) as char, (b'a' + level) as char);
        let refs = vec![format!("*{previous}"); 9].join(",");
        laughs.push_str(&format!("{current}: &{current} [{refs}]\n"));
    }
    laughs.push_str("name: *j\nprompt: p\n");
    layout.write("hostile/billion-laughs.yaml", laughs);
    layout.write("hostile/not-a-map.yaml", "- just\n- a list\n");
    layout.write("hostile/two-docs.yaml", "version: 1\n---\nversion: 1\n");
    layout.write(
        "hostile/tag.yaml",
        "version: !!binary AAAA\nname: !custom x\nprompt: p\n",
    );
    layout.write("hostile/keys.yaml", "? [complex]\n: 1\n7: seven\n~: null\n");

    let cases = [
        ("garbage.yaml", "not UTF-8 text"),
        ("empty.yaml", "the task file is empty"),
        ("comment-only.yaml", "the task file is empty"),
        ("huge.yaml", "task file is larger than 1024 KiB"),
        (
            "deep-flow.yaml",
            "YAML too complex for a task file: nested more than 32 levels deep",
        ),
        (
            "deep-block.yaml",
            "YAML too complex for a task file: nested more than 32 levels deep",
        ),
        ("billion-laughs.yaml", "YAML too complex for a task file"),
        (
            "not-a-map.yaml",
            "a task file must be a mapping of keys, found a list",
        ),
        ("two-docs.yaml", "a task file holds one YAML document"),
        ("tag.yaml", "error:"),
        ("keys.yaml", "keys must be names"),
    ];
    for (file, message) in cases {
        let started = std::time::Instant::now();
        let outcome = run(&layout, &["validate", &format!("hostile/{file}")]);
        assert_invalid(&outcome, message);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{file} took {:?}",
            started.elapsed()
        );
    }
    // All at once: every file still gets its own error.
    let outcome = run(&layout, &["validate", "hostile"]);
    assert_invalid(&outcome, &format!("errors in {} task files", cases.len()));
}

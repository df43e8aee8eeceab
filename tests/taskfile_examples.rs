//! The example task files in `tasks/`: they start with the schema line,
//! validate against the committed schema, and `kkrun validate` and
//! `kkrun run --dry-run` accept them.
//!
//! The tests run on a copy of the repository layout (tasks, cassettes and
//! the example repository), so they do not depend on the checkout's `.git`.

mod taskfile_support;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(project().join("tasks"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn as_json(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every `model:` value of a task file, in either form.
fn models(file: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut add = |value: &Value| {
        if let Some(model) = value["model"].as_str() {
            found.push(model.to_owned());
        }
    };
    add(file);
    add(&file["defaults"]);
    for task in file["tasks"].as_array().into_iter().flatten() {
        add(task);
    }
    found
}

/// A git repository holding copies of `tasks/` (with the committed
/// cassettes) and `examples/`.
fn layout() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    git2::Repository::init(root.path()).unwrap();
    taskfile_support::copy_dir(&project().join("tasks"), &root.path().join("tasks"));
    taskfile_support::copy_dir(&project().join("examples"), &root.path().join("examples"));
    for file in examples() {
        for model in models(&as_json(&file)) {
            if let Some(cassette) = model.strip_prefix("replay:") {
                let path = root.path().join("tasks").join(cassette);
                assert!(
                    path.is_file(),
                    "{} names a cassette that is not committed: {}",
                    file.display(),
                    path.display()
                );
            }
        }
    }
    root
}

#[test]
fn there_are_examples_of_both_file_forms() {
    let files: Vec<Value> = examples().iter().map(|path| as_json(path)).collect();
    assert!(files.len() >= 2);
    assert!(files.iter().any(|file| file.get("tasks").is_none()));
    assert!(
        files
            .iter()
            .any(|file| file.get("tasks").is_some() && file.get("defaults").is_some())
    );
}

#[test]
fn examples_start_with_the_schema_line_and_validate_against_the_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(project().join("schemas/task.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/task.schema.json\n"),
            "{} must start with the schema line",
            file.display()
        );
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&file))
            .map(|error| format!("{} at {}", error, error.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
}

#[test]
fn kkrun_validate_accepts_the_examples() {
    let root = layout();
    let output = Command::cargo_bin("kkrun")
        .unwrap()
        .current_dir(root.path())
        .args(["validate", "tasks/"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), examples().len(), "{stdout}");
    assert!(
        stdout.lines().all(|line| line.starts_with("ok: tasks/")),
        "{stdout}"
    );
}

#[test]
fn the_dry_run_plan_of_the_examples_uses_their_cassettes() {
    let root = layout();
    let output = Command::cargo_bin("kkrun")
        .unwrap()
        .current_dir(root.path())
        .env_remove("KKRUN_MODEL")
        .args(["run", "--dry-run", "tasks/"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("task fix-iso-weeks  (tasks/fix-iso-weeks.yaml:3)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("model:       replay:tasks/cassettes/fix-iso-weeks.jsonl"),
        "{stdout}"
    );
    assert!(
        stdout.contains("task week-date-errors  (tasks/dates-nightly.yaml:"),
        "{stdout}"
    );
    assert!(stdout.contains("workspace:   examples/dates"), "{stdout}");
    assert!(
        stdout.contains("- unit: python3 test_dates.py  (timeout 1m, retries 0)"),
        "{stdout}"
    );
}

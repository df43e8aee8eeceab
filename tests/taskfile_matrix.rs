//! Model matrices in task files and on the command line: `models:` and
//! several `--model` flags turn a task into one instance per model, named
//! `<task>@<model>`; every mistake is reported at its position.

mod taskfile_support;

use kkrun::task::{LoadOptions, MatrixInstance, Task, load_tasks, load_tasks_with};
use taskfile_support::layout;

fn names(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.name.as_str()).collect()
}

fn matrix(task: &Task) -> (&str, &str) {
    let MatrixInstance { task, model } = task.matrix.as_ref().expect("a matrix instance");
    (task, model)
}

const LIST: &str = "\
version: 1
defaults:
  models: [openai:gpt-4.1, anthropic:claude-sonnet-4-5]
tasks:
  - name: inherits
    prompt: p
  - name: own-model
    prompt: p
    model: openai:gpt-4.1-mini
  - name: own-matrix
    prompt: p
    models: [openai:gpt-4o, azure:gpt-4o, replay:cassettes/recorded.jsonl]
";

fn write_list(layout: &taskfile_support::Layout) -> String {
    layout.write(
        "kkrun.yaml",
        "version: 1\nproviders:\n  azure:\n    api: openai-chat\n    base_url: https://example.invalid/v1\n",
    );
    layout.write("tasks/cassettes/recorded.jsonl", "");
    layout.write("tasks/matrix.yaml", LIST);
    layout.arg("tasks/matrix.yaml")
}

#[test]
fn models_make_one_instance_per_model_in_file_order() {
    let layout = layout();
    let tasks = load_tasks(&[write_list(&layout)]).unwrap();
    assert_eq!(
        names(&tasks),
        [
            "inherits@gpt-4.1",
            "inherits@claude-sonnet-4-5",
            "own-model",
            // The same model on two providers keeps the provider in the name.
            "own-matrix@openai-gpt-4o",
            "own-matrix@azure-gpt-4o",
            "own-matrix@replay-cassettes-recorded.jsonl",
        ]
    );
    assert_eq!(tasks[0].model.as_deref(), Some("openai:gpt-4.1"));
    assert_eq!(matrix(&tasks[0]), ("inherits", "openai:gpt-4.1"));
    assert_eq!(
        matrix(&tasks[1]),
        ("inherits", "anthropic:claude-sonnet-4-5")
    );
    // A task's own `model:` replaces the defaults' matrix.
    assert_eq!(tasks[2].model.as_deref(), Some("openai:gpt-4.1-mini"));
    assert!(tasks[2].matrix.is_none());
    // A named provider's endpoint is filled in per instance.
    assert!(tasks[3].endpoint.is_none());
    assert_eq!(
        tasks[4].endpoint.as_ref().map(|e| e.name.as_str()),
        Some("azure")
    );
    // A cassette path is resolved; the matrix keeps it as written.
    let cassette = layout
        .path("tasks/cassettes/recorded.jsonl")
        .canonicalize()
        .unwrap();
    assert_eq!(
        tasks[5].model.as_deref(),
        Some(format!("replay:{}", cassette.display()).as_str())
    );
    assert_eq!(
        matrix(&tasks[5]),
        ("own-matrix", "replay:cassettes/recorded.jsonl")
    );
    // Everything else is the task's own.
    assert_eq!(tasks[0].prompt, tasks[1].prompt);
    assert_eq!(tasks[0].line, tasks[1].line);
}

#[test]
fn several_model_flags_make_every_task_a_matrix_and_one_flag_none() {
    let layout = layout();
    let file = write_list(&layout);
    let flags = ["openai:gpt-4.1".to_string(), "openai:o3".to_string()];
    let options = LoadOptions {
        model_overrides: &flags,
        require_model: true,
    };
    let tasks = load_tasks_with(std::slice::from_ref(&file), &options).unwrap();
    assert_eq!(
        names(&tasks),
        [
            "inherits@gpt-4.1",
            "inherits@o3",
            "own-model@gpt-4.1",
            "own-model@o3",
            "own-matrix@gpt-4.1",
            "own-matrix@o3",
        ]
    );
    assert_eq!(matrix(&tasks[3]), ("own-model", "openai:o3"));

    let one = ["openai:gpt-4.1".to_string()];
    let options = LoadOptions {
        model_overrides: &one,
        require_model: true,
    };
    let tasks = load_tasks_with(&[file], &options).unwrap();
    assert_eq!(names(&tasks), ["inherits", "own-model", "own-matrix"]);
    assert!(tasks.iter().all(|t| t.matrix.is_none()));
    assert!(
        tasks
            .iter()
            .all(|t| t.model.as_deref() == Some("openai:gpt-4.1"))
    );
}

#[test]
fn a_repeated_model_flag_is_an_error() {
    let layout = layout();
    let flags = ["openai:gpt-4.1".to_string(), "openai:gpt-4.1".to_string()];
    let options = LoadOptions {
        model_overrides: &flags,
        require_model: true,
    };
    let errors = load_tasks_with(&[layout.arg("tasks/valid/single.yaml")], &options).unwrap_err();
    assert_eq!(errors.len(), 1, "{}", errors.render(false));
    assert_eq!(
        errors.errors()[0].message(),
        "--model `openai:gpt-4.1` is given twice"
    );
}

#[test]
fn matrix_mistakes_are_reported_at_their_positions() {
    let layout = layout();
    let errors = load_tasks(&[layout.arg("tasks/broken/matrix.yaml")]).unwrap_err();
    let rendered = errors.render(false);
    let at = |line: u64, column: u64, message: &str| {
        let found = errors
            .errors()
            .iter()
            .find(|e| e.line() == line && e.column() == column && e.message().contains(message));
        assert!(
            found.is_some(),
            "no `{message}` at {line}:{column} in:\n{rendered}"
        );
        found.unwrap().help_text().unwrap_or_default().to_string()
    };
    let help = at(6, 13, "`tasks[0].model` and `tasks[0].models` are both set");
    assert!(help.contains("keep `models:`"), "{help}");
    let help = at(
        9,
        13,
        "`tasks[1].models` needs at least two models to compare",
    );
    assert!(help.contains("model: PROVIDER:MODEL"), "{help}");
    at(12, 59, "`tasks[2].models` lists `openai:gpt-4.1` twice");
    at(15, 30, "invalid model `gpt-4o`");
    at(18, 13, "`tasks[4].models` must be a list");
    let help = at(
        21,
        28,
        "models `openai:a/b` and `openai:a-b` of task `same-names` both make the instance name `same-names@openai-a-b`",
    );
    assert!(help.contains("distinct names"), "{help}");
    assert_eq!(errors.len(), 6, "{rendered}");
}

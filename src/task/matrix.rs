//! Model matrices: a task with `models:` (or a run given several `--model`
//! flags) runs once per model. Each run is an instance, a task of its own
//! named `<task>@<label>`, so everything downstream (isolation, snapshots,
//! reports, `--partition`, `kkrun apply`) treats it as one; the instance
//! records which task and model it stands for, and summary.md compares the
//! instances of one task side by side.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diagnostic::Position;
use super::resolved::Task;

/// Separates a task's name from its model's label in an instance's name.
pub const INSTANCE_SEPARATOR: char = '@';

/// Longest instance name: one component of a snapshot ref.
const MAX_INSTANCE_NAME: usize = 100;

/// What a matrix instance stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixInstance {
    /// The task's name in its task file.
    pub task: String,
    /// The model spec as the matrix gives it (`models:` or `--model`).
    pub model: String,
}

/// One model of a matrix.
#[derive(Debug, Clone)]
pub(crate) struct MatrixModel {
    /// The spec as written: what reports show.
    pub(crate) written: String,
    /// The spec with a `replay:` path made absolute: what the task runs.
    pub(crate) resolved: String,
    /// Where it was written (no position for `--model`).
    pub(crate) position: Position,
}

/// One instance of `task` per model, named `<task>@<label>`; or, when two
/// models cannot be told apart by name, the later one's index and why.
pub(crate) fn instances(task: &Task, models: &[MatrixModel]) -> Result<Vec<Task>, (usize, String)> {
    let room = MAX_INSTANCE_NAME.saturating_sub(task.name.len() + 1);
    let written: Vec<&str> = models.iter().map(|m| m.written.as_str()).collect();
    let labels = labels(&written, room);
    if let Some((a, b)) = first_clash(&labels) {
        return Err((
            b,
            format!(
                "models `{}` and `{}` of task `{}` both make the instance name `{}{INSTANCE_SEPARATOR}{}`",
                written[a], written[b], task.name, task.name, labels[a]
            ),
        ));
    }
    Ok(models
        .iter()
        .zip(labels)
        .map(|(model, label)| {
            let mut instance = task.clone();
            instance.name = format!("{}{INSTANCE_SEPARATOR}{label}", task.name);
            instance.model = Some(model.resolved.clone());
            instance.matrix = Some(MatrixInstance {
                task: task.name.clone(),
                model: model.written.clone(),
            });
            instance
        })
        .collect())
}

/// Labels for `specs`: the model's own name (a cassette's file name for
/// `replay:`) when those are distinct, otherwise the whole spec, each made
/// fit for a ref name and at most `room` bytes.
fn labels(specs: &[&str], room: usize) -> Vec<String> {
    let short: Vec<String> = specs
        .iter()
        .map(|spec| ref_safe(short_name(spec), room))
        .collect();
    if first_clash(&short).is_none() {
        return short;
    }
    specs.iter().map(|spec| ref_safe(spec, room)).collect()
}

/// `gpt-4.1` of `openai:gpt-4.1`; `a` of `replay:cassettes/a.jsonl`.
fn short_name(spec: &str) -> &str {
    match spec.split_once(':') {
        Some(("replay", path)) => {
            let file = path.rsplit('/').next().unwrap_or(path);
            file.strip_suffix(".jsonl").unwrap_or(file)
        }
        Some((_, model)) => model,
        None => spec,
    }
}

/// `text` as one component of a ref: letters, digits, `-`, `_` and `.`
/// (anything else becomes `-`), no `..`, not starting with `.` or `-`, not
/// ending with `.` or `.lock`, at most `room` bytes.
fn ref_safe(text: &str, room: usize) -> String {
    let mut label = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            c
        } else {
            '-'
        };
        if !(c == '.' && label.ends_with('.')) {
            label.push(c);
        }
    }
    label.truncate(room);
    let mut label = label
        .trim_start_matches(['.', '-'])
        .trim_end_matches('.')
        .to_owned();
    if let Some(stem) = label.strip_suffix(".lock") {
        label = format!("{stem}-lock");
    }
    if label.is_empty() {
        label.push_str("model");
    }
    label
}

/// The first two equal labels, by index.
fn first_clash(labels: &[String]) -> Option<(usize, usize)> {
    labels.iter().enumerate().find_map(|(b, label)| {
        labels[..b]
            .iter()
            .position(|earlier| earlier == label)
            .map(|a| (a, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_model_names_when_distinct() {
        assert_eq!(
            labels(&["openai:gpt-4.1", "anthropic:claude-sonnet-4-5"], 35),
            ["gpt-4.1", "claude-sonnet-4-5"]
        );
        assert_eq!(
            labels(&["replay:cassettes/a.jsonl", "replay:/abs/b.jsonl"], 35),
            ["a", "b"]
        );
    }

    #[test]
    fn the_same_model_on_two_providers_keeps_the_provider() {
        assert_eq!(
            labels(&["openai:gpt-4o", "azure:gpt-4o"], 35),
            ["openai-gpt-4o", "azure-gpt-4o"]
        );
    }

    #[test]
    fn labels_are_valid_ref_components() {
        assert_eq!(
            ref_safe("meta-llama/Llama-3.1 8B", 35),
            "meta-llama-Llama-3.1-8B"
        );
        assert_eq!(ref_safe("..x..y.", 35), "x.y");
        assert_eq!(ref_safe("model.lock", 35), "model-lock");
        assert_eq!(ref_safe("@@@", 35), "model");
        assert_eq!(ref_safe("abcdef", 3), "abc");
        assert_eq!(ref_safe("ab..", 3), "ab");
    }
}

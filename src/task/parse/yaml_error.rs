//! YAML syntax and resource-limit errors, as task-file errors.

use serde_saphyr::Location;
use serde_saphyr::budget::BudgetBreach;

use crate::task::diagnostic::{SourceFile, TaskFileError};

/// Turns a YAML syntax or resource-limit error into a task-file error.
pub(super) fn yaml_error(source: &SourceFile, error: &serde_saphyr::Error) -> TaskFileError {
    let position = match error.location() {
        Some(location) if location != Location::UNKNOWN => source.position(location, 1),
        _ => source.whole(),
    };
    let too_complex = |what: &str| {
        TaskFileError::new(
            format!("YAML too complex for a task file: {what}"),
            position.clone(),
        )
        .help("task files are small and flat; remove the nesting or the anchors and aliases")
    };
    // Budget breaches met while replaying an alias come wrapped; classify
    // the original error.
    let mut original = error;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = original
    {
        original = error;
    }
    match original {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => too_complex("nested more than 32 levels deep"),
            BudgetBreach::Documents { .. } => TaskFileError::new(
                "a task file holds one YAML document; found a second `---`",
                position,
            )
            .help("put several tasks in one `tasks:` list, or split them into separate files"),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::RecordedAnchorBytes { .. }
            | BudgetBreach::MergeKeys { .. } => too_complex("too many anchors, aliases or merges"),
            _ => too_complex("too many values"),
        },
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => {
            too_complex("aliases expand to too many values")
        }
        other => {
            let text = other.render_with_formatter(&serde_saphyr::UserMessageFormatter);
            // The position is shown separately; drop the text's own copy.
            let message = match text.find(" at line ") {
                Some(index) => &text[..index],
                None => text.as_str(),
            };
            if message.contains("recursion limit") {
                return too_complex("nested more than 32 levels deep");
            }
            let help = if message.contains("mapping values are not allowed") {
                "a value that contains `: ` or ends with `:` must be quoted: \
                 `run: \"cargo test parse::\"`"
            } else {
                "fix the YAML syntax at this position"
            };
            TaskFileError::new(format!("invalid YAML: {message}"), position).help(help)
        }
    }
}

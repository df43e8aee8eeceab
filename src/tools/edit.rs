//! `edit_file`: exact text replacement that must match exactly once (or
//! every time, with `replace_all`). When it does not, the model is shown
//! where the text is closest to matching, so it can retry with the file's
//! real text.

use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

use super::ToolError;
use super::changes::Writer;
use super::confine::confine;
use super::fs::read_text;

/// Lines of the file shown around the closest match when `old` is not found.
const NEAREST_CONTEXT_LINES: usize = 2;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditFileArgs {
    /// File path relative to the workspace root.
    path: String,
    /// The exact text to replace.
    old: String,
    /// The replacement text.
    new: String,
    /// Replace every occurrence instead of requiring exactly one. Default false.
    #[serde(default)]
    replace_all: bool,
}

pub(crate) fn edit_file(
    workspace: &Path,
    args: EditFileArgs,
    changes: &Writer,
) -> Result<String, ToolError> {
    let path = confine(workspace, &args.path)?;
    if args.old.is_empty() {
        return Err(ToolError::Failed(
            "`old` is empty; give the exact text to replace (use write_file to create a file)"
                .to_string(),
        ));
    }
    if args.old == args.new {
        return Err(ToolError::Failed(
            "`old` and `new` are identical; nothing would change".to_string(),
        ));
    }
    let text = read_text(&path)?;
    let positions: Vec<usize> = text.match_indices(&args.old).map(|(at, _)| at).collect();
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    match positions.len() {
        0 => Err(ToolError::Failed(no_match_message(
            &path.display,
            &text,
            &args.old,
        ))),
        n if n > 1 && !args.replace_all => {
            let lines: Vec<String> = positions.iter().map(|&p| line_of(p).to_string()).collect();
            Err(ToolError::Failed(format!(
                "`old` occurs {n} times in `{}` (at lines {}); include more surrounding lines to make it unique, \
                 or set replace_all to true to replace every occurrence",
                path.display,
                lines.join(", ")
            )))
        }
        n => {
            let first_line = line_of(positions[0]);
            let edited = text.replace(&args.old, &args.new);
            changes.record(&path.absolute);
            super::replace::replace_file(&path.absolute, edited.as_bytes()).map_err(|e| {
                ToolError::Failed(format!("could not write `{}`: {e}", path.display))
            })?;
            Ok(if n == 1 {
                format!(
                    "edited `{}`: replaced 1 occurrence at line {first_line}",
                    path.display
                )
            } else {
                format!(
                    "edited `{}`: replaced {n} occurrences (first at line {first_line})",
                    path.display
                )
            })
        }
    }
}

/// Explains a failed match: where the closest lines are, and whether the
/// text would match with different indentation.
fn no_match_message(display: &str, text: &str, old: &str) -> String {
    let file_lines: Vec<&str> = text.lines().collect();
    let old_lines: Vec<&str> = old.lines().collect();
    let mut message = format!("`old` was not found in `{display}`.");

    let trimmed_old: Vec<&str> = old_lines.iter().map(|l| l.trim()).collect();
    if !trimmed_old.is_empty() && trimmed_old.len() <= file_lines.len() {
        let whitespace_match = file_lines.windows(trimmed_old.len()).position(|window| {
            window
                .iter()
                .map(|l| l.trim())
                .eq(trimmed_old.iter().copied())
        });
        if let Some(index) = whitespace_match {
            message.push_str(&format!(
                " The same text with different whitespace or indentation starts at line {}; copy the exact \
                 whitespace from the lines below.",
                index + 1
            ));
        }
    }

    let Some(anchor) = old_lines.iter().map(|l| l.trim()).find(|l| !l.is_empty()) else {
        return message;
    };
    let best = file_lines
        .iter()
        .enumerate()
        .map(|(index, line)| (index, strsim::normalized_levenshtein(line.trim(), anchor)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((index, score)) = best
        && score > 0.3
    {
        let from = index.saturating_sub(NEAREST_CONTEXT_LINES);
        let to = (index + old_lines.len().max(1) + NEAREST_CONTEXT_LINES).min(file_lines.len());
        message.push_str(&format!(" The closest lines are {}-{}:\n", from + 1, to));
        for (offset, line) in file_lines[from..to].iter().enumerate() {
            message.push_str(&format!("{:>6}\t{line}\n", from + offset + 1));
        }
        message.push_str(
            "Read the file again if it may have changed, then retry with its exact text.",
        );
    } else {
        message.push_str(" No similar line exists; read the file to see its current content.");
    }
    message
}

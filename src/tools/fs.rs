//! `read_file`, `list_dir` and `write_file`.

use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

use super::ToolError;
use super::changes::Writer;
use super::confine::{ConfinedPath, confine, is_private_dir};
use super::replace::replace_file;

/// Lines returned by one `read_file` call at most.
pub(super) const PAGE_LINES: usize = 2000;
/// Bytes returned by one `read_file` call at most.
pub(super) const PAGE_BYTES: usize = 100 * 1024;
/// Longer lines are cut (minified files would otherwise fill a page).
pub(super) const MAX_LINE_CHARS: usize = 2000;
/// Files larger than this are not read at all.
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Bytes inspected for a NUL when deciding whether a file is binary.
const BINARY_SNIFF_BYTES: usize = 8192;
/// Entries shown by one `list_dir` call at most.
pub(super) const MAX_DIR_ENTRIES: usize = 1000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadFileArgs {
    /// File path relative to the workspace root.
    path: String,
    /// First line to show (1-based). Default 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    start_line: Option<usize>,
    /// Last line to show (inclusive). Default: end of file (or of the page).
    #[serde(default)]
    #[schemars(range(min = 1))]
    end_line: Option<usize>,
}

pub(crate) fn read_file(workspace: &Path, args: ReadFileArgs) -> Result<String, ToolError> {
    let path = confine(workspace, &args.path)?;
    let text = read_text(&path)?;
    let lines: Vec<&str> = text.lines().collect();
    let total = lines.len();
    if total == 0 {
        return Ok(format!("{}: empty file (0 lines)", path.display));
    }
    let start = args.start_line.unwrap_or(1).max(1);
    if start > total {
        return Err(ToolError::Failed(format!(
            "start_line {start} is past the end of `{}`, which has {total} lines",
            path.display
        )));
    }
    let end = args.end_line.unwrap_or(total).min(total);
    if end < start {
        return Err(ToolError::Failed(format!(
            "end_line {end} is before start_line {start}"
        )));
    }

    let mut body = String::new();
    let mut last = start - 1;
    for (index, line) in lines.iter().enumerate().take(end).skip(start - 1) {
        let number = index + 1;
        if number - start >= PAGE_LINES || body.len() >= PAGE_BYTES {
            break;
        }
        body.push_str(&format!("{number:>6}\t{}\n", cut_line(line)));
        last = number;
    }
    let mut header = format!("{}: lines {start}-{last} of {total}", path.display);
    if last < end {
        header.push_str(&format!(
            " (page limit reached; call read_file with start_line={} for more)",
            last + 1
        ));
    }
    Ok(format!("{header}\n{body}"))
}

fn cut_line(line: &str) -> String {
    if line.chars().count() <= MAX_LINE_CHARS {
        return line.to_string();
    }
    let kept: String = line.chars().take(MAX_LINE_CHARS).collect();
    format!(
        "{kept}… [line cut: {} characters in total]",
        line.chars().count()
    )
}

/// Reads a confined path as UTF-8 text, with messages the model can act on
/// for directories, missing files, huge files and binary files.
pub(crate) fn read_text(path: &ConfinedPath) -> Result<String, ToolError> {
    let metadata = std::fs::metadata(&path.absolute).map_err(|e| missing(path, &e))?;
    if metadata.is_dir() {
        return Err(ToolError::Failed(format!(
            "`{}` is a directory; use list_dir to see what it contains",
            path.display
        )));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(ToolError::Failed(format!(
            "`{}` is {} bytes, too large to read; use grep to find the part you need",
            path.display,
            metadata.len()
        )));
    }
    let bytes = std::fs::read(&path.absolute).map_err(|e| missing(path, &e))?;
    let sniff = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if sniff.contains(&0) {
        return Err(binary(path, bytes.len()));
    }
    String::from_utf8(bytes).map_err(|e| binary(path, e.as_bytes().len()))
}

fn binary(path: &ConfinedPath, len: usize) -> ToolError {
    ToolError::Failed(format!(
        "refused: `{}` is a binary file ({len} bytes) or not UTF-8 text; binary files are not shown",
        path.display
    ))
}

fn missing(path: &ConfinedPath, error: &std::io::Error) -> ToolError {
    if error.kind() == std::io::ErrorKind::NotFound {
        ToolError::Failed(format!(
            "`{}` does not exist; use list_dir or glob to find the right path",
            path.display
        ))
    } else {
        ToolError::Failed(format!("could not read `{}`: {error}", path.display))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListDirArgs {
    /// Directory relative to the workspace root. Default: the root (`.`).
    #[serde(default)]
    path: Option<String>,
}

pub(crate) fn list_dir(workspace: &Path, args: ListDirArgs) -> Result<String, ToolError> {
    let path = confine(workspace, args.path.as_deref().unwrap_or("."))?;
    let entries = std::fs::read_dir(&path.absolute).map_err(|e| {
        if path.absolute.is_file() {
            ToolError::Failed(format!(
                "`{}` is a file, not a directory; use read_file to read it",
                path.display
            ))
        } else {
            missing(&path, &e)
        }
    })?;
    let mut listed: Vec<(String, String)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_private_dir(&name) {
            continue;
        }
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let line = if file_type.is_symlink() {
            let target = std::fs::read_link(entry.path())
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name} -> {target}")
        } else if file_type.is_dir() {
            format!("{name}/")
        } else {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            format!("{name}  ({})", human_size(size))
        };
        listed.push((name, line));
    }
    listed.sort();
    let total = listed.len();
    let mut text = format!("{}/: {total} entries\n", path.display.trim_end_matches('/'));
    for (_, line) in listed.iter().take(MAX_DIR_ENTRIES) {
        text.push_str(line);
        text.push('\n');
    }
    if total > MAX_DIR_ENTRIES {
        text.push_str(&format!(
            "… and {} more; use glob to narrow down\n",
            total - MAX_DIR_ENTRIES
        ));
    }
    Ok(text)
}

fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteFileArgs {
    /// File path relative to the workspace root.
    path: String,
    /// The complete new content of the file.
    content: String,
}

pub(crate) fn write_file(
    workspace: &Path,
    args: WriteFileArgs,
    changes: &Writer,
) -> Result<String, ToolError> {
    let path = confine(workspace, &args.path)?;
    if path.absolute.is_dir() {
        return Err(ToolError::Failed(format!(
            "`{}` is a directory; give the path of a file inside it",
            path.display
        )));
    }
    let existed = path.absolute.exists();
    changes.record(&path.absolute);
    if let Some(parent) = path.absolute.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            ToolError::Failed(format!(
                "could not create the directories of `{}`: {e}",
                path.display
            ))
        })?;
    }
    replace_file(&path.absolute, args.content.as_bytes())
        .map_err(|e| ToolError::Failed(format!("could not write `{}`: {e}", path.display)))?;
    Ok(format!(
        "{} `{}` ({} bytes, {} lines)",
        if existed { "overwrote" } else { "created" },
        path.display,
        args.content.len(),
        args.content.lines().count()
    ))
}

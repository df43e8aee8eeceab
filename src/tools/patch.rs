//! `apply_patch`: a unified diff applied all or nothing. Every hunk of every
//! file is applied in memory first; files are written only when all of them
//! apply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::ToolError;
use super::changes::Writer;
use super::confine::confine;
use super::fs::read_text;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplyPatchArgs {
    /// The unified diff text.
    patch: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HunkLine {
    Context(String),
    Remove(String),
    Add(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Hunk {
    header: String,
    old_start: usize,
    lines: Vec<HunkLine>,
    /// `\ No newline at end of file` followed the hunk's last new-side line.
    new_lacks_final_newline: bool,
}

impl Hunk {
    fn old_lines(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                HunkLine::Context(s) | HunkLine::Remove(s) => Some(s.as_str()),
                HunkLine::Add(_) => None,
            })
            .collect()
    }

    fn new_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                HunkLine::Context(s) | HunkLine::Add(s) => Some(s.clone()),
                HunkLine::Remove(_) => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FilePatch {
    old_path: Option<String>,
    new_path: Option<String>,
    hunks: Vec<Hunk>,
}

/// Git's extended header lines, which end a hunk and are otherwise skipped.
const GIT_HEADERS: &[&str] = &[
    "diff ",
    "index ",
    "new file mode",
    "deleted file mode",
    "old mode",
    "new mode",
    "similarity index",
    "dissimilarity index",
    "rename from",
    "rename to",
    "copy from",
    "copy to",
    "Binary files",
];

fn parse_patch(patch: &str) -> Result<Vec<FilePatch>, String> {
    let mut lines: Vec<&str> = patch
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let is_file_header = |i: usize| {
        lines[i].starts_with("--- ") && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ "))
    };

    let mut files: Vec<FilePatch> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if is_file_header(i) {
            let (old_path, new_path) = header_paths(&line[4..], &lines[i + 1][4..]);
            files.push(FilePatch {
                old_path,
                new_path,
                hunks: Vec::new(),
            });
            i += 2;
        } else if line.starts_with("@@") {
            let Some(file) = files.last_mut() else {
                return Err(format!(
                    "line {}: a hunk comes before any `--- a/path` / `+++ b/path` file header",
                    i + 1
                ));
            };
            let old_start = parse_hunk_header(line)
                .ok_or_else(|| format!("line {}: malformed hunk header `{line}`; expected `@@ -start,count +start,count @@`", i + 1))?;
            let mut hunk = Hunk {
                header: line.to_string(),
                old_start,
                lines: Vec::new(),
                new_lacks_final_newline: false,
            };
            i += 1;
            while i < lines.len() {
                let body = lines[i];
                if body.starts_with("@@")
                    || is_file_header(i)
                    || GIT_HEADERS.iter().any(|h| body.starts_with(h))
                {
                    break;
                }
                match body.chars().next() {
                    Some(' ') => hunk.lines.push(HunkLine::Context(body[1..].to_string())),
                    Some('-') => hunk.lines.push(HunkLine::Remove(body[1..].to_string())),
                    Some('+') => hunk.lines.push(HunkLine::Add(body[1..].to_string())),
                    Some('\\') => {
                        if !matches!(hunk.lines.last(), Some(HunkLine::Remove(_)) | None) {
                            hunk.new_lacks_final_newline = true;
                        }
                    }
                    // Editors and models often strip the space of an empty
                    // context line.
                    None => hunk.lines.push(HunkLine::Context(String::new())),
                    Some(_) => {
                        return Err(format!(
                            "line {}: `{body}` is not part of a hunk; hunk lines start with ' ', '-' or '+'",
                            i + 1
                        ));
                    }
                }
                i += 1;
            }
            file.hunks.push(hunk);
        } else {
            i += 1;
        }
    }
    if files.is_empty() {
        return Err(
            "no file header found: a unified diff names each file with `--- a/path` and `+++ b/path` lines, \
             followed by `@@ -start,count +start,count @@` hunks"
                .to_string(),
        );
    }
    if let Some(file) = files.iter().find(|f| f.hunks.is_empty()) {
        return Err(format!(
            "the patch for `{}` has no hunks",
            file.new_path
                .as_deref()
                .or(file.old_path.as_deref())
                .unwrap_or("?")
        ));
    }
    Ok(files)
}

/// The paths of a `---`/`+++` pair: timestamps dropped, `/dev/null` as
/// `None`, and git's `a/` and `b/` prefixes removed when both sides carry
/// them (or the other side is `/dev/null`).
fn header_paths(old: &str, new: &str) -> (Option<String>, Option<String>) {
    let clean = |raw: &str| -> Option<String> {
        let path = raw.split('\t').next().unwrap_or(raw).trim();
        (path != "/dev/null" && !path.is_empty()).then(|| path.to_string())
    };
    let old = clean(old);
    let new = clean(new);
    let old_prefixed = old.as_deref().is_none_or(|p| p.starts_with("a/"));
    let new_prefixed = new.as_deref().is_none_or(|p| p.starts_with("b/"));
    if old_prefixed && new_prefixed {
        (
            old.map(|p| p[2..].to_string()),
            new.map(|p| p[2..].to_string()),
        )
    } else {
        (old, new)
    }
}

fn parse_hunk_header(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("@@")?.trim_start();
    let old = rest.split_whitespace().next()?.strip_prefix('-')?;
    let start = old.split(',').next()?;
    start.parse().ok()
}

/// A file's content split into lines, remembering its line ending and
/// whether it ended with one.
struct Lines {
    lines: Vec<String>,
    crlf: bool,
    final_newline: bool,
}

impl Lines {
    fn parse(text: &str) -> Lines {
        let crlf = text.contains("\r\n");
        let final_newline = text.ends_with('\n') || text.is_empty();
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                .collect()
        };
        Lines {
            lines,
            crlf,
            final_newline,
        }
    }

    fn render(&self) -> String {
        if self.lines.is_empty() {
            return String::new();
        }
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut text = self.lines.join(eol);
        if self.final_newline {
            text.push_str(eol);
        }
        text
    }
}

/// Applies `hunks` in order to `text`; on failure says which hunk and why.
fn apply_hunks(display: &str, text: &str, hunks: &[Hunk]) -> Result<String, String> {
    let mut file = Lines::parse(text);
    let mut cursor = 0usize;
    let mut delta: isize = 0;
    for (number, hunk) in hunks.iter().enumerate() {
        let old = hunk.old_lines();
        let new = hunk.new_lines();
        let expected = (hunk.old_start.saturating_sub(1) as isize + delta).max(0) as usize;
        let at = if old.is_empty() {
            Some(expected.clamp(cursor, file.lines.len()))
        } else {
            find_block(&file.lines, &old, cursor, expected, |a, b| a == b).or_else(|| {
                find_block(&file.lines, &old, cursor, expected, |a, b| {
                    a.trim_end() == b.trim_end()
                })
            })
        };
        let Some(at) = at else {
            return Err(hunk_failure(display, number + 1, hunk, &file.lines, &old));
        };
        let touches_end = at + old.len() == file.lines.len();
        file.lines.splice(at..at + old.len(), new.iter().cloned());
        cursor = at + new.len();
        delta += new.len() as isize - old.len() as isize;
        if touches_end && hunk.new_lacks_final_newline {
            file.final_newline = false;
        } else if touches_end && hunk.lines.iter().any(|l| matches!(l, HunkLine::Add(_))) {
            file.final_newline = true;
        }
    }
    Ok(file.render())
}

/// The start of `block` in `lines` at or after `from`, the occurrence
/// nearest to `expected` winning.
fn find_block(
    lines: &[String],
    block: &[&str],
    from: usize,
    expected: usize,
    same: impl Fn(&str, &str) -> bool,
) -> Option<usize> {
    if block.len() > lines.len() {
        return None;
    }
    (from..=lines.len() - block.len())
        .filter(|&start| {
            lines[start..start + block.len()]
                .iter()
                .zip(block)
                .all(|(a, b)| same(a, b))
        })
        .min_by_key(|&start| start.abs_diff(expected))
}

fn hunk_failure(
    display: &str,
    number: usize,
    hunk: &Hunk,
    lines: &[String],
    old: &[&str],
) -> String {
    let mut message = format!(
        "hunk {number} of `{display}` ({}) does not apply: its context and removed lines are not in the file",
        hunk.header
    );
    // Point at the first line of the hunk that the file does not have.
    let first_missing = old.iter().find(|line| {
        !line.trim().is_empty() && !lines.iter().any(|l| l.trim_end() == line.trim_end())
    });
    if let Some(missing) = first_missing {
        message.push_str(&format!(
            "; for example the line `{}` does not occur",
            missing.trim()
        ));
    } else {
        message.push_str("; each line occurs, but not together in this order (is the hunk from an older version of the file?)");
    }
    let anchor = old.iter().map(|l| l.trim()).find(|l| !l.is_empty());
    if let Some(anchor) = anchor {
        let best = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i, strsim::normalized_levenshtein(l.trim(), anchor)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((index, score)) = best
            && score > 0.3
        {
            let from = index.saturating_sub(2);
            let to = (index + old.len() + 2).min(lines.len());
            message.push_str(&format!(
                "\nThe closest lines of the file are {}-{}:\n",
                from + 1,
                to
            ));
            for (offset, line) in lines[from..to].iter().enumerate() {
                message.push_str(&format!("{:>6}\t{line}\n", from + offset + 1));
            }
        }
    }
    message
}

/// Every file the patch touches: workspace-relative display name and
/// content (`None` when it does not exist, yet or any more).
type FileStates = BTreeMap<PathBuf, (String, Option<String>)>;

/// A file's current state: from `state` when an earlier section of the
/// patch touched it, from disk otherwise.
fn load_file(
    workspace: &Path,
    state: &mut FileStates,
    raw: &str,
) -> Result<(PathBuf, String, Option<String>), ToolError> {
    let path = confine(workspace, raw)?;
    if let Some((display, content)) = state.get(&path.absolute) {
        return Ok((path.absolute, display.clone(), content.clone()));
    }
    let content = if path.absolute.exists() {
        Some(read_text(&path)?)
    } else {
        None
    };
    state.insert(
        path.absolute.clone(),
        (path.display.clone(), content.clone()),
    );
    Ok((path.absolute, path.display, content))
}

/// What the patch does to one file.
enum Change {
    Write { path: PathBuf, content: String },
    Delete { path: PathBuf },
}

pub(crate) fn apply_patch(
    workspace: &Path,
    args: ApplyPatchArgs,
    recorder: &Writer,
) -> Result<String, ToolError> {
    let files = parse_patch(&args.patch)
        .map_err(|e| ToolError::Failed(format!("the patch could not be parsed: {e}")))?;

    let mut state: FileStates = BTreeMap::new();
    let load = |state: &mut FileStates, raw: &str| load_file(workspace, state, raw);
    let mut failures: Vec<String> = Vec::new();
    let mut updates: Vec<(PathBuf, String, Option<String>)> = Vec::new();
    let mut summary: Vec<String> = Vec::new();
    for file in &files {
        match (&file.old_path, &file.new_path) {
            (None, None) => {
                failures.push("a file header names `/dev/null` on both sides".to_string())
            }
            (None, Some(new)) => {
                let (path, display, content) = load(&mut state, new)?;
                if content.is_some() {
                    failures.push(format!(
                        "the patch creates `{display}`, which already exists; diff against its current content or use write_file"
                    ));
                    continue;
                }
                match apply_hunks(&display, "", &file.hunks) {
                    Ok(text) => {
                        summary.push(format!("created `{display}`"));
                        updates.push((path, display, Some(text)));
                    }
                    Err(e) => failures.push(e),
                }
            }
            (Some(old), new) => {
                let (old_abs, old_display, content) = load(&mut state, old)?;
                let Some(content) = content else {
                    failures.push(format!(
                        "the patch changes `{old_display}`, which does not exist; use /dev/null as the old side to create it"
                    ));
                    continue;
                };
                let patched = match apply_hunks(&old_display, &content, &file.hunks) {
                    Ok(text) => text,
                    Err(e) => {
                        failures.push(e);
                        continue;
                    }
                };
                match new {
                    None => {
                        summary.push(format!("deleted `{old_display}`"));
                        updates.push((old_abs, old_display, None));
                    }
                    Some(new) => {
                        let (new_abs, new_display, _) = load(&mut state, new)?;
                        if new_abs != old_abs {
                            summary.push(format!("renamed `{old_display}` to `{new_display}`"));
                            updates.push((old_abs, old_display, None));
                        } else {
                            summary.push(format!(
                                "modified `{new_display}` ({} hunk{})",
                                file.hunks.len(),
                                if file.hunks.len() == 1 { "" } else { "s" }
                            ));
                        }
                        updates.push((new_abs, new_display, Some(patched)));
                    }
                }
            }
        }
        // Later file sections see this section's result.
        for (path, display, content) in &updates {
            state.insert(path.clone(), (display.clone(), content.clone()));
        }
    }
    if !failures.is_empty() {
        return Err(ToolError::Failed(format!(
            "the patch was not applied; no file was changed.\n{}",
            failures.join("\n")
        )));
    }

    let mut changes: Vec<Change> = Vec::new();
    for (path, (_, content)) in state {
        let touched = updates.iter().any(|(p, _, _)| *p == path);
        if !touched {
            continue;
        }
        changes.push(match content {
            Some(content) => Change::Write { path, content },
            None => Change::Delete { path },
        });
    }
    for change in &changes {
        match change {
            Change::Write { path, .. } | Change::Delete { path } => recorder.record(path),
        }
    }
    write_changes(workspace, changes)?;
    Ok(format!("applied the patch: {}", summary.join(", ")))
}

fn write_changes(workspace: &Path, changes: Vec<Change>) -> Result<(), ToolError> {
    let failed = |path: &Path, e: std::io::Error| {
        ToolError::Failed(format!(
            "could not write `{}` while applying the patch: {e}",
            super::confine::display_relative(workspace, path)
        ))
    };
    for change in changes {
        match change {
            Change::Write { path, content } => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| failed(&path, e))?;
                }
                super::replace::replace_file(&path, content.as_bytes())
                    .map_err(|e| failed(&path, e))?;
            }
            Change::Delete { path } => {
                if path.exists() {
                    std::fs::remove_file(&path).map_err(|e| failed(&path, e))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_style_diff() {
        let patch = "diff --git a/src/x.rs b/src/x.rs\nindex 1..2 100644\n--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n\n c\n";
        let files = parse_patch(patch).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].old_path.as_deref(), Some("src/x.rs"));
        assert_eq!(files[0].new_path.as_deref(), Some("src/x.rs"));
        assert_eq!(
            files[0].hunks[0].lines,
            [
                HunkLine::Context("a".into()),
                HunkLine::Remove("b".into()),
                HunkLine::Add("B".into()),
                HunkLine::Context("".into()),
                HunkLine::Context("c".into()),
            ]
        );
    }

    #[test]
    fn unprefixed_paths_are_kept() {
        assert_eq!(
            header_paths("src/a.rs\t2024-01-01", "src/a.rs"),
            (Some("src/a.rs".into()), Some("src/a.rs".into()))
        );
        assert_eq!(
            header_paths("/dev/null", "b/new.txt"),
            (None, Some("new.txt".into()))
        );
    }

    #[test]
    fn hunks_apply_with_offset_and_keep_crlf() {
        let text = "zero\r\none\r\ntwo\r\nthree\r\n";
        let hunk = Hunk {
            header: "@@ -1,2 +1,2 @@".into(),
            old_start: 1,
            lines: vec![
                HunkLine::Context("two".into()),
                HunkLine::Remove("three".into()),
                HunkLine::Add("THREE".into()),
            ],
            new_lacks_final_newline: false,
        };
        assert_eq!(
            apply_hunks("f", text, &[hunk]).unwrap(),
            "zero\r\none\r\ntwo\r\nTHREE\r\n"
        );
    }

    #[test]
    fn no_newline_marker_is_honoured() {
        let patch =
            "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,1 @@\n+only\n\\ No newline at end of file\n";
        let files = parse_patch(patch).unwrap();
        assert_eq!(apply_hunks("n.txt", "", &files[0].hunks).unwrap(), "only");
    }
}

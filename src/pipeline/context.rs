//! The files a task's `context:` globs select, shown to blueprint up front.

use std::fmt::Write as _;
use std::path::Path;

use globset::{Glob, GlobSetBuilder};

/// At most this many bytes of one file are shown.
const MAX_FILE_BYTES: usize = 16 * 1024;
/// At most this many bytes of file contents are shown in all.
const MAX_TOTAL_BYTES: usize = 64 * 1024;
/// At most this many matching paths are listed.
const MAX_FILES: usize = 200;

/// Renders the files under `workspace` matching `globs` (honouring
/// .gitignore; `.git/` never), in path order: contents while the size caps
/// allow, then names only. Empty when `globs` is empty or nothing matches.
pub fn gather(workspace: &Path, globs: &[String]) -> String {
    if globs.is_empty() {
        return String::new();
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in globs {
        // Patterns were validated when the task file was loaded.
        if let Ok(glob) = Glob::new(pattern) {
            builder.add(glob);
        }
    }
    let Ok(set) = builder.build() else {
        return String::new();
    };
    let mut paths: Vec<String> = ignore::WalkBuilder::new(workspace)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
        .filter_map(|entry| {
            let relative = entry.path().strip_prefix(workspace).ok()?;
            let relative = relative.to_string_lossy().replace('\\', "/");
            set.is_match(&relative).then_some(relative)
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return String::new();
    }
    let mut text = String::from("## Context files (selected by the task's `context:` globs)\n");
    let mut total = 0usize;
    let mut listed_only = Vec::new();
    for path in paths.iter().take(MAX_FILES) {
        let contents = std::fs::read(workspace.join(path))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        match contents {
            Some(contents) if total + contents.len().min(MAX_FILE_BYTES) <= MAX_TOTAL_BYTES => {
                let shown = truncate_at_char(&contents, MAX_FILE_BYTES);
                total += shown.len();
                let _ = write!(text, "\n### {path}\n```\n{shown}");
                if !shown.ends_with('\n') {
                    text.push('\n');
                }
                if shown.len() < contents.len() {
                    let _ = writeln!(
                        text,
                        "[… {} more bytes: use read_file …]",
                        contents.len() - shown.len()
                    );
                }
                text.push_str("```\n");
            }
            _ => listed_only.push(path.as_str()),
        }
    }
    if !listed_only.is_empty() || paths.len() > MAX_FILES {
        text.push_str("\nAlso matching (not shown; binary or over the size cap):\n");
        for path in listed_only {
            let _ = writeln!(text, "- {path}");
        }
        if paths.len() > MAX_FILES {
            let _ = writeln!(text, "- … and {} more", paths.len() - MAX_FILES);
        }
    }
    text
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate_at_char(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_matching_files_in_order_and_skips_ignored_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/deep")).unwrap();
        std::fs::write(dir.path().join("src/b.py"), "b = 2\n").unwrap();
        std::fs::write(dir.path().join("src/a.py"), "a = 1\n").unwrap();
        std::fs::write(dir.path().join("src/deep/c.py"), "c = 3\n").unwrap();
        std::fs::write(dir.path().join("src/notes.txt"), "no\n").unwrap();
        std::fs::write(dir.path().join(".gitignore"), "src/deep/\n").unwrap();
        let text = gather(dir.path(), &["src/**/*.py".to_string()]);
        let a = text.find("### src/a.py").unwrap();
        let b = text.find("### src/b.py").unwrap();
        assert!(a < b);
        assert!(!text.contains("c.py"), "{text}");
        assert!(!text.contains("notes"), "{text}");
    }

    #[test]
    fn nothing_for_no_globs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(gather(dir.path(), &[]), "");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_at_char("héllo", 2), "h");
        assert_eq!(truncate_at_char("abc", 10), "abc");
    }
}

//! `glob` and `grep`: walks that respect `.gitignore` (the `ignore` crate)
//! and a real line searcher (`grep-searcher`), never `.git/`.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks::Lossy};
use ignore::WalkBuilder;
use schemars::JsonSchema;
use serde::Deserialize;

use super::ToolError;
use super::confine::{confine, display_relative};

/// Paths returned by one `glob` call at most.
pub(super) const MAX_GLOB_RESULTS: usize = 500;
/// Default and ceiling of `grep`'s `max_matches`.
pub(super) const DEFAULT_MAX_MATCHES: usize = 100;
const MAX_MAX_MATCHES: usize = 1000;
/// Matched lines are cut to this many characters.
const MAX_MATCH_LINE_CHARS: usize = 300;

/// Files under `root`, honouring `.gitignore`, `.ignore` and
/// `.git/info/exclude` (even outside a git repository), hidden files
/// included, `.git` and symlinks skipped, sorted by path.
fn walk_files(root: &Path) -> impl Iterator<Item = std::path::PathBuf> {
    WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .sort_by_file_name(|a, b| a.cmp(b))
        .build()
        .flatten()
        .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
        .map(ignore::DirEntry::into_path)
}

/// A file-name filter. A pattern without `/` matches file names at any depth
/// (`*.rs`); one with `/` matches the path relative to the search root
/// (`src/**/*.rs`).
struct PathFilter {
    matcher: GlobMatcher,
    by_name: bool,
}

impl PathFilter {
    fn new(pattern: &str) -> Result<PathFilter, ToolError> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                ToolError::Failed(format!(
                    "invalid glob `{pattern}`: {}; examples: `*.rs`, `src/**/*.py`, `tests/*_test.go`",
                    e.kind()
                ))
            })?;
        Ok(PathFilter {
            matcher: glob.compile_matcher(),
            by_name: !pattern.contains('/'),
        })
    }

    fn matches(&self, root: &Path, path: &Path) -> bool {
        if self.by_name {
            path.file_name()
                .is_some_and(|name| self.matcher.is_match(name))
        } else {
            self.matcher
                .is_match(path.strip_prefix(root).unwrap_or(path))
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobArgs {
    /// The glob pattern.
    pattern: String,
    /// Directory to search, relative to the workspace root. Default: the root.
    #[serde(default)]
    path: Option<String>,
}

pub(crate) fn glob(workspace: &Path, args: GlobArgs) -> Result<String, ToolError> {
    let root = confine(workspace, args.path.as_deref().unwrap_or("."))?;
    if !root.absolute.is_dir() {
        return Err(ToolError::Failed(format!(
            "`{}` is not a directory; give the directory to search in `path`",
            root.display
        )));
    }
    let filter = PathFilter::new(&args.pattern)?;
    let found: Vec<String> = walk_files(&root.absolute)
        .filter(|path| filter.matches(&root.absolute, path))
        .map(|path| display_relative(workspace, &path))
        .collect();
    if found.is_empty() {
        return Ok(format!(
            "no files match `{}` under `{}`",
            args.pattern, root.display
        ));
    }
    let mut text = format!("{} file(s) match `{}`\n", found.len(), args.pattern);
    for path in found.iter().take(MAX_GLOB_RESULTS) {
        text.push_str(path);
        text.push('\n');
    }
    if found.len() > MAX_GLOB_RESULTS {
        text.push_str(&format!(
            "… and {} more; use a narrower pattern or path\n",
            found.len() - MAX_GLOB_RESULTS
        ));
    }
    Ok(text)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrepArgs {
    /// Regular expression to search for.
    pattern: String,
    /// Directory or file to search, relative to the workspace root. Default: the root.
    #[serde(default)]
    path: Option<String>,
    /// Only search files matching this glob.
    #[serde(default)]
    glob: Option<String>,
    /// Match case-insensitively. Default false.
    #[serde(default)]
    case_insensitive: bool,
    /// Stop after this many matching lines.
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_MAX_MATCHES))]
    max_matches: Option<usize>,
}

pub(crate) fn grep(workspace: &Path, args: GrepArgs) -> Result<String, ToolError> {
    let root = confine(workspace, args.path.as_deref().unwrap_or("."))?;
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(args.case_insensitive)
        .build(&args.pattern)
        .map_err(|e| {
            ToolError::Failed(format!(
                "invalid regular expression `{}`: {e}",
                args.pattern
            ))
        })?;
    let filter = args.glob.as_deref().map(PathFilter::new).transpose()?;
    let max_matches = args
        .max_matches
        .unwrap_or(DEFAULT_MAX_MATCHES)
        .clamp(1, MAX_MAX_MATCHES);

    let files: Vec<std::path::PathBuf> = if root.absolute.is_file() {
        vec![root.absolute.clone()]
    } else if root.absolute.is_dir() {
        walk_files(&root.absolute)
            .filter(|path| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&root.absolute, path))
            })
            .collect()
    } else {
        return Err(ToolError::Failed(format!(
            "`{}` does not exist; use list_dir or glob to find the right path",
            root.display
        )));
    };

    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::quit(0))
        .build();
    let mut matches: Vec<String> = Vec::new();
    let mut files_with_matches = 0;
    let mut truncated = false;
    for file in &files {
        if matches.len() >= max_matches {
            truncated = true;
            break;
        }
        let display = display_relative(workspace, file);
        let before = matches.len();
        // A file that cannot be read (permissions, vanished) is skipped, as
        // ripgrep does.
        let _ = searcher.search_path(
            &matcher,
            file,
            Lossy(|line_number, line| {
                if matches.len() >= max_matches {
                    truncated = true;
                    return Ok(false);
                }
                let line = line.trim_end_matches(['\n', '\r']);
                let shown: String = line.chars().take(MAX_MATCH_LINE_CHARS).collect();
                let cut = if shown.len() < line.len() { "…" } else { "" };
                matches.push(format!("{display}:{line_number}: {shown}{cut}"));
                Ok(true)
            }),
        );
        if matches.len() > before {
            files_with_matches += 1;
        }
    }
    if matches.is_empty() {
        return Ok(format!(
            "no matches for `{}` in `{}`",
            args.pattern, root.display
        ));
    }
    let mut text = format!(
        "{} matching line(s) in {files_with_matches} file(s)\n",
        matches.len()
    );
    for line in &matches {
        text.push_str(line);
        text.push('\n');
    }
    if truncated {
        text.push_str(&format!(
            "[stopped after {max_matches} matches; narrow the search with `path` or `glob`, or raise max_matches]\n"
        ));
    }
    Ok(text)
}

//! Task-file errors with their position, rendered like a compiler's:
//! message, `--> file:line:column`, the offending line with carets, and a
//! help line saying what to do.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

/// A task file's text, kept so errors can quote the offending line.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// The path as the user named it (relative paths stay relative).
    pub(crate) path: PathBuf,
    /// The whole text.
    pub(crate) text: String,
}

impl SourceFile {
    /// The text of line `line` (1-based) without its line break.
    fn line_text(&self, line: u64) -> Option<&str> {
        let index = usize::try_from(line.checked_sub(1)?).ok()?;
        self.text.lines().nth(index)
    }

    /// A position in this file, with the quoted line, for `location` (a
    /// node of this file's tree) underlining `len` characters.
    pub(crate) fn position(&self, location: Location, len: u64) -> Position {
        let line = location.line();
        let column = location.column();
        let snippet = self
            .line_text(line)
            .map(|text| Box::new(Snippet::new(text, column.saturating_sub(1), len)));
        Position {
            file: Some(self.path.clone()),
            line,
            column,
            snippet,
        }
    }

    /// A position covering the node at `location`, underlining its span
    /// (or one character when the span is unknown or spans several lines).
    pub(crate) fn at(&self, location: Location) -> Position {
        if location == Location::UNKNOWN {
            return self.whole();
        }
        self.position(location, location.span().len())
    }

    /// A position naming the file only.
    pub(crate) fn whole(&self) -> Position {
        Position::file(&self.path)
    }
}

/// Longest source line quoted in full; longer ones are cut around the
/// error so a minified or generated file does not flood the terminal.
const MAX_QUOTED_CHARS: u64 = 100;

/// The quoted source line of a position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snippet {
    /// The line as shown (maybe cut, with `...` marks).
    text: String,
    /// Characters of `text` before the marked span.
    start: u64,
    /// Characters marked.
    underline: u64,
}

impl Snippet {
    /// Quotes `line`, marking `len` characters from character `start`.
    fn new(line: &str, start: u64, len: u64) -> Snippet {
        let chars: Vec<char> = line.chars().collect();
        let total = u64::try_from(chars.len()).unwrap_or(u64::MAX);
        let start = start.min(total);
        let underline = len.min(total - start).max(1);
        if total <= MAX_QUOTED_CHARS {
            return Snippet {
                text: line.to_owned(),
                start,
                underline,
            };
        }
        let from = start.saturating_sub(MAX_QUOTED_CHARS / 2);
        let to = (from + MAX_QUOTED_CHARS).min(total);
        let slice = |a: u64, b: u64| -> String {
            let a = usize::try_from(a).unwrap_or(usize::MAX).min(chars.len());
            let b = usize::try_from(b).unwrap_or(usize::MAX).min(chars.len());
            chars[a..b].iter().collect()
        };
        let prefix = if from > 0 { "..." } else { "" };
        let suffix = if to < total { "..." } else { "" };
        Snippet {
            text: format!("{prefix}{}{suffix}", slice(from, to)),
            start: start - from + if from > 0 { 3 } else { 0 },
            underline: underline.min(to - start).max(1),
        }
    }
}

/// Where an error is: a file, and when known a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    file: Option<PathBuf>,
    line: u64,
    column: u64,
    snippet: Option<Box<Snippet>>,
}

impl Position {
    /// A position naming a file only.
    pub(crate) fn file(path: &Path) -> Position {
        Position {
            file: Some(path.to_owned()),
            line: 0,
            column: 0,
            snippet: None,
        }
    }

    /// No position at all (for errors about command-line patterns).
    pub(crate) fn none() -> Position {
        Position {
            file: None,
            line: 0,
            column: 0,
            snippet: None,
        }
    }

    fn header(&self) -> Option<String> {
        let file = self.file.as_ref()?.display().to_string();
        Some(if self.line == 0 {
            file
        } else {
            format!("{file}:{}:{}", self.line, self.column)
        })
    }
}

/// One error in a task file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFileError {
    message: String,
    position: Position,
    related: Option<Box<(Position, String)>>,
    help: Option<String>,
}

impl TaskFileError {
    pub(crate) fn new(message: impl Into<String>, position: Position) -> TaskFileError {
        TaskFileError {
            message: message.into(),
            position,
            related: None,
            help: None,
        }
    }

    /// Adds a `= help:` line.
    pub(crate) fn help(mut self, help: impl Into<String>) -> TaskFileError {
        self.help = Some(help.into());
        self
    }

    /// Puts `prefix` before the message.
    pub(crate) fn prefixed(mut self, prefix: &str) -> TaskFileError {
        self.message.insert_str(0, prefix);
        self
    }

    /// Adds a second place that explains the error (for duplicates).
    pub(crate) fn related(mut self, position: Position, label: impl Into<String>) -> TaskFileError {
        self.related = Some(Box::new((position, label.into())));
        self
    }

    /// The message, without position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The task file, when the error is in one.
    pub fn file(&self) -> Option<&Path> {
        self.position.file.as_deref()
    }

    /// Line (1-based), or 0 when the error concerns the whole file.
    pub fn line(&self) -> u64 {
        self.position.line
    }

    /// Column (1-based, in characters), or 0 when unknown.
    pub fn column(&self) -> u64 {
        self.position.column
    }

    /// What to do about it, when the message does not say it already.
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The other place the error involves, as `file:line:column`.
    pub fn related_position(&self) -> Option<String> {
        self.related
            .as_deref()
            .and_then(|(position, _)| position.header())
    }

    fn render(&self, out: &mut String, style: &Style) {
        let width = [
            Some(&self.position),
            self.related.as_deref().map(|(p, _)| p),
        ]
        .into_iter()
        .flatten()
        .map(|p| p.line.to_string().len())
        .max()
        .unwrap_or(1)
            + 1;
        let _ = writeln!(
            out,
            "{}: {}",
            style.paint(Style::ERROR, "error"),
            style.paint(Style::BOLD, &self.message)
        );
        render_position(out, style, width, "-->", &self.position, None, '^');
        if let Some((position, label)) = self.related.as_deref() {
            render_position(out, style, width, ":::", position, Some(label), '-');
        }
        if let Some(help) = &self.help {
            let _ = writeln!(
                out,
                "{}{} {help}",
                " ".repeat(width + 1),
                style.paint(Style::BOLD, "= help:")
            );
        }
    }
}

fn render_position(
    out: &mut String,
    style: &Style,
    width: usize,
    arrow: &str,
    position: &Position,
    label: Option<&str>,
    mark: char,
) {
    let Some(header) = position.header() else {
        return;
    };
    let _ = writeln!(
        out,
        "{}{} {header}",
        " ".repeat(width),
        style.paint(Style::GUTTER, arrow)
    );
    let Some(snippet) = &position.snippet else {
        return;
    };
    let bar = style.paint(Style::GUTTER, "|");
    let _ = writeln!(out, "{}{bar}", " ".repeat(width + 1));
    let number = style.paint(Style::GUTTER, &format!("{:>width$}", position.line));
    let _ = writeln!(out, "{number} {bar} {}", snippet.text);
    // Reuse tabs of the source line so the carets line up under it.
    let indent: String = snippet
        .text
        .chars()
        .take(usize::try_from(snippet.start).unwrap_or(usize::MAX))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let marks = mark
        .to_string()
        .repeat(usize::try_from(snippet.underline).unwrap_or(1));
    let tone = if mark == '^' {
        Style::ERROR
    } else {
        Style::GUTTER
    };
    let mut line = format!(
        "{}{bar} {indent}{}",
        " ".repeat(width + 1),
        style.paint(tone, &marks)
    );
    if let Some(label) = label {
        line.push(' ');
        line.push_str(&style.paint(tone, label));
    }
    let _ = writeln!(out, "{line}");
}

/// ANSI styling, or none.
struct Style {
    color: bool,
}

impl Style {
    const ERROR: &'static str = "\x1b[1;31m";
    const GUTTER: &'static str = "\x1b[1;34m";
    const BOLD: &'static str = "\x1b[1m";

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Every error found in the task files of one run, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFileErrors {
    errors: Vec<TaskFileError>,
}

impl TaskFileErrors {
    /// Collects `errors`, dropping exact repeats (a bad default inherited by
    /// several tasks is reported once). Returns `None` when there are none.
    pub(crate) fn from_errors(errors: Vec<TaskFileError>) -> Option<TaskFileErrors> {
        let mut unique: Vec<TaskFileError> = Vec::with_capacity(errors.len());
        for error in errors {
            if !unique.contains(&error) {
                unique.push(error);
            }
        }
        (!unique.is_empty()).then_some(TaskFileErrors { errors: unique })
    }

    /// The individual errors.
    pub fn errors(&self) -> &[TaskFileError] {
        &self.errors
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: an empty set of errors is never constructed.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Renders every error, then a count line; with `color`, uses ANSI colours.
    pub fn render(&self, color: bool) -> String {
        let style = Style { color };
        let mut out = String::new();
        for error in &self.errors {
            error.render(&mut out, &style);
            out.push('\n');
        }
        let mut files: Vec<&Path> = self.errors.iter().filter_map(TaskFileError::file).collect();
        files.sort();
        files.dedup();
        let errors = plural(self.errors.len(), "error", "errors");
        let summary = match files.len() {
            0 => errors,
            n => format!("{errors} in {}", plural(n, "task file", "task files")),
        };
        let _ = writeln!(
            out,
            "{}: {}",
            style.paint(Style::ERROR, "error"),
            style.paint(
                Style::BOLD,
                &format!("{summary}; fix them, then check again with `kkrun validate FILES`")
            )
        );
        out
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl std::fmt::Display for TaskFileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.render(false).trim_end())
    }
}

impl std::error::Error for TaskFileErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from("tasks/broken.yaml"),
            text: text.to_owned(),
        }
    }

    #[test]
    fn renders_like_a_compiler() {
        let source = file("version: 1\nname: x\nprompt: p\n\n\n\nchekcs:\n  - run: x\n");
        let tree = crate::task::node::parse(&source.text).unwrap();
        let crate::task::node::Node::Map(entries) = &tree.value else {
            panic!("not a map")
        };
        let key = &entries[3].0;
        let error = TaskFileError::new(
            "unknown key `chekcs` (hint: did you mean `checks`?)",
            source.at(key.referenced),
        )
        .help("valid keys here: version, name");
        let errors = TaskFileErrors::from_errors(vec![error]).unwrap();
        assert_eq!(
            errors.render(false),
            "error: unknown key `chekcs` (hint: did you mean `checks`?)\n  \
             --> tasks/broken.yaml:7:1\n   |\n 7 | chekcs:\n   | ^^^^^^\n   \
             = help: valid keys here: version, name\n\n\
             error: 1 error in 1 task file; fix them, then check again with `kkrun validate FILES`\n"
        );
    }

    #[test]
    fn long_lines_are_cut_around_the_error() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let snippet = Snippet::new(&line, 500, 1);
        assert!(snippet.text.starts_with("...") && snippet.text.ends_with("..."));
        assert_eq!(snippet.text.chars().nth(53), Some('X'));
        assert_eq!((snippet.start, snippet.underline), (53, 1));
        let short = Snippet::new("key: value", 5, 50);
        assert_eq!((short.start, short.underline), (5, 5));
    }

    #[test]
    fn related_positions_widen_the_gutter_and_repeats_collapse() {
        let source = file(&"\n".repeat(11).to_string().replace('\n', "a: 1\n"));
        let first = source.position(crate::task::node::parse("a: 1").unwrap().referenced, 1);
        let error = TaskFileError::new("duplicate", first.clone())
            .related(Position { line: 11, ..first }, "first defined here");
        let errors = TaskFileErrors::from_errors(vec![error.clone(), error]).unwrap();
        assert_eq!(errors.len(), 1);
        let text = errors.render(false);
        assert!(text.contains("   --> tasks/broken.yaml:1:1\n"), "{text}");
        assert!(text.contains("   ::: tasks/broken.yaml:11:1\n"), "{text}");
    }
}

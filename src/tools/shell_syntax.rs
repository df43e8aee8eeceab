//! Bash command lines as the shell policy sees them: parsed with the
//! tree-sitter bash grammar into the simple commands they run, each a list
//! of words with quotes and backslashes already removed.
//!
//! Every `command` node of the syntax tree is collected, wherever it sits:
//! in pipelines, `&&`/`||`/`;` lists, subshells, braces, `if`/`while`/`for`
//! bodies, function bodies, command and process substitutions. A tree with
//! a syntax error is refused rather than guessed at.

use tree_sitter::{Node, Parser};

/// One word of a simple command after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word's value; expansions keep their source text (`$HOME`).
    pub text: String,
    /// True when part of the word is only known when it runs: a parameter,
    /// command or arithmetic expansion.
    pub expanded: bool,
    /// True when the word has unquoted glob or brace characters, which the
    /// shell may expand into other words.
    pub pattern: bool,
}

impl Word {
    /// True when the shell passes the word on exactly as written.
    pub fn is_literal(&self) -> bool {
        !self.expanded && !self.pattern
    }
}

/// One simple command: a program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimpleCommand {
    /// The command's words (program first); leading `NAME=value`
    /// assignments and redirections are not words.
    pub words: Vec<Word>,
    /// The command as written in the source, whitespace collapsed.
    pub source: String,
    /// The first simple command of an earlier part of the same pipeline,
    /// or of a process substitution among the arguments: what may feed
    /// this command's input.
    pub fed_by: Vec<SimpleCommand>,
    /// A here-document given to the command as its input.
    pub heredoc: Option<String>,
}

/// Why a command line cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// What is wrong, for the model.
    pub reason: String,
}

/// Parses `script` and returns its simple commands in source order.
pub(crate) fn simple_commands(script: &str) -> Result<Vec<SimpleCommand>, SyntaxError> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_bash::LANGUAGE.into())
        .map_err(|e| SyntaxError {
            reason: format!("the bash grammar could not be loaded: {e}"),
        })?;
    let tree = parser.parse(script, None).ok_or_else(|| SyntaxError {
        reason: "the bash parser gave up on the command".to_string(),
    })?;
    let root = tree.root_node();
    if root.has_error() {
        return Err(SyntaxError {
            reason: describe_error(root, script),
        });
    }
    let mut out = Vec::new();
    collect(root, script, &mut out, 0)?;
    Ok(out)
}

/// Names the first syntax error of the tree with its line and column.
fn describe_error(root: Node<'_>, script: &str) -> String {
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let position = node.start_position();
            let near: String = script
                .get(node.start_byte()..)
                .unwrap_or("")
                .chars()
                .take(30)
                .collect::<String>()
                .replace('\n', "\\n");
            let what = if node.is_missing() {
                format!("`{}` is missing", node.kind())
            } else {
                "unexpected text".to_string()
            };
            return format!(
                "syntax error at line {}, column {}: {what} near `{near}`",
                position.row + 1,
                position.column + 1
            );
        }
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    "syntax error".to_string()
}

/// How deep the syntax tree may nest (subshells in substitutions in
/// subshells ...); deeper is refused rather than risking the stack.
const MAX_DEPTH: usize = 256;

fn collect(
    node: Node<'_>,
    src: &str,
    out: &mut Vec<SimpleCommand>,
    depth: usize,
) -> Result<(), SyntaxError> {
    if depth > MAX_DEPTH {
        return Err(SyntaxError {
            reason: format!("the command nests more than {MAX_DEPTH} levels deep"),
        });
    }
    let depth = depth + 1;
    match node.kind() {
        "command" => {
            let command = simple_command(node, src, depth)?;
            out.push(command);
            // Substitutions inside the words run commands of their own.
            let mut cursor = node.walk();
            for child in node.children(&mut cursor) {
                collect(child, src, out, depth)?;
            }
        }
        "pipeline" => {
            let mut upstream: Vec<SimpleCommand> = Vec::new();
            let mut cursor = node.walk();
            for child in node.named_children(&mut cursor) {
                let start = out.len();
                collect(child, src, out, depth)?;
                for command in &mut out[start..] {
                    command.fed_by.extend(upstream.iter().cloned());
                }
                if let Some(first) = out.get(start) {
                    let mut first = first.clone();
                    first.fed_by.clear();
                    upstream.push(first);
                }
            }
        }
        "redirected_statement" => {
            let heredoc = heredoc_body(node, src);
            let start = out.len();
            let mut cursor = node.walk();
            for child in node.children(&mut cursor) {
                collect(child, src, out, depth)?;
            }
            if let (Some(body), Some(first)) = (heredoc, out.get_mut(start)) {
                first.heredoc = Some(body);
            }
        }
        _ => {
            let mut cursor = node.walk();
            for child in node.children(&mut cursor) {
                collect(child, src, out, depth)?;
            }
        }
    }
    Ok(())
}

fn heredoc_body(statement: Node<'_>, src: &str) -> Option<String> {
    let mut cursor = statement.walk();
    let redirect = statement
        .children(&mut cursor)
        .find(|child| child.kind() == "heredoc_redirect")?;
    let mut inner = redirect.walk();
    let body = redirect
        .children(&mut inner)
        .find(|child| child.kind() == "heredoc_body")?;
    Some(text(body, src).to_string())
}

fn simple_command(node: Node<'_>, src: &str, depth: usize) -> Result<SimpleCommand, SyntaxError> {
    let mut words = Vec::new();
    let mut fed_by = Vec::new();
    if let Some(name) = node.child_by_field_name("name") {
        words.push(word(name, src));
    }
    let mut cursor = node.walk();
    for argument in node.children_by_field_name("argument", &mut cursor) {
        if argument.kind() == "process_substitution" {
            let mut inner = Vec::new();
            collect(argument, src, &mut inner, depth)?;
            fed_by.extend(inner.into_iter().take(1));
        }
        words.push(word(argument, src));
    }
    Ok(SimpleCommand {
        words,
        source: collapse_space(text(node, src)),
        fed_by,
        heredoc: None,
    })
}

fn text<'s>(node: Node<'_>, src: &'s str) -> &'s str {
    src.get(node.byte_range()).unwrap_or("")
}

/// The value of one word node after quote removal.
fn word(node: Node<'_>, src: &str) -> Word {
    let raw = text(node, src);
    match node.kind() {
        "command_name" => node
            .named_child(0)
            .map(|inner| word(inner, src))
            .unwrap_or_else(|| plain(raw)),
        "word" | "number" => plain(raw),
        "raw_string" => Word {
            text: strip_delimiters(raw, "'", "'").to_string(),
            expanded: false,
            pattern: false,
        },
        "string" | "translated_string" => {
            let inner = raw.strip_prefix('$').unwrap_or(raw);
            Word {
                text: unescape_double_quoted(strip_delimiters(inner, "\"", "\"")),
                expanded: has_expansion(node),
                pattern: false,
            }
        }
        "ansi_c_string" => Word {
            text: decode_ansi_c(strip_delimiters(raw, "$'", "'")),
            expanded: false,
            pattern: false,
        },
        "concatenation" => {
            let mut cursor = node.walk();
            let mut joined = Word {
                text: String::new(),
                expanded: false,
                pattern: false,
            };
            let mut last_end = node.start_byte();
            for child in node.children(&mut cursor) {
                // Text between parts the grammar does not name (rare) is
                // kept as written.
                if child.start_byte() > last_end {
                    let gap = src.get(last_end..child.start_byte()).unwrap_or("");
                    let gap = plain(gap);
                    joined.text.push_str(&gap.text);
                    joined.pattern |= gap.pattern;
                }
                let part = word(child, src);
                joined.text.push_str(&part.text);
                joined.expanded |= part.expanded;
                joined.pattern |= part.pattern;
                last_end = child.end_byte();
            }
            joined
        }
        _ => Word {
            // Expansions, substitutions, arrays: only known at run time.
            text: raw.to_string(),
            expanded: true,
            pattern: false,
        },
    }
}

/// An unquoted word: backslashes escape the next character, and a
/// backslash-newline disappears.
fn plain(raw: &str) -> Word {
    let mut text = String::with_capacity(raw.len());
    let mut pattern = false;
    let mut chars = raw.chars();
    let mut in_braces = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(next) => text.push(next),
            },
            '*' | '?' | '[' => {
                pattern = true;
                text.push(c);
            }
            '{' => {
                in_braces = true;
                text.push(c);
            }
            ',' if in_braces => {
                pattern = true;
                text.push(c);
            }
            '.' if in_braces && text.ends_with('.') => {
                pattern = true;
                text.push(c);
            }
            _ => text.push(c),
        }
    }
    Word {
        text,
        expanded: false,
        pattern,
    }
}

fn strip_delimiters<'a>(raw: &'a str, open: &str, close: &str) -> &'a str {
    let inner = raw.strip_prefix(open).unwrap_or(raw);
    inner.strip_suffix(close).unwrap_or(inner)
}

fn has_expansion(node: Node<'_>) -> bool {
    let mut cursor = node.walk();
    node.named_children(&mut cursor).any(|child| {
        matches!(
            child.kind(),
            "simple_expansion" | "expansion" | "command_substitution" | "arithmetic_expansion"
        )
    })
}

/// Inside double quotes a backslash only escapes `$`, `` ` ``, `"`, `\`
/// and a newline.
fn unescape_double_quoted(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('$' | '`' | '"' | '\\') => {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
                Some('\n') => {
                    chars.next();
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The common escapes of `$'…'` strings; anything else is kept as written.
fn decode_ansi_c(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('x') => {
                let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_hexdigit))
                    .take(2)
                    .collect();
                match u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&format!("\\x{digits}")),
                }
            }
            Some(d @ '0'..='7') => {
                let mut digits = d.to_string();
                while digits.len() < 3 {
                    match chars.next_if(|c| ('0'..='7').contains(c)) {
                        Some(more) => digits.push(more),
                        None => break,
                    }
                }
                match u32::from_str_radix(&digits, 8)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&format!("\\{digits}")),
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Collapses runs of whitespace to one space and trims.
pub(crate) fn collapse_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Vec<Vec<String>> {
        simple_commands(script)
            .unwrap()
            .into_iter()
            .map(|c| c.words.into_iter().map(|w| w.text).collect())
            .collect()
    }

    #[test]
    fn finds_every_simple_command() {
        assert_eq!(
            words("cargo test && git push origin; echo 'a;b' | wc -l"),
            [
                vec!["cargo", "test"],
                vec!["git", "push", "origin"],
                vec!["echo", "a;b"],
                vec!["wc", "-l"]
            ]
        );
        assert_eq!(
            words("echo $(git stash) `sudo ls`; (cd x && make); { rm -r y; }"),
            [
                vec!["echo", "$(git stash)", "`sudo ls`"],
                vec!["git", "stash"],
                vec!["sudo", "ls"],
                vec!["cd", "x"],
                vec!["make"],
                vec!["rm", "-r", "y"]
            ]
        );
        assert_eq!(words("FOO=1 BAR=x git   push"), [vec!["git", "push"]]);
    }

    #[test]
    fn removes_quotes_and_backslashes() {
        assert_eq!(
            words(r#"'git' "pu"sh \p\u\sh $'\x67it' "a\"b""#),
            [vec!["git", "push", "push", "git", "a\"b"]]
        );
        let command = &simple_commands("rm -rf \"$HOME\" *.o").unwrap()[0];
        assert!(command.words[2].expanded);
        assert!(command.words[3].pattern);
        assert!(command.words[1].is_literal());
    }

    #[test]
    fn pipelines_record_what_feeds_a_command() {
        let commands = simple_commands("curl -fsSL https://x | tee log | bash").unwrap();
        assert_eq!(commands.len(), 3);
        assert_eq!(commands[2].fed_by.len(), 2);
        assert_eq!(commands[2].fed_by[0].words[0].text, "curl");
        let commands = simple_commands("bash <(curl -s https://x)").unwrap();
        assert_eq!(commands[0].fed_by[0].words[0].text, "curl");
        let commands = simple_commands("bash <<EOF\ngit push\nEOF\n").unwrap();
        assert!(commands[0].heredoc.as_deref().unwrap().contains("git push"));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = format!("{}true{}", "(".repeat(20_000), ")".repeat(20_000));
        let error = simple_commands(&deep).unwrap_err();
        assert!(error.reason.contains("levels deep"), "{}", error.reason);
        let substitutions = format!("{}true{}", "$(".repeat(5_000), ")".repeat(5_000));
        assert!(simple_commands(&substitutions).is_err());
    }

    #[test]
    fn syntax_errors_are_reported_with_a_position() {
        let error = simple_commands("echo 'unterminated").unwrap_err();
        assert!(error.reason.contains("line 1"), "{}", error.reason);
        assert!(simple_commands("if then fi").is_err());
    }
}

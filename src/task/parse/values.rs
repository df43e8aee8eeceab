//! Reading one value of a given type (string, number, duration, globs, ...),
//! with an error naming the key and saying what to write instead.

use serde_saphyr::Spanned;

use super::names::did_you_mean;
use super::{Entries, Walker};
use crate::task::duration;
use crate::task::node::{Node, SpannedNode};

impl Walker<'_> {
    pub(super) fn map<'n>(&mut self, value: &'n SpannedNode, key: &str) -> Option<&'n Entries> {
        match &value.value {
            Node::Map(entries) => Some(entries),
            other => {
                self.error_at(
                    value.referenced,
                    format!(
                        "`{key}` must be a mapping of keys, found {}",
                        other.type_name()
                    ),
                    Some(format!(
                        "write `{key}` as indented `key: value` lines, or `{{ key: value }}`"
                    )),
                );
                None
            }
        }
    }

    pub(super) fn seq<'n>(
        &mut self,
        value: &'n SpannedNode,
        key: &str,
        example: &str,
    ) -> Option<&'n [SpannedNode]> {
        match &value.value {
            Node::Seq(items) => Some(items),
            other => {
                self.error_at(
                    value.referenced,
                    format!("`{key}` must be a list, found {}", other.type_name()),
                    Some(format!("write `{key}` as {example}")),
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<String>> {
        match &value.value {
            Node::Str(text) => Some(spanned(text.clone(), value)),
            other => {
                let help = match other {
                    Node::Null => format!("give `{key}` a value or remove the key"),
                    Node::Int(_) | Node::Float(_) | Node::Bool(_) => {
                        format!("quote the value to make it a string: `{key}: \"...\"`")
                    }
                    _ => format!("write `{key}` as a single string"),
                };
                self.error_at(
                    value.referenced,
                    format!("`{key}` must be a string, found {}", other.type_name()),
                    Some(help),
                );
                None
            }
        }
    }

    pub(super) fn non_empty_string(
        &mut self,
        value: &SpannedNode,
        key: &str,
        help: &str,
    ) -> Option<Spanned<String>> {
        let text = self.string(value, key)?;
        if text.value.trim().is_empty() {
            self.error_at(
                value.referenced,
                format!("`{key}` is empty"),
                Some(help.into()),
            );
            return None;
        }
        Some(text)
    }

    pub(super) fn choice(
        &mut self,
        value: &SpannedNode,
        key: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let text = self.string(value, key)?;
        if let Some(choice) = choices.iter().find(|choice| **choice == text.value) {
            return Some(choice);
        }
        let message = match did_you_mean(&text.value, choices) {
            Some(suggestion) => format!(
                "unknown `{key}` value `{}` (hint: did you mean `{suggestion}`?)",
                text.value
            ),
            None => format!("unknown `{key}` value `{}`", text.value),
        };
        self.error_at(
            value.referenced,
            message,
            Some(format!("valid values: {}", choices.join(", "))),
        );
        None
    }

    pub(super) fn uint<T>(
        &mut self,
        value: &SpannedNode,
        key: &str,
        min: T,
        max: T,
    ) -> Option<Spanned<T>>
    where
        T: TryFrom<i128> + Into<i128> + Copy + std::fmt::Display,
    {
        let range = if max.into() > 1_000_000_000_000 {
            format!("a whole number of at least {min}")
        } else {
            format!("a number from {min} to {max}")
        };
        let Node::Int(number) = value.value else {
            self.error_at(
                value.referenced,
                format!(
                    "`{key}` must be a whole number, found {}",
                    describe(&value.value)
                ),
                Some(format!("write {range}, without quotes")),
            );
            return None;
        };
        match T::try_from(number) {
            Ok(parsed) if number >= min.into() && number <= max.into() => {
                Some(spanned(parsed, value))
            }
            _ if number < min.into() => {
                let help = if key.ends_with("max_rounds") {
                    "the debug stage runs at least once: use 1 for a single round".into()
                } else if key.ends_with("context_window") {
                    format!(
                        "the window is counted in tokens, such as `128000`; use {range}, \
                         or remove the key for the model's default"
                    )
                } else {
                    format!("use {range}")
                };
                self.error_at(
                    value.referenced,
                    format!("`{key}` must be at least {min}, found {number}"),
                    Some(help),
                );
                None
            }
            _ => {
                self.error_at(
                    value.referenced,
                    format!("`{key}` must be at most {max}, found {number}"),
                    Some(format!("use {range}")),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<bool>> {
        match value.value {
            Node::Bool(flag) => Some(spanned(flag, value)),
            ref other => {
                self.error_at(
                    value.referenced,
                    format!("`{key}` must be true or false, found {}", describe(other)),
                    Some(format!("write `{key}: true` or `{key}: false`")),
                );
                None
            }
        }
    }

    pub(super) fn cost(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<f64>> {
        let amount = self.dollars(value, key, "US dollars", "3.00")?;
        if !amount.is_finite() || amount <= 0.0 {
            self.error_at(
                value.referenced,
                format!("`{key}` must be a positive amount, found {amount}"),
                Some(format!("remove `{key}` for no cost limit")),
            );
            return None;
        }
        Some(spanned(amount, value))
    }

    /// A number written as an amount of money (`unit` for the message,
    /// `example` for the hint); any sign or size is checked by the caller.
    pub(super) fn dollars(
        &mut self,
        value: &SpannedNode,
        key: &str,
        unit: &str,
        example: &str,
    ) -> Option<f64> {
        match value.value {
            // Any integer a task file could hold is exact enough as dollars.
            #[allow(clippy::cast_precision_loss)]
            Node::Int(number) => Some(number as f64),
            Node::Float(number) => Some(number),
            ref other => {
                self.error_at(
                    value.referenced,
                    format!(
                        "`{key}` must be a number of {unit}, found {}",
                        describe(other)
                    ),
                    Some(format!(
                        "write it without quotes or `$`: `{key}: {example}`"
                    )),
                );
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<std::time::Duration>> {
        let help = "write hours, minutes and seconds in that order: `90s`, `10m`, `1h30m`";
        let text = match &value.value {
            Node::Str(text) => text,
            Node::Int(number) => {
                self.error_at(
                    value.referenced,
                    format!("`{key}` needs a unit: `{number}` alone is ambiguous"),
                    Some(format!(
                        "write `{number}s` for seconds or `{number}m` for minutes"
                    )),
                );
                return None;
            }
            other => {
                self.error_at(
                    value.referenced,
                    format!("`{key}` must be a duration, found {}", other.type_name()),
                    Some(help.into()),
                );
                return None;
            }
        };
        match duration::parse(text) {
            Ok(parsed) => Some(spanned(parsed, value)),
            Err(problem) => {
                self.error_at(
                    value.referenced,
                    format!("{problem} in `{key}`"),
                    Some(help.into()),
                );
                None
            }
        }
    }

    pub(super) fn glob_list(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
        let items = self.seq(value, key, "a list of glob patterns: `[\"src/**\"]`")?;
        let mut patterns = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Some(pattern) =
                self.non_empty_string(item, &format!("{key}[{index}]"), "remove the empty entry")
            else {
                continue;
            };
            if let Err(error) = globset::Glob::new(&pattern.value) {
                self.error_at(
                    item.referenced,
                    format!("invalid glob `{}` in `{key}`: {}", pattern.value, error.kind()),
                    Some("fix the pattern: `*` any text, `?` one character, `[abc]` a set, `{a,b}` alternatives; \
                          escape a literal with `[*]`".into()),
                );
                continue;
            }
            patterns.push(pattern);
        }
        Some(spanned(patterns, value))
    }
}

pub(super) fn describe(node: &Node) -> String {
    match node {
        Node::Int(number) => format!("`{number}`"),
        Node::Float(number) => format!("`{number}`"),
        Node::Bool(flag) => format!("`{flag}`"),
        Node::Str(text) if text.chars().count() <= 40 => format!("`{text}`"),
        other => other.type_name().to_owned(),
    }
}

pub(super) fn spanned<T>(value: T, node: &SpannedNode) -> Spanned<T> {
    Spanned::new(value, node.referenced, node.defined)
}

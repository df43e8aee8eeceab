//! The keys that prepare a task's workspace before anything else runs:
//! `setup:` (commands) and `copy_ignored:` (globs of ignored paths copied
//! into an isolated worktree).

use std::path::{Component, Path};

use serde_saphyr::Spanned;

use super::Walker;
use super::values::{describe, spanned};
use crate::task::node::{Node, SpannedNode};
use crate::task::raw::SetupEntry;

const SETUP_KEYS: &[&str] = &["run", "timeout"];
const SETUP_EXAMPLE: &str =
    "a list of shell commands: `- npm ci` or `- { run: npm ci, timeout: 15m }`";

impl Walker<'_> {
    /// `setup:`: each entry a command string or a `{ run, timeout }` map.
    pub(super) fn setup(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<Vec<SetupEntry>>> {
        let items = self.seq(value, key, SETUP_EXAMPLE)?;
        let mut commands = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let help = "give the shell command to run, such as `npm ci`, or remove the entry";
            match &item.value {
                Node::Str(_) => {
                    if let Some(run) = self.non_empty_string(item, &path, help) {
                        commands.push(SetupEntry { run, timeout: None });
                    }
                }
                Node::Map(entries) => {
                    let known = self.known_keys(entries, SETUP_KEYS, &format!("{path}."), |_| None);
                    let mut run = None;
                    let mut timeout = None;
                    for entry in &known {
                        let field = format!("{path}.{}", entry.name);
                        match entry.name {
                            "run" => run = self.non_empty_string(entry.value, &field, help),
                            "timeout" => timeout = self.duration(entry.value, &field),
                            _ => {}
                        }
                    }
                    if !known.iter().any(|entry| entry.name == "run") {
                        self.error_at(
                            item.referenced,
                            format!("missing key `{path}.run`"),
                            Some("add `run: npm ci` (the command) to this entry".into()),
                        );
                    }
                    if let Some(run) = run {
                        commands.push(SetupEntry { run, timeout });
                    }
                }
                other => self.error_at(
                    item.referenced,
                    format!(
                        "`{path}` must be a command string or a mapping, found {}",
                        describe(other)
                    ),
                    Some(format!("write `{key}` as {SETUP_EXAMPLE}")),
                ),
            }
        }
        Some(spanned(commands, value))
    }

    /// `copy_ignored:`: globs that compile and stay inside the workspace.
    pub(super) fn copy_ignored(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
        let mut list = self.glob_list(value, key)?;
        list.value.retain(|pattern| {
            let Some(problem) = outside_workspace(&pattern.value) else {
                return true;
            };
            self.error_at(
                pattern.referenced,
                format!("`{key}` pattern `{}` {problem}", pattern.value),
                Some(
                    "patterns are relative to the workspace and name paths inside it, such as \
                     `node_modules/**` or `target/`"
                        .into(),
                ),
            );
            false
        });
        Some(list)
    }
}

/// Why a `copy_ignored:` pattern would reach outside the workspace, if it
/// would.
fn outside_workspace(pattern: &str) -> Option<&'static str> {
    let path = Path::new(pattern);
    if path.is_absolute() || pattern.starts_with('~') {
        return Some("is absolute; it must be relative to the workspace");
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Some("points outside the workspace (`..`)");
    }
    if pattern.starts_with(".git/") || pattern == ".git" {
        return Some("names the repository's `.git`, which is never copied");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::outside_workspace;

    #[test]
    fn only_paths_inside_the_workspace_pass() {
        assert_eq!(outside_workspace("node_modules/**"), None);
        assert_eq!(outside_workspace("target/"), None);
        assert_eq!(outside_workspace("a/./b"), None);
        assert!(outside_workspace("../x").is_some());
        assert!(outside_workspace("a/../../x").is_some());
        assert!(outside_workspace("/etc/**").is_some());
        assert!(outside_workspace("~/.cache").is_some());
        assert!(outside_workspace(".git/config").is_some());
    }
}

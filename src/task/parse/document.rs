//! The shape of a task file: a single task or a `tasks:` list, its
//! version, unknown keys, and each task's own keys.

use serde_saphyr::Spanned;

use super::names::{NAME_MAX_LEN, check_name, did_you_mean, suggest_name};
use super::settings::SETTINGS_KEYS;
use super::values::{describe, spanned};
use super::{Entries, Known, Walker};
use crate::task::diagnostic::TaskFileError;
use crate::task::node::{Node, SpannedNode};
use crate::task::raw::{SingleTaskFile, TaskEntry, TaskFile, TaskListFile};

pub(super) const TASK_KEYS: &[&str] = &["name", "description", "prompt"];
const LIST_KEYS: &[&str] = &["version", "defaults", "tasks"];

impl Walker<'_> {
    pub(super) fn file(&mut self, tree: &SpannedNode) -> Option<TaskFile> {
        let entries = match &tree.value {
            Node::Map(entries) => entries,
            Node::Null => {
                self.push(
                    TaskFileError::new("the task file is empty", self.source.whole())
                        .help("a task file needs at least `version: 1`, `name:` and `prompt:`"),
                );
                return None;
            }
            other => {
                self.error_at(
                    tree.referenced,
                    format!(
                        "a task file must be a mapping of keys, found {}",
                        other.type_name()
                    ),
                    Some("start with `version: 1`, then `name:` and `prompt:`".into()),
                );
                return None;
            }
        };
        let is_list = entries
            .iter()
            .any(|(key, _)| matches!(&key.value, Node::Str(name) if name == "tasks"));
        if is_list {
            self.list_file(tree, entries).map(TaskFile::List)
        } else {
            self.single_file(tree, entries).map(TaskFile::Single)
        }
    }

    pub(super) fn single_file(
        &mut self,
        tree: &SpannedNode,
        entries: &Entries,
    ) -> Option<SingleTaskFile> {
        let valid: Vec<&str> = ["version"]
            .iter()
            .chain(TASK_KEYS)
            .chain(SETTINGS_KEYS)
            .copied()
            .collect();
        let known = self.known_keys(entries, &valid, "", |key| match key {
            "defaults" => Some(
                "`defaults` only applies to a `tasks:` list: move the task under `tasks:`".into(),
            ),
            _ => None,
        });
        let version = self.version(tree, &known);
        let task = self.task_entry(tree, &known, "");
        Some(SingleTaskFile {
            version,
            task: task?,
        })
    }

    pub(super) fn list_file(
        &mut self,
        tree: &SpannedNode,
        entries: &Entries,
    ) -> Option<TaskListFile> {
        let known = self.known_keys(entries, LIST_KEYS, "", |key| {
            (TASK_KEYS.contains(&key) || SETTINGS_KEYS.contains(&key)).then(|| {
                format!(
                    "in a file with `tasks:`, put `{key}` in a task under `tasks:` \
                     or (except name, description, prompt) under `defaults:`"
                )
            })
        });
        let version = self.version(tree, &known);
        let mut defaults = None;
        let mut tasks = None;
        for entry in &known {
            match entry.name {
                "defaults" => {
                    defaults = self.map(entry.value, "defaults").map(|entries| {
                        let known = self.known_keys(entries, SETTINGS_KEYS, "defaults.", |key| {
                            TASK_KEYS.contains(&key).then(|| {
                                format!("each task sets its own `{key}`; `defaults` takes every other task key")
                            })
                        });
                        self.settings(&known, "defaults.")
                    })
                }
                "tasks" => tasks = self.task_list(entry.value),
                _ => {}
            }
        }
        Some(TaskListFile {
            version,
            defaults,
            tasks: tasks.unwrap_or_default(),
        })
    }

    pub(super) fn task_list(&mut self, value: &SpannedNode) -> Option<Vec<TaskEntry>> {
        let items = self.seq(value, "tasks", "a list of tasks: `- name: ...`")?;
        if items.is_empty() {
            self.error_at(
                value.referenced,
                "`tasks` is empty".into(),
                Some("add at least one task: `- name: ...` with a `prompt:`".into()),
            );
            return None;
        }
        let mut tasks = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("tasks[{index}].");
            let Some(entries) = self.map(item, &format!("tasks[{index}]")) else {
                continue;
            };
            let valid: Vec<&str> = TASK_KEYS.iter().chain(SETTINGS_KEYS).copied().collect();
            let known = self.known_keys(entries, &valid, &path, |key| {
                LIST_KEYS.contains(&key).then(|| {
                    format!("`{key}` belongs at the top level of the file, not inside a task")
                })
            });
            tasks.extend(self.task_entry(item, &known, &path));
        }
        Some(tasks)
    }

    /// Checks `version`; the rest of the file is checked either way.
    pub(super) fn version(
        &mut self,
        tree: &SpannedNode,
        known: &[Known<'_>],
    ) -> Option<Spanned<u32>> {
        let Some(entry) = known.iter().find(|entry| entry.name == "version") else {
            self.error_at(
                tree.referenced,
                "missing key `version`".into(),
                Some("add `version: 1` as the first line".into()),
            );
            return None;
        };
        match &entry.value.value {
            Node::Int(1) => Some(spanned(1, entry.value)),
            other => {
                self.error_at(
                    entry.value.referenced,
                    format!("unsupported task file version {}", describe(other)),
                    Some("this kkrun reads `version: 1`".into()),
                );
                None
            }
        }
    }

    /// Reports unknown keys of a mapping and returns the known ones. `hint`
    /// explains keys that are valid elsewhere.
    pub(super) fn known_keys<'n>(
        &mut self,
        entries: &'n Entries,
        valid: &[&str],
        path: &str,
        hint: impl Fn(&str) -> Option<String>,
    ) -> Vec<Known<'n>> {
        let mut known = Vec::new();
        for (key, value) in entries {
            let name = match &key.value {
                Node::Str(name) => name.as_str(),
                other => {
                    self.error_at(
                        key.referenced,
                        format!("keys must be names, found {}", describe(other)),
                        Some(format!("valid keys here: {}", valid.join(", "))),
                    );
                    continue;
                }
            };
            if valid.contains(&name) {
                known.push(Known { name, value });
                continue;
            }
            let message = match did_you_mean(name, valid) {
                Some(suggestion) => {
                    format!("unknown key `{path}{name}` (hint: did you mean `{suggestion}`?)")
                }
                None => format!("unknown key `{path}{name}`"),
            };
            let help =
                hint(name).unwrap_or_else(|| format!("valid keys here: {}", valid.join(", ")));
            self.error_at(key.referenced, message, Some(help));
        }
        known
    }

    /// A task's own keys plus its settings; `None` when `name` or `prompt`
    /// is missing or invalid (the other keys are still checked).
    pub(super) fn task_entry(
        &mut self,
        map: &SpannedNode,
        known: &[Known<'_>],
        path: &str,
    ) -> Option<TaskEntry> {
        let mut name = None;
        let mut description = None;
        let mut prompt = None;
        let mut seen_name = false;
        let mut seen_prompt = false;
        for entry in known {
            match entry.name {
                "name" => {
                    seen_name = true;
                    name = self.name(entry, path, "task");
                }
                "description" => {
                    description = self.string(entry.value, &format!("{path}description"))
                }
                "prompt" => {
                    seen_prompt = true;
                    prompt = self.non_empty_string(
                        entry.value,
                        &format!("{path}prompt"),
                        "write the goal for the agent",
                    );
                }
                _ => {}
            }
        }
        if !seen_name {
            self.error_at(
                map.referenced,
                format!("missing key `{path}name`"),
                Some("add `name: my-task` (lowercase letters, digits and `-`)".into()),
            );
        }
        if !seen_prompt {
            self.error_at(
                map.referenced,
                format!("missing key `{path}prompt`"),
                Some("add `prompt: |` followed by the goal for the agent".into()),
            );
        }
        let settings = self.settings(known, path);
        Some(TaskEntry {
            name: name?,
            description,
            prompt: prompt?,
            settings,
        })
    }

    pub(super) fn name(
        &mut self,
        entry: &Known<'_>,
        path: &str,
        what: &str,
    ) -> Option<Spanned<String>> {
        let key = format!("{path}name");
        let name = self.string(entry.value, &key)?;
        if let Err(problem) = check_name(&name.value) {
            self.error_at(
                entry.value.referenced,
                format!("invalid {what} name `{}`: {problem}", name.value),
                Some(format!(
                    "use lowercase letters, digits and `-`, starting with a letter or digit, \
                     at most {NAME_MAX_LEN} characters (e.g. `{}`)",
                    suggest_name(&name.value)
                )),
            );
            return None;
        }
        Some(name)
    }
}

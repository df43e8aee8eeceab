//! From a YAML tree to the raw task-file types, collecting every error.
//!
//! The walk is written out by hand rather than derived with serde so that a
//! file with three mistakes reports three errors, each at its own line and
//! column, instead of stopping at the first. Checks that need no file system
//! (names, durations, globs, ranges) happen here; `resolve` does the rest.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Location, Spanned};

use super::diagnostic::{SourceFile, TaskFileError};
use super::duration;
use super::node::{self, Node, SpannedNode};
use super::raw::{
    BudgetSettings, CheckEntry, DebugLimits, PreviewLimits, PricingSettings, ShellSettings,
    SingleTaskFile, StageLimits, StagesSettings, TaskEntry, TaskFile, TaskListFile, TaskSettings,
    ToolsSettings,
};
use super::resolved::{FailOn, OnFailure, TaskKind};

/// Task and check names, as a regular expression (for the JSON Schema).
pub(crate) const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9-]*$";
/// Longest task or check name.
pub(crate) const NAME_MAX_LEN: usize = 64;
/// Model specs, as a regular expression (for the JSON Schema).
pub(crate) const MODEL_PATTERN: &str = "^(openai|anthropic|replay):\\S.*$";
/// The providers a model spec may name.
pub const PROVIDERS: &[&str] = &["openai", "anthropic", "replay"];

const SETTINGS_KEYS: &[&str] = &[
    "kind",
    "workspace",
    "model",
    "context",
    "checks",
    "stages",
    "budget",
    "tools",
    "on_failure",
    "fail_on",
    "env",
    "pricing",
    "context_window",
];
const TASK_KEYS: &[&str] = &["name", "description", "prompt"];
const LIST_KEYS: &[&str] = &["version", "defaults", "tasks"];
const CHECK_KEYS: &[&str] = &["name", "run", "timeout", "retries"];
const STAGE_KEYS: &[&str] = &["blueprint", "code", "debug", "preview"];
const BUDGET_KEYS: &[&str] = &["max_tokens", "max_cost_usd", "timeout"];
const SHELL_KEYS: &[&str] = &["allow", "deny", "timeout"];
const PRICING_KEYS: &[&str] = &["input", "cached_input", "output"];
/// Smallest `context_window`: below this not even a stage's system prompt
/// and tools fit, so a smaller number is a typo.
const MIN_CONTEXT_WINDOW: u64 = 1024;
const KINDS: &[&str] = &["fix", "refactor", "feature", "bug-hunt"];
const ON_FAILURE: &[&str] = &["keep", "rollback"];
const FAIL_ON: &[&str] = &["new-confirmed", "confirmed", "any", "never"];

/// Parses one task file; errors go to `errors`. Returns the file when its
/// structure is sound enough to resolve (it may still have had errors).
pub(crate) fn parse_file(source: &SourceFile, errors: &mut Vec<TaskFileError>) -> Option<TaskFile> {
    let tree = match node::parse(&source.text) {
        Ok(tree) => tree,
        Err(error) => {
            errors.push(yaml_error(source, &error));
            return None;
        }
    };
    let mut walker = Walker { source, errors };
    walker.file(&tree)
}

/// Turns a YAML syntax or resource-limit error into a task-file error.
fn yaml_error(source: &SourceFile, error: &serde_saphyr::Error) -> TaskFileError {
    let position = match error.location() {
        Some(location) if location != Location::UNKNOWN => source.position(location, 1),
        _ => source.whole(),
    };
    let too_complex = |what: &str| {
        TaskFileError::new(
            format!("YAML too complex for a task file: {what}"),
            position.clone(),
        )
        .help("task files are small and flat; remove the nesting or the anchors and aliases")
    };
    // Budget breaches met while replaying an alias come wrapped; classify
    // the original error.
    let mut original = error;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = original
    {
        original = error;
    }
    match original {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => too_complex("nested more than 32 levels deep"),
            BudgetBreach::Documents { .. } => TaskFileError::new(
                "a task file holds one YAML document; found a second `---`",
                position,
            )
            .help("put several tasks in one `tasks:` list, or split them into separate files"),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. }
            | BudgetBreach::RecordedAnchorEvents { .. }
            | BudgetBreach::RecordedAnchorBytes { .. }
            | BudgetBreach::MergeKeys { .. } => too_complex("too many anchors, aliases or merges"),
            _ => too_complex("too many values"),
        },
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => {
            too_complex("aliases expand to too many values")
        }
        other => {
            let text = other.render_with_formatter(&serde_saphyr::UserMessageFormatter);
            // The position is shown separately; drop the text's own copy.
            let message = match text.find(" at line ") {
                Some(index) => &text[..index],
                None => text.as_str(),
            };
            if message.contains("recursion limit") {
                return too_complex("nested more than 32 levels deep");
            }
            let help = if message.contains("mapping values are not allowed") {
                "a value that contains `: ` or ends with `:` must be quoted: \
                 `run: \"cargo test parse::\"`"
            } else {
                "fix the YAML syntax at this position"
            };
            TaskFileError::new(format!("invalid YAML: {message}"), position).help(help)
        }
    }
}

struct Walker<'a> {
    source: &'a SourceFile,
    errors: &'a mut Vec<TaskFileError>,
}

type Entries = [(SpannedNode, SpannedNode)];

/// A key that was recognised, with the nodes of its key and value.
struct Known<'n> {
    name: &'n str,
    value: &'n SpannedNode,
}

impl<'a> Walker<'a> {
    fn push(&mut self, error: TaskFileError) {
        self.errors.push(error);
    }

    fn error_at(&mut self, location: Location, message: String, help: Option<String>) {
        let mut error = TaskFileError::new(message, self.source.at(location));
        if let Some(help) = help {
            error = error.help(help);
        }
        self.push(error);
    }

    fn file(&mut self, tree: &SpannedNode) -> Option<TaskFile> {
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

    fn single_file(&mut self, tree: &SpannedNode, entries: &Entries) -> Option<SingleTaskFile> {
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

    fn list_file(&mut self, tree: &SpannedNode, entries: &Entries) -> Option<TaskListFile> {
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

    fn task_list(&mut self, value: &SpannedNode) -> Option<Vec<TaskEntry>> {
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
    fn version(&mut self, tree: &SpannedNode, known: &[Known<'_>]) -> Option<Spanned<u32>> {
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
    fn known_keys<'n>(
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
    fn task_entry(
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

    fn name(&mut self, entry: &Known<'_>, path: &str, what: &str) -> Option<Spanned<String>> {
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

    fn settings(&mut self, known: &[Known<'_>], path: &str) -> TaskSettings {
        let mut settings = TaskSettings::default();
        for entry in known {
            let key = format!("{path}{}", entry.name);
            let value = entry.value;
            match entry.name {
                "kind" => {
                    settings.kind = self.choice(value, &key, KINDS).map(|choice| {
                        spanned(
                            match choice {
                                "refactor" => TaskKind::Refactor,
                                "feature" => TaskKind::Feature,
                                "bug-hunt" => TaskKind::BugHunt,
                                _ => TaskKind::Fix,
                            },
                            value,
                        )
                    })
                }
                "workspace" => {
                    settings.workspace =
                        self.non_empty_string(value, &key, "use `.` for the task file's directory")
                }
                "model" => settings.model = self.model(value, &key),
                "context" => settings.context = self.glob_list(value, &key),
                "checks" => settings.checks = self.checks(value, &key),
                "stages" => settings.stages = self.stages(value, &key),
                "budget" => settings.budget = self.budget(value, &key),
                "tools" => settings.tools = self.tools(value, &key),
                "on_failure" => {
                    settings.on_failure = self.choice(value, &key, ON_FAILURE).map(|choice| {
                        spanned(
                            if choice == "rollback" {
                                OnFailure::Rollback
                            } else {
                                OnFailure::Keep
                            },
                            value,
                        )
                    })
                }
                "fail_on" => {
                    settings.fail_on = self.choice(value, &key, FAIL_ON).map(|choice| {
                        spanned(
                            match choice {
                                "confirmed" => FailOn::Confirmed,
                                "any" => FailOn::Any,
                                "never" => FailOn::Never,
                                _ => FailOn::NewConfirmed,
                            },
                            value,
                        )
                    })
                }
                "env" => settings.env = self.env(value, &key),
                "pricing" => settings.pricing = self.pricing(value, &key),
                "context_window" => {
                    settings.context_window = self.uint(value, &key, MIN_CONTEXT_WINDOW, u64::MAX)
                }
                _ => {}
            }
        }
        settings
    }

    fn model(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<String>> {
        let spec = self.string(value, key)?;
        if let Err(problem) = check_model_form(&spec.value) {
            self.error_at(value.referenced, problem, Some(MODEL_HELP.into()));
            return None;
        }
        Some(spec)
    }

    fn checks(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<Vec<CheckEntry>>> {
        let items = self.seq(
            value,
            key,
            "a list of checks: `- name: unit` / `run: cargo test`",
        )?;
        let mut checks: Vec<CheckEntry> = Vec::new();
        let mut seen_names: Vec<Spanned<String>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}].");
            let Some(entries) = self.map(item, &format!("{key}[{index}]")) else {
                continue;
            };
            let known = self.known_keys(entries, CHECK_KEYS, &path, |_| None);
            let mut name = None;
            let mut run = None;
            let mut timeout = None;
            let mut retries = None;
            for entry in &known {
                let field = format!("{path}{}", entry.name);
                match entry.name {
                    "name" => name = self.name(entry, &path, "check"),
                    "run" => {
                        run = self.non_empty_string(
                            entry.value,
                            &field,
                            "give the shell command to run, such as `cargo test`",
                        )
                    }
                    "timeout" => timeout = self.duration(entry.value, &field),
                    "retries" => retries = self.uint(entry.value, &field, 0, 100),
                    _ => {}
                }
            }
            for (required, example) in [("name", "name: unit"), ("run", "run: cargo test")] {
                if !known.iter().any(|entry| entry.name == required) {
                    self.error_at(
                        item.referenced,
                        format!("missing key `{path}{required}`"),
                        Some(format!("add `{example}` to this check")),
                    );
                }
            }
            if let Some(name) = &name {
                if let Some(first) = seen_names.iter().find(|seen| seen.value == name.value) {
                    let error = TaskFileError::new(
                        format!("duplicate check name `{}`", name.value),
                        self.source.at(name.referenced),
                    )
                    .related(self.source.at(first.referenced), "first used here")
                    .help("check names must be unique within a task; rename one of them");
                    self.push(error);
                    continue;
                }
                seen_names.push(name.clone());
            }
            if let (Some(name), Some(run)) = (name, run) {
                checks.push(CheckEntry {
                    name,
                    run,
                    timeout,
                    retries,
                });
            }
        }
        Some(spanned(checks, value))
    }

    fn stages(&mut self, value: &SpannedNode, key: &str) -> Option<StagesSettings> {
        let entries = self.map(value, key)?;
        let known = self.known_keys(entries, STAGE_KEYS, &format!("{key}."), |_| None);
        let mut stages = StagesSettings::default();
        for entry in &known {
            let path = format!("{key}.{}", entry.name);
            let Some(entries) = self.map(entry.value, &path) else {
                continue;
            };
            let valid: &[&str] = match entry.name {
                "debug" => &["max_turns", "max_rounds"],
                "preview" => &["max_turns", "advisory"],
                _ => &["max_turns"],
            };
            let fields = self.known_keys(entries, valid, &format!("{path}."), |_| None);
            let mut max_turns = None;
            let mut max_rounds = None;
            let mut advisory = None;
            for field in &fields {
                let field_path = format!("{path}.{}", field.name);
                match field.name {
                    "max_turns" => max_turns = self.uint(field.value, &field_path, 1, 10_000),
                    "max_rounds" => max_rounds = self.uint(field.value, &field_path, 1, 100),
                    "advisory" => advisory = self.boolean(field.value, &field_path),
                    _ => {}
                }
            }
            match entry.name {
                "blueprint" => stages.blueprint = Some(StageLimits { max_turns }),
                "code" => stages.code = Some(StageLimits { max_turns }),
                "debug" => {
                    stages.debug = Some(DebugLimits {
                        max_turns,
                        max_rounds,
                    })
                }
                "preview" => {
                    stages.preview = Some(PreviewLimits {
                        max_turns,
                        advisory,
                    })
                }
                _ => {}
            }
        }
        Some(stages)
    }

    fn budget(&mut self, value: &SpannedNode, key: &str) -> Option<BudgetSettings> {
        let entries = self.map(value, key)?;
        let known = self.known_keys(entries, BUDGET_KEYS, &format!("{key}."), |_| None);
        let mut budget = BudgetSettings::default();
        for entry in &known {
            let path = format!("{key}.{}", entry.name);
            match entry.name {
                "max_tokens" => budget.max_tokens = self.uint(entry.value, &path, 1, u64::MAX),
                "max_cost_usd" => budget.max_cost_usd = self.cost(entry.value, &path),
                "timeout" => budget.timeout = self.duration(entry.value, &path),
                _ => {}
            }
        }
        Some(budget)
    }

    fn tools(&mut self, value: &SpannedNode, key: &str) -> Option<ToolsSettings> {
        let entries = self.map(value, key)?;
        let known = self.known_keys(entries, &["shell"], &format!("{key}."), |_| None);
        let mut tools = ToolsSettings::default();
        for entry in &known {
            let path = format!("{key}.shell");
            let Some(entries) = self.map(entry.value, &path) else {
                continue;
            };
            let fields = self.known_keys(entries, SHELL_KEYS, &format!("{path}."), |_| None);
            let mut shell = ShellSettings::default();
            for field in &fields {
                let field_path = format!("{path}.{}", field.name);
                match field.name {
                    "allow" => shell.allow = self.glob_list(field.value, &field_path),
                    "deny" => shell.deny = self.glob_list(field.value, &field_path),
                    "timeout" => shell.timeout = self.duration(field.value, &field_path),
                    _ => {}
                }
            }
            tools.shell = Some(shell);
        }
        Some(tools)
    }

    /// A `pricing:` mapping; `None` unless `input` and `output` are both
    /// present and valid (every problem is still reported).
    fn pricing(&mut self, value: &SpannedNode, key: &str) -> Option<PricingSettings> {
        let entries = self.map(value, key)?;
        let known = self.known_keys(entries, PRICING_KEYS, &format!("{key}."), |_| None);
        let mut input = None;
        let mut cached_input = None;
        let mut output = None;
        let mut complete = true;
        for entry in &known {
            let path = format!("{key}.{}", entry.name);
            let price = self.price(entry.value, &path);
            complete &= price.is_some();
            match entry.name {
                "input" => input = price,
                "cached_input" => cached_input = price,
                "output" => output = price,
                _ => {}
            }
        }
        for required in ["input", "output"] {
            if !known.iter().any(|entry| entry.name == required) {
                self.error_at(
                    value.referenced,
                    format!("missing key `{key}.{required}`"),
                    Some(format!(
                        "give both prices in USD per million tokens: \
                         `{key}: {{ input: 2.00, output: 8.00 }}`"
                    )),
                );
            }
        }
        if !complete {
            return None;
        }
        Some(PricingSettings {
            input: input?,
            cached_input,
            output: output?,
        })
    }

    /// A price in USD per million tokens: a finite number, at least 0.
    fn price(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<f64>> {
        let amount = self.dollars(value, key, "US dollars per million tokens", "2.50")?;
        if !amount.is_finite() {
            self.error_at(
                value.referenced,
                format!("`{key}` must be a finite number, found {amount}"),
                Some(format!(
                    "write the price in USD per million tokens, such as `{key}: 2.50`"
                )),
            );
            return None;
        }
        if amount < 0.0 {
            self.error_at(
                value.referenced,
                format!("`{key}` must be at least 0, found {amount}"),
                Some("prices are USD per million tokens; use 0 for a free model".into()),
            );
            return None;
        }
        // `-0` is a valid zero; store it as `0` so costs never print as `-0`.
        Some(spanned(amount.abs(), value))
    }

    fn env(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Vec<(Spanned<String>, Spanned<String>)>> {
        let entries = self.map(value, key)?;
        let mut env = Vec::new();
        for (name, value) in entries {
            let name_text = match &name.value {
                Node::Str(text) if is_env_name(text) => text.clone(),
                other => {
                    let shown = match other {
                        Node::Str(text) => format!("`{text}`"),
                        other => describe(other),
                    };
                    self.error_at(
                        name.referenced,
                        format!("invalid environment variable name {shown} in `{key}`"),
                        Some("use letters, digits and `_`, not starting with a digit".into()),
                    );
                    continue;
                }
            };
            let text = match &value.value {
                Node::Str(text) => text.clone(),
                Node::Int(number) => number.to_string(),
                Node::Bool(flag) => flag.to_string(),
                other => {
                    self.error_at(
                        value.referenced,
                        format!(
                            "`{key}.{name_text}` must be a string, found {}",
                            other.type_name()
                        ),
                        Some(format!("quote the value: `{name_text}: \"...\"`")),
                    );
                    continue;
                }
            };
            env.push((spanned(name_text, name), spanned(text, value)));
        }
        Some(env)
    }

    fn map<'n>(&mut self, value: &'n SpannedNode, key: &str) -> Option<&'n Entries> {
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

    fn seq<'n>(
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

    fn string(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<String>> {
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

    fn non_empty_string(
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

    fn choice(
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

    fn uint<T>(&mut self, value: &SpannedNode, key: &str, min: T, max: T) -> Option<Spanned<T>>
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

    fn boolean(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<bool>> {
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

    fn cost(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<f64>> {
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
    fn dollars(
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

    fn duration(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<std::time::Duration>> {
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

    fn glob_list(
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

const MODEL_HELP: &str = "write `provider:model` with provider openai, anthropic or replay, such as `openai:gpt-4.1` \
     or `replay:cassettes/run.jsonl`";

/// Checks that `spec` is `provider:model` with a known provider.
pub(crate) fn check_model_form(spec: &str) -> Result<(&str, &str), String> {
    let Some((provider, model)) = spec.split_once(':') else {
        return Err(format!("invalid model `{spec}`: expected `provider:model`"));
    };
    if !PROVIDERS.contains(&provider) {
        let hint = did_you_mean(provider, PROVIDERS)
            .map(|suggestion| format!(" (hint: did you mean `{suggestion}`?)"))
            .unwrap_or_default();
        return Err(format!(
            "unknown provider `{provider}` in model `{spec}`{hint}; valid providers: {}",
            PROVIDERS.join(", ")
        ));
    }
    if model.trim().is_empty() || model.starts_with(char::is_whitespace) {
        return Err(format!(
            "invalid model `{spec}`: nothing after `{provider}:`"
        ));
    }
    Ok((provider, model))
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > NAME_MAX_LEN {
        return Err("it is too long");
    }
    if name.starts_with('-') {
        return Err("it starts with `-`");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("only lowercase letters, digits and `-` are allowed");
    }
    Ok(())
}

/// A valid name close to `name`, to show in the help.
fn suggest_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out
        .trim_end_matches('-')
        .chars()
        .take(NAME_MAX_LEN)
        .collect();
    if trimmed.is_empty() {
        "fix-date-parsing".into()
    } else {
        trimmed.trim_end_matches('-').to_owned()
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The closest of `candidates` to `input`, when it is close enough to be a
/// likely typo.
pub(crate) fn did_you_mean<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lowered = input.to_lowercase();
    candidates
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(&lowered, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn describe(node: &Node) -> String {
    match node {
        Node::Int(number) => format!("`{number}`"),
        Node::Float(number) => format!("`{number}`"),
        Node::Bool(flag) => format!("`{flag}`"),
        Node::Str(text) if text.chars().count() <= 40 => format!("`{text}`"),
        other => other.type_name().to_owned(),
    }
}

fn spanned<T>(value: T, node: &SpannedNode) -> Spanned<T> {
    Spanned::new(value, node.referenced, node.defined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(did_you_mean("chekcs", SETTINGS_KEYS), Some("checks"));
        assert_eq!(did_you_mean("Name", TASK_KEYS), Some("name"));
        assert_eq!(
            did_you_mean("on-failure", SETTINGS_KEYS),
            Some("on_failure")
        );
        assert_eq!(did_you_mean("budgets", SETTINGS_KEYS), Some("budget"));
        assert_eq!(did_you_mean("colour", SETTINGS_KEYS), None);
        assert_eq!(did_you_mean("bughunt", KINDS), Some("bug-hunt"));
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(check_name("fix-iso-weeks").is_ok());
        assert!(check_name("2026-cleanup").is_ok());
        for bad in ["", "-x", "Fix", "fix_it", "fix it", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
        assert_eq!(suggest_name("Fix Dates_now"), "fix-dates-now");
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        assert!(pattern.is_match("fix-iso-weeks") && !pattern.is_match("-x"));
    }

    #[test]
    fn model_specs_name_a_known_provider() {
        assert_eq!(
            check_model_form("openai:gpt-4.1"),
            Ok(("openai", "gpt-4.1"))
        );
        assert!(
            check_model_form("gpt-4.1")
                .unwrap_err()
                .contains("provider:model")
        );
        let error = check_model_form("opneai:gpt-4.1").unwrap_err();
        assert!(error.contains("did you mean `openai`"), "{error}");
        assert!(error.contains("openai, anthropic, replay"), "{error}");
        assert!(check_model_form("replay:").is_err());
        let pattern = regex::Regex::new(MODEL_PATTERN).unwrap();
        assert!(pattern.is_match("replay:cassettes/a.jsonl") && !pattern.is_match("replay: x"));
    }
}

//! The settings a task may set or a `tasks:` list's `defaults:` may give:
//! kind, workspace, model, checks, stages, budget, tools and the rest.

use serde_saphyr::Spanned;

use super::names::{check_model_form, is_env_name};
use super::values::{describe, spanned};
use super::{Known, Walker};
use crate::task::diagnostic::TaskFileError;
use crate::task::node::{Node, SpannedNode};
use crate::task::raw::{
    BudgetSettings, CheckEntry, DebugLimits, PreviewLimits, PricingSettings, ShellSettings,
    StageLimits, StagesSettings, TaskSettings, ToolsSettings,
};
use crate::task::resolved::{FailOn, OnFailure, TaskKind};

pub(super) const SETTINGS_KEYS: &[&str] = &[
    "kind",
    "workspace",
    "model",
    "models",
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
    "mcp",
    "output_schema",
    "instructions",
    "setup",
    "copy_ignored",
];
const CHECK_KEYS: &[&str] = &["name", "run", "timeout", "retries", "network"];
const STAGE_KEYS: &[&str] = &["blueprint", "code", "debug", "preview"];
const BUDGET_KEYS: &[&str] = &["max_tokens", "max_cost_usd", "timeout"];
const SHELL_KEYS: &[&str] = &["allow", "deny", "timeout", "writable", "network"];
const PRICING_KEYS: &[&str] = &["input", "cached_input", "cache_write", "output"];
/// Smallest `context_window`: below this not even a stage's system prompt
/// and tools fit, so a smaller number is a typo.
pub(super) const MIN_CONTEXT_WINDOW: u64 = 1024;
pub(super) const KINDS: &[&str] = &["fix", "refactor", "feature", "bug-hunt"];
const ON_FAILURE: &[&str] = &["keep", "rollback"];
const FAIL_ON: &[&str] = &["new-confirmed", "confirmed", "any", "never"];
const MODEL_HELP: &str = "write `provider:model` with provider openai, openai-responses, anthropic or replay, such as `openai:gpt-4.1` \
     or `replay:cassettes/run.jsonl`";

impl Walker<'_> {
    pub(super) fn settings(&mut self, known: &[Known<'_>], path: &str) -> TaskSettings {
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
                "models" => settings.models = self.models(value, &key),
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
                "mcp" => settings.mcp = self.mcp(value, &key),
                "output_schema" => settings.output_schema = self.output_schema(value, &key),
                "instructions" => settings.instructions = self.path_list(value, &key),
                "setup" => settings.setup = self.setup(value, &key),
                "copy_ignored" => settings.copy_ignored = self.copy_ignored(value, &key),
                _ => {}
            }
        }
        if let (Some(_), Some(models)) = (&settings.model, &settings.models) {
            self.error_at(
                models.referenced,
                format!("`{path}model` and `{path}models` are both set"),
                Some(
                    "keep `models:` to run the task once per model, or `model:` to run it once"
                        .into(),
                ),
            );
            settings.models = None;
        }
        settings
    }

    pub(super) fn model(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<String>> {
        let spec = self.string(value, key)?;
        if let Err(problem) = check_model_form(&spec.value) {
            self.error_at(value.referenced, problem, Some(MODEL_HELP.into()));
            return None;
        }
        Some(spec)
    }

    /// `models:`: a list of at least two distinct model specs.
    pub(super) fn models(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
        let items = self.seq(
            value,
            key,
            "a list of model specs: `[openai:gpt-4.1, anthropic:claude-sonnet-4-5]`",
        )?;
        let mut specs: Vec<Spanned<String>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let Some(spec) = self.model(item, &format!("{key}[{index}]")) else {
                continue;
            };
            if specs.iter().any(|seen| seen.value == spec.value) {
                self.error_at(
                    item.referenced,
                    format!("`{key}` lists `{}` twice", spec.value),
                    Some("remove the repeated entry: each model runs the task once".into()),
                );
                continue;
            }
            specs.push(spec);
        }
        if items.len() < 2 {
            self.error_at(
                value.referenced,
                format!("`{key}` needs at least two models to compare"),
                Some("for one model write `model: PROVIDER:MODEL` instead".into()),
            );
            return None;
        }
        Some(spanned(specs, value))
    }

    pub(super) fn checks(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<Vec<CheckEntry>>> {
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
            let mut network = None;
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
                    "network" => network = self.boolean(entry.value, &field),
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
                    network,
                });
            }
        }
        Some(spanned(checks, value))
    }

    pub(super) fn stages(&mut self, value: &SpannedNode, key: &str) -> Option<StagesSettings> {
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

    pub(super) fn budget(&mut self, value: &SpannedNode, key: &str) -> Option<BudgetSettings> {
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

    pub(super) fn tools(&mut self, value: &SpannedNode, key: &str) -> Option<ToolsSettings> {
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
                    "writable" => shell.writable = self.path_list(field.value, &field_path),
                    "network" => shell.network = self.boolean(field.value, &field_path),
                    _ => {}
                }
            }
            tools.shell = Some(shell);
        }
        Some(tools)
    }

    /// A `pricing:` mapping; `None` unless `input` and `output` are both
    /// present and valid (every problem is still reported).
    pub(super) fn pricing(&mut self, value: &SpannedNode, key: &str) -> Option<PricingSettings> {
        let entries = self.map(value, key)?;
        let known = self.known_keys(entries, PRICING_KEYS, &format!("{key}."), |_| None);
        let mut input = None;
        let mut cached_input = None;
        let mut cache_write = None;
        let mut output = None;
        let mut complete = true;
        for entry in &known {
            let path = format!("{key}.{}", entry.name);
            let price = self.price(entry.value, &path);
            complete &= price.is_some();
            match entry.name {
                "input" => input = price,
                "cached_input" => cached_input = price,
                "cache_write" => cache_write = price,
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
            cache_write,
            output: output?,
        })
    }

    /// A price in USD per million tokens: a finite number, at least 0.
    pub(super) fn price(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<f64>> {
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

    pub(super) fn env(
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
}

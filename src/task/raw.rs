//! The task file as written: every key optional where the format allows it,
//! every value with its source location. `parse` builds these from the YAML
//! tree; `resolve` merges defaults and turns them into [`super::Task`]s. The
//! JSON Schema is derived from these types, so its doc comments are what
//! editors show while a task file is being written.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_saphyr::Spanned;

use super::resolved::{FailOn, OnFailure, TaskKind};

/// A kkrun task file (version 1): one task at the top level, or a `tasks:`
/// list whose entries share `defaults:`.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "kkrun task file")]
#[allow(clippy::large_enum_variant)]
pub(crate) enum TaskFile {
    /// One task at the top level.
    Single(SingleTaskFile),
    /// Several tasks sharing defaults.
    List(TaskListFile),
}

/// A file holding exactly one task, its keys at the top level.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SingleTaskFile {
    /// Task file format version; always 1.
    #[schemars(with = "FormatVersion")]
    #[allow(
        dead_code,
        reason = "the walker checks it; the field is here for the schema"
    )]
    pub(crate) version: Option<Spanned<u32>>,
    /// The task.
    #[serde(flatten)]
    pub(crate) task: TaskEntry,
}

/// A file holding a list of tasks that share defaults.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskListFile {
    /// Task file format version; always 1.
    #[schemars(with = "FormatVersion")]
    #[allow(
        dead_code,
        reason = "the walker checks it; the field is here for the schema"
    )]
    pub(crate) version: Option<Spanned<u32>>,
    /// Keys every task of this file inherits. A task's own key replaces the
    /// default, except the maps `stages`, `budget`, `tools.shell` and `env`,
    /// which merge key by key.
    pub(crate) defaults: Option<TaskSettings>,
    /// The tasks, run in this order.
    #[schemars(length(min = 1))]
    pub(crate) tasks: Vec<TaskEntry>,
}

/// One task: its identity and goal, plus settings.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskEntry {
    /// Unique name in the run: lowercase letters, digits and `-`, starting
    /// with a letter or digit, at most 64 characters. Used in snapshot refs
    /// and reports.
    #[schemars(with = "Name")]
    pub(crate) name: Spanned<String>,
    /// One line for reports.
    #[schemars(with = "Option<String>")]
    pub(crate) description: Option<Spanned<String>>,
    /// The goal given to the agent: what to change and how success is
    /// verified.
    #[schemars(with = "NonEmptyString")]
    pub(crate) prompt: Spanned<String>,
    /// Everything else.
    #[serde(flatten)]
    pub(crate) settings: TaskSettings,
}

/// Keys a task may take from `defaults:`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskSettings {
    /// What kind of work this is (default `fix`). `bug-hunt` reports
    /// findings instead of editing.
    #[schemars(with = "Option<TaskKind>")]
    pub(crate) kind: Option<Spanned<TaskKind>>,
    /// Directory the agent works in, relative to the task file (default `.`).
    /// Must be inside a git work tree.
    #[schemars(with = "Option<String>")]
    pub(crate) workspace: Option<Spanned<String>>,
    /// Model as `provider:model`: `openai:gpt-4.1`, `anthropic:claude-sonnet-4-5`,
    /// `replay:PATH` (a recorded cassette, relative to the task file), or
    /// `NAME:MODEL` with NAME from `providers:` in kkrun.yaml.
    /// `--model` and `KKRUN_MODEL` override it.
    #[schemars(with = "Option<ModelSpec>")]
    pub(crate) model: Option<Spanned<String>>,
    /// A model matrix: the task runs once per model, each run an instance
    /// named `<task>@<model>` in its own isolated worktree, and summary.md
    /// compares them side by side. Give `model` or `models`, not both.
    /// Several `--model` flags replace it; one `--model` runs the task once.
    #[schemars(with = "Option<ModelList>")]
    pub(crate) models: Option<Spanned<Vec<Spanned<String>>>>,
    /// Globs of files (relative to the workspace) shown to the blueprint stage
    /// up front (default none).
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) context: Option<Spanned<Vec<Spanned<String>>>>,
    /// Commands that decide whether the task passed; all must pass. Each is a
    /// JUnit test case. Default: none (the review verdict decides alone).
    #[schemars(with = "Option<Vec<CheckEntry>>")]
    pub(crate) checks: Option<Spanned<Vec<CheckEntry>>>,
    /// Per-stage limits.
    pub(crate) stages: Option<StagesSettings>,
    /// Task-wide budgets.
    pub(crate) budget: Option<BudgetSettings>,
    /// Tool policies.
    pub(crate) tools: Option<ToolsSettings>,
    /// What to do with the work tree when the task fails (default `keep`).
    #[schemars(with = "Option<OnFailure>")]
    pub(crate) on_failure: Option<Spanned<OnFailure>>,
    /// Which findings fail a `bug-hunt` task (default `new-confirmed`):
    /// `new-confirmed` (confirmed and not in `--baseline-findings`),
    /// `confirmed`, `any` (confirmed or not) or `never`. Only bug hunts take
    /// it.
    #[schemars(with = "Option<FailOn>")]
    pub(crate) fail_on: Option<Spanned<FailOn>>,
    /// Extra environment variables for shell tools and checks.
    #[schemars(with = "Option<std::collections::BTreeMap<String, EnvValue>>")]
    pub(crate) env: Option<Vec<(Spanned<String>, Spanned<String>)>>,
    /// Price of the task's model in USD per million tokens, replacing the
    /// built-in table (default: the built-in price; a model without one has
    /// no cost, `null` in reports).
    pub(crate) pricing: Option<PricingSettings>,
    /// The model's context window in tokens; the conversation is compacted
    /// as it nears it (default: by model name, 128000 for unknown models).
    #[schemars(with = "Option<u64>", range(min = 1024))]
    pub(crate) context_window: Option<Spanned<u64>>,
    /// MCP servers whose tools the agent gets, by name (lowercase letters,
    /// digits and `-`): tools are offered as `<server>__<tool>`. Only these
    /// servers are ever started or contacted. A task's servers are added to
    /// those of `defaults:`, replacing one of the same name.
    #[schemars(with = "Option<std::collections::BTreeMap<String, McpServerSchema>>")]
    pub(crate) mcp: Option<super::parse::McpServers>,
    /// A JSON Schema the preview stage's final `output` must match: inline,
    /// or the path of a JSON file relative to the task file. The validated
    /// object lands in `report.json` (`tasks[].output`), the `task.finished`
    /// event and `<task>/output.json`; an output that still does not match
    /// after 3 corrections fails the task (default: no structured output).
    #[schemars(with = "Option<OutputSchemaSpec>")]
    pub(crate) output_schema: Option<Spanned<OutputSchemaSetting>>,
    /// Files (relative to the task file) given to every stage as project
    /// instructions, after the `AGENTS.md` files found from the workspace up
    /// to the work-tree root (default none).
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) instructions: Option<Spanned<Vec<Spanned<String>>>>,
    /// Shell commands run in the task's workspace, in order, once it is
    /// ready (after `copy_ignored:`) and before the baseline checks, such as
    /// `npm ci`. They run like checks (`bash -c`, the checks' sandbox, the
    /// task's `env`); a command that fails ends the task as `error`.
    /// Each must pass the task's shell policy (`tools.shell`). Default none.
    #[schemars(with = "Option<Vec<SetupEntrySchema>>")]
    pub(crate) setup: Option<Spanned<Vec<SetupEntry>>>,
    /// Globs (relative to the workspace) of git-ignored paths copied from
    /// the user's work tree into an isolated worktree (`--isolate`) before
    /// `setup:`, such as `node_modules/**` or `target/`; a matching directory
    /// is copied whole. Copies are reflinks where the file system supports
    /// them, symlinks stay symlinks. Without isolation it does nothing.
    /// Default none.
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) copy_ignored: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `setup:` command as written: a string, or `{ run, timeout }`.
#[derive(Debug, Clone)]
pub(crate) struct SetupEntry {
    /// The shell command.
    pub(crate) run: Spanned<String>,
    /// Its time limit, when given.
    pub(crate) timeout: Option<Spanned<std::time::Duration>>,
}

/// Schema of one `setup:` entry.
pub(crate) struct SetupEntrySchema;

impl JsonSchema for SetupEntrySchema {
    fn schema_name() -> Cow<'static, str> {
        "SetupCommand".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let duration = generator.subschema_for::<DurationText>();
        json_schema!({
            "description": "A shell command run with `bash -c` in the workspace: a string, or `{ run, timeout }` (default timeout `10m`).",
            "anyOf": [
                {"type": "string", "pattern": "\\S"},
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["run"],
                    "properties": {
                        "run": {"description": "Shell command, run with `bash -c` in the workspace.", "type": "string", "pattern": "\\S"},
                        "timeout": duration
                    }
                }
            ]
        })
    }
}

/// `output_schema:` as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutputSchemaSetting {
    /// The schema itself, converted from YAML and already compiled once.
    Inline(serde_json::Value),
    /// The path of a JSON Schema file, relative to the task file.
    File(String),
}

/// Schema of `output_schema:`.
pub(crate) struct OutputSchemaSpec;

impl JsonSchema for OutputSchemaSpec {
    fn schema_name() -> Cow<'static, str> {
        "OutputSchema".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A JSON Schema (inline) or the path of a JSON Schema file relative to the task file.",
            "anyOf": [
                {"type": "object"},
                {"type": "boolean"},
                {"type": "string", "minLength": 1}
            ]
        })
    }
}

/// One MCP server: `command` (stdio) or `url` (streamable HTTP).
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "the parser reads `mcp:`; this type is its schema")]
pub(crate) struct McpServerSchema {
    /// A stdio server: the program kkrun starts in the workspace for the
    /// task (looked up on `PATH`), stopped with its process group when the
    /// task ends.
    command: Option<String>,
    /// Arguments of `command`.
    args: Option<Vec<String>>,
    /// Variables for `command`, on top of the minimal environment shell
    /// commands get (nothing else of kkrun's environment passes through).
    /// `${NAME}` in a value takes a variable of kkrun's environment; such
    /// values are redacted from everything the server returns.
    env: Option<std::collections::BTreeMap<String, String>>,
    /// A streamable HTTP server: its endpoint, `http://` or `https://`.
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    url: Option<String>,
    /// Headers sent to `url` with every request; `${NAME}` takes a variable
    /// of kkrun's environment (redacted like `env`).
    headers: Option<std::collections::BTreeMap<String, String>>,
    /// A tool call is cancelled after this long (default `60s`).
    timeout: Option<DurationText>,
    /// Starting, initialising and listing tools may take this long (default
    /// `30s`); a server that does not make it ends the task as `error`.
    startup_timeout: Option<DurationText>,
    /// The most bytes of one result the model sees (default 32768); the
    /// middle of a longer one is cut, and the model is told.
    #[schemars(range(min = 256, max = 4194304))]
    max_output_bytes: Option<u64>,
    /// Globs over the server's tool names: only matching tools are offered
    /// (default: all).
    allow_tools: Option<Vec<String>>,
    /// Globs over the server's tool names: matching tools are never offered;
    /// deny wins over allow.
    deny_tools: Option<Vec<String>>,
    /// Globs over the server's tool names: matching tools are offered to the
    /// read-only stages (blueprint, preview) too. Without it only tools the
    /// server annotates `readOnlyHint: true` are.
    read_only_tools: Option<Vec<String>>,
}

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PricingSettings {
    /// USD per million uncached input tokens.
    #[schemars(with = "f64", range(min = 0))]
    pub(crate) input: Spanned<f64>,
    /// USD per million input tokens served from the prompt cache (default:
    /// charged as `input`).
    #[schemars(with = "Option<f64>", range(min = 0))]
    pub(crate) cached_input: Option<Spanned<f64>>,
    /// USD per million input tokens written to the prompt cache (Anthropic
    /// charges 1.25× input; default: charged as `input`).
    #[schemars(with = "Option<f64>", range(min = 0))]
    pub(crate) cache_write: Option<Spanned<f64>>,
    /// USD per million output tokens, reasoning included.
    #[schemars(with = "f64", range(min = 0))]
    pub(crate) output: Spanned<f64>,
}

/// A command kkrun runs itself to decide pass or fail.
#[derive(Debug, Clone, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckEntry {
    /// Name, unique within the task (same rule as task names); the JUnit
    /// test case name.
    #[schemars(with = "Name")]
    pub(crate) name: Spanned<String>,
    /// Shell command, run with `bash -c` in the workspace.
    #[schemars(with = "NonEmptyString")]
    pub(crate) run: Spanned<String>,
    /// The check fails when it runs longer than this (default `10m`).
    #[schemars(with = "Option<DurationText>")]
    pub(crate) timeout: Option<Spanned<std::time::Duration>>,
    /// Extra attempts after a failure (default 0); a later pass marks the
    /// check flaky.
    #[schemars(with = "Option<u32>", range(max = 100))]
    pub(crate) retries: Option<Spanned<u32>>,
    /// Whether the check may use the network (default true: test suites
    /// download dependencies). `false` runs it in a network namespace with
    /// only loopback.
    #[schemars(with = "Option<bool>")]
    pub(crate) network: Option<Spanned<bool>>,
}

/// Limits of each stage; unset keys keep their defaults.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StagesSettings {
    /// Read-only exploration and planning.
    pub(crate) blueprint: Option<StageLimits>,
    /// Carrying out the plan.
    pub(crate) code: Option<StageLimits>,
    /// Running the checks and fixing failures.
    pub(crate) debug: Option<DebugLimits>,
    /// Read-only review of the final diff.
    pub(crate) preview: Option<PreviewLimits>,
}

/// Limits of the blueprint or code stage.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageLimits {
    /// Model turns before the stage gives up (defaults: blueprint 12, code 40).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub(crate) max_turns: Option<Spanned<u32>>,
}

/// Limits of the debug stage.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DebugLimits {
    /// Model turns per debug round (default 20).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub(crate) max_turns: Option<Spanned<u32>>,
    /// Debug rounds; each may send the work back to code (default 3, at
    /// least 1).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub(crate) max_rounds: Option<Spanned<u32>>,
}

/// Limits of the preview stage.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewLimits {
    /// Model turns before the review gives up (default 8).
    #[schemars(with = "Option<u32>", range(min = 1))]
    pub(crate) max_turns: Option<Spanned<u32>>,
    /// When true, a `request_changes` verdict does not fail the task
    /// (default false).
    #[schemars(with = "Option<bool>")]
    pub(crate) advisory: Option<Spanned<bool>>,
}

/// Task-wide budgets; the task stops with exit code 4 when one runs out.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetSettings {
    /// Input plus output tokens over all stages (default 400000).
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub(crate) max_tokens: Option<Spanned<u64>>,
    /// Cost in USD over all stages (default: no limit).
    #[schemars(with = "Option<f64>", range(min = 0.000001))]
    pub(crate) max_cost_usd: Option<Spanned<f64>>,
    /// Wall-clock time for the whole task (default `45m`).
    #[schemars(with = "Option<DurationText>")]
    pub(crate) timeout: Option<Spanned<std::time::Duration>>,
}

/// Tool policies.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolsSettings {
    /// Which shell commands the agent may run.
    pub(crate) shell: Option<ShellSettings>,
}

/// Shell command policy: a guard for well-meaning models, not a sandbox.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellSettings {
    /// Glob patterns a command must match one of (default empty: any command
    /// that no deny pattern matches).
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) allow: Option<Spanned<Vec<Spanned<String>>>>,
    /// Glob patterns that refuse a command; deny wins over allow. The
    /// built-in rules (git history commands, `sudo`, `rm -rf /`, ...)
    /// always apply on top.
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) deny: Option<Spanned<Vec<Spanned<String>>>>,
    /// Kill a command after this long (default `5m`).
    #[schemars(with = "Option<DurationText>")]
    pub(crate) timeout: Option<Spanned<std::time::Duration>>,
    /// Paths the sandbox lets commands and checks write besides the
    /// workspace and the temporary directory: absolute, `~/…`, or relative
    /// to the workspace.
    #[schemars(with = "Option<Vec<String>>")]
    pub(crate) writable: Option<Spanned<Vec<Spanned<String>>>>,
    /// Whether the agent's commands may use the network (default false:
    /// they run in a network namespace with only loopback).
    #[schemars(with = "Option<bool>")]
    pub(crate) network: Option<Spanned<bool>>,
}

/// Schema of `version`.
pub(crate) struct FormatVersion;

impl JsonSchema for FormatVersion {
    fn schema_name() -> Cow<'static, str> {
        "FormatVersion".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Task file format version; always 1.",
            "type": "integer",
            "const": 1
        })
    }
}

/// Schema of task and check names.
pub(crate) struct Name;

impl JsonSchema for Name {
    fn schema_name() -> Cow<'static, str> {
        "Name".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Lowercase letters, digits and `-`, starting with a letter or digit.",
            "type": "string",
            "pattern": super::parse::NAME_PATTERN,
            "maxLength": super::parse::NAME_MAX_LEN
        })
    }
}

/// Schema of strings that must not be empty.
pub(crate) struct NonEmptyString;

impl JsonSchema for NonEmptyString {
    fn schema_name() -> Cow<'static, str> {
        "NonEmptyString".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "\\S"
        })
    }
}

/// Schema of durations.
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: hours, minutes and seconds in that order, each optional, such as `90s`, `10m`, `1h30m`.",
            "type": "string",
            "pattern": super::duration::PATTERN
        })
    }
}

/// Schema of model specs.
pub(crate) struct ModelSpec;

impl JsonSchema for ModelSpec {
    fn schema_name() -> Cow<'static, str> {
        "ModelSpec".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`provider:model` with provider `openai`, `openai-responses`, `anthropic`, `replay` (then a cassette path relative to the task file) or a name from `providers:` in a configuration file (kkrun.yaml).",
            "type": "string",
            "pattern": super::parse::MODEL_PATTERN
        })
    }
}

/// Schema of `models:`: at least two model specs, each at most once.
pub(crate) struct ModelList;

impl JsonSchema for ModelList {
    fn schema_name() -> Cow<'static, str> {
        "ModelList".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let spec = generator.subschema_for::<ModelSpec>();
        json_schema!({
            "description": "Model specs to run the task with, once each.",
            "type": "array",
            "items": spec,
            "minItems": 2,
            "uniqueItems": true
        })
    }
}

/// Schema of environment values: strings, or integers and booleans taken as
/// their text.
pub(crate) struct EnvValue;

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The variable's value; integers and booleans are taken as their text.",
            "type": ["string", "integer", "boolean"]
        })
    }
}

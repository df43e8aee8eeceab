//! A task after loading: every default filled in, paths absolute. This is
//! what the rest of kkrun consumes; the YAML shape lives in `file`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One task, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Unique name in the run (`[a-z0-9-]`).
    pub name: String,
    /// One line for reports.
    pub description: String,
    /// The goal given to the agent.
    pub prompt: String,
    /// What kind of work this is.
    pub kind: TaskKind,
    /// The task file this task came from.
    pub file: PathBuf,
    /// Line of the task's `name:` key in [`Task::file`] (1-based), for reports.
    pub line: u64,
    /// Absolute path of the workspace directory (inside a git work tree).
    pub workspace: PathBuf,
    /// `provider:model` from the task file; the CLI and `KKRUN_MODEL` override it.
    pub model: Option<String>,
    /// Globs of files shown to the blueprint stage up front.
    pub context: Vec<String>,
    /// Checks that decide pass/fail; all must pass.
    pub checks: Vec<Check>,
    /// Per-stage limits.
    pub stages: StageSettings,
    /// Task-wide budgets.
    pub budget: Budget,
    /// Shell tool policy.
    pub shell: ShellPolicy,
    /// What to do with the work tree when the task fails.
    pub on_failure: OnFailure,
    /// Which findings fail a bug hunt (`new-confirmed` by default).
    pub fail_on: FailOn,
    /// Extra environment for shell tools and checks.
    pub env: BTreeMap<String, String>,
    /// Price of the task's model from the task file, replacing the built-in
    /// table; `None` uses the table (and a model missing from it has no
    /// cost).
    pub pricing: Option<crate::provider::ModelPrice>,
    /// The model's context window in tokens from the task file; `None`
    /// picks one by model name ([`crate::agent::default_context_window`]).
    pub context_window: Option<u64>,
    /// The task's MCP servers (`mcp:`), in the order the file lists them.
    pub mcp: Vec<crate::mcp::ServerConfig>,
    /// The JSON Schema of the preview's final `output` (`output_schema:`),
    /// read and checked at load; `None` asks for no structured output.
    pub output_schema: Option<serde_json::Value>,
    /// The named endpoint (from `providers:` in a configuration file) that
    /// the task's model names; `None` for the built-in providers.
    pub endpoint: Option<crate::provider::Endpoint>,
    /// Absolute paths of the task's `instructions:` files, given to every
    /// stage after the `AGENTS.md` files.
    pub instructions: Vec<PathBuf>,
    /// `setup:` commands, run in order in the workspace before the baseline
    /// checks.
    pub setup: Vec<SetupCommand>,
    /// `copy_ignored:` globs (relative to the workspace) of ignored paths
    /// copied into an isolated worktree before `setup:`.
    pub copy_ignored: Vec<String>,
    /// Set on one model's instance of a task with a model matrix (`models:`
    /// or several `--model`); such a task always runs isolated.
    pub matrix: Option<super::MatrixInstance>,
}

impl Task {
    /// The name the task file gives the task: a model-matrix instance's
    /// (`fix@gpt-4.1`) is its task's (`fix`). This is the name the model is
    /// told, so every model of a matrix gets the same prompt, and a
    /// cassette recorded without the matrix replays within it.
    pub fn base_name(&self) -> &str {
        self.matrix.as_ref().map_or(&self.name, |m| &m.task)
    }
}

/// A `setup:` command: run once in the workspace before the baseline; a
/// failure ends the task as `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupCommand {
    /// Shell command, run with `bash -c` in the workspace.
    pub run: String,
    /// The command is killed (and the task ends as `error`) after this long.
    pub timeout: Duration,
    /// Line of the entry in the task file (1-based), for reports.
    pub line: u64,
}

/// What kind of work a task asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Fix a bug so the checks pass.
    #[default]
    Fix,
    /// Change structure without changing behaviour.
    Refactor,
    /// Add new behaviour.
    Feature,
    /// Look for bugs and report findings; edits are not the goal.
    BugHunt,
}

impl TaskKind {
    /// The kind as written in task files.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Fix => "fix",
            TaskKind::Refactor => "refactor",
            TaskKind::Feature => "feature",
            TaskKind::BugHunt => "bug-hunt",
        }
    }
}

/// A command whose exit status decides part of a task's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Name, unique within the task; the JUnit testcase name.
    pub name: String,
    /// Shell command, run with `bash -c` in the workspace.
    pub run: String,
    /// The check fails when it runs longer than this.
    pub timeout: Duration,
    /// Extra attempts after a failure; a later pass makes the check flaky.
    pub retries: u32,
    /// Line of the check's `name:` key in the task file (1-based), where
    /// its failure annotations point.
    pub line: u64,
    /// Whether the check keeps the network under the sandbox.
    pub network: bool,
}

/// The four pipeline stages, in order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Read-only exploration and planning.
    Blueprint,
    /// Carrying out the plan.
    Code,
    /// Running checks and fixing failures.
    Debug,
    /// Read-only review of the final diff.
    Preview,
}

impl Stage {
    /// All stages in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Blueprint, Stage::Code, Stage::Debug, Stage::Preview];

    /// The stage's name as used in refs, reports and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Blueprint => "blueprint",
            Stage::Code => "code",
            Stage::Debug => "debug",
            Stage::Preview => "preview",
        }
    }

    /// Whether the stage may change files.
    pub fn writes(self) -> bool {
        matches!(self, Stage::Code | Stage::Debug)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-stage limits with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSettings {
    /// Blueprint turn limit (default 12).
    pub blueprint_max_turns: u32,
    /// Code turn limit (default 40).
    pub code_max_turns: u32,
    /// Debug turn limit per round (default 20).
    pub debug_max_turns: u32,
    /// Debug rounds, each of which may send work back to code (default 3, at least 1).
    pub debug_max_rounds: u32,
    /// Preview turn limit (default 8).
    pub preview_max_turns: u32,
    /// When true, a `request_changes` verdict does not fail the task.
    pub preview_advisory: bool,
}

impl StageSettings {
    /// The turn limit of `stage`.
    pub fn max_turns(&self, stage: Stage) -> u32 {
        match stage {
            Stage::Blueprint => self.blueprint_max_turns,
            Stage::Code => self.code_max_turns,
            Stage::Debug => self.debug_max_turns,
            Stage::Preview => self.preview_max_turns,
        }
    }
}

impl Default for StageSettings {
    fn default() -> Self {
        StageSettings {
            blueprint_max_turns: 12,
            code_max_turns: 40,
            debug_max_turns: 20,
            debug_max_rounds: 3,
            preview_max_turns: 8,
            preview_advisory: false,
        }
    }
}

/// Task-wide budgets; `None` means unlimited.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Input plus output tokens over all stages (default 400 000).
    pub max_tokens: Option<u64>,
    /// Cost in USD over all stages (default: unlimited).
    pub max_cost_usd: Option<f64>,
    /// Wall-clock time for the whole task (default 45 minutes).
    pub timeout: Option<Duration>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_tokens: Some(400_000),
            max_cost_usd: None,
            timeout: Some(Duration::from_secs(45 * 60)),
        }
    }
}

/// Which shell commands the agent may run. A policy guard for well-meaning
/// models, not an OS sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellPolicy {
    /// Glob patterns a command must match one of; empty allows every command
    /// that no deny pattern matches.
    pub allow: Vec<String>,
    /// Glob patterns that refuse a command; deny wins over allow. The
    /// built-in rules of the shell policy always apply on top.
    pub deny: Vec<String>,
    /// Kill a command (and its process group) after this long.
    pub timeout: Duration,
    /// Paths commands and checks may write besides the workspace and the
    /// temporary directory, as written in the task file (see
    /// [`crate::sandbox::resolve_writable`]).
    pub writable: Vec<String>,
    /// Whether the agent's commands keep the network.
    pub network: bool,
}

impl Default for ShellPolicy {
    fn default() -> Self {
        ShellPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            timeout: Duration::from_secs(5 * 60),
            writable: Vec::new(),
            network: false,
        }
    }
}

/// What happens to the work tree when a task fails.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Leave the work tree as the agent left it.
    #[default]
    Keep,
    /// Restore the `00-base` snapshot (snapshots stay, so nothing is lost).
    Rollback,
}

/// Which findings make a bug hunt fail.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// A confirmed finding that is not in `--baseline-findings` (every
    /// confirmed finding when there is no baseline).
    #[default]
    NewConfirmed,
    /// Any confirmed finding.
    Confirmed,
    /// Any finding not withdrawn, confirmed or not.
    Any,
    /// Never: the hunt passes whatever it finds.
    Never,
}

impl FailOn {
    /// The value as written in task files.
    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::NewConfirmed => "new-confirmed",
            FailOn::Confirmed => "confirmed",
            FailOn::Any => "any",
            FailOn::Never => "never",
        }
    }
}

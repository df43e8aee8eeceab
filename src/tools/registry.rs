//! Tool sets per stage, the specs the model is offered, and dispatch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::findings::{self, FindingsDesk};
use super::{ToolError, edit, fs, patch, search, shell};
use crate::events::ToolOutcome;
use crate::provider::{ToolCall, ToolSpec};
use crate::task::{Check, ShellPolicy};

/// Everything the tools need to know about the task they work for.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The workspace root, canonical (symlinks resolved): every path is
    /// confined to it.
    pub workspace: PathBuf,
    /// Which shell commands may run, and their timeout.
    pub shell: ShellPolicy,
    /// The task's `env`, added to the minimal inherited environment of
    /// shell commands and checks.
    pub env: BTreeMap<String, String>,
    /// The task's checks, run by the `run_checks` tool.
    pub checks: Vec<Check>,
    /// A bug hunt's findings and the finding tool the current stage is
    /// offered; `None` outside bug hunts.
    pub findings: Option<FindingsDesk>,
}

impl ToolContext {
    /// The context of `task`'s tools: its workspace (canonicalized), shell
    /// policy, `env` and checks.
    pub fn new(task: &crate::task::Task) -> ToolContext {
        ToolContext::from_parts(
            &task.workspace,
            task.shell.clone(),
            task.env.clone(),
            task.checks.clone(),
        )
    }

    /// A context from its parts. The workspace is canonicalized; one that
    /// cannot be (it does not exist) is kept as given, and every tool then
    /// reports the missing path to the model.
    pub fn from_parts(
        workspace: &Path,
        shell: ShellPolicy,
        env: BTreeMap<String, String>,
        checks: Vec<Check>,
    ) -> ToolContext {
        ToolContext {
            workspace: workspace
                .canonicalize()
                .unwrap_or_else(|_| workspace.to_path_buf()),
            shell,
            env,
            checks,
            findings: None,
        }
    }

    /// Whether the current stage is offered `tool` besides its tool set (a
    /// bug hunt's finding tools).
    pub fn offers_extra(&self, tool: &str) -> bool {
        self.findings.as_ref().is_some_and(|desk| desk.offers(tool))
    }

    /// The specs of the tools offered besides the stage's tool set.
    pub fn extra_specs(&self) -> Vec<ToolSpec> {
        self.findings
            .as_ref()
            .map(FindingsDesk::specs)
            .unwrap_or_default()
    }
}

/// Which tools a stage gets. Read-only is enforced here, by what is offered
/// and what [`execute`] accepts, not by the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolSet {
    /// Blueprint and preview: `read_file`, `list_dir`, `glob`, `grep`.
    ReadOnly,
    /// Code: the read-only tools plus `write_file`, `edit_file`,
    /// `apply_patch` and `shell`.
    Code,
    /// Debug: everything in [`ToolSet::Code`] plus `run_checks`.
    Debug,
}

impl ToolSet {
    /// The tool set of `stage`.
    pub fn for_stage(stage: crate::task::Stage) -> ToolSet {
        match stage {
            crate::task::Stage::Blueprint | crate::task::Stage::Preview => ToolSet::ReadOnly,
            crate::task::Stage::Code => ToolSet::Code,
            crate::task::Stage::Debug => ToolSet::Debug,
        }
    }

    /// Names of the set's tools, in the order they are offered.
    pub fn tool_names(self) -> &'static [&'static str] {
        const READ_ONLY: &[&str] = &["read_file", "list_dir", "glob", "grep"];
        const CODE: &[&str] = &[
            "read_file",
            "list_dir",
            "glob",
            "grep",
            "write_file",
            "edit_file",
            "apply_patch",
            "shell",
        ];
        const DEBUG: &[&str] = &[
            "read_file",
            "list_dir",
            "glob",
            "grep",
            "write_file",
            "edit_file",
            "apply_patch",
            "shell",
            "run_checks",
        ];
        match self {
            ToolSet::ReadOnly => READ_ONLY,
            ToolSet::Code => CODE,
            ToolSet::Debug => DEBUG,
        }
    }

    /// Whether the set offers `tool`.
    pub fn contains(self, tool: &str) -> bool {
        self.tool_names().contains(&tool)
    }

    fn describe(self) -> &'static str {
        match self {
            ToolSet::ReadOnly => "a read-only stage: it may not change files",
            ToolSet::Code => "the code stage",
            ToolSet::Debug => "the debug stage",
        }
    }
}

/// What a tool call gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The text for the model.
    pub content: String,
    /// How the call ended.
    pub outcome: ToolOutcome,
}

impl ToolResult {
    fn from_result(result: Result<String, ToolError>) -> ToolResult {
        match result {
            Ok(content) => ToolResult {
                content,
                outcome: ToolOutcome::Ok,
            },
            Err(ToolError::Refused(content)) => ToolResult {
                content,
                outcome: ToolOutcome::Refused,
            },
            Err(ToolError::Failed(content)) => ToolResult {
                content,
                outcome: ToolOutcome::Error,
            },
        }
    }
}

/// The specs of the tools in `set`, in a fixed order (a stable prompt prefix
/// depends on it).
pub fn tool_specs(set: ToolSet) -> Vec<ToolSpec> {
    set.tool_names()
        .iter()
        .filter_map(|name| spec(name))
        .collect()
}

fn spec(name: &str) -> Option<ToolSpec> {
    Some(match name {
        "read_file" => fs::read_file_spec(),
        "list_dir" => fs::list_dir_spec(),
        "glob" => search::glob_spec(),
        "grep" => search::grep_spec(),
        "write_file" => fs::write_file_spec(),
        "edit_file" => edit::edit_file_spec(),
        "apply_patch" => patch::apply_patch_spec(),
        "shell" => shell::shell_spec(),
        "run_checks" => shell::run_checks_spec(),
        _ => return None,
    })
}

/// Runs `call` if `set` offers its tool, and refuses it otherwise. Never
/// fails: every problem is a [`ToolResult`] for the model. Dropping the
/// future kills a running shell command's process group.
pub async fn execute(ctx: &ToolContext, set: ToolSet, call: &ToolCall) -> ToolResult {
    ToolResult::from_result(dispatch(ctx, set, call).await)
}

async fn dispatch(ctx: &ToolContext, set: ToolSet, call: &ToolCall) -> Result<String, ToolError> {
    let name = call.name.as_str();
    if let Some(desk) = ctx.findings.as_ref().filter(|desk| desk.offers(name)) {
        let arguments = call.parsed_arguments().map_err(|e| {
            ToolError::Failed(format!(
                "the arguments of `{name}` are not valid JSON ({e}); send a JSON object matching the tool's schema"
            ))
        })?;
        return match name {
            "report_finding" => {
                findings::report_finding(ctx, desk, parse_arguments(name, arguments)?)
            }
            _ => findings::withdraw_finding(desk, parse_arguments(name, arguments)?),
        };
    }
    if !set.contains(name) {
        let offered = set.tool_names().join(", ");
        let known = spec(name).is_some() || findings::all_specs().iter().any(|s| s.name == name);
        return Err(ToolError::Refused(if known {
            format!(
                "`{name}` is not available in {}; the tools here are: {offered}",
                set.describe()
            )
        } else {
            format!("there is no tool named `{name}`; the tools here are: {offered}")
        }));
    }
    let arguments = call.parsed_arguments().map_err(|e| {
        ToolError::Failed(format!(
            "the arguments of `{name}` are not valid JSON ({e}); send a JSON object matching the tool's schema"
        ))
    })?;
    match name {
        "read_file" => blocking(ctx, name, arguments, fs::read_file).await,
        "list_dir" => blocking(ctx, name, arguments, fs::list_dir).await,
        "glob" => blocking(ctx, name, arguments, search::glob).await,
        "grep" => blocking(ctx, name, arguments, search::grep).await,
        "write_file" => blocking(ctx, name, arguments, fs::write_file).await,
        "edit_file" => blocking(ctx, name, arguments, edit::edit_file).await,
        "apply_patch" => blocking(ctx, name, arguments, patch::apply_patch).await,
        "shell" => shell::shell(ctx, parse_arguments(name, arguments)?).await,
        "run_checks" => shell::run_checks_tool(ctx, parse_arguments(name, arguments)?).await,
        _ => Err(ToolError::Refused(format!(
            "there is no tool named `{name}`"
        ))),
    }
}

/// Deserializes a tool's arguments, turning serde's complaint into a
/// message that names the tool.
pub(crate) fn parse_arguments<T: DeserializeOwned>(
    tool: &str,
    arguments: serde_json::Value,
) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|e| {
        ToolError::Failed(format!(
            "invalid arguments for `{tool}`: {e}; see the tool's schema"
        ))
    })
}

/// Runs a file-system tool on the blocking pool: walking or reading a large
/// tree must not stall the runtime.
async fn blocking<T, F>(
    ctx: &ToolContext,
    tool: &str,
    arguments: serde_json::Value,
    run: F,
) -> Result<String, ToolError>
where
    T: DeserializeOwned + Send + 'static,
    F: FnOnce(&Path, T) -> Result<String, ToolError> + Send + 'static,
{
    let args: T = parse_arguments(tool, arguments)?;
    // Confinement compares canonical paths; a context built by hand with a
    // non-canonical root would otherwise refuse everything.
    let workspace = ctx
        .workspace
        .canonicalize()
        .unwrap_or_else(|_| ctx.workspace.clone());
    tokio::task::spawn_blocking(move || run(&workspace, args))
        .await
        .unwrap_or_else(|e| {
            Err(ToolError::Failed(format!(
                "`{tool}` failed internally: {e}"
            )))
        })
}

//! What the tools know about the task they work for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::findings::FindingsDesk;
use super::registry::ToolTable;
use crate::guard::{GitGuard, PolicyViolation};
use crate::provider::ToolSpec;
use crate::sandbox::SandboxOptions;
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
    /// The tools the task's stages choose from: the built-in ones unless
    /// the task adds more.
    pub tools: Arc<ToolTable>,
    /// Guards the repository's git state around every command the agent
    /// runs (`shell`, `run_checks`); `None` when the workspace is in no
    /// git repository.
    pub git_guard: Option<Arc<GitGuard>>,
    /// How commands and checks are sandboxed; from `shell`, not strict.
    pub sandbox: SandboxOptions,
    /// A bug hunt's findings and the finding tool the current stage is
    /// offered besides its tool set; `None` outside bug hunts.
    pub findings: Option<FindingsDesk>,
    /// The paths kkrun's file tools wrote since the last snapshot, or that
    /// something else may have written (see [`super::ChangeLog`]).
    pub changes: super::ChangeLog,
}

impl ToolContext {
    /// The context of `task`'s tools: its workspace (canonicalized), shell
    /// policy, `env` and checks, with the built-in tools.
    pub fn new(task: &crate::task::Task) -> ToolContext {
        ToolContext::from_parts(
            &task.workspace,
            task.shell.clone(),
            task.env.clone(),
            task.checks.clone(),
        )
    }

    /// A context from its parts, with the built-in tools. The workspace is
    /// canonicalized; one that cannot be (it does not exist) is kept as
    /// given, and every tool then reports the missing path to the model.
    pub fn from_parts(
        workspace: &Path,
        shell: ShellPolicy,
        env: BTreeMap<String, String>,
        checks: Vec<Check>,
    ) -> ToolContext {
        ToolContext {
            git_guard: GitGuard::open(workspace).ok().map(Arc::new),
            workspace: workspace
                .canonicalize()
                .unwrap_or_else(|_| workspace.to_path_buf()),
            sandbox: SandboxOptions::from_task(&shell, &env),
            shell,
            env,
            checks,
            tools: ToolTable::builtin(),
            findings: None,
            changes: super::ChangeLog::default(),
        }
    }

    /// The git-state violations of the agent's commands since the last
    /// call: each one was reverted (or failed to be) and fails the task.
    pub fn take_violations(&self) -> Vec<PolicyViolation> {
        self.git_guard
            .as_ref()
            .map(|guard| guard.take_violations())
            .unwrap_or_default()
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

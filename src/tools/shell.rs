//! `shell` and `run_checks`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::ToolContext;
use super::ToolError;
use super::checks::{render_for_model, run_checks};
use super::policy::ShellGuard;
use super::process::{CommandSpec, command_env, run_command};

/// Bytes of a command's output kept from the start and from the end; the
/// tail gets more because that is where errors and summaries are.
pub(super) const SHELL_HEAD_BYTES: usize = 8 * 1024;
pub(super) const SHELL_TAIL_BYTES: usize = 24 * 1024;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellArgs {
    /// The bash command line to run.
    command: String,
    /// Kill the command after this many seconds. Default and maximum: the task's shell timeout.
    #[serde(default)]
    #[schemars(range(min = 1))]
    timeout_secs: Option<u64>,
}

pub(crate) async fn shell(ctx: &ToolContext, args: ShellArgs) -> Result<String, ToolError> {
    let guard = ShellGuard::new(&ctx.shell).map_err(|e| {
        ToolError::Refused(format!(
            "shell commands cannot run: the task's {e}; fix the task file's tools.shell section"
        ))
    })?;
    guard
        .check(&args.command)
        .map_err(|refusal| ToolError::Refused(refusal.to_string()))?;

    let timeout = args
        .timeout_secs
        .map(Duration::from_secs)
        .map_or(ctx.shell.timeout, |asked| asked.min(ctx.shell.timeout))
        .max(Duration::from_secs(1));
    let env = command_env(&ctx.env);
    let spec = CommandSpec {
        script: &args.command,
        cwd: &ctx.workspace,
        env: &env,
        timeout,
        head_bytes: SHELL_HEAD_BYTES,
        tail_bytes: SHELL_TAIL_BYTES,
    };
    let output = run_command(&spec)
        .await
        .map_err(|e| ToolError::Failed(format!("could not start bash: {e}")))?;
    let body = if output.total_bytes == 0 {
        "(no output)".to_string()
    } else {
        output.output.clone()
    };
    let text = format!("{}\n{body}", output.status_line());
    if output.success() {
        Ok(text)
    } else {
        Err(ToolError::Failed(text))
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunChecksArgs {}

pub(crate) async fn run_checks_tool(
    ctx: &ToolContext,
    _args: RunChecksArgs,
) -> Result<String, ToolError> {
    if ctx.checks.is_empty() {
        return Ok("this task defines no checks; verify your work with the shell tool".to_string());
    }
    let results = run_checks(&ctx.checks, &ctx.workspace, &ctx.env).await;
    Ok(render_for_model(&results))
}

//! `shell` and `run_checks`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::ToolError;
use super::checks::{render_for_model, run_checks};
use super::policy::ShellGuard;
use super::process::{CommandSpec, command_env, run_command};
use super::registry::ToolContext;
use crate::provider::ToolSpec;

/// Bytes of a command's output kept from the start and from the end; the
/// tail gets more because that is where errors and summaries are.
const SHELL_HEAD_BYTES: usize = 8 * 1024;
const SHELL_TAIL_BYTES: usize = 24 * 1024;

pub(crate) fn shell_spec() -> ToolSpec {
    ToolSpec {
        name: "shell".to_string(),
        description: format!(
            "Run a command with `bash -c` in the workspace root and return its exit code and output (stdout and \
             stderr interleaved). No input is available: interactive commands fail. The output keeps the first {} KiB \
             and the last {} KiB with a marker where the middle was cut. The command runs in its own process group, \
             which is killed when the command ends (background processes do not survive it) or when it times out. \
             The task's shell policy may refuse commands; the refusal names the rule. Never commit, push, reset, \
             check out or stash with git: kkrun records the work itself.",
            SHELL_HEAD_BYTES / 1024,
            SHELL_TAIL_BYTES / 1024
        ),
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command line to run."},
                "timeout_secs": {"type": "integer", "minimum": 1, "description": "Kill the command after this many seconds. Default and maximum: the task's shell timeout."}
            },
            "required": ["command"],
            "additionalProperties": false
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShellArgs {
    command: String,
    #[serde(default)]
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
    let policy = ctx.sandbox.commands(&ctx.workspace);
    let spec = CommandSpec {
        script: &args.command,
        cwd: &ctx.workspace,
        env: &env,
        timeout,
        head_bytes: SHELL_HEAD_BYTES,
        tail_bytes: SHELL_TAIL_BYTES,
        policy: &policy,
        strict: ctx.sandbox.strict,
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

pub(crate) fn run_checks_spec() -> ToolSpec {
    ToolSpec {
        name: "run_checks".to_string(),
        description: "Run the task's checks (the commands that decide whether the task passes), in order, and return \
                      pass/fail for each with the last lines of output of the failing ones. The same checks run again \
                      after this stage and decide the outcome, so use this to see what still fails."
            .to_string(),
        parameters: json!({
            "type": "object",
            "properties": {},
            "additionalProperties": false
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunChecksArgs {}

pub(crate) async fn run_checks_tool(
    ctx: &ToolContext,
    _args: RunChecksArgs,
) -> Result<String, ToolError> {
    if ctx.checks.is_empty() {
        return Ok("this task defines no checks; verify your work with the shell tool".to_string());
    }
    let results = run_checks(&ctx.checks, &ctx.workspace, &ctx.env, &ctx.sandbox).await;
    Ok(render_for_model(&results))
}

//! The runner of a task's `setup:` commands: each with the same process
//! runner and sandbox as a check, in order, stopping at the first failure
//! (what follows would run on a half-prepared workspace).

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::process::{CommandSpec, command_env, run_command};
use crate::sandbox::SandboxOptions;
use crate::task::SetupCommand;

/// Bytes of a command's output kept: the tail, where installers print the
/// error that stopped them.
const SETUP_TAIL_BYTES: usize = 4 * 1024;

/// How one `setup:` command ended; `report.json` lists these per task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRun {
    /// The command as written in `setup:`.
    pub command: String,
    /// Whether it exited 0 within its timeout.
    pub passed: bool,
    /// Its exit code; `null` when it was killed or could not start.
    pub exit_code: Option<i32>,
    /// It hit its timeout (its process group was killed).
    pub timed_out: bool,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// The last ~4 KiB of its output (stdout and stderr interleaved),
    /// preceded by a `[… N bytes omitted …]` marker when cut.
    pub output_tail: String,
}

impl SetupRun {
    /// How the command ended, in a few words: `exit code 1`, `timed out
    /// after 10m`, `killed by signal 9`.
    pub fn status(&self, timeout: std::time::Duration) -> String {
        if self.timed_out {
            format!("timed out after {}", crate::task::format_duration(timeout))
        } else {
            match self.exit_code {
                Some(code) => format!("exit code {code}"),
                None => "no exit code (killed, or it could not start)".to_string(),
            }
        }
    }
}

/// Runs `command` with `bash -c` in `workspace`, in the sandbox of a check
/// with the network (installers download), with [`command_env`] of `env`.
/// Dropping the future kills the command and everything it started.
pub async fn run_setup_command(
    command: &SetupCommand,
    workspace: &Path,
    env: &BTreeMap<String, String>,
    sandbox: &SandboxOptions,
) -> SetupRun {
    let env = command_env(env);
    let policy = sandbox.check(workspace, true, &env);
    let spec = CommandSpec {
        script: &command.run,
        cwd: workspace,
        env: &env,
        timeout: command.timeout,
        head_bytes: 0,
        tail_bytes: SETUP_TAIL_BYTES,
        policy: &policy,
        strict: sandbox.strict,
    };
    let started = std::time::Instant::now();
    let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    match run_command(&spec).await {
        Ok(output) => SetupRun {
            command: command.run.clone(),
            passed: output.success(),
            exit_code: output.exit_code,
            timed_out: output.timed_out,
            duration_ms: millis(output.duration),
            output_tail: output.output,
        },
        Err(error) => SetupRun {
            command: command.run.clone(),
            passed: false,
            exit_code: None,
            timed_out: false,
            duration_ms: millis(started.elapsed()),
            output_tail: format!(
                "could not start the setup command with bash in {}: {error}",
                workspace.display()
            ),
        },
    }
}

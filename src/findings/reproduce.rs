//! Confirming a finding: its `reproduce` command runs on the untouched base
//! snapshot in a scratch copy outside the work tree, under the task's shell
//! policy, and its exit status — not the agent's word — decides.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::model::{FindingStatus, Reproduction, ReproductionResult};
use crate::provider::redact_credentials;
use crate::snapshot::{SnapshotInfo, SnapshotStore};
use crate::task::ShellPolicy;
use crate::tools::ShellGuard;
use crate::tools::process::{CommandSpec, command_env, run_command};

/// Bytes of a reproduction's output kept: the tail, where the failure is.
pub const REPRODUCE_TAIL_BYTES: usize = 4 * 1024;

/// Exit codes bash uses for a command that was not found or could not be
/// executed: the reproducer itself is broken, which shows nothing about
/// the bug.
const COMMAND_NOT_RUNNABLE: [i32; 2] = [126, 127];

/// Where and how reproducers run.
#[derive(Debug, Clone)]
pub struct ReproduceEnv {
    /// The repository of the task.
    pub store: SnapshotStore,
    /// The untouched base (`00-base`).
    pub base: SnapshotInfo,
    /// The task's last snapshot: files it added (reproduction tests the
    /// agent wrote) are put on top of the base; changed files are not.
    pub latest: Option<SnapshotInfo>,
    /// The task's shell policy; a refused command does not run.
    pub shell: ShellPolicy,
    /// The task's `env`.
    pub env: BTreeMap<String, String>,
    /// A reproducer still running after this long is killed with its
    /// process group.
    pub timeout: Duration,
}

/// Runs `command` on a fresh scratch copy of the base, removed afterwards.
pub async fn reproduce(env: &ReproduceEnv, command: &str) -> Reproduction {
    let started = Instant::now();
    let refusal = ShellGuard::new(&env.shell)
        .map_err(|e| format!("the task's {e}"))
        .and_then(|guard| guard.check(command).map_err(|r| r.to_string()));
    if let Err(why) = refusal {
        return not_run(ReproductionResult::Refused, why, started);
    }
    let scratch = match tempfile::Builder::new()
        .prefix("kkrun-reproduce-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(e) => {
            return not_run(
                ReproductionResult::Error,
                format!("cannot create a scratch directory: {e}"),
                started,
            );
        }
    };
    let materialized = {
        let store = env.store.clone();
        let base = env.base.clone();
        let latest = env.latest.clone();
        let dest = scratch.path().to_owned();
        tokio::task::spawn_blocking(move || store.materialize(&base, latest.as_ref(), &dest)).await
    };
    let workspace = match materialized {
        Ok(Ok(dir)) => dir,
        Ok(Err(e)) => {
            return not_run(
                ReproductionResult::Error,
                format!("cannot write the base snapshot into a scratch copy: {e}"),
                started,
            );
        }
        Err(e) => {
            return not_run(
                ReproductionResult::Error,
                format!("writing the scratch copy failed: {e}"),
                started,
            );
        }
    };
    let vars = command_env(&env.env);
    // The reproducer is the agent's command: it gets the agent's sandbox.
    let policy =
        crate::sandbox::SandboxOptions::from_task(&env.shell, &env.env).commands(&workspace);
    let spec = CommandSpec {
        script: command,
        cwd: &workspace,
        env: &vars,
        timeout: env.timeout,
        head_bytes: 0,
        tail_bytes: REPRODUCE_TAIL_BYTES,
        policy: &policy,
        strict: false,
    };
    let output = match run_command(&spec).await {
        Ok(output) => output,
        Err(e) => {
            return not_run(
                ReproductionResult::Error,
                format!("could not start bash: {e}"),
                started,
            );
        }
    };
    let result = if output.timed_out {
        ReproductionResult::TimedOut
    } else if output.success() {
        ReproductionResult::Passed
    } else if output
        .exit_code
        .is_some_and(|code| COMMAND_NOT_RUNNABLE.contains(&code))
    {
        ReproductionResult::Error
    } else {
        ReproductionResult::Failed
    };
    let mut tail = format!("{}\n{}", output.status_line(), output.output);
    if result == ReproductionResult::Error {
        tail.push_str(
            "\n[kkrun: exit 126/127 means the command was not found or not executable, which does not show the bug]",
        );
    }
    drop(scratch);
    Reproduction {
        result,
        exit_code: output.exit_code,
        duration_ms: millis(started),
        output_tail: redact_credentials(&tail),
    }
}

/// The status a reproduction gives its finding: only a command that ran
/// and failed confirms.
pub fn status_of(reproduction: Option<&Reproduction>) -> FindingStatus {
    match reproduction {
        Some(r) if r.result == ReproductionResult::Failed => FindingStatus::Confirmed,
        _ => FindingStatus::Unconfirmed,
    }
}

fn not_run(result: ReproductionResult, why: String, started: Instant) -> Reproduction {
    Reproduction {
        result,
        exit_code: None,
        duration_ms: millis(started),
        output_tail: redact_credentials(&why),
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

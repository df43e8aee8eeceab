//! The check runner: runs a task's `checks:` with the same process runner as
//! the `shell` tool. The pipeline uses it for the baseline and the final
//! verdict; the `run_checks` tool uses it during debug.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::process::{CommandSpec, command_env, run_command};
use crate::sandbox::SandboxOptions;
use crate::task::Check;

/// Bytes of output kept per attempt: the tail, where test runners put their
/// summary and the failure that matters.
const CHECK_TAIL_BYTES: usize = 4 * 1024;

/// The result of one check, over all its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// What happened.
    #[serde(flatten)]
    pub run: CheckRun,
}

/// One execution of a check, with its retries: what the report shows as a
/// check's `baseline` and `final` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRun {
    /// Whether the last attempt exited 0 within the timeout (a flaky pass
    /// counts).
    pub passed: bool,
    /// Failed at first, passed on a retry.
    pub flaky: bool,
    /// Exit code of the last attempt; `null` when killed.
    pub exit_code: Option<i32>,
    /// The last attempt hit the check's timeout.
    pub timed_out: bool,
    /// Attempts made (1 plus the retries used).
    pub attempts: u32,
    /// Wall-clock duration over all attempts.
    pub duration_ms: u64,
    /// The last ~4 KiB of the last attempt's output (stdout and stderr
    /// interleaved, ANSI escapes kept as-is), preceded by a
    /// `[… N bytes omitted …]` marker when cut.
    pub output_tail: String,
    /// Output tails of the attempts that failed before the last one (for
    /// JUnit `flakyFailure`); empty when the first attempt decided.
    pub failed_attempts: Vec<String>,
}

struct Attempt {
    passed: bool,
    exit_code: Option<i32>,
    timed_out: bool,
    duration_ms: u64,
    output_tail: String,
}

/// Runs every check in order in `workspace`, each with `bash -c` in the
/// sandbox of checks (see [`SandboxOptions::check`]), retrying a failed
/// check up to its `retries`. The environment is [`command_env`] of `env`.
/// Dropping the future kills the running check and everything it started.
pub async fn run_checks(
    checks: &[Check],
    workspace: &Path,
    env: &BTreeMap<String, String>,
    sandbox: &SandboxOptions,
) -> Vec<CheckResult> {
    let env = command_env(env);
    let mut results = Vec::with_capacity(checks.len());
    for check in checks {
        let policy = sandbox.check(workspace, check.network, &env);
        let run = Run {
            workspace,
            env: &env,
            policy: &policy,
            strict: sandbox.strict,
        };
        results.push(run_check(check, &run).await);
    }
    results
}

/// Where and how one check runs.
struct Run<'a> {
    workspace: &'a Path,
    env: &'a BTreeMap<String, String>,
    policy: &'a crate::sandbox::SandboxPolicy,
    strict: bool,
}

async fn run_check(check: &Check, run: &Run<'_>) -> CheckResult {
    let max_attempts = check.retries.saturating_add(1);
    let mut failed_attempts = Vec::new();
    let mut duration_ms = 0;
    let mut attempt_number = 0;
    loop {
        attempt_number += 1;
        let attempt = run_attempt(check, run).await;
        duration_ms += attempt.duration_ms;
        if attempt.passed || attempt_number >= max_attempts {
            return CheckResult {
                name: check.name.clone(),
                run: CheckRun {
                    passed: attempt.passed,
                    flaky: attempt.passed && !failed_attempts.is_empty(),
                    exit_code: attempt.exit_code,
                    timed_out: attempt.timed_out,
                    attempts: attempt_number,
                    duration_ms,
                    output_tail: attempt.output_tail,
                    failed_attempts,
                },
            };
        }
        failed_attempts.push(attempt.output_tail);
    }
}

async fn run_attempt(check: &Check, run: &Run<'_>) -> Attempt {
    let workspace = run.workspace;
    let spec = CommandSpec {
        script: &check.run,
        cwd: workspace,
        env: run.env,
        timeout: check.timeout,
        head_bytes: 0,
        tail_bytes: CHECK_TAIL_BYTES,
        policy: run.policy,
        strict: run.strict,
    };
    let started = std::time::Instant::now();
    match run_command(&spec).await {
        Ok(output) => Attempt {
            passed: output.success(),
            exit_code: output.exit_code,
            timed_out: output.timed_out,
            duration_ms: millis(output.duration),
            output_tail: if output.timed_out {
                format!(
                    "{}\n[check timed out after {}; its process group was killed]",
                    output.output,
                    humantime::format_duration(check.timeout)
                )
            } else {
                output.output
            },
        },
        Err(error) => Attempt {
            passed: false,
            exit_code: None,
            timed_out: false,
            duration_ms: millis(started.elapsed()),
            output_tail: format!(
                "could not start the check with bash in {}: {error}",
                workspace.display()
            ),
        },
    }
}

/// The warning for a baseline check that exited 127, the shell's "command
/// not found": such a check can never pass, whatever the agent does, so the
/// user should hear about it before the run's result does. `None` for any
/// other result.
pub fn command_not_found_warning(check: &Check, result: &CheckResult) -> Option<String> {
    if result.run.exit_code != Some(127) {
        return None;
    }
    // bash says `bash: line 1: pytest: command not found`; the first word
    // of the check's command is the best guess otherwise.
    let missing = result
        .run
        .output_tail
        .lines()
        .rev()
        .find_map(|line| {
            let before = line.strip_suffix(": command not found")?;
            before.rsplit(": ").next().map(str::to_string)
        })
        .or_else(|| check.run.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    Some(format!(
        "baseline check `{}` exited 127 (command not found): `{missing}` is not installed or not on \
         PATH, so `{}` cannot pass (hint: install it where kkrun runs, or fix `checks[].run`)",
        check.name,
        check.run.trim()
    ))
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The `run_checks` tool's answer (and how the pipeline shows check results
/// to every stage): one block per check, failures with the tail of their
/// output. No durations: what the model sees must not vary between runs.
pub(crate) fn render_for_model(results: &[CheckResult]) -> String {
    let passed = results.iter().filter(|r| r.run.passed).count();
    let mut text = format!(
        "{} check(s): {passed} passed, {} failed\n",
        results.len(),
        results.len() - passed
    );
    for result in results {
        let run = &result.run;
        let status = if run.passed {
            if run.flaky {
                format!("passed on attempt {} (flaky)", run.attempts)
            } else {
                "passed".to_string()
            }
        } else if run.timed_out {
            "FAILED: timed out".to_string()
        } else {
            match run.exit_code {
                Some(code) => format!("FAILED: exit code {code}"),
                None => "FAILED: killed by a signal".to_string(),
            }
        };
        text.push_str(&format!("\n## {} — {status}\n", result.name));
        if !run.passed {
            text.push_str("last output:\n");
            text.push_str(&run.output_tail);
            if !run.output_tail.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(exit_code: Option<i32>, output_tail: &str) -> CheckResult {
        CheckResult {
            name: "unit".into(),
            run: CheckRun {
                passed: false,
                flaky: false,
                exit_code,
                timed_out: false,
                attempts: 1,
                duration_ms: 1,
                output_tail: output_tail.into(),
                failed_attempts: Vec::new(),
            },
        }
    }

    #[test]
    fn exit_127_names_the_missing_command() {
        let check = Check {
            name: "unit".into(),
            run: "cd app && pytest -q".into(),
            timeout: std::time::Duration::from_secs(1),
            retries: 0,
            line: 0,
            network: true,
        };
        let warning = command_not_found_warning(
            &check,
            &result(Some(127), "bash: line 1: pytest: command not found\n"),
        )
        .unwrap();
        assert!(warning.contains("`pytest` is not installed"), "{warning}");
        assert!(warning.contains("`cd app && pytest -q`"), "{warning}");
        let guessed = command_not_found_warning(&check, &result(Some(127), "")).unwrap();
        assert!(guessed.contains("`cd` is not installed"), "{guessed}");
        assert_eq!(
            command_not_found_warning(&check, &result(Some(1), "")),
            None
        );
    }
}

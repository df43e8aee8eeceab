//! One task through blueprint → code → debug → preview: stage policy,
//! prompts, the debug loop-back, snapshots after every stage, the checks run
//! by kkrun itself, and the task's outcome.
//!
//! The pipeline reports only through events: everything the report says of
//! a task is an event the pipeline emitted (see [`crate::report::aggregate`]).
//!
//! - [`flow`]: the order of the stages and the debug loop-back;
//! - `stage`: running one stage and naming how it ended;
//! - `setup`: the task's `setup:` commands, before the base snapshot;
//! - `task_run`: the task's state, its snapshots, checks and files;
//! - `verdict`: the outcome of a pipeline that ran to its end;
//! - `mcp`: starting and stopping the task's MCP servers;
//! - `output`: the structured final output of `output_schema:`;
//! - `wrap_up`: the patch, the restore and `task.finished`.

mod context;
pub mod finish;
mod flow;
mod hunt;
mod interrupt;
mod mcp;
mod output;
pub mod prompts;
mod resume;
mod setup;
mod stage;
mod task_run;
mod verdict;
mod wrap_up;

pub use interrupt::Interrupt;

use crate::events::{EventKind, EventSink, TaskOutcome};
use crate::provider::Provider;
use crate::store::RunDir;
use crate::task::Task;

use task_run::TaskRun;

/// Everything a task needs from the run around it.
pub struct TaskEnv<'a> {
    /// The run's id (snapshot refs live under it).
    pub run_id: &'a str,
    /// The run directory.
    pub run_dir: &'a RunDir,
    /// The model endpoint for this task.
    pub provider: &'a Provider,
    /// The `provider:model` spec, for reports.
    pub model_spec: &'a str,
    /// The task file as the user named it, for reports.
    pub file_display: String,
    /// The run's event sink (the task scopes it).
    pub events: &'a EventSink,
    /// Set when SIGINT/SIGTERM arrives.
    pub interrupt: &'a Interrupt,
    /// Restore `00-base` after the task whatever its outcome, so the next
    /// task starts from the same state.
    pub restore_after: bool,
    /// `--require-sandbox`: commands whose sandbox cannot be fully enforced
    /// do not run.
    pub require_sandbox: bool,
    /// A previous run's findings (`--baseline-findings`), for bug hunts.
    pub baseline_findings: Option<&'a crate::findings::BaselineFindings>,
    /// `kkrun resume`: what the task completed before the run was cut
    /// short, to continue from; `None` runs it from the start.
    pub resume: Option<&'a crate::resume::TaskHistory>,
    /// Read `AGENTS.md` files as project instructions (unless
    /// `--no-project-instructions`).
    pub project_instructions: bool,
    /// The root of the linked worktree an isolated task runs in; `None` in
    /// the user's work tree.
    pub worktree: Option<&'a std::path::Path>,
}

/// Why the pipeline stopped before its natural end.
struct Stop {
    outcome: TaskOutcome,
    reason: String,
}

impl Stop {
    fn new(outcome: TaskOutcome, reason: impl Into<String>) -> Stop {
        Stop {
            outcome,
            reason: reason.into(),
        }
    }

    /// An infrastructure failure, with `error`'s causes in the reason.
    fn error(what: &str, error: &dyn std::error::Error) -> Stop {
        Stop::new(
            TaskOutcome::Error,
            format!("{what}: {}", crate::error::chain(error)),
        )
    }
}

/// Runs `task` through the pipeline, reporting everything as events, and
/// returns its outcome. Never fails: every problem ends up as the task's
/// outcome and reason in its `task.finished` event.
pub async fn run_task(env: &TaskEnv<'_>, task: &Task) -> TaskOutcome {
    let events = env.events.for_task(&task.name);
    let mut run = TaskRun::new(env, task, events);
    let opened = run.open_workspace();
    let policy = run.tools.sandbox.commands(&run.tools.workspace);
    let sandbox = tokio::task::spawn_blocking(move || crate::sandbox::probe(&policy))
        .await
        .unwrap_or_else(|e| {
            crate::sandbox::SandboxStatus::unavailable(
                !task.shell.network,
                format!("the sandbox probe failed: {e}"),
            )
        });
    run.instructions = crate::instructions::gather(
        &task.workspace,
        &task.instructions,
        env.project_instructions,
    );
    let base_commit = opened.as_ref().ok().cloned().flatten();
    let opened = match env.resume {
        Some(history) => opened.and_then(|_| run.resume_from(history, sandbox, base_commit)),
        None => {
            run.events.emit(EventKind::TaskStarted {
                file: env.file_display.clone(),
                model: env.model_spec.to_string(),
                base_commit,
                sandbox: Some(sandbox),
                instructions: run.instructions.files.clone(),
                worktree: env.worktree.map(|root| root.display().to_string()),
            });
            opened.map(|_| ())
        }
    };
    let driven = match opened {
        Ok(()) => run.drive().await,
        Err(stop) => Err(stop),
    };
    // A budget that ran out does not say whether the work is done: the
    // tree may already hold the fix, so the final checks still run (not
    // after a timeout or an interrupt, which leave no time for them).
    let driven = match driven {
        Err(stop) if stop.outcome == TaskOutcome::BudgetExhausted => {
            run.final_checks_after_budget(stop).await
        }
        other => other,
    };
    run.stop_mcp().await;
    let (outcome, reason) = match driven {
        Ok(()) => run.judge(),
        Err(stop) => {
            // A hunt that ended early still confirms what it found, unless
            // the user interrupted it.
            if stop.outcome != TaskOutcome::Interrupted {
                let _ = run.reproduce_findings().await;
            }
            (stop.outcome, stop.reason)
        }
    };
    run.finish(outcome, reason);
    outcome
}

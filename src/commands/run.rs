//! `kkrun run`: loads the task files, applies `--replay`, and hands the
//! tasks to the runner (or prints the plan for `--dry-run`).

use std::path::PathBuf;

use super::{print, report_task_file_errors};
use crate::console::ConsoleOptions;
use crate::error::Error;
use crate::runner::{IsolationOptions, Partition, RestorePolicy};

/// What `kkrun run` does, resolved from the command line.
#[derive(Debug, Clone)]
pub struct RunCommand {
    /// Task files, directories of task files, or glob patterns.
    pub files: Vec<String>,
    /// Load, validate and print the run plan; run nothing.
    pub dry_run: bool,
    /// Models for every task (`--model`, repeatable, or `KKRUN_MODEL`): one
    /// replaces each task's model, several run each task once per model.
    pub models: Vec<String>,
    /// Cassette to replay for every task; `{task}` becomes the task name.
    pub replay: Option<PathBuf>,
    /// Cassette to record to; `{task}` becomes the task name.
    pub record: Option<String>,
    /// `--require-sandbox`: exit 2 unless the sandbox is fully enforced.
    pub require_sandbox: bool,
    /// Send the preflight requests (unless `--no-preflight`).
    pub preflight: bool,
    /// Read `AGENTS.md` files (unless `--no-project-instructions`).
    pub project_instructions: bool,
    /// Run directory instead of `.kkrun/runs/<run-id>/`.
    pub out: Option<PathBuf>,
    /// When to restore `00-base` after a task.
    pub restore: RestorePolicy,
    /// Values to redact from everything written (`--redact`).
    pub redact: Vec<String>,
    /// `--baseline-findings`: a previous run's findings.sarif or report.json.
    pub baseline_findings: Option<PathBuf>,
    /// `--partition`: run only this shard of the tasks.
    pub partition: Option<Partition>,
    /// `--isolate` (with `--worktrees`, `--keep-worktrees`): every task in
    /// its own linked worktree.
    pub isolate: Option<IsolationOptions>,
    /// `--apply`: the passing tasks' changes into the work tree afterwards.
    pub apply: bool,
    /// `--wait-lock`: how long to wait for another run's work-tree lock.
    pub wait_lock: Option<std::time::Duration>,
    /// `--jobs`: how many tasks run at once.
    pub jobs: usize,
    /// `--max-requests`: requests in flight per endpoint.
    pub max_requests: usize,
    /// How progress is shown, `--json` included.
    pub console: ConsoleOptions,
    /// The command line, for the report.
    pub command_line: Vec<String>,
}

/// Runs the command; returns the run's exit code.
pub fn run(command: RunCommand) -> Result<i32, Error> {
    let options = crate::task::LoadOptions {
        model_overrides: &command.models,
        // `--replay` supplies every task's model after loading.
        require_model: command.replay.is_none(),
    };
    let mut tasks = match crate::task::load_tasks_with(&command.files, &options) {
        Ok(tasks) => tasks,
        Err(errors) => return Ok(report_task_file_errors(&errors, command.console.color)),
    };
    if command.dry_run {
        let cwd = std::env::current_dir()
            .and_then(|dir| dir.canonicalize())
            .unwrap_or_default();
        let (tasks, partition) = crate::runner::select_shard(tasks, command.partition.as_ref());
        let mut text = String::new();
        if let Some(p) = partition {
            text.push_str(&format!(
                "partition {}: {} of {} task(s)\n",
                p.spec,
                tasks.len(),
                p.total_tasks
            ));
        }
        text.push_str(&crate::task::render_plan(&tasks, &cwd));
        return print(&text);
    }
    if let Some(replay) = &command.replay {
        let replay = replay.to_string_lossy();
        if tasks.len() > 1 && !replay.contains("{task}") {
            return Err(Error::InvalidInput(format!(
                "--replay {replay}: a cassette holds one task's exchanges and this run has {} tasks \
                 (hint: put `{{task}}` in the path, e.g. --replay 'cassettes/{{task}}.jsonl')",
                tasks.len()
            )));
        }
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
        for task in &mut tasks {
            let path = cwd.join(replay.replace("{task}", &task.name));
            task.model = Some(format!("replay:{}", path.display()));
        }
    }
    let baseline_findings = match &command.baseline_findings {
        Some(path) => Some(
            crate::findings::BaselineFindings::load(path)
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
        ),
        None => None,
    };
    let run_options = crate::runner::RunOptions {
        baseline_findings,
        out: command.out,
        console: command.console,
        restore: command.restore,
        record: command.record,
        redact: command.redact,
        command_line: command.command_line,
        require_sandbox: command.require_sandbox,
        partition: command.partition,
        preflight: command.preflight,
        project_instructions: command.project_instructions,
        isolate: command.isolate,
        apply: command.apply,
        wait_lock: command.wait_lock,
        jobs: command.jobs,
        max_requests: command.max_requests,
    };
    crate::runner::run(tasks, run_options)
}

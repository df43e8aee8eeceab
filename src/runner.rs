//! Plans and drives a run: providers for every task, the run directory, the
//! event stream, signals, tasks one after another, and the final record,
//! which is written whatever happens.

mod announce;
mod apply;
mod isolation;
mod locking;
mod partition;
mod providers;
mod sandbox_check;
mod task_loop;

pub use isolation::IsolationOptions;
pub use partition::{Partition, PartitionError, PartitionKind};

use std::path::PathBuf;
use std::sync::Arc;

use crate::console::{Console, ConsoleOptions};
use crate::error::Error;
use crate::events::{Event, EventKind, EventSink, PartitionRecord, TaskOutcome};
use crate::exit_codes;
use crate::findings::BaselineFindings;
use crate::pipeline::Interrupt;
use crate::redact::Redactor;
use crate::report::aggregate::{self, Outputs};
use crate::report::github::GithubOutput;
use crate::resume::TaskHistory;
use crate::store::{self, RunDir};
use crate::task::Task;
use announce::{announce, display_path, redact_command_line};
use isolation::Isolation;
use providers::TaskProvider;
use task_loop::TaskLoop;

/// When the work tree is restored to `00-base` after a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Between the tasks of a multi-task run; never after the last one.
    #[default]
    Auto,
    /// After every task.
    Always,
    /// Never (tasks of one workspace then build on each other).
    Never,
}

/// What a run needs besides the tasks.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory (`--out`); default `.kkrun/runs/<run-id>/`.
    pub out: Option<PathBuf>,
    /// How progress is shown (and whether events go to stdout as JSONL).
    pub console: ConsoleOptions,
    /// When to restore `00-base` after a task.
    pub restore: RestorePolicy,
    /// Cassette to record to (`--record`); `{task}` in it becomes the task name.
    pub record: Option<String>,
    /// Values to redact besides the secret-looking environment variables
    /// and the API keys (`--redact`).
    pub redact: Vec<String>,
    /// The command line, for the report (redacted before use).
    pub command_line: Vec<String>,
    /// `--require-sandbox`: exit 2 before anything runs when the sandbox
    /// cannot be fully enforced for a task's commands or checks.
    pub require_sandbox: bool,
    /// `--baseline-findings`: a previous run's findings, against which a bug
    /// hunt's findings are `new` or `known`.
    pub baseline_findings: Option<BaselineFindings>,
    /// `--partition`: run only this shard of the tasks.
    pub partition: Option<Partition>,
    /// Read `AGENTS.md` files as project instructions
    /// (`--no-project-instructions` turns it off).
    pub project_instructions: bool,
    /// Send one cheap request to every distinct endpoint before anything
    /// runs (`--no-preflight` turns it off).
    pub preflight: bool,
    /// `--isolate`: every task in its own linked worktree.
    pub isolate: Option<IsolationOptions>,
    /// `--apply`: after the run, the passing tasks' changes go into the
    /// user's work tree, in task order, up to the first conflict.
    pub apply: bool,
    /// `--wait-lock`: how long to wait for another run's lock on a work
    /// tree; `None` fails at once (see [`crate::lock`]).
    pub wait_lock: Option<std::time::Duration>,
    /// `--jobs`: how many tasks run at once (at least 1). More than one
    /// needs `isolate`, which the command line sets with it.
    pub jobs: usize,
    /// `--max-requests`: requests in flight per endpoint, for endpoints
    /// that set no `max_concurrent_requests`.
    pub max_requests: usize,
}

/// What `kkrun resume` continues: a run directory and the event stream it
/// holds.
#[derive(Debug)]
pub struct Continuation {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The run's id.
    pub run_id: String,
    /// Every event of `events.jsonl`, in order.
    pub events: Vec<Event>,
    /// Every task of the run, in run order, as its events tell it.
    pub histories: Vec<TaskHistory>,
    /// Which attempt the resumed run is (2 for the first resume).
    pub attempt: u32,
}

impl Continuation {
    fn history(&self, task: &str) -> Option<&TaskHistory> {
        self.histories.iter().find(|h| h.name == task)
    }

    /// The outcome of `task` when it finished and does not run again.
    fn finished(&self, task: &str) -> Option<TaskOutcome> {
        self.history(task).and_then(|h| h.finished)
    }
}

/// Runs `tasks` (with `--partition`, this shard of them) and returns the
/// run's exit code. Errors are for problems found before anything ran
/// (exit 2) or a run directory that cannot be created (exit 3); everything
/// after that ends up in the report.
pub fn run(tasks: Vec<Task>, options: RunOptions) -> Result<i32, Error> {
    start(tasks, options, None)
}

/// Continues the run of `continuation`: `tasks` are all of its tasks, in
/// run order; those that finished are not run again, the others continue
/// from their last completed step. The new events go to the end of the
/// same `events.jsonl`, and the reports are written again for the whole
/// run.
pub fn resume(
    tasks: Vec<Task>,
    continuation: Continuation,
    options: RunOptions,
) -> Result<i32, Error> {
    start(tasks, options, Some(continuation))
}

fn start(
    tasks: Vec<Task>,
    mut options: RunOptions,
    continuation: Option<Continuation>,
) -> Result<i32, Error> {
    // Concurrent tasks cannot share the user's work tree: `--jobs` above 1
    // is `--isolate`.
    options.jobs = options.jobs.max(1);
    // So do the instances of a model matrix: each must start from the
    // same base.
    let matrix = tasks.iter().any(|t| t.matrix.is_some());
    if (options.jobs > 1 || matrix) && options.isolate.is_none() {
        options.isolate = Some(IsolationOptions::default());
    }
    // Checked on the full set, so every shard of a CI matrix refuses the
    // same command line, not only the shards that got several tasks.
    if tasks.len() > 1
        && let Some(record) = &options.record
        && !record.contains("{task}")
    {
        return Err(Error::InvalidInput(format!(
            "--record {record}: a run of {} tasks records one cassette per task (hint: put `{{task}}` in the path, \
             e.g. --record 'cassettes/{{task}}.jsonl')",
            tasks.len()
        )));
    }
    if let Some(out) = &options.out {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
        store::check_out_dir(&cwd, out)?;
    }
    let (tasks, partition) = select_shard(tasks, options.partition.as_ref());
    let secrets = providers::run_secrets(&tasks, &options.redact);
    if options.require_sandbox {
        sandbox_check::require_sandbox(&tasks)?;
    }
    let isolated_stores = match &options.isolate {
        Some(_) => Some(isolation::check(&tasks)?),
        None => None,
    };
    let run_id = continuation
        .as_ref()
        .map_or_else(store::new_run_id, |c| c.run_id.clone());
    // Held until the run ends. Isolated tasks share no work tree; their
    // `--apply` takes the lock when it writes into the user's.
    let _locks = match &options.isolate {
        Some(_) => Vec::new(),
        None => locking::lock_work_trees(&tasks, &run_id, continuation.is_some(), &options)?,
    };
    if continuation.is_some() {
        locking::remove_stale_ref_locks(&tasks, &run_id)?;
    }
    // Every provider is built before anything runs, so a bad model spec or a
    // missing API key stops the run with nothing done.
    let providers = providers::build(&tasks, &options, continuation.as_ref(), &secrets)?;
    let secrets = secrets.with(
        providers
            .iter()
            .flatten()
            .flat_map(|(_, provider)| provider.secrets().secrets().to_vec()),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    if options.preflight {
        runtime.block_on(providers::preflight(&tasks, &providers))?;
    }
    runtime.block_on(run_tasks(
        run_id,
        tasks,
        providers,
        secrets,
        partition,
        isolated_stores,
        options,
        continuation,
    ))
}

/// The tasks of the shard `partition` names, and what the run records of
/// it; all of them without a partition.
pub fn select_shard(
    tasks: Vec<Task>,
    partition: Option<&Partition>,
) -> (Vec<Task>, Option<PartitionRecord>) {
    let Some(partition) = partition else {
        return (tasks, None);
    };
    let record = partition.record(tasks.iter().map(|t| t.name.clone()).collect());
    (partition.select(tasks, |t| &t.name), Some(record))
}

// What `start` decided before anything ran, handed over whole.
#[allow(clippy::too_many_arguments)]
async fn run_tasks(
    run_id: String,
    tasks: Vec<Task>,
    providers: Vec<TaskProvider>,
    secrets: Redactor,
    partition: Option<PartitionRecord>,
    isolated_stores: Option<Vec<crate::snapshot::SnapshotStore>>,
    options: RunOptions,
    continuation: Option<Continuation>,
) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    let run_dir = match &continuation {
        Some(c) => RunDir::reopen(&c.run_dir, &c.run_id),
        None => RunDir::create(&cwd, options.out.as_deref(), &run_id)?,
    };
    let run_dir = run_dir.redacting(secrets.clone());

    // Subscribed in this order: the reports first, so that they are on
    // disk by the time anyone sees `run.finished` (in events.jsonl or on
    // stdout); then the record; then what people watch. The sink removes
    // the run's secrets before any of them sees an event, so all of them
    // are clean.
    let previous: &[Event] = continuation.as_ref().map_or(&[], |c| &c.events);
    // A resumed run's clock goes on from the stream's last event.
    let events = EventSink::continuing(secrets, previous.last().map_or(0, |e| e.elapsed_ms));
    let reports = aggregate::attach_continuing(
        &events,
        Outputs {
            dir: run_dir.path().to_path_buf(),
            github: options.console.github.then_some(GithubOutput {
                commands_to_stderr: options.console.json,
            }),
        },
        previous,
    );
    match &continuation {
        Some(_) => run_dir.append_events(&events)?,
        None => run_dir.record_events(&events)?,
    }
    let console = Console::attach(&events, options.console.clone());

    let isolation = options
        .isolate
        .as_ref()
        .zip(isolated_stores)
        .map(|(isolate, stores)| Isolation::new(isolate, &run_id, stores));
    if let Some(isolation) = &isolation {
        for message in isolation.remove_stale() {
            console.line(&format!("kkrun: {message}"));
        }
    }

    let interrupt = Arc::new(Interrupt::new());
    let signals = tokio::spawn(watch_signals(interrupt.clone()));

    match &continuation {
        Some(c) => events.emit(EventKind::RunResumed {
            attempt: c.attempt,
            tasks: tasks
                .iter()
                .filter(|t| c.finished(&t.name).is_none())
                .map(|t| t.name.clone())
                .collect(),
            command_line: redact_command_line(&options.command_line),
        }),
        None => announce(
            &events, &tasks, &providers, &run_id, partition, &options, &cwd,
        ),
    }

    if isolation.is_none() && !options.console.quiet {
        for task in tasks.iter().filter(|t| !t.copy_ignored.is_empty()) {
            console.line(&format!(
                "kkrun: task `{}`: `copy_ignored` does nothing without --isolate (the task runs in your work tree)",
                task.name
            ));
        }
    }
    let task_loop = TaskLoop {
        tasks: &tasks,
        providers: &providers,
        continuation: continuation.as_ref(),
        options: &options,
        run_id: &run_id,
        run_dir: &run_dir,
        events: &events,
        interrupt: &interrupt,
        isolation: isolation.as_ref(),
        cwd: &cwd,
    };
    let ended = task_loop.run_all(options.jobs).await;
    let outcomes: Vec<TaskOutcome> = ended.iter().map(|e| e.outcome).collect();
    let kept_worktrees: Vec<String> = ended.into_iter().filter_map(|e| e.kept_worktree).collect();
    signals.abort();

    let mut exit_code = exit_codes::combine(outcomes.iter().map(|o| o.exit_code()));
    // Before `run.finished`, so the report's exit code is the process's.
    if options.apply {
        let applied = apply::apply_passing(&run_id, &tasks, &outcomes, options.wait_lock);
        for text in &applied.applied {
            for line in text.lines() {
                console.line(&format!("kkrun: {line}"));
            }
        }
        if let Some(message) = applied.stopped {
            events.emit(EventKind::Warning { message });
        }
        exit_code = exit_codes::combine([exit_code, applied.exit_code]);
    }
    let passed = outcomes
        .iter()
        .filter(|&&o| o == TaskOutcome::Passed)
        .count();
    events.emit(EventKind::RunFinished {
        exit_code,
        passed,
        not_passed: outcomes.len() - passed,
    });
    let (written, warnings) = reports.finish();
    for warning in warnings {
        console.line(&format!("kkrun: warning: {warning}"));
    }
    for kept in kept_worktrees {
        console.line(&format!("kkrun: {kept}"));
    }
    if !options.console.json && !options.console.quiet {
        console.line(&format!(
            "kkrun: reports in {}",
            display_path(run_dir.path(), &cwd)
        ));
    }
    console.finish();
    written?;
    Ok(exit_code)
}

/// Sets `interrupt` on SIGINT or SIGTERM. A second signal ends the process
/// at once with exit code 130.
async fn watch_signals(interrupt: Arc<Interrupt>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        for _ in 0..2 {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            if interrupt.is_triggered() {
                eprintln!("kkrun: second interrupt, exiting without finishing the record");
                // No destructor runs on this exit. Commands and checks end
                // with it (their launcher's parent-death signal); MCP
                // servers would not.
                crate::mcp::kill_all_servers();
                std::process::exit(exit_codes::INTERRUPTED);
            }
            eprintln!(
                "kkrun: interrupted, writing the final record (interrupt again to exit at once)"
            );
            interrupt.trigger();
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_ok() {
        interrupt.trigger();
    }
}

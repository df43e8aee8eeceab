//! Plans and drives a run: providers for every task, the run directory, the
//! event stream, signals, tasks one after another, and the final record,
//! which is written whatever happens.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt as _;

use crate::cli::{GlobalArgs, RestorePolicy};
use crate::console::{Console, ConsoleOptions};
use crate::error::Error;
use crate::events::{EVENTS_SCHEMA_VERSION, EventKind, EventSink};
use crate::exit_codes;
use crate::findings::BaselineFindings;
use crate::pipeline::{self, Interrupt, TaskEnv};
use crate::provider::{Provider, ProviderOptions};
use crate::report::{self, REPORT_SCHEMA_VERSION, Report, TaskOutcome, Totals, github};
use crate::store::{self, RunDir};
use crate::task::Task;

/// What a run needs besides the tasks.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run directory (`--out`); default `.kkrun/runs/<run-id>/`.
    pub out: Option<PathBuf>,
    /// Events as JSONL on stdout.
    pub json: bool,
    /// When to restore `00-base` after a task.
    pub restore: RestorePolicy,
    /// Cassette to record to (`--record`); `{task}` in it becomes the task name.
    pub record: Option<String>,
    /// The command line, for the report (redacted before use).
    pub command_line: Vec<String>,
    /// `--baseline-findings`: a previous run's findings, against which a bug
    /// hunt's findings are `new` or `known`.
    pub baseline_findings: Option<BaselineFindings>,
}

/// Runs `tasks` and returns the run's exit code. Errors are for problems
/// found before anything ran (exit 2) or a run directory that cannot be
/// created (exit 3); everything after that ends up in the report.
pub fn run(tasks: Vec<Task>, options: RunOptions, global: &GlobalArgs) -> Result<i32, Error> {
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
    if let Some(out) = &options.out
        && out.join(".git").exists()
    {
        return Err(Error::InvalidInput(format!(
            "--out {}: that is the root of a git work tree, and restoring a snapshot would delete the \
             run's own files (hint: use a subdirectory, e.g. --out kkrun-results)",
            out.display()
        )));
    }
    // Every provider is built before anything runs, so a bad model spec or a
    // missing API key stops the run with nothing done.
    let mut providers = Vec::with_capacity(tasks.len());
    for task in &tasks {
        let spec = model_spec(task)?;
        let provider_options = ProviderOptions {
            base_dir: task
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            record: options
                .record
                .as_ref()
                .map(|r| PathBuf::from(r.replace("{task}", &task.name))),
            price: task.pricing,
            ..ProviderOptions::default()
        };
        let provider = Provider::from_model_spec(&spec, &provider_options).map_err(|e| {
            let message = format!("task `{}` ({}): {e}", task.name, task.file.display());
            if e.exit_code() == exit_codes::INVALID_INPUT {
                Error::InvalidInput(message)
            } else {
                Error::Provider(e)
            }
        })?;
        providers.push((spec, provider));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    runtime.block_on(run_tasks(tasks, providers, options, global))
}

/// The task's `provider:model`; the loader already applied `--model`.
fn model_spec(task: &Task) -> Result<String, Error> {
    task.model.clone().ok_or_else(|| {
        Error::InvalidInput(format!(
            "task `{}` ({}) has no model (hint: set `model:` in the task file, pass --model, or set KKRUN_MODEL)",
            task.name,
            task.file.display()
        ))
    })
}

async fn run_tasks(
    tasks: Vec<Task>,
    providers: Vec<(String, Provider)>,
    options: RunOptions,
    global: &GlobalArgs,
) -> Result<i32, Error> {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now().to_string();
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    let run_id = store::new_run_id();
    let run_dir = RunDir::create(&cwd, options.out.as_deref(), &run_id)?;

    let events = EventSink::new();
    run_dir.record_events(&events)?;
    let console = Console::attach(
        &events,
        ConsoleOptions::detect(global.color, global.quiet, global.verbose, options.json),
    );

    let interrupt = Arc::new(Interrupt::new());
    let signals = tokio::spawn(watch_signals(interrupt.clone()));

    events.emit(EventKind::RunStarted {
        schema_version: EVENTS_SCHEMA_VERSION,
        run_id: run_id.clone(),
        kkrun_version: env!("CARGO_PKG_VERSION").to_string(),
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
    });

    let restore_after = |index: usize| match options.restore {
        RestorePolicy::Always => true,
        RestorePolicy::Never => false,
        RestorePolicy::Auto => index + 1 < tasks.len(),
    };
    let mut reports = Vec::with_capacity(tasks.len());
    for (index, (task, (spec, provider))) in tasks.iter().zip(&providers).enumerate() {
        let file_display = display_path(&task.file, &cwd);
        if interrupt.is_triggered() {
            reports.push(pipeline::unstarted_report(
                task,
                spec,
                &file_display,
                TaskOutcome::Interrupted,
                "not started: the run was interrupted",
            ));
            continue;
        }
        let env = TaskEnv {
            run_id: &run_id,
            run_dir: &run_dir,
            provider,
            model_spec: spec,
            file_display: file_display.clone(),
            events: &events,
            interrupt: &interrupt,
            restore_after: restore_after(index),
            baseline_findings: options.baseline_findings.as_ref(),
        };
        // A panic inside a task must not lose the run's record: it becomes
        // the task's `error` outcome.
        let report = match AssertUnwindSafe(pipeline::run_task(&env, task))
            .catch_unwind()
            .await
        {
            Ok(report) => report,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string());
                let reason = format!("internal error (please report it): {message}");
                events.for_task(&task.name).emit(EventKind::Error {
                    message: reason.clone(),
                });
                pipeline::unstarted_report(task, spec, &file_display, TaskOutcome::Error, &reason)
            }
        };
        reports.push(report);
    }
    signals.abort();

    let exit_code = exit_codes::combine(reports.iter().map(|r| r.outcome.exit_code()));
    let passed = reports
        .iter()
        .filter(|r| r.outcome == TaskOutcome::Passed)
        .count();
    let report = Report {
        schema_version: REPORT_SCHEMA_VERSION,
        kkrun_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.clone(),
        started_at,
        finished_at: jiff::Timestamp::now().to_string(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        command_line: redact_command_line(&options.command_line),
        exit_code,
        totals: Totals::from_tasks(&reports),
        tasks: reports,
    };
    let written = report::write_all(run_dir.path(), &report);
    for dropped in written.iter().flatten() {
        events.emit(EventKind::Warning {
            message: dropped.to_string(),
        });
    }
    if github::is_github_actions() {
        if let Err(e) = github::append_step_summary(&report::markdown::render(&report)) {
            events.emit(EventKind::Warning {
                message: format!("cannot write $GITHUB_STEP_SUMMARY: {e}"),
            });
        }
        for line in github::annotations(&report) {
            if options.json {
                eprintln!("{line}")
            } else {
                println!("{line}")
            }
        }
    }
    events.emit(EventKind::RunFinished {
        exit_code,
        passed,
        not_passed: report.tasks.len() - passed,
    });
    if !options.json && !global.quiet {
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

/// `path` relative to `cwd` when it is inside it, for readable reports.
fn display_path(path: &Path, cwd: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// Replaces anything that looks like a credential in the command line.
fn redact_command_line(args: &[String]) -> Vec<String> {
    let secret =
        regex::Regex::new(r"(?i)((?:key|token|secret|password)[^=]*=)\S+|sk-[A-Za-z0-9_-]{8,}")
            .expect("the redaction pattern is a valid constant regex");
    args.iter()
        .map(|arg| {
            secret
                .replace_all(arg, |caps: &regex::Captures<'_>| match caps.get(1) {
                    Some(name) => format!("{}[REDACTED]", name.as_str()),
                    None => "[REDACTED]".to_string(),
                })
                .into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_redacted() {
        let args: Vec<String> = [
            "kkrun",
            "--model",
            "openai:gpt-4.1",
            "OPENAI_API_KEY=abc123",
            "sk-proj-abcdefghijkl",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            redact_command_line(&args),
            [
                "kkrun",
                "--model",
                "openai:gpt-4.1",
                "OPENAI_API_KEY=[REDACTED]",
                "[REDACTED]"
            ]
        );
    }
}

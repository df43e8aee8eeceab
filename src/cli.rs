//! Command-line interface: argument definitions (clap derive) and dispatch.
//! Each command returns its exit code or an [`Error`]; `main` maps both.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::exit_codes;

const AFTER_HELP: &str = "\
Examples:
  kkrun tasks/*.yaml                 run every task (same as `kkrun run ...`)
  kkrun run --dry-run tasks/         load, validate and print the run plan
  kkrun validate tasks/*.yaml        check task files without running
  kkrun schema task > task.schema.json
  kkrun snapshots                    list runs and their snapshots
  kkrun rollback RUN TASK --to code  restore the work tree to a stage

Exit codes:
  0    every task passed its checks
  1    at least one task ran and failed
  2    bad input (usage, invalid task file, not a git repository); nothing ran
  3    infrastructure (provider, git, I/O)
  4    a budget or timeout ran out; partial work kept in snapshots
  130  interrupted; the final record was still written
  Across tasks the highest-priority code wins: 2 > 3 > 130 > 4 > 1 > 0.";

/// kkrun: run an AI coding agent over declarative task files, headless, for CI.
#[derive(Debug, Parser)]
#[command(name = "kkrun", version, about, after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command; without one, kkrun runs the given task files.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `kkrun FILES...` is short for `kkrun run FILES...`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// When to use colours on stderr.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
    /// Print only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail: model turns, tool calls, snapshots.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// kkrun's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run task files through blueprint → code → debug → preview.
    Run(RunArgs),
    /// Check task files without running anything; exit 0 or 2.
    Validate(ValidateArgs),
    /// Print a JSON Schema (task files or reports).
    Schema(SchemaArgs),
    /// List runs, tasks and their snapshots in a repository.
    Snapshots(SnapshotsArgs),
    /// Show the changes between two snapshots of a task as a patch.
    Diff(DiffArgs),
    /// Restore the work tree to a snapshot (after a safety snapshot).
    Rollback(RollbackArgs),
    /// Remove old snapshot refs.
    Gc(GcArgs),
}

/// Arguments of `kkrun run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Task files, directories of task files, or glob patterns.
    #[arg(value_name = "FILES", required = true)]
    pub files: Vec<String>,
    /// Load, validate and print the run plan; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Model for every task, as `provider:model` (overrides task files).
    #[arg(long, env = "KKRUN_MODEL", value_name = "PROVIDER:MODEL")]
    pub model: Option<String>,
    /// Replay a recorded cassette instead of calling a model, offline (the
    /// same as `--model replay:FILE`); `{task}` in the path becomes the
    /// task's name, which a run of several tasks needs.
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub replay: Option<PathBuf>,
    /// Record every model exchange to this cassette (JSONL) while running
    /// against a real provider; `{task}` in the path becomes the task's
    /// name, which a run of several tasks needs.
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    pub record: Option<String>,
    /// Write the run directory here instead of `.kkrun/runs/<run-id>/`.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stream events as JSON lines on stdout (and nothing else on stdout).
    #[arg(long)]
    pub json: bool,
    /// When to restore a task's work tree to its `00-base` snapshot after
    /// the task: `auto` between the tasks of a multi-task run (so each starts
    /// from the same base; the last task's changes stay), `always` after
    /// every task (changes stay in snapshots and final.patch), `never`.
    #[arg(long, value_enum, default_value_t = RestorePolicy::Auto, value_name = "WHEN")]
    pub restore: RestorePolicy,
    /// A previous run's findings.sarif or report.json: bug-hunt findings
    /// whose fingerprint is in it are `known`, the others `new`.
    #[arg(long, value_name = "FILE")]
    pub baseline_findings: Option<PathBuf>,
}

/// When the work tree is restored to `00-base` after a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RestorePolicy {
    /// Between the tasks of a multi-task run; never after the last one.
    #[default]
    Auto,
    /// After every task.
    Always,
    /// Never (tasks of one workspace then build on each other).
    Never,
}

/// Arguments of `kkrun validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Task files, directories of task files, or glob patterns.
    #[arg(value_name = "FILES", required = true)]
    pub files: Vec<String>,
}

/// Arguments of `kkrun schema`.
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// Which schema to print.
    #[arg(value_enum)]
    pub which: SchemaKind,
}

/// The schemas kkrun can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// The task file format (schemas/task.schema.json).
    Task,
    /// The run report, report.json (schemas/report.schema.json).
    Report,
}

/// Arguments of `kkrun snapshots`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotsArgs {
    /// Run id (default: list all runs).
    pub run: Option<String>,
    /// Task name (default: every task of the run).
    pub task: Option<String>,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Run id.
    pub run: String,
    /// Task name.
    pub task: String,
    /// Snapshot to diff from: a stage name (`code`), a ref name (`02-code`) or `base`.
    #[arg(long, default_value = "base", value_name = "STAGE")]
    pub from: String,
    /// Snapshot to diff to (default: the task's last snapshot); `worktree` for the live tree.
    #[arg(long, value_name = "STAGE")]
    pub to: Option<String>,
    /// Print only the file list with +/- counts.
    #[arg(long)]
    pub stat: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun rollback`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// Run id.
    pub run: String,
    /// Task name.
    pub task: String,
    /// Snapshot to restore: a stage name (`code`), a ref name (`02-code`) or `base`.
    #[arg(long, value_name = "STAGE")]
    pub to: String,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun gc`.
#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Keep the newest N runs, remove the rest.
    #[arg(long, value_name = "N", conflicts_with = "older_than")]
    pub keep_last: Option<usize>,
    /// Remove runs whose last snapshot is older than this (`7d`, `12h`).
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        None => run_tasks(&cli.run, &cli.global),
        Some(Command::Run(args)) => run_tasks(&args, &cli.global),
        Some(Command::Validate(args)) => validate(&args, &cli.global),
        Some(Command::Schema(args)) => schema(&args),
        Some(Command::Snapshots(args)) => crate::snapshot::commands::snapshots(&args),
        Some(Command::Diff(args)) => crate::snapshot::commands::diff(&args),
        Some(Command::Rollback(args)) => crate::snapshot::commands::rollback(&args),
        Some(Command::Gc(args)) => crate::snapshot::commands::gc(&args),
    }
}

fn run_tasks(args: &RunArgs, global: &GlobalArgs) -> Result<i32, Error> {
    let options = crate::task::LoadOptions {
        model_override: args.model.as_deref(),
        // `--replay` supplies every task's model after loading.
        require_model: args.replay.is_none(),
    };
    if args.dry_run {
        return match crate::task::load_tasks_with(&args.files, &options) {
            Ok(tasks) => {
                let cwd = std::env::current_dir()
                    .and_then(|dir| dir.canonicalize())
                    .unwrap_or_default();
                write_stdout(&crate::task::render_plan(&tasks, &cwd))?;
                Ok(exit_codes::SUCCESS)
            }
            Err(errors) => Ok(report_task_file_errors(&errors, global)),
        };
    }
    let mut tasks = match crate::task::load_tasks_with(&args.files, &options) {
        Ok(tasks) => tasks,
        Err(errors) => return Ok(report_task_file_errors(&errors, global)),
    };
    if let Some(replay) = &args.replay {
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
    let baseline_findings = match &args.baseline_findings {
        Some(path) => Some(
            crate::findings::BaselineFindings::load(path)
                .map_err(|e| Error::InvalidInput(e.to_string()))?,
        ),
        None => None,
    };
    let run_options = crate::runner::RunOptions {
        baseline_findings,
        out: args.out.clone(),
        json: args.json,
        restore: args.restore,
        record: args.record.clone(),
        command_line: std::env::args().collect(),
    };
    crate::runner::run(tasks, run_options, global)
}

fn validate(args: &ValidateArgs, global: &GlobalArgs) -> Result<i32, Error> {
    match crate::task::load_tasks(&args.files) {
        Ok(tasks) => {
            if !global.quiet {
                let mut out = String::new();
                let mut files: Vec<&std::path::Path> = Vec::new();
                for task in &tasks {
                    if !files.contains(&task.file.as_path()) {
                        files.push(&task.file);
                    }
                }
                for file in files {
                    let names: Vec<&str> = tasks
                        .iter()
                        .filter(|task| task.file == file)
                        .map(|task| task.name.as_str())
                        .collect();
                    let count = if names.len() == 1 { "task" } else { "tasks" };
                    out.push_str(&format!(
                        "ok: {} ({} {count}: {})\n",
                        file.display(),
                        names.len(),
                        names.join(", ")
                    ));
                }
                write_stdout(&out)?;
            }
            Ok(exit_codes::SUCCESS)
        }
        Err(errors) => Ok(report_task_file_errors(&errors, global)),
    }
}

fn schema(args: &SchemaArgs) -> Result<i32, Error> {
    let schema = match args.which {
        SchemaKind::Task => crate::task::task_schema(),
        SchemaKind::Report => crate::report::report_schema(),
    };
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|error| Error::InvalidInput(format!("cannot render the schema: {error}")))?;
    write_stdout(&format!("{text}\n"))?;
    Ok(exit_codes::SUCCESS)
}

/// Prints every task-file error to stderr and returns the exit code for
/// invalid input; stdout stays empty.
fn report_task_file_errors(errors: &crate::task::TaskFileErrors, global: &GlobalArgs) -> i32 {
    use std::io::{IsTerminal, Write};
    let color = match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                && std::io::stderr().is_terminal()
        }
    };
    let _ = std::io::stderr()
        .lock()
        .write_all(errors.render(color).as_bytes());
    exit_codes::INVALID_INPUT
}

/// Writes to stdout; a closed pipe (`kkrun schema task | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("cannot write to stdout", error))
        }
        _ => Ok(()),
    }
}

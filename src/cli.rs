//! Command-line interface: argument definitions (clap derive) and dispatch.
//! Each command returns its exit code or an [`Error`]; `main` maps both.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::Error;

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
    /// Print more detail (tool calls, retries); repeat for more.
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
        Some(Command::Validate(args)) => validate(&args),
        Some(Command::Schema(args)) => schema(&args),
        Some(Command::Snapshots(args)) => crate::snapshot::commands::snapshots(&args),
        Some(Command::Diff(args)) => crate::snapshot::commands::diff(&args),
        Some(Command::Rollback(args)) => crate::snapshot::commands::rollback(&args),
        Some(Command::Gc(args)) => crate::snapshot::commands::gc(&args),
    }
}

fn run_tasks(_args: &RunArgs, _global: &GlobalArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput("kkrun run: not available yet".into()))
}

fn validate(_args: &ValidateArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput(
        "kkrun validate: not available yet".into(),
    ))
}

fn schema(_args: &SchemaArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput(
        "kkrun schema: not available yet".into(),
    ))
}

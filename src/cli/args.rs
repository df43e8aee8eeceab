//! The argument definitions (clap derive) of every command.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::runner::Partition;

/// Options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// When to use colours on stderr.
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, global = true)]
    pub color: ColorArg,
    /// Print only errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail: model turns, tool calls, snapshots.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
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
    /// Print a JSON Schema (task files, configuration files or reports).
    Schema(SchemaArgs),
    /// List runs, tasks and their snapshots in a repository.
    Snapshots(SnapshotsArgs),
    /// Show the changes between two snapshots of a task as a patch.
    Diff(DiffArgs),
    /// Restore the work tree to a snapshot (after a safety snapshot).
    Rollback(RollbackArgs),
    /// Continue a run that was cut short (killed, cancelled, interrupted):
    /// every task that had not finished goes on from its last completed
    /// step; finished tasks are not run again.
    Resume(ResumeArgs),
    /// Remove old runs: their run directories, snapshot refs and stale
    /// isolated worktrees (the same as `kkrun runs gc`).
    Gc(GcArgs),
    /// The run store in `.kkrun/runs/`: list, show, check and clean runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Work with a run's reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Make a branch whose one commit holds a task's change (for a pull
    /// request), and print a pull-request body.
    Export(ExportArgs),
    /// Write a task's change (its last snapshot minus `00-base`) into the
    /// work tree, merged with what changed there since; refuses (exit 2)
    /// listing the conflicting paths, changing nothing. HEAD, the index and
    /// branches are never touched.
    Apply(ApplyArgs),
}

/// `kkrun runs` subcommands. They look in `.kkrun/runs/` of the current
/// directory (else of the work tree root); `--out` directories are not
/// known to them.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One line per run, oldest first: id, start, tasks, outcome, exit code
    /// and cost; a killed run is `incomplete` with the command resuming it.
    List(RunsListArgs),
    /// A run's tasks: stages, checks, snapshot refs (and whether they still
    /// exist) and changed files.
    Show(RunsShowArgs),
    /// Check every run directory (events, report, refs) and find orphan refs
    /// and stale worktrees; exit 0 when clean, 1 with one line per problem
    /// and the command that fixes it.
    Fsck(RunsFsckArgs),
    /// Remove old runs: directories, snapshot refs and stale worktrees
    /// together (the same as `kkrun gc`).
    Gc(GcArgs),
}

/// Arguments of `kkrun runs list`.
#[derive(Debug, Clone, Args)]
pub struct RunsListArgs {
    /// Print one JSON document (`{"runs_dir", "runs": [...]}`) on stdout.
    #[arg(long)]
    pub json: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun runs show`.
#[derive(Debug, Clone, Args)]
pub struct RunsShowArgs {
    /// Run id, `latest`, or a run directory.
    pub run: String,
    /// Only this task (default: every task of the run).
    pub task: Option<String>,
    /// Print one JSON document (`{"run", "tasks": [...]}`) on stdout.
    #[arg(long)]
    pub json: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun runs fsck`.
#[derive(Debug, Clone, Args)]
pub struct RunsFsckArgs {
    /// Print one JSON document (`{"runs_dir", "checked", "problems": [...]}`)
    /// on stdout.
    #[arg(long)]
    pub json: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// `kkrun report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Rebuild report.json, junit.xml and summary.md of a run directory
    /// from its events.jsonl alone. A stream that ends without run.finished
    /// (the run was killed) still gives a complete report: unfinished tasks
    /// are `interrupted` and the report is marked `rebuilt`.
    Rebuild(RebuildArgs),
    /// Join the run directories of a CI matrix's shards (`--partition`) into
    /// one: report.json, junit.xml, summary.md and events.jsonl in --out,
    /// built from the shards' events, and the combined exit code. Refuses
    /// (exit 2) run directories of different task sets or kkrun versions and
    /// a task run by two of them; a task no shard ran is reported as `error`.
    Merge(MergeArgs),
}

/// Arguments of `kkrun report merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The shards' run directories (e.g. downloaded CI artifacts).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Write the merged run directory here.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: PathBuf,
}

/// Arguments of `kkrun report rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// The run directory (`.kkrun/runs/<run-id>`, `.kkrun/runs/latest`, or an `--out` directory).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
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
    /// Given several times, every task runs once per model (instances
    /// `<task>@<model>`, each isolated) and summary.md compares them.
    #[arg(long, env = "KKRUN_MODEL", value_name = "PROVIDER:MODEL")]
    pub model: Vec<String>,
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
    /// Exit 2 before running anything when the sandbox (Landlock, network
    /// namespace) cannot be fully enforced on this machine.
    #[arg(long)]
    pub require_sandbox: bool,
    /// Skip the preflight: the one cheap request per endpoint that stops the
    /// run with exit 3 before any check when a server is unreachable or
    /// refuses the key.
    #[arg(long)]
    pub no_preflight: bool,
    /// Do not give the stages the AGENTS.md files found from the workspace
    /// up to the work-tree root (a task's `instructions:` files still
    /// apply).
    #[arg(long)]
    pub no_project_instructions: bool,
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
    #[arg(long, value_enum, default_value_t = RestoreArg::Auto, value_name = "WHEN")]
    pub restore: RestoreArg,
    /// A previous run's findings.sarif or report.json: bug-hunt findings
    /// whose fingerprint is in it are `known`, the others `new`.
    #[arg(long, value_name = "FILE")]
    pub baseline_findings: Option<PathBuf>,
    /// Also replace VALUE with `[redacted]` in everything kkrun writes
    /// (repeatable; secret-looking environment variables and API keys are
    /// redacted without it).
    #[arg(long, value_name = "VALUE", value_parser = parse_redact_value)]
    pub redact: Vec<String>,
    /// Run only shard K of N of the tasks, for a CI matrix: `hash:K/N` by a
    /// stable hash of the task's name (adding a task moves no other one),
    /// `slice:K/N` round-robin in run order. Shards count from 1; join the
    /// shards' run directories with `kkrun report merge`.
    #[arg(long, value_name = "hash:K/N|slice:K/N", value_parser = parse_partition)]
    pub partition: Option<Partition>,
    /// Run every task in its own linked git worktree outside your work
    /// tree, detached at HEAD with your uncommitted changes on top; your
    /// files, HEAD, index, branches and stash are never touched. The
    /// changes stay in the snapshots and final.patch.
    #[arg(long)]
    pub isolate: bool,
    /// Put the isolated worktrees in DIR (default: kkrun-worktrees in the
    /// system temporary directory). Implies --isolate.
    #[arg(long, value_name = "DIR")]
    pub worktrees: Option<PathBuf>,
    /// Keep each isolated worktree after its task (remove it later with
    /// `git worktree remove`). Implies --isolate.
    #[arg(long)]
    pub keep_worktrees: bool,
    /// When another run holds the work tree, wait up to DURATION (`30s`,
    /// `10m`) for it instead of failing at once with exit 2.
    #[arg(long, value_name = "DURATION", value_parser = parse_wait_lock)]
    pub wait_lock: Option<std::time::Duration>,
    /// Run up to N tasks at once (default 1). More than one implies
    /// --isolate: every task in its own worktree.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_jobs)]
    pub jobs: usize,
    /// At most N model requests in flight per endpoint, shared by all
    /// tasks (default 4; an endpoint's max_concurrent_requests wins).
    #[arg(long, value_name = "N", default_value_t = crate::provider::DEFAULT_MAX_REQUESTS, value_parser = parse_max_requests)]
    pub max_requests: usize,
    /// After the run, write the passing tasks' changes into your work tree,
    /// in task order, stopping at the first that conflicts (exit 2). Implies
    /// --isolate.
    #[arg(long)]
    pub apply: bool,
}

/// A `--jobs` value: a whole number of at least 1; clap adds the flag's
/// name to the message.
fn parse_jobs(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err(format!("{value}: must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{value}: not a whole number (e.g. --jobs 4)")),
    }
}

/// A `--max-requests` value: a whole number of at least 1.
fn parse_max_requests(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err(format!("{value}: must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "{value}: not a whole number (e.g. --max-requests 4)"
        )),
    }
}

/// A `--partition` value; clap adds the flag's name to the message.
fn parse_partition(value: &str) -> Result<Partition, String> {
    value.parse::<Partition>().map_err(|e| e.to_string())
}

/// A `--wait-lock` value, as task files write durations.
fn parse_wait_lock(value: &str) -> Result<std::time::Duration, String> {
    crate::task::duration::parse(value)
}

/// A `--redact` value: long enough not to mangle ordinary words.
fn parse_redact_value(value: &str) -> Result<String, String> {
    if value.trim().chars().count() < crate::redact::MIN_SECRET_CHARS {
        return Err(format!(
            "a value to redact needs at least {} characters (a shorter one would be replaced \
             inside ordinary words of every report)",
            crate::redact::MIN_SECRET_CHARS
        ));
    }
    Ok(value.to_string())
}

/// When the work tree is restored to `00-base` after a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RestoreArg {
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
    /// Print one JSON document (`{"valid", "files": [...], "errors": [...]}`)
    /// on stdout instead of the human text on stderr.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `kkrun schema`.
#[derive(Debug, Clone, Args)]
pub struct SchemaArgs {
    /// Which schema to print.
    #[arg(value_enum)]
    pub which: SchemaArg,
}

/// The schemas kkrun can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaArg {
    /// The task file format (schemas/task.schema.json).
    Task,
    /// The run report, report.json (schemas/report.schema.json).
    Report,
    /// The configuration file, kkrun.yaml (schemas/config.schema.json).
    Config,
}

/// Arguments of `kkrun snapshots`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotsArgs {
    /// Run id or `latest` (default: list all runs).
    pub run: Option<String>,
    /// Task name (default: every task of the run).
    pub task: Option<String>,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Print one JSON document (`{"runs": [{"run_id", "tasks": [...]}]}`)
    /// on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `kkrun resume`.
#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    /// Run id, `latest`, or a run directory (such as an `--out` directory);
    /// default: the latest run in `.kkrun/runs/`.
    pub run: Option<String>,
    /// Stream the new events as JSON lines on stdout (and nothing else on
    /// stdout).
    #[arg(long)]
    pub json: bool,
    /// When to restore a task's work tree to its `00-base` snapshot after
    /// the task, as for `kkrun run`; default: what the run's command line
    /// said (`auto` when it said nothing).
    #[arg(long, value_enum, value_name = "WHEN")]
    pub restore: Option<RestoreArg>,
    /// Also replace VALUE with `[redacted]` in everything kkrun writes
    /// (repeatable), as for `kkrun run`.
    #[arg(long, value_name = "VALUE", value_parser = parse_redact_value)]
    pub redact: Vec<String>,
    /// When another run holds the work tree, wait up to DURATION for it,
    /// as for `kkrun run`.
    #[arg(long, value_name = "DURATION", value_parser = parse_wait_lock)]
    pub wait_lock: Option<std::time::Duration>,
}

/// Arguments of `kkrun diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Run id or `latest`.
    pub run: String,
    /// Task name.
    pub task: String,
    /// Snapshot to diff from: a stage name (`code`), a ref name (`02-code`) or `base`.
    #[arg(long, default_value = "base", value_name = "STAGE")]
    pub from: String,
    /// Snapshot to diff to (default: the task's result, its last snapshot
    /// that is not a rollback's `NN-safety`); `worktree` for the live tree.
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
    /// Run id or `latest`.
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

/// Arguments of `kkrun gc` and `kkrun runs gc`.
#[derive(Debug, Clone, Args)]
pub struct GcArgs {
    /// Keep the newest N runs, remove the rest.
    #[arg(long, value_name = "N", conflicts_with = "older_than")]
    pub keep_last: Option<usize>,
    /// Remove runs whose last activity (newest snapshot or event) is older
    /// than this (`7d`, `12h`).
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
    /// Remove this run (an id or `latest`; repeatable).
    #[arg(long = "run", value_name = "ID")]
    pub runs: Vec<String>,
    /// Also remove the run `.kkrun/runs/latest` points at when it is
    /// selected (by default it is kept, so `kkrun diff latest ...` and
    /// `kkrun resume` keep working).
    #[arg(long)]
    pub include_latest: bool,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document (`{"dry_run", "removed", "spared", "kept",
    /// "stale_worktrees"}`) on stdout.
    #[arg(long)]
    pub json: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Run id, `latest`, or a run directory (such as one downloaded from a
    /// CI artifact).
    pub run: String,
    /// Task name.
    pub task: String,
    /// Create this branch: one commit on the base holding exactly the task's
    /// change (its last snapshot minus `00-base`), message from the review.
    /// HEAD, the index and the work tree are never touched.
    #[arg(long, value_name = "NAME", required_unless_present = "pr_body")]
    pub branch: Option<String>,
    /// Commit to put the change on (default: the commit HEAD pointed at when
    /// the task started). A change that conflicts with it is refused.
    #[arg(long, value_name = "REF", requires = "branch")]
    pub base: Option<String>,
    /// Replace the branch when it exists (never one that is checked out).
    #[arg(long, requires = "branch")]
    pub force: bool,
    /// Print a pull-request body (summary, risks, checks, cost) on stdout,
    /// e.g. for `gh pr create --body-file -`; with `--branch`, the branch is
    /// made too and reported on stderr.
    #[arg(long)]
    pub pr_body: bool,
    /// The git repository (or a directory inside it).
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

/// Arguments of `kkrun apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Run id, `latest`, or a run directory.
    pub run: String,
    /// Task name.
    pub task: String,
    /// The git repository (or a directory inside it) whose work tree gets
    /// the change.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
}

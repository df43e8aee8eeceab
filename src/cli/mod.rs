//! Command-line interface: argument definitions (clap derive), and their
//! resolution into the plain options of [`crate::commands`]. This is the
//! only module that knows clap; colour, terminal and CI are decided here,
//! once. Each command returns its exit code or an [`Error`]; `main` maps
//! both.

use clap::Parser;

use crate::commands;
use crate::console::{self, ConsoleOptions, Terminal};
use crate::error::Error;
use crate::runner::{IsolationOptions, RestorePolicy};

mod args;

pub use args::*;

const AFTER_HELP: &str = "\
Examples:
  kkrun tasks/*.yaml                 run every task (same as `kkrun run ...`)
  kkrun run --dry-run tasks/         load, validate and print the run plan
  kkrun validate tasks/*.yaml        check task files without running
  kkrun schema task > task.schema.json
  kkrun runs list                    list the runs in .kkrun/runs/
  kkrun runs fsck                    check the run store; print the fixes
  kkrun snapshots                    list runs and their snapshots
  kkrun diff latest TASK             the latest run's change to a task
  kkrun rollback RUN TASK --to code  restore the work tree to a stage
  kkrun resume                       continue the latest run after a kill
  kkrun report rebuild .kkrun/runs/latest
                                     rebuild the reports from events.jsonl
  kkrun run --partition hash:1/4 tasks/
                                     run shard 1 of 4 (in a CI matrix)
  kkrun report merge shards/* --out merged
                                     join the shards' run directories
  kkrun export latest TASK --branch kkrun/TASK
                                     the task's change as a branch to push

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
#[command(arg_required_else_help = true)]
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

/// Parses the process's arguments. For `--help`, `--version` and usage
/// errors clap's text is printed (help on stdout, errors on stderr) and the
/// exit code to end with is returned as the error.
pub fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|err| {
        let code = if err.use_stderr() {
            crate::exit_codes::INVALID_INPUT
        } else {
            crate::exit_codes::SUCCESS
        };
        let _ = err.print();
        code
    })
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Result<i32, Error> {
    let terminal = Terminal::detect();
    let global = &cli.global;
    match cli.command {
        None => commands::run::run(run_command(cli.run, global, terminal)),
        Some(Command::Run(args)) => commands::run::run(run_command(args, global, terminal)),
        Some(Command::Validate(args)) => {
            commands::validate::validate(&commands::validate::ValidateOptions {
                files: args.files,
                json: args.json,
                quiet: global.quiet,
                color: terminal.color(global.color.into()),
            })
        }
        Some(Command::Schema(args)) => commands::schema::schema(match args.which {
            SchemaArg::Task => commands::schema::SchemaKind::Task,
            SchemaArg::Report => commands::schema::SchemaKind::Report,
            SchemaArg::Config => commands::schema::SchemaKind::Config,
        }),
        Some(Command::Snapshots(args)) => {
            commands::snapshots::snapshots(&commands::snapshots::SnapshotsOptions {
                run: args.run,
                task: args.task,
                repo: args.repo,
                json: args.json,
            })
        }
        Some(Command::Diff(args)) => commands::snapshots::diff(&commands::snapshots::DiffOptions {
            run: args.run,
            task: args.task,
            from: args.from,
            to: args.to,
            stat: args.stat,
            repo: args.repo,
        }),
        Some(Command::Rollback(args)) => {
            commands::snapshots::rollback(&commands::snapshots::RollbackOptions {
                run: args.run,
                task: args.task,
                to: args.to,
                repo: args.repo,
            })
        }
        Some(Command::Resume(args)) => commands::resume::resume(commands::resume::ResumeCommand {
            run: args.run,
            restore: args.restore.map(Into::into),
            redact: args.redact,
            wait_lock: args.wait_lock,
            console: console_options(terminal, global, args.json),
            command_line: std::env::args().collect(),
        }),
        Some(Command::Gc(args)) | Some(Command::Runs(RunsCommand::Gc(args))) => {
            commands::runs::gc(&gc_options(args))
        }
        Some(Command::Runs(RunsCommand::List(args))) => {
            commands::runs::list(&commands::runs::ListOptions {
                json: args.json,
                repo: args.repo,
            })
        }
        Some(Command::Runs(RunsCommand::Show(args))) => {
            commands::runs::show(&commands::runs::ShowOptions {
                run: args.run,
                task: args.task,
                json: args.json,
                repo: args.repo,
            })
        }
        Some(Command::Runs(RunsCommand::Fsck(args))) => {
            commands::runs::fsck(&commands::runs::FsckOptions {
                json: args.json,
                repo: args.repo,
            })
        }
        Some(Command::Report(ReportCommand::Rebuild(args))) => {
            commands::report::rebuild(&args.run_dir)
        }
        Some(Command::Report(ReportCommand::Merge(args))) => {
            commands::report::merge(&args.run_dirs, &args.out, std::env::args().collect())
        }
        Some(Command::Apply(args)) => commands::apply::apply(&commands::apply::ApplyOptions {
            run: args.run,
            task: args.task,
            repo: args.repo,
        }),
        Some(Command::Export(args)) => commands::export::export(&commands::export::ExportOptions {
            run: args.run,
            task: args.task,
            branch: args.branch,
            base: args.base,
            force: args.force,
            pr_body: args.pr_body,
            repo: args.repo,
        }),
    }
}

/// How a command that runs tasks (`run`, `resume`) shows progress.
fn console_options(terminal: Terminal, global: &GlobalArgs, json: bool) -> ConsoleOptions {
    ConsoleOptions::new(
        terminal,
        global.color.into(),
        global.quiet,
        global.verbose,
        json,
    )
}

fn gc_options(args: GcArgs) -> commands::runs::GcOptions {
    commands::runs::GcOptions {
        keep_last: args.keep_last,
        older_than: args.older_than,
        runs: args.runs,
        include_latest: args.include_latest,
        dry_run: args.dry_run,
        json: args.json,
        repo: args.repo,
    }
}

fn run_command(
    args: RunArgs,
    global: &GlobalArgs,
    terminal: Terminal,
) -> commands::run::RunCommand {
    commands::run::RunCommand {
        console: console_options(terminal, global, args.json),
        files: args.files,
        dry_run: args.dry_run,
        models: args.model,
        replay: args.replay,
        record: args.record,
        require_sandbox: args.require_sandbox,
        preflight: !args.no_preflight,
        project_instructions: !args.no_project_instructions,
        out: args.out,
        restore: args.restore.into(),
        redact: args.redact,
        baseline_findings: args.baseline_findings,
        partition: args.partition,
        apply: args.apply,
        wait_lock: args.wait_lock,
        jobs: args.jobs,
        max_requests: args.max_requests,
        // Worktree options and a model matrix (which the runner sees in
        // the tasks) isolate too.
        isolate: (args.isolate
            || args.apply
            || args.jobs > 1
            || args.worktrees.is_some()
            || args.keep_worktrees)
            .then_some(IsolationOptions {
                dir: args.worktrees,
                keep: args.keep_worktrees,
            }),
        command_line: std::env::args().collect(),
    }
}

impl From<RestoreArg> for RestorePolicy {
    fn from(arg: RestoreArg) -> RestorePolicy {
        match arg {
            RestoreArg::Auto => RestorePolicy::Auto,
            RestoreArg::Always => RestorePolicy::Always,
            RestoreArg::Never => RestorePolicy::Never,
        }
    }
}

impl From<ColorArg> for console::ColorChoice {
    fn from(arg: ColorArg) -> console::ColorChoice {
        match arg {
            ColorArg::Auto => console::ColorChoice::Auto,
            ColorArg::Always => console::ColorChoice::Always,
            ColorArg::Never => console::ColorChoice::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn resume_takes_an_optional_run() {
        let cli = Cli::try_parse_from(["kkrun", "resume"]).unwrap();
        match cli.command {
            Some(Command::Resume(args)) => {
                assert_eq!(args.run, None);
                assert_eq!(args.restore, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["kkrun", "resume", "latest", "--restore", "always"]).unwrap();
        match cli.command {
            Some(Command::Resume(args)) => {
                assert_eq!(args.run.as_deref(), Some("latest"));
                assert_eq!(args.restore, Some(RestoreArg::Always));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn report_rebuild_takes_a_run_directory() {
        let cli = Cli::try_parse_from(["kkrun", "report", "rebuild", "out"]).unwrap();
        match cli.command {
            Some(Command::Report(ReportCommand::Rebuild(args))) => {
                assert_eq!(args.run_dir, PathBuf::from("out"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["kkrun", "report", "rebuild"]).is_err());
    }

    #[test]
    fn report_merge_takes_run_directories_and_an_out_directory() {
        let cli =
            Cli::try_parse_from(["kkrun", "report", "merge", "a", "b", "--out", "m"]).unwrap();
        match cli.command {
            Some(Command::Report(ReportCommand::Merge(args))) => {
                assert_eq!(args.run_dirs, [PathBuf::from("a"), PathBuf::from("b")]);
                assert_eq!(args.out, PathBuf::from("m"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["kkrun", "report", "merge", "a"]).is_err());
        assert!(Cli::try_parse_from(["kkrun", "report", "merge", "--out", "m"]).is_err());
    }

    #[test]
    fn partition_parses_and_bad_values_name_the_flag() {
        let cli = Cli::try_parse_from(["kkrun", "--partition", "slice:2/3", "t.yaml"]).unwrap();
        assert_eq!(cli.run.partition.unwrap().to_string(), "slice:2/3");
        for bad in ["3/2", "foo:1/2", "0/2", "hash:0/2", "hash:3/2"] {
            let err = Cli::try_parse_from(["kkrun", "--partition", bad, "t.yaml"]).unwrap_err();
            assert!(err.use_stderr());
            let text = err.to_string();
            assert!(text.contains("--partition"), "{bad}: {text}");
        }
    }

    #[test]
    fn restore_and_color_resolve_to_the_plain_types() {
        let cli =
            Cli::try_parse_from(["kkrun", "--color", "never", "--restore", "always", "t.yaml"])
                .unwrap();
        let terminal = Terminal {
            tty: true,
            ci: false,
            no_color: false,
            github: false,
        };
        let command = run_command(cli.run, &cli.global, terminal);
        assert_eq!(command.restore, RestorePolicy::Always);
        assert!(!command.console.color);
        assert!(
            command.console.live,
            "a terminal outside CI gets the live line"
        );
    }
}

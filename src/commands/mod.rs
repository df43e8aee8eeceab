//! The front ends of kkrun's commands: each takes plain options that
//! [`crate::cli`] resolved from the command line, drives the machinery it
//! names, prints its result on stdout and returns the exit code. Errors are
//! returned and printed once by `main`.

pub mod apply;
pub mod export;
pub mod export_message;
pub mod report;
pub mod resume;
pub mod run;
pub mod runs;
pub mod schema;
pub mod snapshots;
pub mod validate;

use std::io::Write;

use crate::error::Error;
use crate::exit_codes;

/// Writes `text` to stdout and returns [`exit_codes::SUCCESS`]; a closed
/// pipe (`kkrun diff | head`) is not an error.
pub(crate) fn print(text: &str) -> Result<i32, Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(exit_codes::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit_codes::SUCCESS),
        Err(e) => Err(Error::io("cannot write to stdout", e)),
    }
}

/// Writes `value` to stdout as one pretty-printed JSON document, the
/// `--json` output of the commands that are not runs.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<i32, Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::io("serializing the JSON output", e.into()))?;
    print(&format!("{text}\n"))
}

/// The run id `given` names in `store`'s repository: itself, or for
/// `latest` the run `.kkrun/runs/latest` points at (of the current
/// directory, else of the work tree root); see
/// [`crate::store::catalog::resolve_run_id`].
pub(crate) fn resolve_run(
    given: &str,
    store: &crate::snapshot::SnapshotStore,
) -> Result<String, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    let dirs = crate::store::catalog::runs_dirs(&cwd, Some(store.workdir()));
    crate::store::catalog::resolve_run_id(given, &dirs)
}

/// Takes the work tree's run lock for `command` (`rollback`, `apply`) of
/// run `run_id`, failing with exit 2 while a run holds it.
pub(crate) fn lock_work_tree(
    store: &crate::snapshot::SnapshotStore,
    run_id: &str,
    command: &str,
) -> Result<crate::lock::WorkTreeLock, Error> {
    let mut notices = Vec::new();
    let lock = crate::lock::acquire(
        store.git_dir(),
        store.workdir(),
        run_id,
        command,
        None,
        &mut notices,
    )?;
    for notice in notices {
        eprintln!("kkrun: {notice}");
    }
    Ok(lock)
}

/// Prints every task-file error to stderr and returns the exit code for
/// invalid input; stdout stays empty.
pub(crate) fn report_task_file_errors(errors: &crate::task::TaskFileErrors, color: bool) -> i32 {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(errors.render(color).as_bytes());
    // Annotations on stderr: stdout stays empty on bad input.
    if crate::report::github::is_github_actions() {
        for line in crate::report::github::task_file_errors(errors) {
            let _ = writeln!(stderr, "{line}");
        }
    }
    exit_codes::INVALID_INPUT
}

//! `kkrun validate`: loads task files and reports every error, running
//! nothing.

use serde::Serialize;

use super::{print, print_json, report_task_file_errors};
use crate::error::Error;
use crate::exit_codes;

/// What `kkrun validate` checks and how it answers.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Task files, directories of task files, or glob patterns.
    pub files: Vec<String>,
    /// Print one JSON document on stdout (see [`ValidateJson`]).
    pub json: bool,
    /// Print nothing on success.
    pub quiet: bool,
    /// Colour the error report on stderr.
    pub color: bool,
}

/// `kkrun validate --json`: whether every file is valid, the valid files
/// with their tasks, and every error with its position.
#[derive(Debug, Serialize)]
pub struct ValidateJson {
    /// True when every file is valid (exit 0).
    pub valid: bool,
    /// The task files and the tasks each holds (empty when any is invalid).
    pub files: Vec<FileJson>,
    /// Every error, in the order the human report lists them.
    pub errors: Vec<ErrorJson>,
}

/// One valid task file.
#[derive(Debug, Serialize)]
pub struct FileJson {
    /// The file, as found from the command line.
    pub file: String,
    /// Its tasks' names.
    pub tasks: Vec<String>,
}

/// One task-file error.
#[derive(Debug, Serialize)]
pub struct ErrorJson {
    /// The file; `null` for an error about the command line itself.
    pub file: Option<String>,
    /// 1-based line; 0 when the error has no position.
    pub line: u64,
    /// 1-based column; 0 when the error has no position.
    pub column: u64,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

/// Prints one `ok:` line per valid file, or every error; exit 0 or 2.
pub fn validate(options: &ValidateOptions) -> Result<i32, Error> {
    let loaded = crate::task::load_tasks(&options.files);
    if options.json {
        return validate_json(loaded);
    }
    let tasks = match loaded {
        Ok(tasks) => tasks,
        Err(errors) => return Ok(report_task_file_errors(&errors, options.color)),
    };
    if options.quiet {
        return Ok(exit_codes::SUCCESS);
    }
    let mut out = String::new();
    for file in by_file(&tasks) {
        let count = if file.tasks.len() == 1 {
            "task"
        } else {
            "tasks"
        };
        out.push_str(&format!(
            "ok: {} ({} {count}: {})\n",
            file.file,
            file.tasks.len(),
            file.tasks.join(", ")
        ));
    }
    print(&out)
}

/// The tasks grouped by file, in the order the files came.
fn by_file(tasks: &[crate::task::Task]) -> Vec<FileJson> {
    let mut files: Vec<FileJson> = Vec::new();
    for task in tasks {
        let file = task.file.display().to_string();
        match files.iter_mut().find(|f| f.file == file) {
            Some(known) => known.tasks.push(task.name.clone()),
            None => files.push(FileJson {
                file,
                tasks: vec![task.name.clone()],
            }),
        }
    }
    files
}

fn validate_json(
    loaded: Result<Vec<crate::task::Task>, crate::task::TaskFileErrors>,
) -> Result<i32, Error> {
    let (doc, code) = match loaded {
        Ok(tasks) => (
            ValidateJson {
                valid: true,
                files: by_file(&tasks),
                errors: Vec::new(),
            },
            exit_codes::SUCCESS,
        ),
        Err(errors) => (
            ValidateJson {
                valid: false,
                files: Vec::new(),
                errors: errors
                    .errors()
                    .iter()
                    .map(|e| ErrorJson {
                        file: e.file().map(|f| f.display().to_string()),
                        line: e.line(),
                        column: e.column(),
                        message: e.message().to_string(),
                        help: e.help_text().map(str::to_string),
                    })
                    .collect(),
            },
            exit_codes::INVALID_INPUT,
        ),
    };
    print_json(&doc)?;
    Ok(code)
}

//! `kkrun validate`: loads task files and reports every error, running
//! nothing.

use super::{print, report_task_file_errors};
use crate::error::Error;
use crate::exit_codes;

/// What `kkrun validate` checks and how it answers.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Task files, directories of task files, or glob patterns.
    pub files: Vec<String>,
    /// Print nothing on success.
    pub quiet: bool,
    /// Colour the error report on stderr.
    pub color: bool,
}

/// Prints one `ok:` line per valid file, or every error; exit 0 or 2.
pub fn validate(options: &ValidateOptions) -> Result<i32, Error> {
    let tasks = match crate::task::load_tasks(&options.files) {
        Ok(tasks) => tasks,
        Err(errors) => return Ok(report_task_file_errors(&errors, options.color)),
    };
    if options.quiet {
        return Ok(exit_codes::SUCCESS);
    }
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
    print(&out)
}

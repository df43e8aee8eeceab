//! Task files: finding, parsing and validating them with precise positions,
//! and the resolved [`Task`] the runner consumes.
//!
//! The pipeline: `load` expands paths and reads files, `node` parses YAML
//! into a located tree, `parse` walks it into the `raw` types (collecting
//! every error), `resolve` merges defaults and checks the file system, and
//! `diagnostic` renders the errors; `matrix` turns a task with several
//! models into one instance per model.

mod config;
mod diagnostic;
pub(crate) mod duration;
mod load;
mod matrix;
mod node;
mod parse;
mod plan;
mod raw;
mod resolve;
mod resolved;
mod schema;
mod setup_check;

pub use config::{CONFIG_FILE_NAME, USER_CONFIG_PATH, config_schema};
pub use diagnostic::{TaskFileError, TaskFileErrors};
pub use duration::format as format_duration;
pub use load::{LoadOptions, MAX_FILE_BYTES, load_tasks, load_tasks_with};
pub use matrix::{INSTANCE_SEPARATOR, MatrixInstance};
pub use parse::PROVIDERS;
pub use plan::render_plan;
pub use resolved::{
    Budget, Check, FailOn, OnFailure, SetupCommand, ShellPolicy, Stage, StageSettings, Task,
    TaskKind,
};
pub use schema::task_schema;

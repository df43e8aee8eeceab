//! `kkrun schema`: prints the JSON Schema of task files, configuration
//! files or reports.

use super::print;
use crate::error::Error;

/// The schemas kkrun can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// The task file format (`schemas/task.schema.json`).
    Task,
    /// The run report, `report.json` (`schemas/report.schema.json`).
    Report,
    /// The configuration file, `kkrun.yaml` (`schemas/config.schema.json`).
    Config,
}

/// Prints the schema `which` as pretty JSON.
pub fn schema(which: SchemaKind) -> Result<i32, Error> {
    let schema = match which {
        SchemaKind::Task => crate::task::task_schema(),
        SchemaKind::Report => crate::report::report_schema(),
        SchemaKind::Config => crate::task::config_schema(),
    };
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|error| Error::InvalidInput(format!("cannot render the schema: {error}")))?;
    print(&format!("{text}\n"))
}

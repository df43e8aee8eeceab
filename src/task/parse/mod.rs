//! From a YAML tree to the raw task-file types, collecting every error.
//!
//! The walk is written out by hand rather than derived with serde so that a
//! file with three mistakes reports three errors, each at its own line and
//! column, instead of stopping at the first. Checks that need no file system
//! (names, durations, globs, ranges) happen here; `resolve` does the rest.
//!
//! `document` walks the file's shape, `settings` the task keys, `values`
//! reads single typed values, `names` holds the naming and model-spec rules,
//! `output` reads `output_schema:`, `prepare`
//! reads `setup:` and `copy_ignored:`, and `yaml_error` explains YAML the parser
//! rejected.

mod config;
mod document;
mod mcp;
mod names;
mod output;
mod prepare;
mod settings;
mod values;
mod yaml_error;

use serde_saphyr::Location;

use super::diagnostic::{SourceFile, TaskFileError};
use super::node::{self, SpannedNode};
use super::raw::TaskFile;
use yaml_error::yaml_error;

pub(crate) use mcp::McpServers;
pub use names::PROVIDERS;
pub(crate) use names::{
    MODEL_PATTERN, NAME_MAX_LEN, NAME_PATTERN, check_model_form, check_provider_known,
};

/// Parses one task file; errors go to `errors`. Returns the file when its
/// structure is sound enough to resolve (it may still have had errors).
pub(crate) fn parse_file(source: &SourceFile, errors: &mut Vec<TaskFileError>) -> Option<TaskFile> {
    let tree = match node::parse(&source.text) {
        Ok(tree) => tree,
        Err(error) => {
            errors.push(yaml_error(source, &error));
            return None;
        }
    };
    let mut walker = Walker { source, errors };
    walker.file(&tree)
}

/// Parses one configuration file; errors go to `errors`. Returns the file
/// when its structure is sound enough to merge (it may still have had
/// errors).
pub(crate) fn parse_config(
    source: &SourceFile,
    errors: &mut Vec<TaskFileError>,
) -> Option<crate::task::config::raw::ConfigFile> {
    let tree = match node::parse(&source.text) {
        Ok(tree) => tree,
        Err(error) => {
            errors.push(yaml_error(source, &error));
            return None;
        }
    };
    let mut walker = Walker { source, errors };
    walker.config_file(&tree)
}

/// Walks one file's tree, pushing every problem it finds to `errors`.
struct Walker<'a> {
    source: &'a SourceFile,
    errors: &'a mut Vec<TaskFileError>,
}

type Entries = [(SpannedNode, SpannedNode)];

/// A key that was recognised, with the nodes of its key and value.
struct Known<'n> {
    name: &'n str,
    value: &'n SpannedNode,
}

impl<'a> Walker<'a> {
    fn push(&mut self, error: TaskFileError) {
        self.errors.push(error);
    }

    fn error_at(&mut self, location: Location, message: String, help: Option<String>) {
        let mut error = TaskFileError::new(message, self.source.at(location));
        if let Some(help) = help {
            error = error.help(help);
        }
        self.push(error);
    }
}

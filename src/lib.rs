//! kkrun: a headless CI runner that drives an AI coding agent through
//! blueprint → code → debug → preview, snapshotting every stage with git.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod commands;
pub mod console;
pub mod error;
pub mod events;
pub mod exit_codes;
pub mod findings;
pub mod guard;
pub mod instructions;
mod json_schema;
pub mod lock;
pub mod mcp;
pub mod output_schema;
pub mod pipeline;
pub mod provider;
pub mod redact;
pub mod report;
pub mod resume;
pub mod runner;
pub mod sandbox;
pub mod snapshot;
pub mod store;
pub mod task;
pub mod tools;

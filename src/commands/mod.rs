//! Front ends of kkrun's commands: they read what the command line names,
//! drive the machinery of another module and print the result.

pub mod export;
pub mod export_message;

//! The error a kkrun command ends with, and the exit code it maps to.

use crate::exit_codes;

/// Why a kkrun command could not do its job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a usage error, an unknown run id. The message is complete
    /// and says what to do.
    #[error("{0}")]
    InvalidInput(String),
    /// A snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// A model provider failed.
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    /// A task could not be prepared (its model provider, its cassette).
    #[error("task `{task}` ({})", file.display())]
    Task {
        /// The task's name.
        task: String,
        /// Its task file.
        file: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// Reading or writing a file failed.
    #[error("{context}")]
    Io {
        /// What kkrun was doing, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidInput(_) => exit_codes::INVALID_INPUT,
            Error::Snapshot(e) => e.exit_code(),
            Error::Provider(e) => e.exit_code(),
            Error::Task { source, .. } => source.exit_code(),
            Error::Io { .. } => exit_codes::INFRASTRUCTURE,
        }
    }

    /// An I/O error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `error` and its causes in one line, `outer: cause: root cause`, leaving
/// out a cause whose text the previous message already contains.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

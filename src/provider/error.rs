//! The one error type of the provider subsystem.

use std::path::PathBuf;

use crate::exit_codes;

use super::cassette::CassetteError;

/// A failed model turn, or a provider that could not be set up.
///
/// Messages never contain API keys: response bodies are cut to their first
/// 500 bytes and redacted before they are stored here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The model spec names no known provider or no model.
    #[error(
        "invalid model `{spec}`: {reason} (hint: use openai:<model>, anthropic:<model> or replay:<cassette.jsonl>)"
    )]
    InvalidModelSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The provider needs an API key and its variable is not set.
    #[error(
        "{provider}: the environment variable {var} is not set (hint: export {var}, or point {base_url_var} at a server that needs no key)"
    )]
    MissingApiKey {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// The key's variable.
        var: &'static str,
        /// The base URL's variable.
        base_url_var: &'static str,
    },
    /// A configuration value (such as a base URL) is unusable.
    #[error("{provider}: {message}")]
    Config {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The cassette of a `replay:` model could not be read.
    #[error("cannot read cassette {}", path.display())]
    CassetteUnreadable {
        /// The resolved cassette path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cassette of a `replay:` model is not a valid cassette.
    #[error("invalid cassette {}", path.display())]
    CassetteInvalid {
        /// The resolved cassette path.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: CassetteError,
    },
    /// Writing the `--record` cassette failed.
    #[error("cannot write cassette {}", path.display())]
    RecordFailed {
        /// The cassette path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered with an HTTP error status.
    #[error(
        "{provider}: HTTP {status}{}: {body}{}",
        request_id_suffix(request_id),
        hint_suffix(hint)
    )]
    Http {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The request id header, if the server sent one.
        request_id: Option<String>,
        /// The first 500 bytes of the body, redacted.
        body: String,
        /// What to do about it, when kkrun knows.
        hint: Option<String>,
    },
    /// The conversation no longer fits the model's context window; the agent
    /// can compact it and try again.
    #[error("{provider}: the prompt is too long for the model's context window ({}{}): {body}", status.map_or_else(|| "stream error".to_string(), |s| format!("HTTP {s}")), request_id_suffix(request_id))]
    ContextTooLong {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// The HTTP status code, when the refusal came as a status.
        status: Option<u16>,
        /// The request id header, if the server sent one.
        request_id: Option<String>,
        /// The first 500 bytes of the body, redacted.
        body: String,
    },
    /// The server could not be reached or did not answer in time.
    #[error("{provider}: {message}")]
    Connection {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// What failed, naming the URL and the timeout where relevant.
        message: String,
    },
    /// The response stream broke, stalled, or was not a valid stream.
    #[error("{provider}: {message}{}", request_id_suffix(request_id))]
    Stream {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// What was wrong, with an excerpt of the offending bytes.
        message: String,
        /// The request id header, if the server sent one.
        request_id: Option<String>,
    },
    /// The model sent an error event inside an otherwise healthy stream.
    #[error(
        "{provider}: the stream reported an error{}: {kind}: {message}",
        request_id_suffix(request_id)
    )]
    StreamErrorEvent {
        /// `openai` or `anthropic`.
        provider: &'static str,
        /// The error type the server named (`overloaded_error`, ...).
        kind: String,
        /// The server's message, redacted.
        message: String,
        /// The request id header, if the server sent one.
        request_id: Option<String>,
    },
    /// The preflight found an endpoint unreachable or refusing the key,
    /// before anything ran.
    #[error("{provider}: preflight request to {url} failed: {message} (hint: {hint})")]
    Preflight {
        /// The provider's name as the model spec writes it.
        provider: String,
        /// The URL asked (without secrets).
        url: String,
        /// What went wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Every allowed attempt failed.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<ProviderError>,
    },
    /// A replayed request differs from the recorded one.
    #[error(
        "replay {}: request {exchange} differs from the recording at {json_path}: recorded {recorded}, got {actual} (hint: the prompt, tools or conversation changed since recording; record the cassette again with --record)",
        cassette.display()
    )]
    ReplayMismatch {
        /// The cassette.
        cassette: PathBuf,
        /// 1-based number of the exchange.
        exchange: usize,
        /// The first differing field, as `$.messages[2].content`.
        json_path: String,
        /// The recorded value (shortened).
        recorded: String,
        /// The value of this run (shortened).
        actual: String,
    },
    /// The run made more requests than the cassette holds.
    #[error(
        "replay {}: request {exchange} has no recorded exchange, the cassette holds {recorded} (hint: the agent ran longer than when it was recorded; record the cassette again with --record)",
        cassette.display()
    )]
    ReplayExhausted {
        /// The cassette.
        cassette: PathBuf,
        /// 1-based number of the request that had no recording.
        exchange: usize,
        /// Exchanges in the cassette.
        recorded: usize,
    },
}

fn request_id_suffix(request_id: &Option<String>) -> String {
    request_id
        .as_ref()
        .map_or_else(String::new, |id| format!(" (request id {id})"))
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map_or_else(String::new, |hint| format!(" (hint: {hint})"))
}

impl ProviderError {
    /// The documented exit code: 2 when the provider could not even be set up
    /// (bad model spec, missing cassette, missing API key: nothing ran), 3 for
    /// every failure at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            ProviderError::InvalidModelSpec { .. }
            | ProviderError::MissingApiKey { .. }
            | ProviderError::Config { .. }
            | ProviderError::CassetteUnreadable { .. }
            | ProviderError::CassetteInvalid { .. } => exit_codes::INVALID_INPUT,
            _ => exit_codes::INFRASTRUCTURE,
        }
    }

    /// True when the request failed because the conversation is longer than
    /// the model's context window (HTTP 413 or the provider's own code), so
    /// compacting the conversation may help.
    pub fn is_context_too_long(&self) -> bool {
        match self {
            ProviderError::ContextTooLong { .. } => true,
            ProviderError::RetriesExhausted { last, .. } => last.is_context_too_long(),
            _ => false,
        }
    }
}

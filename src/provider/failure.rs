//! Why an attempt failed and whether retrying can help: HTTP statuses,
//! broken streams and error events as provider errors with a retry class.

use std::time::Duration;

use super::client::{Backend, Provider};
use super::endpoint::env_vars;
use super::error::ProviderError;
use super::wire::{StreamFault, mentions_context_too_long, mentions_streaming_unsupported};

/// How a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RetryClass {
    /// Retrying cannot help.
    Never,
    /// Failed before any event arrived: retried within the attempt budget.
    BeforeContent,
    /// Broke after content arrived: the whole turn is retried once.
    AfterContent,
    /// The server cannot stream this request: one non-streaming retry.
    StreamingRefused,
}

/// A failed attempt: the error to report and how it may be retried.
pub(super) struct Failure {
    pub(super) error: Box<ProviderError>,
    pub(super) class: RetryClass,
    pub(super) retry_after: Option<Duration>,
    /// The server refused for load (429 or 503): the endpoint's gate
    /// pauses every task and lowers its cap.
    pub(super) throttled: bool,
}

impl Failure {
    pub(super) fn new(error: ProviderError, class: RetryClass) -> Failure {
        Failure {
            error: Box::new(error),
            class,
            retry_after: None,
            throttled: false,
        }
    }
}

/// How far a streamed response got before it failed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Progress {
    /// At least one event arrived.
    pub(super) saw_event: bool,
    /// Text or a tool-call fragment arrived.
    pub(super) content: bool,
}

impl Progress {
    pub(super) fn retry_class(self) -> RetryClass {
        if self.content {
            RetryClass::AfterContent
        } else {
            RetryClass::BeforeContent
        }
    }
}

impl Provider {
    pub(super) fn stream_error(
        &self,
        message: String,
        request_id: Option<String>,
    ) -> ProviderError {
        ProviderError::Stream {
            provider: self.wire.name(),
            message: self.redactor.redact(&message),
            request_id,
        }
    }

    /// A decoding problem as a failure.
    pub(super) fn fault_failure(
        &self,
        fault: StreamFault,
        progress: Progress,
        request_id: Option<String>,
        content_type: Option<String>,
        raw: &[u8],
    ) -> Failure {
        let provider = self.wire.name();
        let class = progress.retry_class();
        match fault {
            StreamFault::Truncated if !progress.saw_event => Failure::new(
                self.stream_error(
                    format!(
                        "the response is not a model event stream (content-type {}): {}",
                        content_type.as_deref().unwrap_or("not given"),
                        self.redactor.body_excerpt(raw)
                    ),
                    request_id,
                ),
                class,
            ),
            StreamFault::Truncated => Failure::new(
                self.stream_error(
                    "the response stream ended before the reply was complete".to_string(),
                    request_id,
                ),
                class,
            ),
            StreamFault::Malformed(message) => {
                Failure::new(self.stream_error(message, request_id), class)
            }
            StreamFault::ErrorEvent {
                kind,
                message,
                retryable,
                context_too_long,
            } => {
                if context_too_long {
                    return Failure::new(
                        ProviderError::ContextTooLong {
                            provider,
                            status: None,
                            request_id,
                            body: self.redactor.body_excerpt(message.as_bytes()),
                        },
                        RetryClass::Never,
                    );
                }
                Failure::new(
                    ProviderError::StreamErrorEvent {
                        provider,
                        kind: self.redactor.redact(&kind),
                        message: self.redactor.body_excerpt(message.as_bytes()),
                        request_id,
                    },
                    if retryable { class } else { RetryClass::Never },
                )
            }
        }
    }

    /// An HTTP error status as a failure.
    pub(super) fn http_failure(
        &self,
        status: u16,
        request_id: Option<String>,
        body: &[u8],
        streaming: bool,
    ) -> Failure {
        let provider = self.wire.name();
        let text = String::from_utf8_lossy(body);
        let excerpt = self.redactor.body_excerpt(body);
        if status == 413 || ((400..500).contains(&status) && mentions_context_too_long(&text)) {
            return Failure::new(
                ProviderError::ContextTooLong {
                    provider,
                    status: Some(status),
                    request_id,
                    body: excerpt,
                },
                RetryClass::Never,
            );
        }
        let vars = env_vars(self.wire);
        let url = match &self.backend {
            Backend::Http(http) => http.url.clone(),
            Backend::Replay(replay) => replay.path.display().to_string(),
        };
        let (class, hint) = match status {
            _ if streaming
                && (400..600).contains(&status)
                && mentions_streaming_unsupported(&text) =>
            {
                (RetryClass::StreamingRefused, None)
            }
            408 | 409 | 425 | 429 | 500..=599 => (RetryClass::BeforeContent, None),
            401 => (
                RetryClass::Never,
                Some(format!(
                    "the server rejected the API key; check {} (and {} if you use another server)",
                    vars.key, vars.base_url
                )),
            ),
            403 => (
                RetryClass::Never,
                Some(format!(
                    "the key in {} has no access to this model or endpoint",
                    vars.key
                )),
            ),
            404 => (
                RetryClass::Never,
                Some(format!(
                    "check the model name `{}` and {} (requests go to {url})",
                    self.model, vars.base_url
                )),
            ),
            _ => (RetryClass::Never, None),
        };
        Failure::new(
            ProviderError::Http {
                provider,
                status,
                request_id,
                body: excerpt,
                hint,
            },
            class,
        )
    }
}

//! One turn: attempts repeated under the retry policy, with the
//! non-streaming fallback and the key scrubbed from streamed text.

use std::time::Duration;

use super::client::{Backend, Provider};
use super::error::ProviderError;
use super::failure::RetryClass;
use super::redact::TextScrubber;
use super::types::{TurnRequest, TurnResponse};
use crate::events::{EventKind, EventSink};

impl Provider {
    /// Runs one streamed turn; `on_text` receives text deltas as they
    /// arrive, every retry is reported to `events` as `provider.retry`.
    ///
    /// When a stream breaks after content arrived, the whole turn is retried
    /// once and only the new attempt's output is returned; text the broken
    /// attempt already passed to `on_text` is not part of the result.
    pub async fn turn(
        &self,
        request: &TurnRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
        events: &EventSink,
    ) -> Result<TurnResponse, ProviderError> {
        let policy = &self.options.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut streaming = true;
        let mut body = self.wire.request_body(request, true, self.dialect);
        let mut attempt: u32 = 0;
        let mut failures_before_content: u32 = 0;
        let mut whole_turn_retried = false;
        let mut fell_back = false;
        loop {
            attempt += 1;
            // A model that echoes the key (say, after reading the
            // environment) must not leak it into transcripts.
            let mut scrubber = TextScrubber::new(&self.redactor);
            let result = {
                let mut scrubbed_text = |text: &str| {
                    let safe = scrubber.push(text);
                    if !safe.is_empty() {
                        on_text(&safe);
                    }
                };
                self.attempt(&body, streaming, &mut scrubbed_text).await
            };
            let failure = match result {
                Ok(response) => {
                    let rest = scrubber.flush();
                    if !rest.is_empty() {
                        on_text(&rest);
                    }
                    return Ok(self.scrub(response));
                }
                Err(failure) => failure,
            };
            let give_up = |error: Box<ProviderError>| {
                if attempt > 1 {
                    ProviderError::RetriesExhausted {
                        attempts: attempt,
                        last: error,
                    }
                } else {
                    *error
                }
            };
            let (wait, reason) = match failure.class {
                RetryClass::Never => return Err(give_up(failure.error)),
                RetryClass::StreamingRefused => {
                    if fell_back || !streaming {
                        return Err(give_up(failure.error));
                    }
                    fell_back = true;
                    streaming = false;
                    body = self.wire.request_body(request, false, self.dialect);
                    (
                        Duration::ZERO,
                        format!("{}; retrying once without streaming", failure.error),
                    )
                }
                RetryClass::AfterContent => {
                    if whole_turn_retried {
                        return Err(give_up(failure.error));
                    }
                    whole_turn_retried = true;
                    (
                        policy.backoff(1),
                        format!(
                            "{}; retrying the whole turn once, discarding the partial reply",
                            failure.error
                        ),
                    )
                }
                RetryClass::BeforeContent => {
                    failures_before_content += 1;
                    if failures_before_content >= max_attempts {
                        return Err(give_up(failure.error));
                    }
                    let wait = match failure.retry_after {
                        Some(asked) => asked.min(policy.max_retry_after),
                        None => policy.backoff(failures_before_content),
                    };
                    (wait, failure.error.to_string())
                }
            };
            // Offline there is nothing to wait for.
            let wait = match self.backend {
                Backend::Replay(_) => Duration::ZERO,
                Backend::Http(_) => wait,
            };
            events.emit(EventKind::ProviderRetry {
                attempt,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                reason,
            });
            tokio::time::sleep(wait).await;
        }
    }
}

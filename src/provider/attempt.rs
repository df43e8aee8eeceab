//! One attempt: a request sent and its response read, streamed or whole,
//! and recorded to the `--record` cassette.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::cassette::Exchange;
use super::client::Provider;
use super::error::ProviderError;
use super::failure::{Failure, Progress, RetryClass};
use super::sse::{SseError, SseStream};
use super::transport::{RawResponse, SendError};
use super::types::TurnResponse;
use super::wire::{Flow, StreamFault};

/// Error bodies are read up to this size; only an excerpt is kept.
pub(super) const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Non-streamed responses are read up to this size.
pub(super) const COMPLETE_BODY_LIMIT: usize = 32 * 1024 * 1024;

impl Provider {
    /// One request and its response, through the endpoint's gate: a slot
    /// is held until the response is read, so the cap bounds whole
    /// requests, not just their headers, and the gate learns whether the
    /// server refused for load.
    pub(super) async fn attempt(
        &self,
        body: &Value,
        streaming: bool,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<TurnResponse, Failure> {
        let permit = self.permit().await;
        let result = self.attempt_in_slot(body, streaming, on_text).await;
        if let Some(permit) = permit {
            match &result {
                Ok(_) => permit.succeeded(),
                Err(failure) if failure.throttled => permit.throttled(failure.retry_after),
                Err(_) => {}
            }
        }
        result
    }

    async fn attempt_in_slot(
        &self,
        body: &Value,
        streaming: bool,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<TurnResponse, Failure> {
        let provider = self.wire.name();
        let timeout = self.options.request_timeout;
        let now = Instant::now();
        // A configured "no limit" (a huge timeout) must not overflow.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let response = match tokio::time::timeout_at(deadline, self.send(body)).await {
            Err(_) => {
                return Err(Failure::new(
                    ProviderError::Connection {
                        provider,
                        message: format!(
                            "no response within the request timeout ({})",
                            humantime::format_duration(timeout)
                        ),
                    },
                    RetryClass::BeforeContent,
                ));
            }
            Ok(Err(SendError::Connect(message))) => {
                return Err(Failure::new(
                    ProviderError::Connection { provider, message },
                    RetryClass::BeforeContent,
                ));
            }
            Ok(Err(SendError::Fatal(error))) => {
                return Err(Failure::new(error, RetryClass::Never));
            }
            Ok(Ok(response)) => response,
        };
        let RawResponse {
            status,
            request_id,
            retry_after,
            content_type,
            body: stream,
        } = response;

        if !(200..300).contains(&status) {
            let (bytes, _) = read_body(
                stream,
                self.options.idle_timeout,
                deadline,
                ERROR_BODY_LIMIT,
            )
            .await;
            self.record(body, status, &bytes)?;
            let mut failure = self.http_failure(status, request_id, &bytes, streaming);
            failure.retry_after = retry_after;
            failure.throttled = matches!(status, 429 | 503);
            return Err(failure);
        }

        if !streaming {
            let (bytes, error) = read_body(
                stream,
                self.options.idle_timeout,
                deadline,
                COMPLETE_BODY_LIMIT,
            )
            .await;
            if let Some(error) = error {
                return Err(Failure::new(
                    self.stream_error(format!("reading the response failed: {error}"), request_id),
                    RetryClass::BeforeContent,
                ));
            }
            return match self.wire.decode_complete(&bytes) {
                Ok(mut response) => {
                    self.record(body, status, &bytes)?;
                    if !response.text.is_empty() {
                        on_text(&response.text);
                    }
                    response.request_id = request_id;
                    Ok(response)
                }
                Err(fault) => Err(self.fault_failure(
                    fault,
                    Progress::default(),
                    request_id,
                    content_type,
                    &bytes,
                )),
            };
        }

        let mut events = SseStream::new(stream, self.options.idle_timeout);
        let mut decoder = self.wire.decoder();
        let mut saw_event = false;
        let outcome: Result<TurnResponse, (Result<SseError, StreamFault>, Progress)> = loop {
            let progress = Progress {
                saw_event,
                content: decoder.has_content(),
            };
            let next = match tokio::time::timeout_at(deadline, events.next_event()).await {
                Ok(next) => next,
                Err(_) => {
                    break Err((
                        Ok(SseError::Transport(format!(
                            "the response took longer than the request timeout ({})",
                            humantime::format_duration(timeout)
                        ))),
                        progress,
                    ));
                }
            };
            let Some(next) = next else {
                break decoder.finish(true).map_err(|fault| (Err(fault), progress));
            };
            let event = match next {
                Ok(event) => event,
                Err(error) => break Err((Ok(error), progress)),
            };
            saw_event = true;
            let flow = decoder.on_event(&event, on_text);
            let progress = Progress {
                saw_event,
                content: decoder.has_content(),
            };
            match flow {
                Ok(Flow::Continue) => {}
                Ok(Flow::Done) => {
                    break decoder
                        .finish(false)
                        .map_err(|fault| (Err(fault), progress));
                }
                Err(fault) => break Err((Err(fault), progress)),
            }
        };
        let raw = events.raw();
        match outcome {
            Ok(mut response) => {
                self.record(body, status, &raw)?;
                response.request_id = request_id;
                Ok(response)
            }
            Err((Ok(sse_error), progress)) => {
                let when = if progress.content {
                    "after the reply had started"
                } else if progress.saw_event {
                    "before any content"
                } else {
                    "before the first event"
                };
                Err(Failure::new(
                    self.stream_error(
                        format!("the response stream broke {when}: {sse_error}"),
                        request_id,
                    ),
                    progress.retry_class(),
                ))
            }
            Err((Err(fault), progress)) => {
                Err(self.fault_failure(fault, progress, request_id, content_type, &raw))
            }
        }
    }

    /// Appends a completed live exchange to the `--record` cassette.
    pub(super) fn record(&self, request: &Value, status: u16, body: &[u8]) -> Result<(), Failure> {
        let Some(recorder) = &self.recorder else {
            return Ok(());
        };
        // Only the key itself is removed: anything else must replay exactly
        // as it was received.
        let exchange = Exchange {
            request: Some(self.recording.redact_known_json(request)),
            status,
            body: super::cassette_redact::redact_body(self.recording.known(), body),
        };
        recorder.append(&exchange).map_err(|source| {
            Failure::new(
                ProviderError::RecordFailed {
                    path: recorder.path().to_path_buf(),
                    source,
                },
                RetryClass::Never,
            )
        })
    }
}

/// Reads a whole body (up to `limit` bytes); the second value is the error
/// that cut it short, if any.
pub(super) async fn read_body(
    mut stream: super::sse::ByteStream,
    idle: Duration,
    deadline: Instant,
    limit: usize,
) -> (Vec<u8>, Option<String>) {
    use futures_util::StreamExt;
    let mut bytes = Vec::new();
    loop {
        let next = match tokio::time::timeout_at(
            deadline,
            tokio::time::timeout(idle, stream.next()),
        )
        .await
        {
            Err(_) => return (bytes, Some("the request timeout ran out".to_string())),
            Ok(Err(_)) => {
                return (
                    bytes,
                    Some(format!(
                        "no data for {} (idle timeout)",
                        humantime::format_duration(idle)
                    )),
                );
            }
            Ok(Ok(next)) => next,
        };
        match next {
            None => return (bytes, None),
            Some(Err(error)) => return (bytes, Some(error)),
            Some(Ok(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() >= limit {
                    bytes.truncate(limit);
                    return (bytes, None);
                }
            }
        }
    }
}

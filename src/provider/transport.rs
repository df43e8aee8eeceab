//! Getting a response for a request body: over HTTP, or from a cassette.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::cassette::{Exchange, first_difference};
use super::error::ProviderError;
use super::redact::Redactor;
use super::sse::ByteStream;

/// The status line and body of a response whose headers have arrived.
pub(crate) struct RawResponse {
    /// HTTP status code.
    pub(crate) status: u16,
    /// `x-request-id` / `request-id`, when present.
    pub(crate) request_id: Option<String>,
    /// The wait the server asked for with `retry-after-ms` / `Retry-After`.
    pub(crate) retry_after: Option<Duration>,
    /// The `content-type` header.
    pub(crate) content_type: Option<String>,
    /// The body, chunk by chunk.
    pub(crate) body: ByteStream,
}

/// Why no response arrived.
pub(crate) enum SendError {
    /// Connecting or waiting for the headers failed; worth retrying.
    Connect(String),
    /// Retrying cannot help (a replay that diverged or ran out).
    Fatal(ProviderError),
}

/// An API key. Its `Debug` never shows the value.
#[derive(Clone)]
pub(crate) struct ApiKey(pub(crate) String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// How the key is sent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI-compatible servers).
    Bearer,
    /// `x-api-key: <key>` plus `anthropic-version` (Anthropic).
    Anthropic,
}

/// A live HTTP endpoint.
#[derive(Debug)]
pub(crate) struct HttpTransport {
    pub(crate) client: reqwest::Client,
    pub(crate) url: String,
    pub(crate) key: Option<ApiKey>,
    pub(crate) key_header: KeyHeader,
    /// Headers a named endpoint adds (`headers:` in the configuration).
    pub(crate) extra_headers: Vec<(reqwest::header::HeaderName, HeaderValue)>,
    /// The endpoint's gate: the cap on requests in flight and the shared
    /// backoff.
    pub(crate) gate: std::sync::Arc<super::gate::EndpointGate>,
    pub(crate) redactor: Redactor,
}

impl HttpTransport {
    /// Every header of a request: content type, key, extras.
    pub(crate) fn request_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json"),
        );
        match self.key_header {
            KeyHeader::Bearer => {
                if let Some(key) = &self.key
                    && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.0))
                {
                    value.set_sensitive(true);
                    headers.insert(reqwest::header::AUTHORIZATION, value);
                }
            }
            KeyHeader::Anthropic => {
                if let Some(key) = &self.key
                    && let Ok(mut value) = HeaderValue::from_str(&key.0)
                {
                    value.set_sensitive(true);
                    headers.insert("x-api-key", value);
                }
                headers.insert(
                    "anthropic-version",
                    HeaderValue::from_static(super::anthropic::API_VERSION),
                );
            }
        }
        for (name, value) in &self.extra_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers
    }

    /// A slot of the endpoint's gate, held for one attempt.
    pub(crate) async fn permit(&self) -> super::gate::GatePermit {
        self.gate.enter().await
    }

    /// Sends `body`, waiting at most `idle` for the response headers.
    pub(crate) async fn send(
        &self,
        body: &Value,
        idle: Duration,
    ) -> Result<RawResponse, SendError> {
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let request = self
            .client
            .post(&self.url)
            .headers(self.request_headers())
            .body(payload)
            .send();
        let response = match tokio::time::timeout(idle, request).await {
            Err(_) => {
                return Err(SendError::Connect(format!(
                    "no response from {} within {} (idle timeout)",
                    self.url,
                    humantime::format_duration(idle)
                )));
            }
            Ok(Err(error)) => {
                return Err(SendError::Connect(self.redactor.redact(&format!(
                    "request to {} failed: {}",
                    self.url,
                    error_chain(&error)
                ))));
            }
            Ok(Ok(response)) => response,
        };
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let request_id = header("x-request-id").or_else(|| header("request-id"));
        let retry_after = header("retry-after-ms")
            .and_then(|ms| ms.parse::<f64>().ok())
            .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
            .or_else(|| header("retry-after").and_then(|v| parse_retry_after(&v)));
        let content_type = header("content-type");
        let status = response.status().as_u16();
        let redactor = self.redactor.clone();
        let body = response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| redactor.redact(&error_chain(&e))))
            .boxed();
        Ok(RawResponse {
            status,
            request_id,
            retry_after,
            content_type,
            body,
        })
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<f64>() {
        // Negative, NaN or absurdly large values are not a usable wait.
        return Duration::try_from_secs_f64(seconds).ok();
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let when = PARSER.parse_timestamp(value).ok()?;
    let wait = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// An error and its causes on one line: reqwest's top-level message alone
/// ("error sending request") does not say what went wrong.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Serves a cassette's exchanges in order.
#[derive(Debug)]
pub(crate) struct ReplayTransport {
    pub(crate) path: PathBuf,
    pub(crate) exchanges: Vec<Exchange>,
    pub(crate) next: Mutex<usize>,
}

impl ReplayTransport {
    /// The next recorded response, after checking that `body` is the request
    /// that was recorded.
    pub(crate) fn send(&self, body: &Value) -> Result<RawResponse, SendError> {
        let index = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let index = *next;
            *next += 1;
            index
        };
        let Some(exchange) = self.exchanges.get(index) else {
            return Err(SendError::Fatal(ProviderError::ReplayExhausted {
                cassette: self.path.clone(),
                exchange: index + 1,
                recorded: self.exchanges.len(),
            }));
        };
        if let Some(recorded) = &exchange.request
            && let Some((json_path, recorded, actual)) = first_difference(recorded, body)
        {
            return Err(SendError::Fatal(ProviderError::ReplayMismatch {
                cassette: self.path.clone(),
                exchange: index + 1,
                json_path,
                recorded,
                actual,
            }));
        }
        let bytes = Bytes::from(exchange.body.clone().into_bytes());
        Ok(RawResponse {
            status: exchange.status,
            request_id: None,
            retry_after: None,
            content_type: None,
            body: stream::iter([Ok::<Bytes, String>(bytes)]).boxed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1e300"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("soon"), None);
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .unwrap();
        let wait = parse_retry_after(&date).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn api_key_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", ApiKey("sk-secret".into())),
            "ApiKey([redacted])"
        );
    }
}

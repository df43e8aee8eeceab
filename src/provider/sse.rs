//! Server-sent events framing over a byte stream, with an idle timeout.
//!
//! The framing itself (UTF-8 split across chunks, CR/LF/CRLF line ends,
//! multi-line `data:`, comments, `event:` names) is eventsource-stream's;
//! this wrapper adds the idle timeout, keeps a copy of the raw bytes for
//! recording and error excerpts, and turns its errors into plain messages.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStream, EventStreamError, Eventsource};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` name; `message` when the server sent none.
    pub(crate) event: String,
    /// The `data:` lines joined with `\n`.
    pub(crate) data: String,
}

/// Why reading the stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseError {
    /// No byte arrived for this long.
    Idle(Duration),
    /// The connection failed (reset, closed mid-body, ...).
    Transport(String),
    /// The bytes are not UTF-8.
    Utf8,
    /// The bytes are not an event stream.
    Syntax(String),
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::Idle(after) => write!(
                f,
                "no data for {} (idle timeout)",
                humantime::format_duration(*after)
            ),
            SseError::Transport(message) => write!(f, "the connection failed: {message}"),
            SseError::Utf8 => f.write_str("the stream is not valid UTF-8"),
            SseError::Syntax(message) => {
                write!(f, "the stream is not a valid event stream: {message}")
            }
        }
    }
}

/// A body as the transports deliver it: chunks of bytes or a failure message.
pub(crate) type ByteStream = BoxStream<'static, Result<Bytes, String>>;

/// Byte chunks with an idle timeout, copying every byte into `raw`.
pub(crate) fn timed_bytes(
    body: ByteStream,
    idle: Duration,
    raw: Arc<Mutex<Vec<u8>>>,
) -> impl Stream<Item = Result<Bytes, SseError>> + Send + 'static {
    stream::unfold(Some(body), move |state| {
        let raw = raw.clone();
        async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => Some((Err(SseError::Idle(idle)), None)),
                Ok(None) => None,
                Ok(Some(Err(message))) => Some((Err(SseError::Transport(message)), None)),
                Ok(Some(Ok(bytes))) => {
                    raw.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&bytes);
                    Some((Ok(bytes), Some(body)))
                }
            }
        }
    })
}

type InnerEvents = EventStream<Pin<Box<dyn Stream<Item = Result<Bytes, SseError>> + Send>>>;

/// Events of one response body.
pub(crate) struct SseStream {
    inner: InnerEvents,
    raw: Arc<Mutex<Vec<u8>>>,
    failed: bool,
}

impl SseStream {
    /// Frames `body`, failing when no byte arrives for `idle`.
    pub(crate) fn new(body: ByteStream, idle: Duration) -> SseStream {
        let raw = Arc::new(Mutex::new(Vec::new()));
        let bytes: Pin<Box<dyn Stream<Item = Result<Bytes, SseError>> + Send>> =
            Box::pin(timed_bytes(body, idle, raw.clone()));
        SseStream {
            inner: bytes.eventsource(),
            raw,
            failed: false,
        }
    }

    /// The next event; `None` at the end of the body. After an error the
    /// stream is over.
    pub(crate) async fn next_event(&mut self) -> Option<Result<SseEvent, SseError>> {
        if self.failed {
            return None;
        }
        let item = self.inner.next().await?;
        match item {
            Ok(event) => Some(Ok(SseEvent {
                event: event.event,
                data: event.data,
            })),
            Err(error) => {
                self.failed = true;
                Some(Err(match error {
                    EventStreamError::Utf8(_) => SseError::Utf8,
                    EventStreamError::Parser(e) => SseError::Syntax(e.to_string()),
                    EventStreamError::Transport(e) => e,
                }))
            }
        }
    }

    /// Every byte read so far.
    pub(crate) fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> ByteStream {
        let items: Vec<Result<Bytes, String>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        stream::iter(items).boxed()
    }

    async fn collect(parts: &[&'static [u8]]) -> Vec<Result<SseEvent, SseError>> {
        let mut sse = SseStream::new(chunks(parts), Duration::from_secs(5));
        let mut out = Vec::new();
        while let Some(item) = sse.next_event().await {
            out.push(item);
        }
        out
    }

    fn event(name: &str, data: &str) -> Result<SseEvent, SseError> {
        Ok(SseEvent {
            event: name.into(),
            data: data.into(),
        })
    }

    #[tokio::test]
    async fn frames_split_utf8_crlf_comments_and_multiline_data() {
        // "é" is 0xC3 0xA9: split between two chunks; CRLF split too.
        let got = collect(&[
            b": keep-alive comment\r\n\r\nevent: greet\r\ndata: caf\xC3",
            b"\xA9\r",
            b"\n\r\ndata: line one\ndata: line two\n\n",
        ])
        .await;
        assert_eq!(
            got,
            vec![
                event("greet", "café"),
                event("message", "line one\nline two")
            ]
        );
    }

    #[tokio::test]
    async fn idle_timeout_fires() {
        let body: ByteStream = stream::pending().boxed();
        let mut sse = SseStream::new(body, Duration::from_millis(20));
        let started = std::time::Instant::now();
        let got = sse.next_event().await;
        assert_eq!(got, Some(Err(SseError::Idle(Duration::from_millis(20)))));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(sse.next_event().await, None);
    }

    #[tokio::test]
    async fn transport_error_ends_the_stream() {
        let items: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"data: a\n\n")),
            Err("connection reset".into()),
        ];
        let mut sse = SseStream::new(stream::iter(items).boxed(), Duration::from_secs(5));
        assert_eq!(sse.next_event().await, Some(event("message", "a")));
        assert_eq!(
            sse.next_event().await,
            Some(Err(SseError::Transport("connection reset".into())))
        );
        assert_eq!(sse.raw(), b"data: a\n\n");
    }
}

//! Shared test support: a real HTTP server over loopback that streams
//! scripted responses chunk by chunk (with controllable splits, delays,
//! stalls and connection resets) and captures every request.
//!
//! Use it from any integration test with `mod support;`:
//!
//! ```ignore
//! let server = support::TestServer::start(vec![support::Reply::sse(body)]).await;
//! // point OPENAI_BASE_URL at format!("{}/v1", server.url()) ...
//! let requests = server.requests();
//! ```
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use futures_util::stream;

/// One piece of a scripted response body.
#[derive(Debug, Clone)]
pub enum Part {
    /// Send these bytes as one chunk.
    Bytes(Bytes),
    /// Wait before the next part.
    Delay(Duration),
    /// Send nothing more and keep the connection open (until the client
    /// gives up).
    Stall,
    /// Abort the connection mid-body.
    Reset,
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body, part by part.
    pub parts: Vec<Part>,
    /// Wait this long before sending the status line and headers.
    pub head_delay: Duration,
}

impl Reply {
    /// A 200 `text/event-stream` response sending `body` as one chunk.
    pub fn sse(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            parts: vec![Part::Bytes(body.into())],
            head_delay: Duration::ZERO,
        }
    }

    /// A 200 `text/event-stream` response sending `body` in chunks cut at
    /// the given byte offsets, with `delay` between chunks so the client
    /// really receives them separately.
    pub fn sse_split(body: &[u8], cuts: &[usize], delay: Duration) -> Reply {
        let mut parts = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            let cut = cut.min(body.len());
            if cut > start {
                if !parts.is_empty() {
                    parts.push(Part::Delay(delay));
                }
                parts.push(Part::Bytes(Bytes::copy_from_slice(&body[start..cut])));
                start = cut;
            }
        }
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            parts,
            head_delay: Duration::ZERO,
        }
    }

    /// A 200 `text/event-stream` response sending `body` in chunks of
    /// `size` bytes, `delay` apart.
    pub fn sse_every(body: &[u8], size: usize, delay: Duration) -> Reply {
        let cuts: Vec<usize> = (1..body.len().div_ceil(size.max(1)))
            .map(|n| n * size.max(1))
            .collect();
        Reply::sse_split(body, &cuts, delay)
    }

    /// A response with this status, content type and body.
    pub fn status(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            parts: vec![Part::Bytes(body.into())],
            head_delay: Duration::ZERO,
        }
    }

    /// A JSON error response.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::status(status, "application/json", body.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Delays the status line and headers.
    pub fn delay_head(mut self, delay: Duration) -> Reply {
        self.head_delay = delay;
        self
    }

    /// Appends a part.
    pub fn then(mut self, part: Part) -> Reply {
        self.parts.push(part);
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl CapturedRequest {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<CapturedRequest>>,
}

/// A streaming HTTP server on 127.0.0.1 that answers requests with scripted
/// replies, in order. When the script runs out it answers 599 with a body
/// saying so.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server with these replies queued.
    pub async fn start(replies: Vec<Reply>) -> TestServer {
        let shared = Arc::new(Shared::default());
        shared.replies.lock().unwrap().extend(replies);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestServer { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues another reply.
    pub fn push(&self, reply: Reply) {
        self.shared.replies.lock().unwrap().push_back(reply);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.lock().unwrap().push(CapturedRequest {
        method: method.to_string(),
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    });
    let reply = shared
        .replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::status(599, "text/plain", "test server: no scripted reply left"));
    tokio::time::sleep(reply.head_delay).await;
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let parts: VecDeque<Part> = reply.parts.into();
    let body = stream::unfold(parts, |mut parts| async move {
        loop {
            match parts.pop_front()? {
                Part::Bytes(bytes) => return Some((Ok::<Bytes, std::io::Error>(bytes), parts)),
                Part::Delay(delay) => tokio::time::sleep(delay).await,
                Part::Stall => std::future::pending::<()>().await,
                Part::Reset => {
                    return Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "scripted reset",
                        )),
                        VecDeque::new(),
                    ));
                }
            }
        }
    });
    builder.body(Body::from_stream(body)).unwrap()
}

/// A loopback URL where nothing listens (connections are refused).
pub fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Path of a fixture under `tests/fixtures/`.
pub fn fixture_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

/// The bytes of a fixture under `tests/fixtures/`.
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = fixture_path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub mod turns;

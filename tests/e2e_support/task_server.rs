//! A loopback OpenAI-wire server that plays the model of any number of
//! [`super::fix_and_approve`] tasks at once: each reply is chosen from the
//! request itself (the stage's tools tell the stage; a tool result in the
//! code stage means the fix is done), so concurrent tasks need no shared
//! script. It counts the requests in flight and can add latency to every
//! turn or refuse with 429 when too many are in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kkrun::provider::script::{ScriptedTurn, encode_openai_sse};
use serde_json::Value;

/// How the server behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerOptions {
    /// Added to every model turn before the reply.
    pub latency: Duration,
    /// Answer 429 with `Retry-After: 1` to a request that would make more
    /// than this many in flight.
    pub max_in_flight: Option<usize>,
}

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    served: AtomicUsize,
    refused: AtomicUsize,
    /// The stage of every request served, in arrival order.
    stages: Mutex<Vec<&'static str>>,
}

struct Shared {
    options: ServerOptions,
    counters: Counters,
}

/// The running server; it stops when dropped.
pub struct TaskServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TaskServer {
    /// Starts the server on its own thread and runtime.
    pub fn start(options: ServerOptions) -> TaskServer {
        let shared = Arc::new(Shared {
            options,
            counters: Counters::default(),
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().fallback(handle).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await;
            });
        });
        TaskServer {
            addr: addr_rx.recv().unwrap(),
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The base URL for `OPENAI_BASE_URL`: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The most requests that were ever in flight at once (refused ones
    /// not counted).
    pub fn max_in_flight(&self) -> usize {
        self.shared.counters.max_in_flight.load(Ordering::SeqCst)
    }

    /// How many requests were answered with a model turn.
    pub fn served(&self) -> usize {
        self.shared.counters.served.load(Ordering::SeqCst)
    }

    /// How many requests were refused with 429.
    pub fn refused(&self) -> usize {
        self.shared.counters.refused.load(Ordering::SeqCst)
    }

    /// The stage of every request served, in arrival order.
    pub fn stages(&self) -> Vec<&'static str> {
        self.shared.counters.stages.lock().unwrap().clone()
    }
}

impl Drop for TaskServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Decrements the in-flight count however the handler ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let counters = &shared.counters;
    let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _in_flight = InFlight(&counters.in_flight);
    if shared.options.max_in_flight.is_some_and(|k| now > k) {
        counters.refused.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after", "1")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"error":{"message":"too many requests in flight","type":"rate_limit"}}"#,
            ))
            .unwrap();
    }
    counters.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (stage, turn) = reply_for(&request);
    counters.stages.lock().unwrap().push(stage);
    tokio::time::sleep(shared.options.latency).await;
    counters.served.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(Body::from(encode_openai_sse(&turn)))
        .unwrap()
}

/// The stage a request belongs to and the turn that moves a
/// `fix_and_approve` task on from there.
fn reply_for(request: &Value) -> (&'static str, ScriptedTurn) {
    let tools: Vec<&str> = request["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    let has_tool_result = request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["role"] == "tool");
    if tools.contains(&"submit_plan") {
        ("blueprint", super::plan())
    } else if tools.contains(&"submit_review") {
        ("preview", super::review("approve"))
    } else if tools.contains(&"return_to_code") {
        ("debug", super::finish("debug"))
    } else if has_tool_result {
        ("code", super::finish("code"))
    } else {
        ("code", super::fix_add())
    }
}

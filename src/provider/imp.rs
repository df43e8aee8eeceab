//! The provider: model spec parsing, the turn with its retry policy,
//! recording.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::cassette::{Cassette, Exchange, McpRecorder, Recorder};
use super::error::ProviderError;
use super::options::ProviderOptions;
use super::pricing::builtin_price;
use super::redact::{Redactor, TextScrubber};
use super::sse::{SseError, SseStream};
use super::transport::{ApiKey, HttpTransport, KeyHeader, RawResponse, ReplayTransport, SendError};
use super::types::{TurnRequest, TurnResponse, Usage};
use super::wire::{
    Dialect, Flow, StreamFault, WireFormat, mentions_context_too_long,
    mentions_streaming_unsupported,
};
use crate::events::{EventKind, EventSink};

/// Default OpenAI-compatible endpoint.
pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default Anthropic endpoint.
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// Error bodies are read up to this size; only an excerpt is kept.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Non-streamed responses are read up to this size.
const COMPLETE_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The environment variables of one live provider.
struct EnvVars {
    key: &'static str,
    base_url: &'static str,
    default_base_url: &'static str,
}

fn env_vars(wire: WireFormat) -> EnvVars {
    match wire {
        WireFormat::OpenAi => EnvVars {
            key: "OPENAI_API_KEY",
            base_url: "OPENAI_BASE_URL",
            default_base_url: OPENAI_DEFAULT_BASE_URL,
        },
        WireFormat::Anthropic => EnvVars {
            key: "ANTHROPIC_API_KEY",
            base_url: "ANTHROPIC_BASE_URL",
            default_base_url: ANTHROPIC_DEFAULT_BASE_URL,
        },
    }
}

#[derive(Debug)]
enum Backend {
    Http(HttpTransport),
    Replay(ReplayTransport),
}

/// A configured model endpoint that runs one turn at a time.
///
/// `Debug` shows no API key.
#[derive(Debug)]
pub struct Provider {
    model_spec: String,
    model: String,
    wire: WireFormat,
    dialect: Dialect,
    backend: Backend,
    options: ProviderOptions,
    redactor: Redactor,
    recorder: Option<Arc<Recorder>>,
    /// For `replay:`, the cassette's MCP records.
    replayed_mcp: Option<Vec<Value>>,
}

/// How a failed attempt may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryClass {
    /// Retrying cannot help.
    Never,
    /// Failed before any event arrived: retried within the attempt budget.
    BeforeContent,
    /// Broke after content arrived: the whole turn is retried once.
    AfterContent,
    /// The server cannot stream this request: one non-streaming retry.
    StreamingRefused,
}

struct Failure {
    error: Box<ProviderError>,
    class: RetryClass,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(error: ProviderError, class: RetryClass) -> Failure {
        Failure {
            error: Box::new(error),
            class,
            retry_after: None,
        }
    }
}

/// How far a streamed response got before it failed.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// At least one event arrived.
    saw_event: bool,
    /// Text or a tool-call fragment arrived.
    content: bool,
}

impl Progress {
    fn retry_class(self) -> RetryClass {
        if self.content {
            RetryClass::AfterContent
        } else {
            RetryClass::BeforeContent
        }
    }
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when another provider is already installed, which is
        // just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Provider {
    /// Builds a provider from a model spec: `openai:<model>`,
    /// `anthropic:<model>` or `replay:<cassette.jsonl>` (relative paths
    /// resolve against [`ProviderOptions::base_dir`]).
    pub fn from_model_spec(
        spec: &str,
        options: &ProviderOptions,
    ) -> Result<Provider, ProviderError> {
        let invalid = |reason: String| ProviderError::InvalidModelSpec {
            spec: spec.to_string(),
            reason,
        };
        let (prefix, rest) = spec
            .split_once(':')
            .ok_or_else(|| invalid("it has no `provider:` prefix".to_string()))?;
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(invalid(format!("no model after `{prefix}:`")));
        }
        let mut replay_dialect = Dialect::default();
        let mut replayed_mcp = None;
        let (wire, model, backend) = match prefix {
            "replay" => {
                let path = resolve(&options.base_dir, rest);
                let text = std::fs::read_to_string(&path).map_err(|source| {
                    ProviderError::CassetteUnreadable {
                        path: path.clone(),
                        source,
                    }
                })?;
                let cassette =
                    Cassette::parse(&text).map_err(|source| ProviderError::CassetteInvalid {
                        path: path.clone(),
                        source,
                    })?;
                // Requests recorded against api.openai.com name the output
                // limit `max_completion_tokens`; replay must build the same.
                let max_completion_tokens = cassette
                    .exchanges
                    .iter()
                    .filter_map(|e| e.request.as_ref())
                    .any(|r| r.get("max_completion_tokens").is_some());
                replay_dialect = Dialect {
                    max_completion_tokens,
                };
                replayed_mcp = Some(cassette.mcp);
                let backend = Backend::Replay(ReplayTransport {
                    path,
                    exchanges: cassette.exchanges,
                    next: Mutex::new(0),
                });
                (cassette.provider, cassette.model, backend)
            }
            name => {
                let wire = WireFormat::from_name(name).ok_or_else(|| {
                    invalid(format!(
                        "unknown provider `{name}`; valid providers: openai, anthropic, replay"
                    ))
                })?;
                let backend = Backend::Http(http_transport(wire, options)?);
                (wire, rest.to_string(), backend)
            }
        };
        let dialect = match &backend {
            Backend::Http(http) => Dialect {
                max_completion_tokens: wire == WireFormat::OpenAi
                    && http.url.starts_with(OPENAI_DEFAULT_BASE_URL),
            },
            Backend::Replay(_) => replay_dialect,
        };
        let redactor = match &backend {
            Backend::Http(http) => http.redactor.clone(),
            Backend::Replay(_) => Redactor::default(),
        };
        // Replaying records nothing (and must not truncate a cassette that
        // may be the very file being replayed).
        let recorder = match (&options.record, &backend) {
            (Some(path), Backend::Http(_)) => {
                Some(Arc::new(Recorder::create(path, wire, &model).map_err(
                    |source| ProviderError::RecordFailed {
                        path: path.clone(),
                        source,
                    },
                )?))
            }
            _ => None,
        };
        Ok(Provider {
            model_spec: spec.to_string(),
            model,
            wire,
            dialect,
            backend,
            options: options.clone(),
            redactor,
            recorder,
            replayed_mcp,
        })
    }

    /// Where the task's MCP servers record what they listed and returned:
    /// the `--record` cassette, when recording.
    pub fn mcp_recorder(&self) -> Option<McpRecorder> {
        self.recorder.clone().map(McpRecorder::new)
    }

    /// For `replay:`, the cassette's MCP records (perhaps none): the task's
    /// MCP servers are then replayed from them instead of being started.
    pub fn replayed_mcp(&self) -> Option<&[Value]> {
        self.replayed_mcp.as_deref()
    }

    /// The spec this provider was built from.
    pub fn model_spec(&self) -> &str {
        &self.model_spec
    }

    /// The model name to put in [`TurnRequest::model`] (for `replay:`, the
    /// model recorded in the cassette).
    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// The wire format: for `replay:`, the recorded provider's.
    pub fn wire_format(&self) -> WireFormat {
        self.wire
    }

    /// Cost in USD of `usage` on this provider's model: the price from
    /// [`ProviderOptions::price`], else from the built-in table; `None` when
    /// the price is unknown. A replayed cassette reports what the recorded
    /// model would have cost, so budgets behave as in the recorded run.
    pub fn cost_usd(&self, usage: &Usage) -> Option<f64> {
        self.options
            .price
            .or_else(|| builtin_price(self.wire, &self.model))
            .map(|price| price.cost_usd(usage))
    }

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

    /// The response with this provider's key removed from text and
    /// arguments.
    fn scrub(&self, mut response: TurnResponse) -> TurnResponse {
        response.text = self.redactor.redact_known(&response.text);
        for call in &mut response.tool_calls {
            call.arguments = self.redactor.redact_known(&call.arguments);
        }
        response
    }

    async fn send(&self, body: &Value) -> Result<RawResponse, SendError> {
        match &self.backend {
            Backend::Http(http) => http.send(body, self.options.idle_timeout).await,
            Backend::Replay(replay) => replay.send(body),
        }
    }

    fn stream_error(&self, message: String, request_id: Option<String>) -> ProviderError {
        ProviderError::Stream {
            provider: self.wire.name(),
            message: self.redactor.redact(&message),
            request_id,
        }
    }

    /// One request and its response.
    async fn attempt(
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

    /// A decoding problem as a failure.
    fn fault_failure(
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
    fn http_failure(
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

    /// Appends a completed live exchange to the `--record` cassette.
    fn record(&self, request: &Value, status: u16, body: &[u8]) -> Result<(), Failure> {
        let Some(recorder) = &self.recorder else {
            return Ok(());
        };
        // Only the key itself is removed: anything else must replay exactly
        // as it was received.
        let exchange = Exchange {
            request: Some(self.redactor.redact_known_json(request)),
            status,
            body: self.redactor.redact_known(&String::from_utf8_lossy(body)),
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

/// Builds the HTTP transport of a live provider from its environment.
fn http_transport(
    wire: WireFormat,
    options: &ProviderOptions,
) -> Result<HttpTransport, ProviderError> {
    let provider = wire.name();
    let vars = env_vars(wire);
    let base_url = options
        .env
        .get(vars.base_url)
        .unwrap_or_else(|| vars.default_base_url.to_string());
    let base_url = base_url.trim().trim_end_matches('/').to_string();
    let parsed = reqwest::Url::parse(&base_url).map_err(|e| ProviderError::Config {
        provider,
        message: format!(
            "{} is not a valid URL ({e}) (hint: for example {})",
            vars.base_url, vars.default_base_url
        ),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ProviderError::Config {
            provider,
            message: format!(
                "{} must be an http:// or https:// URL, not {}:// (hint: for example {})",
                vars.base_url,
                parsed.scheme(),
                vars.default_base_url
            ),
        });
    }
    let key = options
        .env
        .get(vars.key)
        .map(|k| ApiKey(k.trim().to_string()));
    // Local servers (vLLM, llama.cpp, Ollama) need no key; the default
    // endpoints always do.
    if key.is_none() && base_url == vars.default_base_url {
        return Err(ProviderError::MissingApiKey {
            provider,
            var: vars.key,
            base_url_var: vars.base_url,
        });
    }
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .user_agent(concat!("kkrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Config {
            provider,
            message: format!("cannot set up the HTTP client: {e}"),
        })?;
    let (url, key_header) = match wire {
        WireFormat::OpenAi => (format!("{base_url}/chat/completions"), KeyHeader::Bearer),
        WireFormat::Anthropic => (format!("{base_url}/v1/messages"), KeyHeader::Anthropic),
    };
    let redactor = Redactor::new(key.iter().map(|k| k.0.clone()));
    Ok(HttpTransport {
        client,
        url,
        key,
        key_header,
        redactor,
    })
}

fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Reads a whole body (up to `limit` bytes); the second value is the error
/// that cut it short, if any.
async fn read_body(
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

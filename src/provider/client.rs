//! The [`Provider`] type: built from a model spec, with its backend (a live
//! HTTP endpoint or a replayed cassette), its redactor and its recorder.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::cassette::{Cassette, McpRecorder, Recorder};
use super::endpoint::{OPENAI_DEFAULT_BASE_URL, http_transport};
use super::error::ProviderError;
use super::named::named_transport;
use super::options::ProviderOptions;
use super::pricing::builtin_price;
use super::redact::Redactor;
use super::transport::{HttpTransport, RawResponse, ReplayTransport, SendError};
use super::types::{TurnResponse, Usage};
use super::wire::{Dialect, WireFormat};

/// Where requests go: a live HTTP endpoint or a replayed cassette.
#[derive(Debug)]
pub(super) enum Backend {
    Http(HttpTransport),
    Replay(ReplayTransport),
}

/// A configured model endpoint that runs one turn at a time.
///
/// `Debug` shows no API key.
#[derive(Debug)]
pub struct Provider {
    pub(super) model_spec: String,
    pub(super) model: String,
    pub(super) wire: WireFormat,
    pub(super) dialect: Dialect,
    pub(super) backend: Backend,
    pub(super) options: ProviderOptions,
    pub(super) redactor: Redactor,
    /// The provider's key and the run's secrets: what a cassette must not hold.
    pub(super) recording: Redactor,
    pub(super) recorder: Option<Arc<Recorder>>,
    /// Set once a turn came back without usage and was estimated.
    pub(super) estimated_usage: AtomicBool,
    /// For `replay:`, the cassette's MCP records.
    pub(super) replayed_mcp: Option<Vec<Value>>,
}

impl Provider {
    /// Builds a provider from a model spec: `openai:<model>`,
    /// `openai-responses:<model>`, `anthropic:<model>` or `replay:<cassette.jsonl>` (relative paths
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
                let (wire, transport) = match options.endpoint.as_ref().filter(|e| e.name == name) {
                    Some(endpoint) => {
                        let wire = endpoint.wire()?;
                        (wire, named_transport(endpoint, wire, options)?)
                    }
                    None => {
                        let wire = WireFormat::from_name(name).ok_or_else(|| {
                            invalid(format!(
                                "unknown provider `{name}`; valid providers: openai, openai-responses, anthropic, \
                                 replay, or a name from `providers:` in kkrun.yaml"
                            ))
                        })?;
                        (wire, http_transport(wire, options)?)
                    }
                };
                (wire, rest.to_string(), Backend::Http(transport))
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
        let recording = redactor.joined(&options.redactor);
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
            recording,
            recorder,
            estimated_usage: AtomicBool::new(false),
            replayed_mcp,
        })
    }

    /// The provider's own secrets (its API key), for the run's redaction.
    pub fn secrets(&self) -> &crate::redact::Redactor {
        self.redactor.known()
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

    /// For `replay:`, serves the cassette from exchange `position` (0-based)
    /// on: the completed steps of a resumed task used the ones before, so
    /// the resumed run asks what the recorded run asked next. A live
    /// endpoint is not affected.
    pub fn resume_replay_at(&self, position: usize) {
        if let Backend::Replay(replay) = &self.backend {
            *replay.next.lock().unwrap_or_else(|e| e.into_inner()) = position;
        }
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

    /// The response with this provider's key removed from text and
    /// arguments.
    pub(super) fn scrub(&self, mut response: TurnResponse) -> TurnResponse {
        response.text = self.redactor.redact_known(&response.text);
        for call in &mut response.tool_calls {
            call.arguments = self.redactor.redact_known(&call.arguments);
        }
        response
    }

    /// A slot of the endpoint's gate; `None` offline.
    pub(super) async fn permit(&self) -> Option<super::gate::GatePermit> {
        match &self.backend {
            Backend::Http(http) => Some(http.permit().await),
            Backend::Replay(_) => None,
        }
    }

    pub(super) async fn send(&self, body: &Value) -> Result<RawResponse, SendError> {
        match &self.backend {
            Backend::Http(http) => http.send(body, self.options.idle_timeout).await,
            Backend::Replay(replay) => replay.send(body),
        }
    }
}

fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

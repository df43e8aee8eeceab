//! Model providers: OpenAI-compatible chat completions, the OpenAI
//! Responses API, the Anthropic Messages API, and offline record/replay, behind one [`Provider`] type.
//!
//! Every turn streams. Wire formats stay inside their modules (`openai`,
//! `responses`, `anthropic`); the agent only sees the neutral types of [`types`](self).
//! The failure policy (timeouts, retries, `Retry-After`, the non-streaming
//! fallback, redaction) lives in [`Provider::turn`]; `docs/providers.md`
//! documents it for users.
//!
//! `client` builds a [`Provider`] from a model spec, `endpoint` sets up a
//! live endpoint from the environment, `turn` retries attempts under the
//! policy, `attempt` sends one request and reads its response, and
//! `failure` classifies what went wrong.

mod anthropic;
mod attempt;
mod cassette;
mod cassette_redact;
mod client;
mod endpoint;
mod error;
mod failure;
mod gate;
mod named;
mod openai;
mod options;
mod preflight;
pub mod pricing;
pub(crate) mod redact;
mod responses;
#[cfg(feature = "scripting")]
pub mod script;
mod sse;
mod transport;
mod turn;
mod types;
mod wire;

pub use cassette::{CASSETTE_VERSION, Cassette, CassetteError, Exchange, McpRecorder};
pub use client::Provider;
pub use endpoint::{ANTHROPIC_DEFAULT_BASE_URL, OPENAI_DEFAULT_BASE_URL};
pub use error::ProviderError;
pub use gate::{DEFAULT_MAX_REQUESTS, EndpointGate, GatePermit, Gates};
pub use named::{Api, Endpoint};
pub use options::{ProviderEnv, ProviderOptions, RetryPolicy};
pub use pricing::ModelPrice;
pub use redact::redact_credentials;
pub use types::{Message, StopReason, ToolCall, ToolSpec, TurnRequest, TurnResponse, Usage};
pub use wire::WireFormat;

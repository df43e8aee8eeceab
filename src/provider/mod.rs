//! Model providers: OpenAI-compatible chat completions, the Anthropic
//! Messages API, and offline record/replay, behind one [`Provider`] type.
//!
//! Every turn streams. Wire formats stay inside their modules (`openai`,
//! `anthropic`); the agent only sees the neutral types of [`types`](self).
//! The failure policy (timeouts, retries, `Retry-After`, the non-streaming
//! fallback, redaction) lives in [`Provider::turn`]; `docs/providers.md`
//! documents it for users.

mod anthropic;
mod cassette;
mod error;
mod imp;
mod openai;
mod options;
pub mod pricing;
mod redact;
pub mod script;
mod sse;
mod transport;
mod types;
mod wire;

pub use cassette::{CASSETTE_VERSION, Cassette, CassetteError, Exchange};
pub use error::ProviderError;
pub use imp::{ANTHROPIC_DEFAULT_BASE_URL, OPENAI_DEFAULT_BASE_URL, Provider};
pub use options::{ProviderEnv, ProviderOptions, RetryPolicy};
pub use pricing::ModelPrice;
pub use redact::redact_credentials;
pub use types::{Message, StopReason, ToolCall, ToolSpec, TurnRequest, TurnResponse, Usage};
pub use wire::WireFormat;

//! The configuration file as written (`kkrun.yaml`, and the user's
//! `config.yaml`): every key optional, every value with its source
//! location. The walker in `parse::config` builds these; `merge` joins the
//! files key by key. The JSON Schema (`kkrun schema config`) is derived from
//! these types, so their doc comments are what editors show.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_saphyr::Spanned;

use crate::provider::Api;
use crate::task::raw::{DurationText, FormatVersion, PricingSettings, TaskSettings};

/// A kkrun configuration file (version 1): named model providers, prices
/// and defaults for every task.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "kkrun configuration file")]
pub(crate) struct ConfigFile {
    /// Configuration file format version; always 1.
    #[schemars(with = "FormatVersion")]
    #[allow(
        dead_code,
        reason = "the walker checks it; the field is here for the schema"
    )]
    pub(crate) version: Option<Spanned<u32>>,
    /// Named endpoints: a model spec `NAME:MODEL` uses the one called NAME.
    /// Names are lowercase letters, digits and `-`; `openai`, `anthropic`
    /// and `replay` are built in and cannot be redefined.
    #[schemars(with = "Option<BTreeMap<String, ProviderSettings>>")]
    pub(crate) providers: Option<Vec<(Spanned<String>, ProviderSettings)>>,
    /// Prices by model spec (`openai:gpt-4.1`, `NAME:MODEL`), in USD per
    /// million tokens, replacing the built-in table. A task's own `pricing`
    /// still wins.
    #[schemars(with = "Option<BTreeMap<String, PricingSettings>>")]
    pub(crate) pricing: Option<Vec<(Spanned<String>, PricingSettings)>>,
    /// Any task-file key, as the default for every task. A task file's own
    /// `defaults:` and the task's keys win; the maps `stages`, `budget`,
    /// `tools.shell`, `env` and `mcp` merge key by key. Relative paths
    /// (`workspace`, `replay:` cassettes) are relative to this file.
    pub(crate) defaults: Option<TaskSettings>,
}

/// One named endpoint.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderSettings {
    /// The API the endpoint speaks (required): `openai-chat` (chat
    /// completions), `openai-responses` (the Responses API) or `anthropic`
    /// (the Messages API).
    #[schemars(with = "Option<ApiName>")]
    pub(crate) api: Option<Spanned<Api>>,
    /// Base URL (required), without the API's path: requests go to
    /// `{base_url}/chat/completions`, `{base_url}/responses` or
    /// `{base_url}/v1/messages`.
    #[schemars(with = "Option<String>", regex(pattern = r"^https?://\S+$"))]
    pub(crate) base_url: Option<Spanned<String>>,
    /// The NAME of the environment variable holding the API key, sent as
    /// `Authorization: Bearer` (`x-api-key` for `anthropic`). Never the key
    /// itself: a key in the file is an error. Without it no key is sent.
    #[schemars(with = "Option<String>", regex(pattern = "^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub(crate) api_key_env: Option<Spanned<String>>,
    /// Extra headers sent with every request; `${NAME}` in a value takes a
    /// variable of kkrun's environment (such values are secrets, redacted
    /// everywhere). A credential header (`Authorization`, `api-key`,
    /// `x-api-key`) must take its value from a variable.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub(crate) headers: Option<BTreeMap<String, String>>,
    /// Query parameters added to every request, such as Azure's
    /// `api-version`.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub(crate) query: Option<BTreeMap<String, String>>,
    /// At most this many requests to this endpoint in flight at once, across
    /// every task of the run (default: no limit).
    #[schemars(with = "Option<u32>", range(min = 1, max = 1024))]
    pub(crate) max_concurrent_requests: Option<Spanned<u32>>,
    /// Prices of this endpoint's models by model name, in USD per million
    /// tokens.
    #[schemars(with = "Option<BTreeMap<String, PricingSettings>>")]
    pub(crate) pricing: Option<Vec<(Spanned<String>, PricingSettings)>>,
    /// Context window in tokens of this endpoint's models (default: by
    /// model name); a task's `context_window` wins.
    #[schemars(with = "Option<u64>", range(min = 1024))]
    pub(crate) context_window: Option<Spanned<u64>>,
    /// No byte for this long on an open stream fails the attempt (default
    /// `2m`).
    #[schemars(with = "Option<DurationText>")]
    pub(crate) idle_timeout: Option<Spanned<Duration>>,
    /// One request, its whole streamed response included, may take this
    /// long (default `10m`).
    #[schemars(with = "Option<DurationText>")]
    pub(crate) request_timeout: Option<Spanned<Duration>>,
    /// Whether the walker reported a problem in this provider: its name
    /// still counts as declared, so tasks naming it get no second error.
    #[schemars(skip)]
    pub(crate) faulty: bool,
}

/// Schema of `api:`.
pub(crate) struct ApiName;

impl JsonSchema for ApiName {
    fn schema_name() -> Cow<'static, str> {
        "Api".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The API an endpoint speaks.",
            "enum": Api::NAMES
        })
    }
}

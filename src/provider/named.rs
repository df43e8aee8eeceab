//! Named endpoints from the configuration file (`providers:` in
//! `kkrun.yaml`): which API one speaks, where it is, how it authenticates.
//!
//! The built-in `openai:` and `anthropic:` providers read their URL and key
//! from fixed environment variables (`endpoint`); a named endpoint carries
//! its own URL, the *name* of its key's variable, extra headers (whose
//! values may name variables as `${NAME}`) and query parameters (Azure's
//! `api-version`).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::endpoint::install_crypto_provider;
use super::error::ProviderError;
use super::options::ProviderOptions;
use super::redact::Redactor;
use super::transport::{ApiKey, HttpTransport, KeyHeader};
use super::wire::WireFormat;

/// The API a named endpoint speaks (`api:` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI-compatible chat completions (`POST {base_url}/chat/completions`).
    OpenAiChat,
    /// The OpenAI Responses API (`POST {base_url}/responses`).
    OpenAiResponses,
    /// The Anthropic Messages API (`POST {base_url}/v1/messages`).
    Anthropic,
}

impl Api {
    /// Every value `api:` takes, as written in the configuration.
    pub const NAMES: &'static [&'static str] = &["openai-chat", "openai-responses", "anthropic"];

    /// The value as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAiChat => "openai-chat",
            Api::OpenAiResponses => "openai-responses",
            Api::Anthropic => "anthropic",
        }
    }

    /// Parses a value of `api:`.
    pub fn from_name(name: &str) -> Option<Api> {
        match name {
            "openai-chat" => Some(Api::OpenAiChat),
            "openai-responses" => Some(Api::OpenAiResponses),
            "anthropic" => Some(Api::Anthropic),
            _ => None,
        }
    }
}

/// One named endpoint, as the configuration declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The name a model spec uses: `NAME:MODEL`.
    pub name: String,
    /// The API it speaks.
    pub api: Api,
    /// Base URL without the API's path (`https://openrouter.ai/api/v1`).
    pub base_url: String,
    /// The environment variable holding the key; `None` sends no key (local
    /// servers), and the key may then travel in `headers`.
    pub api_key_env: Option<String>,
    /// Extra request headers; `${NAME}` in a value is the variable's value.
    pub headers: BTreeMap<String, String>,
    /// Query parameters added to every request URL (`api-version`).
    pub query: BTreeMap<String, String>,
    /// At most this many requests of the run in flight at once.
    pub max_concurrent_requests: Option<u32>,
    /// Replaces the run's idle-stream timeout for this endpoint.
    pub idle_timeout: Option<Duration>,
    /// Replaces the run's per-request timeout for this endpoint.
    pub request_timeout: Option<Duration>,
}

impl Endpoint {
    /// The wire format of this endpoint's API. Each API is one arm here, so
    /// a new one is added in one place.
    pub(super) fn wire(&self) -> Result<WireFormat, ProviderError> {
        match self.api {
            Api::OpenAiChat => Ok(WireFormat::OpenAi),
            Api::Anthropic => Ok(WireFormat::Anthropic),
            Api::OpenAiResponses => Ok(WireFormat::OpenAiResponses),
        }
    }

    /// Where requests go: the base URL, the API's path and the query.
    pub(super) fn request_url(&self, wire: WireFormat) -> Result<String, ProviderError> {
        let base = self.base_url.trim().trim_end_matches('/');
        let path = match wire {
            WireFormat::OpenAi => "/chat/completions",
            WireFormat::Anthropic => "/v1/messages",
            WireFormat::OpenAiResponses => "/responses",
        };
        self.url_with_query(&format!("{base}{path}"))
    }

    /// `url` with this endpoint's query parameters appended.
    pub(super) fn url_with_query(&self, url: &str) -> Result<String, ProviderError> {
        let mut parsed = reqwest::Url::parse(url).map_err(|e| self.config_error(format!(
            "`base_url` does not make a valid URL ({e}) (hint: for example https://api.example.com/v1)"
        )))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(self.config_error(format!(
                "`base_url` must be an http:// or https:// URL, not {}://",
                parsed.scheme()
            )));
        }
        if !self.query.is_empty() {
            let mut pairs = parsed.query_pairs_mut();
            for (name, value) in &self.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(parsed.to_string())
    }

    fn config_error(&self, message: String) -> ProviderError {
        ProviderError::Config {
            provider: "config",
            message: format!("provider `{}`: {message}", self.name),
        }
    }

    /// The key and the extra headers, read from `options.env`. Returns the
    /// key, the headers and the values that came from variables (secrets).
    #[allow(clippy::type_complexity)]
    pub(super) fn credentials(
        &self,
        options: &ProviderOptions,
    ) -> Result<(Option<ApiKey>, Vec<(HeaderName, HeaderValue)>, Vec<String>), ProviderError> {
        let mut secrets = Vec::new();
        let key = match &self.api_key_env {
            Some(var) => {
                let Some(key) = options.env.get(var) else {
                    return Err(self.config_error(format!(
                        "the environment variable {var} (`api_key_env`) is not set \
                         (hint: export {var}, or remove `api_key_env` for a server that needs no key)"
                    )));
                };
                let key = key.trim().to_string();
                secrets.push(key.clone());
                Some(ApiKey(key))
            }
            None => None,
        };
        let mut headers = Vec::new();
        for (name, template) in &self.headers {
            let (value, from_env) = crate::mcp::expand(template, |var| options.env.get(var))
                .map_err(|e| self.config_error(format!("header `{name}`: {e}")))?;
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| self.config_error(format!("header `{name}`: {e}")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                self.config_error(format!(
                    "header `{name}`: the value is not valid in an HTTP header"
                ))
            })?;
            if !from_env.is_empty() {
                value.set_sensitive(true);
            }
            secrets.extend(from_env);
            headers.push((header, value));
        }
        Ok((key, headers, secrets))
    }
}

/// Builds the HTTP transport of a named endpoint.
pub(super) fn named_transport(
    endpoint: &Endpoint,
    wire: WireFormat,
    options: &ProviderOptions,
) -> Result<HttpTransport, ProviderError> {
    let url = endpoint.request_url(wire)?;
    let (key, extra_headers, secrets) = endpoint.credentials(options)?;
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .user_agent(concat!("kkrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| endpoint.config_error(format!("cannot set up the HTTP client: {e}")))?;
    let key_header = match wire {
        WireFormat::OpenAi | WireFormat::OpenAiResponses => KeyHeader::Bearer,
        WireFormat::Anthropic => KeyHeader::Anthropic,
    };
    // The endpoint's own `max_concurrent_requests` is more specific than
    // `--max-requests`, so it wins.
    let limit = endpoint
        .max_concurrent_requests
        .map_or(options.max_requests, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    Ok(HttpTransport {
        gate: options.gates.gate(wire.name(), &url, limit),
        client,
        url,
        key,
        key_header,
        extra_headers,
        redactor: Redactor::new(secrets),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderEnv;

    fn azure() -> Endpoint {
        Endpoint {
            name: "azure".into(),
            api: Api::OpenAiChat,
            base_url: "https://res.openai.azure.com/openai/deployments/gpt-4o/".into(),
            api_key_env: None,
            headers: BTreeMap::from([("api-key".into(), "${AZURE_KEY}".into())]),
            query: BTreeMap::from([("api-version".into(), "2024-10-21".into())]),
            max_concurrent_requests: Some(2),
            idle_timeout: None,
            request_timeout: None,
        }
    }

    #[test]
    fn urls_take_the_api_path_and_the_query() {
        let endpoint = azure();
        assert_eq!(
            endpoint.request_url(WireFormat::OpenAi).unwrap(),
            "https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn header_values_come_from_the_environment_and_are_secret() {
        let options = ProviderOptions {
            env: ProviderEnv::fixed([("AZURE_KEY", "azure-secret-value")]),
            ..ProviderOptions::default()
        };
        let (key, headers, secrets) = azure().credentials(&options).unwrap();
        assert!(key.is_none());
        assert_eq!(headers[0].0.as_str(), "api-key");
        assert!(headers[0].1.is_sensitive());
        assert_eq!(secrets, vec!["azure-secret-value".to_string()]);
        let unset = ProviderOptions::default();
        let error = azure()
            .credentials(&ProviderOptions {
                env: ProviderEnv::fixed::<&str, &str>([]),
                ..unset
            })
            .unwrap_err()
            .to_string();
        assert!(error.contains("AZURE_KEY"), "{error}");
    }
}

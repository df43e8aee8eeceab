//! A live endpoint: its environment variables, base URL, API key and HTTP
//! client.

use std::sync::Once;

use super::error::ProviderError;
use super::options::ProviderOptions;
use super::redact::Redactor;
use super::transport::{ApiKey, HttpTransport, KeyHeader};
use super::wire::WireFormat;

/// Default OpenAI-compatible endpoint.
pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default Anthropic endpoint.
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The environment variables of one live provider.
pub(super) struct EnvVars {
    pub(super) key: &'static str,
    pub(super) base_url: &'static str,
    pub(super) default_base_url: &'static str,
}

pub(super) fn env_vars(wire: WireFormat) -> EnvVars {
    match wire {
        // The Responses API is OpenAI's own: same key, same base URL.
        WireFormat::OpenAi | WireFormat::OpenAiResponses => EnvVars {
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

pub(super) fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when another provider is already installed, which is
        // just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the HTTP transport of a live provider from its environment.
pub(super) fn http_transport(
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
        WireFormat::OpenAiResponses => (format!("{base_url}/responses"), KeyHeader::Bearer),
        WireFormat::Anthropic => (format!("{base_url}/v1/messages"), KeyHeader::Anthropic),
    };
    let redactor = Redactor::new(key.iter().map(|k| k.0.clone()));
    Ok(HttpTransport {
        gate: options.gates.gate(wire.name(), &url, options.max_requests),
        client,
        url,
        key,
        key_header,
        extra_headers: Vec::new(),
        redactor,
    })
}

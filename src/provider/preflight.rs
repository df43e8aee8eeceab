//! The preflight: before a run spends minutes on baseline checks, one cheap
//! request per distinct endpoint shows whether it is reachable and takes
//! the key. The models list where the API has one (`GET …/models`), else
//! (a server without the list, such as an Azure deployment URL) a
//! one-token completion. Only a refused key (401/403) or an unreachable
//! server fails it; any other answer means the server is there and the
//! key was not refused, and the run's own error handling takes over.

use std::time::Duration;

use serde_json::json;

use super::client::{Backend, Provider};
use super::error::ProviderError;
use super::transport::HttpTransport;
use super::wire::WireFormat;

/// How one preflight request ended.
enum Answer {
    /// The server answered with this status.
    Status(u16),
    /// No answer: the reason.
    Unreachable(String),
}

impl Provider {
    /// What makes two providers the same endpoint for the preflight (URL
    /// and credentials); `None` for a replay, which needs no preflight.
    pub fn preflight_key(&self) -> Option<(String, String)> {
        match &self.backend {
            Backend::Http(http) => Some((
                http.url.clone(),
                format!("{:?}", http.key.as_ref().map(|k| k.0.clone())),
            )),
            Backend::Replay(_) => None,
        }
    }

    /// Sends the preflight request(s); a replay sends nothing.
    pub async fn preflight(&self) -> Result<(), ProviderError> {
        let Backend::Http(http) = &self.backend else {
            return Ok(());
        };
        let provider = self
            .model_spec
            .split_once(':')
            .map_or(self.model_spec.as_str(), |(name, _)| name)
            .to_string();
        let timeout = self.options.idle_timeout.min(Duration::from_secs(60));
        let models = models_url(&http.url, self.wire);
        let first = match &models {
            Some(url) => Some((url.clone(), get(http, url, timeout).await)),
            None => None,
        };
        let (url, answer) = match first {
            Some((url, Answer::Status(status))) if is_decisive(status) => {
                (url, Answer::Status(status))
            }
            Some((url, Answer::Unreachable(reason))) => (url, Answer::Unreachable(reason)),
            // No list here (404, 405, …): ask for one token instead.
            _ => {
                let body = one_token_body(self.wire, &self.model);
                (http.url.clone(), post(http, &body, timeout).await)
            }
        };
        let url = http.redactor.redact(&url);
        match answer {
            Answer::Status(status) if status == 401 || status == 403 => {
                Err(ProviderError::Preflight {
                    provider,
                    url,
                    message: format!("the server refused the key (HTTP {status})"),
                    hint: "check the API key's variable (OPENAI_API_KEY, ANTHROPIC_API_KEY or the provider's \
                           `api_key_env`/`headers` in kkrun.yaml), or pass --no-preflight"
                        .to_string(),
                })
            }
            Answer::Status(_) => Ok(()),
            Answer::Unreachable(reason) => Err(ProviderError::Preflight {
                provider,
                url,
                message: format!("the endpoint is unreachable: {}", http.redactor.redact(&reason)),
                hint: "check the base URL (OPENAI_BASE_URL, ANTHROPIC_BASE_URL or `base_url` in kkrun.yaml) \
                       and that the server is running, or pass --no-preflight"
                    .to_string(),
            }),
        }
    }
}

/// A status that settles the preflight without the one-token fallback.
fn is_decisive(status: u16) -> bool {
    (200..300).contains(&status) || status == 401 || status == 403
}

/// The models list next to the request URL, keeping its query.
fn models_url(url: &str, wire: WireFormat) -> Option<String> {
    let (path, query) = url
        .split_once('?')
        .map_or((url, None), |(p, q)| (p, Some(q)));
    let base = match wire {
        WireFormat::OpenAi => path.strip_suffix("/chat/completions")?,
        WireFormat::Anthropic => path.strip_suffix("/messages")?,
        WireFormat::OpenAiResponses => path.strip_suffix("/responses")?,
    };
    Some(match query {
        Some(query) => format!("{base}/models?{query}"),
        None => format!("{base}/models"),
    })
}

fn one_token_body(wire: WireFormat, model: &str) -> serde_json::Value {
    match wire {
        WireFormat::OpenAi | WireFormat::Anthropic => json!({
            "model": model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}],
        }),
        // The Responses API's smallest output is 16 tokens.
        WireFormat::OpenAiResponses => json!({
            "model": model,
            "max_output_tokens": 16,
            "store": false,
            "input": "ping",
        }),
    }
}

async fn get(http: &HttpTransport, url: &str, timeout: Duration) -> Answer {
    let request = http.client.get(url).headers(http.request_headers()).send();
    answer(tokio::time::timeout(timeout, request).await, timeout)
}

async fn post(http: &HttpTransport, body: &serde_json::Value, timeout: Duration) -> Answer {
    let request = http
        .client
        .post(&http.url)
        .headers(http.request_headers())
        .json(body)
        .send();
    answer(tokio::time::timeout(timeout, request).await, timeout)
}

fn answer(
    result: Result<Result<reqwest::Response, reqwest::Error>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Answer {
    match result {
        Ok(Ok(response)) => Answer::Status(response.status().as_u16()),
        Ok(Err(error)) => Answer::Unreachable(super::transport::error_chain(&error)),
        Err(_) => Answer::Unreachable(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_list_sits_next_to_the_api_path() {
        assert_eq!(
            models_url("http://h/v1/chat/completions", WireFormat::OpenAi).as_deref(),
            Some("http://h/v1/models")
        );
        assert_eq!(
            models_url(
                "https://r/openai/deployments/d/chat/completions?api-version=1",
                WireFormat::OpenAi
            )
            .as_deref(),
            Some("https://r/openai/deployments/d/models?api-version=1")
        );
        assert_eq!(
            models_url(
                "https://api.anthropic.com/v1/messages",
                WireFormat::Anthropic
            )
            .as_deref(),
            Some("https://api.anthropic.com/v1/models")
        );
        assert!(is_decisive(200) && is_decisive(401) && !is_decisive(404));
    }
}

//! Settings shared by every provider of a run: timeouts, the retry policy,
//! recording, prices and where environment variables come from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::pricing::ModelPrice;

/// Settings that apply to every provider of a run.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Directory that relative `replay:` cassette paths are resolved against
    /// (the task file's directory).
    pub base_dir: PathBuf,
    /// Record every exchange to this cassette (`--record`).
    pub record: Option<PathBuf>,
    /// No byte for this long on an open stream (or while waiting for the
    /// response headers) fails the attempt.
    pub idle_timeout: Duration,
    /// Establishing the TCP/TLS connection may take at most this long.
    pub connect_timeout: Duration,
    /// One attempt (request, headers and the whole streamed body) may take
    /// at most this long.
    pub request_timeout: Duration,
    /// When and how often failed requests are retried.
    pub retry: RetryPolicy,
    /// Where `OPENAI_API_KEY` and the other variables are read from.
    pub env: ProviderEnv,
    /// Price of the model, overriding the built-in table (from a task file
    /// or configuration).
    pub price: Option<ModelPrice>,
    /// The run's secrets (environment, `--redact`), kept out of `--record`
    /// cassettes along with the provider's own key.
    pub redactor: crate::redact::Redactor,
    /// The named endpoint (from the configuration's `providers:`) that a
    /// `NAME:MODEL` spec with this name uses.
    pub endpoint: Option<super::named::Endpoint>,
    /// The run's endpoint gates: the cap on requests in flight and the
    /// backoff that every task on an endpoint shares ([`super::Gates`]).
    pub gates: super::Gates,
    /// The cap on requests in flight of an endpoint that sets no
    /// `max_concurrent_requests` (`--max-requests`).
    pub max_requests: usize,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            base_dir: PathBuf::from("."),
            record: None,
            idle_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
            retry: RetryPolicy::default(),
            env: ProviderEnv::default(),
            price: None,
            redactor: crate::redact::Redactor::default(),
            endpoint: None,
            gates: super::Gates::default(),
            max_requests: super::DEFAULT_MAX_REQUESTS,
        }
    }
}

/// Exponential backoff with jitter for retryable failures.
///
/// The wait before retry `n` (1-based) is a random duration between half and
/// all of `initial_backoff * 2^(n-1)`, capped at `max_backoff`. A
/// `Retry-After` (or `retry-after-ms`) header replaces the computed wait, up
/// to `max_retry_after`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included (so `5` means up to four
    /// retries). A stream that breaks after content arrived gets one extra
    /// whole-turn attempt on top of this.
    pub max_attempts: u32,
    /// Wait before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of a computed wait.
    pub max_backoff: Duration,
    /// Upper bound of a wait the server asked for with `Retry-After`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The jittered wait before retry number `retry` (1-based).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff);
        let half = full / 2;
        half + full.mul_f64(fastrand::f64() * 0.5)
    }
}

/// Where providers read their environment variables (`OPENAI_API_KEY`,
/// `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`).
///
/// `Fixed` makes a provider independent of the process environment, which
/// is what tests and embedding applications want. `Debug` never shows
/// values, since they include API keys.
#[derive(Clone, Default)]
pub enum ProviderEnv {
    /// The process environment.
    #[default]
    Process,
    /// Exactly these variables; anything else counts as unset.
    Fixed(BTreeMap<String, String>),
}

impl ProviderEnv {
    /// A fixed environment holding exactly `vars`.
    pub fn fixed<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> ProviderEnv {
        ProviderEnv::Fixed(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The value of `name`; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match self {
            ProviderEnv::Process => std::env::var(name).ok(),
            ProviderEnv::Fixed(vars) => vars.get(name).cloned(),
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

impl std::fmt::Debug for ProviderEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderEnv::Process => f.write_str("Process"),
            ProviderEnv::Fixed(vars) => f
                .debug_tuple("Fixed")
                .field(&vars.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.backoff(40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn env_debug_hides_values() {
        let env = ProviderEnv::fixed([("OPENAI_API_KEY", "sk-very-secret-value")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("OPENAI_API_KEY"));
        assert!(!shown.contains("sk-very-secret-value"));
        assert_eq!(
            env.get("OPENAI_API_KEY").as_deref(),
            Some("sk-very-secret-value")
        );
        assert_eq!(env.get("HOME"), None);
    }
}

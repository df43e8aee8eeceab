//! The configuration file's shape: `version`, `providers:`, `pricing:` and
//! `defaults:`, with the same errors (position, did-you-mean, every
//! problem at once) as task files.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::Walker;
use super::document::TASK_KEYS;
use super::names::{check_model_form, check_name, is_env_name, suggest_name};
use super::settings::{MIN_CONTEXT_WINDOW, SETTINGS_KEYS};
use super::values::{describe, spanned};
use crate::provider::Api;
use crate::task::config::raw::{ConfigFile, ProviderSettings};
use crate::task::node::{Node, SpannedNode};
use crate::task::raw::PricingSettings;

const CONFIG_KEYS: &[&str] = &["version", "providers", "pricing", "defaults"];
const PROVIDER_KEYS: &[&str] = &[
    "api",
    "base_url",
    "api_key_env",
    "headers",
    "query",
    "max_concurrent_requests",
    "pricing",
    "context_window",
    "idle_timeout",
    "request_timeout",
];
/// Names a model spec reaches without any configuration.
const BUILT_IN_PROVIDERS: &[&str] = super::names::PROVIDERS;
/// Headers that carry credentials: their value must come from a variable.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "api-key",
    "x-api-key",
    "proxy-authorization",
];

impl Walker<'_> {
    /// Walks a whole configuration file.
    pub(super) fn config_file(&mut self, tree: &SpannedNode) -> Option<ConfigFile> {
        let entries = match &tree.value {
            Node::Map(entries) => entries,
            // An empty file configures nothing; that is not an error.
            Node::Null => return Some(ConfigFile::default()),
            other => {
                self.error_at(
                    tree.referenced,
                    format!(
                        "a configuration file must be a mapping of keys, found {}",
                        other.type_name()
                    ),
                    Some("start with `version: 1`, then `providers:` or `defaults:`".into()),
                );
                return None;
            }
        };
        let known = self.known_keys(entries, CONFIG_KEYS, "", |key| {
            if TASK_KEYS.contains(&key) {
                Some(format!(
                    "`{key}` belongs in a task file; the configuration holds `providers:`, `pricing:` and `defaults:`"
                ))
            } else if SETTINGS_KEYS.contains(&key) {
                Some(format!("move `{key}` under `defaults:`"))
            } else {
                None
            }
        });
        let mut config = ConfigFile {
            version: self.version(tree, &known),
            ..ConfigFile::default()
        };
        for entry in &known {
            match entry.name {
                "providers" => config.providers = self.providers(entry.value),
                "pricing" => config.pricing = self.spec_prices(entry.value, "pricing"),
                "defaults" => {
                    config.defaults = self.map(entry.value, "defaults").map(|entries| {
                        let known = self.known_keys(entries, SETTINGS_KEYS, "defaults.", |key| {
                            TASK_KEYS.contains(&key).then(|| {
                                format!("each task sets its own `{key}`; `defaults` takes every other task key")
                            })
                        });
                        self.settings(&known, "defaults.")
                    })
                }
                _ => {}
            }
        }
        Some(config)
    }

    fn providers(
        &mut self,
        value: &SpannedNode,
    ) -> Option<Vec<(Spanned<String>, ProviderSettings)>> {
        let entries = self.map(value, "providers")?;
        let mut providers = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.provider_name(key) else {
                continue;
            };
            let path = format!("providers.{}", name.value);
            let before = self.errors.len();
            let provider = self.provider(value, &path).unwrap_or_default();
            let faulty = self.errors.len() > before;
            providers.push((name, ProviderSettings { faulty, ..provider }));
        }
        Some(providers)
    }

    fn provider_name(&mut self, key: &SpannedNode) -> Option<Spanned<String>> {
        let name = match &key.value {
            Node::Str(name) => name,
            other => {
                self.error_at(
                    key.referenced,
                    format!("provider names must be strings, found {}", describe(other)),
                    Some("name the provider like `azure` or `local-vllm`".into()),
                );
                return None;
            }
        };
        if let Err(problem) = check_name(name) {
            self.error_at(
                key.referenced,
                format!("invalid provider name `{name}`: {problem}"),
                Some(format!(
                    "use lowercase letters, digits and `-`, such as `{}`",
                    suggest_name(name)
                )),
            );
            return None;
        }
        if BUILT_IN_PROVIDERS.contains(&name.as_str()) {
            self.error_at(
                key.referenced,
                format!("`{name}` is a built-in provider and cannot be redefined"),
                Some(format!(
                    "give this endpoint its own name, such as `my-{name}`, and use `my-{name}:MODEL`; \
                     the built-in `{name}:` keeps its environment variables"
                )),
            );
            return None;
        }
        Some(spanned(name.clone(), key))
    }

    fn provider(&mut self, value: &SpannedNode, path: &str) -> Option<ProviderSettings> {
        let entries = self.map(value, path)?;
        let known = self.known_keys(entries, PROVIDER_KEYS, &format!("{path}."), |key| {
            matches!(key, "api_key" | "key" | "token").then(|| {
                "never put a key in the file: export it and name the variable in `api_key_env`"
                    .into()
            })
        });
        let mut provider = ProviderSettings::default();
        for entry in &known {
            let key = format!("{path}.{}", entry.name);
            let value = entry.value;
            match entry.name {
                "api" => {
                    provider.api = self
                        .choice(value, &key, Api::NAMES)
                        .and_then(Api::from_name)
                        .map(|api| spanned(api, value))
                }
                "base_url" => provider.base_url = self.base_url(value, &key),
                "api_key_env" => provider.api_key_env = self.api_key_env(value, &key),
                "headers" => provider.headers = self.provider_headers(value, &key),
                "query" => provider.query = self.string_map(value, &key),
                "max_concurrent_requests" => {
                    provider.max_concurrent_requests = self.uint(value, &key, 1u32, 1024u32)
                }
                "pricing" => provider.pricing = self.model_prices(value, &key),
                "context_window" => {
                    provider.context_window = self.uint(value, &key, MIN_CONTEXT_WINDOW, u64::MAX)
                }
                "idle_timeout" => provider.idle_timeout = self.nonzero_duration(value, &key),
                "request_timeout" => provider.request_timeout = self.nonzero_duration(value, &key),
                _ => {}
            }
        }
        Some(provider)
    }

    fn base_url(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<String>> {
        let url = self.string(value, key)?;
        let problem = match reqwest::Url::parse(url.value.trim()) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                if parsed.query().is_some() {
                    Some("it has a query string".to_string())
                } else {
                    return Some(url);
                }
            }
            Ok(parsed) => Some(format!(
                "`{}://` is not http:// or https://",
                parsed.scheme()
            )),
            Err(error) => Some(error.to_string()),
        };
        let problem = problem.unwrap_or_default();
        self.error_at(
            value.referenced,
            format!("`{key}` is not a usable URL: {problem}"),
            Some("write the endpoint's base, such as `https://openrouter.ai/api/v1`; put query parameters under `query:`".into()),
        );
        None
    }

    fn api_key_env(&mut self, value: &SpannedNode, key: &str) -> Option<Spanned<String>> {
        let name = self.string(value, key)?;
        if is_env_name(&name.value) && !looks_like_key(&name.value) {
            return Some(name);
        }
        self.error_at(
            value.referenced,
            format!(
                "`{key}` must name an environment variable, not hold the key itself"
            ),
            Some(
                "never put a key in the file: export it (`export MY_API_KEY=...`) and write `api_key_env: MY_API_KEY`; \
                 if this was a real key, revoke it"
                    .into(),
            ),
        );
        None
    }

    fn provider_headers(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<BTreeMap<String, String>> {
        let headers = self.headers(value, key)?;
        let entries = self.map(value, key)?;
        let mut sound = true;
        for (name, text) in &headers {
            if CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str())
                && !text.contains("${")
            {
                let at = entries
                    .iter()
                    .find(|(k, _)| matches!(&k.value, Node::Str(n) if n == name))
                    .map_or(value.referenced, |(_, v)| v.referenced);
                self.error_at(
                    at,
                    format!("`{key}.{name}` holds a literal credential"),
                    Some(format!(
                        "take the value from a variable: `{name}: \"${{MY_API_KEY}}\"` \
                         (or `Bearer ${{MY_API_KEY}}`); if this was a real key, revoke it"
                    )),
                );
                sound = false;
            }
        }
        sound.then_some(headers)
    }

    fn string_map(&mut self, value: &SpannedNode, key: &str) -> Option<BTreeMap<String, String>> {
        let entries = self.map(value, key)?;
        let mut map = BTreeMap::new();
        let mut sound = true;
        for (name, item) in entries {
            let Node::Str(name) = &name.value else {
                self.error_at(
                    name.referenced,
                    format!(
                        "keys of `{key}` must be strings, found {}",
                        describe(&name.value)
                    ),
                    Some("quote the name".into()),
                );
                sound = false;
                continue;
            };
            let field = format!("{key}.{name}");
            let text = match &item.value {
                Node::Int(number) => number.to_string(),
                Node::Bool(flag) => flag.to_string(),
                _ => match self.string(item, &field) {
                    Some(text) => text.value,
                    None => {
                        sound = false;
                        continue;
                    }
                },
            };
            map.insert(name.clone(), text);
        }
        sound.then_some(map)
    }

    /// Prices keyed by model name (a provider's `pricing:`).
    fn model_prices(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Vec<(Spanned<String>, PricingSettings)>> {
        let entries = self.map(value, key)?;
        let mut prices = Vec::new();
        for (model, price) in entries {
            let Some(model) = self.string(model, &format!("a model name in `{key}`")) else {
                continue;
            };
            if let Some(price) = self.pricing(price, &format!("{key}.{}", model.value)) {
                prices.push((model, price));
            }
        }
        Some(prices)
    }

    /// Prices keyed by model spec (the top-level `pricing:`).
    fn spec_prices(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Vec<(Spanned<String>, PricingSettings)>> {
        let entries = self.map(value, key)?;
        let mut prices = Vec::new();
        for (spec, price) in entries {
            let Some(spec) = self.string(spec, &format!("a model spec in `{key}`")) else {
                continue;
            };
            let form = check_model_form(&spec.value);
            if let Err(problem) = &form {
                self.error_at(
                    spec.referenced,
                    problem.clone(),
                    Some(
                        "key prices by model spec, such as `openai:gpt-4.1:` or `azure:gpt-4o:`"
                            .into(),
                    ),
                );
            }
            let price = self.pricing(price, &format!("{key}.{}", spec.value));
            if let (Ok(_), Some(price)) = (form, price) {
                prices.push((spec, price));
            }
        }
        Some(prices)
    }

    fn nonzero_duration(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<std::time::Duration>> {
        let duration = self.duration(value, key)?;
        if duration.value.is_zero() {
            self.error_at(
                value.referenced,
                format!("`{key}` must be longer than 0s"),
                Some(format!(
                    "remove `{key}` for the default, or give a duration such as `30s`"
                )),
            );
            return None;
        }
        Some(duration)
    }
}

/// Whether a value given as a variable name looks like a key instead:
/// the prefixes providers' keys start with, or a long run of mixed case and
/// digits that no one names a variable.
fn looks_like_key(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let has_lower = text.chars().any(|c| c.is_ascii_lowercase());
    let has_upper = text.chars().any(|c| c.is_ascii_uppercase());
    let digits = text.chars().filter(char::is_ascii_digit).count();
    ["sk_", "sk-", "gsk_", "xai-", "aiza"]
        .iter()
        .any(|p| lower.starts_with(p))
        || (text.len() >= 24 && has_lower && has_upper && digits >= 3)
}

#[cfg(test)]
mod tests {
    use super::looks_like_key;

    #[test]
    fn keys_are_told_apart_from_variable_names() {
        assert!(!looks_like_key("OPENROUTER_API_KEY"));
        assert!(!looks_like_key("AZURE_OPENAI_API_KEY"));
        assert!(looks_like_key("sk_live_abc"));
        assert!(looks_like_key("AIzaSyD3kq8x9F2hLmN0pQrStUvWxYz12345"));
        assert!(looks_like_key("aBcD1234eFgH5678iJkL9012"));
    }
}

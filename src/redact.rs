//! Keeps the run's secrets out of everything kkrun writes: events (and so
//! the console and `--json`), transcripts, reports, summaries, JUnit,
//! cassettes, plans, patches and snapshot commit messages.
//!
//! The secrets are the values of environment variables whose names look
//! secret (see [`looks_secret`]), every provider's API key and every
//! `--redact` value. Each occurrence is replaced by [`REDACTED`]. What the
//! model itself is shown is left alone: an agent that reads a `.env` to fix
//! a configuration bug must see what is there, and what it sends back is
//! redacted on the way to disk.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Environment values shorter than this (in characters) are not treated as
/// secrets: `AUTH_MODE=on` is configuration, and redacting two-letter words
/// would mangle every report.
pub const MIN_ENV_SECRET_CHARS: usize = 8;

/// The shortest explicit secret (an API key, a `--redact` value) accepted.
pub const MIN_SECRET_CHARS: usize = 4;

/// Parts of an environment variable's name that make its value a secret.
pub const SECRET_NAME_PARTS: [&str; 7] = [
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
];

/// True when an environment variable named `name` holds a secret: the name
/// contains one of [`SECRET_NAME_PARTS`], ignoring case. `AUTH` inside the
/// word `AUTHOR` or `AUTHORS` does not count (`GIT_AUTHOR_NAME` is a name,
/// not a secret; `AUTHORIZATION` still is).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let is_author_word = |at: usize| {
        let rest = &upper[at..];
        ["AUTHORS", "AUTHOR"].iter().any(|word| {
            rest.strip_prefix(word)
                .is_some_and(|after| !after.starts_with(|c: char| c.is_ascii_alphabetic()))
        })
    };
    SECRET_NAME_PARTS.iter().any(|part| {
        upper
            .match_indices(part)
            .any(|(at, _)| !(*part == "AUTH" && is_author_word(at)))
    })
}

/// The values of `vars` that are secrets: a name that [`looks_secret`] and
/// a value of at least [`MIN_ENV_SECRET_CHARS`] characters.
pub fn secret_env_values(vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    vars.into_iter()
        .filter(|(name, value)| {
            looks_secret(name) && value.trim().chars().count() >= MIN_ENV_SECRET_CHARS
        })
        .map(|(_, value)| value)
        .collect()
}

/// Redaction that turned a typed value into something that no longer reads
/// back as that type (a secret that is part of a field name or an enum
/// value). Callers then withhold the value rather than write it.
#[derive(Debug, thiserror::Error)]
#[error("a secret matched part of the structure of the value, so it could not be redacted")]
pub struct RedactError(#[source] serde_json::Error);

/// Replaces a fixed set of secrets in text, JSON and serializable values.
/// Cheap to clone; the empty redactor (the default) changes nothing.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    /// The secrets as given, longest first.
    secrets: Vec<String>,
    /// The secrets and their JSON- and XML-escaped forms.
    patterns: Vec<String>,
    /// Finds all of `patterns` in one pass.
    matcher: Option<AhoCorasick>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets().len())
    }
}

impl Redactor {
    /// A redactor for `secrets`. Values shorter than [`MIN_SECRET_CHARS`]
    /// are ignored; surrounding whitespace is ignored too (a key read from
    /// a file often ends with a newline).
    pub fn new<S: Into<String>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut list: Vec<String> = Vec::new();
        for secret in secrets {
            let secret: String = secret.into();
            for candidate in [secret.as_str(), secret.trim()] {
                if candidate.chars().count() >= MIN_SECRET_CHARS
                    && !list.iter().any(|s| s == candidate)
                {
                    list.push(candidate.to_string());
                }
            }
        }
        if list.is_empty() {
            return Redactor::default();
        }
        list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let mut patterns = list.clone();
        for secret in &list {
            for form in [json_escaped(secret), xml_escaped(secret)] {
                if !patterns.contains(&form) {
                    patterns.push(form);
                }
            }
        }
        // Leftmost-longest: of two overlapping secrets, the longer goes.
        // Building fails only past the automaton's size limits; then each
        // secret is replaced in turn.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        Redactor {
            inner: Some(Arc::new(Inner {
                secrets: list,
                patterns,
                matcher,
            })),
        }
    }

    /// This redactor's secrets plus `more`.
    pub fn with<S: Into<String>>(&self, more: impl IntoIterator<Item = S>) -> Redactor {
        let mut all: Vec<String> = self.secrets().to_vec();
        all.extend(more.into_iter().map(Into::into));
        Redactor::new(all)
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// The secrets, longest first.
    pub(crate) fn secrets(&self) -> &[String] {
        self.inner.as_ref().map_or(&[], |inner| &inner.secrets)
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(inner) = &self.inner else {
            return Cow::Borrowed(text);
        };
        match &inner.matcher {
            Some(matcher) if matcher.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                matcher.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                Cow::Owned(out)
            }
            Some(_) => Cow::Borrowed(text),
            None => {
                let mut out = Cow::Borrowed(text);
                for pattern in &inner.patterns {
                    if out.contains(pattern.as_str()) {
                        out = Cow::Owned(out.replace(pattern.as_str(), REDACTED));
                    }
                }
                out
            }
        }
    }

    /// Byte ranges of the secrets in `text`, in order and not overlapping.
    pub(crate) fn find_spans(&self, text: &str) -> Vec<std::ops::Range<usize>> {
        let Some(inner) = &self.inner else {
            return Vec::new();
        };
        if let Some(matcher) = &inner.matcher {
            return matcher.find_iter(text).map(|m| m.range()).collect();
        }
        let mut spans: Vec<std::ops::Range<usize>> = inner
            .patterns
            .iter()
            .flat_map(|p| {
                text.match_indices(p.as_str())
                    .map(|(at, m)| at..at + m.len())
            })
            .collect();
        spans.sort_by_key(|span| (span.start, std::cmp::Reverse(span.end)));
        let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.start < last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        merged
    }

    /// `bytes` with every secret replaced; for files that may not be UTF-8
    /// (a patch of a binary file).
    pub fn redact_bytes<'b>(&self, bytes: &'b [u8]) -> Cow<'b, [u8]> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return match self.redact(text) {
                Cow::Borrowed(_) => Cow::Borrowed(bytes),
                Cow::Owned(text) => Cow::Owned(text.into_bytes()),
            };
        }
        let Some(inner) = &self.inner else {
            return Cow::Borrowed(bytes);
        };
        match &inner.matcher {
            Some(matcher) if matcher.is_match(bytes) => {
                let mut out = Vec::with_capacity(bytes.len());
                matcher.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
                    dst.extend_from_slice(REDACTED.as_bytes());
                    true
                });
                Cow::Owned(out)
            }
            Some(_) => Cow::Borrowed(bytes),
            // Not UTF-8 and too many secrets for the automaton: the lossy
            // text, redacted, is safer than the bytes.
            None => Cow::Owned(
                self.redact(&String::from_utf8_lossy(bytes))
                    .into_owned()
                    .into_bytes(),
            ),
        }
    }

    /// Redacts every string in `value`, object keys included; returns
    /// whether anything changed.
    pub fn redact_json(&self, value: &mut Value) -> bool {
        if self.is_empty() {
            return false;
        }
        match value {
            Value::String(s) => match self.redact(s) {
                Cow::Borrowed(_) => false,
                Cow::Owned(new) => {
                    *s = new;
                    true
                }
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.redact_json(item) | changed),
            Value::Object(map) => {
                let needs_new_keys = map.keys().any(|k| matches!(self.redact(k), Cow::Owned(_)));
                let mut changed = map
                    .values_mut()
                    .fold(false, |changed, item| self.redact_json(item) | changed);
                if needs_new_keys {
                    let old = std::mem::take(map);
                    for (key, item) in old {
                        map.insert(self.redact(&key).into_owned(), item);
                    }
                    changed = true;
                }
                changed
            }
            _ => false,
        }
    }

    /// `value` with every string in it redacted: `Ok(None)` when nothing
    /// needed to change, so callers can keep the original.
    pub fn redact_typed<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
    ) -> Result<Option<T>, RedactError> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut json = serde_json::to_value(value).map_err(RedactError)?;
        if !self.redact_json(&mut json) {
            return Ok(None);
        }
        serde_json::from_value(json).map(Some).map_err(RedactError)
    }
}

/// How `secret` looks inside a JSON string.
fn json_escaped(secret: &str) -> String {
    let quoted = serde_json::to_string(secret).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(secret)
        .to_string()
}

/// How `secret` looks in XML text or an attribute.
fn xml_escaped(secret: &str) -> String {
    secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_follow_the_documented_patterns() {
        for name in [
            "OPENAI_API_KEY",
            "github_token",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
            "FTP_PASSWD",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "NPM_AUTH",
            "HTTP_AUTHORIZATION",
            "AUTHOR_AUTH_TOKEN",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "AUTHORS",
            "CI",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }

    #[test]
    fn short_env_values_are_not_secrets() {
        let values = secret_env_values([
            ("API_KEY".to_string(), "sk-live-123456".to_string()),
            ("AUTH_MODE".to_string(), "on".to_string()),
            ("PATH".to_string(), "/usr/local/bin:/usr/bin".to_string()),
            ("MY_TOKEN".to_string(), "1234567".to_string()),
        ]);
        assert_eq!(values, ["sk-live-123456"]);
    }

    #[test]
    fn replaces_every_secret_longest_first() {
        let redactor = Redactor::new(["abcd-1234", "abcd-1234-efgh", "x"]);
        assert_eq!(
            redactor.redact("a abcd-1234-efgh b abcd-1234 c x"),
            "a [redacted] b [redacted] c x"
        );
        assert!(matches!(redactor.redact("nothing here"), Cow::Borrowed(_)));
        assert!(Redactor::new(["abc", "  "]).is_empty());
        assert_eq!(
            Redactor::new(["  padded-secret\n"]).redact("padded-secret"),
            REDACTED
        );
    }

    #[test]
    fn escaped_forms_are_found_in_serialized_text() {
        let redactor = Redactor::new(["pa\"ss<word>"]);
        let json = serde_json::to_string(&json!({"v": "x pa\"ss<word> y"})).unwrap();
        assert_eq!(redactor.redact(&json), r#"{"v":"x [redacted] y"}"#);
        assert_eq!(
            redactor.redact("<a v=\"pa&quot;ss&lt;word&gt;\"/>"),
            "<a v=\"[redacted]\"/>"
        );
        let bytes = [b"\xff\xfe pa\"ss<word>".as_slice()].concat();
        assert_eq!(
            redactor.redact_bytes(&bytes).as_ref(),
            b"\xff\xfe [redacted]".as_slice()
        );
    }

    #[test]
    fn json_and_typed_values_are_redacted_throughout() {
        let redactor = Redactor::new(["hunter2-secret"]);
        let mut value =
            json!({"a": ["hunter2-secret"], "hunter2-secret": {"b": "x hunter2-secret"}, "n": 1});
        assert!(redactor.redact_json(&mut value));
        assert_eq!(
            value,
            json!({"a": ["[redacted]"], "[redacted]": {"b": "x [redacted]"}, "n": 1})
        );
        let typed: Vec<String> = vec!["key hunter2-secret".into()];
        assert_eq!(
            redactor.redact_typed(&typed).unwrap(),
            Some(vec!["key [redacted]".to_string()])
        );
        assert_eq!(
            redactor.redact_typed(&vec!["clean".to_string()]).unwrap(),
            None
        );
        #[derive(Serialize, serde::Deserialize)]
        enum Kind {
            #[serde(rename = "hunter2-secret")]
            Tag,
        }
        assert!(redactor.redact_typed(&Kind::Tag).is_err());
    }
}

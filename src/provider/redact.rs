//! Keeps API keys out of everything kkrun prints or stores.

use std::sync::LazyLock;

use regex::Regex;

/// How many bytes of a response body an error message quotes.
pub(crate) const BODY_EXCERPT_BYTES: usize = 500;

pub(crate) use crate::redact::REDACTED;

/// Shapes of credentials that may be echoed back by servers or proxies even
/// when they are not this provider's key (a proxy quoting the request, a
/// misconfigured base URL with a key in it).
static KEY_SHAPES: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(sk-(?:ant-|proj-)?[a-z0-9_\-]{12,})|(bearer\s+[a-z0-9._~+/\-]{8,}=*)|((?:x-api-key|api[_-]?key)[\x22']?\s*[:=]\s*[\x22']?[a-z0-9._\-]{8,})",
    )
    .ok()
});

/// Removes known secrets and anything shaped like a credential from what a
/// provider reports (errors, excerpts of bodies).
#[derive(Clone, Default, Debug)]
pub(crate) struct Redactor {
    secrets: crate::redact::Redactor,
}

impl Redactor {
    /// A redactor for these secrets (empty ones are ignored).
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        Redactor {
            secrets: crate::redact::Redactor::new(secrets),
        }
    }

    /// This redactor's secrets and those of `run`.
    pub(crate) fn joined(&self, run: &crate::redact::Redactor) -> Redactor {
        Redactor {
            secrets: self.secrets.with(run.secrets().iter().cloned()),
        }
    }

    /// The known secrets.
    pub(crate) fn known(&self) -> &crate::redact::Redactor {
        &self.secrets
    }

    /// `text` with the known secrets replaced, and nothing else touched:
    /// used for cassettes, whose bodies must replay as recorded.
    pub(crate) fn redact_known(&self, text: &str) -> String {
        self.secrets.redact(text).into_owned()
    }

    /// Every string inside `value` passed through [`Redactor::redact_known`].
    pub(crate) fn redact_known_json(&self, value: &serde_json::Value) -> serde_json::Value {
        let mut value = value.clone();
        self.secrets.redact_json(&mut value);
        value
    }

    /// `text` with every secret and anything shaped like a credential
    /// replaced: used for everything shown to people.
    pub(crate) fn redact(&self, text: &str) -> String {
        let out = self.redact_known(text);
        match KEY_SHAPES.as_ref() {
            Some(shapes) => shapes.replace_all(&out, REDACTED).into_owned(),
            None => out,
        }
    }

    /// The first [`BODY_EXCERPT_BYTES`] of `body`, redacted, on one line.
    /// Redaction runs on the whole body first so that a key cut in half by
    /// the limit cannot leak its first half.
    pub(crate) fn body_excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let redacted = self.redact(&text);
        let trimmed = redacted.trim();
        let mut cut = trimmed.len().min(BODY_EXCERPT_BYTES);
        while !trimmed.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut excerpt: String = trimmed[..cut]
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if cut < trimmed.len() {
            excerpt.push_str(" …");
        }
        if excerpt.is_empty() {
            excerpt.push_str("(empty body)");
        }
        excerpt
    }
}

/// Scrubs this provider's secrets from streamed text whose deltas may cut
/// a secret in two: a tail that could be the start of a secret is held back
/// until the next delta (or [`TextScrubber::flush`]) decides.
pub(crate) struct TextScrubber<'a> {
    redactor: &'a Redactor,
    pending: String,
}

impl<'a> TextScrubber<'a> {
    pub(crate) fn new(redactor: &'a Redactor) -> TextScrubber<'a> {
        TextScrubber {
            redactor,
            pending: String::new(),
        }
    }

    /// Takes a delta; returns the text that is safe to pass on now.
    pub(crate) fn push(&mut self, text: &str) -> String {
        let secrets = self.redactor.secrets.secrets();
        if secrets.is_empty() {
            return text.to_string();
        }
        self.pending.push_str(text);
        self.pending = self.redactor.redact_known(&self.pending);
        let hold = secrets
            .iter()
            .flat_map(|secret| {
                secret
                    .char_indices()
                    .map(|(i, _)| i)
                    .skip(1)
                    .filter(|&k| self.pending.ends_with(&secret[..k]))
            })
            .max()
            .unwrap_or(0);
        let keep_from = self.pending.len() - hold;
        let rest = self.pending.split_off(keep_from);
        std::mem::replace(&mut self.pending, rest)
    }

    /// The held-back tail, once the stream is over.
    pub(crate) fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// `text` with anything shaped like a credential (an `sk-…` key, a bearer
/// token, an `api_key=…` pair) replaced by `[redacted]`: for text written
/// by other parts of kkrun that never saw the provider's key.
pub fn redact_credentials(text: &str) -> String {
    Redactor::default().redact(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubber_catches_a_secret_split_across_deltas() {
        let redactor = Redactor::new(["sk-secret-key".to_string()]);
        let mut scrubber = TextScrubber::new(&redactor);
        let mut out = String::new();
        for delta in ["key is sk-se", "cret-k", "ey, and sk-", "s is not it"] {
            out.push_str(&scrubber.push(delta));
        }
        out.push_str(&scrubber.flush());
        assert_eq!(out, "key is [redacted], and sk-s is not it");
        let plain = Redactor::default();
        assert_eq!(TextScrubber::new(&plain).push("sk-se"), "sk-se");
    }

    #[test]
    fn redacts_known_secret_and_key_shapes() {
        let redactor = Redactor::new(["local-secret-123".to_string()]);
        let text = "key local-secret-123 and sk-proj-abcdefghijklmnop and Bearer abcdefghij12 and \"api_key\": \"zzzzzzzzzz\"";
        let out = redactor.redact(text);
        assert!(!out.contains("local-secret-123"));
        assert!(!out.contains("sk-proj-abcdefghijklmnop"));
        assert!(!out.contains("abcdefghij12"));
        assert!(!out.contains("zzzzzzzzzz"));
        assert!(out.contains(REDACTED));
    }

    #[test]
    fn excerpt_is_bounded_and_cut_on_a_char_boundary() {
        let redactor = Redactor::default();
        let body = "é".repeat(400);
        let excerpt = redactor.body_excerpt(body.as_bytes());
        assert!(excerpt.len() <= BODY_EXCERPT_BYTES + " …".len());
        assert!(excerpt.ends_with('…'));
        assert_eq!(redactor.body_excerpt(b"  "), "(empty body)");
    }
}

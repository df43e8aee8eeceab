//! The rules for names, model specs and environment variable names, and
//! the "did you mean" suggestions every unknown key or value gets.

/// Task and check names, as a regular expression (for the JSON Schema).
pub(crate) const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9-]*$";
/// Longest task or check name.
pub(crate) const NAME_MAX_LEN: usize = 64;
/// Model specs, as a regular expression (for the JSON Schema): a provider
/// name (built in, or from the configuration's `providers:`), `:`, a model.
pub(crate) const MODEL_PATTERN: &str = "^[a-z0-9][a-z0-9-]*:\\S.*$";
/// The providers a model spec may name without any configuration.
pub const PROVIDERS: &[&str] = &["openai", "openai-responses", "anthropic", "replay"];

/// Checks that `spec` is `provider:model` with a well-formed provider name;
/// whether the provider exists depends on the configuration
/// ([`check_provider_known`]).
pub(crate) fn check_model_form(spec: &str) -> Result<(&str, &str), String> {
    let Some((provider, model)) = spec.split_once(':') else {
        return Err(format!("invalid model `{spec}`: expected `provider:model`"));
    };
    if check_name(provider).is_err() {
        return Err(unknown_provider(provider, spec, PROVIDERS));
    }
    if model.trim().is_empty() || model.starts_with(char::is_whitespace) {
        return Err(format!(
            "invalid model `{spec}`: nothing after `{provider}:`"
        ));
    }
    Ok((provider, model))
}

/// Checks that `provider` (of `spec`) is built in or one of `configured`.
pub(crate) fn check_provider_known(
    provider: &str,
    spec: &str,
    configured: &[&str],
) -> Result<(), String> {
    if PROVIDERS.contains(&provider) || configured.contains(&provider) {
        return Ok(());
    }
    let known: Vec<&str> = PROVIDERS.iter().chain(configured).copied().collect();
    Err(unknown_provider(provider, spec, &known))
}

fn unknown_provider(provider: &str, spec: &str, known: &[&str]) -> String {
    let hint = did_you_mean(provider, known)
        .map(|suggestion| format!(" (hint: did you mean `{suggestion}`?)"))
        .unwrap_or_default();
    format!(
        "unknown provider `{provider}` in model `{spec}`{hint}; valid providers: {}",
        known.join(", ")
    )
}

pub(super) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > NAME_MAX_LEN {
        return Err("it is too long");
    }
    if name.starts_with('-') {
        return Err("it starts with `-`");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("only lowercase letters, digits and `-` are allowed");
    }
    Ok(())
}

/// A valid name close to `name`, to show in the help.
pub(super) fn suggest_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out
        .trim_end_matches('-')
        .chars()
        .take(NAME_MAX_LEN)
        .collect();
    if trimmed.is_empty() {
        "fix-date-parsing".into()
    } else {
        trimmed.trim_end_matches('-').to_owned()
    }
}

pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The closest of `candidates` to `input`, when it is close enough to be a
/// likely typo.
pub(crate) fn did_you_mean<'c>(input: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lowered = input.to_lowercase();
    candidates
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(&lowered, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).clamp(1, 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::super::document::TASK_KEYS;
    use super::super::settings::{KINDS, SETTINGS_KEYS};
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(did_you_mean("chekcs", SETTINGS_KEYS), Some("checks"));
        assert_eq!(did_you_mean("Name", TASK_KEYS), Some("name"));
        assert_eq!(
            did_you_mean("on-failure", SETTINGS_KEYS),
            Some("on_failure")
        );
        assert_eq!(did_you_mean("budgets", SETTINGS_KEYS), Some("budget"));
        assert_eq!(did_you_mean("colour", SETTINGS_KEYS), None);
        assert_eq!(did_you_mean("bughunt", KINDS), Some("bug-hunt"));
    }

    #[test]
    fn names_follow_the_rule() {
        assert!(check_name("fix-iso-weeks").is_ok());
        assert!(check_name("2026-cleanup").is_ok());
        for bad in ["", "-x", "Fix", "fix_it", "fix it", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
        assert_eq!(suggest_name("Fix Dates_now"), "fix-dates-now");
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        assert!(pattern.is_match("fix-iso-weeks") && !pattern.is_match("-x"));
    }

    #[test]
    fn model_specs_name_a_known_provider() {
        assert_eq!(
            check_model_form("openai:gpt-4.1"),
            Ok(("openai", "gpt-4.1"))
        );
        assert!(
            check_model_form("gpt-4.1")
                .unwrap_err()
                .contains("provider:model")
        );
        assert!(check_model_form("opneai:gpt-4.1").is_ok());
        let error = check_provider_known("opneai", "opneai:gpt-4.1", &[]).unwrap_err();
        assert!(error.contains("did you mean `openai`"), "{error}");
        assert!(
            error.contains("openai, openai-responses, anthropic, replay"),
            "{error}"
        );
        let error = check_provider_known("azur", "azur:gpt-4o", &["azure"]).unwrap_err();
        assert!(error.contains("did you mean `azure`"), "{error}");
        assert!(check_provider_known("azure", "azure:gpt-4o", &["azure"]).is_ok());
        assert!(check_model_form("Open AI:gpt").is_err());
        assert!(check_model_form("replay:").is_err());
        let pattern = regex::Regex::new(MODEL_PATTERN).unwrap();
        assert!(pattern.is_match("replay:cassettes/a.jsonl") && !pattern.is_match("replay: x"));
    }
}

//! The JSON Schema of configuration files, derived from the raw types.
//! Committed as `schemas/config.schema.json`.

use serde_json::Value;

use super::raw::ConfigFile;
use crate::json_schema::forbid_null;

/// The configuration-file JSON Schema (draft 2020-12).
pub fn config_schema() -> Value {
    let mut schema = schemars::schema_for!(ConfigFile).to_value();
    forbid_null(&mut schema);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "description".into(),
            "A kkrun configuration file (version 1): `kkrun.yaml` in a repository, or the user's \
             `$XDG_CONFIG_HOME/kkrun/config.yaml`. See docs/providers.md."
                .into(),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_names_every_api_and_provider_key() {
        let text = config_schema().to_string();
        for needle in [
            "openai-responses",
            "api_key_env",
            "max_concurrent_requests",
            "defaults",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert!(!text.contains("\"null\""), "{text}");
    }
}

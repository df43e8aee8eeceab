//! The JSON Schema of task files, derived from the raw types so it cannot
//! drift from what kkrun accepts. Committed as `schemas/task.schema.json`.

use serde_json::Value;

use super::raw::TaskFile;

/// The task-file JSON Schema (draft 2020-12).
pub fn task_schema() -> Value {
    let mut schema = schemars::schema_for!(TaskFile).to_value();
    forbid_null(&mut schema);
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "description".into(),
            "A kkrun task file (version 1): one task at the top level, or a `tasks:` list \
             sharing `defaults:`. See docs/task-file.md."
                .into(),
        );
    }
    schema
}

/// Optional keys are derived from `Option` fields, which schemars describes
/// as "the value or null". kkrun rejects an explicit null (omit the key to
/// get its default), so the schema must too.
fn forbid_null(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("default") == Some(&Value::Null) {
                object.remove("default");
            }
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    object.insert("type".into(), single);
                }
            }
            let null_schema = serde_json::json!({ "type": "null" });
            if let Some(Value::Array(options)) = object.get_mut("anyOf") {
                options.retain(|option| *option != null_schema);
                if options.len() == 1 {
                    let single = options.remove(0);
                    object.remove("anyOf");
                    if let Value::Object(inner) = single {
                        for (key, inner_value) in inner {
                            object.entry(key).or_insert(inner_value);
                        }
                    }
                }
            }
            object.values_mut().for_each(forbid_null);
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_allows_no_null() {
        let text = task_schema().to_string();
        assert!(!text.contains("\"null\""), "{text}");
    }
}

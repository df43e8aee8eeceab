//! Clean-ups shared by the JSON Schemas kkrun derives with schemars: the
//! task-file schema and the tools' argument schemas.

use serde_json::Value;

/// Optional keys are derived from `Option` fields, which schemars describes
/// as "the value or null". kkrun rejects an explicit null in task files
/// (omit the key to get its default), and a tool's argument is left out
/// rather than sent as null, so the schemas say so.
pub(crate) fn forbid_null(value: &mut Value) {
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

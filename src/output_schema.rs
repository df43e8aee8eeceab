//! Structured final output (`output_schema:`): the JSON Schema a task's
//! preview must satisfy with the `output` of its `submit_review`, checked
//! with the `jsonschema` crate both when the task file is loaded (is the
//! schema itself valid?) and when the model submits (does the output
//! match?).

use serde_json::Value;

/// How many invalid outputs go back to the model with the validator's
/// errors; the next invalid one fails the task.
pub const MAX_CORRECTIONS: u32 = 3;

/// At most this many validation errors are listed in one message, so a
/// wildly wrong output does not flood the conversation or the report.
const MAX_LISTED_ERRORS: usize = 10;

/// A compiled `output_schema`.
pub struct OutputSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputSchema").finish_non_exhaustive()
    }
}

impl OutputSchema {
    /// Compiles `schema`; the error says why it is not a usable JSON Schema
    /// (a keyword with a wrong type, an unknown draft, a `$ref` that cannot
    /// be resolved offline).
    pub fn compile(schema: &Value) -> Result<OutputSchema, String> {
        if !schema.is_object() && !schema.is_boolean() {
            return Err(format!(
                "a JSON Schema is an object (or `true`/`false`), not {}",
                kind(schema)
            ));
        }
        jsonschema::validator_for(schema)
            .map(|validator| OutputSchema { validator })
            .map_err(|e| format!("not a valid JSON Schema: {e}"))
    }

    /// Checks `output`; the error lists what is wrong, each problem with
    /// the JSON Pointer of the offending value (`/` for the whole output).
    pub fn check(&self, output: &Value) -> Result<(), String> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(output)
            .map(|error| {
                let path = error.instance_path().to_string();
                let path = if path.is_empty() {
                    "/".to_string()
                } else {
                    path
                };
                format!("at `{path}`: {error}")
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let mut listed: Vec<String> = problems.iter().take(MAX_LISTED_ERRORS).cloned().collect();
        if problems.len() > MAX_LISTED_ERRORS {
            listed.push(format!("… and {} more", problems.len() - MAX_LISTED_ERRORS));
        }
        Err(listed.join("; "))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outputs_are_checked_with_pointers_to_the_problems() {
        let schema = OutputSchema::compile(&json!({
            "type": "object",
            "properties": {"risk": {"enum": ["low", "high"]}, "files": {"type": "array", "items": {"type": "string"}}},
            "required": ["risk"],
            "additionalProperties": false
        }))
        .unwrap();
        schema
            .check(&json!({"risk": "low", "files": ["a"]}))
            .unwrap();
        let problems = schema
            .check(&json!({"risk": "medium", "files": [1], "extra": true}))
            .unwrap_err();
        assert!(problems.contains("at `/risk`"), "{problems}");
        assert!(problems.contains("at `/files/0`"), "{problems}");
        assert!(problems.contains("extra"), "{problems}");
        let missing = schema.check(&json!({})).unwrap_err();
        assert!(missing.contains("at `/`"), "{missing}");
        assert!(
            missing.contains("\"risk\" is a required property"),
            "{missing}"
        );
    }

    #[test]
    fn invalid_schemas_are_refused_with_the_reason() {
        let error = OutputSchema::compile(&json!({"type": "objekt"})).unwrap_err();
        assert!(error.starts_with("not a valid JSON Schema"), "{error}");
        let error = OutputSchema::compile(&json!("object")).unwrap_err();
        assert!(error.contains("not a string"), "{error}");
        let error =
            OutputSchema::compile(&json!({"$ref": "https://example.com/s.json"})).unwrap_err();
        assert!(error.starts_with("not a valid JSON Schema"), "{error}");
    }

    #[test]
    fn long_lists_of_problems_are_cut() {
        let schema =
            OutputSchema::compile(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let problems = schema
            .check(&json!((0..25).collect::<Vec<_>>()))
            .unwrap_err();
        assert!(problems.ends_with("… and 15 more"), "{problems}");
    }
}

//! The JSON Schema of task files, derived from the raw types so it cannot
//! drift from what kkrun accepts. Committed as `schemas/task.schema.json`.

use serde_json::Value;

use super::raw::TaskFile;
use crate::json_schema::forbid_null;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_allows_no_null() {
        let text = task_schema().to_string();
        assert!(!text.contains("\"null\""), "{text}");
    }
}

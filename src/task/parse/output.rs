//! `output_schema:`: an inline JSON Schema (written as YAML) or the path of
//! a JSON Schema file. An inline schema is converted to JSON and compiled
//! here, so a broken one is reported at its line; a file is read and
//! compiled when the task is resolved.

use serde_json::{Map, Number, Value};
use serde_saphyr::{Location, Spanned};

use super::Walker;
use super::values::spanned;
use crate::output_schema::OutputSchema;
use crate::task::node::{Node, SpannedNode};
use crate::task::raw::OutputSchemaSetting;

const HELP: &str = "give a JSON Schema inline (`output_schema: {type: object, properties: …}`) \
     or the path of a `.json` schema file, relative to the task file";

impl Walker<'_> {
    pub(super) fn output_schema(
        &mut self,
        value: &SpannedNode,
        key: &str,
    ) -> Option<Spanned<OutputSchemaSetting>> {
        match &value.value {
            Node::Str(path) if !path.trim().is_empty() => Some(spanned(
                OutputSchemaSetting::File(path.trim().to_string()),
                value,
            )),
            Node::Map(_) | Node::Bool(_) => {
                let schema = match to_json(value) {
                    Ok(schema) => schema,
                    Err((location, problem)) => {
                        self.error_at(location, format!("`{key}`: {problem}"), Some(HELP.into()));
                        return None;
                    }
                };
                if let Err(problem) = OutputSchema::compile(&schema) {
                    self.error_at(
                        value.referenced,
                        format!("`{key}` is {problem}"),
                        Some(
                            "fix the schema (kkrun checks it with the JSON Schema meta-schema; \
                             `$ref`s must point inside it)"
                                .into(),
                        ),
                    );
                    return None;
                }
                Some(spanned(OutputSchemaSetting::Inline(schema), value))
            }
            other => {
                self.error_at(
                    value.referenced,
                    format!(
                        "`{key}` must be a JSON Schema or the path of one, found {}",
                        other.type_name()
                    ),
                    Some(HELP.into()),
                );
                None
            }
        }
    }
}

/// The YAML tree as JSON; keys must be strings, numbers must fit JSON.
fn to_json(node: &SpannedNode) -> Result<Value, (Location, String)> {
    Ok(match &node.value {
        Node::Null => Value::Null,
        Node::Bool(flag) => Value::Bool(*flag),
        Node::Int(number) => {
            let number = i64::try_from(*number)
                .map(Number::from)
                .or_else(|_| u64::try_from(*number).map(Number::from))
                .map_err(|_| {
                    (
                        node.referenced,
                        format!("the number {number} is too large for JSON"),
                    )
                })?;
            Value::Number(number)
        }
        Node::Float(number) => Number::from_f64(*number)
            .map(Value::Number)
            .ok_or((node.referenced, format!("{number} is not a JSON number")))?,
        Node::Str(text) => Value::String(text.clone()),
        Node::Seq(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Node::Map(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let Node::Str(name) = &key.value else {
                    return Err((
                        key.referenced,
                        format!(
                            "schema keys must be strings, found {} (quote it)",
                            key.value.type_name()
                        ),
                    ));
                };
                object.insert(name.clone(), to_json(value)?);
            }
            Value::Object(object)
        }
    })
}

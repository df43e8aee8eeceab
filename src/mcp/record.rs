//! What a recorded run keeps of its MCP servers, and how a replay answers
//! from it: the tools each server listed, and every call with the result
//! the model was given (already redacted and capped).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::ListedTool;
use crate::events::ToolOutcome;
use crate::tools::ToolResult;

/// How a server died during the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Death {
    /// `exited with status 7`, `was killed by signal 9`, ...
    pub status: String,
    /// Its last stderr lines, redacted.
    #[serde(default)]
    pub stderr_tail: String,
}

/// One `{"mcp": ...}` line of a cassette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// The tools a server listed when it started.
    Tools {
        /// The server's name.
        server: String,
        /// Its tools, before the task's filters.
        tools: Vec<ListedTool>,
    },
    /// One call and the result the model was given.
    Call {
        /// The server's name.
        server: String,
        /// The tool as the model named it (`<server>__<tool>`).
        tool: String,
        /// The arguments the model sent.
        arguments: Value,
        /// The text the model was given.
        content: String,
        /// How the call ended.
        outcome: ToolOutcome,
        /// Set when this call found the server dead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        death: Option<Death>,
    },
}

/// The MCP records of a replayed cassette.
#[derive(Debug)]
pub(crate) struct ReplayLog {
    records: Vec<Record>,
    used: Vec<bool>,
}

impl ReplayLog {
    /// The log of `records`; lines this build cannot read are skipped (a
    /// call that needs one then finds no recorded result and says so).
    pub(crate) fn new(records: Vec<Value>) -> ReplayLog {
        let records: Vec<Record> = records
            .into_iter()
            .filter_map(|value| serde_json::from_value(value).ok())
            .collect();
        let used = vec![false; records.len()];
        ReplayLog { records, used }
    }

    /// The tools `server` listed, if the cassette recorded its start.
    pub(crate) fn tools(&self, server: &str) -> Option<Vec<ListedTool>> {
        self.records.iter().find_map(|record| match record {
            Record::Tools { server: s, tools } if s == server => Some(tools.clone()),
            _ => None,
        })
    }

    /// The first unused recorded call of `tool` on `server` with exactly
    /// these arguments: its result, and the server's death if the call found
    /// it dead.
    pub(crate) fn call(
        &mut self,
        server: &str,
        tool: &str,
        arguments: &Value,
    ) -> Option<(ToolResult, Option<Death>)> {
        let index = self.records.iter().enumerate().position(|(i, record)| {
            !self.used[i]
                && matches!(record, Record::Call { server: s, tool: t, arguments: a, .. }
                    if s == server && t == tool && a == arguments)
        })?;
        self.used[index] = true;
        match &self.records[index] {
            Record::Call {
                content,
                outcome,
                death,
                ..
            } => Some((
                ToolResult {
                    content: content.clone(),
                    outcome: *outcome,
                },
                death.clone(),
            )),
            Record::Tools { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_replay_in_order_and_once_each() {
        let call = |content: &str| {
            serde_json::to_value(Record::Call {
                server: "s".into(),
                tool: "s__t".into(),
                arguments: json!({"k": 1}),
                content: content.into(),
                outcome: ToolOutcome::Ok,
                death: None,
            })
            .unwrap()
        };
        let tools = serde_json::to_value(Record::Tools {
            server: "s".into(),
            tools: vec![],
        })
        .unwrap();
        assert_eq!(tools["record"], "tools");
        let mut log = ReplayLog::new(vec![
            tools,
            call("one"),
            json!({"record": "future"}),
            call("two"),
        ]);
        assert_eq!(log.tools("s"), Some(vec![]));
        assert_eq!(log.tools("other"), None);
        let first = log.call("s", "s__t", &json!({"k": 1})).unwrap();
        assert_eq!(first.0.content, "one");
        assert_eq!(
            log.call("s", "s__t", &json!({"k": 1})).unwrap().0.content,
            "two"
        );
        assert!(log.call("s", "s__t", &json!({"k": 1})).is_none());
        assert!(log.call("s", "s__t", &json!({"k": 2})).is_none());
    }
}

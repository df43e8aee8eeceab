//! Loop guards: a model that repeats the same call, or says nothing at all,
//! is warned and then stopped instead of burning the budget.

use crate::provider::ToolCall;

/// Identical calls in a row that earn a warning.
pub const REPEAT_WARNING: u32 = 3;
/// Identical calls in a row that end the stage as stuck.
pub const REPEAT_STUCK: u32 = 5;
/// Empty replies (no text, no tool call) in a row that end the stage as stuck.
pub const EMPTY_REPLIES_STUCK: u32 = 2;

/// What the guard makes of one more tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Nothing unusual.
    Fine,
    /// The call repeats the previous ones this many times in a row: warn.
    Warn(u32),
    /// Repeated this many times in a row: the stage is stuck.
    Stuck(u32),
}

/// Counts identical consecutive tool calls (same tool, same arguments
/// after JSON normalisation, across turns) and consecutive empty replies.
#[derive(Debug, Default)]
pub(crate) struct LoopGuard {
    last_call: Option<(String, String)>,
    repeats: u32,
    empty_replies: u32,
}

impl LoopGuard {
    pub(crate) fn observe_call(&mut self, call: &ToolCall) -> Repeat {
        let key = (call.name.clone(), normalized_arguments(&call.arguments));
        if self.last_call.as_ref() == Some(&key) {
            self.repeats += 1;
        } else {
            self.last_call = Some(key);
            self.repeats = 1;
        }
        if self.repeats >= REPEAT_STUCK {
            Repeat::Stuck(self.repeats)
        } else if self.repeats >= REPEAT_WARNING {
            Repeat::Warn(self.repeats)
        } else {
            Repeat::Fine
        }
    }

    /// Records a reply; true when it is the `EMPTY_REPLIES_STUCK`th empty
    /// one in a row.
    pub(crate) fn observe_reply(&mut self, empty: bool) -> bool {
        if empty {
            self.empty_replies += 1;
        } else {
            self.empty_replies = 0;
        }
        self.empty_replies >= EMPTY_REPLIES_STUCK
    }
}

/// Arguments with key order and whitespace normalised, so `{"a":1, "b":2}`
/// and `{"b": 2, "a": 1}` count as the same call. Invalid JSON is compared
/// as written.
fn normalized_arguments(arguments: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(arguments) {
        Ok(value) => sort_keys(value).to_string(),
        Err(_) => arguments.trim().to_string(),
    }
}

fn sort_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

/// The text appended to a repeated call's result.
pub(crate) fn repeat_warning(tool: &str, repeats: u32) -> String {
    format!(
        "\n\n[kkrun] warning: you have made this exact `{tool}` call {repeats} times in a row; repeating it \
         will not change the result. Try a different approach. At {REPEAT_STUCK} identical calls in a row the \
         stage ends as stuck."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "x".to_string(),
            name: name.to_string(),
            arguments: arguments.to_string(),
        }
    }

    #[test]
    fn identical_calls_warn_at_three_and_stop_at_five() {
        let mut guard = LoopGuard::default();
        let same = [
            r#"{"path":"a","start_line":1}"#,
            r#"{"start_line": 1, "path": "a"}"#,
            r#"{ "path" : "a", "start_line" : 1 }"#,
            r#"{"path":"a","start_line":1}"#,
            r#"{"path":"a","start_line":1}"#,
        ];
        let seen: Vec<Repeat> = same
            .iter()
            .map(|args| guard.observe_call(&call("read_file", args)))
            .collect();
        assert_eq!(
            seen,
            [
                Repeat::Fine,
                Repeat::Fine,
                Repeat::Warn(3),
                Repeat::Warn(4),
                Repeat::Stuck(5)
            ]
        );
    }

    #[test]
    fn a_different_call_resets_the_count() {
        let mut guard = LoopGuard::default();
        for _ in 0..4 {
            guard.observe_call(&call("grep", r#"{"pattern":"x"}"#));
        }
        assert_eq!(
            guard.observe_call(&call("grep", r#"{"pattern":"y"}"#)),
            Repeat::Fine
        );
        assert_eq!(
            guard.observe_call(&call("glob", r#"{"pattern":"y"}"#)),
            Repeat::Fine
        );
        assert_eq!(
            guard.observe_call(&call("glob", r#"{"pattern":"y"}"#)),
            Repeat::Fine
        );
        assert_eq!(
            guard.observe_call(&call("glob", r#"{"pattern":"y"}"#)),
            Repeat::Warn(3)
        );
    }

    #[test]
    fn two_empty_replies_in_a_row_are_stuck() {
        let mut guard = LoopGuard::default();
        assert!(!guard.observe_reply(true));
        assert!(!guard.observe_reply(false));
        assert!(!guard.observe_reply(true));
        assert!(guard.observe_reply(true));
    }
}

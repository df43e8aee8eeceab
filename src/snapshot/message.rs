//! The commit message of a snapshot: a subject and `Kkrun-*` trailers.

use super::SnapshotMeta;

/// Trailer keys, also read back by `list`.
pub(crate) const RUN: &str = "Kkrun-Run";
pub(crate) const TASK: &str = "Kkrun-Task";
pub(crate) const STAGE: &str = "Kkrun-Stage";
pub(crate) const STATUS: &str = "Kkrun-Status";
pub(crate) const WORKSPACE: &str = "Kkrun-Workspace";
pub(crate) const FILES_CHANGED: &str = "Kkrun-Files-Changed";

/// What goes into one snapshot's message.
pub(crate) struct MessageFields<'a> {
    pub run_id: &'a str,
    pub task: &'a str,
    pub meta: &'a SnapshotMeta,
    /// Repository-relative workspace; empty for the root.
    pub workspace: &'a str,
    pub files_changed: usize,
}

/// Builds `kkrun <stage>: <task>` plus trailers.
pub(crate) fn build(fields: &MessageFields<'_>) -> String {
    let meta = fields.meta;
    let mut message = format!("kkrun {}: {}\n\n", meta.stage, fields.task);
    let mut trailer = |key: &str, value: &str| {
        message.push_str(key);
        message.push_str(": ");
        message.push_str(&one_line(value));
        message.push('\n');
    };
    trailer(RUN, fields.run_id);
    trailer(TASK, fields.task);
    trailer(STAGE, &meta.stage);
    trailer(
        STATUS,
        if meta.status.trim().is_empty() {
            "unknown"
        } else {
            &meta.status
        },
    );
    trailer(
        WORKSPACE,
        if fields.workspace.is_empty() {
            "."
        } else {
            fields.workspace
        },
    );
    trailer(FILES_CHANGED, &fields.files_changed.to_string());
    if let Some(usage) = meta.usage {
        trailer("Kkrun-Input-Tokens", &usage.input_tokens.to_string());
        trailer(
            "Kkrun-Cached-Input-Tokens",
            &usage.cached_input_tokens.to_string(),
        );
        trailer("Kkrun-Output-Tokens", &usage.output_tokens.to_string());
    }
    if let Some(cost) = meta.cost_usd.filter(|cost| cost.is_finite()) {
        trailer("Kkrun-Cost-Usd", &format!("{cost:.6}"));
    }
    message
}

/// Trailers must stay on one line, or they would end the trailer block.
fn one_line(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of trailer `key` in `message`, if present.
pub(crate) fn trailer<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    message.lines().rev().find_map(|line| {
        let (k, v) = line.split_once(": ")?;
        (k == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Usage;

    #[test]
    fn subject_and_trailers() {
        let meta = SnapshotMeta {
            stage: "code".into(),
            status: "ok\nwith newline".into(),
            usage: Some(Usage {
                input_tokens: 1200,
                cached_input_tokens: 200,
                output_tokens: 340,
                estimated: false,
                cache_write_input_tokens: 0,
                reasoning_tokens: 0,
            }),
            cost_usd: Some(0.0125),
        };
        let message = build(&MessageFields {
            run_id: "20261124T101500Z-ab12cd",
            task: "fix-dates",
            meta: &meta,
            workspace: "",
            files_changed: 3,
        });
        assert_eq!(
            message,
            "kkrun code: fix-dates\n\n\
             Kkrun-Run: 20261124T101500Z-ab12cd\n\
             Kkrun-Task: fix-dates\n\
             Kkrun-Stage: code\n\
             Kkrun-Status: ok with newline\n\
             Kkrun-Workspace: .\n\
             Kkrun-Files-Changed: 3\n\
             Kkrun-Input-Tokens: 1200\n\
             Kkrun-Cached-Input-Tokens: 200\n\
             Kkrun-Output-Tokens: 340\n\
             Kkrun-Cost-Usd: 0.012500\n"
        );
        assert_eq!(trailer(&message, STATUS), Some("ok with newline"));
        assert_eq!(trailer(&message, FILES_CHANGED), Some("3"));
        assert_eq!(trailer(&message, "Missing"), None);
    }
}

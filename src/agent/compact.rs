//! Context management: when a conversation nears the model's context
//! window, older tool outputs are elided first, then older turns are folded
//! into one summary message that every later compaction keeps (and extends).
//!
//! Sizes are estimated at four characters per token; the provider's own
//! count of the previous request is used when it is larger.

use std::collections::HashMap;

use crate::provider::{Message, ToolSpec};

/// Compaction starts when the estimate passes this share of the window...
const TRIGGER_SHARE: f64 = 0.80;
/// ...and stops once it is under this share.
const TARGET_SHARE: f64 = 0.60;
/// The newest tool outputs, kept whole while older ones are elided.
const KEEP_RECENT_TOOL_OUTPUTS: usize = 4;
/// Outputs shorter than this are not worth eliding.
const MIN_ELIDED_CHARS: usize = 400;
/// The newest messages, never folded into the summary.
const KEEP_RECENT_MESSAGES: usize = 6;
/// The summary's own size cap; its oldest entries go first.
const MAX_SUMMARY_CHARS: usize = 24_000;

/// First line of the summary message; marks it for later compactions.
pub(crate) const SUMMARY_HEADER: &str = "[kkrun] Summary of the earlier part of this stage";
const ELIDED_PREFIX: &str = "[kkrun] output elided to save context";

/// Context window of a model, in tokens, when the stage request does not
/// say: known families by name, 128 000 otherwise.
pub fn default_context_window(model: &str) -> u64 {
    let model = model.to_ascii_lowercase();
    let model = model.rsplit('/').next().unwrap_or(&model);
    if model.starts_with("gpt-4.1") {
        1_000_000
    } else if model.starts_with("gpt-5") {
        400_000
    } else if model.starts_with("claude")
        || model.starts_with("o1")
        || model.starts_with("o3")
        || model.starts_with("o4")
    {
        200_000
    } else if model.starts_with("gemini") {
        1_000_000
    } else if model.starts_with("gpt-3.5") {
        16_000
    } else {
        128_000
    }
}

/// Tokens estimated from characters (four per token, rounded up).
pub fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// Characters of one message as the model sees it.
fn message_chars(message: &Message) -> usize {
    match message {
        Message::User { content } => content.len(),
        Message::Assistant {
            content,
            tool_calls,
            ..
        } => {
            content.len()
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.len() + c.id.len())
                    .sum::<usize>()
        }
        Message::Tool {
            call_id, content, ..
        } => call_id.len() + content.len(),
    }
}

/// Estimated tokens of a request's fixed part: system prompt and tools.
pub fn fixed_tokens(system: &str, tools: &[ToolSpec]) -> u64 {
    let tool_chars: usize = tools
        .iter()
        .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
        .sum();
    estimate_tokens(system.len() + tool_chars)
}

/// Estimated tokens of `messages`.
pub fn messages_tokens(messages: &[Message]) -> u64 {
    estimate_tokens(messages.iter().map(message_chars).sum())
}

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// Estimated tokens before.
    pub before_tokens: u64,
    /// Estimated tokens after.
    pub after_tokens: u64,
    /// Tool outputs replaced by a short note.
    pub elided_outputs: usize,
    /// Messages folded into the summary.
    pub summarized_messages: usize,
}

/// Shrinks `messages` when `fixed + messages` (or `reported`, the provider's
/// count for the previous request, when larger) passes 80 % of `window`.
/// The first `protected` messages (the stage's task) are never touched.
/// Returns `None` when nothing needed doing.
pub fn compact(
    messages: &mut Vec<Message>,
    fixed: u64,
    reported: u64,
    protected: usize,
    window: u64,
) -> Option<Compaction> {
    let trigger = (window as f64 * TRIGGER_SHARE) as u64;
    let target = (window as f64 * TARGET_SHARE) as u64;
    let estimated = fixed + messages_tokens(messages);
    let before = estimated.max(reported);
    if before <= trigger {
        return None;
    }
    // When the provider counted more than the estimate (dense text, many
    // small tokens), scale every later estimate the same way.
    let scale = if reported > estimated && estimated > 0 {
        reported as f64 / estimated as f64
    } else {
        1.0
    };
    let protected = protected.min(messages.len());
    let mut report = Compaction {
        before_tokens: before,
        after_tokens: before,
        elided_outputs: 0,
        summarized_messages: 0,
    };
    let size = |messages: &[Message]| ((fixed + messages_tokens(messages)) as f64 * scale) as u64;

    // 1. Elide old tool outputs, oldest first, keeping the newest whole.
    let tool_indices: Vec<usize> = (protected..messages.len())
        .filter(|&i| matches!(messages[i], Message::Tool { .. }))
        .collect();
    let old_tools = tool_indices.len().saturating_sub(KEEP_RECENT_TOOL_OUTPUTS);
    report.elided_outputs += elide(messages, &tool_indices[..old_tools], |m| size(m) <= target);

    // 2. Fold older turns into the summary.
    if size(messages) > target {
        report.summarized_messages = summarize(messages, protected);
    }

    // 3. Still too big (a few huge recent outputs): elide those too,
    //    oldest first; an output larger than the window cannot be kept.
    if size(messages) > target {
        let recent: Vec<usize> = (protected..messages.len())
            .filter(|&i| matches!(messages[i], Message::Tool { .. }))
            .collect();
        report.elided_outputs += elide(messages, &recent, |m| size(m) <= target);
    }

    report.after_tokens = size(messages);
    (report.elided_outputs > 0 || report.summarized_messages > 0).then_some(report)
}

/// Replaces the content of the tool messages at `indices` (in order) with a
/// note, until `small_enough`.
fn elide(
    messages: &mut [Message],
    indices: &[usize],
    small_enough: impl Fn(&[Message]) -> bool,
) -> usize {
    let names = tool_names(messages);
    let mut elided = 0;
    for &index in indices {
        if small_enough(messages) {
            break;
        }
        if let Message::Tool {
            call_id, content, ..
        } = &mut messages[index]
        {
            if content.len() < MIN_ELIDED_CHARS || content.starts_with(ELIDED_PREFIX) {
                continue;
            }
            let tool = names
                .get(call_id.as_str())
                .map_or("the tool", String::as_str);
            let first_line = content.lines().next().unwrap_or("");
            let first_line: String = first_line.chars().take(160).collect();
            *content = format!(
                "{ELIDED_PREFIX} ({} characters from `{tool}`; it began: {first_line}). Call the tool again if you need it.",
                content.len()
            );
            elided += 1;
        }
    }
    elided
}

fn tool_names(messages: &[Message]) -> HashMap<String, String> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Assistant { tool_calls, .. } => Some(tool_calls),
            _ => None,
        })
        .flatten()
        .map(|call| (call.id.clone(), call.name.clone()))
        .collect()
}

/// Folds `messages[protected..cut]` (the previous summary included) into one
/// summary message at `protected`. The kept tail starts at an assistant
/// message so that no tool result loses its call. Returns how many
/// messages were folded (the old summary not counted).
fn summarize(messages: &mut Vec<Message>, protected: usize) -> usize {
    let mut cut = messages.len().saturating_sub(KEEP_RECENT_MESSAGES);
    while cut < messages.len() && !matches!(messages[cut], Message::Assistant { .. }) {
        cut += 1;
    }
    if cut >= messages.len() {
        // No assistant message in the tail: look back for the last one.
        cut = (protected..messages.len())
            .rev()
            .find(|&i| matches!(messages[i], Message::Assistant { .. }))
            .unwrap_or(protected);
    }
    let start = protected;
    let previous_summary = match messages.get(start) {
        Some(Message::User { content }) if content.starts_with(SUMMARY_HEADER) => {
            Some(content.clone())
        }
        _ => None,
    };
    let first_new = start + usize::from(previous_summary.is_some());
    if cut <= first_new {
        return 0;
    }

    let names = tool_names(messages);
    let mut entries: Vec<String> = Vec::new();
    let mut folded_before = 0usize;
    if let Some(previous) = &previous_summary {
        let mut lines = previous.lines();
        let header = lines.next().unwrap_or("");
        folded_before = header
            .split("folded ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        entries.extend(lines.map(str::to_string));
    }
    for message in &messages[first_new..cut] {
        entries.extend(summary_entries(message, &names));
    }
    let folded = cut - first_new;
    let total_folded = folded_before + folded;

    // Keep the summary bounded: drop its oldest entries, say so.
    let mut dropped = 0;
    while entries.iter().map(|e| e.len() + 1).sum::<usize>() > MAX_SUMMARY_CHARS
        && entries.len() > 1
    {
        entries.remove(0);
        dropped += 1;
    }
    let mut summary = format!(
        "{SUMMARY_HEADER} (folded {total_folded} messages to fit the context window; tool outputs are not repeated, call a tool again if you need its output):"
    );
    if dropped > 0 {
        summary.push_str(&format!("\n- ({dropped} oldest entries dropped)"));
    }
    for entry in entries
        .into_iter()
        .filter(|e| !e.starts_with("- (") || !e.ends_with("oldest entries dropped)"))
    {
        summary.push('\n');
        summary.push_str(&entry);
    }
    messages.splice(start..cut, [Message::User { content: summary }]);
    folded
}

fn summary_entries(message: &Message, names: &HashMap<String, String>) -> Vec<String> {
    let clip = |text: &str, max: usize| -> String {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if flat.chars().count() > max {
            format!("{}…", flat.chars().take(max).collect::<String>())
        } else {
            flat
        }
    };
    match message {
        Message::User { content } => vec![format!("- kkrun said: {}", clip(content, 200))],
        Message::Assistant {
            content,
            tool_calls,
            ..
        } => {
            let mut entries = Vec::new();
            if !content.trim().is_empty() {
                entries.push(format!("- you said: {}", clip(content, 300)));
            }
            for call in tool_calls {
                entries.push(format!(
                    "- you called `{}` {}",
                    call.name,
                    clip(&call.arguments, 200)
                ));
            }
            entries
        }
        Message::Tool {
            call_id,
            content,
            is_error,
        } => {
            let tool = names.get(call_id.as_str()).map_or("tool", String::as_str);
            let status = if *is_error { "failed" } else { "ok" };
            let first_line = content.lines().next().unwrap_or("");
            vec![format!("  → `{tool}` {status}: {}", clip(first_line, 150))]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ToolCall;

    fn turn(n: usize, output_chars: usize) -> [Message; 2] {
        let id = format!("call_{n}");
        [
            Message::Assistant {
                content: format!("step {n}"),
                tool_calls: vec![ToolCall {
                    id: id.clone(),
                    name: "read_file".to_string(),
                    arguments: format!("{{\"path\":\"f{n}.rs\"}}"),
                }],
                reasoning: Vec::new(),
            },
            Message::Tool {
                call_id: id,
                content: format!("f{n}.rs: lines 1-9 of 9\n{}", "x".repeat(output_chars)),
                is_error: false,
            },
        ]
    }

    fn conversation(turns: usize, output_chars: usize) -> Vec<Message> {
        let mut messages = vec![Message::User {
            content: "the task".to_string(),
        }];
        for n in 0..turns {
            messages.extend(turn(n, output_chars));
        }
        messages
    }

    #[test]
    fn nothing_happens_below_the_trigger() {
        let mut messages = conversation(3, 100);
        let before = messages.clone();
        assert_eq!(compact(&mut messages, 100, 0, 1, 100_000), None);
        assert_eq!(messages, before);
    }

    #[test]
    fn old_tool_outputs_are_elided_first() {
        // 10 turns of ~1000 tokens of output each; window 12 500 tokens:
        // trigger at 10 000, target 7 500.
        let mut messages = conversation(10, 4000);
        let report = compact(&mut messages, 0, 0, 1, 12_500).unwrap();
        assert_eq!(report.summarized_messages, 0);
        assert!(report.elided_outputs >= 3, "{report:?}");
        assert!(report.after_tokens <= 7_500, "{report:?}");
        assert_eq!(messages.len(), 21);
        let Message::Tool { content, .. } = &messages[2] else {
            panic!("expected a tool message");
        };
        assert!(content.starts_with(ELIDED_PREFIX), "{content}");
        assert!(
            content.contains("from `read_file`; it began: f0.rs: lines 1-9 of 9"),
            "{content}"
        );
        // The newest outputs are whole.
        let Message::Tool { content, .. } = &messages[20] else {
            panic!("expected a tool message");
        };
        assert!(content.len() > 4000);
    }

    #[test]
    fn older_turns_are_summarised_and_the_summary_survives() {
        // Many small turns: eliding outputs cannot help, summarising must.
        let mut messages = conversation(200, 300);
        let report = compact(&mut messages, 0, 0, 1, 20_000).unwrap();
        assert!(report.summarized_messages > 300, "{report:?}");
        assert_eq!(
            messages[0],
            Message::User {
                content: "the task".to_string()
            }
        );
        let Message::User { content: summary } = &messages[1] else {
            panic!("expected the summary");
        };
        assert!(summary.starts_with(SUMMARY_HEADER), "{summary}");
        assert!(
            summary.contains("- you called `read_file` {\"path\":\"f0.rs\"}"),
            "{summary}"
        );
        assert!(
            summary.contains("→ `read_file` ok: f0.rs: lines 1-9 of 9"),
            "{summary}"
        );
        assert!(matches!(messages[2], Message::Assistant { .. }));
        assert!(report.after_tokens <= 12_000, "{report:?}");

        // Grow the conversation again; the next compaction keeps the old
        // summary's entries in the new one.
        for n in 200..400 {
            messages.extend(turn(n, 300));
        }
        let second = compact(&mut messages, 0, 0, 1, 20_000).unwrap();
        assert!(second.summarized_messages > 300, "{second:?}");
        let Message::User { content: summary } = &messages[1] else {
            panic!("expected the summary");
        };
        assert!(summary.starts_with(SUMMARY_HEADER), "{summary}");
        assert!(summary.contains("f250.rs"), "{summary}");
        assert!(summary.len() <= MAX_SUMMARY_CHARS + 400);
        assert_eq!(
            messages.iter().filter(|m| matches!(m, Message::User { content } if content.starts_with(SUMMARY_HEADER))).count(),
            1
        );
    }

    #[test]
    fn reported_tokens_trigger_compaction() {
        let mut messages = conversation(20, 2000);
        let report = compact(&mut messages, 0, 90_000, 1, 100_000).unwrap();
        assert_eq!(report.before_tokens, 90_000);
    }

    #[test]
    fn default_windows_by_family() {
        assert_eq!(default_context_window("gpt-4.1-mini"), 1_000_000);
        assert_eq!(default_context_window("claude-sonnet-4-5"), 200_000);
        assert_eq!(default_context_window("qwen2.5-coder"), 128_000);
    }
}

//! Secrets out of recorded response bodies, found on the reassembled
//! stream: a model that echoes a key streams it in pieces (`"sk-li"`,
//! `"ve-12"`, `"34"`), and no single SSE frame holds it whole.
//!
//! Every string in every JSON `data:` line belongs to a channel: its JSON
//! path, with each object's `index` field standing for its position (OpenAI
//! numbers choices and tool calls that way, Anthropic its content blocks).
//! The fragments of one channel are joined in stream order, the secrets are
//! found in the joined text, and each occurrence is replaced by
//! [`REDACTED`] in the fragment where it starts and removed from the
//! fragments it runs on into. Frames that change are re-serialized; every
//! other byte stays as the server sent it, so replay parses the same stream.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::Value;

use crate::redact::{REDACTED, Redactor};

/// One string of one JSON frame.
struct Fragment {
    /// Which `data:` line (index into the body's lines).
    line: usize,
    /// JSON Pointer to the string inside that line's value.
    pointer: String,
    text: String,
}

/// `body` with every secret of `redactor` removed, across frames.
pub(crate) fn redact_body(redactor: &Redactor, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if redactor.is_empty() {
        return text.into_owned();
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // A complete (non-streamed) response: one JSON document.
        if let Ok(mut value) = serde_json::from_str::<Value>(&text)
            && redactor.redact_json(&mut value)
        {
            return serde_json::to_string(&value).unwrap_or_else(|_| REDACTED.to_string());
        }
        return redactor.redact(&text).into_owned();
    }
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let mut frames: BTreeMap<usize, Value> = BTreeMap::new();
    let mut channels: BTreeMap<String, Vec<Fragment>> = BTreeMap::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(payload) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(payload.trim()) else {
            continue;
        };
        collect(
            &value,
            n,
            &mut String::new(),
            &mut String::new(),
            &mut channels,
        );
        frames.insert(n, value);
    }
    let mut changed: BTreeMap<usize, ()> = BTreeMap::new();
    for fragments in channels.values() {
        let joined: String = fragments.iter().map(|f| f.text.as_str()).collect();
        let spans = redactor.find_spans(&joined);
        if spans.is_empty() {
            continue;
        }
        let mut offset = 0;
        for fragment in fragments {
            let range = offset..offset + fragment.text.len();
            offset = range.end;
            let Some(new_text) = rewrite(&joined, range, &spans) else {
                continue;
            };
            if let Some(slot) = frames
                .get_mut(&fragment.line)
                .and_then(|value| value.pointer_mut(&fragment.pointer))
            {
                *slot = Value::String(new_text);
                changed.insert(fragment.line, ());
            }
        }
    }
    for n in changed.keys() {
        let Some(value) = frames.get(n) else { continue };
        let ending = if lines[*n].ends_with("\r\n") {
            "\r\n"
        } else if lines[*n].ends_with('\n') {
            "\n"
        } else {
            ""
        };
        let json = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
        lines[*n] = format!("data: {json}{ending}");
    }
    // Secrets outside JSON frames (an error page, a comment line) or whole
    // inside one string are caught here.
    redactor.redact(&lines.concat()).into_owned()
}

/// Records every string of `value` under its channel.
fn collect(
    value: &Value,
    line: usize,
    pointer: &mut String,
    channel: &mut String,
    channels: &mut BTreeMap<String, Vec<Fragment>>,
) {
    match value {
        Value::String(text) => channels.entry(channel.clone()).or_default().push(Fragment {
            line,
            pointer: pointer.clone(),
            text: text.clone(),
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let (p, c) = (pointer.len(), channel.len());
                pointer.push_str(&format!("/{i}"));
                match item.get("index").and_then(Value::as_u64) {
                    Some(index) => channel.push_str(&format!("/#{index}")),
                    None => channel.push_str(&format!("/{i}")),
                }
                collect(item, line, pointer, channel, channels);
                pointer.truncate(p);
                channel.truncate(c);
            }
        }
        Value::Object(map) => {
            // An `index` at the top level (Anthropic's content blocks) or an
            // `output_index` (the Responses API's output items) is not
            // covered by the array rule above.
            let c = channel.len();
            if channel.is_empty() {
                for key in ["index", "output_index"] {
                    if let Some(index) = map.get(key).and_then(Value::as_u64) {
                        channel.push_str(&format!("#{key}{index}"));
                    }
                }
            }
            for (key, item) in map {
                let (p, c) = (pointer.len(), channel.len());
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointer.push('/');
                pointer.push_str(&escaped);
                channel.push('/');
                channel.push_str(&escaped);
                collect(item, line, pointer, channel, channels);
                pointer.truncate(p);
                channel.truncate(c);
            }
            channel.truncate(c);
        }
        _ => {}
    }
}

/// The new text of the fragment at `range` of `joined`, or `None` when no
/// span touches it: the parts of spans inside it are dropped and a span
/// that starts inside it is replaced by [`REDACTED`].
fn rewrite(joined: &str, range: Range<usize>, spans: &[Range<usize>]) -> Option<String> {
    let touching: Vec<&Range<usize>> = spans
        .iter()
        .filter(|span| span.start < range.end && span.end > range.start)
        .collect();
    if touching.is_empty() {
        return None;
    }
    let mut out = String::new();
    let mut cursor = range.start;
    for span in touching {
        let cut = span.start.max(range.start);
        out.push_str(&joined[cursor..cut]);
        if span.start >= range.start {
            out.push_str(REDACTED);
        }
        cursor = span.end.min(range.end);
    }
    out.push_str(&joined[cursor..range.end]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::script::{ScriptedTurn, encode_anthropic_sse, encode_openai_sse};

    const KEY: &str = "sk-live-0123456789abcdef";

    /// An OpenAI stream whose text carries `KEY` cut into three frames.
    fn split_openai() -> String {
        let frame = |delta: &str| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": delta}}]})
            )
        };
        [
            frame("the key is sk-live-01"),
            frame("23456789"),
            frame("abcdef, done"),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat()
    }

    fn content(body: &str) -> String {
        body.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    #[test]
    fn a_key_split_across_frames_is_removed_from_the_joined_text() {
        let redactor = Redactor::new([KEY]);
        let body = split_openai();
        assert!(!body.contains(KEY) && content(&body).contains(KEY));
        let out = redact_body(&redactor, body.as_bytes());
        assert_eq!(content(&out), "the key is [redacted], done");
        for piece in ["sk-live-01", "23456789", "abcdef,"] {
            assert!(!out.contains(piece), "{piece} survived in {out}");
        }
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn untouched_bodies_stay_byte_for_byte() {
        let redactor = Redactor::new([KEY]);
        let turn = ScriptedTurn::text("nothing secret here");
        for body in [encode_openai_sse(&turn), encode_anthropic_sse(&turn)] {
            assert_eq!(redact_body(&redactor, body.as_bytes()), body);
        }
    }

    #[test]
    fn anthropic_blocks_and_tool_arguments_are_their_own_channels() {
        let redactor = Redactor::new([KEY]);
        let turn = ScriptedTurn::text(format!("echo {KEY} back"));
        let body = encode_anthropic_sse(&turn);
        let out = redact_body(&redactor, body.as_bytes());
        assert!(!out.contains(KEY));
        assert!(out.contains(REDACTED));
        // Two interleaved tool calls: each call's arguments are joined apart.
        let frame = |index: u64, args: &str| {
            format!(
                "data: {}\n\n",
                serde_json::json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": index, "function": {"arguments": args}}]}}]})
            )
        };
        let body = [
            frame(0, "{\"a\": \"sk-live-0123"),
            frame(1, "{\"b\": 1}"),
            frame(0, "456789abcdef\"}"),
        ]
        .concat();
        let out = redact_body(&redactor, body.as_bytes());
        assert!(out.contains(r#"{\"a\": \"[redacted]"#), "{out}");
        assert!(out.contains(r#"{\"b\": 1}"#));
        assert!(!out.contains("456789abcdef"));
    }

    #[test]
    fn complete_json_responses_are_redacted_as_documents() {
        let redactor = Redactor::new([KEY]);
        let body = format!(r#"{{"choices": [{{"message": {{"content": "{KEY}"}}}}]}}"#);
        let out = redact_body(&redactor, body.as_bytes());
        assert_eq!(out, r#"{"choices":[{"message":{"content":"[redacted]"}}]}"#);
    }
}

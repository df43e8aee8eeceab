//! Cassettes: recorded model exchanges, replayed offline by `replay:` models.
//!
//! A cassette is JSONL. The first line is the header,
//! `{"kkrun_cassette": 1, "provider": "openai", "model": "gpt-4.1"}`, and
//! every further line is one HTTP exchange in the order it happened:
//!
//! ```json
//! {"request": {...}, "status": 200, "body": "data: {...}\n\n..."}
//! ```
//!
//! `request` is the JSON body kkrun sent (API keys and headers are never
//! stored); replay compares it with the request of the run and stops at the
//! first difference. It may be `null` or absent in hand-written cassettes,
//! and then the comparison is skipped. `status` defaults to 200. `body` is
//! the raw response body exactly as the server streamed it, so replay runs
//! the same stream parser as a live run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "scripting")]
use super::script::ScriptedTurn;
use super::wire::WireFormat;
use crate::redact::REDACTED;

/// The cassette format version this build writes and reads.
pub const CASSETTE_VERSION: u32 = 1;

/// The first line of a cassette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    kkrun_cassette: u32,
    provider: WireFormat,
    model: String,
}

/// One recorded HTTP exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// The request body kkrun sent; `None` skips the comparison on replay.
    #[serde(default)]
    pub request: Option<Value>,
    /// The HTTP status of the response.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The raw response body.
    pub body: String,
}

fn ok_status() -> u16 {
    200
}

/// Why a cassette could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CassetteError {
    /// The file has no header line.
    #[error(
        "the cassette is empty (hint: its first line must be {{\"kkrun_cassette\": 1, \"provider\": \"openai\", \"model\": \"...\"}})"
    )]
    Empty,
    /// The header line is not a valid header.
    #[error(
        "line 1: not a cassette header (hint: expected {{\"kkrun_cassette\": 1, \"provider\": \"openai\", \"openai-responses\" or \"anthropic\", \"model\": \"...\"}})"
    )]
    Header(#[source] serde_json::Error),
    /// The cassette was written by a newer format version.
    #[error("cassette version {0} is not supported; this kkrun reads version {CASSETTE_VERSION}")]
    Version(u32),
    /// An exchange line is not a valid exchange.
    #[error(
        "line {line}: not a valid exchange (hint: expected {{\"request\": ..., \"status\": 200, \"body\": \"...\"}})"
    )]
    Exchange {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// A cassette in memory: the provider and model it was recorded with and its
/// exchanges in order.
///
/// Tests and example tasks build cassettes from scripted turns (with the
/// `scripting` feature, which the tests turn on):
///
/// ```
/// use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn};
/// use kkrun::provider::{Cassette, WireFormat};
///
/// let cassette = Cassette::from_turns(
///     WireFormat::OpenAi,
///     "gpt-4.1",
///     &[
///         ScriptedTurn::tool_calls(vec![ScriptedToolCall::new(
///             "call_1",
///             "read_file",
///             &serde_json::json!({"path": "README.md"}),
///         )]),
///         ScriptedTurn::text("All done."),
///     ],
/// );
/// assert_eq!(cassette.exchanges.len(), 2);
/// let jsonl = cassette.to_jsonl();
/// assert_eq!(kkrun::provider::Cassette::parse(&jsonl).unwrap(), cassette);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Cassette {
    /// The wire format of the recorded provider.
    pub provider: WireFormat,
    /// The model name sent in the requests.
    pub model: String,
    /// The exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// The MCP records (the objects inside `{"mcp": ...}` lines), in order.
    pub mcp: Vec<Value>,
}

impl Cassette {
    /// An empty cassette.
    pub fn new(provider: WireFormat, model: impl Into<String>) -> Cassette {
        Cassette {
            provider,
            model: model.into(),
            exchanges: Vec::new(),
            mcp: Vec::new(),
        }
    }

    /// A cassette that answers one request per scripted turn, in order,
    /// without comparing requests.
    #[cfg(feature = "scripting")]
    pub fn from_turns(
        provider: WireFormat,
        model: impl Into<String>,
        turns: &[ScriptedTurn],
    ) -> Cassette {
        let mut cassette = Cassette::new(provider, model);
        for turn in turns {
            cassette.push_turn(turn);
        }
        cassette
    }

    /// Appends a successful exchange streaming `turn` in this cassette's wire
    /// format, without a recorded request.
    #[cfg(feature = "scripting")]
    pub fn push_turn(&mut self, turn: &ScriptedTurn) -> &mut Cassette {
        let body = match self.provider {
            WireFormat::OpenAi => super::script::encode_openai_sse(turn),
            WireFormat::OpenAiResponses => super::script::encode_responses_sse(turn),
            WireFormat::Anthropic => super::script::encode_anthropic_sse(turn),
        };
        self.exchanges.push(Exchange {
            request: None,
            status: 200,
            body,
        });
        self
    }

    /// Appends an exchange as is (an error status, a hand-written body).
    pub fn push_exchange(&mut self, exchange: Exchange) -> &mut Cassette {
        self.exchanges.push(exchange);
        self
    }

    /// The cassette as JSONL text: the header, the MCP records, then one
    /// line per exchange.
    pub fn to_jsonl(&self) -> String {
        let mut out = header_line(self.provider, &self.model);
        for record in &self.mcp {
            out.push_str(&mcp_line(record));
        }
        for exchange in &self.exchanges {
            out.push_str(&exchange_line(exchange));
        }
        out
    }

    /// Writes the cassette to `path`.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_jsonl())
    }

    /// Parses cassette text.
    pub fn parse(text: &str) -> Result<Cassette, CassetteError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty());
        let (_, first) = lines.next().ok_or(CassetteError::Empty)?;
        let version: Value = serde_json::from_str(first).map_err(CassetteError::Header)?;
        if let Some(v) = version.get("kkrun_cassette").and_then(Value::as_u64)
            && v != u64::from(CASSETTE_VERSION)
        {
            return Err(CassetteError::Version(u32::try_from(v).unwrap_or(u32::MAX)));
        }
        let header: Header = serde_json::from_value(version).map_err(CassetteError::Header)?;
        let mut exchanges = Vec::new();
        let mut mcp = Vec::new();
        for (n, line) in lines {
            if let Ok(McpLine { mcp: record }) = serde_json::from_str::<McpLine>(line) {
                mcp.push(record);
                continue;
            }
            let exchange =
                serde_json::from_str(line).map_err(|source| CassetteError::Exchange {
                    line: n + 1,
                    source,
                })?;
            exchanges.push(exchange);
        }
        Ok(Cassette {
            provider: header.provider,
            model: header.model,
            exchanges,
            mcp,
        })
    }
}

fn header_line(provider: WireFormat, model: &str) -> String {
    let header = Header {
        kkrun_cassette: CASSETTE_VERSION,
        provider,
        model: model.to_string(),
    };
    let mut line = serde_json::to_string(&header).unwrap_or_default();
    line.push('\n');
    line
}

/// A line holding one MCP record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpLine {
    mcp: Value,
}

fn mcp_line(record: &Value) -> String {
    let mut line = serde_json::to_string(&McpLine {
        mcp: record.clone(),
    })
    .unwrap_or_default();
    line.push('\n');
    line
}

fn exchange_line(exchange: &Exchange) -> String {
    let mut line = serde_json::to_string(exchange).unwrap_or_default();
    line.push('\n');
    line
}

/// Appends exchanges to a `--record` cassette as they complete, so that a
/// run that dies midway still leaves every finished exchange on disk.
#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Recorder {
    /// Creates (or truncates) the cassette and writes its header.
    pub(crate) fn create(
        path: &Path,
        provider: WireFormat,
        model: &str,
    ) -> std::io::Result<Recorder> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(path)?;
        file.write_all(header_line(provider, model).as_bytes())?;
        file.flush()?;
        Ok(Recorder {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// The cassette's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one exchange and flushes it.
    pub(crate) fn append(&self, exchange: &Exchange) -> std::io::Result<()> {
        self.append_line(&exchange_line(exchange))
    }

    fn append_line(&self, line: &str) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())?;
        file.flush()
    }
}

/// Appends MCP records to the `--record` cassette of a task, between its
/// exchanges as they happen.
#[derive(Debug, Clone)]
pub struct McpRecorder {
    recorder: Arc<Recorder>,
}

impl McpRecorder {
    pub(crate) fn new(recorder: Arc<Recorder>) -> McpRecorder {
        McpRecorder { recorder }
    }

    /// Appends `record` as a `{"mcp": record}` line and flushes it.
    pub fn record(&self, record: &Value) -> std::io::Result<()> {
        self.recorder.append_line(&mcp_line(record))
    }

    /// The cassette's path, for error messages.
    pub fn path(&self) -> &Path {
        self.recorder.path()
    }
}

/// The first place where `actual` differs from `recorded`, as a JSON path
/// with both values, or `None` when they are equal.
pub(crate) fn first_difference(
    recorded: &Value,
    actual: &Value,
) -> Option<(String, String, String)> {
    fn walk(path: &mut String, a: &Value, b: &Value) -> Option<(String, String, String)> {
        match (a, b) {
            (Value::Object(ma), Value::Object(mb)) => {
                let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let len = path.len();
                    path.push('.');
                    path.push_str(key);
                    let found = match (ma.get(key), mb.get(key)) {
                        (Some(x), Some(y)) => walk(path, x, y),
                        (x, y) => Some((path.clone(), show(x), show(y))),
                    };
                    if found.is_some() {
                        return found;
                    }
                    path.truncate(len);
                }
                None
            }
            (Value::Array(va), Value::Array(vb)) => {
                for i in 0..va.len().max(vb.len()) {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    let found = match (va.get(i), vb.get(i)) {
                        (Some(x), Some(y)) => walk(path, x, y),
                        (x, y) => Some((path.clone(), show(x), show(y))),
                    };
                    if found.is_some() {
                        return found;
                    }
                    path.truncate(len);
                }
                None
            }
            (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
            (Value::String(x), Value::String(y)) if matches_redacted(x, y) => None,
            _ if a == b => None,
            _ => Some((path.clone(), show(Some(a)), show(Some(b)))),
        }
    }
    let mut path = String::from("$");
    walk(&mut path, recorded, actual)
}

/// True when `actual` is `recorded` with each [`REDACTED`] standing for
/// the secret that was there: a cassette recorded where a key was set must
/// replay where it is not (or where it is another key).
fn matches_redacted(recorded: &str, actual: &str) -> bool {
    if !recorded.contains(REDACTED) {
        return false;
    }
    let mut parts = recorded.split(REDACTED);
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let last = parts.pop().unwrap_or_default();
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// A value for an error message: JSON, at most 200 characters.
fn show(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(absent)".to_string();
    };
    let text = value.to_string();
    if text.chars().count() <= 200 {
        return text;
    }
    let mut short: String = text.chars().take(200).collect();
    short.push_str(" …");
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_path() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "a"}]});
        let b = json!({"model": "m", "messages": [{"role": "user", "content": "b"}]});
        assert_eq!(
            first_difference(&a, &b),
            Some((
                "$.messages[0].content".to_string(),
                "\"a\"".to_string(),
                "\"b\"".to_string()
            ))
        );
        let c = json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "x"}]});
        assert_eq!(
            first_difference(&a, &c).map(|d| (d.0, d.1)),
            Some(("$.messages[1]".to_string(), "(absent)".to_string()))
        );
        assert_eq!(first_difference(&json!({"t": 1.0}), &json!({"t": 1})), None);
        let recorded = json!({"content": "KEY=[redacted]\nB=[redacted]!"});
        for actual in [
            "KEY=sk-1\nB=x!",
            "KEY=[redacted]\nB=[redacted]!",
            "KEY=\nB=!",
        ] {
            assert_eq!(
                first_difference(&recorded, &json!({"content": actual})),
                None
            );
        }
        assert!(first_difference(&recorded, &json!({"content": "KEY=sk-1\nC=x!"})).is_some());
        assert_eq!(first_difference(&a, &a), None);
    }

    #[test]
    fn mcp_records_round_trip_apart_from_the_exchanges() {
        let text = "{\"kkrun_cassette\": 1, \"provider\": \"openai\", \"model\": \"m\"}\n\
            {\"mcp\": {\"record\": \"tools\", \"server\": \"s\", \"tools\": []}}\n\
            {\"body\": \"x\"}\n\
            {\"mcp\": {\"record\": \"call\"}}\n";
        let cassette = Cassette::parse(text).unwrap();
        assert_eq!(cassette.exchanges.len(), 1);
        assert_eq!(
            cassette.mcp,
            vec![
                json!({"record": "tools", "server": "s", "tools": []}),
                json!({"record": "call"})
            ]
        );
        assert_eq!(Cassette::parse(&cassette.to_jsonl()).unwrap(), cassette);
    }

    #[test]
    fn parse_rejects_bad_input_with_line_numbers() {
        assert!(matches!(Cassette::parse(""), Err(CassetteError::Empty)));
        assert!(matches!(
            Cassette::parse("{\"kkrun_cassette\": 2, \"provider\": \"openai\", \"model\": \"m\"}"),
            Err(CassetteError::Version(2))
        ));
        assert!(matches!(
            Cassette::parse("{\"provider\": \"gemini\"}"),
            Err(CassetteError::Header(_))
        ));
        let text = "{\"kkrun_cassette\": 1, \"provider\": \"anthropic\", \"model\": \"m\"}\n\n{\"body\": \"x\"}\nnope\n";
        assert!(matches!(
            Cassette::parse(text),
            Err(CassetteError::Exchange { line: 4, .. })
        ));
        let ok = Cassette::parse(
            "{\"kkrun_cassette\": 1, \"provider\": \"anthropic\", \"model\": \"m\"}\n{\"request\": null, \"body\": \"x\"}\n",
        )
        .unwrap();
        assert_eq!(ok.exchanges[0].status, 200);
        assert_eq!(ok.exchanges[0].request, None);
    }
}

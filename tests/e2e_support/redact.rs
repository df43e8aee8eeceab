//! Placeholders for the values that change from run to run (run ids,
//! commit ids, times, durations, temporary paths), so snapshots of what
//! users see stay stable.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

pub static RUN_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{8}T\d{6}Z-[0-9a-f]{6}\b").unwrap());
pub static COMMIT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[0-9a-f]{40}\b").unwrap());
pub static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})").unwrap()
});
/// What `human_duration` writes: `1h 02m`, `1m 05s`, `12.3s`, `450ms`.
pub static HUMAN_DURATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d+h \d{2}m|\d+m \d{2}s|\d+\.\d+s|\d+ms)\b").unwrap());

/// Replaces the values that change from run to run in any text.
pub fn redact_text(text: &str, root: &Path) -> String {
    let mut text = text.to_string();
    let canonical = root.canonicalize().unwrap();
    for path in [canonical.as_path(), root] {
        text = text.replace(&path.display().to_string(), "[TMP]");
    }
    let text = RUN_ID.replace_all(&text, "[RUN_ID]");
    let text = COMMIT.replace_all(&text, "[COMMIT]");
    let text = TIMESTAMP.replace_all(&text, "[TIME]");
    text.into_owned()
}

/// `summary.md` with the same values replaced, plus human durations.
pub fn redact_summary(summary: &str, root: &Path) -> String {
    let text = redact_text(summary, root);
    HUMAN_DURATION.replace_all(&text, "[DURATION]").into_owned()
}

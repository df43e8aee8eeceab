//! Text clean-up shared by the report writers.

use std::sync::LazyLock;

use regex::Regex;

/// ANSI escape sequences: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL|ST`)
/// and two-character escapes.
static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
        .expect("the ANSI pattern is a valid constant regex")
});

/// Removes ANSI escape sequences (colours, cursor movement) from `text`.
pub fn strip_ansi(text: &str) -> String {
    ANSI.replace_all(text, "").into_owned()
}

/// Whether XML 1.0 allows `c` in a document.
fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Strips ANSI escapes and every character XML 1.0 forbids, so command
/// output can go into an XML document that still parses.
pub fn xml_safe(text: &str) -> String {
    strip_ansi(text)
        .chars()
        .filter(|&c| xml_allowed(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours_and_forbidden_characters() {
        let raw = "\x1b[31merror\x1b[0m: bad\x00 byte \x1b]0;title\x07done\u{FFFE}\u{0008}";
        assert_eq!(xml_safe(raw), "error: bad byte done");
    }

    #[test]
    fn keeps_ordinary_text() {
        let text = "tab\there\nünïcödé ✓ 𝄞\r\n";
        assert_eq!(xml_safe(text), text);
    }
}

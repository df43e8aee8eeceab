//! A finding's stable identity: the same bug in the same file keeps its
//! fingerprint when unrelated lines are added or removed elsewhere.

/// Lines of context taken above and below the finding's lines; a blank
/// line ends the context, so code in another block (a new import, the
/// function before) does not take part.
const CONTEXT_LINES: usize = 2;

/// Lines of the finding itself that take part (a long range is cut here, so
/// an edit deep inside a large function does not change the identity).
const MAX_REGION_LINES: usize = 20;

/// Version prefix of the fingerprint, so a future change of the recipe does
/// not silently match old values.
pub const FINGERPRINT_KEY: &str = "kkrun/v1";

/// The fingerprint of a finding of `rule_id` at lines `start..=end`
/// (1-based) of `path`, whose text is `content`: the SHA-1, in hex, of the
/// rule id, the path and the finding's lines plus up to two lines above and
/// below within the same block (up to a blank line), each with its
/// whitespace collapsed, then `:1`. The line numbers themselves do not take
/// part.
pub fn fingerprint(rule_id: &str, path: &str, content: &str, start: u64, end: u64) -> String {
    let lines: Vec<&str> = content.lines().collect();
    let first = usize::try_from(start.max(1) - 1).unwrap_or(usize::MAX);
    let last = usize::try_from(end.max(start))
        .unwrap_or(usize::MAX)
        .min(lines.len());
    let first = first.min(last);
    let region = &lines[first..last.min(first + MAX_REGION_LINES)];
    let above: Vec<&str> = lines[..first]
        .iter()
        .rev()
        .copied()
        .take_while(|l| !l.trim().is_empty())
        .take(CONTEXT_LINES)
        .collect();
    let below = lines[last..]
        .iter()
        .copied()
        .take_while(|l| !l.trim().is_empty())
        .take(CONTEXT_LINES);

    let mut text = format!("{rule_id}\n{path}\n");
    for line in above.iter().rev() {
        push_normalised(&mut text, line);
    }
    text.push_str("--\n");
    for line in region {
        push_normalised(&mut text, line);
    }
    text.push_str("--\n");
    for line in below {
        push_normalised(&mut text, line);
    }
    let hash = git2::Oid::hash_object(git2::ObjectType::Blob, text.as_bytes())
        .map(|oid| oid.to_string())
        .unwrap_or_default();
    format!("{hash}:1")
}

/// `fingerprint` with its occurrence counter set to `n`: two findings of one
/// task with the same rule on identical code stay distinct.
pub fn with_occurrence(fingerprint: &str, n: usize) -> String {
    let hash = fingerprint.split(':').next().unwrap_or(fingerprint);
    format!("{hash}:{n}")
}

fn push_normalised(text: &mut String, line: &str) {
    let mut first = true;
    for word in line.split_whitespace() {
        if !first {
            text.push(' ');
        }
        text.push_str(word);
        first = false;
    }
    text.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "def f(x):\n    y = x + 1\n    return items[y]\n\n\ndef g():\n    pass\n";

    #[test]
    fn inserting_lines_above_keeps_the_fingerprint() {
        let before = fingerprint("off-by-one", "a.py", CODE, 3, 3);
        let edited = format!("import os\n# a comment\nLIMIT = 3\n\n\n{CODE}");
        let after = fingerprint("off-by-one", "a.py", &edited, 8, 8);
        assert_eq!(before, after);
    }

    #[test]
    fn whitespace_changes_do_not_matter() {
        let spaced = CODE.replace("return items[y]", "return   items[y]   ");
        assert_eq!(
            fingerprint("off-by-one", "a.py", CODE, 3, 3),
            fingerprint("off-by-one", "a.py", &spaced, 3, 3)
        );
    }

    #[test]
    fn rule_path_and_code_all_count() {
        let base = fingerprint("off-by-one", "a.py", CODE, 3, 3);
        assert_ne!(base, fingerprint("null-deref", "a.py", CODE, 3, 3));
        assert_ne!(base, fingerprint("off-by-one", "b.py", CODE, 3, 3));
        let changed = CODE.replace("return items[y]", "return items[y - 1]");
        assert_ne!(base, fingerprint("off-by-one", "a.py", &changed, 3, 3));
    }

    #[test]
    fn out_of_range_lines_do_not_panic() {
        let a = fingerprint("r", "a.py", CODE, 100, 200);
        let b = fingerprint("r", "a.py", "", 0, 0);
        assert!(a.ends_with(":1") && b.ends_with(":1"));
    }

    #[test]
    fn occurrences_are_numbered() {
        let fp = fingerprint("r", "a.py", CODE, 2, 2);
        let second = with_occurrence(&fp, 2);
        assert!(second.ends_with(":2"));
        assert_eq!(second.split(':').next(), fp.split(':').next());
    }
}

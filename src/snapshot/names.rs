//! Ref names of snapshots: `refs/kkrun/<run>/<task>/<NN>-<stage>`.

use super::SnapshotError;

/// The namespace every snapshot ref lives under.
pub(crate) const PREFIX: &str = "refs/kkrun/";

/// Checks that `value` can be one component of a ref name. Deliberately
/// stricter than git: no glob characters, so names can be used in ref globs
/// as they are. `@` is allowed for model-matrix instances (`task@model`);
/// git's `@{` cannot occur since `{` is refused.
pub(crate) fn validate(what: &'static str, value: &str) -> Result<(), SnapshotError> {
    let invalid = |reason| {
        Err(SnapshotError::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return invalid("it is empty");
    }
    if value.len() > 100 {
        return invalid("it is longer than 100 bytes");
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
    {
        return if bad == '/' {
            invalid("it contains `/`")
        } else {
            invalid("it contains a character other than letters, digits, `-`, `_`, `.` and `@`")
        };
    }
    if value.starts_with('.') || value.starts_with('-') {
        return invalid("it starts with `.` or `-`");
    }
    if value.ends_with('.') || value.ends_with(".lock") {
        return invalid("it ends with `.` or `.lock`");
    }
    if value.contains("..") {
        return invalid("it contains `..`");
    }
    Ok(())
}

/// `refs/kkrun/<run>/<task>/`.
pub(crate) fn task_prefix(run_id: &str, task: &str) -> String {
    format!("{PREFIX}{run_id}/{task}/")
}

/// `02-code`.
pub(crate) fn label(index: u32, stage: &str) -> String {
    format!("{index:02}-{stage}")
}

/// Splits `02-code` into `(2, "code")`.
pub(crate) fn parse_label(label: &str) -> Option<(u32, &str)> {
    let (number, stage) = label.split_once('-')?;
    if number.is_empty() || stage.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, stage))
}

/// Splits a full snapshot ref into `(run, task, label)`.
pub(crate) fn parse_ref(name: &str) -> Option<(&str, &str, &str)> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.split('/');
    let (run, task, label) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((run, task, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_run_ids_task_names_and_stages() {
        for ok in [
            "20261124T101500Z-ab12cd",
            "fix-date-parsing",
            "code",
            "v1.2_x",
            "fix-dates@gpt-4.1",
        ] {
            assert!(validate("name", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_what_would_break_a_ref_or_a_glob() {
        for bad in [
            "", "a/b", "a*b", "a?", "[x]", ".hidden", "-x", "x.lock", "x.", "a..b", "a b", "é",
        ] {
            let err = validate("task name", bad).unwrap_err();
            assert_eq!(err.exit_code(), crate::exit_codes::INVALID_INPUT, "{bad}");
        }
        assert!(validate("x", &"a".repeat(101)).is_err());
    }

    #[test]
    fn labels_round_trip() {
        assert_eq!(label(2, "code"), "02-code");
        assert_eq!(label(123, "debug"), "123-debug");
        assert_eq!(parse_label("02-code"), Some((2, "code")));
        assert_eq!(parse_label("123-a-b"), Some((123, "a-b")));
        assert_eq!(parse_label("x-code"), None);
        assert_eq!(parse_label("02-"), None);
        assert_eq!(parse_label("02"), None);
    }

    #[test]
    fn parses_snapshot_refs_only() {
        assert_eq!(
            parse_ref("refs/kkrun/r1/t1/00-base"),
            Some(("r1", "t1", "00-base"))
        );
        assert_eq!(parse_ref("refs/kkrun/r1/t1"), None);
        assert_eq!(parse_ref("refs/kkrun/r1/t1/00-base/x"), None);
        assert_eq!(parse_ref("refs/heads/main"), None);
    }
}

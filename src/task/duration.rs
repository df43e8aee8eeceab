//! Durations as task files write them: `90s`, `10m`, `1h30m`.
//!
//! Hours, minutes and seconds, in that order, each at most once. The form is
//! deliberately narrow so a duration reads the same to everyone; the JSON
//! Schema carries the same rule as [`PATTERN`].

use std::time::Duration;

/// The accepted form as a regular expression (for the JSON Schema).
pub(crate) const PATTERN: &str = "^([0-9]+h([0-9]+m)?([0-9]+s)?|[0-9]+m([0-9]+s)?|[0-9]+s)$";

/// Parses a duration, or says what is wrong with it.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration `{text}`");
    let mut rest = text;
    let mut seconds: u64 = 0;
    let mut last_unit = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid());
        }
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let (rank, scale) = match chars.next() {
            Some('h') => (1, 3600),
            Some('m') => (2, 60),
            Some('s') => (3, 1),
            _ => return Err(invalid()),
        };
        if rank <= last_unit {
            return Err(invalid());
        }
        last_unit = rank;
        let value: u64 = number.parse().map_err(|_| invalid())?;
        seconds = value
            .checked_mul(scale)
            .and_then(|part| seconds.checked_add(part))
            .ok_or_else(|| format!("duration `{text}` is too long"))?;
        rest = chars.as_str();
    }
    if seconds == 0 {
        return Err(format!("duration `{text}` is zero; it must be longer"));
    }
    Ok(Duration::from_secs(seconds))
}

/// Formats a duration the way task files write it (`1h30m`, `45s`).
pub fn format(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_hours_minutes_seconds_in_order() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2h5s"), Ok(Duration::from_secs(7205)));
        assert_eq!(parse("1h1m1s"), Ok(Duration::from_secs(3661)));
    }

    #[test]
    fn rejects_everything_else() {
        for text in [
            "", "90", "s", "1m1h", "1h1h", "1d", "1.5h", "1 h", "10 m", "-1s", "1h30", "m5",
        ] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(parse("0s").unwrap_err().contains("zero"));
        assert!(parse("99999999999999999999h").is_err());
        assert!(
            parse("999999999999999999h")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn pattern_agrees_with_the_parser() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for text in ["90s", "10m", "1h30m", "2h5s", "1h1m1s", "1h"] {
            assert!(pattern.is_match(text), "{text}");
        }
        for text in ["", "90", "1m1h", "1h1h", "1d", "1.5h", "1 h"] {
            assert!(!pattern.is_match(text), "{text}");
        }
    }

    #[test]
    fn formats_back_to_the_file_form() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(45 * 60)), "45m");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}

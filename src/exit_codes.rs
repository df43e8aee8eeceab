//! The exit codes kkrun returns: a stable, documented API for CI.
//!
//! When several tasks of one run end differently, the code of the highest
//! priority wins: [`INVALID_INPUT`] > [`INFRASTRUCTURE`] > [`INTERRUPTED`] >
//! [`BUDGET_EXHAUSTED`] > [`TASK_FAILED`] > [`SUCCESS`]. See [`combine`].

/// Every task passed its checks (and `kkrun validate` found no error).
pub const SUCCESS: i32 = 0;
/// At least one task ran and failed: checks failed, the review rejected the
/// work, or the agent gave up.
pub const TASK_FAILED: i32 = 1;
/// Bad input, nothing ran: CLI usage, an invalid task file, a workspace that
/// is not a git work tree, an unknown run or task id.
pub const INVALID_INPUT: i32 = 2;
/// Infrastructure failure: provider unreachable, rejected the key or returned
/// garbage after retries; a git error; an I/O error.
pub const INFRASTRUCTURE: i32 = 3;
/// A budget (tokens, cost) or a timeout ran out before a task could finish;
/// the partial work is kept in snapshots.
pub const BUDGET_EXHAUSTED: i32 = 4;
/// Interrupted by SIGINT or SIGTERM; the final record was still written.
pub const INTERRUPTED: i32 = 130;

/// Rank of an exit code in the priority order; higher wins.
fn priority(code: i32) -> u8 {
    match code {
        INVALID_INPUT => 5,
        INFRASTRUCTURE => 4,
        INTERRUPTED => 3,
        BUDGET_EXHAUSTED => 2,
        TASK_FAILED => 1,
        SUCCESS => 0,
        // An unknown code is treated like an infrastructure failure: it must
        // never be hidden behind a success.
        _ => 4,
    }
}

/// Combines the exit codes of several tasks into the run's exit code,
/// following the documented priority order. An empty list is [`SUCCESS`].
pub fn combine(codes: impl IntoIterator<Item = i32>) -> i32 {
    codes
        .into_iter()
        .max_by_key(|&code| priority(code))
        .unwrap_or(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            [
                SUCCESS,
                TASK_FAILED,
                INVALID_INPUT,
                INFRASTRUCTURE,
                BUDGET_EXHAUSTED,
                INTERRUPTED
            ],
            [0, 1, 2, 3, 4, 130]
        );
    }

    #[test]
    fn priority_order_is_2_3_130_4_1_0() {
        assert_eq!(combine([]), SUCCESS);
        assert_eq!(combine([SUCCESS, TASK_FAILED]), TASK_FAILED);
        assert_eq!(combine([TASK_FAILED, BUDGET_EXHAUSTED]), BUDGET_EXHAUSTED);
        assert_eq!(combine([BUDGET_EXHAUSTED, INTERRUPTED]), INTERRUPTED);
        assert_eq!(combine([INTERRUPTED, INFRASTRUCTURE]), INFRASTRUCTURE);
        assert_eq!(
            combine([INFRASTRUCTURE, INVALID_INPUT, SUCCESS]),
            INVALID_INPUT
        );
    }
}

//! Budgets: what a task may spend (tokens, dollars, wall-clock time) summed
//! over its stages, and the per-stage turn limit. Running out is a normal
//! end of a stage with a named reason, never an error.

use std::time::{Duration, Instant};

use crate::provider::Usage;
use crate::task::Budget;

/// Which limit ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// The stage's turn limit.
    MaxTurns,
    /// The task's token budget (input plus output tokens).
    MaxTokens,
    /// The task's cost budget in USD.
    MaxCost,
    /// The stage's or the task's wall-clock limit.
    Timeout,
}

impl BudgetKind {
    /// The name used in events and reports: `max_turns`, `max_tokens`,
    /// `max_cost` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetKind::MaxTurns => "max_turns",
            BudgetKind::MaxTokens => "max_tokens",
            BudgetKind::MaxCost => "max_cost",
            BudgetKind::Timeout => "timeout",
        }
    }
}

/// A budget decision: `kind` is used up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exhausted {
    /// The limit that ran out.
    pub kind: BudgetKind,
    /// What was used (turns, tokens, USD or seconds).
    pub used: f64,
    /// The limit, in the same unit.
    pub limit: f64,
}

/// The task-wide budget: limits from the task file, usage and cost summed
/// over every stage, and the task's deadline. One tracker lives for the
/// whole task and is passed to each stage.
#[derive(Debug, Clone)]
pub struct BudgetTracker {
    limits: Budget,
    usage: Usage,
    cost_usd: f64,
    cost_known: bool,
    started: Instant,
    deadline: Option<Instant>,
    unknown_price_reported: bool,
}

impl BudgetTracker {
    /// A tracker with nothing used yet; the task's clock starts now.
    pub fn new(limits: &Budget) -> Self {
        BudgetTracker::starting_at(limits, Instant::now())
    }

    /// A tracker whose task clock started at `started`.
    pub fn starting_at(limits: &Budget, started: Instant) -> Self {
        BudgetTracker {
            limits: limits.clone(),
            usage: Usage::default(),
            cost_usd: 0.0,
            cost_known: true,
            started,
            deadline: limits.timeout.map(|timeout| started + timeout),
            unknown_price_reported: false,
        }
    }

    /// Tokens used so far, over all stages.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Cost so far in USD; `None` once a turn's price was unknown, since
    /// any sum would then understate it.
    pub fn cost_usd(&self) -> Option<f64> {
        self.cost_known.then_some(self.cost_usd)
    }

    /// The limits this tracker enforces.
    pub fn limits(&self) -> &Budget {
        &self.limits
    }

    /// When the task's time runs out, if it has a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time since the task's clock started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds one model turn's usage and cost (`None`: price unknown).
    pub fn record(&mut self, usage: Usage, cost_usd: Option<f64>) {
        self.usage += usage;
        match cost_usd {
            Some(cost) => self.cost_usd += cost,
            None => self.cost_known = false,
        }
    }

    /// Tokens left before the token budget runs out, if there is one.
    pub fn remaining_tokens(&self) -> Option<u64> {
        self.limits
            .max_tokens
            .map(|max| max.saturating_sub(self.usage.total()))
    }

    /// True the first time it is asked after a cost budget is set but a
    /// turn's price is unknown, so the warning is given once per task.
    pub(crate) fn take_unknown_price_warning(&mut self) -> bool {
        if self.limits.max_cost_usd.is_some() && !self.cost_known && !self.unknown_price_reported {
            self.unknown_price_reported = true;
            return true;
        }
        false
    }

    /// The task-wide limit that is used up at `now`, if any: time first,
    /// then tokens, then cost.
    pub fn exhausted(&self, now: Instant) -> Option<Exhausted> {
        if let (Some(deadline), Some(timeout)) = (self.deadline, self.limits.timeout)
            && now >= deadline
        {
            return Some(Exhausted {
                kind: BudgetKind::Timeout,
                used: now.duration_since(self.started).as_secs_f64(),
                limit: timeout.as_secs_f64(),
            });
        }
        if let Some(max) = self.limits.max_tokens
            && self.usage.total() >= max
        {
            return Some(Exhausted {
                kind: BudgetKind::MaxTokens,
                used: self.usage.total() as f64,
                limit: max as f64,
            });
        }
        if let (Some(max), Some(cost)) = (self.limits.max_cost_usd, self.cost_usd())
            && cost >= max
        {
            return Some(Exhausted {
                kind: BudgetKind::MaxCost,
                used: cost,
                limit: max,
            });
        }
        None
    }
}

/// The stage's own limits, checked with the task's before every model call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StageLimits {
    pub(crate) max_turns: u32,
    pub(crate) started: Instant,
    pub(crate) timeout: Option<Duration>,
}

impl StageLimits {
    /// The earlier of the stage's and the task's deadline.
    pub(crate) fn deadline(&self, budget: &BudgetTracker) -> Option<Instant> {
        let stage = self.timeout.map(|timeout| self.started + timeout);
        match (stage, budget.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The limit that stops the next model call, if any: time (stage or
    /// task), then tokens, cost, and the stage's turns.
    pub(crate) fn check(
        &self,
        turns: u32,
        budget: &BudgetTracker,
        now: Instant,
    ) -> Option<Exhausted> {
        if let Some(timeout) = self.timeout
            && now >= self.started + timeout
        {
            return Some(Exhausted {
                kind: BudgetKind::Timeout,
                used: now.duration_since(self.started).as_secs_f64(),
                limit: timeout.as_secs_f64(),
            });
        }
        if let Some(exhausted) = budget.exhausted(now) {
            return Some(exhausted);
        }
        if turns >= self.max_turns {
            return Some(Exhausted {
                kind: BudgetKind::MaxTurns,
                used: f64::from(turns),
                limit: f64::from(self.max_turns),
            });
        }
        None
    }

    /// The timeout decision at `now`, after a deadline passed mid-turn.
    pub(crate) fn timeout_at(&self, budget: &BudgetTracker, now: Instant) -> Exhausted {
        self.check(0, budget, now)
            .filter(|e| e.kind == BudgetKind::Timeout)
            .unwrap_or(Exhausted {
                kind: BudgetKind::Timeout,
                used: now.duration_since(self.started).as_secs_f64(),
                limit: self.timeout.unwrap_or_default().as_secs_f64(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            cached_input_tokens: 0,
            output_tokens: output,
            estimated: false,
            cache_write_input_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    fn limits(max_tokens: Option<u64>, max_cost: Option<f64>, timeout: Option<u64>) -> Budget {
        Budget {
            max_tokens,
            max_cost_usd: max_cost,
            timeout: timeout.map(Duration::from_secs),
        }
    }

    #[test]
    fn usage_and_cost_sum_over_stages() {
        let mut tracker = BudgetTracker::new(&limits(None, None, None));
        tracker.record(usage(100, 10), Some(0.5));
        tracker.record(usage(200, 20), Some(0.25));
        assert_eq!(tracker.usage(), usage(300, 30));
        assert_eq!(tracker.cost_usd(), Some(0.75));
        tracker.record(usage(1, 1), None);
        assert_eq!(tracker.cost_usd(), None);
    }

    #[test]
    fn token_budget_ends_when_reached() {
        let mut tracker = BudgetTracker::new(&limits(Some(1000), None, None));
        let now = Instant::now();
        tracker.record(usage(900, 99), None);
        assert_eq!(tracker.exhausted(now), None);
        assert_eq!(tracker.remaining_tokens(), Some(1));
        tracker.record(usage(1, 0), None);
        let exhausted = tracker.exhausted(now).unwrap();
        assert_eq!(exhausted.kind, BudgetKind::MaxTokens);
        assert_eq!((exhausted.used, exhausted.limit), (1000.0, 1000.0));
    }

    #[test]
    fn cost_budget_needs_known_prices() {
        let mut tracker = BudgetTracker::new(&limits(None, Some(1.0), None));
        let now = Instant::now();
        tracker.record(usage(1, 1), Some(1.5));
        assert_eq!(tracker.exhausted(now).unwrap().kind, BudgetKind::MaxCost);
        let mut unknown = BudgetTracker::new(&limits(None, Some(1.0), None));
        unknown.record(usage(1, 1), None);
        assert_eq!(unknown.exhausted(now), None);
        assert!(unknown.take_unknown_price_warning());
        assert!(!unknown.take_unknown_price_warning());
    }

    #[test]
    fn time_wins_over_other_limits() {
        let started = Instant::now();
        let mut tracker = BudgetTracker::starting_at(&limits(Some(10), None, Some(60)), started);
        tracker.record(usage(100, 0), None);
        assert_eq!(
            tracker.exhausted(started).unwrap().kind,
            BudgetKind::MaxTokens
        );
        let later = started + Duration::from_secs(61);
        let exhausted = tracker.exhausted(later).unwrap();
        assert_eq!(exhausted.kind, BudgetKind::Timeout);
        assert_eq!(exhausted.limit, 60.0);
    }

    #[test]
    fn stage_limits_check_turns_and_both_deadlines() {
        let started = Instant::now();
        let tracker = BudgetTracker::starting_at(&limits(None, None, Some(100)), started);
        let stage = StageLimits {
            max_turns: 3,
            started,
            timeout: Some(Duration::from_secs(10)),
        };
        assert_eq!(stage.check(2, &tracker, started), None);
        assert_eq!(
            stage.check(3, &tracker, started).unwrap().kind,
            BudgetKind::MaxTurns
        );
        let late = started + Duration::from_secs(11);
        let exhausted = stage.check(0, &tracker, late).unwrap();
        assert_eq!(
            (exhausted.kind, exhausted.limit),
            (BudgetKind::Timeout, 10.0)
        );
        assert_eq!(
            stage.deadline(&tracker),
            Some(started + Duration::from_secs(10))
        );
        let open = StageLimits {
            timeout: None,
            ..stage
        };
        assert_eq!(
            open.deadline(&tracker),
            Some(started + Duration::from_secs(100))
        );
    }
}

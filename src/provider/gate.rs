//! One gate per endpoint, shared by every task of a run that uses it: a cap
//! on the requests in flight (`--max-requests`, or the endpoint's
//! `max_concurrent_requests`), and one backoff. When any request gets 429
//! or 503 with `Retry-After`, every task waits until then before its next
//! request, and the cap drops by one (never below one) so that the server
//! stops being asked for more than it takes; it grows back one at a time
//! after a run of successes.
//!
//! Without this, N concurrent tasks each back off on their own and come
//! back at the same moment, and a burst of 429s exhausts their retries.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Requests in flight per endpoint when neither `--max-requests` nor the
/// endpoint's `max_concurrent_requests` says otherwise.
pub const DEFAULT_MAX_REQUESTS: usize = 4;

/// The shared pause never lasts longer than this, whatever `Retry-After`
/// asks (the retry policy caps its own wait the same way).
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The lowered cap grows by one after this many successes per request the
/// cap allows: slowly, so that a server's limit is not probed every turn.
const GROW_AFTER_PER_SLOT: usize = 10;

/// A gate's key: the wire format's name and the request URL.
type EndpointKey = (String, String);

/// Every endpoint's gate, keyed by wire format and request URL; cloning
/// shares the same gates.
#[derive(Debug, Clone, Default)]
pub struct Gates {
    by_endpoint: Arc<Mutex<BTreeMap<EndpointKey, Arc<EndpointGate>>>>,
}

impl Gates {
    /// The gate of the endpoint `url` speaking `wire`, created with a cap of
    /// `limit` (at least 1) on first use; later callers share it, whatever
    /// limit they pass.
    pub fn gate(&self, wire: &str, url: &str, limit: usize) -> Arc<EndpointGate> {
        let mut map = self.by_endpoint.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((wire.to_string(), url.to_string()))
            .or_insert_with(|| Arc::new(EndpointGate::new(limit)))
            .clone()
    }
}

/// One endpoint's cap and backoff.
#[derive(Debug)]
pub struct EndpointGate {
    semaphore: Arc<Semaphore>,
    limit: usize,
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    /// No request starts before this instant.
    paused_until: Option<Instant>,
    /// The cap now: `limit`, or less after 429s.
    cap: usize,
    /// Successes since the cap last changed.
    successes: usize,
}

impl EndpointGate {
    fn new(limit: usize) -> EndpointGate {
        let limit = limit.max(1);
        EndpointGate {
            semaphore: Arc::new(Semaphore::new(limit)),
            limit,
            state: Mutex::new(GateState {
                paused_until: None,
                cap: limit,
                successes: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cap this gate started with.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The cap now (lower than [`EndpointGate::limit`] after 429s).
    pub fn cap(&self) -> usize {
        self.state().cap
    }

    /// Waits out any pause, then for a free slot; the permit is held for
    /// one attempt.
    pub async fn enter(self: &Arc<Self>) -> GatePermit {
        self.wait_pause().await;
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        // A pause may have begun while this request queued for its slot.
        self.wait_pause().await;
        GatePermit {
            gate: self.clone(),
            permit,
        }
    }

    async fn wait_pause(&self) {
        loop {
            let until = self.state().paused_until;
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }
}

/// A slot of an endpoint's gate, held for one attempt; dropping it frees
/// the slot. Tell the gate how the attempt went with
/// [`GatePermit::throttled`] or [`GatePermit::succeeded`].
#[derive(Debug)]
pub struct GatePermit {
    gate: Arc<EndpointGate>,
    permit: Option<OwnedSemaphorePermit>,
}

impl GatePermit {
    /// The server refused for load (429, 503): every task on the endpoint
    /// waits `retry_after`, if the server gave one, and the cap drops by
    /// one, this slot being the one given up.
    pub fn throttled(mut self, retry_after: Option<Duration>) {
        let mut state = self.gate.state();
        if let Some(wait) = retry_after {
            let until = Instant::now() + wait.min(MAX_PAUSE);
            state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
        }
        state.successes = 0;
        if state.cap > 1 {
            state.cap -= 1;
            if let Some(permit) = self.permit.take() {
                permit.forget();
            }
        }
    }

    /// The request got its answer: after enough of these a lowered cap
    /// grows back by one.
    pub fn succeeded(self) {
        let mut state = self.gate.state();
        if state.cap >= self.gate.limit {
            return;
        }
        state.successes += 1;
        if state.successes >= GROW_AFTER_PER_SLOT * state.cap {
            state.cap += 1;
            state.successes = 0;
            self.gate.semaphore.add_permits(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_are_shared_per_wire_and_url() {
        let gates = Gates::default();
        let a = gates.gate("openai", "http://x/v1/chat/completions", 2);
        let b = gates
            .clone()
            .gate("openai", "http://x/v1/chat/completions", 9);
        let c = gates.gate("anthropic", "http://x/v1/chat/completions", 2);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(b.limit(), 2);
        assert_eq!(gates.gate("openai", "http://y", 0).limit(), 1);
    }

    #[tokio::test]
    async fn a_throttled_request_pauses_every_other_and_lowers_the_cap() {
        let gate = Arc::new(EndpointGate::new(3));
        let first = gate.enter().await;
        let started = Instant::now();
        first.throttled(Some(Duration::from_millis(200)));
        assert_eq!(gate.cap(), 2);
        let next = gate.enter().await;
        // Not a timing target: the next request must not start before the
        // pause ends.
        assert!(Instant::now() - started >= Duration::from_millis(200));
        assert_eq!(gate.semaphore.available_permits(), 1);
        drop(next);
        // Never below one.
        gate.enter().await.throttled(None);
        gate.enter().await.throttled(None);
        assert_eq!(gate.cap(), 1);
        for _ in 0..GROW_AFTER_PER_SLOT {
            gate.enter().await.succeeded();
        }
        assert_eq!(gate.cap(), 2);
        assert_eq!(gate.semaphore.available_permits(), 2);
    }
}

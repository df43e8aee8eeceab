//! The run-wide interrupt flag set by SIGINT/SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Set once when the run is asked to stop; every stage and check run waits
/// on it alongside its own work.
#[derive(Debug, Default)]
pub struct Interrupt {
    triggered: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// A flag that is not set.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the flag is set.
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// Completes once the flag is set (at once if it already is).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before checking the flag so a trigger in between is not lost.
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_on_trigger_and_late_waiters_return_at_once() {
        let interrupt = Arc::new(Interrupt::new());
        let waiter = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        interrupt.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), interrupt.wait())
            .await
            .unwrap();
    }
}

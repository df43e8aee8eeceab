//! The sink every part of kkrun emits events through, and its listeners.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Event, EventKind};
use crate::task::Stage;

type Listener = Box<dyn FnMut(&Event) + Send>;

struct SinkShared {
    start: Instant,
    listeners: Mutex<Vec<Listener>>,
}

/// A cheap, cloneable handle that stamps and delivers events to every
/// listener. Scoped copies ([`EventSink::for_task`], [`EventSink::for_stage`])
/// fill in the task and stage.
#[derive(Clone)]
pub struct EventSink {
    shared: Arc<SinkShared>,
    task: Option<String>,
    stage: Option<Stage>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("task", &self.task)
            .field("stage", &self.stage)
            .finish()
    }
}

impl Default for EventSink {
    fn default() -> Self {
        EventSink::new()
    }
}

impl EventSink {
    /// A sink with no listeners; the run's start time is now.
    pub fn new() -> EventSink {
        EventSink {
            shared: Arc::new(SinkShared {
                start: Instant::now(),
                listeners: Mutex::new(Vec::new()),
            }),
            task: None,
            stage: None,
        }
    }

    /// Adds a listener that receives every event emitted from now on,
    /// through this sink or any copy of it.
    pub fn subscribe(&self, listener: impl FnMut(&Event) + Send + 'static) {
        let mut listeners = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        listeners.push(Box::new(listener));
    }

    /// A copy whose events carry `task`.
    pub fn for_task(&self, task: &str) -> EventSink {
        EventSink {
            shared: self.shared.clone(),
            task: Some(task.to_string()),
            stage: None,
        }
    }

    /// A copy whose events carry `stage` (and this sink's task).
    pub fn for_stage(&self, stage: Stage) -> EventSink {
        EventSink {
            shared: self.shared.clone(),
            task: self.task.clone(),
            stage: Some(stage),
        }
    }

    /// Milliseconds since the sink was created.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.shared.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Stamps `kind` and delivers it to every listener, in order.
    pub fn emit(&self, kind: EventKind) {
        let event = Event {
            ts: jiff::Timestamp::now().to_string(),
            elapsed_ms: self.elapsed_ms(),
            task: self.task.clone(),
            stage: self.stage,
            kind,
        };
        let mut listeners = self
            .shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for listener in listeners.iter_mut() {
            listener(&event);
        }
    }
}

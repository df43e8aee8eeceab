//! The sink every part of kkrun emits events through, and its listeners.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Event, EventKind};
use crate::redact::Redactor;
use crate::task::Stage;

type Listener = Box<dyn FnMut(&Event) + Send>;

struct SinkShared {
    start: Instant,
    /// Added to every `elapsed_ms`: a resumed run's clock goes on from the
    /// stream it continues.
    offset_ms: u64,
    redactor: Redactor,
    listeners: Mutex<Vec<Listener>>,
}

/// The `type` tag of `kind`, e.g. `tool.call`.
fn event_type(kind: &EventKind) -> Option<String> {
    let value = serde_json::to_value(kind).ok()?;
    value.get("type")?.as_str().map(str::to_string)
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
        EventSink::redacting(Redactor::default())
    }

    /// A sink that removes `redactor`'s secrets from every event before any
    /// listener sees it, so the event log, `--json`, the console and the
    /// reports built from the events never hold a secret.
    pub fn redacting(redactor: Redactor) -> EventSink {
        EventSink::continuing(redactor, 0)
    }

    /// Like [`EventSink::redacting`], with every `elapsed_ms` counted from
    /// `offset_ms`: the events a resumed run appends go on from the last
    /// `elapsed_ms` of the stream it continues.
    pub fn continuing(redactor: Redactor, offset_ms: u64) -> EventSink {
        EventSink {
            shared: Arc::new(SinkShared {
                start: Instant::now(),
                offset_ms,
                redactor,
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
        u64::try_from(self.shared.start.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(self.shared.offset_ms)
    }

    /// The secrets this sink removes.
    pub fn redactor(&self) -> &Redactor {
        &self.shared.redactor
    }

    /// Stamps `kind` and delivers it to every listener, in order.
    pub fn emit(&self, kind: EventKind) {
        let kind = match self.shared.redactor.redact_typed(&kind) {
            Ok(None) => kind,
            Ok(Some(redacted)) => redacted,
            // Fail closed: an event that cannot be cleaned is not delivered.
            Err(e) => {
                let kind = event_type(&kind).unwrap_or_else(|| "?".to_string());
                EventKind::Warning {
                    message: self
                        .shared
                        .redactor
                        .redact(&format!("a `{kind}` event was withheld: {e}"))
                        .into_owned(),
                }
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ToolOutcome;
    use crate::provider::Usage;

    fn collect(sink: &EventSink) -> Arc<Mutex<Vec<Event>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        sink.subscribe(move |event| into.lock().unwrap().push(event.clone()));
        seen
    }

    #[test]
    fn listeners_never_see_a_secret() {
        let sink = EventSink::redacting(Redactor::new(["sk-live-0123456789"]));
        let seen = collect(&sink);
        sink.for_task("t").emit(EventKind::ToolCall {
            call_id: "c1".into(),
            tool: "read_file".into(),
            arguments: "{\"path\": \".env\"}".into(),
            outcome: ToolOutcome::Ok,
            output: "OPENAI_API_KEY=sk-live-0123456789\n".into(),
            duration_ms: 1,
        });
        let seen = seen.lock().unwrap();
        let EventKind::ToolCall { output, .. } = &seen[0].kind else {
            panic!("{:?}", seen[0]);
        };
        assert_eq!(output, "OPENAI_API_KEY=[redacted]\n");
        assert_eq!(seen[0].task.as_deref(), Some("t"));
    }

    #[test]
    fn an_event_a_secret_would_break_is_withheld() {
        // The secret is part of the event's tag: redacting it would make
        // the event unreadable, so a warning takes its place.
        let sink = EventSink::redacting(Redactor::new(["model.turn"]));
        let seen = collect(&sink);
        sink.emit(EventKind::ModelTurn {
            turn: 1,
            usage: Usage::default(),
            cost_usd: None,
            tool_calls: 0,
            text_chars: 0,
            duration_ms: 0,
        });
        let seen = seen.lock().unwrap();
        assert!(
            matches!(&seen[0].kind, EventKind::Warning { message } if message.contains("withheld")),
            "{:?}",
            seen[0]
        );
    }
}

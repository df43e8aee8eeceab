//! The run directory: `.kkrun/runs/<run-id>/` (or `--out DIR`) with the
//! event log, per-task files and the reports. Everything written here is
//! flushed as it happens, so a crash leaves a readable record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::Error;
use crate::events::{Event, EventSink};

/// Default parent of run directories, relative to the current directory.
pub const DEFAULT_RUNS_DIR: &str = ".kkrun/runs";

/// A new run id: UTC time to the second, then 6 hex digits — the
/// millisecond (3 digits) and 3 random ones — e.g. `20261124T101500Z-3e7a1f`.
/// Sorting ids sorts runs by start time, to the millisecond; the random
/// digits keep runs started in the same millisecond apart.
pub fn new_run_id() -> String {
    let now = jiff::Timestamp::now();
    let millis = now.subsec_millisecond().clamp(0, 999);
    format!(
        "{}-{millis:03x}{:03x}",
        now.strftime("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..0x1000)
    )
}

/// One run's directory.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    run_id: String,
}

impl RunDir {
    /// Creates the directory of run `run_id`: `out` when given, else
    /// `.kkrun/runs/<run-id>` under `cwd`, and points `.kkrun/runs/latest`
    /// at it in the default layout.
    pub fn create(cwd: &Path, out: Option<&Path>, run_id: &str) -> Result<RunDir, Error> {
        let root = match out {
            Some(out) if out.is_absolute() => out.to_path_buf(),
            Some(out) => cwd.join(out),
            None => cwd.join(DEFAULT_RUNS_DIR).join(run_id),
        };
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating the run directory {}", root.display()), e))?;
        if out.is_none() {
            update_latest(&cwd.join(DEFAULT_RUNS_DIR), run_id)?;
        }
        Ok(RunDir {
            root,
            run_id: run_id.to_string(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The directory of `task`'s files, created on first use.
    pub fn task_dir(&self, task: &str) -> Result<PathBuf, Error> {
        let dir = self.root.join(task);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        Ok(dir)
    }

    /// Appends every event of `sink` to `events.jsonl`, one JSON object a
    /// line, flushed per event.
    pub fn record_events(&self, sink: &EventSink) -> Result<(), Error> {
        let path = self.root.join("events.jsonl");
        let file = File::create(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        let writer = Arc::new(Mutex::new(JsonlWriter {
            file: BufWriter::new(file),
            failed: false,
        }));
        sink.subscribe(move |event: &Event| {
            let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
            writer.append(event);
        });
        Ok(())
    }

    /// Appends one JSON line to `<task>/transcript.jsonl`.
    pub fn append_transcript(&self, task: &str, entry: &impl Serialize) -> Result<(), Error> {
        let path = self.task_dir(task)?.join("transcript.jsonl");
        let context = || format!("appending to {}", path.display());
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(context(), e))?;
        let line = serde_json::to_string(entry).map_err(|e| Error::io(context(), e.into()))?;
        writeln!(file, "{line}").map_err(|e| Error::io(context(), e))
    }
}

/// Writes events as JSON lines; after the first write error it stops trying,
/// since the run itself must go on (the reports are written separately).
struct JsonlWriter {
    file: BufWriter<File>,
    failed: bool,
}

impl JsonlWriter {
    fn append(&mut self, event: &Event) {
        if self.failed {
            return;
        }
        let line = crate::events::to_json_line(event);
        let written = writeln!(self.file, "{line}").and_then(|()| self.file.flush());
        if let Err(e) = written {
            eprintln!("kkrun: warning: events.jsonl is no longer written: {e}");
            self.failed = true;
        }
    }
}

/// Points `<runs_dir>/latest` at `run_id` (a symlink where the platform has
/// them, else a file holding the id), replacing any previous pointer
/// atomically.
fn update_latest(runs_dir: &Path, run_id: &str) -> Result<(), Error> {
    let latest = runs_dir.join("latest");
    let tmp = runs_dir.join(format!(".latest-{run_id}"));
    let context = || format!("updating {}", latest.display());
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(run_id, &tmp).map_err(|e| Error::io(context(), e))?;
    #[cfg(not(unix))]
    fs::write(&tmp, run_id).map_err(|e| Error::io(context(), e))?;
    fs::rename(&tmp, &latest).map_err(|e| Error::io(context(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn run_ids_sort_by_time_and_have_the_documented_shape() {
        let id = new_run_id();
        let re = regex::Regex::new(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$").unwrap();
        assert!(re.is_match(&id), "{id}");
    }

    #[test]
    fn later_runs_sort_after_earlier_ones() {
        let first = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_run_id();
        assert!(first < second, "{first} !< {second}");
    }

    #[test]
    fn events_are_written_as_flushed_json_lines_and_latest_points_at_the_run() {
        let cwd = tempfile::tempdir().unwrap();
        let run = RunDir::create(cwd.path(), None, "20260101T000000Z-000001").unwrap();
        let sink = EventSink::new();
        run.record_events(&sink).unwrap();
        sink.emit(EventKind::Warning {
            message: "one".into(),
        });
        sink.for_task("t").emit(EventKind::Warning {
            message: "two".into(),
        });
        // Flushed per event: readable while the sink is still alive.
        let text = fs::read_to_string(run.path().join("events.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["type"], "warning");
        assert_eq!(lines[1]["task"], "t");
        let latest = cwd.path().join(DEFAULT_RUNS_DIR).join("latest");
        assert_eq!(
            fs::read_to_string(latest.join("events.jsonl")).unwrap(),
            text
        );
    }
}

//! The run directory: `.kkrun/runs/<run-id>/` (or `--out DIR`) with the
//! event log, per-task files and the reports. Everything written here is
//! flushed as it happens, so a crash leaves a readable record.
//!
//! The run store built on these directories lives in submodules: the
//! catalogue ([`catalog`]: listing runs, reading their records, resolving
//! `latest`), [`fsck`] and [`gc`].

pub mod catalog;
pub mod fsck;
pub mod gc;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::error::Error;
use crate::events::{Event, EventKind, EventSink};
use crate::redact::Redactor;

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
    redactor: Redactor,
    /// The run's lock on its directory, held while the run runs (`None`
    /// when reopened: `kkrun resume` holds it itself).
    _lock: Option<crate::lock::WorkTreeLock>,
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
        if let Some(out) = out {
            check_out_dir(cwd, out)?;
        }
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating the run directory {}", root.display()), e))?;
        // Before anything in it changes: an --out directory may be another
        // run's, still running.
        let mut notices = Vec::new();
        let lock = crate::lock::acquire_run(&root, run_id, "run", None, &mut notices)?;
        for notice in notices {
            eprintln!("kkrun: {notice}");
        }
        match out {
            None => update_latest(&cwd.join(DEFAULT_RUNS_DIR), run_id)?,
            Some(_) => {
                clear_previous_run(&root)?;
                // The directory ignores itself: inside a work tree it is then
                // neither snapshotted nor removed by a restore, without
                // touching the repository's own exclude file.
                let ignore = root.join(".gitignore");
                fs::write(&ignore, RUN_DIR_GITIGNORE)
                    .map_err(|e| Error::io(format!("writing {}", ignore.display()), e))?;
            }
        }
        Ok(RunDir {
            root,
            run_id: run_id.to_string(),
            redactor: Redactor::default(),
            _lock: Some(lock),
        })
    }

    /// The existing directory of run `run_id`, to continue the run in it
    /// (`kkrun resume`); nothing is created or cleared.
    pub fn reopen(root: &Path, run_id: &str) -> RunDir {
        RunDir {
            root: root.to_path_buf(),
            run_id: run_id.to_string(),
            redactor: Redactor::default(),
            _lock: None,
        }
    }

    /// This directory, with `redactor`'s secrets removed from every file
    /// written through it.
    pub fn redacting(self, redactor: Redactor) -> RunDir {
        RunDir { redactor, ..self }
    }

    /// The secrets removed from this directory's files.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
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
        let file = run_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        subscribe_writer(sink, file);
        Ok(())
    }

    /// Appends every event of `sink` to the existing `events.jsonl`, as
    /// [`RunDir::record_events`] does, for a resumed run. A last line the
    /// killed process did not finish writing (no newline) is cut off
    /// first, so the stream stays one event a line.
    pub fn append_events(&self, sink: &EventSink) -> Result<(), Error> {
        let path = self.root.join("events.jsonl");
        let context = || format!("appending to {}", path.display());
        let text = fs::read(&path).map_err(|e| Error::io(context(), e))?;
        let complete = text
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        let mut file = run_file_options()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(context(), e))?;
        if complete < text.len() {
            file.set_len(complete as u64)
                .map_err(|e| Error::io(context(), e))?;
        }
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
            .map_err(|e| Error::io(context(), e))?;
        subscribe_writer(sink, file);
        Ok(())
    }

    /// Appends one JSON line to `<task>/transcript.jsonl`.
    pub fn append_transcript(&self, task: &str, entry: &impl Serialize) -> Result<(), Error> {
        let path = self.task_dir(task)?.join("transcript.jsonl");
        let context = || format!("appending to {}", path.display());
        let mut file = run_file_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(context(), e))?;
        let line = serde_json::to_string(entry).map_err(|e| Error::io(context(), e.into()))?;
        // The line is JSON: a secret inside a string is replaced in its
        // escaped form, and the replacement needs no escaping.
        let line = self.redactor.redact(&line);
        writeln!(file, "{line}").map_err(|e| Error::io(context(), e))
    }

    /// Writes `<task>/<name>` atomically, with the secrets removed; returns
    /// the path relative to the run directory.
    pub fn write_task_file(&self, task: &str, name: &str, bytes: &[u8]) -> Result<String, Error> {
        let path = self.task_dir(task)?.join(name);
        crate::report::write_atomic(&path, &self.redactor.redact_bytes(bytes))?;
        Ok(format!("{task}/{name}"))
    }
}

/// How every file appended to in a run directory is opened: created with
/// [`crate::report::RUN_FILE_MODE`] less the umask, as the atomically
/// written reports are.
fn run_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(crate::report::RUN_FILE_MODE);
    }
    options
}

/// The `.gitignore` of an `--out` run directory: everything in it, itself
/// included.
const RUN_DIR_GITIGNORE: &str = "# A kkrun run directory: git ignores all of it.\n*\n";

/// Files kkrun writes at the top of a run directory.
const RUN_FILES: [&str; 5] = [
    "events.jsonl",
    "report.json",
    "junit.xml",
    "summary.md",
    ".gitignore",
];

/// Files kkrun writes in a task's directory.
const TASK_FILES: [&str; 3] = ["transcript.jsonl", "plan.json", "final.patch"];

/// Refuses an `--out` directory where the run's files would do harm or be
/// mixed with others: `.git` or anything in a git directory, the root of a
/// work tree, and an existing directory that holds anything but an earlier
/// kkrun run. Checked before anything is written.
pub fn check_out_dir(cwd: &Path, out: &Path) -> Result<(), Error> {
    let refuse = |why: &str, hint: &str| {
        Err(Error::InvalidInput(format!(
            "--out {}: {why} (hint: {hint})",
            out.display()
        )))
    };
    let absolute = lexically_normal(&cwd.join(out));
    let existing = absolute
        .ancestors()
        .find(|p| p.exists())
        .and_then(|p| p.canonicalize().ok());
    let in_git_dir = |path: &Path| {
        path.components().any(|c| c.as_os_str() == ".git") || path.ancestors().any(is_git_dir)
    };
    if in_git_dir(&absolute) || existing.as_deref().is_some_and(in_git_dir) {
        return refuse(
            "that is inside a git directory, where reports would mix with the repository's own files",
            "use a directory of the work tree, e.g. --out kkrun-results, or one outside the repository",
        );
    }
    if absolute.join(".git").exists() {
        return refuse(
            "that is the root of a git work tree, and restoring a snapshot would delete the run's own files",
            "use a subdirectory, e.g. --out kkrun-results",
        );
    }
    if !absolute.exists() {
        return Ok(());
    }
    if !absolute.is_dir() {
        return refuse(
            "that exists and is not a directory",
            "name a new directory, or an empty one",
        );
    }
    let entries: Vec<fs::DirEntry> = fs::read_dir(&absolute)
        .map_err(|e| Error::io(format!("reading {}", absolute.display()), e))?
        .filter_map(Result::ok)
        // A run killed before its first event leaves its lock.
        .filter(|entry| entry.file_name() != crate::lock::RUN_LOCK_FILE)
        .collect();
    if entries.is_empty() || absolute.join("events.jsonl").is_file() {
        return Ok(());
    }
    refuse(
        "the directory exists and holds files that are not a kkrun run, which the run would mix with its own",
        "name a new or empty directory; kkrun reuses only an earlier run's directory",
    )
}

/// True for a git directory: `HEAD`, `objects/` and `refs/` side by side.
fn is_git_dir(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

/// `path` with `.` and `..` taken out without touching the file system.
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Removes the files an earlier run left in a reused run directory, so its
/// transcripts and reports are not mistaken for this run's. Anything else
/// there stays.
fn clear_previous_run(root: &Path) -> Result<(), Error> {
    let remove = |path: &Path| match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    };
    if !root.join("events.jsonl").is_file() {
        return Ok(());
    }
    for name in RUN_FILES {
        remove(&root.join(name))?;
    }
    let entries =
        fs::read_dir(root).map_err(|e| Error::io(format!("reading {}", root.display()), e))?;
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        for name in TASK_FILES {
            remove(&dir.join(name))?;
        }
        // Only a task directory that is now empty goes.
        let _ = fs::remove_dir(&dir);
    }
    Ok(())
}

/// Subscribes a [`JsonlWriter`] on `file` to every event of `sink`.
fn subscribe_writer(sink: &EventSink, file: File) {
    let writer = Arc::new(Mutex::new(JsonlWriter {
        file,
        held: Vec::new(),
        failed: false,
    }));
    sink.subscribe(move |event: &Event| {
        let mut writer = writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.append(event);
    });
}

/// Writes events as JSON lines, each written whole as it comes; after the
/// first write error it stops trying, since the run itself must go on (the
/// reports are written separately).
///
/// The plan — `run.started` and the `task.planned` lines after it — is
/// held and written in one write together with the first event after it:
/// `kkrun resume` needs every task's plan, and a stream that a kill cut
/// between them could not be continued, while one holding no event at all
/// is a run in which nothing ran.
struct JsonlWriter {
    file: File,
    held: Vec<u8>,
    failed: bool,
}

impl JsonlWriter {
    fn append(&mut self, event: &Event) {
        if self.failed {
            return;
        }
        self.held
            .extend_from_slice(crate::events::to_json_line(event).as_bytes());
        self.held.push(b'\n');
        let planning = matches!(
            event.kind,
            EventKind::RunStarted { .. } | EventKind::TaskPlanned { .. }
        );
        if !planning {
            self.write_held();
        }
    }

    fn write_held(&mut self) {
        if self.held.is_empty() || self.failed {
            return;
        }
        let bytes = std::mem::take(&mut self.held);
        if let Err(e) = self.file.write_all(&bytes) {
            eprintln!("kkrun: warning: events.jsonl is no longer written: {e}");
            self.failed = true;
        }
    }
}

impl Drop for JsonlWriter {
    /// A run that ends (with an error) right after its plan still leaves it.
    fn drop(&mut self) {
        self.write_held();
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

    #[test]
    fn the_plan_is_written_together_with_the_first_event_after_it() {
        let cwd = tempfile::tempdir().unwrap();
        let run = RunDir::create(cwd.path(), None, "20260101T000000Z-000002").unwrap();
        let sink = EventSink::new();
        run.record_events(&sink).unwrap();
        let events = run.path().join("events.jsonl");
        sink.emit(EventKind::RunStarted {
            schema_version: 1,
            run_id: "20260101T000000Z-000002".into(),
            kkrun_version: "0".into(),
            tasks: vec!["t".into()],
            command_line: Vec::new(),
            partition: None,
            merged: None,
            baseline_findings: None,
        });
        assert_eq!(fs::read_to_string(&events).unwrap(), "");
        sink.for_task("t").emit(EventKind::Warning {
            message: "after the plan".into(),
        });
        let text = fs::read_to_string(&events).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("{\"ts\""), "{text}");
        assert!(text.contains("\"type\":\"run.started\""), "{text}");
    }
}

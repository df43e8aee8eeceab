//! Reports of a run: `report.json` (with its JSON Schema), `junit.xml`,
//! `summary.md`, and GitHub Actions annotations, all built by one
//! [`aggregate::Aggregator`] from the run's event stream.

pub mod aggregate;
pub mod findings;
pub mod github;
pub mod junit;
pub mod markdown;
mod model;
pub mod sarif;
pub mod text;

pub use model::{
    Artifacts, CheckReport, CheckRun, CheckStatus, FileChange, McpServerReport,
    REPORT_SCHEMA_VERSION, Report, ResumedReport, Review, SnapshotReport, StageReport, TaskOutcome,
    TaskReport, Totals, Verdict, ViolationReport,
};

use std::path::Path;

use crate::error::Error;

/// The JSON Schema of `report.json`, derived from [`Report`]; committed as
/// `schemas/report.schema.json`.
pub fn report_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).unwrap_or_default()
}

/// Writes `report.json`, `junit.xml`, `summary.md` and, when the run has a
/// bug hunt, `findings.sarif` into `dir`, each atomically (a reader never
/// sees half a file). Returns what GitHub's limits made the SARIF file
/// leave out.
pub fn write_all(dir: &Path, report: &Report) -> Result<Vec<sarif::Dropped>, Error> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::io("serializing report.json", e.into()))?;
    write_atomic(&dir.join("report.json"), format!("{json}\n").as_bytes())?;
    let junit = junit::render(report).map_err(|e| Error::io("rendering junit.xml", e))?;
    write_atomic(&dir.join("junit.xml"), junit.as_bytes())?;
    write_atomic(&dir.join("summary.md"), markdown::render(report).as_bytes())?;
    let Some(sarif) = sarif::render(report, sarif::SarifLimits::default()) else {
        return Ok(Vec::new());
    };
    let text = serde_json::to_string_pretty(&sarif.log)
        .map_err(|e| Error::io("serializing findings.sarif", e.into()))?;
    write_atomic(&dir.join(SARIF_FILE), format!("{text}\n").as_bytes())?;
    Ok(sarif.dropped)
}

/// The SARIF file's name in the run directory.
pub const SARIF_FILE: &str = "findings.sarif";

/// The mode every file of a run directory is created with, before the
/// umask takes its share (so `0644` under the usual umask 022): the reports,
/// per-task files and `events.jsonl` alike, since they are uploaded and
/// read together.
pub const RUN_FILE_MODE: u32 = 0o666;

/// Writes `bytes` to `path` through a temporary file and a rename. The file
/// gets [`RUN_FILE_MODE`] less the umask, like `events.jsonl` (a temporary
/// file alone would be `0600`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let context = || format!("writing {}", path.display());
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(RUN_FILE_MODE));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| Error::io(context(), e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(context(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io(context(), e.error))?;
    Ok(())
}

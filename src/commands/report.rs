//! `kkrun report rebuild RUN_DIR`: writes `report.json`, `junit.xml` and
//! `summary.md` again from the run's `events.jsonl` alone; `kkrun report
//! merge RUN_DIR... --out DIR` joins the run directories of a CI matrix's
//! shards into one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::print;
use crate::error::Error;
use crate::report::aggregate;

/// Rebuilds the reports in `run_dir` and says what it did.
pub fn rebuild(run_dir: &Path) -> Result<i32, Error> {
    let rebuilt = aggregate::rebuild(run_dir)?;
    let mut text = format!(
        "rebuilt report.json, junit.xml and summary.md in {} from {} event(s)\n",
        run_dir.display(),
        rebuilt.events
    );
    if rebuilt.torn_last_line {
        text.push_str("skipped the last line of events.jsonl: it was cut off mid-write\n");
    }
    if !rebuilt.complete {
        let unfinished = rebuilt
            .report
            .tasks
            .iter()
            .filter(|t| t.reason == aggregate::UNFINISHED_REASON)
            .count();
        text.push_str(&format!(
            "the stream ends without run.finished: {unfinished} unfinished task(s) reported as \
             interrupted, and the report is marked `rebuilt`\n"
        ));
    }
    print(&text)
}

/// Merges the shards' run directories into `out`, says what it did, and
/// returns the merged run's exit code.
pub fn merge(run_dirs: &[PathBuf], out: &Path, command_line: Vec<String>) -> Result<i32, Error> {
    let merged = aggregate::merge(run_dirs, out, command_line)?;
    let report = &merged.report;
    // Warnings on stderr, so stdout stays the one-line result.
    let mut stderr = std::io::stderr().lock();
    if !merged.missing_tasks.is_empty() {
        let _ = writeln!(
            stderr,
            "kkrun: warning: {} task(s) of the full set ran in no shard, reported as error: {}",
            merged.missing_tasks.len(),
            merged.missing_tasks.join(", ")
        );
    }
    for dir in &merged.unfinished_shards {
        let _ = writeln!(
            stderr,
            "kkrun: warning: {dir}: the shard's events end without run.finished (it was killed); \
             its unfinished tasks are reported as interrupted"
        );
    }
    let passed = report
        .tasks
        .iter()
        .filter(|t| t.outcome == crate::report::TaskOutcome::Passed)
        .count();
    print(&format!(
        "merged {} run director{} into {}: {passed} of {} task(s) passed, exit code {}\n",
        run_dirs.len(),
        if run_dirs.len() == 1 { "y" } else { "ies" },
        out.display(),
        report.tasks.len(),
        report.exit_code
    ))?;
    Ok(report.exit_code)
}

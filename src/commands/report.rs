//! `kkrun report rebuild RUN_DIR`: writes `report.json`, `junit.xml` and
//! `summary.md` again from the run's `events.jsonl` alone.

use std::path::Path;

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

//! The model comparison of summary.md: for each task run with a model
//! matrix, its instances side by side.

use std::fmt::Write as _;

use super::{checks_cell, human_duration, human_tokens, outcome_badge};
use crate::report::model::{Report, TaskReport};

/// One table per task with a matrix, in the order the tasks first appear;
/// nothing when the run has no matrix.
pub(super) fn comparison(md: &mut String, report: &Report) {
    let mut tasks: Vec<&str> = Vec::new();
    for matrix in report.tasks.iter().filter_map(|t| t.matrix.as_ref()) {
        if !tasks.contains(&matrix.task.as_str()) {
            tasks.push(&matrix.task);
        }
    }
    if tasks.is_empty() {
        return;
    }
    md.push_str("\n## Models compared\n");
    for task in tasks {
        let instances: Vec<&TaskReport> = report
            .tasks
            .iter()
            .filter(|t| t.matrix.as_ref().is_some_and(|m| m.task == task))
            .collect();
        let _ = writeln!(
            md,
            "\n### `{task}`\n\n| model | outcome | checks | turns | tokens | cost | time |\n\
             |---|---|---|---|---|---|---|"
        );
        for instance in instances {
            let model = instance.matrix.as_ref().map_or("", |m| m.model.as_str());
            let turns: u32 = instance.stages.iter().map(|s| s.turns).sum();
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {turns} | {} | {} | {} |",
                model.replace('|', "\\|").replace('`', "'"),
                outcome_badge(instance.outcome),
                checks_cell(instance),
                human_tokens(&instance.usage),
                instance
                    .cost_usd
                    .map_or_else(|| "n/a".to_owned(), |c| format!("${c:.2}")),
                human_duration(instance.duration_ms)
            );
        }
    }
}

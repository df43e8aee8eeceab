//! The task's structured final output (`output_schema:`): the preview's
//! `submit_review` asks for it, and the accepted object is written to
//! `<task>/output.json` and carried by `task.finished`.

use serde_json::Value;

use super::Stop;
use super::finish::{self, ReviewSubmission};
use super::task_run::TaskRun;
use crate::agent::FinishTool;
use crate::events::{ArtifactKind, TaskOutcome};
use crate::output_schema::{MAX_CORRECTIONS, OutputSchema};

impl TaskRun<'_, '_> {
    /// The task's compiled output schema, if it has one.
    fn output_schema(&self) -> Result<Option<OutputSchema>, Stop> {
        // Checked when the task file was loaded, so this fails only if the
        // task was built some other way.
        self.task
            .output_schema
            .as_ref()
            .map(|schema| {
                OutputSchema::compile(schema).map_err(|problem| {
                    Stop::new(TaskOutcome::Error, format!("output_schema is {problem}"))
                })
            })
            .transpose()
    }

    /// The preview's finishing tool: `submit_review`, with the task's output
    /// schema when it has one.
    pub(super) fn review_tool(&self) -> Result<FinishTool, Stop> {
        let compiled = self.output_schema()?;
        Ok(finish::submit_review(
            self.task.output_schema.as_ref().zip(compiled),
        ))
    }

    /// Takes the review's `output`: checks it once more (the tool accepts
    /// an invalid one after [`MAX_CORRECTIONS`] corrections so that the
    /// stage ends), writes `output.json` and keeps it for `task.finished`.
    /// An output that still does not match fails the task with the
    /// validator's last errors.
    pub(super) fn accept_output(&mut self, review: &ReviewSubmission) -> Result<(), Stop> {
        let schema = self.output_schema()?;
        let output: Option<Value> =
            finish::check_output(review, schema.as_ref()).map_err(|problem| {
                Stop::new(
                    TaskOutcome::Failed,
                    format!(
                        "the review's output was still invalid after {MAX_CORRECTIONS} corrections: {problem}"
                    ),
                )
            })?;
        let Some(output) = output else {
            return Ok(());
        };
        let mut bytes = serde_json::to_vec_pretty(&output).unwrap_or_default();
        bytes.push(b'\n');
        self.write_artifact(ArtifactKind::Output, "output.json", &bytes)
            .map_err(|e| Stop::error("writing output.json failed", &e))?;
        self.output = Some(output);
        Ok(())
    }
}

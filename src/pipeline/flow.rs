//! The order of the stages: setup, base snapshot and baseline checks, blueprint,
//! code and debug rounds that may loop back, the final checks, preview.

use super::finish::{self, ReturnToCode};
use super::task_run::{Decides, TaskRun};
use super::{Stop, context, prompts};
use crate::events::{CheckPhase, EventKind, Review, TaskOutcome};
use crate::provider::Usage;
use crate::task::Stage;
use crate::tools::checks::CheckResult;

/// The most diff text preview is shown; the rest is summarised.
const MAX_PREVIEW_DIFF_BYTES: usize = 80 * 1024;

impl TaskRun<'_, '_> {
    /// The pipeline proper; `Err` ends the task early with that outcome.
    pub(super) async fn drive(&mut self) -> Result<(), Stop> {
        self.setup().await?;
        let base = self.take_step(
            |step| matches!(step, crate::resume::Step::Base(_)),
            "the base snapshot",
        )?;
        if base.is_none() {
            self.snapshot("base", "ok", Usage::default(), None)?;
        }
        self.start_mcp().await?;
        self.baseline = self.checks(CheckPhase::Baseline, Decides::No).await?;

        // Blueprint.
        let commands: Vec<String> = self.task.checks.iter().map(|c| c.run.clone()).collect();
        let context = context::gather(&self.task.workspace, &self.task.context);
        let message = prompts::blueprint_message(self.task, &context, &self.baseline, &commands);
        let request = self.request(
            Stage::Blueprint,
            prompts::blueprint_system(),
            message,
            vec![finish::submit_plan()],
        );
        let (_, arguments) = self.stage(Stage::Blueprint, 1, request).await?;
        let plan = finish::parse_plan(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;
        self.save_plan(&arguments)?;

        // Code, then debug rounds that may send the work back.
        let mut feedback: Option<(ReturnToCode, Vec<CheckResult>)> = None;
        let mut round = 1;
        loop {
            let message = prompts::code_message(self.task, &plan, feedback.as_ref());
            let request = self.request(
                Stage::Code,
                prompts::code_system(),
                message,
                vec![finish::finish_stage("code")],
            );
            let (_, arguments) = self.stage(Stage::Code, round, request).await?;
            let code_summary =
                finish::parse_finish(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;

            if self.desk.is_some() {
                self.skip_stage(
                    Stage::Debug,
                    round,
                    "a bug hunt reports bugs; it does not fix failing checks",
                )?;
                break;
            }
            if self.task.checks.is_empty() {
                self.skip_stage(Stage::Debug, round, "the task has no checks")?;
                break;
            }
            let checks = self.checks(CheckPhase::Debug, Decides::IfAllPass).await?;
            if checks.iter().all(|c| c.run.passed) {
                self.skip_stage(Stage::Debug, round, "every check passed after code")?;
                self.final_checks = Some(checks);
                break;
            }
            let message =
                prompts::debug_message(self.task, &plan, &code_summary, &checks, &self.baseline);
            let request = self.request(
                Stage::Debug,
                prompts::debug_system(),
                message,
                vec![finish::finish_stage("debug"), finish::return_to_code()],
            );
            let (tool, arguments) = self.stage(Stage::Debug, round, request).await?;
            if tool != finish::RETURN_TO_CODE {
                break;
            }
            let back =
                finish::parse_return(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;
            if round >= self.task.stages.debug_max_rounds {
                // A resumed task said so the first time.
                if !self.replaying() {
                    let message = format!(
                        "return_to_code after the last of {} debug round(s): going on to the final checks",
                        self.task.stages.debug_max_rounds
                    );
                    self.events
                        .for_stage(Stage::Debug)
                        .emit(EventKind::Warning { message });
                }
                break;
            }
            let checks_then = self.checks(CheckPhase::Debug, Decides::No).await?;
            feedback = Some((back, checks_then));
            round += 1;
        }

        // kkrun's own verdict on the work: the checks, run once more.
        if self.final_checks.is_none() && !self.task.checks.is_empty() {
            self.final_checks = Some(self.checks(CheckPhase::Final, Decides::Yes).await?);
        }
        let final_checks = self.final_checks.clone().unwrap_or_default();

        // A bug hunt's findings are confirmed by kkrun before the review.
        self.reproduce_findings().await?;

        // Preview.
        let diff = self.diff_from_base().map(|d| d.patch).unwrap_or_default();
        let diff = if diff.len() > MAX_PREVIEW_DIFF_BYTES {
            format!(
                "{}\n[… diff truncated: {} more bytes; read the files for the rest …]",
                context::truncate_at_char(&diff, MAX_PREVIEW_DIFF_BYTES),
                diff.len() - MAX_PREVIEW_DIFF_BYTES
            )
        } else {
            diff
        };
        let mut message =
            prompts::preview_message(self.task, Some(&plan), &diff, &self.baseline, &final_checks);
        if let Some(desk) = &self.desk {
            message.push_str(&super::hunt::preview_section(&desk.findings()));
        }
        let request = self.request(
            Stage::Preview,
            prompts::preview_system(),
            message,
            vec![self.review_tool()?],
        );
        let (_, arguments) = self.stage(Stage::Preview, 1, request).await?;
        let submitted =
            finish::parse_review(&arguments).map_err(|e| Stop::new(TaskOutcome::Error, e))?;
        let review = Review {
            verdict: submitted.verdict,
            summary: submitted.summary.clone(),
            risks: submitted.risks.clone(),
            advisory: self.task.stages.preview_advisory,
        };
        let recorded = self.take_step(
            |step| matches!(step, crate::resume::Step::Review),
            "the review",
        )?;
        if recorded.is_none() {
            self.events
                .for_stage(Stage::Preview)
                .emit(EventKind::ReviewSubmitted {
                    review: review.clone(),
                });
        }
        self.review = Some(review);
        self.accept_output(&submitted)
    }
}

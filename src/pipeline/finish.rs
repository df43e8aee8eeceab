//! The structured tool calls that end each stage, with their JSON Schemas
//! and validators. A stage ends only through one of these, never because of
//! words in the model's text.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::agent::FinishTool;
use crate::output_schema::{MAX_CORRECTIONS, OutputSchema};
use crate::provider::ToolSpec;
use crate::report::Verdict;

/// `submit_plan` ends blueprint.
pub const SUBMIT_PLAN: &str = "submit_plan";
/// `finish_stage` ends code and debug.
pub const FINISH_STAGE: &str = "finish_stage";
/// `return_to_code` ends debug and sends the work back to code.
pub const RETURN_TO_CODE: &str = "return_to_code";
/// `submit_review` ends preview.
pub const SUBMIT_REVIEW: &str = "submit_review";

/// The blueprint stage's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The goal in the agent's own words.
    pub goal: String,
    /// Ordered steps.
    pub steps: Vec<String>,
    /// Files to create or change, relative to the workspace.
    pub files: Vec<String>,
    /// What could go wrong.
    #[serde(default)]
    pub risks: Vec<String>,
    /// How to verify the change.
    pub verification: String,
}

/// What `return_to_code` asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnToCode {
    /// Why the work goes back.
    pub reason: String,
    /// What the code stage should redo.
    pub redo: String,
}

/// What `submit_review` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSubmission {
    /// `approve` or `request_changes`.
    pub verdict: Verdict,
    /// Human summary in Markdown.
    pub summary: String,
    /// Risks the reviewer sees.
    #[serde(default)]
    pub risks: Vec<String>,
    /// The structured result the task's `output_schema:` asks for; absent
    /// when it asks for none.
    #[serde(default)]
    pub output: Option<Value>,
}

/// Parses `value` as `T`, turning serde's message into one the model can act on.
fn parse<T: for<'de> Deserialize<'de>>(value: &Value) -> Result<T, String> {
    serde_json::from_value(value.clone())
        .map_err(|e| format!("the arguments do not match the schema: {e}"))
}

fn non_empty(field: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err(format!("`{field}` must not be empty"))
    } else {
        Ok(())
    }
}

/// Parses and checks a plan.
pub fn parse_plan(value: &Value) -> Result<Plan, String> {
    let plan: Plan = parse(value)?;
    non_empty("goal", &plan.goal)?;
    non_empty("verification", &plan.verification)?;
    if plan.steps.is_empty() || plan.steps.iter().any(|s| s.trim().is_empty()) {
        return Err("`steps` must list at least one non-empty step".into());
    }
    Ok(plan)
}

/// Parses and checks `finish_stage` arguments, returning the summary.
pub fn parse_finish(value: &Value) -> Result<String, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Finish {
        summary: String,
    }
    let finish: Finish = parse(value)?;
    non_empty("summary", &finish.summary)?;
    Ok(finish.summary)
}

/// Parses and checks `return_to_code` arguments.
pub fn parse_return(value: &Value) -> Result<ReturnToCode, String> {
    let back: ReturnToCode = parse(value)?;
    non_empty("reason", &back.reason)?;
    non_empty("redo", &back.redo)?;
    Ok(back)
}

/// Parses and checks a review.
pub fn parse_review(value: &Value) -> Result<ReviewSubmission, String> {
    let review: ReviewSubmission = parse(value)?;
    non_empty("summary", &review.summary)?;
    Ok(review)
}

/// The `submit_plan` tool.
pub fn submit_plan() -> FinishTool {
    FinishTool {
        spec: ToolSpec {
            name: SUBMIT_PLAN.into(),
            description: "Submit your plan and end the blueprint stage. Call this exactly once, after exploring \
                          the repository. The plan is validated; if it is rejected, fix what the error says and call \
                          again."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "goal": {"type": "string", "description": "The goal in your own words, one or two sentences."},
                    "steps": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                              "description": "Ordered, concrete steps for the code stage."},
                    "files": {"type": "array", "items": {"type": "string"},
                              "description": "Files to create or change, relative to the workspace."},
                    "risks": {"type": "array", "items": {"type": "string"},
                              "description": "What could go wrong or be broken by the change."},
                    "verification": {"type": "string", "description": "How to verify the change (which checks, what to look for)."}
                },
                "required": ["goal", "steps", "files", "verification"],
                "additionalProperties": false
            }),
        },
        validate: Box::new(|value| parse_plan(value).map(|_| ())),
    }
}

/// The `finish_stage` tool.
pub fn finish_stage(what: &str) -> FinishTool {
    FinishTool {
        spec: ToolSpec {
            name: FINISH_STAGE.into(),
            description: format!(
                "End the {what} stage. `summary` says what you changed and why, for the next stage and the report."
            ),
            parameters: json!({
                "type": "object",
                "properties": {"summary": {"type": "string", "description": "What you changed and why."}},
                "required": ["summary"],
                "additionalProperties": false
            }),
        },
        validate: Box::new(|value| parse_finish(value).map(|_| ())),
    }
}

/// The `return_to_code` tool.
pub fn return_to_code() -> FinishTool {
    FinishTool {
        spec: ToolSpec {
            name: RETURN_TO_CODE.into(),
            description: "End the debug stage and send the work back to the code stage, when the failures need a \
                          different approach rather than a local fix. The number of round trips is limited."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why the current approach does not work."},
                    "redo": {"type": "string", "description": "What the code stage should do differently."}
                },
                "required": ["reason", "redo"],
                "additionalProperties": false
            }),
        },
        validate: Box::new(|value| parse_return(value).map(|_| ())),
    }
}

/// Checks a review's `output` against the task's `output_schema` (`None`:
/// the task asks for no output, so none may be given).
pub fn check_output(
    review: &ReviewSubmission,
    schema: Option<&OutputSchema>,
) -> Result<Option<Value>, String> {
    match (schema, &review.output) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err("this task asks for no `output`; leave it out".into()),
        (Some(_), None) => Err("`output` is missing: this task's output_schema asks for it".into()),
        (Some(schema), Some(output)) => schema
            .check(output)
            .map(|()| Some(output.clone()))
            .map_err(|problems| {
                format!("`output` does not match the task's output_schema: {problems}")
            }),
    }
}

/// The `submit_review` tool. With an output schema (the schema's JSON and
/// its compiled form), the review must carry an `output` matching it; an
/// invalid one is sent back to the model with the validator's errors
/// [`MAX_CORRECTIONS`] times, after which the call is accepted so the
/// stage ends and the caller fails the task on the same check.
pub fn submit_review(output: Option<(&Value, OutputSchema)>) -> FinishTool {
    let mut tool = plain_submit_review();
    let Some((schema_json, schema)) = output else {
        return tool;
    };
    let parameters = &mut tool.spec.parameters;
    parameters["properties"]["output"] = schema_json.clone();
    if let Some(object) = parameters["properties"]["output"].as_object_mut() {
        object.insert(
            "description".into(),
            "The task's structured result; it must match this schema.".into(),
        );
    }
    if let Some(required) = parameters["required"].as_array_mut() {
        required.push("output".into());
    }
    let rejected = AtomicU32::new(0);
    tool.validate = Box::new(move |value| {
        let review = parse_review(value)?;
        match check_output(&review, Some(&schema)) {
            Ok(_) => Ok(()),
            Err(problem) => {
                if rejected.fetch_add(1, Ordering::Relaxed) >= MAX_CORRECTIONS {
                    Ok(())
                } else {
                    Err(problem)
                }
            }
        }
    });
    tool
}

fn plain_submit_review() -> FinishTool {
    FinishTool {
        spec: ToolSpec {
            name: SUBMIT_REVIEW.into(),
            description: "Submit your review of the final change and end the preview stage.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "verdict": {"type": "string", "enum": ["approve", "request_changes"],
                                "description": "approve: the change does what the task asks, safely. request_changes: it should not be merged as is."},
                    "summary": {"type": "string", "description": "Summary for the humans who read the report, in Markdown: what changed, why, and how it was verified."},
                    "risks": {"type": "array", "items": {"type": "string"}, "description": "Risks or follow-ups a reviewer should know."}
                },
                "required": ["verdict", "summary"],
                "additionalProperties": false
            }),
        },
        validate: Box::new(|value| {
            let review = parse_review(value)?;
            check_output(&review, None).map(|_| ())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_plan_is_accepted() {
        let plan = parse_plan(&json!({
            "goal": "g", "steps": ["a"], "files": ["x.py"], "verification": "run the tests"
        }))
        .unwrap();
        assert!(plan.risks.is_empty());
    }

    #[test]
    fn plan_errors_say_what_to_fix() {
        let missing = parse_plan(&json!({"goal": "g", "steps": ["a"], "files": []})).unwrap_err();
        assert!(missing.contains("verification"), "{missing}");
        let empty =
            parse_plan(&json!({"goal": "g", "steps": [], "files": [], "verification": "v"}))
                .unwrap_err();
        assert!(empty.contains("steps"), "{empty}");
        let extra = parse_plan(
            &json!({"goal": "g", "steps": ["a"], "files": [], "verification": "v", "x": 1}),
        )
        .unwrap_err();
        assert!(extra.contains("unknown field"), "{extra}");
    }

    #[test]
    fn review_verdicts_are_checked() {
        let ok = parse_review(&json!({"verdict": "request_changes", "summary": "s"})).unwrap();
        assert_eq!(ok.verdict, Verdict::RequestChanges);
        assert!(parse_review(&json!({"verdict": "maybe", "summary": "s"})).is_err());
        assert!(parse_review(&json!({"verdict": "approve", "summary": " "})).is_err());
    }
}

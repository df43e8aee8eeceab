//! `report_finding` and `withdraw_finding` through the tool dispatcher, on
//! real files: validation against the workspace, repository-relative paths,
//! fingerprints that survive unrelated edits, and which stages get them.

use std::collections::BTreeMap;
use std::path::Path;

use kkrun::events::EventSink;
use kkrun::events::ToolOutcome;
use kkrun::findings::FindingStatus;
use kkrun::provider::ToolCall;
use kkrun::task::{ShellPolicy, Stage};
use kkrun::tools::findings::{FindingTools, FindingsDesk};
use kkrun::tools::{ToolContext, ToolResult, ToolSet, execute};
use serde_json::{Value, json};

const CODE: &str =
    "def last(items):\n    return items[len(items)]\n\n\ndef first(items):\n    return items[0]\n";

/// A repository root with the workspace `pkg/` holding `lib.py`.
fn workspace(root: &Path, code: &str) -> ToolContext {
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("pkg/lib.py"), code).unwrap();
    ToolContext::from_parts(
        &root.join("pkg"),
        ShellPolicy::default(),
        BTreeMap::new(),
        Vec::new(),
    )
}

fn with_desk(
    mut ctx: ToolContext,
    root: &Path,
    stage: Stage,
    offer: FindingTools,
) -> (ToolContext, FindingsDesk) {
    let desk = FindingsDesk::new(root, None);
    ctx.findings = Some(desk.for_stage(stage, Some(offer), EventSink::new()));
    (ctx, desk)
}

async fn call(ctx: &ToolContext, set: ToolSet, tool: &str, arguments: Value) -> ToolResult {
    let call = ToolCall {
        id: "call_1".to_string(),
        name: tool.to_string(),
        arguments: arguments.to_string(),
    };
    execute(ctx, set, &call).await
}

fn finding_args(line: u64) -> Value {
    json!({"file": "lib.py", "start_line": line, "severity": "high", "rule_id": "off-by-one",
           "title": "last() reads past the end", "message": "len(items) is one past the last index.",
           "evidence": "last([1]) raises IndexError", "reproduce": "python3 -c 'import lib; lib.last([1])'"})
}

#[tokio::test]
async fn a_valid_finding_is_recorded_with_a_repository_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (ctx, desk) = with_desk(
        workspace(&root, CODE),
        &root,
        Stage::Code,
        FindingTools::Report,
    );
    let result = call(&ctx, ToolSet::Code, "report_finding", finding_args(2)).await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(
        result.content.starts_with("recorded as F1"),
        "{}",
        result.content
    );
    let findings = desk.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].file, "pkg/lib.py");
    assert_eq!((findings[0].start_line, findings[0].end_line), (2, 2));
    assert_eq!(findings[0].status, FindingStatus::Unconfirmed);
    assert_eq!(findings[0].stage, Stage::Code);

    let again = call(&ctx, ToolSet::Code, "report_finding", finding_args(2)).await;
    assert_eq!(again.outcome, ToolOutcome::Error);
    assert!(
        again.content.contains("already reported as F1"),
        "{}",
        again.content
    );
}

#[tokio::test]
async fn bad_findings_go_back_to_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (ctx, desk) = with_desk(
        workspace(&root, CODE),
        &root,
        Stage::Code,
        FindingTools::Report,
    );
    let cases = [
        (json!({"file": "missing.py"}), "does not exist"),
        (json!({"start_line": 7}), "has 6 line(s)"),
        (json!({"start_line": 0}), "1-based"),
        (json!({"end_line": 1}), "must be between start_line 2 and 6"),
        (json!({"rule_id": "Off_By_One"}), "kebab-case"),
        (json!({"title": ""}), "`title`"),
        (json!({"evidence": "  "}), "`evidence` is empty"),
        (json!({"file": "../../etc/passwd"}), "leaves the workspace"),
        (
            json!({"reproduce": "git push origin main"}),
            "would be refused",
        ),
        (json!({"severity": "urgent"}), "invalid arguments"),
    ];
    for (change, expected) in cases {
        let mut args = finding_args(2);
        for (key, value) in change.as_object().unwrap() {
            args[key] = value.clone();
        }
        let result = call(&ctx, ToolSet::Code, "report_finding", args).await;
        assert_ne!(result.outcome, ToolOutcome::Ok, "{change}");
        assert!(
            result.content.contains(expected),
            "{change}: {}",
            result.content
        );
    }
    assert!(desk.findings().is_empty());
}

#[tokio::test]
async fn the_fingerprint_survives_lines_inserted_above() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (ctx, desk) = with_desk(
        workspace(&root, CODE),
        &root,
        Stage::Code,
        FindingTools::Report,
    );
    call(&ctx, ToolSet::Code, "report_finding", finding_args(2)).await;
    let before = desk.findings()[0].fingerprint.clone();

    let edited = format!("\"\"\"Helpers.\"\"\"\nimport os\n\nLIMIT = 3\n\n\n{CODE}");
    let (ctx, desk) = with_desk(
        workspace(&root, &edited),
        &root,
        Stage::Code,
        FindingTools::Report,
    );
    let result = call(&ctx, ToolSet::Code, "report_finding", finding_args(8)).await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert_eq!(desk.findings()[0].fingerprint, before);

    let fixed = edited.replace("items[len(items)]", "items[len(items) - 1]");
    let (ctx, desk) = with_desk(
        workspace(&root, &fixed),
        &root,
        Stage::Code,
        FindingTools::Report,
    );
    call(&ctx, ToolSet::Code, "report_finding", finding_args(8)).await;
    assert_ne!(
        desk.findings()[0].fingerprint,
        before,
        "the changed code kept its identity"
    );
}

#[tokio::test]
async fn withdraw_is_for_preview_and_needs_a_known_id() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (ctx, desk) = with_desk(
        workspace(&root, CODE),
        &root,
        Stage::Code,
        FindingTools::Report,
    );
    call(&ctx, ToolSet::Code, "report_finding", finding_args(2)).await;
    // Code offers report_finding only.
    let refused = call(
        &ctx,
        ToolSet::Code,
        "withdraw_finding",
        json!({"id": "F1", "reason": "x"}),
    )
    .await;
    assert_eq!(refused.outcome, ToolOutcome::Refused, "{}", refused.content);

    let mut preview = ctx.clone();
    preview.findings = Some(desk.for_stage(
        Stage::Preview,
        Some(FindingTools::Withdraw),
        EventSink::new(),
    ));
    let refused = call(
        &preview,
        ToolSet::ReadOnly,
        "report_finding",
        finding_args(5),
    )
    .await;
    assert_eq!(refused.outcome, ToolOutcome::Refused);
    let unknown = call(
        &preview,
        ToolSet::ReadOnly,
        "withdraw_finding",
        json!({"id": "F9", "reason": "x"}),
    )
    .await;
    assert!(
        unknown.content.contains("the findings are: F1"),
        "{}",
        unknown.content
    );
    let done = call(
        &preview,
        ToolSet::ReadOnly,
        "withdraw_finding",
        json!({"id": "f1", "reason": "not a bug"}),
    )
    .await;
    assert_eq!(done.outcome, ToolOutcome::Ok, "{}", done.content);
    let findings = desk.findings();
    assert_eq!(findings[0].status, FindingStatus::Withdrawn);
    assert_eq!(findings[0].withdrawn_reason.as_deref(), Some("not a bug"));
    let twice = call(
        &preview,
        ToolSet::ReadOnly,
        "withdraw_finding",
        json!({"id": "F1", "reason": "x"}),
    )
    .await;
    assert!(twice.content.contains("already withdrawn"));
}

#[tokio::test]
async fn tasks_that_are_not_bug_hunts_have_no_finding_tools() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let ctx = workspace(&root, CODE);
    assert!(ctx.extra_specs().is_empty());
    let refused = call(&ctx, ToolSet::Debug, "report_finding", finding_args(2)).await;
    assert_eq!(refused.outcome, ToolOutcome::Refused);
    assert!(
        refused.content.contains("not available"),
        "{}",
        refused.content
    );
}

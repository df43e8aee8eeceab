//! The git-state guard on a real repository: the agent's shell runs
//! scripts the shell policy cannot see into (it does not read script
//! files), which move a branch, drop the stash, change `.git/config`,
//! write a hook, stage a file or move HEAD. Each change is put back, the
//! tool's answer says so, and a violation is recorded. Then the same
//! through the real `kkrun` binary: the task fails, `policy.violation` is
//! in the event stream and the report, and the branch is where it was.

mod e2e_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_support::{Fixture as RunFixture, TaskFile, call, git as run_git, plan};
use kkrun::events::ToolOutcome;
use kkrun::guard::GitChangeKind;
use kkrun::provider::ToolCall;
use kkrun::task::ShellPolicy;
use kkrun::tools::{ToolContext, ToolResult, ToolSet, execute};
use serde_json::json;

const IDENTITY: [(&str, &str); 5] = [
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_AUTHOR_NAME", "t"),
    ("GIT_AUTHOR_EMAIL", "t@example.com"),
    ("GIT_COMMITTER_NAME", "t"),
    ("GIT_COMMITTER_EMAIL", "t@example.com"),
];

fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(IDENTITY)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A repository with two commits on `main`, a tag, a branch and two stash
/// entries.
struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    ctx: ToolContext,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.txt"), "one\n").unwrap();
        std::fs::write(repo.join("b.txt"), "one\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-qm", "one"]);
        git(&repo, &["tag", "v1"]);
        git(&repo, &["branch", "feature"]);
        std::fs::write(repo.join("a.txt"), "two\n").unwrap();
        git(&repo, &["commit", "-qam", "two"]);
        for content in ["first stash\n", "second stash\n"] {
            std::fs::write(repo.join("a.txt"), content).unwrap();
            git(&repo, &["stash", "-q"]);
        }
        let env: BTreeMap<String, String> = IDENTITY
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let policy = ShellPolicy {
            timeout: Duration::from_secs(30),
            ..ShellPolicy::default()
        };
        let ctx = ToolContext::from_parts(&repo, policy, env, Vec::new());
        Fixture {
            _dir: dir,
            repo,
            ctx,
        }
    }

    /// Runs `script` as a file (`bash script.sh`), which the shell policy
    /// does not read.
    async fn run_script(&self, script: &str) -> ToolResult {
        std::fs::write(self.repo.join("script.sh"), script).unwrap();
        self.shell("bash script.sh").await
    }

    async fn shell(&self, command: &str) -> ToolResult {
        let call = ToolCall {
            id: "call_1".to_string(),
            name: "shell".to_string(),
            arguments: json!({ "command": command }).to_string(),
        };
        execute(&self.ctx, ToolSet::Code, &call).await
    }

    /// Everything the guard protects, as git shows it.
    fn state(&self) -> String {
        let hooks: Vec<String> = std::fs::read_dir(self.repo.join(".git/hooks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".sample"))
            .collect();
        [
            git(&self.repo, &["symbolic-ref", "-q", "HEAD"]),
            git(&self.repo, &["show-ref"]),
            git(&self.repo, &["stash", "list", "--format=%H %gs"]),
            git(&self.repo, &["ls-files", "--stage"]),
            std::fs::read_to_string(self.repo.join(".git/config")).unwrap(),
            format!("hooks: {hooks:?}"),
        ]
        .join("\n")
    }
}

#[track_caller]
fn assert_reverted(
    fx: &Fixture,
    result: &ToolResult,
    before: &str,
    kind: GitChangeKind,
    needle: &str,
) {
    assert_eq!(result.outcome, ToolOutcome::Error, "{}", result.content);
    assert!(
        result.content.contains(needle) && result.content.contains("(reverted)"),
        "expected {needle:?} in:\n{}",
        result.content
    );
    assert_eq!(fx.state(), before, "the git state was not restored");
    let violations = fx.ctx.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].reverted);
    assert!(
        violations[0].changes.iter().any(|c| c.kind == kind),
        "{violations:?}"
    );
    assert!(
        violations[0].reason.contains(needle),
        "{}",
        violations[0].reason
    );
}

#[tokio::test]
async fn a_moved_branch_is_put_back() {
    let fx = Fixture::new();
    let before = fx.state();
    let result = fx
        .run_script("git update-ref refs/heads/main HEAD~1\n")
        .await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Branch,
        "the agent moved branch main",
    );
    let result = fx
        .run_script("git branch -D feature && git tag -d v1 && git tag v2\n")
        .await;
    assert_eq!(fx.state(), before);
    assert!(
        result.content.contains("deleted branch feature"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("deleted tag v1"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("created tag v2"),
        "{}",
        result.content
    );
}

#[tokio::test]
async fn a_dropped_stash_entry_comes_back() {
    let fx = Fixture::new();
    let before = fx.state();
    let result = fx.run_script("git stash drop stash@{1}\n").await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Stash,
        "the agent dropped 1 stash entry",
    );
    let result = fx.run_script("git stash clear\n").await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Stash,
        "dropped 2 stash entries",
    );
    assert!(git(&fx.repo, &["stash", "show", "-p", "stash@{1}"]).contains("+first stash"));
}

#[tokio::test]
async fn hooks_path_and_fsmonitor_in_the_config_are_undone() {
    let fx = Fixture::new();
    let before = fx.state();
    let result = fx
        .run_script(
            "git config core.hooksPath /tmp/evil-hooks\ngit config core.fsmonitor ./evil.sh\n",
        )
        .await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Config,
        "the agent changed .git/config",
    );
    assert!(
        result.content.contains("core.fsmonitor"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("core.hookspath"),
        "{}",
        result.content
    );
}

#[tokio::test]
async fn a_written_hook_is_removed_and_a_changed_one_restored() {
    let fx = Fixture::new();
    let hook = fx.repo.join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho original\n").unwrap();
    let before = fx.state();
    let result = fx
        .shell("printf '#!/bin/sh\\necho pwned\\n' > .git/hooks/pre-commit; printf x > .git/hooks/post-checkout; chmod +x .git/hooks/post-checkout")
        .await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Hook,
        "the agent changed the hook .git/hooks/pre-commit",
    );
    assert!(
        result
            .content
            .contains("added the hook .git/hooks/post-checkout")
    );
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho original\n"
    );
}

#[tokio::test]
async fn staging_and_moving_head_are_reverted() {
    let fx = Fixture::new();
    let before = fx.state();
    std::fs::write(fx.repo.join("b.txt"), "changed by the agent\n").unwrap();
    let result = fx.run_script("git add b.txt\n").await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Index,
        "the agent changed the index (staged or unstaged b.txt)",
    );
    // The work tree keeps the agent's edit: only git's state is restored.
    assert_eq!(
        std::fs::read_to_string(fx.repo.join("b.txt")).unwrap(),
        "changed by the agent\n"
    );
    let result = fx.run_script("git checkout -q --detach HEAD\n").await;
    assert_reverted(
        &fx,
        &result,
        &before,
        GitChangeKind::Head,
        "the agent moved HEAD from branch main to detached at",
    );
}

#[tokio::test]
async fn read_only_git_and_ordinary_work_are_not_violations() {
    let fx = Fixture::new();
    // A file whose stat data changed makes `git status` rewrite the index.
    std::fs::write(fx.repo.join("b.txt"), "one\n").unwrap();
    for command in [
        "git status",
        "git log --oneline",
        "git stash list",
        "echo x > new.txt",
        "git diff",
    ] {
        let result = fx.shell(command).await;
        assert_eq!(
            result.outcome,
            ToolOutcome::Ok,
            "{command}: {}",
            result.content
        );
    }
    assert!(fx.ctx.take_violations().is_empty());
}

#[test]
fn a_task_whose_agent_moves_a_branch_fails_and_reports_it() {
    let fx = RunFixture::new();
    let repo = fx.repo();
    let main_before = run_git(&repo, &["rev-parse", "main"]);
    let script = "git -c user.name=a -c user.email=a@example.com update-ref refs/heads/main \
                  \"$(git -c user.name=a -c user.email=a@example.com commit-tree 'HEAD^{tree}' -m evil)\"\n";
    // The sandbox keeps `.git/` read-only; the task grants it here so that
    // the guard, which holds with or without the sandbox, is what is tested.
    let task = fx.add_task(
        &TaskFile::new(
            "moves-main",
            &[
                plan(),
                call(
                    "write",
                    "write_file",
                    json!({"path": "move.sh", "content": script}),
                ),
                call("run", "shell", json!({"command": "bash move.sh"})),
            ],
        )
        .yaml("tools:\n  shell:\n    writable: [\".git\"]\n"),
    );
    let (code, report) = fx.run_tasks(&[&task]);
    assert_eq!(code, 1, "{report:#}");
    let task_report = &report["tasks"][0];
    assert_eq!(task_report["outcome"], "failed");
    let reason = task_report["reason"].as_str().unwrap();
    assert!(reason.contains("the agent moved branch main"), "{reason}");
    assert_eq!(
        task_report["policy_violations"][0]["command"],
        "bash move.sh"
    );
    assert_eq!(task_report["policy_violations"][0]["reverted"], true);
    assert_eq!(task_report["policy_violations"][0]["stage"], "code");
    assert_eq!(
        task_report["policy_violations"][0]["changes"][0]["kind"],
        "branch"
    );
    assert_eq!(run_git(&repo, &["rev-parse", "main"]), main_before);
    let events = std::fs::read_to_string(fx.out().join("events.jsonl")).unwrap();
    let violation: serde_json::Value = events
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|event| event["type"] == "policy.violation")
        .expect("a policy.violation event");
    assert_eq!(violation["stage"], "code");
    assert_eq!(violation["changes"][0]["name"], "refs/heads/main");
    let ends: Vec<String> = task_report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["stage"].as_str().unwrap(),
                s["end"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(ends, ["blueprint:finished", "code:policy_violation"]);
    // The report with a violation still validates against the schema.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The violations come from the event stream: a rebuild gives the same
    // report, byte for byte.
    let written = std::fs::read(fx.out().join("report.json")).unwrap();
    std::fs::remove_file(fx.out().join("report.json")).unwrap();
    let rebuilt = e2e_support::kkrun(fx.root(), &["report", "rebuild", "out"])
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    assert_eq!(
        std::fs::read(fx.out().join("report.json")).unwrap(),
        written
    );
}

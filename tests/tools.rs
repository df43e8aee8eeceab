//! The agent's tools against real temporary git repositories and real child
//! processes.

mod process_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kkrun::events::ToolOutcome;
use kkrun::provider::ToolCall;
use kkrun::task::{Check, ShellPolicy};
use kkrun::tools::{
    Access, Tool, ToolContext, ToolResult, ToolSet, ToolTable, ToolTableError, execute, run_checks,
};
use process_support::{read_pid, wait_until_gone};
use serde_json::{Value, json};

/// A git repository in a temporary directory, with an `outside` directory
/// next to it for escape attempts.
struct Fixture {
    _root: tempfile::TempDir,
    repo: PathBuf,
    outside: PathBuf,
    ctx: ToolContext,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_policy(ShellPolicy::default(), Vec::new())
    }

    fn with_policy(shell: ShellPolicy, checks: Vec<Check>) -> Fixture {
        // Commands go through the real launcher: the built kkrun binary.
        kkrun::sandbox::set_launcher(env!("CARGO_BIN_EXE_kkrun"));
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("repo");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        git2::Repository::init(&repo).unwrap();
        std::fs::write(outside.join("secret.txt"), "outside secret\n").unwrap();
        write(
            &repo,
            "src/lib.rs",
            "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
        );
        write(&repo, "README.md", "# demo\n\nA demo project.\n");
        let mut env = BTreeMap::new();
        env.insert("TASK_VAR".to_string(), "from-task".to_string());
        let ctx = ToolContext::from_parts(&repo, shell, env, checks);
        Fixture {
            _root: root,
            repo: ctx.workspace.clone(),
            outside: outside.canonicalize().unwrap(),
            ctx,
        }
    }

    async fn call(&self, set: ToolSet, tool: &str, arguments: Value) -> ToolResult {
        let call = ToolCall {
            id: "call_1".to_string(),
            name: tool.to_string(),
            arguments: arguments.to_string(),
        };
        execute(&self.ctx, set, &call).await
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.repo.join(path)).unwrap()
    }
}

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[track_caller]
fn assert_outcome(result: &ToolResult, outcome: ToolOutcome, needle: &str) {
    assert_eq!(result.outcome, outcome, "{}", result.content);
    assert!(
        result.content.contains(needle),
        "expected {needle:?} in:\n{}",
        result.content
    );
}

// ---- tool sets -------------------------------------------------------------

#[test]
fn tool_sets_offer_the_right_tools() {
    let names = |set| -> Vec<String> {
        ToolTable::builtin()
            .specs(set)
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(
        names(ToolSet::ReadOnly),
        ["read_file", "list_dir", "glob", "grep"]
    );
    assert_eq!(
        names(ToolSet::Code),
        [
            "read_file",
            "list_dir",
            "glob",
            "grep",
            "write_file",
            "edit_file",
            "apply_patch",
            "shell"
        ]
    );
    assert_eq!(
        names(ToolSet::Debug).last().map(String::as_str),
        Some("run_checks")
    );
    for spec in ToolTable::builtin().specs(ToolSet::Debug) {
        assert!(
            spec.description.len() > 80,
            "{} needs a real description",
            spec.name
        );
        assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
        assert_eq!(
            spec.parameters["additionalProperties"], false,
            "{}",
            spec.name
        );
    }
}

#[test]
fn tool_schemas_are_valid_json_schemas_that_match_the_handlers() {
    let table = ToolTable::builtin();
    for spec in table.specs(ToolSet::Debug) {
        let validator = jsonschema::validator_for(&spec.parameters)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        assert!(
            !validator.is_valid(&json!({"no_such_argument": 1})),
            "{} accepts unknown arguments",
            spec.name
        );
    }
    let read_file = table.get("read_file").unwrap().spec().parameters;
    assert_eq!(read_file["required"], json!(["path"]));
    assert_eq!(read_file["properties"]["start_line"]["type"], "integer");
    assert_eq!(read_file["properties"]["start_line"]["minimum"], 1);
    let grep = table.get("grep").unwrap().spec().parameters;
    assert_eq!(grep["properties"]["max_matches"]["maximum"], 1000);
    let text = serde_json::to_string(&table.specs(ToolSet::Debug)).unwrap();
    for noise in [
        "\"null\"",
        "$schema",
        "\"title\"",
        "\"format\"",
        "\"default\"",
    ] {
        assert!(!text.contains(noise), "{noise} in {text}");
    }
}

#[test]
fn every_tool_that_writes_is_kept_from_read_only_stages() {
    let table = ToolTable::builtin();
    for name in [
        "write_file",
        "edit_file",
        "apply_patch",
        "shell",
        "run_checks",
    ] {
        assert_eq!(table.get(name).unwrap().access(), Access::Writes, "{name}");
        assert!(!table.offers(ToolSet::ReadOnly, name), "{name}");
    }
    for tool in table.offered(ToolSet::ReadOnly) {
        assert_eq!(tool.access(), Access::ReadOnly, "{}", tool.name());
    }
}

/// A tool added at run time with its own JSON schema, the way a tool an
/// MCP server lists joins the table: it echoes its arguments.
fn echo_tool(name: &str, access: Access) -> Tool {
    Tool::with_schema(
        name,
        "Echo the arguments back, to show a tool added at run time is dispatched.",
        access,
        json!({"type": "object", "properties": {"word": {"type": "string"}}}),
        |ctx, arguments| {
            let root = ctx.workspace.display().to_string();
            Box::pin(async move { Ok(format!("{arguments} in {root}")) })
        },
    )
}

#[tokio::test]
async fn tools_added_at_run_time_join_the_sets_their_access_allows() {
    let mut fx = Fixture::new();
    let mut table = (*ToolTable::builtin()).clone();
    table
        .add(echo_tool("docs__lookup", Access::ReadOnly))
        .unwrap();
    table
        .add(echo_tool("docs__publish", Access::Writes))
        .unwrap();
    assert_eq!(
        table.add(echo_tool("read_file", Access::ReadOnly)),
        Err(ToolTableError::Duplicate("read_file".into()))
    );
    assert_eq!(
        table.add(echo_tool("has space", Access::ReadOnly)),
        Err(ToolTableError::InvalidName("has space".into()))
    );
    fx.ctx.tools = std::sync::Arc::new(table);

    let read_only: Vec<String> = fx
        .ctx
        .tools
        .specs(ToolSet::ReadOnly)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        read_only,
        ["read_file", "list_dir", "glob", "grep", "docs__lookup"]
    );
    let debug = fx.ctx.tools.specs(ToolSet::Debug);
    assert_eq!(debug.last().unwrap().name, "docs__publish");
    assert_eq!(
        debug.last().unwrap().parameters["properties"]["word"]["type"],
        "string"
    );

    let result = fx
        .call(ToolSet::ReadOnly, "docs__lookup", json!({"word": "week"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, r#"{"word":"week"} in "#);
    let result = fx
        .call(ToolSet::ReadOnly, "docs__publish", json!({"word": "week"}))
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Refused,
        "not available in a read-only stage",
    );
    assert!(
        result.content.contains("docs__lookup"),
        "{}",
        result.content
    );
}

#[tokio::test]
async fn read_only_set_refuses_write_tools() {
    let fx = Fixture::new();
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "write_file",
            json!({"path": "x.txt", "content": "x"}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Refused,
        "not available in a read-only stage",
    );
    assert!(!fx.repo.join("x.txt").exists());
    let result = fx.call(ToolSet::Code, "run_checks", json!({})).await;
    assert_outcome(
        &result,
        ToolOutcome::Refused,
        "not available in the code stage",
    );
    let result = fx.call(ToolSet::Debug, "launch_rockets", json!({})).await;
    assert_outcome(
        &result,
        ToolOutcome::Refused,
        "there is no tool named `launch_rockets`",
    );
}

#[tokio::test]
async fn invalid_arguments_are_explained() {
    let fx = Fixture::new();
    let call = ToolCall {
        id: "c".into(),
        name: "read_file".into(),
        arguments: "{\"path\": ".into(),
    };
    let result = execute(&fx.ctx, ToolSet::ReadOnly, &call).await;
    assert_outcome(&result, ToolOutcome::Error, "not valid JSON");
    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"file": "README.md"}))
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "invalid arguments for `read_file`",
    );
}

// ---- read_file -------------------------------------------------------------

#[tokio::test]
async fn read_file_numbers_lines_and_reports_the_total() {
    let fx = Fixture::new();
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": "src/lib.rs"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "src/lib.rs: lines 1-3 of 3\n");
    assert!(
        result.content.contains("     2\t    a + b\n"),
        "{}",
        result.content
    );

    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": "./src/../src/lib.rs", "start_line": 2, "end_line": 2}),
        )
        .await;
    assert_eq!(
        result.content,
        "src/lib.rs: lines 2-2 of 3\n     2\t    a + b\n"
    );

    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": "src/lib.rs", "start_line": 9}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "past the end of `src/lib.rs`, which has 3 lines",
    );
}

#[tokio::test]
async fn read_file_pages_large_files() {
    let fx = Fixture::new();
    let big: String = (1..=5000).map(|n| format!("line {n}\n")).collect();
    write(&fx.repo, "big.txt", &big);
    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"path": "big.txt"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "big.txt: lines 1-2000 of 5000");
    assert!(
        result.content.contains("start_line=2001"),
        "{}",
        &result.content[..200]
    );
    assert!(!result.content.contains("line 2001\n"));
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": "big.txt", "start_line": 4990}),
        )
        .await;
    assert!(
        result
            .content
            .starts_with("big.txt: lines 4990-5000 of 5000\n"),
        "{}",
        result.content
    );
}

#[tokio::test]
async fn read_file_refuses_binary_files() {
    let fx = Fixture::new();
    std::fs::write(
        fx.repo.join("logo.png"),
        [0x89, b'P', b'N', b'G', 0, 0, 1, 2],
    )
    .unwrap();
    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"path": "logo.png"}))
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "`logo.png` is a binary file (8 bytes)",
    );
    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"path": "src"}))
        .await;
    assert_outcome(&result, ToolOutcome::Error, "is a directory; use list_dir");
    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"path": "nope.rs"}))
        .await;
    assert_outcome(&result, ToolOutcome::Error, "`nope.rs` does not exist");
}

// ---- confinement -----------------------------------------------------------

#[tokio::test]
async fn paths_cannot_escape_the_workspace() {
    let fx = Fixture::new();
    let outside_file = fx.outside.join("secret.txt");
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": "../outside/secret.txt"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "leaves the workspace");

    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": outside_file.to_str().unwrap()}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "is outside the workspace");

    // An absolute path inside the workspace is fine.
    let inside = fx.repo.join("README.md");
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "read_file",
            json!({"path": inside.to_str().unwrap()}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "README.md: lines 1-3 of 3");

    let result = fx
        .call(
            ToolSet::Code,
            "write_file",
            json!({"path": "src/../../outside/new.txt", "content": "x"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "leaves the workspace");
    assert!(!fx.outside.join("new.txt").exists());
}

#[tokio::test]
async fn symlinks_cannot_lead_outside() {
    let fx = Fixture::new();
    std::os::unix::fs::symlink(fx.outside.join("secret.txt"), fx.repo.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&fx.outside, fx.repo.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(fx.outside.join("missing.txt"), fx.repo.join("dangling")).unwrap();
    std::os::unix::fs::symlink(fx.repo.join("README.md"), fx.repo.join("inner.md")).unwrap();

    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"path": "link.txt"}))
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "resolves through a symlink");
    let result = fx
        .call(ToolSet::ReadOnly, "list_dir", json!({"path": "linkdir"}))
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "outside the workspace");
    let result = fx
        .call(
            ToolSet::Code,
            "write_file",
            json!({"path": "linkdir/planted.txt", "content": "x"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "resolves through a symlink");
    assert!(!fx.outside.join("planted.txt").exists());
    let result = fx
        .call(
            ToolSet::Code,
            "write_file",
            json!({"path": "dangling", "content": "x"}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Refused,
        "symlink whose target does not exist",
    );
    assert!(!fx.outside.join("missing.txt").exists());
    let result = fx
        .call(ToolSet::ReadOnly, "grep", json!({"pattern": "secret"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "no matches");

    // A symlink that stays inside is followed.
    let result = fx
        .call(ToolSet::ReadOnly, "read_file", json!({"path": "inner.md"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "README.md: lines 1-3 of 3");
}

#[tokio::test]
async fn git_directory_is_off_limits() {
    let fx = Fixture::new();
    for (tool, args) in [
        ("read_file", json!({"path": ".git/config"})),
        ("list_dir", json!({"path": ".git"})),
        ("list_dir", json!({"path": "src/../.git/refs"})),
        (
            "write_file",
            json!({"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\n"}),
        ),
        (
            "edit_file",
            json!({"path": ".git/HEAD", "old": "ref", "new": "x"}),
        ),
        ("grep", json!({"pattern": "x", "path": ".git"})),
    ] {
        let result = fx.call(ToolSet::Code, tool, args).await;
        assert_outcome(&result, ToolOutcome::Refused, "inside `.git/`");
    }
    assert!(!fx.repo.join(".git/hooks/pre-commit").exists());
    let patch = "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+evil\n";
    let result = fx
        .call(ToolSet::Code, "apply_patch", json!({"patch": patch}))
        .await;
    assert_outcome(&result, ToolOutcome::Refused, "inside `.git/`");
}

#[tokio::test]
async fn run_records_are_off_limits() {
    let fx = Fixture::new();
    write(&fx.repo, ".kkrun/runs/r1/transcript.jsonl", "{}\n");
    for (tool, args) in [
        (
            "read_file",
            json!({"path": ".kkrun/runs/r1/transcript.jsonl"}),
        ),
        ("list_dir", json!({"path": ".kkrun/runs"})),
        (
            "write_file",
            json!({"path": "src/../.kkrun/runs/r1/transcript.jsonl", "content": "forged"}),
        ),
        (
            "edit_file",
            json!({"path": ".kkrun/runs/r1/transcript.jsonl", "old": "{}", "new": "x"}),
        ),
        ("grep", json!({"pattern": "x", "path": ".kkrun"})),
    ] {
        let result = fx.call(ToolSet::Code, tool, args).await;
        assert_outcome(&result, ToolOutcome::Refused, "inside `.kkrun/`");
    }
    assert_eq!(fx.read(".kkrun/runs/r1/transcript.jsonl"), "{}\n");
    let listed = fx.call(ToolSet::ReadOnly, "list_dir", json!({})).await;
    assert!(!listed.content.contains(".kkrun"), "{}", listed.content);
    let found = fx
        .call(ToolSet::ReadOnly, "glob", json!({"pattern": "*.jsonl"}))
        .await;
    assert!(!found.content.contains("transcript"), "{}", found.content);
}

#[tokio::test]
async fn file_tools_replace_hard_links_instead_of_writing_through() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let victim = fx.outside.join("victim.txt");
    std::fs::write(&victim, "line one\nline two\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o640)).unwrap();
    let patch =
        "--- a/patched.txt\n+++ b/patched.txt\n@@ -1,2 +1,2 @@\n line one\n-line two\n+patched\n";
    for (name, tool, args) in [
        (
            "written.txt",
            "write_file",
            json!({"path": "written.txt", "content": "new\n"}),
        ),
        (
            "edited.txt",
            "edit_file",
            json!({"path": "edited.txt", "old": "line two", "new": "edited"}),
        ),
        ("patched.txt", "apply_patch", json!({"patch": patch})),
    ] {
        std::fs::hard_link(&victim, fx.repo.join(name)).unwrap();
        let result = fx.call(ToolSet::Code, tool, args).await;
        assert_eq!(
            result.outcome,
            ToolOutcome::Ok,
            "{tool}: {}",
            result.content
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "line one\nline two\n",
            "{tool} wrote through the hard link"
        );
        let mode = std::fs::metadata(fx.repo.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "{tool} changed the file's permissions");
    }
    assert_eq!(fx.read("written.txt"), "new\n");
    assert_eq!(fx.read("edited.txt"), "line one\nedited\n");
    assert_eq!(fx.read("patched.txt"), "line one\npatched\n");
}

// ---- list_dir, glob, grep --------------------------------------------------

#[tokio::test]
async fn list_dir_lists_entries_without_git() {
    let fx = Fixture::new();
    let result = fx.call(ToolSet::ReadOnly, "list_dir", json!({})).await;
    assert_eq!(result.content, "./: 2 entries\nREADME.md  (24 B)\nsrc/\n");
    let result = fx
        .call(ToolSet::ReadOnly, "list_dir", json!({"path": "README.md"}))
        .await;
    assert_outcome(&result, ToolOutcome::Error, "is a file, not a directory");
}

#[tokio::test]
async fn glob_respects_gitignore() {
    let fx = Fixture::new();
    write(&fx.repo, ".gitignore", "target/\n*.log\n");
    write(&fx.repo, "target/debug/build.rs", "fn x() {}\n");
    write(&fx.repo, "src/nested/deep.rs", "fn deep() {}\n");
    write(&fx.repo, "debug.log", "noise\n");
    let result = fx
        .call(ToolSet::ReadOnly, "glob", json!({"pattern": "*.rs"}))
        .await;
    assert_eq!(
        result.content,
        "2 file(s) match `*.rs`\nsrc/lib.rs\nsrc/nested/deep.rs\n"
    );
    let result = fx
        .call(ToolSet::ReadOnly, "glob", json!({"pattern": "src/*.rs"}))
        .await;
    assert_eq!(result.content, "1 file(s) match `src/*.rs`\nsrc/lib.rs\n");
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "glob",
            json!({"pattern": "**/*.rs", "path": "src/nested"}),
        )
        .await;
    assert_eq!(
        result.content,
        "1 file(s) match `**/*.rs`\nsrc/nested/deep.rs\n"
    );
    let result = fx
        .call(ToolSet::ReadOnly, "glob", json!({"pattern": "*.log"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "no files match");
    let result = fx
        .call(ToolSet::ReadOnly, "glob", json!({"pattern": "src/[.rs"}))
        .await;
    assert_outcome(&result, ToolOutcome::Error, "invalid glob");
}

#[tokio::test]
async fn grep_searches_with_filters_and_limits() {
    let fx = Fixture::new();
    write(&fx.repo, ".gitignore", "vendor/\n");
    write(&fx.repo, "vendor/lib.rs", "pub fn add() {}\n");
    write(&fx.repo, "src/more.rs", "fn Add() {}\nfn add_twice() {}\n");
    write(&fx.repo, "notes.txt", "add milk\n");
    std::fs::write(fx.repo.join("blob.bin"), b"add\0\0binary").unwrap();

    let result = fx
        .call(ToolSet::ReadOnly, "grep", json!({"pattern": r"fn add\w*"}))
        .await;
    assert_eq!(
        result.content,
        "2 matching line(s) in 2 file(s)\nsrc/lib.rs:1: pub fn add(a: i32, b: i32) -> i32 {\nsrc/more.rs:2: fn add_twice() {}\n"
    );
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "grep",
            json!({"pattern": "fn add", "case_insensitive": true, "path": "src/more.rs"}),
        )
        .await;
    assert_eq!(
        result.content,
        "2 matching line(s) in 1 file(s)\nsrc/more.rs:1: fn Add() {}\nsrc/more.rs:2: fn add_twice() {}\n"
    );
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "grep",
            json!({"pattern": "add", "glob": "*.txt"}),
        )
        .await;
    assert_eq!(
        result.content,
        "1 matching line(s) in 1 file(s)\nnotes.txt:1: add milk\n"
    );
    let result = fx
        .call(
            ToolSet::ReadOnly,
            "grep",
            json!({"pattern": "add", "max_matches": 1}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "[stopped after 1 matches");
    let result = fx
        .call(ToolSet::ReadOnly, "grep", json!({"pattern": "fn ("}))
        .await;
    assert_outcome(&result, ToolOutcome::Error, "invalid regular expression");
}

// ---- write_file, edit_file, apply_patch -------------------------------------

#[tokio::test]
async fn write_file_creates_and_overwrites() {
    let fx = Fixture::new();
    let result = fx
        .call(
            ToolSet::Code,
            "write_file",
            json!({"path": "docs/new/guide.md", "content": "a\nb\n"}),
        )
        .await;
    assert_eq!(
        result.content,
        "created `docs/new/guide.md` (4 bytes, 2 lines)"
    );
    let result = fx
        .call(
            ToolSet::Code,
            "write_file",
            json!({"path": "docs/new/guide.md", "content": "c\n"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "overwrote `docs/new/guide.md`");
    assert_eq!(fx.read("docs/new/guide.md"), "c\n");
}

#[tokio::test]
async fn edit_file_requires_exactly_one_match() {
    let fx = Fixture::new();
    write(
        &fx.repo,
        "src/calc.rs",
        "fn one() -> i32 {\n    1\n}\n\nfn two() -> i32 {\n    1 + 1\n}\n",
    );

    let result = fx
        .call(
            ToolSet::Code,
            "edit_file",
            json!({"path": "src/calc.rs", "old": "    1 + 1", "new": "    2"}),
        )
        .await;
    assert_eq!(
        result.content,
        "edited `src/calc.rs`: replaced 1 occurrence at line 6"
    );
    assert!(
        fx.read("src/calc.rs")
            .contains("fn two() -> i32 {\n    2\n}")
    );

    let result = fx
        .call(
            ToolSet::Code,
            "edit_file",
            json!({"path": "src/calc.rs", "old": "-> i32 {", "new": "-> i64 {"}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "occurs 2 times in `src/calc.rs` (at lines 1, 5)",
    );
    let result = fx
        .call(ToolSet::Code, "edit_file", json!({"path": "src/calc.rs", "old": "-> i32 {", "new": "-> i64 {", "replace_all": true}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "replaced 2 occurrences");
    assert_eq!(fx.read("src/calc.rs").matches("i64").count(), 2);

    let before = fx.read("src/calc.rs");
    let result = fx
        .call(
            ToolSet::Code,
            "edit_file",
            json!({"path": "src/calc.rs", "old": "fn one() -> i64 { // first", "new": "x"}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "`old` was not found in `src/calc.rs`",
    );
    assert!(
        result.content.contains("The closest lines are"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("     1\tfn one() -> i64 {"),
        "{}",
        result.content
    );
    assert_eq!(fx.read("src/calc.rs"), before);

    let result = fx
        .call(
            ToolSet::Code,
            "edit_file",
            json!({"path": "src/calc.rs", "old": "fn one() -> i64 {\n1\n}", "new": "x"}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "different whitespace or indentation starts at line 1",
    );
}

#[tokio::test]
async fn apply_patch_applies_every_file() {
    let fx = Fixture::new();
    write(&fx.repo, "old.txt", "remove me\n");
    let patch = "\
diff --git a/src/lib.rs b/src/lib.rs
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,7 @@
 pub fn add(a: i32, b: i32) -> i32 {
     a + b
 }
+
+pub fn sub(a: i32, b: i32) -> i32 {
+    a - b
+}
--- /dev/null
+++ b/src/new.rs
@@ -0,0 +1,2 @@
+// new module
+pub const X: u8 = 1;
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-remove me
";
    let result = fx
        .call(ToolSet::Code, "apply_patch", json!({"patch": patch}))
        .await;
    assert_eq!(
        result.content,
        "applied the patch: modified `src/lib.rs` (1 hunk), created `src/new.rs`, deleted `old.txt`"
    );
    assert!(
        fx.read("src/lib.rs")
            .ends_with("pub fn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n")
    );
    assert_eq!(
        fx.read("src/new.rs"),
        "// new module\npub const X: u8 = 1;\n"
    );
    assert!(!fx.repo.join("old.txt").exists());
}

#[tokio::test]
async fn apply_patch_with_a_failing_hunk_changes_nothing() {
    let fx = Fixture::new();
    let lib_before = fx.read("src/lib.rs");
    let readme_before = fx.read("README.md");
    let patch = "\
--- a/README.md
+++ b/README.md
@@ -1,3 +1,3 @@
 # demo
 
-A demo project.
+A better demo project.
--- a/src/lib.rs
+++ b/src/lib.rs
@@ -1,3 +1,3 @@
 pub fn add(a: i32, b: i32) -> i32 {
-    a * b
+    a + b + 0
 }
--- /dev/null
+++ b/src/created.rs
@@ -0,0 +1 @@
+pub fn created() {}
";
    let result = fx
        .call(ToolSet::Code, "apply_patch", json!({"patch": patch}))
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "the patch was not applied; no file was changed",
    );
    assert!(
        result
            .content
            .contains("hunk 1 of `src/lib.rs` (@@ -1,3 +1,3 @@) does not apply"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("`a * b` does not occur"),
        "{}",
        result.content
    );
    assert_eq!(fx.read("README.md"), readme_before);
    assert_eq!(fx.read("src/lib.rs"), lib_before);
    assert!(!fx.repo.join("src/created.rs").exists());

    let result = fx
        .call(
            ToolSet::Code,
            "apply_patch",
            json!({"patch": "*** Begin Patch\nnonsense\n"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Error, "no file header found");
}

#[tokio::test]
async fn apply_patch_finds_moved_hunks() {
    let fx = Fixture::new();
    let patch = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -10,3 +10,3 @@\n pub fn add(a: i32, b: i32) -> i32 {\n-    a + b\n+    b + a\n }\n";
    let result = fx
        .call(ToolSet::Code, "apply_patch", json!({"patch": patch}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "modified `src/lib.rs` (1 hunk)");
    assert_eq!(
        fx.read("src/lib.rs"),
        "pub fn add(a: i32, b: i32) -> i32 {\n    b + a\n}\n"
    );
}

// ---- shell -----------------------------------------------------------------

#[tokio::test]
async fn shell_runs_in_the_workspace_with_a_clean_environment() {
    let fx = Fixture::new();
    let result = fx
        .call(ToolSet::Code, "shell", json!({"command": "pwd; echo \"task=$TASK_VAR term=$TERM\"; env; echo oops >&2; exit 3"}))
        .await;
    assert_outcome(&result, ToolOutcome::Error, "exit code 3");
    assert!(
        result.content.contains(&format!("{}\n", fx.repo.display())),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("task=from-task term=dumb"),
        "{}",
        result.content
    );
    assert!(result.content.contains("oops"), "{}", result.content);
    // cargo sets this for test binaries; it is not in the inherited set.
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        assert!(
            !result.content.contains("CARGO_MANIFEST_DIR"),
            "{}",
            result.content
        );
    }

    let result = fx
        .call(ToolSet::Code, "shell", json!({"command": "true"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "exit code 0");
    assert!(
        result.content.ends_with("(no output)"),
        "{}",
        result.content
    );
}

#[tokio::test]
async fn shell_output_is_capped_with_head_and_tail() {
    let fx = Fixture::new();
    let result = fx
        .call(ToolSet::Code, "shell", json!({"command": "echo FIRST; head -c 200000 /dev/zero | tr '\\0' x; echo; echo LAST"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "exit code 0");
    assert!(
        result.content.contains("\nFIRST\n"),
        "{}",
        &result.content[..100]
    );
    assert!(result.content.ends_with("LAST\n"));
    assert!(result.content.contains("bytes omitted …]"));
    assert!(result.content.len() < 40 * 1024, "{}", result.content.len());
    let omitted: u64 = result
        .content
        .split("[… ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // FIRST\n + 200000 x + \n + LAST\n, less what was kept.
    assert_eq!(omitted, 6 + 200_000 + 1 + 5 - 8 * 1024 - 24 * 1024);
}

#[tokio::test]
async fn shell_timeout_kills_the_whole_group() {
    let fx = Fixture::new();
    let script = "trap '' TERM; sleep 300 & echo $! > child.pid; (trap '' TERM; sleep 300) & echo $! > sub.pid; echo started; wait";
    let started = Instant::now();
    let result = fx
        .call(
            ToolSet::Code,
            "shell",
            json!({"command": script, "timeout_secs": 1}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Error,
        "timed out; the command's process group was killed",
    );
    assert!(result.content.contains("started"), "{}", result.content);
    assert!(started.elapsed() < Duration::from_secs(10));
    for file in ["child.pid", "sub.pid"] {
        let pid = read_pid(&fx.repo.join(file));
        assert!(
            wait_until_gone(pid),
            "{file}: process {pid} survived the timeout"
        );
    }
}

#[tokio::test]
async fn shell_background_children_end_with_the_command() {
    let fx = Fixture::new();
    let result = fx
        .call(
            ToolSet::Code,
            "shell",
            json!({"command": "sleep 300 > /dev/null 2>&1 & echo $! > bg.pid; echo done"}),
        )
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "done");
    let pid = read_pid(&fx.repo.join("bg.pid"));
    assert!(wait_until_gone(pid), "background process {pid} survived");
}

#[tokio::test]
async fn dropping_a_running_shell_call_kills_its_group() {
    let fx = Fixture::new();
    let call = ToolCall {
        id: "c".into(),
        name: "shell".into(),
        arguments: json!({"command": "sleep 300 & echo $! > drop.pid; wait"}).to_string(),
    };
    let pid_file = fx.repo.join("drop.pid");
    let running = execute(&fx.ctx, ToolSet::Code, &call);
    let waited = tokio::time::timeout(Duration::from_millis(2500), running).await;
    assert!(
        waited.is_err(),
        "the command should still have been running"
    );
    let pid = read_pid(&pid_file);
    assert!(
        wait_until_gone(pid),
        "process {pid} outlived the dropped call"
    );
}

#[tokio::test]
async fn shell_policy_refuses_with_the_matching_rule() {
    let policy = ShellPolicy {
        allow: vec!["echo *".into(), "git *".into()],
        deny: vec!["git gc*".into()],
        timeout: Duration::from_secs(30),
        ..ShellPolicy::default()
    };
    let fx = Fixture::with_policy(policy, Vec::new());
    for (command, rule) in [
        ("git push origin main", "the built-in rule `git push`"),
        (
            "echo hi && git commit -am x",
            "the built-in rule `git commit`",
        ),
        ("git gc --prune=now", "the task's deny rule `git gc*`"),
        ("git reset --hard", "the built-in rule `git reset`"),
    ] {
        let result = fx
            .call(ToolSet::Code, "shell", json!({"command": command}))
            .await;
        assert_outcome(&result, ToolOutcome::Refused, rule);
    }
    let result = fx
        .call(
            ToolSet::Code,
            "shell",
            json!({"command": "touch created.txt"}),
        )
        .await;
    assert_outcome(
        &result,
        ToolOutcome::Refused,
        "matches no allow rule; allowed commands: `echo *`, `git *`",
    );
    assert!(!fx.repo.join("created.txt").exists());
    let result = fx
        .call(ToolSet::Code, "shell", json!({"command": "echo allowed"}))
        .await;
    assert_outcome(&result, ToolOutcome::Ok, "allowed");
}

// ---- checks ----------------------------------------------------------------

fn check(name: &str, run: &str, retries: u32, timeout_ms: u64) -> Check {
    Check {
        name: name.to_string(),
        run: run.to_string(),
        timeout: Duration::from_millis(timeout_ms),
        retries,
        line: 0,
        network: true,
    }
}

#[tokio::test]
async fn checks_report_pass_fail_flaky_and_timeout() {
    let fx = Fixture::new();
    let checks = vec![
        check("passes", "echo all good", 0, 10_000),
        check(
            "fails",
            "echo 'assertion failed: left == right'; exit 101",
            1,
            10_000,
        ),
        // Fails on the first attempt, passes on the second.
        check(
            "flaky",
            "if [ -e .tried ]; then echo ok; else touch .tried; echo boom; exit 1; fi",
            2,
            10_000,
        ),
        check("hangs", "trap '' TERM; echo waiting; sleep 300", 0, 500),
    ];
    let results = run_checks(&checks, &fx.repo, &BTreeMap::new(), &fx.ctx.sandbox).await;
    let by_name = |name: &str| &results.iter().find(|r| r.name == name).unwrap().run;

    let passes = by_name("passes");
    assert!(passes.passed && !passes.flaky);
    assert_eq!((passes.exit_code, passes.attempts), (Some(0), 1));
    assert_eq!(passes.output_tail, "all good\n");

    let fails = by_name("fails");
    assert!(!fails.passed && !fails.flaky);
    assert_eq!((fails.exit_code, fails.attempts), (Some(101), 2));
    assert_eq!(fails.failed_attempts.len(), 1);
    assert!(fails.output_tail.contains("assertion failed"));

    let flaky = by_name("flaky");
    assert!(flaky.passed && flaky.flaky);
    assert_eq!(flaky.attempts, 2);
    assert_eq!(flaky.failed_attempts, ["boom\n"]);

    let hangs = by_name("hangs");
    assert!(!hangs.passed && hangs.timed_out);
    assert!(
        hangs.output_tail.contains("waiting"),
        "{}",
        hangs.output_tail
    );
    assert!(hangs.duration_ms < 10_000);
}

#[tokio::test]
async fn run_checks_tool_summarises_for_the_model() {
    let checks = vec![
        check(
            "unit",
            "echo 'test result: FAILED. 1 passed; 1 failed'; exit 101",
            0,
            10_000,
        ),
        check("lint", "true", 0, 10_000),
    ];
    let fx = Fixture::with_policy(ShellPolicy::default(), checks);
    let result = fx.call(ToolSet::Debug, "run_checks", json!({})).await;
    assert_outcome(&result, ToolOutcome::Ok, "2 check(s): 1 passed, 1 failed");
    assert!(
        result.content.contains("## unit — FAILED: exit code 101"),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("test result: FAILED."),
        "{}",
        result.content
    );
    assert!(
        result.content.contains("## lint — passed"),
        "{}",
        result.content
    );

    let fx = Fixture::new();
    let result = fx.call(ToolSet::Debug, "run_checks", json!({})).await;
    assert_outcome(&result, ToolOutcome::Ok, "defines no checks");
}

#[tokio::test]
async fn check_output_tail_keeps_the_end() {
    let fx = Fixture::new();
    let checks = vec![check(
        "noisy",
        "seq 1 20000; echo the-end; exit 1",
        0,
        10_000,
    )];
    let results = run_checks(&checks, &fx.repo, &BTreeMap::new(), &fx.ctx.sandbox).await;
    let tail = &results[0].run.output_tail;
    assert!(tail.starts_with("[… "), "{}", &tail[..50]);
    assert!(tail.ends_with("20000\nthe-end\n"));
    assert!(tail.len() < 4200);
}

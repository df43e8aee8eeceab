//! Project instructions: `AGENTS.md` files from the workspace up to the
//! work-tree root, and a task's `instructions:`, reach every stage's system
//! prompt (outermost first) and the report; `--no-project-instructions`
//! leaves the `AGENTS.md` files out. Runs against the loopback server so the
//! requests can be read.

mod e2e_support;
mod support;

use e2e_support::{Fixture, Run, TaskFile, finish, fix_add, plan, review};
use kkrun::provider::script::{ScriptedTurn, encode_openai_sse};
use serde_json::Value;

fn turns() -> Vec<ScriptedTurn> {
    vec![plan(), fix_add(), finish("code"), review("approve")]
}

/// Runs a task working in `repo/pkg` (with `AGENTS.md` at the root and in
/// `pkg/`, and `instructions: [style.md]`); returns the system prompts the
/// server received and the report.
async fn run_with(extra_args: &[&str]) -> (Vec<String>, Value) {
    let replies = turns()
        .iter()
        .map(|t| support::Reply::sse(encode_openai_sse(t)))
        .collect();
    let server = support::TestServer::start(replies).await;
    let fx = Fixture::new();
    let repo = fx.repo();
    std::fs::create_dir_all(repo.join("pkg")).unwrap();
    std::fs::write(repo.join("AGENTS.md"), "Root rule: run the tests.\n").unwrap();
    std::fs::write(repo.join("pkg/AGENTS.md"), "Package rule: keep it small.\n").unwrap();
    std::fs::write(fx.root().join("tasks/style.md"), "Style: four spaces.\n").unwrap();
    // The workspace is `pkg/`, a copy of the project one level down.
    for file in ["calc.py", "test_add.py", "test_mul.py"] {
        std::fs::copy(repo.join(file), repo.join("pkg").join(file)).unwrap();
    }
    e2e_support::commit_all(&repo, "pkg");
    let task = TaskFile::new("instructed", &turns())
        .model("openai:local-model")
        .yaml("instructions: [style.md]\n");
    task.write(&fx.root().join("tasks"), "../repo/pkg");
    let mut args = vec!["run", "--no-preflight", "--out", "out"];
    args.extend_from_slice(extra_args);
    args.push("tasks/instructed.yaml");
    let mut command = fx.kkrun(&args);
    command.env("OPENAI_BASE_URL", format!("{}/v1", server.url()));
    let out = fx.out();
    let run = tokio::task::spawn_blocking(move || Run::capture(command, &out))
        .await
        .unwrap();
    run.expect_code(0);
    let systems = server
        .requests()
        .iter()
        .map(|r| {
            r.json()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    (systems, run.report())
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_md_files_reach_every_stage_nearest_last_and_the_report() {
    let (systems, report) = run_with(&[]).await;
    assert_eq!(systems.len(), 4);
    for system in &systems {
        let root = system.find("Root rule: run the tests.").expect(system);
        let package = system.find("Package rule: keep it small.").expect(system);
        let style = system.find("Style: four spaces.").expect(system);
        assert!(root < package && package < style, "{system}");
        assert!(system.contains("# Project instructions"), "{system}");
        assert!(system.contains("## pkg/AGENTS.md"), "{system}");
    }
    let files = report["tasks"][0]["instructions"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["source"].as_str().unwrap()))
        .collect();
    assert_eq!(listed[0], ("AGENTS.md", "agents-md"));
    assert_eq!(listed[1], ("pkg/AGENTS.md", "agents-md"));
    assert_eq!(listed[2].1, "task");
    assert!(listed[2].0.ends_with("style.md"));
    assert!(files.iter().all(|f| f["truncated"] == false));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_project_instructions_leaves_agents_md_out() {
    let (systems, report) = run_with(&["--no-project-instructions"]).await;
    for system in &systems {
        assert!(!system.contains("Root rule"), "{system}");
        assert!(!system.contains("Package rule"), "{system}");
        assert!(system.contains("Style: four spaces."), "{system}");
    }
    let files = report["tasks"][0]["instructions"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["source"], "task");
}

#[test]
fn a_missing_instruction_file_is_an_error_at_its_position() {
    let fx = Fixture::new();
    let task = fx.task("missing", "instructions: [nowhere.md]\n", &turns());
    let output = fx.kkrun(&["validate", &task]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nowhere.md"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("missing.yaml:"), "{stderr}");
}

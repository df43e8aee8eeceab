//! Shared scaffolding for the end-to-end tests that run the real `kkrun`
//! binary: a temporary directory holding `repo/` (a git repository with a
//! small Python project whose `add` is broken and whose `mul` works) and
//! `tasks/`, task files with scripted replay cassettes, the command that runs
//! kkrun as on a CI machine outside GitHub, and the model's scripted turns.
//!
//! Use it from an integration test with `mod e2e_support;`:
//!
//! ```ignore
//! let fx = Fixture::new();
//! let task = fx.task("fix-add", "", &[plan(), fix_add(), finish("code"), review("approve")]);
//! let run = fx.run("out", &[&task]);
//! run.expect_code(0);
//! ```
//!
//! Each test binary uses a different subset, hence `dead_code` is allowed.
#![allow(dead_code)]

pub mod redact;
pub mod task_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use kkrun::provider::script::{ScriptedToolCall, ScriptedTurn};
use kkrun::provider::{Cassette, Usage, WireFormat};
use serde_json::{Value, json};

/// `calc.py` at the fixture's base commit: `add` subtracts, `mul` works.
pub const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n";

/// The model the scripted cassettes name unless a task sets another; it is
/// in the built-in price table, so reports carry a cost.
pub const CASSETTE_MODEL: &str = "gpt-4.1";

/// A check script whose output is the same on every Python version: no
/// traceback (which would carry temporary paths), one line such as
/// `add(2, 3) == -1`, and the exit code says pass or fail.
pub fn check_script(function: &str, a: i32, b: i32, expected: i32) -> String {
    format!(
        "import sys\nfrom calc import {function}\nresult = {function}({a}, {b})\n\
         print(f\"{function}({a}, {b}) == {{result}}\")\nsys.exit(0 if result == {expected} else 1)\n"
    )
}

/// A temporary directory with `repo/` (a git repository holding [`CALC`],
/// `test_add.py` and `test_mul.py` at one commit on `main`) and an empty
/// `tasks/`. kkrun runs with the temporary directory as its current
/// directory, so task files are named as a user would type them.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Builds the layout and commits the base.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("calc.py"), CALC).unwrap();
        std::fs::write(repo.join("test_add.py"), check_script("add", 2, 3, 5)).unwrap();
        std::fs::write(repo.join("test_mul.py"), check_script("mul", 2, 3, 6)).unwrap();
        std::fs::write(repo.join(".gitignore"), "__pycache__/\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        commit_all(&repo, "base");
        std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
        Fixture { dir }
    }

    /// The temporary directory: kkrun's current directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The git repository the tasks work on.
    pub fn repo(&self) -> PathBuf {
        self.root().join("repo")
    }

    /// The run directory of [`Fixture::run_tasks`].
    pub fn out(&self) -> PathBuf {
        self.root().join("out")
    }

    /// Writes `tasks/<name>.yaml` (checks `add` and `mul`, plus
    /// `extra_yaml` at the end) and its cassette replaying `turns`; returns
    /// the task file relative to the root, as a user would type it.
    pub fn task(&self, name: &str, extra_yaml: &str, turns: &[ScriptedTurn]) -> String {
        self.add_task(&TaskFile::new(name, turns).yaml(extra_yaml))
    }

    /// Writes `task` under `tasks/` with the repository as its workspace;
    /// returns the task file relative to the root.
    pub fn add_task(&self, task: &TaskFile) -> String {
        task.write(&self.root().join("tasks"), "../repo");
        format!("tasks/{}.yaml", task.name)
    }

    /// [`kkrun`] in the fixture's root.
    pub fn kkrun(&self, args: &[&str]) -> Command {
        kkrun(self.root(), args)
    }

    /// Runs `kkrun run --out <out> ARGS...` in the fixture's root.
    pub fn run(&self, out: &str, args: &[&str]) -> Run {
        let mut all = vec!["run", "--out", out];
        all.extend_from_slice(args);
        Run::capture(self.kkrun(&all), &self.root().join(out))
    }

    /// Runs `task` into [`Fixture::out`] against the OpenAI-compatible server
    /// at `address` (`http://ADDRESS/v1`, a test key, no preflight: the
    /// server scripts only the task's turns).
    pub fn run_live(&self, address: std::net::SocketAddr, task: &str) -> Output {
        let out = self.out();
        self.kkrun(&[
            "run",
            "--no-preflight",
            "--out",
            out.to_str().unwrap(),
            task,
        ])
        .env("OPENAI_BASE_URL", format!("http://{address}/v1"))
        .env("OPENAI_API_KEY", "sk-test-not-a-real-key-123456")
        .output()
        .unwrap()
    }

    /// Runs the task files into [`Fixture::out`]; returns the exit code and
    /// the report.
    pub fn run_tasks(&self, files: &[&str]) -> (i32, Value) {
        let run = self.run("out", files);
        (run.code(), run.report())
    }
}

/// A task file and its scripted cassette, before they are written: the
/// prompt asks to make `add` add, the checks run `test_add.py` and
/// `test_mul.py`, and the model is replayed from `<name>.jsonl`.
pub struct TaskFile {
    name: String,
    turns: Vec<ScriptedTurn>,
    extra_checks: String,
    extra_yaml: String,
    cassette_model: String,
    model: Option<String>,
}

impl TaskFile {
    /// A task replaying `turns`.
    pub fn new(name: &str, turns: &[ScriptedTurn]) -> TaskFile {
        TaskFile {
            name: name.to_string(),
            turns: turns.to_vec(),
            extra_checks: String::new(),
            extra_yaml: String::new(),
            cassette_model: CASSETTE_MODEL.to_string(),
            model: None,
        }
    }

    /// Appends top-level YAML (`budget:`, `stages:`, ...) after `env:`.
    pub fn yaml(mut self, extra: &str) -> TaskFile {
        self.extra_yaml.push_str(extra);
        self
    }

    /// Appends items to the `checks:` list, after `add` and `mul`, written
    /// as indented YAML list items (`  - name: ...\n    run: ...\n`).
    pub fn extra_checks(mut self, items: &str) -> TaskFile {
        self.extra_checks.push_str(items);
        self
    }

    /// The model the cassette names, which decides the built-in price.
    pub fn cassette_model(mut self, model: &str) -> TaskFile {
        self.cassette_model = model.to_string();
        self
    }

    /// A `model:` other than the cassette's replay, such as a real
    /// provider's `openai:gpt-4.1`; the cassette is still written.
    pub fn model(mut self, spec: &str) -> TaskFile {
        self.model = Some(spec.to_string());
        self
    }

    /// Writes `<dir>/<name>.yaml` (with the task's `name:` on line 2) and
    /// `<dir>/<name>.jsonl`; returns the task file's path.
    pub fn write(&self, dir: &Path, workspace: &str) -> PathBuf {
        let name = &self.name;
        Cassette::from_turns(
            WireFormat::OpenAi,
            self.cassette_model.as_str(),
            &self.turns,
        )
        .write_to(&dir.join(format!("{name}.jsonl")))
        .unwrap();
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| format!("replay:{name}.jsonl"));
        let yaml = format!(
            "version: 1\nname: {name}\ndescription: Make add() add.\nprompt: Make add() add.\nworkspace: {workspace}\n\
             model: {model}\n\
             checks:\n  - name: add\n    run: python3 test_add.py\n  - name: mul\n    run: python3 test_mul.py\n{checks}\
             env:\n  PYTHONDONTWRITEBYTECODE: \"1\"\n{extra}",
            checks = self.extra_checks,
            extra = self.extra_yaml,
        );
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }
}

/// `kkrun ARGS...` in `dir`, as on a CI machine outside GitHub Actions: no
/// workflow commands, no step summary, no colour preference, no model, API
/// key or user configuration file from the developer's environment.
pub fn kkrun(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("kkrun").unwrap();
    cmd.current_dir(dir)
        .env("CI", "true")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("NO_COLOR")
        .env_remove("KKRUN_MODEL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        // The developer's own configuration file must not change a test.
        .env("XDG_CONFIG_HOME", dir.join(".no-user-config"))
        .args(args);
    cmd
}

/// One finished run: its process output and its run directory.
pub struct Run {
    /// The run directory.
    pub out: PathBuf,
    /// What the process printed and how it exited.
    pub output: Output,
}

impl Run {
    /// Runs `command` to the end; `out` is the run directory it writes.
    /// With `KKRUN_TEST_DEBUG` set, kkrun's stderr is echoed.
    pub fn capture(mut command: Command, out: &Path) -> Run {
        let output = command.output().unwrap();
        if std::env::var_os("KKRUN_TEST_DEBUG").is_some() {
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        }
        Run {
            out: out.to_path_buf(),
            output,
        }
    }

    /// The exit code, or -1 when killed by a signal.
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Standard output, which must be UTF-8.
    pub fn stdout(&self) -> String {
        String::from_utf8(self.output.stdout.clone()).unwrap()
    }

    /// Standard error, which must be UTF-8.
    pub fn stderr(&self) -> String {
        String::from_utf8(self.output.stderr.clone()).unwrap()
    }

    /// A file of the run directory; a missing one fails the test showing
    /// everything the run printed.
    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name)).unwrap_or_else(|e| {
            panic!(
                "cannot read {name} ({e}); exit {}\nstdout:\n{}\nstderr:\n{}",
                self.code(),
                String::from_utf8_lossy(&self.output.stdout),
                String::from_utf8_lossy(&self.output.stderr)
            )
        })
    }

    /// `report.json`, parsed.
    pub fn report(&self) -> Value {
        serde_json::from_str(&self.file("report.json")).unwrap()
    }

    /// `events.jsonl`, parsed line by line.
    pub fn events(&self) -> Vec<Value> {
        self.file("events.jsonl")
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("events.jsonl line {line:?}: {e}"))
            })
            .collect()
    }

    /// Asserts the exit code, showing everything the run printed otherwise.
    pub fn expect_code(&self, code: i32) {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
    }
}

/// Runs `git ARGS...` in `dir`, failing the test with git's stderr when it
/// fails; returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the user sees of their repository: status, diff, HEAD, branches,
/// stash, worktrees and the file the tasks fix.
pub fn user_view(repo: &Path) -> Vec<String> {
    let mut view: Vec<String> = [
        &[
            "status",
            "--porcelain=v2",
            "--branch",
            "--untracked-files=all",
        ][..],
        &["diff"][..],
        &["diff", "--cached"][..],
        &["rev-parse", "HEAD"][..],
        &["branch", "-a", "-v"][..],
        &["stash", "list"][..],
        &["worktree", "list", "--porcelain"][..],
    ]
    .iter()
    .map(|args| git(repo, args))
    .collect();
    view.push(std::fs::read_to_string(repo.join("calc.py")).unwrap());
    view
}

/// Copies `tasks/` and `examples/` into a fresh git repository, as a user's
/// clone would have them.
pub fn example_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["tasks", "examples"] {
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join(sub),
            &dir.path().join(sub),
        );
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    commit_all(dir.path(), "clone");
    dir
}

/// Stages everything in `repo` and commits it, with an identity given on
/// the command line so no git configuration is needed.
pub fn commit_all(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(
        repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

/// Copies a directory tree, leaving out `__pycache__` directories that a
/// local Python run may have left in the source.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The last component of every ref under `refs/kkrun/` in `repo`, in git's
/// order: `00-base`, `01-blueprint`, ...
pub fn snapshot_refs(repo: &Path) -> Vec<String> {
    git(
        repo,
        &["for-each-ref", "--format=%(refname)", "refs/kkrun/"],
    )
    .lines()
    .map(|l| l.rsplit('/').next().unwrap().to_string())
    .collect()
}

/// The stages of the report's task number `task`, as `stage:end`.
pub fn stage_ends(report: &Value, task: usize) -> Vec<String> {
    report["tasks"][task]["stages"]
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
        .collect()
}

/// A turn making one tool call and reporting 1100 tokens (1000 in, none
/// cached, 100 out).
pub fn call(id: &str, name: &str, args: Value) -> ScriptedTurn {
    ScriptedTurn::tool_calls(vec![ScriptedToolCall::new(id, name, &args)]).with_usage(Usage {
        input_tokens: 1000,
        cached_input_tokens: 0,
        output_tokens: 100,
        estimated: false,
        cache_write_input_tokens: 0,
        reasoning_tokens: 0,
    })
}

/// The blueprint's plan: fix the operator in `calc.py`.
pub fn plan() -> ScriptedTurn {
    call(
        "plan",
        "submit_plan",
        json!({"goal": "add() must add", "steps": ["fix the operator in calc.py"], "files": ["calc.py"],
               "verification": "python3 test_add.py"}),
    )
}

/// Reads `calc.py`.
pub fn read_calc() -> ScriptedTurn {
    call("read", "read_file", json!({"path": "calc.py"}))
}

/// Fixes `add`.
pub fn fix_add() -> ScriptedTurn {
    call(
        "fix",
        "edit_file",
        json!({"path": "calc.py", "old": "return a - b", "new": "return a + b"}),
    )
}

/// Breaks `mul`, which passed at the base: `mul(2, 3) == 8`.
pub fn break_mul() -> ScriptedTurn {
    call(
        "break",
        "edit_file",
        json!({"path": "calc.py", "old": "return a * b", "new": "return a ** b"}),
    )
}

/// A task that fixes `add` but breaks `mul`; the debug stage claims
/// success anyway and the review requests changes: it fails.
pub fn fix_but_break_mul() -> Vec<ScriptedTurn> {
    vec![
        plan(),
        fix_add(),
        break_mul(),
        finish("code"),
        finish("debug"),
        review("request_changes"),
    ]
}

/// Each task of `report` as (name, outcome), in report order.
pub fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A task that plans, fixes `add` and is approved: every check passes.
pub fn fix_and_approve() -> Vec<ScriptedTurn> {
    vec![plan(), fix_add(), finish("code"), review("approve")]
}

/// The errors of `report` against `schemas/report.schema.json`, the
/// committed report schema.
pub fn committed_schema_errors(report: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// Ends the current stage.
pub fn finish(id: &str) -> ScriptedTurn {
    call(id, "finish_stage", json!({"summary": "changed calc.py"}))
}

/// The preview's review with `verdict` (`approve` or `request_changes`).
pub fn review(verdict: &str) -> ScriptedTurn {
    call(
        "review",
        "submit_review",
        json!({"verdict": verdict, "summary": "The operator is fixed.", "risks": ["none known"]}),
    )
}

/// The reports `kkrun report rebuild` writes from `events.jsonl`.
pub const REPORTS: [&str; 3] = ["report.json", "junit.xml", "summary.md"];

/// Deletes the run's reports, rebuilds them, and asserts they are the same
/// bytes as before.
pub fn assert_rebuild_is_byte_identical(cwd: &Path, run_dir: &Path) {
    let written: Vec<Vec<u8>> = REPORTS
        .iter()
        .map(|name| std::fs::read(run_dir.join(name)).unwrap())
        .collect();
    for name in REPORTS {
        std::fs::remove_file(run_dir.join(name)).unwrap();
    }
    let output = kkrun(cwd, &["report", "rebuild"])
        .arg(run_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("rebuilt report.json, junit.xml and summary.md in "),
        "{stdout}"
    );
    for (name, before) in REPORTS.iter().zip(&written) {
        let after = std::fs::read(run_dir.join(name)).unwrap();
        assert!(
            &after == before,
            "{name} differs after the rebuild:\n--- written by the run\n{}\n--- rebuilt\n{}",
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(&after)
        );
    }
}

/// Takes the lock of run directory `run_dir` for this process, naming run
/// `run_id` as kkrun's own lock does: the test plays the run's process,
/// still running, until the returned file is dropped.
pub fn hold_run_lock(run_dir: &Path, run_id: &str) -> std::fs::File {
    use std::io::Write;
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run_dir.join(".run.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    write!(
        lock,
        r#"{{"run_id":"{run_id}","pid":{},"started":"2026-12-08T00:00:00Z","command":"run"}}"#,
        std::process::id()
    )
    .unwrap();
    lock
}

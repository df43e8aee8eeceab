//! The real MCP test server (`tests/mcp_server/server.py`, built on the
//! official Python SDK) and the interpreter that runs it.
//!
//! The interpreter is `KKRUN_TEST_MCP_PYTHON` (set by `.ci/run`, which
//! installs the `mcp` package into a virtual environment), else the virtual
//! environment `.ci/run` leaves in `target/mcp-venv`. Without either, tests
//! skip with a printed reason, except in CI (`CI` set), where a missing
//! server is a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test server script.
pub fn server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_server/server.py")
}

/// The Python interpreter that has the `mcp` package, or `None` (after
/// printing why) when the tests should skip. Panics in CI instead.
pub fn python() -> Option<PathBuf> {
    let candidate = match std::env::var_os("KKRUN_TEST_MCP_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python"),
    };
    let usable = Command::new(&candidate)
        .args(["-c", "import mcp.server.mcpserver, uvicorn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(candidate);
    }
    let reason = format!(
        "no Python with the `mcp` package at {} (set KKRUN_TEST_MCP_PYTHON, or run .ci/run once to create target/mcp-venv)",
        candidate.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("the MCP test server is required in CI: {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// A streamable HTTP test server on a free loopback port, killed when
/// dropped.
pub struct HttpServer {
    child: Child,
    /// Its MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl HttpServer {
    /// Starts the server; with `token`, requests must carry
    /// `Authorization: Bearer TOKEN`.
    pub fn start(python: &Path, token: Option<&str>) -> HttpServer {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let mut command = Command::new(python);
        command
            .arg(server_script())
            .arg("http")
            .arg("--port-file")
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().to_string();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the HTTP test server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the HTTP test server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // The port is bound before it is written; wait until it accepts.
        let address = format!("127.0.0.1:{port}");
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the HTTP test server does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        HttpServer {
            child,
            url: format!("http://{address}/mcp"),
            _dir: dir,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a process with this pid still exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

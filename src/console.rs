//! Human progress on stderr, and JSONL on stdout for `--json`.
//!
//! On a terminal (and not in CI) a live line per running task shows its
//! stage, turn, tokens and cost, above a totals line (see [`live`]);
//! everywhere else progress degrades to plain timestamped lines, each
//! naming its task, each written whole in one write, so that the lines of
//! concurrent tasks (`--jobs`) never mix. Colour only goes through
//! [`Style`], so `--color never` and `NO_COLOR` hold everywhere.

mod live;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use live::Live;

use crate::events::{Event, EventKind, EventSink, TaskOutcome, ToolOutcome};
use crate::report::github;
use crate::report::markdown::human_duration;

/// When to colour output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Where kkrun runs, read once from the process's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// stderr is a terminal.
    pub tty: bool,
    /// `CI` is set (and not `false` or `0`).
    pub ci: bool,
    /// `NO_COLOR` is set and not empty.
    pub no_color: bool,
    /// `GITHUB_ACTIONS=true`.
    pub github: bool,
}

impl Terminal {
    /// Reads the environment and whether stderr is a terminal.
    pub fn detect() -> Terminal {
        Terminal {
            tty: std::io::stderr().is_terminal(),
            ci: std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0"),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            github: github::is_github_actions(),
        }
    }

    /// Whether to colour stderr under `choice`.
    pub fn color(&self, choice: ColorChoice) -> bool {
        match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => self.tty && !self.no_color,
        }
    }
}

/// How the console should behave, decided once from flags and environment.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Use colours.
    pub color: bool,
    /// Draw a live progress line (stderr is a terminal and not CI).
    pub live: bool,
    /// Print only errors and final results.
    pub quiet: bool,
    /// 0: stages, checks and results; 1: plus model turns and tool calls.
    pub verbose: u8,
    /// Emit `::group::` markers for GitHub Actions.
    pub github: bool,
    /// Events go to stdout as JSONL; stdout carries nothing else.
    pub json: bool,
}

impl ConsoleOptions {
    /// Decides the console's behaviour from the flags and where kkrun runs.
    pub fn new(
        terminal: Terminal,
        color: ColorChoice,
        quiet: bool,
        verbose: u8,
        json: bool,
    ) -> ConsoleOptions {
        ConsoleOptions {
            color: terminal.color(color),
            live: terminal.tty && !terminal.ci && !quiet,
            quiet,
            verbose,
            github: terminal.github,
            json,
        }
    }
}

/// ANSI styles, all empty when colour is off.
#[derive(Debug, Clone, Copy)]
struct Style {
    green: &'static str,
    red: &'static str,
    yellow: &'static str,
    dim: &'static str,
    bold: &'static str,
    reset: &'static str,
}

impl Style {
    fn new(color: bool) -> Style {
        if color {
            Style {
                green: "\x1b[32m",
                red: "\x1b[31m",
                yellow: "\x1b[33m",
                dim: "\x1b[2m",
                bold: "\x1b[1m",
                reset: "\x1b[0m",
            }
        } else {
            Style {
                green: "",
                red: "",
                yellow: "",
                dim: "",
                bold: "",
                reset: "",
            }
        }
    }
}

/// The human console. Keep it alive for the run; [`Console::finish`] clears
/// the live line.
pub struct Console {
    state: Arc<Mutex<ConsoleState>>,
}

struct ConsoleState {
    options: ConsoleOptions,
    style: Style,
    live: Option<Live>,
    /// Tokens and cost of each task so far (removed when it finishes).
    tallies: BTreeMap<String, Tally>,
    /// Tokens and cost of the whole run so far, for the totals line.
    totals: Tally,
    /// Tasks the run will run, and those that finished.
    planned: usize,
    finished: usize,
    /// The task whose `::group::` is open. GitHub's groups do not nest, so
    /// while one task's group is open the others' lines go ungrouped.
    group: Option<String>,
}

/// Tokens and cost so far.
#[derive(Debug, Clone, Copy)]
struct Tally {
    tokens: u64,
    /// `None` once a turn had no known price.
    cost: Option<f64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            tokens: 0,
            cost: Some(0.0),
        }
    }
}

impl Tally {
    fn add(&mut self, tokens: u64, cost: Option<f64>) {
        self.tokens += tokens;
        self.cost = self.cost.zip(cost).map(|(a, b)| a + b);
    }

    fn text(self) -> String {
        match self.cost {
            Some(cost) => format!("{} tokens, ${cost:.2}", self.tokens),
            None => format!("{} tokens", self.tokens),
        }
    }
}

impl Console {
    /// Subscribes a console (and, with `--json`, a stdout JSONL writer) to `sink`.
    pub fn attach(sink: &EventSink, options: ConsoleOptions) -> Console {
        if options.json {
            sink.subscribe(|event: &Event| {
                let line = crate::events::to_json_line(event);
                let mut out = std::io::stdout().lock();
                // A closed stdout (`kkrun --json | head`) must not end the run.
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            });
        }
        let live = options.live.then(Live::new);
        let state = Arc::new(Mutex::new(ConsoleState {
            style: Style::new(options.color),
            options,
            live,
            tallies: BTreeMap::new(),
            totals: Tally::default(),
            planned: 0,
            finished: 0,
            group: None,
        }));
        let listener = state.clone();
        sink.subscribe(move |event: &Event| {
            let mut state = listener.lock().unwrap_or_else(|e| e.into_inner());
            state.on_event(event);
        });
        Console { state }
    }

    /// Prints a line above the live progress (or plainly), regardless of verbosity.
    pub fn line(&self, text: &str) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.print(text);
    }

    /// Clears the live line.
    pub fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = &mut state.live {
            live.finish();
        }
    }
}

impl ConsoleState {
    fn print(&self, text: &str) {
        match &self.live {
            Some(live) => live.println(text),
            None => {
                // One write per line: a line never mixes with another.
                let mut line = String::with_capacity(text.len() + 1);
                line.push_str(text);
                line.push('\n');
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    /// The tally of the task `event` belongs to.
    fn tally(&mut self, event: &Event) -> &mut Tally {
        self.tallies
            .entry(event.task.clone().unwrap_or_default())
            .or_default()
    }

    /// Opens the `::group::` of the event's task, unless another task's
    /// group is open.
    fn open_group(&mut self, event: &Event, title: String) {
        if self.options.github && self.group.is_none() {
            self.workflow_command(&github::group_start(&title));
            self.group = event.task.clone();
        }
    }

    /// Prints a workflow command where GitHub reads it: stdout, unless stdout
    /// is reserved for `--json`.
    fn workflow_command(&self, text: &str) {
        if self.options.json {
            eprintln!("{text}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}").and_then(|()| out.flush());
        }
    }

    fn prefix(&self, event: &Event) -> String {
        let s = self.style;
        let time = event.ts.get(11..19).unwrap_or("");
        let place = match (&event.task, event.stage) {
            (Some(task), Some(stage)) => format!("{task} {stage}"),
            (Some(task), None) => task.clone(),
            _ => "kkrun".to_string(),
        };
        if self.options.live {
            format!("{}{place}{}", s.bold, s.reset)
        } else {
            format!("{}[{time}]{} {}{place}{}", s.dim, s.reset, s.bold, s.reset)
        }
    }

    fn on_event(&mut self, event: &Event) {
        let s = self.style;
        let verbose = self.options.verbose;
        let quiet = self.options.quiet;
        let prefix = self.prefix(event);
        let line = match &event.kind {
            EventKind::RunStarted {
                run_id,
                tasks,
                partition,
                ..
            } => {
                self.planned = tasks.len();
                self.set_totals();
                (!quiet).then(|| match partition {
                Some(p) => format!(
                    "{prefix}: run {run_id}, {} task(s): shard {} of {} ({}) of {} task(s)",
                    tasks.len(),
                    p.shard,
                    p.shards,
                    p.kind,
                    p.total_tasks
                ),
                None => format!("{prefix}: run {run_id}, {} task(s)", tasks.len()),
                })
            }
            // Counted from `run.started`.
            EventKind::TaskPlanned { .. } => None,
            EventKind::RunResumed { attempt, tasks, .. } => {
                self.planned = tasks.len();
                self.set_totals();
                (!quiet).then(|| {
                    format!("{prefix}: resuming (attempt {attempt}): {} unfinished task(s)", tasks.len())
                })
            }
            EventKind::TaskResumed { after, from_snapshot, previous, .. } => {
                *self.tally(event) = Tally { tokens: previous.usage.total(), cost: previous.cost_usd };
                self.open_group(event, format!("kkrun task {} (resumed)", event.task.as_deref().unwrap_or("")));
                (!quiet).then(|| match from_snapshot {
                    Some(snapshot) => format!("{prefix}: resumed after {after}, from {snapshot}"),
                    None => format!("{prefix}: starting over (nothing was completed)"),
                })
            }
            EventKind::TaskStarted { model, sandbox, .. } => {
                *self.tally(event) = Tally::default();
                self.open_group(event, format!("kkrun task {}", event.task.as_deref().unwrap_or("")));
                // An unenforced sandbox is shown even with --quiet: the user
                // must know that commands run unconfined.
                let unconfined = sandbox.as_ref().is_some_and(|s| !s.complete());
                (!quiet || unconfined).then(|| match sandbox {
                    Some(sandbox) => format!(
                        "{prefix}: started with {model}; sandbox: {}",
                        sandbox.describe()
                    ),
                    None => format!("{prefix}: started with {model}"),
                })
            }
            EventKind::StageStarted { round, .. } => {
                self.set_live(event, "starting");
                (!quiet).then(|| {
                    if *round > 1 { format!("{prefix}: started (round {round})") } else { format!("{prefix}: started") }
                })
            }
            EventKind::ModelTurn { turn, usage, cost_usd, tool_calls, .. } => {
                self.tally(event).add(usage.total(), *cost_usd);
                self.totals.add(usage.total(), *cost_usd);
                self.set_live(event, &format!("turn {turn}"));
                self.set_totals();
                (verbose >= 1).then(|| format!("{prefix}: turn {turn}, {} tokens, {tool_calls} tool call(s)", usage.total()))
            }
            EventKind::ToolCall { tool, outcome, arguments, duration_ms, .. } => (verbose >= 1).then(|| {
                let mark = match outcome {
                    ToolOutcome::Ok => format!("{}ok{}", s.green, s.reset),
                    ToolOutcome::Error => format!("{}error{}", s.yellow, s.reset),
                    ToolOutcome::Refused => format!("{}refused{}", s.red, s.reset),
                };
                let mut args: String = arguments.chars().take(100).collect();
                if args.len() < arguments.len() {
                    args.push('…');
                }
                format!("{prefix}:   {tool} {args} → {mark} ({})", human_duration(*duration_ms))
            }),
            EventKind::StageFinished { end, turns, duration_ms, .. } => (!quiet).then(|| {
                let colour = if end.is_normal() { s.green } else { s.yellow };
                format!("{prefix}: {colour}{end}{} after {turns} turn(s), {}", s.reset, human_duration(*duration_ms))
            }),
            EventKind::ChecksFinished { phase, passed, failed, failed_names, .. } => (!quiet).then(|| {
                let colour = if *failed == 0 { s.green } else { s.red };
                let names = if failed_names.is_empty() { String::new() } else { format!(" (failing: {})", failed_names.join(", ")) };
                format!("{prefix}: {phase} checks: {colour}{passed} passed, {failed} failed{}{names}", s.reset)
            }),
            EventKind::SetupFinished { index, total, run } => (!quiet).then(|| {
                let (colour, status) = if run.passed { (s.green, "ok".to_string()) } else { (s.red, "failed".to_string()) };
                format!("{prefix}: setup {}/{total} `{}`: {colour}{status}{} ({})", index + 1, run.command.trim(), s.reset, human_duration(run.duration_ms))
            }),
            EventKind::SnapshotTaken { ref_name, .. } => (verbose >= 1).then(|| format!("{prefix}: snapshot {ref_name}")),
            // The report and the run directory hold these; the stage lines
            // and (with -v) the safety snapshot already say they happened.
            EventKind::WorkspaceRestored { .. }
            | EventKind::PlanSubmitted { .. }
            | EventKind::ReviewSubmitted { .. }
            | EventKind::ArtifactWritten { .. }
            | EventKind::DiffComputed { .. } => None,
            EventKind::TaskFinished { outcome, reason, duration_ms, .. } => {
                let colour = if *outcome == TaskOutcome::Passed { s.green } else { s.red };
                let text = format!(
                    "{prefix}: {colour}{}{outcome}{}{} — {reason} ({}, {})",
                    s.bold,
                    s.reset,
                    s.reset,
                    human_duration(*duration_ms),
                    self.tally(event).text()
                );
                self.print(&text);
                let task = event.task.clone().unwrap_or_default();
                self.tallies.remove(&task);
                if let Some(live) = &mut self.live {
                    live.remove_task(&task);
                }
                self.finished += 1;
                self.set_totals();
                if self.group.is_some() && self.group == event.task {
                    self.workflow_command(github::group_end());
                    self.group = None;
                }
                None
            }
            EventKind::RunFinished { exit_code, passed, not_passed } => {
                let colour = if *exit_code == 0 { s.green } else { s.red };
                Some(format!("{prefix}: {colour}{passed} passed, {not_passed} not passed{}; exit code {exit_code}", s.reset))
            }
            EventKind::ProviderRetry { attempt, wait_ms, reason } => {
                (!quiet).then(|| format!("{prefix}: {}retrying model request{} (attempt {attempt} failed: {reason}; waiting {})", s.yellow, s.reset, human_duration(*wait_ms)))
            }
            EventKind::BudgetExhausted { budget, used, limit } => {
                Some(format!("{prefix}: {}budget {} exhausted{} ({used} of {limit})", s.yellow, budget.as_str(), s.reset))
            }
            EventKind::LoopStuck { reason } => {
                (!quiet).then(|| format!("{prefix}: {}stuck:{} {reason}", s.yellow, s.reset))
            }
            EventKind::LoopWarning { tool, repeats } => {
                (verbose >= 1).then(|| format!("{prefix}: {}{tool} called {repeats} times in a row with the same arguments{}", s.yellow, s.reset))
            }
            EventKind::ContextCompacted { before_tokens, after_tokens, .. } => {
                (verbose >= 1).then(|| format!("{prefix}: context compacted from ~{before_tokens} to ~{after_tokens} tokens"))
            }
            EventKind::McpServerStarted { server, tools, read_only_tools, replayed, .. } => (!quiet).then(|| {
                let how = if *replayed { "replayed from the cassette" } else { "ready" };
                format!("{prefix}: mcp server {server} {how}: {} tool(s), {} read-only", tools.len(), read_only_tools.len())
            }),
            EventKind::McpServerExited { server, status, stderr_tail } => {
                let tail = stderr_tail.lines().last().map(|l| format!(" (stderr: {l})")).unwrap_or_default();
                Some(format!("{prefix}: {}warning:{} mcp server {server} {status} during the task; its tools now fail{tail}", s.yellow, s.reset))
            }
            EventKind::McpServerStopped { server } => (verbose >= 1).then(|| format!("{prefix}: mcp server {server} stopped")),
            EventKind::FindingReported { finding } => (!quiet).then(|| {
                format!("{prefix}: finding {} {} {} at {}: {}", finding.id, finding.severity.as_str(), finding.rule_id, finding.location(), finding.title)
            }),
            EventKind::FindingWithdrawn { id, reason } => (!quiet).then(|| format!("{prefix}: finding {id} withdrawn: {reason}")),
            EventKind::FindingReproduced { id, status, reproduction } => (!quiet).then(|| {
                format!("{prefix}: finding {id} {} (reproducer {})", status.as_str(), reproduction.result.as_str())
            }),
            EventKind::Warning { message } => Some(format!("{prefix}: {}warning:{} {message}", s.yellow, s.reset)),
            EventKind::Error { message } => Some(format!("{prefix}: {}error:{} {message}", s.red, s.reset)),
            EventKind::PolicyViolation { command, reason, .. } => {
                Some(format!("{prefix}: {}policy violation:{} `{command}`: {reason}", s.red, s.reset))
            }
        };
        if let Some(line) = line {
            self.print(&line);
        }
    }

    /// Updates the live line of the event's task.
    fn set_live(&mut self, event: &Event, what: &str) {
        let Some(task) = event.task.clone() else {
            return;
        };
        let tally = self.tally(event).text();
        if let Some(live) = &mut self.live {
            let place = match event.stage {
                Some(stage) => format!("{task} · {stage}"),
                None => task.clone(),
            };
            live.set_task(&task, format!("{place} · {what} · {tally}"));
        }
    }

    /// Updates the totals line: tasks running and done, tokens and cost.
    fn set_totals(&self) {
        if let Some(live) = &self.live {
            let running = self.tallies.len();
            live.set_totals(format!(
                "{} of {} task(s) done, {running} running · {}",
                self.finished,
                self.planned,
                self.totals.text()
            ));
        }
    }
}

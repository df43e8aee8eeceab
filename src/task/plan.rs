//! The run plan `kkrun run --dry-run` prints: what would run, with every
//! default filled in, so a CI user can check a task file's effect.

use std::fmt::Write as _;
use std::path::Path;

use super::duration::format as duration;
use super::resolved::{Stage, Task};
use crate::agent::default_context_window;
use crate::provider::pricing::{PRICE_TABLE_DATE, builtin_price};
use crate::provider::{ModelPrice, WireFormat};

/// Renders the plan of `tasks` for humans. Paths are shown relative to
/// `cwd` when they are below it.
pub fn render_plan(tasks: &[Task], cwd: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run plan: {} {} (dry run: nothing is executed)",
        tasks.len(),
        if tasks.len() == 1 { "task" } else { "tasks" }
    );
    for task in tasks {
        out.push('\n');
        let _ = writeln!(
            out,
            "task {}  ({}:{})",
            task.name,
            task.file.display(),
            task.line
        );
        if !task.description.is_empty() {
            let _ = writeln!(out, "  description: {}", task.description);
        }
        let _ = writeln!(out, "  kind:        {}", task.kind.as_str());
        let _ = writeln!(out, "  workspace:   {}", shown(&task.workspace, cwd));
        let model = task.model.as_deref().unwrap_or("(none)");
        let model = match model.strip_prefix("replay:") {
            Some(path) => format!("replay:{}", shown(Path::new(path), cwd)),
            None => model.to_owned(),
        };
        let _ = writeln!(out, "  model:       {model}");
        if let Some(matrix) = &task.matrix {
            let _ = writeln!(
                out,
                "  matrix:      task {} with {}, in its own worktree",
                matrix.task, matrix.model
            );
        }
        if let Some(endpoint) = &task.endpoint {
            let _ = writeln!(
                out,
                "  endpoint:    {} ({}, {})",
                endpoint.name,
                endpoint.api.name(),
                endpoint.base_url
            );
        }
        let _ = writeln!(out, "  pricing:     {}", pricing(task));
        let _ = writeln!(out, "  window:      {}", context_window(task));
        let stages: Vec<String> = Stage::ALL
            .iter()
            .map(|&stage| {
                let turns = task.stages.max_turns(stage);
                match stage {
                    Stage::Debug => format!(
                        "debug {turns} turns x {} {}",
                        task.stages.debug_max_rounds,
                        if task.stages.debug_max_rounds == 1 {
                            "round"
                        } else {
                            "rounds"
                        }
                    ),
                    Stage::Preview => format!(
                        "preview {turns} turns ({})",
                        if task.stages.preview_advisory {
                            "advisory"
                        } else {
                            "verdict decides"
                        }
                    ),
                    _ => format!("{stage} {turns} turns"),
                }
            })
            .collect();
        let _ = writeln!(out, "  stages:      {}", stages.join(" -> "));
        if task.checks.is_empty() {
            let _ = writeln!(out, "  checks:      none (the review verdict decides)");
        } else {
            let _ = writeln!(out, "  checks:");
            for check in &task.checks {
                let _ = writeln!(
                    out,
                    "    - {}: {}  (timeout {}, retries {})",
                    check.name,
                    check.run,
                    duration(check.timeout),
                    check.retries
                );
            }
        }
        let budget = &task.budget;
        let _ = writeln!(
            out,
            "  budget:      {}, {}, {}",
            budget
                .max_tokens
                .map_or("no token limit".into(), |t| format!("{t} tokens")),
            budget
                .max_cost_usd
                .map_or("no cost limit".into(), |c| format!("${c:.2}")),
            budget
                .timeout
                .map_or("no timeout".into(), |t| format!("timeout {}", duration(t)))
        );
        let shell = &task.shell;
        let allow = if shell.allow.is_empty() {
            "any command not denied".to_owned()
        } else {
            shell.allow.join(", ")
        };
        let deny = if shell.deny.is_empty() {
            "built-in rules".to_owned()
        } else {
            format!("built-in rules + {}", shell.deny.join(", "))
        };
        let _ = writeln!(
            out,
            "  shell:       allow {allow}; deny {deny}; timeout {}",
            duration(shell.timeout)
        );
        if !task.context.is_empty() {
            let _ = writeln!(out, "  context:     {}", task.context.join(", "));
        }
        if !task.env.is_empty() {
            let names: Vec<&str> = task.env.keys().map(String::as_str).collect();
            let _ = writeln!(out, "  env:         {}", names.join(", "));
        }
        if !task.mcp.is_empty() {
            let servers: Vec<String> = task
                .mcp
                .iter()
                .map(|server| format!("{} ({})", server.name, server.transport.kind()))
                .collect();
            let _ = writeln!(out, "  mcp:         {}", servers.join(", "));
        }
        let _ = writeln!(
            out,
            "  on_failure:  {}",
            match task.on_failure {
                super::OnFailure::Keep => "keep",
                super::OnFailure::Rollback => "rollback",
            }
        );
        if task.kind == super::TaskKind::BugHunt {
            let _ = writeln!(out, "  fail_on:     {}", task.fail_on.as_str());
        }
    }
    out
}

/// The price the task's costs will be counted at, and where it comes from.
fn pricing(task: &Task) -> String {
    if let Some(price) = &task.pricing {
        return format!("{} (task file)", price_text(price));
    }
    match task.model.as_deref().and_then(|spec| spec.split_once(':')) {
        Some(("replay", _)) => "built-in price of the recorded model".to_owned(),
        Some((provider, model)) => {
            let builtin =
                WireFormat::from_name(provider).and_then(|wire| builtin_price(wire, model));
            match builtin {
                Some(price) => format!(
                    "{} (built-in, list prices of {PRICE_TABLE_DATE})",
                    price_text(&price)
                ),
                None => format!(
                    "unknown for `{model}`: cost is reported as null (set `pricing:` to count it)"
                ),
            }
        }
        None => "built-in price of the model".to_owned(),
    }
}

fn price_text(price: &ModelPrice) -> String {
    let cached = price
        .cached_input_per_mtok
        .map_or("cached input as input".to_owned(), |cached| {
            format!("{} cached input", usd(cached))
        });
    let written = price
        .cache_write_input_per_mtok
        .map_or(String::new(), |write| {
            format!("{} cache writes, ", usd(write))
        });
    format!(
        "{} input, {cached}, {written}{} output per million tokens",
        usd(price.input_per_mtok),
        usd(price.output_per_mtok)
    )
}

/// Dollars with at least two decimals and no more than the price has
/// (`$2.00`, `$0.025`).
fn usd(amount: f64) -> String {
    let precise = format!("{amount:.6}");
    let trimmed = precise.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals < 2 {
        format!("${amount:.2}")
    } else {
        format!("${trimmed}")
    }
}

/// The context window compaction works against, and where it comes from.
fn context_window(task: &Task) -> String {
    if let Some(window) = task.context_window {
        return format!("{window} tokens (task file)");
    }
    match task.model.as_deref().and_then(|spec| spec.split_once(':')) {
        Some(("replay", _)) => "default for the recorded model".to_owned(),
        Some((_, model)) => format!(
            "{} tokens (default for `{model}`)",
            default_context_window(model)
        ),
        None => "default for the model".to_owned(),
    }
}

fn shown(path: &Path, cwd: &Path) -> String {
    match path.strip_prefix(cwd) {
        Ok(relative) if relative.as_os_str().is_empty() => ".".to_owned(),
        Ok(relative) => relative.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn prices_show_cents_and_any_finer_digits() {
        assert_eq!(usd(2.0), "$2.00");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.025), "$0.025");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(15.125), "$15.125");
    }
}

//! `setup:` after the merge: each command checked against the task's
//! resolved shell policy, so a command the agent could not run either is
//! refused before anything runs (exit 2, at the entry's position), not
//! halfway through a run.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::diagnostic::{SourceFile, TaskFileError};
use super::raw::SetupEntry;
use super::resolved::{SetupCommand, ShellPolicy};
use crate::tools::{PolicyRefusal, ShellGuard};

/// Default time limit of one `setup:` command (the same as a check's).
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The task's setup commands; `None` when one is refused by `shell` (the
/// errors, one per refused command, are in `errors`).
pub(crate) fn resolve_setup(
    source: &SourceFile,
    entries: Option<&Spanned<Vec<SetupEntry>>>,
    shell: &ShellPolicy,
    errors: &mut Vec<TaskFileError>,
) -> Option<Vec<SetupCommand>> {
    let entries = entries
        .map(|list| list.value.as_slice())
        .unwrap_or_default();
    if entries.is_empty() {
        return Some(Vec::new());
    }
    // An invalid `allow`/`deny` pattern is already an error of its own.
    let guard = ShellGuard::new(shell).ok()?;
    let mut sound = true;
    let mut commands = Vec::with_capacity(entries.len());
    for entry in entries {
        if let Err(refusal) = guard.check(&entry.run.value) {
            sound = false;
            errors.push(
                TaskFileError::new(
                    format!(
                        "setup command `{}` is {}",
                        entry.run.value.trim(),
                        refusal_text(&refusal.to_string())
                    ),
                    source.at(entry.run.referenced),
                )
                .help(refusal_help(&refusal)),
            );
            continue;
        }
        commands.push(SetupCommand {
            run: entry.run.value.clone(),
            timeout: entry.timeout.as_ref().map_or(SETUP_TIMEOUT, |t| t.value),
            line: entry.run.referenced.line(),
        });
    }
    sound.then_some(commands)
}

/// What the task's author can do about `refusal`: only an allow list can
/// be widened; deny rules, built-in ones above all, always win.
fn refusal_help(refusal: &PolicyRefusal) -> &'static str {
    match refusal {
        PolicyRefusal::NotAllowed { .. } => {
            "setup commands must pass the task's shell policy; add a pattern for it to \
             `tools.shell.allow`, or change the command"
        }
        PolicyRefusal::Denied { builtin: true, .. } => {
            "setup commands must pass the task's shell policy, and the built-in rules always \
             apply; change the command"
        }
        PolicyRefusal::Denied { .. } => {
            "setup commands must pass the task's shell policy; change the command, or remove \
             the pattern from `tools.shell.deny`"
        }
        _ => {
            "setup commands must pass the task's shell policy; write the command as plain bash \
              kkrun can check"
        }
    }
}

/// The policy's refusal without the advice it gives the model ("do the
/// work another way"), which makes no sense to the task's author.
fn refusal_text(refusal: &str) -> String {
    refusal
        .trim_end_matches("; do the work another way")
        .to_string()
}

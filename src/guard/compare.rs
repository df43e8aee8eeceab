//! Two git states compared, as changes a person can read.

use std::collections::BTreeSet;

use super::state::{GitState, RefTarget};
use super::{GitChange, GitChangeKind};

/// Every difference between `before` and `after`, in a fixed order: HEAD,
/// refs, stash, index, configuration, hooks.
pub(super) fn changes(before: &GitState, after: &GitState) -> Vec<GitChange> {
    let mut changes = Vec::new();
    if before.head != after.head {
        let (was, now) = (describe_head(&before.head), describe_head(&after.head));
        changes.push(GitChange {
            kind: GitChangeKind::Head,
            name: "HEAD".to_string(),
            before: Some(was.clone()),
            after: Some(now.clone()),
            description: format!("the agent moved HEAD from {was} to {now}"),
        });
    }
    let names: BTreeSet<&String> = before.refs.keys().chain(after.refs.keys()).collect();
    for name in names {
        let (was, now) = (before.refs.get(name), after.refs.get(name));
        if was == now {
            continue;
        }
        let (kind, what) = ref_kind(name);
        let verb = match (was, now) {
            (None, _) => "created",
            (_, None) => "deleted",
            _ => "moved",
        };
        changes.push(GitChange {
            kind,
            name: name.clone(),
            before: was.map(target_text),
            after: now.map(target_text),
            description: format!("the agent {verb} {what}"),
        });
    }
    if before.stash != after.stash {
        let (was, now) = (before.stash.len(), after.stash.len());
        let what = match now.cmp(&was) {
            std::cmp::Ordering::Less => {
                format!("dropped {} stash entr{}", was - now, plural_y(was - now))
            }
            std::cmp::Ordering::Greater => {
                format!("added {} stash entr{}", now - was, plural_y(now - was))
            }
            std::cmp::Ordering::Equal => "rewrote the stash".to_string(),
        };
        changes.push(GitChange {
            kind: GitChangeKind::Stash,
            name: "refs/stash".to_string(),
            before: Some(format!("{was} entr{}", plural_y(was))),
            after: Some(format!("{now} entr{}", plural_y(now))),
            description: format!("the agent {what}"),
        });
    }
    if before.index.entries != after.index.entries {
        let paths = changed_index_paths(before, after);
        let shown: Vec<&str> = paths.iter().take(5).map(String::as_str).collect();
        let more = if paths.len() > shown.len() {
            format!(", and {} more", paths.len() - shown.len())
        } else {
            String::new()
        };
        changes.push(GitChange {
            kind: GitChangeKind::Index,
            name: "index".to_string(),
            before: Some(format!("{} entries", before.index.entries.len())),
            after: Some(format!("{} entries", after.index.entries.len())),
            description: format!(
                "the agent changed the index (staged or unstaged {}{more})",
                shown.join(", ")
            ),
        });
    }
    for (name, was) in &before.configs {
        let now = after.configs.get(name).cloned().flatten();
        if *was != now {
            let keys = changed_config_keys(was.as_deref(), now.as_deref());
            let detail = if keys.is_empty() {
                String::new()
            } else {
                format!(" ({})", keys.join(", "))
            };
            changes.push(GitChange {
                kind: GitChangeKind::Config,
                name: name.clone(),
                before: was.as_ref().map(|b| format!("{} bytes", b.len())),
                after: now.as_ref().map(|b| format!("{} bytes", b.len())),
                description: format!("the agent changed {name}{detail}"),
            });
        }
    }
    let hooks: BTreeSet<&String> = before.hooks.keys().chain(after.hooks.keys()).collect();
    for name in hooks {
        let (was, now) = (before.hooks.get(name), after.hooks.get(name));
        if was == now {
            continue;
        }
        let verb = match (was, now) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        changes.push(GitChange {
            kind: GitChangeKind::Hook,
            name: name.clone(),
            before: was.map(|h| format!("{} bytes", h.content.len())),
            after: now.map(|h| format!("{} bytes", h.content.len())),
            description: format!("the agent {verb} the hook .git/hooks/{name}"),
        });
    }
    changes
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

fn describe_head(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    match text.strip_prefix("ref: ") {
        Some(target) => match target.strip_prefix("refs/heads/") {
            Some(branch) => format!("branch {branch}"),
            None => target.to_string(),
        },
        None if text.is_empty() => "nothing".to_string(),
        None => format!("detached at {}", short(text)),
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn target_text(target: &RefTarget) -> String {
    match target {
        RefTarget::Direct(oid) => oid.to_string(),
        RefTarget::Symbolic(name) => format!("ref: {name}"),
    }
}

fn ref_kind(name: &str) -> (GitChangeKind, String) {
    if let Some(branch) = name.strip_prefix("refs/heads/") {
        (GitChangeKind::Branch, format!("branch {branch}"))
    } else if let Some(tag) = name.strip_prefix("refs/tags/") {
        (GitChangeKind::Tag, format!("tag {tag}"))
    } else if let Some(remote) = name.strip_prefix("refs/remotes/") {
        (
            GitChangeKind::Ref,
            format!("remote-tracking branch {remote}"),
        )
    } else {
        (GitChangeKind::Ref, format!("ref {name}"))
    }
}

fn changed_index_paths(before: &GitState, after: &GitState) -> Vec<String> {
    let was: BTreeSet<_> = before.index.entries.iter().collect();
    let now: BTreeSet<_> = after.index.entries.iter().collect();
    let paths: BTreeSet<String> = was
        .symmetric_difference(&now)
        .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
        .collect();
    paths.into_iter().collect()
}

/// The names of the settings whose values differ, parsed with git's own
/// configuration reader; empty when a file cannot be parsed.
fn changed_config_keys(was: Option<&[u8]>, now: Option<&[u8]>) -> Vec<String> {
    let (Some(was), Some(now)) = (settings(was), settings(now)) else {
        return Vec::new();
    };
    let keys: BTreeSet<&String> = was.iter().chain(now.iter()).map(|(k, _)| k).collect();
    keys.into_iter()
        .filter(|key| {
            let a: Vec<_> = was.iter().filter(|(k, _)| k == *key).collect();
            let b: Vec<_> = now.iter().filter(|(k, _)| k == *key).collect();
            a != b
        })
        .cloned()
        .collect()
}

fn settings(bytes: Option<&[u8]>) -> Option<Vec<(String, String)>> {
    let Some(bytes) = bytes else {
        return Some(Vec::new());
    };
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("config");
    std::fs::write(&path, bytes).ok()?;
    let config = git2::Config::open(&path).ok()?;
    let mut entries = config.entries(None).ok()?;
    let mut out = Vec::new();
    while let Some(entry) = entries.next() {
        let entry = entry.ok()?;
        out.push((
            String::from_utf8_lossy(entry.name_bytes()).into_owned(),
            String::from_utf8_lossy(entry.value_bytes()).into_owned(),
        ));
    }
    Some(out)
}

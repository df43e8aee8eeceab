//! Puts the git state back as it was before a command.

use std::io::Write;
use std::path::Path;

use git2::{Repository, Signature, Time};

use super::GuardError;
use super::state::{GitState, Paths, RefTarget, STASH_REF};

const REVERT_MESSAGE: &str = "kkrun: revert a change made by the agent";

/// Restores everything in which `now` differs from `before`. Files are
/// written under git's own lock files (`index.lock`, `config.lock`, ...),
/// so a git process running at the same time cannot interleave.
pub(super) fn revert(
    repo: &Repository,
    paths: &Paths,
    before: &GitState,
    now: &GitState,
) -> Result<(), GuardError> {
    if before.head != now.head {
        write_locked(&paths.head(), Some(&before.head))?;
    }
    for (name, target) in &now.refs {
        if !before.refs.contains_key(name) {
            repo.find_reference(name)?.delete()?;
        } else if before.refs.get(name) != Some(target) {
            set_ref(repo, name, &before.refs[name])?;
        }
    }
    for (name, target) in &before.refs {
        if !now.refs.contains_key(name) {
            set_ref(repo, name, target)?;
        }
    }
    if before.stash != now.stash {
        restore_stash(repo, before)?;
    }
    if before.index.entries != now.index.entries {
        write_locked(&paths.index(), before.index.bytes.as_deref())?;
    }
    for ((name, was), path) in before.configs.iter().zip(paths.configs().map(|(_, p)| p)) {
        if now.configs.get(name) != Some(was) {
            write_locked(&path, was.as_deref())?;
        }
    }
    if before.hooks != now.hooks {
        restore_hooks(&paths.hooks(), before, now)?;
    }
    Ok(())
}

fn set_ref(repo: &Repository, name: &str, target: &RefTarget) -> Result<(), GuardError> {
    match target {
        RefTarget::Direct(oid) => repo.reference(name, *oid, true, REVERT_MESSAGE)?,
        RefTarget::Symbolic(to) => repo.reference_symbolic(name, to, true, REVERT_MESSAGE)?,
    };
    Ok(())
}

/// Writes the stash ref and its reflog (the stash's entries) exactly as
/// they were; the stashed commits are still in the object database.
fn restore_stash(repo: &Repository, before: &GitState) -> Result<(), GuardError> {
    let Some(top) = before.stash.first() else {
        if let Ok(mut reference) = repo.find_reference(STASH_REF) {
            reference.delete()?;
        }
        return Ok(());
    };
    repo.reference(STASH_REF, top.id, true, &top.message)?;
    let mut reflog = repo.reflog(STASH_REF)?;
    while !reflog.is_empty() {
        reflog.remove(0, false)?;
    }
    // The reflog lists the newest entry first; appending goes oldest first.
    for entry in before.stash.iter().rev() {
        let when = Time::new(entry.time, entry.offset_minutes);
        let committer = Signature::new(&entry.name, &entry.email, &when)?;
        reflog.append(entry.id, &committer, Some(&entry.message))?;
    }
    reflog.write()?;
    Ok(())
}

fn restore_hooks(dir: &Path, before: &GitState, now: &GitState) -> Result<(), GuardError> {
    for name in now.hooks.keys() {
        if !before.hooks.contains_key(name) {
            let path = dir.join(name);
            std::fs::remove_file(&path).map_err(|e| GuardError::io("remove", &path, e))?;
        }
    }
    for (name, hook) in &before.hooks {
        if now.hooks.get(name) == Some(hook) {
            continue;
        }
        let path = dir.join(name);
        if now.hooks.contains_key(name) {
            std::fs::remove_file(&path).map_err(|e| GuardError::io("remove", &path, e))?;
        }
        if hook.symlink {
            symlink(&String::from_utf8_lossy(&hook.content), &path)?;
        } else {
            std::fs::write(&path, &hook.content).map_err(|e| GuardError::io("write", &path, e))?;
            set_mode(&path, hook.mode)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &str, path: &Path) -> Result<(), GuardError> {
    std::os::unix::fs::symlink(target, path).map_err(|e| GuardError::io("create", path, e))
}

#[cfg(not(unix))]
fn symlink(_target: &str, path: &Path) -> Result<(), GuardError> {
    Err(GuardError::io(
        "create",
        path,
        std::io::Error::other("symlinks are not supported here"),
    ))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), GuardError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| GuardError::io("chmod", path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), GuardError> {
    Ok(())
}

/// Replaces `path` with `content` (removes it for `None`) the way git
/// does: write `PATH.lock`, created exclusively, then rename it over.
fn write_locked(path: &Path, content: Option<&[u8]>) -> Result<(), GuardError> {
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = std::path::PathBuf::from(lock_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)
        .map_err(|e| GuardError::io("lock", path, e))?;
    let result = match content {
        Some(bytes) => file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&lock, path)),
        None => std::fs::remove_file(path)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .and_then(|()| std::fs::remove_file(&lock)),
    };
    result.map_err(|e| {
        let _ = std::fs::remove_file(&lock);
        GuardError::io("write", path, e)
    })
}

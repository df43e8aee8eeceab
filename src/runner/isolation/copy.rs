//! `copy_ignored:`: the ignored paths a task names, copied from the user's
//! work tree into its isolated worktree before `setup:` runs, so a fresh
//! worktree has `node_modules/`, `.venv/` or `target/` without installing
//! them again.
//!
//! Only paths git ignores are candidates (tracked and untracked files are
//! in the worktree already). git lists an ignored directory once, as a
//! whole; a pattern matching it copies it recursively, and a pattern that
//! may match something inside it (`node_modules/*/dist`) walks into it.
//! Files are cloned with `FICLONE` where the file system shares extents
//! (btrfs, XFS), else copied; never hard-linked, since the agent's edits in
//! the worktree must not reach the user's files. Symlinks stay symlinks
//! and permissions are kept.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};

use crate::snapshot::SnapshotStore;

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CopyReport {
    /// Files and symlinks copied.
    pub(crate) files: u64,
    /// Bytes of the regular files copied.
    pub(crate) bytes: u64,
    /// Files cloned by reflink rather than copied.
    pub(crate) reflinked: u64,
    /// The patterns that matched no ignored path.
    pub(crate) unmatched: Vec<String>,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// The user's repository could not be opened.
    #[error(transparent)]
    Repository(#[from] crate::snapshot::SnapshotError),
    /// git could not list the ignored files.
    #[error("cannot list the ignored files of {path}: {source}")]
    List {
        /// The user's work tree.
        path: PathBuf,
        /// What git said.
        #[source]
        source: git2::Error,
    },
    /// A file could not be read or written.
    #[error(
        "cannot copy {path}: {source} (hint: check the permissions and the free space of the worktree directory)"
    )]
    Io {
        /// The path in the user's work tree.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// One `copy_ignored:` pattern, compiled.
struct Pattern {
    text: String,
    /// The pattern without a trailing `/` (a directory is matched by its
    /// path).
    matcher: GlobMatcher,
    /// Its `/`-separated components, to tell whether it may match inside a
    /// directory.
    components: Vec<String>,
    matched: bool,
}

/// Copies the ignored paths of `user`'s workspace matching `patterns`
/// (relative to the workspace; checked when the task file was loaded) into
/// `workspace`, the same workspace in the isolated worktree.
pub(crate) fn copy_ignored(
    user: &SnapshotStore,
    workspace: &Path,
    patterns: &[String],
) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    let mut compiled = Vec::with_capacity(patterns.len());
    for text in patterns {
        let trimmed = text.trim_end_matches('/');
        // Validated at load; a pattern that still does not compile matches
        // nothing, and is reported as such.
        let Ok(glob) = Glob::new(trimmed) else {
            report.unmatched.push(text.clone());
            continue;
        };
        compiled.push(Pattern {
            text: text.clone(),
            matcher: glob.compile_matcher(),
            components: trimmed
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_owned)
                .collect(),
            matched: false,
        });
    }
    let source_root = user.workspace();
    for relative in ignored_paths(user)? {
        copy_matching(
            &source_root,
            workspace,
            &relative,
            &mut compiled,
            &mut report,
        )?;
    }
    report
        .unmatched
        .extend(compiled.into_iter().filter(|p| !p.matched).map(|p| p.text));
    Ok(report)
}

/// The ignored paths of `user`'s workspace, relative to it, `/`-separated;
/// an ignored directory is one entry.
fn ignored_paths(user: &SnapshotStore) -> Result<Vec<String>, CopyError> {
    let list_error = |source| CopyError::List {
        path: user.workdir().to_owned(),
        source,
    };
    let repo = user.repo()?;
    let mut options = git2::StatusOptions::new();
    options
        .include_ignored(true)
        .recurse_ignored_dirs(false)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .exclude_submodules(true);
    let prefix = match user.workspace_relative() {
        "" => String::new(),
        rel => format!("{}/", rel.trim_end_matches('/')),
    };
    let statuses = repo.statuses(Some(&mut options)).map_err(list_error)?;
    let mut paths = Vec::new();
    for entry in statuses.iter() {
        if !entry.status().contains(git2::Status::IGNORED) {
            continue;
        }
        let Ok(path) = entry.path() else { continue };
        let Some(inside) = path.strip_prefix(&prefix) else {
            continue;
        };
        let inside = inside.trim_end_matches('/');
        // `.kkrun/` (the run directories) is ignored through
        // `.git/info/exclude`; it is never the worktree's.
        if inside.is_empty() || inside == ".kkrun" || inside.starts_with(".kkrun/") {
            continue;
        }
        paths.push(inside.to_owned());
    }
    Ok(paths)
}

/// Copies `relative` when a pattern matches it, or walks into it when it is
/// a directory a pattern may match inside.
fn copy_matching(
    from_root: &Path,
    to_root: &Path,
    relative: &str,
    patterns: &mut [Pattern],
    report: &mut CopyReport,
) -> Result<(), CopyError> {
    let mut hit = false;
    for pattern in patterns.iter_mut() {
        if pattern.matcher.is_match(relative) {
            pattern.matched = true;
            hit = true;
        }
    }
    let source = from_root.join(relative);
    if hit {
        return copy_path(&source, &to_root.join(relative), report);
    }
    let io_error = |e| CopyError::Io {
        path: source.clone(),
        source: e,
    };
    let metadata = fs::symlink_metadata(&source).map_err(io_error)?;
    let components: Vec<&str> = relative.split('/').collect();
    if !metadata.is_dir()
        || !patterns
            .iter()
            .any(|p| may_match_inside(&p.components, &components))
    {
        return Ok(());
    }
    let mut children: Vec<String> = Vec::new();
    for child in fs::read_dir(&source).map_err(io_error)? {
        let child = child.map_err(io_error)?;
        if let Some(name) = child.file_name().to_str() {
            children.push(format!("{relative}/{name}"));
        }
    }
    children.sort();
    for child in children {
        copy_matching(from_root, to_root, &child, patterns, report)?;
    }
    Ok(())
}

/// Whether `pattern` (its components) may match a path inside the
/// directory `dir` (its components).
fn may_match_inside(pattern: &[String], dir: &[&str]) -> bool {
    for (index, name) in dir.iter().enumerate() {
        let Some(part) = pattern.get(index) else {
            return false;
        };
        if part.contains("**") {
            return true;
        }
        let matches = if part.contains(['*', '?', '[', '{']) {
            Glob::new(part).is_ok_and(|g| g.compile_matcher().is_match(name))
        } else {
            part == name
        };
        if !matches {
            return false;
        }
    }
    pattern.len() > dir.len()
}

/// Copies the file, symlink or directory (recursively) at `from` to `to`,
/// replacing a file already there and merging into a directory already
/// there.
fn copy_path(from: &Path, to: &Path, report: &mut CopyReport) -> Result<(), CopyError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| CopyError::Io { path, source }
    };
    let metadata = fs::symlink_metadata(from).map_err(io_error(from))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_error(from))?;
    }
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        match fs::symlink_metadata(to) {
            Ok(existing) if existing.is_dir() => {}
            Ok(_) => {
                fs::remove_file(to).map_err(io_error(from))?;
                fs::create_dir(to).map_err(io_error(from))?;
            }
            Err(_) => fs::create_dir(to).map_err(io_error(from))?,
        }
        let mut children: Vec<_> = fs::read_dir(from)
            .map_err(io_error(from))?
            .collect::<Result<_, _>>()
            .map_err(io_error(from))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            copy_path(&child.path(), &to.join(child.file_name()), report)?;
        }
        // Last, so a read-only directory is still filled first.
        fs::set_permissions(to, metadata.permissions()).map_err(io_error(from))?;
        return Ok(());
    }
    remove_existing(to).map_err(io_error(from))?;
    if file_type.is_symlink() {
        let target = fs::read_link(from).map_err(io_error(from))?;
        make_symlink(&target, to).map_err(io_error(from))?;
    } else if file_type.is_file() {
        if clone_file(from, to, &metadata).map_err(io_error(from))? {
            report.reflinked += 1;
        }
        report.bytes += metadata.len();
    } else {
        // Sockets, FIFOs and devices are no build output worth copying.
        return Ok(());
    }
    report.files += 1;
    Ok(())
}

fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn make_symlink(target: &Path, link: &Path) -> io::Result<()> {
    // Without unix symlinks, the target's content is the best copy.
    fs::copy(link.parent().unwrap_or(Path::new(".")).join(target), link).map(|_| ())
}

/// Copies the regular file `from` to the new path `to` with its
/// permissions: a reflink where the file system can (returns true), else
/// a plain copy.
fn clone_file(from: &Path, to: &Path, metadata: &fs::Metadata) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        let source = fs::File::open(from)?;
        let target = fs::File::create(to)?;
        if rustix::fs::ioctl_ficlone(&target, &source).is_ok() {
            drop(target);
            fs::set_permissions(to, metadata.permissions())?;
            return Ok(true);
        }
        drop(target);
        fs::remove_file(to)?;
    }
    fs::copy(from, to)?;
    fs::set_permissions(to, metadata.permissions())?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::may_match_inside;

    fn parts(pattern: &str) -> Vec<String> {
        pattern.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn a_pattern_walks_only_into_directories_it_may_match_inside() {
        assert!(may_match_inside(
            &parts("node_modules/*/dist"),
            &["node_modules"]
        ));
        assert!(may_match_inside(&parts("**/dist"), &["target"]));
        assert!(may_match_inside(&parts("pkg/*/build"), &["pkg", "a"]));
        assert!(!may_match_inside(&parts("node_modules/**"), &["target"]));
        assert!(!may_match_inside(&parts("target"), &["target"]));
        assert!(!may_match_inside(&parts("a/b"), &["a", "b"]));
    }
}

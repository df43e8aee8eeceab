//! Confinement: every path a tool touches is resolved against the workspace,
//! and anything that would leave it (or reach into `.git/` or `.kkrun/`) is
//! refused with a message the model can act on.

use std::path::{Component, Path, PathBuf};

use super::ToolError;

/// A path the model gave, resolved inside the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfinedPath {
    /// Absolute path with every existing symlink resolved.
    pub(crate) absolute: PathBuf,
    /// The same path relative to the workspace root, for messages
    /// (`.` for the root itself).
    pub(crate) display: String,
}

/// Resolves `raw` (relative to `workspace`, or absolute inside it).
///
/// `workspace` must be canonical. Refuses paths that leave the workspace
/// lexically (`..`), absolute paths elsewhere, paths whose existing part
/// resolves through a symlink to outside the workspace, dangling symlinks
/// (writing through one could land anywhere), and anything inside a `.git`
/// or `.kkrun` directory.
pub(crate) fn confine(workspace: &Path, raw: &str) -> Result<ConfinedPath, ToolError> {
    if raw.trim().is_empty() {
        return Err(ToolError::Failed(
            "the path is empty; give a path relative to the workspace root, such as `src/main.rs` or `.`"
                .to_string(),
        ));
    }
    let given = Path::new(raw);
    let relative = if given.is_absolute() {
        given.strip_prefix(workspace).map_err(|_| {
            ToolError::Refused(format!(
                "`{raw}` is outside the workspace; use a path relative to the workspace root ({})",
                workspace.display()
            ))
        })?
    } else {
        given
    };

    let mut normal = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(ToolError::Refused(format!(
                        "`{raw}` leaves the workspace (`..` goes above its root); only files inside the workspace can be used"
                    )));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ToolError::Refused(format!(
                    "`{raw}` is outside the workspace; use a path relative to the workspace root"
                )));
            }
        }
    }
    refuse_private_dir(raw, &normal)?;

    // Resolve symlinks in the part of the path that exists. lstat, not
    // stat, decides what exists, so a dangling symlink counts as existing
    // and is then refused below instead of being written through.
    let mut existing = workspace.join(&normal);
    let mut missing: Vec<std::ffi::OsString> = Vec::new();
    while existing.symlink_metadata().is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) if existing != workspace => {
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let resolved = existing.canonicalize().map_err(|_| {
        ToolError::Refused(format!(
            "`{raw}` goes through a symlink whose target does not exist; use the real path of the file"
        ))
    })?;
    let inside = resolved.strip_prefix(workspace).map_err(|_| {
        ToolError::Refused(format!(
            "`{raw}` resolves through a symlink to `{}`, outside the workspace; only files inside the workspace can be used",
            resolved.display()
        ))
    })?;
    let mut final_relative = inside.to_path_buf();
    for name in missing.iter().rev() {
        final_relative.push(name);
    }
    refuse_private_dir(raw, &final_relative)?;

    let display = if final_relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        final_relative.to_string_lossy().into_owned()
    };
    Ok(ConfinedPath {
        absolute: workspace.join(&final_relative),
        display,
    })
}

/// Directory names no tool may touch: the repository's metadata, and
/// kkrun's own run store (earlier runs' transcripts and reports).
const PRIVATE_DIRS: &[&str] = &[".git", ".kkrun"];

/// True for a directory name that is off limits to every tool.
pub(crate) fn is_private_dir(name: &str) -> bool {
    PRIVATE_DIRS.contains(&name)
}

fn refuse_private_dir(raw: &str, relative: &Path) -> Result<(), ToolError> {
    let private = relative
        .components()
        .find_map(|c| c.as_os_str().to_str().filter(|name| is_private_dir(name)));
    match private {
        Some(".git") => Err(ToolError::Refused(format!(
            "`{raw}` is inside `.git/`; the repository's metadata is off limits (kkrun records the work itself)"
        ))),
        Some(name) => Err(ToolError::Refused(format!(
            "`{raw}` is inside `{name}/`; kkrun's run records are off limits to the agent"
        ))),
        None => Ok(()),
    }
}

/// The workspace-relative display form of an absolute path found while
/// walking the workspace.
pub(crate) fn display_relative(workspace: &Path, path: &Path) -> String {
    path.strip_prefix(workspace)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

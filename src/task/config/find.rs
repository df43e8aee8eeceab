//! Where configuration files are: `kkrun.yaml` from a task file's directory
//! up to the root of its git work tree, then the user's file.

use std::path::{Path, PathBuf};

/// The repository's configuration file name.
pub const CONFIG_FILE_NAME: &str = "kkrun.yaml";
/// The user's configuration file, below `$XDG_CONFIG_HOME` (or
/// `~/.config` when that is unset).
pub const USER_CONFIG_PATH: &str = "kkrun/config.yaml";

/// Every `kkrun.yaml` from the directory of `task_file` up to the root of
/// the git work tree holding it, nearest first. Outside a work tree only
/// the task file's own directory is looked at, so a stray file higher up
/// (a home directory's) never applies by accident.
pub(super) fn repository_config_files(task_file: &Path) -> Vec<PathBuf> {
    let dir = super::super::resolve::base_dir(task_file);
    let Ok(start) = dir.canonicalize() else {
        return Vec::new();
    };
    let root = git2::Repository::discover(&start)
        .ok()
        .and_then(|repo| repo.workdir().and_then(|w| w.canonicalize().ok()));
    let mut files = Vec::new();
    let mut current = Some(start.as_path());
    while let Some(dir) = current {
        let candidate = dir.join(CONFIG_FILE_NAME);
        if candidate.is_file() {
            files.push(candidate);
        }
        match &root {
            Some(root) if dir != root => current = dir.parent(),
            _ => current = None,
        }
    }
    files
}

/// The user's configuration file, when it exists.
pub(super) fn user_config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    let path = base.join(USER_CONFIG_PATH);
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_up_to_the_work_tree_root_nearest_first() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join(CONFIG_FILE_NAME), "version: 1\n").unwrap();
        let repo = outer.path().join("repo");
        let tasks = repo.join("ci/tasks");
        std::fs::create_dir_all(&tasks).unwrap();
        git2::Repository::init(&repo).unwrap();
        std::fs::write(repo.join(CONFIG_FILE_NAME), "version: 1\n").unwrap();
        std::fs::write(tasks.join(CONFIG_FILE_NAME), "version: 1\n").unwrap();
        let found = repository_config_files(&tasks.join("fix.yaml"));
        let repo = repo.canonicalize().unwrap();
        assert_eq!(
            found,
            vec![
                repo.join("ci/tasks").join(CONFIG_FILE_NAME),
                repo.join(CONFIG_FILE_NAME)
            ]
        );
    }
}

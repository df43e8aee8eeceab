//! A throw-away layout for task-file tests: a git repository holding a copy
//! of `tests/fixtures/tasks/` under `tasks/`, next to a plain directory
//! (`outside/`) and a bare repository (`bare.git`), so the workspace checks
//! behave the same wherever the tests run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The temporary layout; removed when dropped.
pub struct Layout {
    /// Keeps the directory alive.
    pub root: TempDir,
    /// The git repository holding `tasks/`.
    pub repo: PathBuf,
}

impl Layout {
    /// A path inside the repository.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.repo.join(relative)
    }

    /// Writes `text` to `relative` inside the repository.
    pub fn write(&self, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The argument that names `relative` for `load_tasks`.
    pub fn arg(&self, relative: &str) -> String {
        self.path(relative).to_string_lossy().into_owned()
    }
}

/// Builds the layout.
pub fn layout() -> Layout {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("repo");
    git2::Repository::init(&repo).unwrap();
    copy_dir(&fixtures(), &repo.join("tasks"));
    std::fs::create_dir_all(root.path().join("outside")).unwrap();
    git2::Repository::init_bare(root.path().join("bare.git")).unwrap();
    Layout { root, repo }
}

/// `tests/fixtures/tasks` of this crate.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tasks")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

//! Helpers shared by the snapshot tests: real repositories in temp dirs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{IndexAddOption, Oid, Repository, Signature};

/// A git repository in a temporary directory.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

impl TestRepo {
    /// A fresh repository with an unborn `main`.
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = Repository::init_opts(dir.path(), &opts).unwrap();
        TestRepo { dir, repo }
    }

    /// A repository with `files` committed on `main`.
    pub fn with_commit(files: &[(&str, &str)]) -> TestRepo {
        let repo = TestRepo::new();
        for (path, content) in files {
            repo.write(path, content);
        }
        repo.commit_all("initial");
        repo
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    pub fn set_executable(&self, rel: &str, executable: bool) {
        let path = self.path(rel);
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// `git add -A && git commit` through git2, on the real index.
    pub fn commit_all(&self, message: &str) -> Oid {
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("Test", "test@example.com").unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<_> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    /// Runs the git CLI in the repository and returns stdout; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.root(), args)
    }

    /// Raw bytes of everything a snapshot must never change.
    pub fn protected_state(&self) -> BTreeMap<String, Vec<u8>> {
        protected_state(self.repo.path())
    }

    /// Every file of the work tree outside `.git`.
    pub fn files(&self) -> BTreeMap<String, Entry> {
        worktree_files(self.root())
    }
}

/// Runs the git CLI in `dir` with no global or system config.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?} failed in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The index, HEAD, every branch, packed refs and the stash (ref and reflog),
/// as raw bytes keyed by their path inside the git directory.
pub fn protected_state(git_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut state = BTreeMap::new();
    for name in [
        "index",
        "HEAD",
        "packed-refs",
        "refs/stash",
        "logs/refs/stash",
        "logs/HEAD",
    ] {
        if let Ok(bytes) = std::fs::read(git_dir.join(name)) {
            state.insert(name.to_owned(), bytes);
        }
    }
    for dir in ["refs/heads", "refs/tags", "logs/refs/heads"] {
        collect(&git_dir.join(dir), dir, &mut state);
    }
    state
}

fn collect(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            collect(&entry.path(), &name, out);
        } else {
            out.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
}

/// A work tree entry: content and executable bit, or a symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File { content: Vec<u8>, executable: bool },
    Symlink(PathBuf),
}

/// Every file and symlink under `root`, skipping `.git`.
pub fn worktree_files(root: &Path) -> BTreeMap<String, Entry> {
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel == ".git" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            out.insert(rel, Entry::Symlink(std::fs::read_link(&path).unwrap()));
        } else if meta.is_dir() {
            walk(root, &path, out);
        } else {
            out.insert(
                rel,
                Entry::File {
                    content: std::fs::read(&path).unwrap(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            );
        }
    }
}

/// The paths in a commit's tree, recursively, with their modes.
pub fn tree_paths(repo: &Repository, commit: &str) -> BTreeMap<String, i32> {
    let commit = repo.find_commit(Oid::from_str(commit).unwrap()).unwrap();
    let tree = commit.tree().unwrap();
    let mut paths = BTreeMap::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(git2::ObjectType::Tree) {
            paths.insert(format!("{dir}{}", entry.name().unwrap()), entry.filemode());
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    paths
}

/// The content of `path` in a commit's tree.
pub fn blob_at(repo: &Repository, commit: &str, path: &str) -> Vec<u8> {
    let commit = repo.find_commit(Oid::from_str(commit).unwrap()).unwrap();
    let entry = commit.tree().unwrap().get_path(Path::new(path)).unwrap();
    repo.find_blob(entry.id()).unwrap().content().to_vec()
}

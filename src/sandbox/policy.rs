//! What a sandboxed command may write and whether it has the network.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Tool caches checks may write to, as `$VARIABLE` or `~/path` entries;
/// the first that names an existing directory of each line is used. Test
/// suites download and build into these, so a check that could not write
/// them would fail for reasons that have nothing to do with the task.
pub const CHECK_CACHES: &[&[&str]] = &[
    &["~/.cache"],
    &["$CARGO_HOME", "~/.cargo"],
    &["$RUSTUP_HOME", "~/.rustup"],
    &["~/.npm"],
    &["~/.yarn"],
    &["~/.pnpm-store"],
    &["~/.m2"],
    &["~/.gradle"],
    &["$GOPATH", "~/go"],
    &["$GOCACHE"],
    &["~/.nuget"],
    &["~/.local/share/virtualenvs"],
];

/// Device files every command may write: discarding output, reading
/// randomness and a terminal are not escapes.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/pts",
    "/dev/ptmx",
    "/dev/shm",
];

/// Directories inside the workspace that stay read-only under the sandbox:
/// the repository's metadata and kkrun's run records.
const READ_ONLY_IN_WORKSPACE: &[&str] = &[".git", ".kkrun"];

/// The rule one command runs under. Reads are never restricted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPolicy {
    /// Directories (and files) the command may write beneath. Paths that
    /// do not exist are left out.
    pub writable: Vec<PathBuf>,
    /// Paths inside `writable` that stay read-only.
    pub read_only: Vec<PathBuf>,
    /// Whether the command keeps the network.
    pub network: bool,
}

impl SandboxPolicy {
    /// The rule of the agent's commands: the workspace (less `.git/` and
    /// `.kkrun/`), the temporary directory and `extra` (the task's
    /// `tools.shell.writable`, resolved with [`resolve_writable`]).
    pub fn for_commands(workspace: &Path, extra: &[PathBuf], network: bool) -> SandboxPolicy {
        let mut writable = vec![workspace.to_path_buf(), std::env::temp_dir()];
        writable.extend(DEVICES.iter().map(PathBuf::from));
        writable.extend(extra.iter().cloned());
        // A path the task declares writable itself (`writable: [".git"]`)
        // is the owner's explicit choice and is not made read-only; the
        // git-state guard still reverts what the agent changes there.
        let read_only = READ_ONLY_IN_WORKSPACE
            .iter()
            .map(|name| workspace.join(name))
            .filter(|path| path.symlink_metadata().is_ok())
            .filter(|path| !extra.iter().any(|granted| granted == path))
            .collect();
        SandboxPolicy {
            writable: existing(writable),
            read_only,
            network,
        }
    }

    /// The rule of checks: that of the agent's commands plus the tool
    /// caches of [`CHECK_CACHES`] found in `env` (the check's environment).
    pub fn for_checks(
        workspace: &Path,
        extra: &[PathBuf],
        network: bool,
        env: &std::collections::BTreeMap<String, String>,
    ) -> SandboxPolicy {
        let mut policy = SandboxPolicy::for_commands(workspace, extra, network);
        for line in CHECK_CACHES {
            let found = line
                .iter()
                .filter_map(|entry| expand(entry, env))
                .find(|path| path.is_dir());
            if let Some(path) = found
                && !policy.writable.contains(&path)
            {
                policy.writable.push(path);
            }
        }
        policy
    }
}

/// How a task's commands and checks are sandboxed: the task file's
/// `tools.shell` settings and `--require-sandbox`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// `tools.shell.writable`, as written.
    pub writable: Vec<String>,
    /// `tools.shell.network`: whether the agent's commands keep the
    /// network.
    pub network: bool,
    /// `--require-sandbox`: a command whose sandbox cannot be fully
    /// enforced does not run.
    pub strict: bool,
    /// The `TMPDIR` the task's `env` sets (absolute): its commands and
    /// checks create their temporary files there, so it is writable like
    /// kkrun's own temporary directory.
    pub temp_dir: Option<PathBuf>,
}

impl SandboxOptions {
    /// The options of a task's `tools.shell` settings and its `env`, not
    /// strict.
    pub fn from_task(
        shell: &crate::task::ShellPolicy,
        env: &std::collections::BTreeMap<String, String>,
    ) -> SandboxOptions {
        SandboxOptions {
            writable: shell.writable.clone(),
            network: shell.network,
            strict: false,
            temp_dir: env
                .get("TMPDIR")
                .map(PathBuf::from)
                .filter(|dir| dir.is_absolute()),
        }
    }

    fn extra(&self, workspace: &Path) -> Vec<PathBuf> {
        self.writable
            .iter()
            .map(|entry| resolve_writable(workspace, entry))
            .chain(self.temp_dir.clone())
            .collect()
    }

    /// The policy of the agent's commands in `workspace`.
    pub fn commands(&self, workspace: &Path) -> SandboxPolicy {
        SandboxPolicy::for_commands(workspace, &self.extra(workspace), self.network)
    }

    /// The policy of a check in `workspace` with the environment `env`.
    pub fn check(
        &self,
        workspace: &Path,
        network: bool,
        env: &std::collections::BTreeMap<String, String>,
    ) -> SandboxPolicy {
        SandboxPolicy::for_checks(workspace, &self.extra(workspace), network, env)
    }
}

/// Resolves one `tools.shell.writable` entry: `~/…` is under `$HOME`, a
/// relative path is relative to the workspace.
pub fn resolve_writable(workspace: &Path, entry: &str) -> PathBuf {
    if let Some(rest) = entry.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if entry == "~"
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home);
    }
    workspace.join(entry)
}

fn expand(entry: &str, env: &std::collections::BTreeMap<String, String>) -> Option<PathBuf> {
    let home = || env.get("HOME").filter(|home| !home.is_empty());
    if let Some(name) = entry.strip_prefix('$') {
        return env
            .get(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
    }
    if let Some(rest) = entry.strip_prefix("~/") {
        return home().map(|home| Path::new(home).join(rest));
    }
    Some(PathBuf::from(entry))
}

fn existing(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.exists() && !kept.contains(&path) {
            kept.push(path);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn commands_write_the_workspace_and_temp_but_not_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let policy = SandboxPolicy::for_commands(dir.path(), &[], false);
        assert!(policy.writable.contains(&dir.path().to_path_buf()));
        assert!(policy.writable.contains(&std::env::temp_dir()));
        assert_eq!(policy.read_only, vec![dir.path().join(".git")]);
        assert!(!policy.network);
    }

    #[test]
    fn checks_add_the_caches_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".cache")).unwrap();
        std::fs::create_dir_all(home.join(".m2")).unwrap();
        let cargo = dir.path().join("cargo-home");
        std::fs::create_dir_all(&cargo).unwrap();
        let env: BTreeMap<String, String> = [
            ("HOME", home.to_str().unwrap()),
            ("CARGO_HOME", cargo.to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let policy = SandboxPolicy::for_checks(dir.path(), &[], true, &env);
        for path in [home.join(".cache"), home.join(".m2"), cargo] {
            assert!(policy.writable.contains(&path), "{path:?} in {policy:?}");
        }
        assert!(!policy.writable.contains(&home.join(".npm")));
    }

    #[test]
    fn writable_entries_resolve_against_home_and_workspace() {
        let workspace = Path::new("/repo");
        assert_eq!(resolve_writable(workspace, "out"), Path::new("/repo/out"));
        assert_eq!(resolve_writable(workspace, "/var/x"), Path::new("/var/x"));
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(
                resolve_writable(workspace, "~/.cargo"),
                Path::new(&home).join(".cargo")
            );
        }
    }
}

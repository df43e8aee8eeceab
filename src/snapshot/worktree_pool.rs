//! Isolated worktrees (`--isolate`): each task runs in its own linked git
//! worktree outside the user's work tree, checked out detached at HEAD with
//! the user's uncommitted state laid on top.
//!
//! The worktree is written with git2 alone, the way `git worktree add
//! --detach` lays it out (libgit2's own `worktree add` always creates a
//! branch, and branches are never touched): an admin directory
//! `<common>/worktrees/<name>/` holding `HEAD`, `commondir` and `gitdir`,
//! and a `.git` file in the worktree pointing back at it. Refs are shared,
//! so snapshot refs land in the user's repository as in a normal run. While
//! a run uses it the worktree is locked with a reason naming the run and its
//! process id; a worktree whose process is gone is stale, and the next run
//! or `kkrun gc` removes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{Index, Oid, Repository, build::CheckoutBuilder};

use super::owner::{Owner, pid_taken};
use super::store::head_oid;
use super::{SnapshotError, SnapshotStore, names};

/// Every worktree kkrun creates has a name starting with this.
const NAME_PREFIX: &str = "kkrun-";

/// The lock reason's start; the process id follows it in parentheses.
const LOCK_PREFIX: &str = "kkrun run ";

/// Admin directories being written or removed are named with this first:
/// no listing takes them for worktrees (see [`scratch_dir`]).
const SCRATCH_PREFIX: &str = ".kkrun-scratch-";

/// Where a run's isolated worktrees go, and whether they stay afterwards.
#[derive(Debug, Clone)]
pub struct WorktreePool {
    /// The directory holding one worktree per task.
    root: PathBuf,
    /// The run the worktrees belong to (part of their names).
    run_id: String,
    /// `--keep-worktrees`: leave them (unlocked) after their task.
    keep: bool,
    /// What the worktrees of each user work tree (by git directory) start
    /// from: taken by the first worktree created in it and kept for the
    /// run, so every task starts from the same base — the instances of a
    /// model matrix above all — even if the user edits meanwhile, and the
    /// user's tree is scanned once, not once per task.
    bases: Arc<Mutex<BTreeMap<PathBuf, Start>>>,
}

/// One task's worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolatedWorktree {
    /// The worktree's name in the repository (`.git/worktrees/<name>`).
    pub name: String,
    /// The root of the worktree.
    pub root: PathBuf,
    /// The task's workspace mapped into the worktree: the same
    /// subdirectory of it as of the user's work tree.
    pub workspace: PathBuf,
    /// The user's repository (its git directory), where the worktree is
    /// registered.
    common_dir: PathBuf,
}

impl WorktreePool {
    /// A pool under `root` (created when missing) for run `run_id`.
    pub fn new(root: PathBuf, run_id: &str, keep: bool) -> WorktreePool {
        WorktreePool {
            root,
            run_id: run_id.to_owned(),
            keep,
            bases: Arc::default(),
        }
    }

    /// Whether worktrees stay after their task (`--keep-worktrees`).
    pub fn keeps(&self) -> bool {
        self.keep
    }

    /// Creates the worktree of `task` for the workspace of `user` (the
    /// store opened on the user's work tree), detached at HEAD, with the
    /// user's work tree state on top of it and the user's staged state as
    /// its index, so `git status` and `git diff` show the same in both.
    /// That state is the one the pool's first worktree of `user`'s work
    /// tree found.
    ///
    /// Only objects are written to the user's repository (the trees of its
    /// current state) and the worktree's registration; its work tree,
    /// HEAD, index, branches and stash are never touched.
    pub fn create(
        &self,
        user: &SnapshotStore,
        task: &str,
    ) -> Result<IsolatedWorktree, SnapshotError> {
        names::validate("task name", task)?;
        let repo = user.repo()?;
        // Held while the first worktree's base is taken, so that tasks
        // starting at once scan the user's tree once, not each.
        let mut bases = self.bases.lock().unwrap_or_else(|e| e.into_inner());
        let start = match bases.get(user.git_dir()) {
            Some(start) => *start,
            None => {
                let start = user_start(user, &repo)?;
                bases.insert(user.git_dir().to_owned(), start);
                start
            }
        };
        drop(bases);
        self.build(user, task, repo, &start)
    }

    /// Creates the worktree of `task` to continue it (`kkrun resume`):
    /// detached at the commit its `00-base` snapshot (commit `base`) was
    /// taken on, with the tree of its snapshot `last` as the work tree and
    /// that commit's tree as the index. The user's work tree as it is now
    /// plays no part: the task goes on from where it was cut short.
    pub fn create_at(
        &self,
        user: &SnapshotStore,
        task: &str,
        base: &str,
        last: &str,
    ) -> Result<IsolatedWorktree, SnapshotError> {
        names::validate("task name", task)?;
        let repo = user.repo()?;
        let oid = |id: &str| {
            Oid::from_str(id).map_err(|e| SnapshotError::git(format!("read snapshot id {id}"), e))
        };
        let head = repo
            .find_commit(oid(base)?)
            .and_then(|commit| commit.parent_id(0))
            .map_err(|e| {
                SnapshotError::git("find the commit the task's 00-base was taken on", e)
            })?;
        let head_tree = commit_tree(&repo, head, "read the tree of the task's base commit")?;
        let state = commit_tree(
            &repo,
            oid(last)?,
            "read the tree of the task's last snapshot",
        )?;
        let start = Start {
            head,
            head_tree,
            state,
            staged: head_tree,
        };
        self.build(user, task, repo, &start)
    }

    /// Registers the worktree of `task` in `repo` (the user's, closed
    /// before the worktree is written) and lays it out as `start` says.
    fn build(
        &self,
        user: &SnapshotStore,
        task: &str,
        repo: Repository,
        start: &Start,
    ) -> Result<IsolatedWorktree, SnapshotError> {
        let common_dir = repo.commondir().to_owned();
        drop(repo);
        let common_dir = common_dir.as_path();
        std::fs::create_dir_all(&self.root)
            .map_err(|e| SnapshotError::io("create", self.root.clone(), e))?;
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| SnapshotError::io("resolve", self.root.clone(), e))?;
        let name = format!("{NAME_PREFIX}{}-{task}", self.run_id);
        let path = root.join(&name);
        let worktree = IsolatedWorktree {
            name: name.clone(),
            workspace: path.join(user.workspace_relative()),
            root: path.clone(),
            common_dir: common_dir.to_owned(),
        };
        register(common_dir, &name, &path, start.head, &self.run_id)?;
        // From here on a failure leaves a registered worktree: remove it
        // rather than leave it for the next run to find stale.
        let laid = lay_out(&path, start.head_tree, start.state, start.staged);
        if let Err(e) = laid {
            let _ = remove(&worktree);
            return Err(e);
        }
        Ok(worktree)
    }

    /// Ends the task's use of `worktree`: removes and prunes it, or with
    /// `--keep-worktrees` only unlocks it (then `git worktree remove`
    /// removes it, and kkrun never does).
    pub fn release(&self, worktree: &IsolatedWorktree) -> Result<(), SnapshotError> {
        if self.keep {
            let lock = worktree
                .common_dir
                .join("worktrees")
                .join(&worktree.name)
                .join("locked");
            return match std::fs::remove_file(&lock) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(SnapshotError::io("unlock", lock, e))
                }
                _ => Ok(()),
            };
        }
        remove(worktree)
    }
}

impl WorktreePool {
    /// Removes what an earlier attempt of this run left under the name of
    /// `task`'s worktree — a worktree kept or interrupted, or one whose
    /// registration a kill cut short (then it is neither stale nor kept,
    /// and nothing else would ever remove it) — and returns its directory
    /// when there was something. Only for `kkrun resume`, which holds the
    /// run's lock, continuing a task that did not finish: its work is in
    /// its snapshots.
    pub fn remove_leftover(
        &self,
        user: &SnapshotStore,
        task: &str,
    ) -> Result<Option<PathBuf>, SnapshotError> {
        names::validate("task name", task)?;
        let common_dir = user.repo()?.commondir().to_owned();
        let name = format!("{NAME_PREFIX}{}-{task}", self.run_id);
        let admin = common_dir.join("worktrees").join(&name);
        // The directory as registered (only one of this name: nothing else
        // is ever removed), else where this pool would put it.
        let root = std::fs::read_to_string(admin.join("gitdir"))
            .ok()
            .and_then(|gitdir| Path::new(gitdir.trim()).parent().map(Path::to_path_buf))
            .filter(|root| root.file_name() == Some(std::ffi::OsStr::new(&name)))
            .unwrap_or_else(|| self.root.join(&name));
        if !admin.exists() && !root.exists() {
            return Ok(None);
        }
        remove_registered(&common_dir, &name, &root)?;
        Ok(Some(root))
    }

    /// Removes `worktree` whatever `--keep-worktrees` says: for a worktree
    /// that never became ready for its task.
    pub fn release_discarding(&self, worktree: &IsolatedWorktree) -> Result<(), SnapshotError> {
        remove(worktree)
    }
}

/// The user's work tree as a worktree's start: HEAD, its tree, the work
/// tree's state and what is staged.
fn user_start(user: &SnapshotStore, repo: &Repository) -> Result<Start, SnapshotError> {
    let Some(head) = head_oid(repo)? else {
        return Err(SnapshotError::UnbornHead {
            path: user.workdir().to_owned(),
        });
    };
    let head_tree = commit_tree(repo, head, "read HEAD's tree")?;
    Ok(Start {
        head,
        head_tree,
        state: user.worktree_state(repo)?.tree,
        staged: staged_tree(repo).unwrap_or(head_tree),
    })
}

/// What a new worktree holds: the commit it is detached at and that
/// commit's tree, the tree of its work tree and the tree of its index.
#[derive(Debug, Clone, Copy)]
struct Start {
    head: Oid,
    head_tree: Oid,
    state: Oid,
    staged: Oid,
}

/// The tree of commit `commit`.
fn commit_tree(repo: &Repository, commit: Oid, action: &str) -> Result<Oid, SnapshotError> {
    repo.find_commit(commit)
        .map(|commit| commit.tree_id())
        .map_err(|e| SnapshotError::git(action, e))
}

/// The tree of the user's index (what is staged), when it can be written
/// (an index with conflicts cannot); only objects are written.
fn staged_tree(repo: &Repository) -> Option<Oid> {
    let path = repo.path().join("index");
    if !path.exists() {
        return None;
    }
    let mut index = Index::open(&path).ok()?;
    index.write_tree_to(repo).ok()
}

/// Writes the admin directory and the `.git` file of a new worktree at
/// `path`, detached at `head` and locked for this process.
fn register(
    common_dir: &Path,
    name: &str,
    path: &Path,
    head: Oid,
    run_id: &str,
) -> Result<(), SnapshotError> {
    let admin = common_dir.join("worktrees").join(name);
    if admin.exists() || path.exists() {
        return Err(SnapshotError::io(
            "create the isolated worktree",
            path.to_owned(),
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists"),
        ));
    }
    let write = |file: PathBuf, text: String| {
        std::fs::write(&file, text).map_err(|e| SnapshotError::io("write", file, e))
    };
    std::fs::create_dir_all(path).map_err(|e| SnapshotError::io("create", path.to_owned(), e))?;
    // The admin directory is written whole under a name no listing takes
    // for a worktree, then renamed into place: a kill never leaves a
    // half-written registration that looks neither stale nor kept.
    let staging = scratch_dir(common_dir, name);
    std::fs::create_dir_all(&staging)
        .map_err(|e| SnapshotError::io("create", staging.clone(), e))?;
    write(
        staging.join("locked"),
        Owner::current().reason(LOCK_PREFIX, run_id),
    )?;
    write(staging.join("commondir"), "../..\n".to_owned())?;
    write(
        staging.join("gitdir"),
        format!("{}\n", path.join(".git").display()),
    )?;
    write(staging.join("HEAD"), format!("{head}\n"))?;
    write(path.join(".git"), format!("gitdir: {}\n", admin.display()))?;
    std::fs::rename(&staging, &admin).map_err(|e| SnapshotError::io("register", admin, e))
}

/// Where this process writes or removes the admin directory of worktree
/// `name` out of sight: `<common>/worktrees/.kkrun-scratch-<pid>-<name>`.
fn scratch_dir(common_dir: &Path, name: &str) -> PathBuf {
    common_dir
        .join("worktrees")
        .join(format!("{SCRATCH_PREFIX}{}-{name}", std::process::id()))
}

/// Removes the scratch directories of processes that are gone.
fn remove_dead_scratch(common_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(common_dir.join("worktrees")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse().ok());
        if let Some(pid) = pid
            && !pid_taken(pid)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Checks HEAD out into the fresh worktree at `path`, then turns its files
/// into `state` and its index into `staged`.
fn lay_out(path: &Path, head_tree: Oid, state: Oid, staged: Oid) -> Result<(), SnapshotError> {
    let repo = Repository::open(path).map_err(|source| SnapshotError::NotARepository {
        path: path.to_owned(),
        source,
    })?;
    repo.checkout_head(Some(CheckoutBuilder::new().force()))
        .map_err(|e| SnapshotError::git("check out HEAD in the isolated worktree", e))?;
    if state != head_tree {
        let store = SnapshotStore::open(path)?;
        let find = |oid| {
            repo.find_tree(oid)
                .map_err(|e| SnapshotError::git("read the work tree's state", e))
        };
        store.write_tree_onto_workdir(
            &repo,
            &find(head_tree)?,
            &find(state)?,
            "the run's starting state",
        )?;
    }
    if staged != head_tree {
        let tree = repo
            .find_tree(staged)
            .map_err(|e| SnapshotError::git("read the staged state", e))?;
        let mut index = repo
            .index()
            .map_err(|e| SnapshotError::git("open the isolated worktree's index", e))?;
        index
            .read_tree(&tree)
            .and_then(|()| index.write())
            .map_err(|e| SnapshotError::git("write the isolated worktree's index", e))?;
    }
    Ok(())
}

/// Removes the worktree's files and its registration.
fn remove(worktree: &IsolatedWorktree) -> Result<(), SnapshotError> {
    remove_registered(&worktree.common_dir, &worktree.name, &worktree.root)
}

/// Removes worktree `name` of the repository `common_dir`, at `root`, in
/// an order a kill cannot spoil: its files while it is still registered
/// and locked (a kill then leaves it stale, for the next run to remove),
/// then its registration, renamed out of sight in one step first.
fn remove_registered(common_dir: &Path, name: &str, root: &Path) -> Result<(), SnapshotError> {
    remove_dir(root)?;
    let admin = common_dir.join("worktrees").join(name);
    let scratch = scratch_dir(common_dir, name);
    match std::fs::rename(&admin, &scratch) {
        Ok(()) => remove_dir(&scratch),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Renaming cannot fail where removing works; remove it in place.
        Err(_) => remove_dir(&admin),
    }
}

fn remove_dir(path: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SnapshotError::io("remove", path.to_owned(), e))
        }
        _ => Ok(()),
    }
}

/// A worktree kkrun made in a repository (its name starts with `kkrun-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KkrunWorktree {
    /// Its name, `kkrun-<run-id>-<task>`.
    pub name: String,
    /// Its directory.
    pub root: PathBuf,
    /// Whether a run still uses it.
    pub state: WorktreeState,
}

/// Who a kkrun worktree belongs to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorktreeState {
    /// Locked by a run whose process (this pid) still runs.
    InUse(u32),
    /// Locked by a run whose process (this pid) is gone: a killed run left it.
    Stale(u32),
    /// Not locked by a run: kept by `--keep-worktrees` (or unlocked by hand).
    Kept,
}

impl KkrunWorktree {
    /// Whether the worktree belongs to run `run_id`.
    pub fn belongs_to(&self, run_id: &str) -> bool {
        self.name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.strip_prefix(run_id))
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// Every worktree kkrun made in `store`'s repository, by name; worktrees
/// kkrun did not make are left out.
pub fn kkrun_worktrees(store: &SnapshotStore) -> Result<Vec<KkrunWorktree>, SnapshotError> {
    let repo = store.repo()?;
    let names = repo
        .worktrees()
        .map_err(|e| SnapshotError::git("list the worktrees", e))?;
    let mut found = Vec::new();
    for name in names.iter().flatten().flatten() {
        if !name.starts_with(NAME_PREFIX) {
            continue;
        }
        let Ok(worktree) = repo.find_worktree(name) else {
            continue;
        };
        let admin = repo.commondir().join("worktrees").join(name);
        let owner = std::fs::read_to_string(admin.join("locked"))
            .ok()
            .and_then(|reason| Owner::parse(&reason, LOCK_PREFIX));
        let state = match owner {
            Some(owner) if owner.is_alive() => WorktreeState::InUse(owner.pid),
            Some(owner) => WorktreeState::Stale(owner.pid),
            None => WorktreeState::Kept,
        };
        found.push(KkrunWorktree {
            name: name.to_owned(),
            root: worktree.path().to_owned(),
            state,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Removes one worktree kkrun made, files and registration. Nothing of the
/// user's is in it: the work is in the snapshots.
pub fn remove_kkrun_worktree(
    store: &SnapshotStore,
    worktree: &KkrunWorktree,
) -> Result<(), SnapshotError> {
    let common_dir = store.repo()?.commondir().to_owned();
    remove_registered(&common_dir, &worktree.name, &worktree.root)
}

/// Removes the worktrees kkrun made in `store`'s repository whose run's
/// process is gone (a killed run), files and registration; returns the
/// removed worktrees' directories. Kept worktrees (`--keep-worktrees`,
/// unlocked) and every worktree kkrun did not make are left alone.
pub fn remove_stale_worktrees(store: &SnapshotStore) -> Result<Vec<PathBuf>, SnapshotError> {
    remove_dead_scratch(store.repo()?.commondir());
    let mut removed = Vec::new();
    for worktree in kkrun_worktrees(store)? {
        if let WorktreeState::Stale(_) = worktree.state {
            remove_kkrun_worktree(store, &worktree)?;
            removed.push(worktree.root);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_scratch_of_dead_processes_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let worktrees = dir.path().join("worktrees");
        let dead = worktrees.join(format!("{SCRATCH_PREFIX}4194304-kkrun-r-t"));
        let live = scratch_dir(dir.path(), "kkrun-r-u");
        let registered = worktrees.join("kkrun-r-v");
        for path in [&dead, &live, &registered] {
            std::fs::create_dir_all(path).unwrap();
        }
        remove_dead_scratch(dir.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(registered.exists());
    }
}

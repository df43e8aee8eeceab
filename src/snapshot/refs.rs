//! Reading a store's snapshot refs (a task's snapshots, every run, one
//! snapshot by label, index or stage), removing a run's, and clearing the
//! ref locks a killed run left behind.

use std::collections::BTreeMap;

use git2::{ErrorCode, Repository};

use super::store::{LOCK_ATTEMPTS, backoff, is_contention, rfc3339};
use super::{RunSnapshots, SnapshotError, SnapshotInfo, SnapshotStore, message, names};

impl SnapshotStore {
    /// All snapshots of a task, in order; empty when there are none.
    pub fn list(&self, run_id: &str, task: &str) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        names::validate("run id", run_id)?;
        names::validate("task name", task)?;
        let repo = self.repo()?;
        self.list_in(&repo, run_id, task)
    }

    pub(super) fn list_in(
        &self,
        repo: &Repository,
        run_id: &str,
        task: &str,
    ) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let prefix = names::task_prefix(run_id, task);
        let references = repo
            .references_glob(&format!("{prefix}*"))
            .map_err(|e| SnapshotError::git("list snapshot refs", e))?;
        let mut snapshots = Vec::new();
        for reference in references {
            let reference = reference.map_err(|e| SnapshotError::git("list snapshot refs", e))?;
            let Ok(ref_name) = reference.name() else {
                continue;
            };
            let Some((_, _, label)) = names::parse_ref(ref_name) else {
                continue;
            };
            let Some((index, stage)) = names::parse_label(label) else {
                continue;
            };
            let commit =
                reference
                    .peel_to_commit()
                    .map_err(|e| SnapshotError::CorruptSnapshot {
                        ref_name: ref_name.to_owned(),
                        reason: e.message().to_owned(),
                    })?;
            let text = String::from_utf8_lossy(commit.message_bytes()).into_owned();
            let files_changed = match message::trailer(&text, message::FILES_CHANGED)
                .and_then(|count| count.parse().ok())
            {
                Some(count) => count,
                None => {
                    let parent_tree = commit
                        .parents()
                        .next()
                        .map(|parent| parent.tree())
                        .transpose()
                        .map_err(|e| SnapshotError::git("read a parent tree", e))?;
                    let tree = commit
                        .tree()
                        .map_err(|e| SnapshotError::git("read a snapshot tree", e))?;
                    super::diff::count_changes(
                        repo,
                        parent_tree.as_ref(),
                        &tree,
                        &self.workspace_rel,
                    )?
                }
            };
            let workspace = match message::trailer(&text, message::WORKSPACE) {
                Some(".") | None => String::new(),
                Some(path) => path.to_owned(),
            };
            snapshots.push(SnapshotInfo {
                index,
                stage: stage.to_owned(),
                ref_name: ref_name.to_owned(),
                commit: commit.id().to_string(),
                time: rfc3339(commit.time().seconds()),
                files_changed,
                status: message::trailer(&text, message::STATUS)
                    .unwrap_or_default()
                    .to_owned(),
                workspace,
                scan: None,
            });
        }
        snapshots.sort_by(|a, b| a.index.cmp(&b.index).then(a.stage.cmp(&b.stage)));
        Ok(snapshots)
    }

    /// Every run with snapshots in the repository (sorted by id, which sorts
    /// by start time) and its tasks.
    pub fn runs(&self) -> Result<Vec<RunSnapshots>, SnapshotError> {
        let repo = self.repo()?;
        let mut references = repo
            .references_glob(&format!("{}*", names::PREFIX))
            .map_err(|e| SnapshotError::git("list snapshot refs", e))?;
        let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in references.names() {
            let name = name.map_err(|e| SnapshotError::git("list snapshot refs", e))?;
            if let Some((run, task, label)) = names::parse_ref(name)
                && names::parse_label(label).is_some()
            {
                let tasks = runs.entry(run.to_owned()).or_default();
                if !tasks.iter().any(|known| known == task) {
                    tasks.push(task.to_owned());
                }
            }
        }
        Ok(runs
            .into_iter()
            .map(|(run_id, mut tasks)| {
                tasks.sort();
                RunSnapshots { run_id, tasks }
            })
            .collect())
    }

    /// Resolves `which` to one snapshot of the task: a label (`02-code`), an
    /// index (`2` or `02`), or a stage name (`code`, `base`), which means the
    /// latest snapshot of that stage.
    ///
    /// An unknown run, task or snapshot is an exit-code-2 error listing what
    /// exists.
    pub fn resolve(
        &self,
        run_id: &str,
        task: &str,
        which: &str,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let snapshots = self.existing(run_id, task)?;
        let found = snapshots
            .iter()
            .find(|s| s.label() == which)
            .or_else(|| {
                which
                    .parse::<u32>()
                    .ok()
                    .filter(|_| which.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|index| snapshots.iter().find(|s| s.index == index))
            })
            .or_else(|| snapshots.iter().rev().find(|s| s.stage == which));
        match found {
            Some(snapshot) => Ok(snapshot.clone()),
            None => Err(SnapshotError::UnknownSnapshot {
                run: run_id.to_owned(),
                task: task.to_owned(),
                which: which.to_owned(),
                known: snapshots.iter().map(SnapshotInfo::label).collect(),
            }),
        }
    }

    /// The task's snapshots, or an error naming the runs or tasks that do
    /// exist when there are none.
    pub fn existing(&self, run_id: &str, task: &str) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let snapshots = self.list(run_id, task)?;
        if !snapshots.is_empty() {
            return Ok(snapshots);
        }
        let runs = self.runs()?;
        match runs.iter().find(|run| run.run_id == run_id) {
            Some(run) => Err(SnapshotError::UnknownTask {
                run: run_id.to_owned(),
                task: task.to_owned(),
                known: run.tasks.clone(),
            }),
            None => Err(SnapshotError::UnknownRun {
                run: run_id.to_owned(),
                known: runs.into_iter().map(|run| run.run_id).collect(),
            }),
        }
    }

    /// Deletes every snapshot ref of a run and returns how many there were.
    /// The commits stay in the object database until the next `git gc`.
    pub fn remove_run(&self, run_id: &str) -> Result<usize, SnapshotError> {
        names::validate("run id", run_id)?;
        let repo = self.repo()?;
        let prefix = format!("{}{run_id}/", names::PREFIX);
        let names: Vec<String> = repo
            .references_glob(&format!("{prefix}*"))
            .map_err(|e| SnapshotError::git("list snapshot refs", e))?
            .names()
            .filter_map(|name| name.ok().map(str::to_owned))
            .collect();
        for name in &names {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = repo.find_reference(name).and_then(|mut r| r.delete());
                match result {
                    Ok(()) => break,
                    Err(e) if e.code() == ErrorCode::NotFound => break,
                    Err(e) if is_contention(&e) && attempt < LOCK_ATTEMPTS => backoff(attempt),
                    Err(e) if is_contention(&e) => {
                        return Err(SnapshotError::Locked {
                            what: name.clone(),
                            attempts: attempt,
                            source: e,
                        });
                    }
                    Err(e) => return Err(self.write_error(&format!("delete {name}"), e)),
                }
            }
        }
        Ok(names.len())
    }

    /// Removes the `.lock` files under `refs/kkrun/<run_id>/` and returns
    /// the names of the refs they locked.
    ///
    /// A process killed between creating a ref's lock file and renaming it
    /// into place leaves the lock behind, and every later write of that ref
    /// fails as "locked". Only the run itself writes under its own prefix
    /// (and `kkrun apply`/`rollback` of it, a `safety` ref, in an instant),
    /// so the caller must hold the run's lock (`.run.lock` of its
    /// directory), taken over from a process that is gone: then no lock
    /// there belongs to the run's own writer.
    pub fn remove_stale_ref_locks(&self, run_id: &str) -> Result<Vec<String>, SnapshotError> {
        names::validate("run id", run_id)?;
        let repo = self.repo()?;
        let root = repo
            .commondir()
            .join(names::PREFIX.trim_end_matches('/'))
            .join(run_id);
        let mut removed = Vec::new();
        let mut pending = vec![root];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SnapshotError::io("read", dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| SnapshotError::io("read", dir.clone(), e))?;
                let path = entry.path();
                let is_dir = entry
                    .file_type()
                    .map_err(|e| SnapshotError::io("inspect", path.clone(), e))?
                    .is_dir();
                if is_dir {
                    pending.push(path);
                    continue;
                }
                let Some(ref_path) = path.to_str().and_then(|p| p.strip_suffix(".lock")) else {
                    continue;
                };
                let ref_name = std::path::Path::new(ref_path)
                    .strip_prefix(repo.commondir())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| ref_path.to_owned());
                match std::fs::remove_file(&path) {
                    Ok(()) => removed.push(ref_name),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(SnapshotError::io("remove", path, e)),
                }
            }
        }
        removed.sort();
        Ok(removed)
    }
}

//! Finding what changed in the work tree since the index was written, on
//! every core.
//!
//! libgit2's add-all compares the work tree with the index on one thread,
//! resolving a full path for every `lstat`. This scan walks the directories
//! from several threads instead, and checks each tracked file with `fstatat`
//! relative to its already open directory while looking for untracked files
//! in the same listing. Only the paths found here are handed to libgit2,
//! which hashes them with the repository's filters, so contents are stored
//! exactly as add-all would store them. Ignore rules are libgit2's too, the
//! ones checkout uses.
//!
//! The comparison is deliberately conservative: any stat field that differs,
//! or an entry written in the same instant as the index (racy git), counts
//! as a change, and a change that turns out to be none costs one rehash.
//! Platforms and configurations the scan does not model (other than Linux,
//! case-insensitive or symlink-less file systems) use libgit2's add-all.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use git2::{Index, Repository};

use super::SnapshotError;

/// What the index must be told to match the work tree.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Paths to remove from the index, all stages.
    pub(crate) remove: Vec<PathBuf>,
    /// Paths to (re)hash and add; directories here are nested repositories.
    pub(crate) add: Vec<PathBuf>,
}

/// Compares `index` with the work tree at `workdir`; `None` when this
/// platform or repository configuration needs libgit2's complete path.
pub(crate) fn scan(
    repo: &Repository,
    index: &Index,
    workdir: &Path,
    index_mtime: Option<SystemTime>,
) -> Result<Option<Changes>, SnapshotError> {
    #[cfg(target_os = "linux")]
    return imp::scan(repo, index, workdir, index_mtime);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (repo, index, workdir, index_mtime);
        Ok(None)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::{HashMap, HashSet};
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Condvar, Mutex};
    use std::time::SystemTime;

    use git2::{Index, IndexEntry, Repository};
    use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags, Stat};

    use super::Changes;
    use crate::snapshot::SnapshotError;

    /// Index entry modes.
    const MODE_GITLINK: u32 = 0o160000;
    const MODE_SYMLINK: u32 = 0o120000;
    const MODE_EXECUTABLE: u32 = 0o100755;
    /// `flags_extended` bits.
    const INTENT_TO_ADD: u16 = 1 << 13;
    const SKIP_WORKTREE: u16 = 1 << 14;

    /// How the stat data of an entry is compared, from the repository's config.
    #[derive(Debug, Clone, Copy)]
    struct StatRules {
        filemode: bool,
        trust_ctime: bool,
        check_all: bool,
        /// The index file's modification time: entries not older are racy.
        index_mtime: Option<(i64, i64)>,
    }

    /// The index, arranged for lookups from a directory listing.
    struct Tracked<'a> {
        entries: &'a [IndexEntry],
        /// Path to the position of its first entry (conflicts have several).
        by_path: HashMap<&'a [u8], usize>,
        /// Every directory holding tracked files, at any depth.
        dirs: HashSet<&'a [u8]>,
        /// Entries whose path turned up in a listing.
        seen: Vec<AtomicBool>,
        rules: StatRules,
    }

    /// A directory to list, relative to the work tree, and whether it holds
    /// tracked files (if not, it may be a nested repository).
    type Pending = (Vec<u8>, bool);

    /// Directories waiting to be listed, and how many workers are busy.
    struct Queue {
        state: Mutex<(Vec<Pending>, usize)>,
        wake: Condvar,
    }

    pub(super) fn scan(
        repo: &Repository,
        index: &Index,
        workdir: &Path,
        index_mtime: Option<SystemTime>,
    ) -> Result<Option<Changes>, SnapshotError> {
        let config = repo
            .config()
            .map_err(|e| SnapshotError::git("read the repository config", e))?;
        let flag = |name: &str, default: bool| config.get_bool(name).unwrap_or(default);
        if flag("core.ignorecase", false) || !flag("core.symlinks", true) {
            return Ok(None);
        }
        let rules = StatRules {
            filemode: flag("core.filemode", true),
            trust_ctime: flag("core.trustctime", true),
            check_all: config
                .get_string("core.checkstat")
                .map_or(true, |value| value != "minimal"),
            index_mtime: index_mtime.and_then(|time| {
                let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
                Some((
                    i64::try_from(since.as_secs()).ok()?,
                    i64::from(since.subsec_nanos()),
                ))
            }),
        };
        let entries: Vec<IndexEntry> = index.iter().collect();
        let mut tracked = Tracked {
            entries: &entries,
            by_path: HashMap::with_capacity(entries.len()),
            dirs: HashSet::new(),
            seen: entries.iter().map(|_| AtomicBool::new(false)).collect(),
            rules,
        };
        for (position, entry) in entries.iter().enumerate() {
            let path = entry.path.as_slice();
            tracked.by_path.entry(path).or_insert(position);
            let mut end = path.len();
            while let Some(slash) = path[..end].iter().rposition(|&b| b == b'/') {
                if !tracked.dirs.insert(&path[..slash]) {
                    break;
                }
                end = slash;
            }
        }

        let queue = Queue {
            state: Mutex::new((vec![(Vec::new(), true)], 0)),
            wake: Condvar::new(),
        };
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let results: Vec<_> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| worker(workdir, &tracked, &queue)))
                .collect();
            workers.into_iter().map(|worker| worker.join()).collect()
        });
        let mut changes = Changes::default();
        for result in results {
            let found = result.map_err(|_| {
                SnapshotError::io(
                    "scan",
                    workdir,
                    std::io::Error::other("a scanning thread panicked"),
                )
            })??;
            changes.add.extend(found.add);
            changes.remove.extend(found.remove);
        }
        // Tracked files no listing showed are gone (their directory too,
        // perhaps). Entries kept out of the work tree on purpose stay.
        for (entry, seen) in entries.iter().zip(&tracked.seen) {
            if !seen.load(Ordering::Relaxed) && entry.flags_extended & SKIP_WORKTREE == 0 {
                changes.remove.push(bytes_path(&entry.path).to_owned());
            }
        }
        changes.remove.sort();
        changes.remove.dedup();
        changes.add.sort();
        changes.add.dedup();
        Ok(Some(changes))
    }

    fn bytes_path(bytes: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(bytes))
    }

    /// Takes directories from the queue until every worker is idle and the
    /// queue is empty.
    fn worker(
        workdir: &Path,
        tracked: &Tracked<'_>,
        queue: &Queue,
    ) -> Result<Changes, SnapshotError> {
        let mut changes = Changes::default();
        let mut ignores: Option<Repository> = None;
        let mut result = Ok(());
        loop {
            let next = {
                let mut state = queue.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(dir) = state.0.pop() {
                        state.1 += 1;
                        break Some(dir);
                    }
                    if state.1 == 0 {
                        break None;
                    }
                    state = queue.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some((dir, holds_tracked)) = next else {
                queue.wake.notify_all();
                break;
            };
            let mut found = Vec::new();
            if result.is_ok() {
                result = list_directory(
                    workdir,
                    &dir,
                    holds_tracked,
                    tracked,
                    &mut ignores,
                    &mut changes,
                    &mut found,
                );
            }
            let mut state = queue.state.lock().unwrap_or_else(|e| e.into_inner());
            state.0.extend(found);
            state.1 -= 1;
            drop(state);
            queue.wake.notify_all();
        }
        result.map(|()| changes)
    }

    /// Lists one directory: checks its tracked files, collects its untracked
    /// ones and queues its subdirectories in `subdirs`.
    fn list_directory(
        workdir: &Path,
        dir: &[u8],
        holds_tracked: bool,
        tracked: &Tracked<'_>,
        ignores: &mut Option<Repository>,
        changes: &mut Changes,
        subdirs: &mut Vec<Pending>,
    ) -> Result<(), SnapshotError> {
        let absolute = workdir.join(bytes_path(dir));
        let fd = match rustix::fs::openat(
            CWD,
            &absolute,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Gone or replaced since its parent was listed: whatever the
            // index holds below it counts as removed.
            Err(_) => return Ok(()),
        };
        if !holds_tracked
            && !dir.is_empty()
            && rustix::fs::statat(&fd, c".git", AtFlags::SYMLINK_NOFOLLOW).is_ok()
        {
            // An untracked repository inside the work tree: a gitlink.
            changes.add.push(bytes_path(dir).to_owned());
            return Ok(());
        }
        let listing =
            Dir::read_from(&fd).map_err(|e| SnapshotError::io("list", &absolute, e.into()))?;
        let mut relative = dir.to_vec();
        if !relative.is_empty() {
            relative.push(b'/');
        }
        let prefix = relative.len();
        for child in listing {
            let child = child.map_err(|e| SnapshotError::io("list", &absolute, e.into()))?;
            let name = child.file_name();
            let name_bytes = name.to_bytes();
            if matches!(name_bytes, b"." | b".." | b".git") {
                continue;
            }
            relative.truncate(prefix);
            relative.extend_from_slice(name_bytes);
            let mut kind = child.file_type();
            let mut stat = None;
            if kind == FileType::Unknown {
                let Ok(found) = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                kind = FileType::from_raw_mode(found.st_mode);
                stat = Some(found);
            }
            let is_dir = kind == FileType::Directory;
            match tracked.by_path.get(relative.as_slice()) {
                Some(&first) => {
                    let path = bytes_path(&relative);
                    let mut conflicted = false;
                    let mut position = first;
                    while tracked
                        .entries
                        .get(position)
                        .is_some_and(|e| e.path.as_slice() == relative.as_slice())
                    {
                        tracked.seen[position].store(true, Ordering::Relaxed);
                        conflicted |= (tracked.entries[position].flags >> 12) & 3 != 0;
                        position += 1;
                    }
                    let entry = &tracked.entries[first];
                    if entry.flags_extended & SKIP_WORKTREE != 0 {
                        continue;
                    }
                    if entry.mode == MODE_GITLINK {
                        if !is_dir || submodule_moved(&absolute.join(path_name(name)), entry) {
                            changes.add.push(path.to_owned());
                        }
                    } else if is_dir {
                        // A file replaced by a directory.
                        changes.remove.push(path.to_owned());
                        if !ignored(ignores, workdir, &relative)? {
                            subdirs.push((relative.clone(), false));
                        }
                    } else {
                        let stat = match stat {
                            Some(stat) => Some(stat),
                            None => rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW).ok(),
                        };
                        let changed = match stat {
                            Some(stat) => {
                                conflicted
                                    || entry.flags_extended & INTENT_TO_ADD != 0
                                    || stat_differs(entry, &stat, tracked.rules)
                            }
                            // Vanished between listing and stat.
                            None => true,
                        };
                        if changed {
                            changes.add.push(path.to_owned());
                        }
                    }
                }
                None if is_dir => {
                    if tracked.dirs.contains(relative.as_slice()) {
                        subdirs.push((relative.clone(), true));
                    } else if !ignored(ignores, workdir, &relative)? {
                        subdirs.push((relative.clone(), false));
                    }
                }
                None => {
                    let addable = matches!(kind, FileType::RegularFile | FileType::Symlink);
                    if addable && !ignored(ignores, workdir, &relative)? {
                        changes.add.push(bytes_path(&relative).to_owned());
                    }
                }
            }
        }
        Ok(())
    }

    fn path_name(name: &CStr) -> &Path {
        bytes_path(name.to_bytes())
    }

    /// Whether the file may differ from the entry. False only when every
    /// stat field git records matches and the entry is older than the index.
    fn stat_differs(entry: &IndexEntry, stat: &Stat, rules: StatRules) -> bool {
        let kind = FileType::from_raw_mode(stat.st_mode);
        let is_link = kind == FileType::Symlink;
        if is_link != (entry.mode == MODE_SYMLINK) || !(is_link || kind == FileType::RegularFile) {
            return true;
        }
        if !is_link
            && rules.filemode
            && (stat.st_mode & 0o100 != 0) != (entry.mode == MODE_EXECUTABLE)
        {
            return true;
        }
        // The index keeps the low 32 bits of sizes and times.
        if stat.st_size as u32 != entry.file_size
            || stat.st_mtime as u32 != entry.mtime.seconds() as u32
            || stat.st_mtime_nsec as u32 != entry.mtime.nanoseconds()
        {
            return true;
        }
        if rules.check_all
            && (stat.st_ino as u32 != entry.ino
                || stat.st_dev as u32 != entry.dev
                || stat.st_uid != entry.uid
                || stat.st_gid != entry.gid)
        {
            return true;
        }
        if rules.trust_ctime
            && (stat.st_ctime as u32 != entry.ctime.seconds() as u32
                || (rules.check_all && stat.st_ctime_nsec as u32 != entry.ctime.nanoseconds()))
        {
            return true;
        }
        match rules.index_mtime {
            // Written in the same instant as the index or later: the stat
            // data cannot prove the content is unchanged.
            Some(index_mtime) => {
                (
                    i64::from(entry.mtime.seconds()),
                    i64::from(entry.mtime.nanoseconds()),
                ) >= index_mtime
            }
            None => true,
        }
    }

    /// Whether a checked-out submodule's HEAD differs from the recorded
    /// commit. A directory without a repository (a submodule that was never
    /// initialised) records no change, like `git add -A`.
    fn submodule_moved(dir: &Path, entry: &IndexEntry) -> bool {
        if std::fs::symlink_metadata(dir.join(".git")).is_err() {
            return false;
        }
        match Repository::open(dir) {
            Ok(sub) => sub
                .head()
                .ok()
                .and_then(|head| head.target())
                .is_none_or(|head| head != entry.id),
            Err(_) => false,
        }
    }

    /// libgit2's verdict on a path the index does not know; the repository
    /// is opened on first use, once per thread.
    fn ignored(
        repo: &mut Option<Repository>,
        workdir: &Path,
        relative: &[u8],
    ) -> Result<bool, SnapshotError> {
        let repo = match repo {
            Some(repo) => repo,
            None => repo.insert(
                Repository::open(workdir)
                    .map_err(|e| SnapshotError::git("open the repository", e))?,
            ),
        };
        repo.is_path_ignored(bytes_path(relative))
            .map_err(|e| SnapshotError::git("check .gitignore rules", e))
    }
}

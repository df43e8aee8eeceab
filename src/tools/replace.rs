//! Writing a file by replacing it: the new content goes to a temporary file
//! in the same directory, which is then renamed over the target. A hard
//! link the agent made to a file outside the workspace (or into `.git/`) is
//! therefore replaced by a new file, never written through.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Permissions of a file created from scratch, before the umask.
const NEW_FILE_MODE: u32 = 0o666;

/// Replaces `path` with a new file holding `content`.
///
/// An existing file's permission bits are kept; a new file gets
/// `0666 & !umask`, as any editor would create it. The rename is atomic: a
/// reader sees either the old or the new content, never a partial write.
pub(crate) fn replace_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let existing_mode = std::fs::symlink_metadata(path)
        .ok()
        .filter(|meta| meta.is_file())
        .map(|meta| meta.permissions().mode());
    let mut temporary = tempfile::Builder::new()
        .prefix(".kkrun-write-")
        .permissions(std::fs::Permissions::from_mode(NEW_FILE_MODE))
        .tempfile_in(parent)?;
    temporary.write_all(content)?;
    if let Some(mode) = existing_mode {
        // Set after creation: the umask applied at creation must not strip
        // bits the file had.
        temporary
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    temporary.as_file().sync_data()?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_hard_link_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        let inside = dir.path().join("inside.txt");
        std::fs::write(&outside, "original\n").unwrap();
        std::fs::hard_link(&outside, &inside).unwrap();
        replace_file(&inside, b"changed\n").unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "original\n");
        assert_eq!(std::fs::read_to_string(&inside).unwrap(), "changed\n");
        assert_eq!(std::fs::metadata(&outside).unwrap().nlink(), 1);
    }

    #[test]
    fn permissions_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o751)).unwrap();
        replace_file(&script, b"#!/bin/sh\necho hi\n").unwrap();
        let mode = std::fs::metadata(&script).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o751);
    }

    #[test]
    fn a_new_file_is_not_private() {
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("new.txt");
        replace_file(&created, b"x").unwrap();
        let mode = std::fs::metadata(&created).unwrap().permissions().mode() & 0o7777;
        assert_ne!(
            mode & 0o044,
            0,
            "mode {mode:o} should be readable by others under a usual umask"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}

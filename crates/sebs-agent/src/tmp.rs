//! Emptying the function's `/tmp` after an OOM kill, from a helper process of the agent's own
//! binary (`sebs-agent --empty-dir DIR`) that runs as the function's user.
//!
//! `/tmp` is a tmpfs: its files are memory, charged to the container's cgroup and given back
//! only when they are removed. A function that filled it up to its memory limit and was
//! OOM-killed leaves them behind, and every worker started after it would be killed in turn.
//! The agent cannot remove them itself (it keeps no capability to touch other users' files),
//! so it runs its own binary as the workers' user to do it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The argument that makes the agent's binary empty a directory instead of serving.
pub const EMPTY_DIR_ARG: &str = "--empty-dir";

/// An entry that could not be removed. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}")]
pub struct EmptyError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Removes everything under `dir`, keeping `dir` itself. Symbolic links are removed, not
/// followed, and mount points inside `dir` are left alone; a directory its owner made
/// unwritable is made writable first. Everything removable is removed; the first failure is
/// returned.
pub fn empty_dir(dir: &Path) -> Result<(), EmptyError> {
    let device = std::fs::symlink_metadata(dir)
        .map_err(|source| EmptyError {
            action: "inspect",
            path: dir.to_path_buf(),
            source,
        })?
        .dev();
    let mut first_error = None;
    empty_within(dir, device, &mut first_error);
    first_error.map_or(Ok(()), Err)
}

fn empty_within(dir: &Path, device: u64, first_error: &mut Option<EmptyError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return note(first_error, "list", dir, e),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                note(first_error, "list", dir, e);
                continue;
            }
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                note(first_error, "inspect", &path, e);
                continue;
            }
        };
        if !meta.is_dir() {
            if let Err(e) = std::fs::remove_file(&path) {
                note(first_error, "remove", &path, e);
            }
            continue;
        }
        if meta.dev() != device {
            // Another file system mounted here: not the function's files.
            continue;
        }
        if meta.mode() & 0o700 != 0o700 {
            // Best effort: only its owner may, and listing it says if that failed.
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
        }
        empty_within(&path, device, first_error);
        if let Err(e) = std::fs::remove_dir(&path) {
            note(first_error, "remove", &path, e);
        }
    }
}

/// Keeps the first failure.
fn note(
    first_error: &mut Option<EmptyError>,
    action: &'static str,
    path: &Path,
    source: std::io::Error,
) {
    if first_error.is_none() {
        *first_error = Some(EmptyError {
            action,
            path: path.to_path_buf(),
            source,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_everything_but_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("big"), vec![0u8; 4096]).unwrap();
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/b/c/file"), "x").unwrap();
        // A directory its owner locked, and a link out of the directory.
        std::fs::create_dir(root.join("locked")).unwrap();
        std::fs::write(root.join("locked/file"), "x").unwrap();
        std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();

        empty_dir(root).unwrap();
        assert!(root.is_dir());
        assert_eq!(std::fs::read_dir(root).unwrap().count(), 0);
        assert!(
            outside.path().join("keep").exists(),
            "a link is removed, not followed"
        );
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = empty_dir(Path::new("/nonexistent/sebs-tmp")).unwrap_err();
        assert_eq!(
            sebs_wire::ErrorChain(&err).to_string(),
            "inspect /nonexistent/sebs-tmp: No such file or directory (os error 2)"
        );
    }
}

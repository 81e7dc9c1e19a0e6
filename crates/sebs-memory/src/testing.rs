//! Test helpers: fake cgroup directories in a tempdir.

use crate::cgroup::{MemoryCgroup, Version};

/// A fake memory cgroup of `version` holding `files` (name, text), in a tempdir that lives as
/// long as the returned guard.
pub fn fake_cgroup(version: Version, files: &[(&str, &str)]) -> (tempfile::TempDir, MemoryCgroup) {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(t.path().join(name), text).unwrap();
    }
    let cg = MemoryCgroup {
        dir: t.path().to_path_buf(),
        version,
    };
    (t, cg)
}

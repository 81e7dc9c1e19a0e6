//! What the container's memory cgroup says about a dead worker: was a limit set, did the kernel OOM-kill.
//!
//! Read from inside the container, best effort: an unreadable file means "unknown", never an
//! error, because the answer only refines the message of an invocation that already failed.
//! cgroup v2 keeps `memory.max` and `memory.events` in the container's own cgroup directory
//! (mounted at `/sys/fs/cgroup`); v1 keeps `memory.limit_in_bytes` and `memory.oom_control`
//! under the `memory/` controller.

use std::path::{Path, PathBuf};

/// Where a container sees its own cgroup.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// v1 reports "no limit" as a huge page-aligned number; anything at or above this is unlimited.
const V1_UNLIMITED: u64 = 1 << 62;

/// The memory cgroup the agent runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroup {
    root: PathBuf,
}

impl MemoryCgroup {
    /// The cgroup mounted at `root` (normally [`DEFAULT_ROOT`]).
    pub fn new(root: impl Into<PathBuf>) -> MemoryCgroup {
        MemoryCgroup { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a memory limit is set, as far as the cgroup files tell.
    pub fn limited(&self) -> bool {
        if let Some(text) = read(&self.root.join("memory.max")) {
            return limited_v2(&text);
        }
        read(&self.root.join("memory/memory.limit_in_bytes")).is_some_and(|t| limited_v1(&t))
    }

    /// How many processes the kernel has OOM-killed in this cgroup, when it says.
    pub fn oom_kills(&self) -> Option<u64> {
        if let Some(text) = read(&self.root.join("memory.events")) {
            return keyed(&text, "oom_kill");
        }
        read(&self.root.join("memory/memory.oom_control")).and_then(|t| keyed(&t, "oom_kill"))
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// v2 `memory.max`: `max` or a number of bytes.
fn limited_v2(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty() && t != "max"
}

/// v1 `memory.limit_in_bytes`: a number of bytes, huge when unlimited.
fn limited_v1(text: &str) -> bool {
    text.trim().parse::<u64>().is_ok_and(|v| v < V1_UNLIMITED)
}

/// The value of `key` in a flat-keyed file (`key value` per line).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out `files` under a fresh root and asks what the cgroup says.
    fn check(files: &[(&str, &str)], expect_limited: bool, expect_oom: Option<u64>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let cg = MemoryCgroup::new(dir.path());
        assert_eq!(cg.limited(), expect_limited, "limited for {files:?}");
        assert_eq!(cg.oom_kills(), expect_oom, "oom kills for {files:?}");
    }

    #[test]
    fn v2() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n";
        check(
            &[("memory.max", "134217728\n"), ("memory.events", events)],
            true,
            Some(2),
        );
        check(
            &[
                ("memory.max", "max\n"),
                ("memory.events", "oom 0\noom_kill 0\n"),
            ],
            false,
            Some(0),
        );
        check(&[("memory.max", "max\n")], false, None);
    }

    #[test]
    fn v1() {
        let control = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        check(
            &[
                ("memory/memory.limit_in_bytes", "134217728\n"),
                ("memory/memory.oom_control", control),
            ],
            true,
            Some(1),
        );
        // Docker's "no limit" on v1, and a kernel older than 4.13 without the oom_kill field.
        check(
            &[
                ("memory/memory.limit_in_bytes", "9223372036854771712\n"),
                (
                    "memory/memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\n",
                ),
            ],
            false,
            None,
        );
    }

    #[test]
    fn nothing_readable() {
        check(&[], false, None);
        check(
            &[("memory.max", ""), ("memory.events", "oom_kill x\n")],
            false,
            None,
        );
    }
}

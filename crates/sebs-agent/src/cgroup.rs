//! What the container's memory cgroup says about a dead worker: was a limit set, did the kernel OOM-kill.
//!
//! Read from inside the container, best effort: an unreadable file means "unknown", never an
//! error, because the answer only refines the message of an invocation that already failed.
//! cgroup v2 keeps `memory.max` and `memory.events` in the container's own cgroup directory
//! (mounted at `/sys/fs/cgroup`); v1 keeps `memory.limit_in_bytes` and `memory.oom_control`
//! under the `memory/` controller.

use std::path::{Path, PathBuf};

use sebs_memory::files::{parse_limit, parse_stat};

/// Where a container sees its own cgroup.
pub const DEFAULT_ROOT: &str = sebs_memory::DEFAULT_CGROUP_ROOT;

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
        let v2 = self.root.join("memory.max");
        let (path, text) = match read(&v2) {
            Some(text) => (v2, text),
            None => {
                let v1 = self.root.join("memory/memory.limit_in_bytes");
                match read(&v1) {
                    Some(text) => (v1, text),
                    None => return false,
                }
            }
        };
        parse_limit(&text, &path).is_ok_and(|limit| limit.is_some())
    }

    /// How many processes the kernel has OOM-killed in this cgroup, when it says.
    pub fn oom_kills(&self) -> Option<u64> {
        let text = read(&self.root.join("memory.events"))
            .or_else(|| read(&self.root.join("memory/memory.oom_control")))?;
        parse_stat(&text).get("oom_kill").copied()
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
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

//! Finding a container's memory cgroup: the hierarchy's version, well-known paths, a bounded search, `/proc/<pid>/cgroup`.
//!
//! Everything here takes the cgroup root as a parameter ([`DEFAULT_CGROUP_ROOT`] is only the
//! default) so that tests run against fake trees in a tempdir.

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the cgroup hierarchy is mounted on a normal Linux host.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How deep below the memory hierarchy's root the fallback search looks.
///
/// Rootless Docker under systemd sits at depth 5
/// (`user.slice/user-1000.slice/user@1000.service/user.slice/docker-<id>.scope`) and
/// Kubernetes pods at depth 4; 8 leaves room without walking the whole tree.
pub const SEARCH_MAX_DEPTH: usize = 8;

/// How many directories the fallback search visits at most, so that a huge tree cannot stall it.
pub const SEARCH_MAX_DIRS: usize = 50_000;

/// Which cgroup hierarchy a host mounts at its cgroup root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Only the unified hierarchy: `cgroup.controllers` at the root.
    V2,
    /// One hierarchy per controller: `memory/` below the root, no unified hierarchy.
    V1,
    /// Per-controller hierarchies plus the unified one at `unified/`; memory is on v1.
    Hybrid,
}

/// The cgroup version whose memory files a cgroup directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `memory.usage_in_bytes`, `memory.max_usage_in_bytes`, `memory.limit_in_bytes`.
    V1,
    /// `memory.current`, `memory.peak`, `memory.max`.
    V2,
}

impl Layout {
    /// The version of the hierarchy that carries the memory controller.
    pub fn memory_version(self) -> Version {
        match self {
            Layout::V2 => Version::V2,
            Layout::V1 | Layout::Hybrid => Version::V1,
        }
    }
}

impl Version {
    /// The file that holds the current usage in bytes.
    pub fn current_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.usage_in_bytes",
            Version::V2 => "memory.current",
        }
    }

    /// The file that holds the peak usage in bytes (absent on v2 before Linux 5.19).
    pub fn peak_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        }
    }

    /// The file that holds the limit.
    pub fn limit_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "cgroup-v1",
            Version::V2 => "cgroup-v2",
        })
    }
}

/// A container's memory cgroup: the directory that holds its memory files, and their version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryCgroup {
    pub dir: PathBuf,
    pub version: Version,
}

impl MemoryCgroup {
    /// The file with the current usage.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(self.version.current_file())
    }

    /// The file with the peak usage (which may not exist).
    pub fn peak_path(&self) -> PathBuf {
        self.dir.join(self.version.peak_file())
    }

    /// The file with the limit.
    pub fn limit_path(&self) -> PathBuf {
        self.dir.join(self.version.limit_file())
    }

    /// `memory.stat`, which both versions have (with different keys).
    pub fn stat_path(&self) -> PathBuf {
        self.dir.join("memory.stat")
    }
}

/// Why a memory cgroup could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("read cgroup root {path}: it has neither cgroup.controllers (v2) nor memory/ (v1)")]
    UnknownLayout { path: PathBuf },
    #[error("use container id {container:?}: expected hexadecimal digits")]
    BadContainerId { container: String },
    #[error("find the memory cgroup of container {container} below {root}")]
    NotFound { container: String, root: PathBuf },
    #[error("choose the memory cgroup of container {container}: the id prefix matches {first} and {second}")]
    Ambiguous {
        container: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("use cgroup {path} of container {container}: it has no {file} (is the memory controller enabled?)")]
    NoMemoryFiles {
        container: String,
        path: PathBuf,
        file: &'static str,
    },
    #[error("read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: no line names the {version} memory hierarchy")]
    NoMemoryLine { path: PathBuf, version: Version },
    #[error("parse {path}: line {line:?} is not `id:controllers:path`")]
    BadProcLine { path: PathBuf, line: String },
    #[error("find this process's own memory cgroup mounted under {root}")]
    OwnNotMounted { root: PathBuf },
}

/// Tells which hierarchy is mounted at `root`.
pub fn detect_layout(root: &Path) -> Result<Layout, CgroupError> {
    if root.join("cgroup.controllers").is_file() {
        return Ok(Layout::V2);
    }
    if root.join("memory").is_dir() {
        if root.join("unified").join("cgroup.controllers").is_file() {
            return Ok(Layout::Hybrid);
        }
        return Ok(Layout::V1);
    }
    if !root.is_dir() {
        return Err(CgroupError::Io {
            path: root.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    Err(CgroupError::UnknownLayout {
        path: root.to_path_buf(),
    })
}

/// The directory below which memory cgroups live: `root` on v2, `root/memory` on v1 and hybrid.
pub fn memory_hierarchy(root: &Path, layout: Layout) -> PathBuf {
    match layout.memory_version() {
        Version::V2 => root.to_path_buf(),
        Version::V1 => root.join("memory"),
    }
}

/// Finds the memory cgroup of the Docker container `container` (its full id, or a unique prefix).
///
/// Well-known places are tried first: `system.slice/docker-<id>.scope` (systemd driver) and
/// `docker/<id>` (cgroupfs driver), below `root` on v2 and below `root/memory` on v1. Then a
/// breadth-first search, bounded by [`SEARCH_MAX_DEPTH`] and [`SEARCH_MAX_DIRS`], looks for a
/// directory named `<id>` or `docker-<id>.scope` at any depth, which covers rootless Docker
/// (`user.slice/user-<uid>.slice/user@<uid>.service/…`) and Kubernetes (`kubepods…`). A prefix
/// of the id is accepted by the search when it matches exactly one container.
pub fn find_container_cgroup(root: &Path, container: &str) -> Result<MemoryCgroup, CgroupError> {
    if container.is_empty() || !container.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CgroupError::BadContainerId {
            container: container.to_string(),
        });
    }
    let layout = detect_layout(root)?;
    let version = layout.memory_version();
    let base = memory_hierarchy(root, layout);
    let scope = format!("docker-{container}.scope");
    let known = [
        base.join("system.slice").join(&scope),
        base.join("docker").join(container),
    ];
    let dir = match known.into_iter().find(|d| d.is_dir()) {
        Some(dir) => dir,
        None => search(&base, container)?.ok_or_else(|| CgroupError::NotFound {
            container: container.to_string(),
            root: base.clone(),
        })?,
    };
    let cgroup = MemoryCgroup { dir, version };
    if !cgroup.current_path().is_file() {
        return Err(CgroupError::NoMemoryFiles {
            container: container.to_string(),
            path: cgroup.dir,
            file: version.current_file(),
        });
    }
    Ok(cgroup)
}

/// The container id a cgroup directory's name carries, if it is a container's.
fn id_in_name(name: &str) -> Option<&str> {
    let id = name
        .strip_prefix("docker-")
        .and_then(|n| n.strip_suffix(".scope"))
        .unwrap_or(name);
    // Docker ids are 64 hex digits; anything shorter is some other cgroup (e.g. `docker`).
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Breadth-first search for the container's directory; the shallowest match wins.
fn search(base: &Path, container: &str) -> Result<Option<PathBuf>, CgroupError> {
    let mut queue = VecDeque::from([(base.to_path_buf(), 0usize)]);
    let mut visited = 0usize;
    let mut found: Option<(PathBuf, String)> = None;
    while let Some((dir, depth)) = queue.pop_front() {
        visited += 1;
        if visited > SEARCH_MAX_DIRS {
            break;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // The base must be readable; a subtree that vanished or is closed to us is skipped.
            Err(source) if depth == 0 => return Err(CgroupError::Io { path: dir, source }),
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            // cgroupfs has no symlinks; following none keeps the walk bounded.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if let Some(id) = id_in_name(name).filter(|id| id.starts_with(container)) {
                match &found {
                    None => found = Some((path.clone(), id.to_string())),
                    Some((first, first_id)) if first_id != id => {
                        return Err(CgroupError::Ambiguous {
                            container: container.to_string(),
                            first: first.clone(),
                            second: path,
                        });
                    }
                    Some(_) => {}
                }
                continue;
            }
            if depth + 1 < SEARCH_MAX_DEPTH {
                queue.push_back((path, depth + 1));
            }
        }
    }
    Ok(found.map(|(path, _)| path))
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller,list:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroupLine {
    pub hierarchy: u32,
    /// Empty for the v2 line (`0::/path`) and for named v1 hierarchies' controllers.
    pub controllers: Vec<String>,
    /// Relative to the hierarchy's mount point (or to the reader's cgroup namespace root).
    pub path: String,
}

/// Parses the text of `/proc/<pid>/cgroup`; `path` names the file in errors.
pub fn parse_proc_cgroup(text: &str, path: &Path) -> Result<Vec<ProcCgroupLine>, CgroupError> {
    let bad = |line: &str| CgroupError::BadProcLine {
        path: path.to_path_buf(),
        line: line.to_string(),
    };
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // The path may itself contain ':', so split at the first two only.
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(cgroup)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(line));
        };
        let hierarchy = id.parse().map_err(|_| bad(line))?;
        let controllers = controllers
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        out.push(ProcCgroupLine {
            hierarchy,
            controllers,
            path: cgroup.to_string(),
        });
    }
    Ok(out)
}

/// The memory cgroup path (relative to its hierarchy) among `lines`, for a host of `version`:
/// the line listing `memory` on v1, the `0::` line on v2.
pub fn memory_path_in(lines: &[ProcCgroupLine], version: Version) -> Option<&str> {
    lines
        .iter()
        .find(|l| match version {
            Version::V1 => l.controllers.iter().any(|c| c == "memory"),
            Version::V2 => l.hierarchy == 0 && l.controllers.is_empty(),
        })
        .map(|l| l.path.as_str())
}

/// The memory cgroup of a process given the text of its `/proc/<pid>/cgroup`.
///
/// Pure apart from checking the layout of `root`: the platform gets a container's PID from
/// `inspect` and reads the file itself, or calls [`find_pid_cgroup`].
pub fn cgroup_from_proc_text(
    root: &Path,
    text: &str,
    proc_path: &Path,
) -> Result<MemoryCgroup, CgroupError> {
    let layout = detect_layout(root)?;
    let version = layout.memory_version();
    let lines = parse_proc_cgroup(text, proc_path)?;
    let rel = memory_path_in(&lines, version).ok_or_else(|| CgroupError::NoMemoryLine {
        path: proc_path.to_path_buf(),
        version,
    })?;
    let dir = memory_hierarchy(root, layout).join(rel.trim_start_matches('/'));
    Ok(MemoryCgroup { dir, version })
}

/// Reads `proc_root/<pid>/cgroup` (`proc_root` is normally `/proc`) and finds the memory cgroup.
pub fn find_pid_cgroup(
    root: &Path,
    proc_root: &Path,
    pid: u32,
) -> Result<MemoryCgroup, CgroupError> {
    let path = proc_root.join(pid.to_string()).join("cgroup");
    let text = std::fs::read_to_string(&path).map_err(|source| CgroupError::Io {
        path: path.clone(),
        source,
    })?;
    cgroup_from_proc_text(root, &text, &path)
}

/// The memory cgroup this process runs in, as mounted under `root` (normally
/// [`DEFAULT_CGROUP_ROOT`]): what a process inside a container (the agent) sees of its own
/// cgroup. Reads `/proc/self/mountinfo` and `/proc/self/cgroup`.
pub fn find_own_cgroup(root: &Path) -> Result<MemoryCgroup, CgroupError> {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|source| CgroupError::Io {
            path: path.into(),
            source,
        })
    };
    let mountinfo = read("/proc/self/mountinfo")?;
    let own = read("/proc/self/cgroup")?;
    own_memory_cgroup(&mountinfo, &own, root).ok_or_else(|| CgroupError::OwnNotMounted {
        root: root.to_path_buf(),
    })
}

/// The memory cgroup of a process, from the text of its `/proc/self/mountinfo` and
/// `/proc/self/cgroup`, when it is mounted under `root` (a pure function).
///
/// The memory cgroup mount is `<root>/memory` on v1 and `<root>` on v2 (Docker mounts the
/// container's own cgroup there). The last mount at a mount point is the visible one; its root
/// (the cgroup path it shows) must be a prefix of the process's cgroup path, and the rest of
/// that path leads to the process's directory below the mount point.
pub fn own_memory_cgroup(mountinfo: &str, self_cgroup: &str, root: &Path) -> Option<MemoryCgroup> {
    let v1_point = root.join("memory");
    let mut visible: Option<(&str, Version)> = None;
    for line in mountinfo.lines() {
        // `id parent major:minor root mount-point options [optional…] - fstype source super-options`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let (Some(mount_root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let mut right = right.split(' ');
        let fstype = right.next().unwrap_or("");
        let super_options = right.nth(1).unwrap_or("");
        let point = Path::new(point);
        if fstype == "cgroup"
            && point == v1_point
            && super_options.split(',').any(|o| o == "memory")
        {
            visible = Some((mount_root, Version::V1));
        } else if fstype == "cgroup2" && point == root {
            visible = Some((mount_root, Version::V2));
        } else if point == v1_point || point == root {
            // Something else mounted over it hides what was there.
            if visible.is_some_and(|(_, v)| (v == Version::V1) == (point == v1_point)) {
                visible = None;
            }
        }
    }
    let (mount_root, version) = visible?;
    let lines = parse_proc_cgroup(self_cgroup, Path::new("/proc/self/cgroup")).ok()?;
    let own = memory_path_in(&lines, version)?;
    let rest = if mount_root == "/" {
        own.strip_prefix('/')?
    } else {
        let rest = own.strip_prefix(mount_root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.trim_start_matches('/')
    };
    let point = match version {
        Version::V1 => v1_point,
        Version::V2 => root.to_path_buf(),
    };
    Some(MemoryCgroup {
        dir: point.join(rest),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn check_own(mountinfo: &str, self_cgroup: &str, expect: Option<(&str, Version)>) {
        let got = own_memory_cgroup(mountinfo, self_cgroup, Path::new("/sys/fs/cgroup"));
        let expect = expect.map(|(p, version)| MemoryCgroup {
            dir: PathBuf::from(p),
            version,
        });
        assert_eq!(got, expect, "{mountinfo}\n{self_cgroup}");
    }

    const DOCKER_ID: &str = "7177d40192f4fc773025b04ae368be23dcc139082c4a26e6cdf82b8dbea697d4";

    #[test]
    fn finds_the_own_cgroup() {
        let own_v1 = format!("5:pids:/docker/{DOCKER_ID}\n4:memory:/docker/{DOCKER_ID}\n");
        let container_v1 = format!(
            "230 234 0:30 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755\n\
             238 234 0:32 /docker/{DOCKER_ID} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n\
             239 234 0:33 /docker/{DOCKER_ID} /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n"
        );
        // Docker's own mount in a container on cgroup v1: the container's cgroup itself.
        check_own(
            &container_v1,
            &own_v1,
            Some(("/sys/fs/cgroup/memory", Version::V1)),
        );
        // The parent mounted over it (as the agent's container test does): the dir below.
        let over = format!("{container_v1}92 238 0:32 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        check_own(
            &over,
            &own_v1,
            Some((&format!("/sys/fs/cgroup/memory/{DOCKER_ID}"), Version::V1)),
        );
        // A host: the whole hierarchy, the process in some cgroup of it.
        check_own(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n",
            "4:memory:/process_api/5daa\n",
            Some(("/sys/fs/cgroup/memory/process_api/5daa", Version::V1)),
        );
        // A mount that shows another cgroup is not ours.
        check_own(
            "35 31 0:32 /docker/other /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            &own_v1,
            None,
        );
        check_own(
            "35 31 0:32 /docker/7177 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            &own_v1,
            None,
        );
        // cgroup v2 with a cgroup namespace: both say `/`.
        let v2 = "1006 1005 0:29 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        check_own(v2, "0::/\n", Some(("/sys/fs/cgroup", Version::V2)));
        check_own(
            "30 20 0:29 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/system.slice/docker-abc.scope\n",
            Some(("/sys/fs/cgroup/system.slice/docker-abc.scope", Version::V2)),
        );
        // No memory cgroup mounted, or a tmpfs over it.
        check_own("", "0::/\n", None);
        check_own(
            &format!("{v2}1100 1006 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            "0::/\n",
            None,
        );
        // A v1 mount of another controller at the memory mount point does not count.
        check_own(
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,cpu\n",
            "4:memory:/x\n",
            None,
        );
    }

    const ID: &str = "4f1c2a7e9b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    const OTHER: &str = "4f1c000000000000000000000000000000000000000000000000000000000000";

    /// Builds a fake tree: `layout` marker files plus each dir in `dirs` holding `file`.
    fn tree(layout: Option<Layout>, dirs: &[&str], file: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        match layout {
            Some(Layout::V2) => {
                fs::write(t.path().join("cgroup.controllers"), "cpu memory\n").unwrap()
            }
            Some(Layout::V1) => fs::create_dir(t.path().join("memory")).unwrap(),
            Some(Layout::Hybrid) => {
                fs::create_dir(t.path().join("memory")).unwrap();
                fs::create_dir(t.path().join("unified")).unwrap();
                fs::write(t.path().join("unified/cgroup.controllers"), "").unwrap();
            }
            None => {}
        }
        for d in dirs {
            let d = t
                .path()
                .join(d.replace("{id}", ID).replace("{other}", OTHER));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(file), "1024\n").unwrap();
        }
        t
    }

    /// Finds `container` in a tree of `dirs` and expects the dir (relative) or an error's text.
    fn check(layout: Layout, dirs: &[&str], container: &str, expect: Result<&str, &str>) {
        let file = layout.memory_version().current_file();
        let t = tree(Some(layout), dirs, file);
        let got = find_container_cgroup(t.path(), container);
        match (got, expect) {
            (Ok(cg), Ok(rel)) => {
                assert_eq!(cg.dir, t.path().join(rel.replace("{id}", ID)), "{dirs:?}");
                assert_eq!(cg.version, layout.memory_version());
            }
            (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{e} lacks {text:?}"),
            (got, expect) => panic!("{dirs:?}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn finds_containers_in_every_layout() {
        use Layout::*;
        check(
            V2,
            &["system.slice/docker-{id}.scope"],
            ID,
            Ok("system.slice/docker-{id}.scope"),
        );
        check(V2, &["docker/{id}"], ID, Ok("docker/{id}"));
        check(V1, &["memory/docker/{id}"], ID, Ok("memory/docker/{id}"));
        check(
            V1,
            &["memory/system.slice/docker-{id}.scope"],
            ID,
            Ok("memory/system.slice/docker-{id}.scope"),
        );
        check(
            Hybrid,
            &["memory/docker/{id}"],
            ID,
            Ok("memory/docker/{id}"),
        );
        let rootless = "user.slice/user-1000.slice/user@1000.service/user.slice/docker-{id}.scope";
        check(V2, &[rootless], ID, Ok(rootless));
        let kube = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/docker-{id}.scope";
        check(V2, &[kube], ID, Ok(kube));
        check(
            V1,
            &["memory/kubepods/burstable/pod1/{id}"],
            ID,
            Ok("memory/kubepods/burstable/pod1/{id}"),
        );
        // A unique prefix is found by the search; a shared one is refused.
        check(V2, &["docker/{id}"], &ID[..12], Ok("docker/{id}"));
        check(
            V2,
            &["docker/{id}", "docker/{other}"],
            "4f1c",
            Err("matches"),
        );
        // The well-known place wins over a deeper match.
        check(
            V2,
            &["docker/{id}", "a/b/docker-{id}.scope"],
            ID,
            Ok("docker/{id}"),
        );
        check(V2, &["docker/{other}"], ID, Err("find the memory cgroup"));
        check(V2, &[], "../../etc", Err("expected hexadecimal"));
        // Too deep for the bounded search.
        check(
            V2,
            &["1/2/3/4/5/6/7/8/9/{id}"],
            ID,
            Err("find the memory cgroup"),
        );
    }

    #[test]
    fn a_cgroup_without_memory_files_is_named() {
        let t = tree(Some(Layout::V2), &["docker/{id}"], "cpu.stat");
        let err = find_container_cgroup(t.path(), ID).unwrap_err();
        assert!(
            matches!(
                &err,
                CgroupError::NoMemoryFiles {
                    file: "memory.current",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("docker/{ID}")), "{err}");
    }

    #[test]
    fn layouts() {
        for layout in [Layout::V1, Layout::V2, Layout::Hybrid] {
            let t = tree(Some(layout), &[], "x");
            assert_eq!(detect_layout(t.path()).unwrap(), layout);
        }
        let t = tree(None, &[], "x");
        assert!(matches!(
            detect_layout(t.path()),
            Err(CgroupError::UnknownLayout { .. })
        ));
        let missing = t.path().join("nope");
        let err = detect_layout(&missing).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    fn check_proc(layout: Layout, text: &str, expect: Result<&str, &str>) {
        let t = tree(Some(layout), &[], "x");
        let got = cgroup_from_proc_text(t.path(), text, Path::new("/proc/42/cgroup"));
        match (got, expect) {
            (Ok(cg), Ok(rel)) => assert_eq!(cg.dir, t.path().join(rel), "{text}"),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e} lacks {msg:?}"),
            (got, expect) => panic!("{text}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn proc_cgroup_files() {
        let v1 = "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n";
        check_proc(Layout::V1, v1, Ok("memory/docker/abc"));
        check_proc(Layout::Hybrid, v1, Ok("memory/docker/abc"));
        check_proc(
            Layout::V1,
            "4:cpu,memory:/system.slice/docker-abc.scope\n",
            Ok("memory/system.slice/docker-abc.scope"),
        );
        check_proc(
            Layout::V2,
            "0::/system.slice/docker-abc.scope\n",
            Ok("system.slice/docker-abc.scope"),
        );
        // A path with a colon in it stays whole.
        check_proc(Layout::V2, "0::/odd:name\n", Ok("odd:name"));
        check_proc(
            Layout::V2,
            v1.replace("0::/\n", "").as_str(),
            Err("no line names the cgroup-v2"),
        );
        check_proc(Layout::V1, "0::/x\n", Err("no line names the cgroup-v1"));
        check_proc(Layout::V2, "garbage\n", Err("line \"garbage\""));
        check_proc(Layout::V2, "x::/a\n", Err("/proc/42/cgroup"));
    }

    #[test]
    fn pid_lookup_reads_the_proc_file() {
        let t = tree(Some(Layout::V2), &[], "x");
        let proc_root = t.path().join("proc");
        fs::create_dir_all(proc_root.join("7")).unwrap();
        fs::write(proc_root.join("7/cgroup"), "0::/docker/abc\n").unwrap();
        let cg = find_pid_cgroup(t.path(), &proc_root, 7).unwrap();
        assert_eq!(cg.dir, t.path().join("docker/abc"));
        let err = find_pid_cgroup(t.path(), &proc_root, 8).unwrap_err();
        assert!(err.to_string().contains("proc/8/cgroup"), "{err}");
    }
}

//! Per-invocation peak memory: the container's cgroup peak reset around a call it serves alone, else the worker's own peak.
//!
//! The preferred figure is the container's memory cgroup peak, reset just before the call
//! and read just after: cgroup v1 resets `memory.max_usage_in_bytes` when anything is written
//! to it; cgroup v2 (Linux 6.12 and later) resets `memory.peak` for the open file that was
//! written to, so [`CgroupPeak`] keeps one file open for both. That figure is the call's only
//! when nothing else ran in the container meanwhile, so [`Meter`] uses it only with one
//! worker and no other request in flight from the reset to the read (counted by
//! [`Meter::request`]); otherwise it falls back to the peak resident set the worker reports
//! for the call, which the worker resets itself. [`MemorySource`] says which was used.
//!
//! Both figures include a baseline, as AWS's "Max Memory Used" does: the cgroup figure is
//! the whole container (agent, idle worker, page cache), the worker's figure its whole
//! process (interpreter, imported function).
//!
//! The agent's cgroup is found as the kernel shows it to the agent itself: the memory cgroup
//! mount under the cgroup root (`<root>/memory` on v1, `<root>` on v2) whose root is a prefix
//! of the agent's own cgroup path in `/proc/self/cgroup`. Docker mounts the container's own
//! cgroup there, read-only unless the container is privileged; a read-only mount leaves the
//! worker's figure.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use sebs_wire::MemorySource;

/// Which cgroup hierarchy a peak file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `memory.max_usage_in_bytes` under the `memory` controller's own mount.
    V1,
    /// `memory.peak` in the unified hierarchy.
    V2,
}

impl Version {
    pub fn peak_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        }
    }
}

/// Why the cgroup peak cannot be used. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum PeakError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("find the agent's own memory cgroup mounted under {root}")]
    NotMounted { root: PathBuf },
    #[error("open {path} for resetting")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reset {path}")]
    Reset {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {text:?} is not a number of bytes")]
    Parse { path: PathBuf, text: String },
}

/// The peak file of a memory cgroup, open for resetting and reading.
#[derive(Debug)]
pub struct CgroupPeak {
    file: File,
    path: PathBuf,
    version: Version,
}

impl CgroupPeak {
    /// Opens the peak file of the memory cgroup the agent runs in, as mounted under
    /// `cgroup_root`, and checks that it can be reset.
    pub fn open_own(cgroup_root: &Path) -> Result<CgroupPeak, PeakError> {
        let read = |path: &str| {
            std::fs::read_to_string(path).map_err(|source| PeakError::Read {
                path: path.into(),
                source,
            })
        };
        let mountinfo = read("/proc/self/mountinfo")?;
        let own = read("/proc/self/cgroup")?;
        let (dir, version) =
            own_memory_dir(&mountinfo, &own, cgroup_root).ok_or_else(|| PeakError::NotMounted {
                root: cgroup_root.to_path_buf(),
            })?;
        CgroupPeak::open(&dir, version)
    }

    /// Opens the peak file in cgroup directory `dir` and resets it once, to find out
    /// whether the kernel and the mount allow it.
    pub fn open(dir: &Path, version: Version) -> Result<CgroupPeak, PeakError> {
        let path = dir.join(version.peak_file());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| PeakError::Open {
                path: path.clone(),
                source,
            })?;
        let peak = CgroupPeak {
            file,
            path,
            version,
        };
        peak.reset()?;
        peak.read()?;
        Ok(peak)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Sets the peak to the current usage (on v2, for reads through this file only).
    pub fn reset(&self) -> Result<(), PeakError> {
        // v1 wants a number (any resets the watermark); v2 takes any non-empty string.
        self.file
            .write_at(b"0\n", 0)
            .map(drop)
            .map_err(|source| PeakError::Reset {
                path: self.path.clone(),
                source,
            })
    }

    /// The peak in bytes since the last reset.
    pub fn read(&self) -> Result<u64, PeakError> {
        let mut buf = [0u8; 32];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|source| PeakError::Read {
                path: self.path.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&buf[..n]);
        text.trim().parse().map_err(|_| PeakError::Parse {
            path: self.path.clone(),
            text: text.into_owned(),
        })
    }
}

/// The directory of the agent's own memory cgroup, from `/proc/self/mountinfo` and
/// `/proc/self/cgroup`, when it is mounted under `cgroup_root`.
///
/// The last mount at a mount point is the visible one; its root (the cgroup path it shows)
/// must be a prefix of the agent's cgroup path, and the rest of that path leads to the
/// agent's directory below the mount point.
pub fn own_memory_dir(
    mountinfo: &str,
    self_cgroup: &str,
    cgroup_root: &Path,
) -> Option<(PathBuf, Version)> {
    let v1_point = cgroup_root.join("memory");
    let mut visible: Option<(&str, Version)> = None;
    for line in mountinfo.lines() {
        // `id parent major:minor root mount-point options [optional…] - fstype source super-options`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
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
            visible = Some((root, Version::V1));
        } else if fstype == "cgroup2" && point == cgroup_root {
            visible = Some((root, Version::V2));
        } else if point == v1_point || point == cgroup_root {
            // Something else mounted over it hides what was there.
            if visible.is_some_and(|(_, v)| (v == Version::V1) == (point == v1_point)) {
                visible = None;
            }
        }
    }
    let (root, version) = visible?;
    let own = self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match version {
            Version::V1 => controllers.split(',').any(|c| c == "memory"),
            Version::V2 => controllers.is_empty(),
        };
        wanted.then_some(path)
    })?;
    let rest = if root == "/" {
        own.strip_prefix('/')?
    } else {
        let rest = own.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.trim_start_matches('/')
    };
    let point = match version {
        Version::V1 => v1_point,
        Version::V2 => cgroup_root.to_path_buf(),
    };
    Some((point.join(rest), version))
}

/// An invocation's peak memory and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPeak {
    pub bytes: u64,
    pub source: MemorySource,
}

/// What the worker said about its own peak for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerPeak {
    pub max_rss_kb: Option<u64>,
    /// The worker reset its peak before the call, so `max_rss_kb` is the call's.
    pub reset: bool,
}

/// The figure to report: the cgroup's when it was read over a call the container served
/// alone, else the worker's.
pub fn choose(cgroup: Option<u64>, worker: WorkerPeak) -> Option<MemoryPeak> {
    if let Some(bytes) = cgroup {
        return Some(MemoryPeak {
            bytes,
            source: MemorySource::Cgroup,
        });
    }
    worker.max_rss_kb.map(|kb| MemoryPeak {
        bytes: kb.saturating_mul(1024),
        source: if worker.reset {
            MemorySource::Process
        } else {
            MemorySource::ProcessLifetime
        },
    })
}

/// Measures each call's peak; shared by the HTTP side (which counts requests in flight) and
/// the pool (which opens a [`Window`] around each call).
#[derive(Debug, Default)]
pub struct Meter {
    /// Present only when the agent serves one call at a time in a cgroup of its own.
    cgroup: Option<Mutex<CgroupPeak>>,
    in_flight: AtomicUsize,
    arrivals: AtomicU64,
}

/// A request being served; counted by the [`Meter`] until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    meter: &'a Meter,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.meter.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The span of one call, from [`Meter::open_window`] to [`Meter::close_window`].
#[derive(Debug)]
#[must_use]
pub struct Window {
    /// The arrival count at the reset, when the cgroup peak was reset.
    cgroup_reset_at: Option<u64>,
}

impl Meter {
    /// A meter that uses `cgroup` when given, else what workers report.
    ///
    /// Give a cgroup only when the container runs nothing but this agent with one worker.
    pub fn new(cgroup: Option<CgroupPeak>) -> Meter {
        Meter {
            cgroup: cgroup.map(Mutex::new),
            ..Meter::default()
        }
    }

    /// Whether calls may be measured by the cgroup.
    pub fn uses_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Counts a request as in flight until the guard is dropped; call it as a request arrives.
    pub fn request(&self) -> InFlight<'_> {
        self.arrivals.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { meter: self }
    }

    /// Call just before the worker gets the call: resets the cgroup peak when this call is
    /// the only request in flight.
    pub fn open_window(&self) -> Window {
        let mut window = Window {
            cgroup_reset_at: None,
        };
        let Some(cgroup) = &self.cgroup else {
            return window;
        };
        let arrivals = self.arrivals.load(Ordering::Acquire);
        if self.in_flight.load(Ordering::Acquire) > 1 {
            return window;
        }
        let peak = cgroup.lock().unwrap_or_else(|p| p.into_inner());
        match peak.reset() {
            Ok(()) => window.cgroup_reset_at = Some(arrivals),
            Err(e) => eprintln!("sebs-agent: failed to {}", sebs_wire::ErrorChain(&e)),
        }
        window
    }

    /// Call just after the worker answered: the call's peak, from the cgroup when no other
    /// request arrived or was in flight since the window opened, else from `worker`.
    pub fn close_window(&self, window: Window, worker: WorkerPeak) -> Option<MemoryPeak> {
        let cgroup = match (&self.cgroup, window.cgroup_reset_at) {
            (Some(cgroup), Some(arrivals_at_reset)) => {
                let peak = cgroup.lock().unwrap_or_else(|p| p.into_inner());
                let read = peak.read();
                let alone = self.arrivals.load(Ordering::Acquire) == arrivals_at_reset
                    && self.in_flight.load(Ordering::Acquire) <= 1;
                match read {
                    Ok(bytes) => alone.then_some(bytes),
                    Err(e) => {
                        eprintln!("sebs-agent: failed to {}", sebs_wire::ErrorChain(&e));
                        None
                    }
                }
            }
            _ => None,
        };
        choose(cgroup, worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_dir(mountinfo: &str, self_cgroup: &str, expect: Option<(&str, Version)>) {
        let got = own_memory_dir(mountinfo, self_cgroup, Path::new("/sys/fs/cgroup"));
        let expect = expect.map(|(p, v)| (PathBuf::from(p), v));
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
        check_dir(
            &container_v1,
            &own_v1,
            Some(("/sys/fs/cgroup/memory", Version::V1)),
        );
        // The parent mounted over it (as the container test does): the agent's dir below.
        let over = format!("{container_v1}92 238 0:32 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        check_dir(
            &over,
            &own_v1,
            Some((&format!("/sys/fs/cgroup/memory/{DOCKER_ID}"), Version::V1)),
        );
        // A host: the whole hierarchy, the agent in some cgroup of it.
        check_dir(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n",
            "4:memory:/process_api/5daa\n",
            Some(("/sys/fs/cgroup/memory/process_api/5daa", Version::V1)),
        );
        // A mount that shows another cgroup is not ours.
        check_dir(
            "35 31 0:32 /docker/other /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            &own_v1,
            None,
        );
        check_dir(
            "35 31 0:32 /docker/7177 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            &own_v1,
            None,
        );
        // cgroup v2 with a cgroup namespace: both say `/`.
        let v2 = "1006 1005 0:29 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        check_dir(v2, "0::/\n", Some(("/sys/fs/cgroup", Version::V2)));
        check_dir(
            "30 20 0:29 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/system.slice/docker-abc.scope\n",
            Some(("/sys/fs/cgroup/system.slice/docker-abc.scope", Version::V2)),
        );
        // No memory cgroup mounted, or a tmpfs over it.
        check_dir("", "0::/\n", None);
        check_dir(
            &format!("{v2}1100 1006 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            "0::/\n",
            None,
        );
        // A v1 mount of another controller at the memory mount point does not count.
        check_dir(
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,cpu\n",
            "4:memory:/x\n",
            None,
        );
    }

    #[test]
    fn choosing_the_figure() {
        let check = |cgroup, kb, reset, expect: Option<(u64, MemorySource)>| {
            let worker = WorkerPeak {
                max_rss_kb: kb,
                reset,
            };
            let got = choose(cgroup, worker).map(|p| (p.bytes, p.source));
            assert_eq!(got, expect, "cgroup {cgroup:?}, worker {worker:?}");
        };
        check(
            Some(5 << 20),
            Some(100),
            true,
            Some((5 << 20, MemorySource::Cgroup)),
        );
        check(
            None,
            Some(100),
            true,
            Some((102_400, MemorySource::Process)),
        );
        check(
            None,
            Some(100),
            false,
            Some((102_400, MemorySource::ProcessLifetime)),
        );
        check(None, None, true, None);
    }

    /// A fake peak file: resets write to it, reads read it back.
    fn fake(version: Version, text: &str) -> (tempfile::TempDir, CgroupPeak) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(version.peak_file()), text).unwrap();
        let peak = CgroupPeak::open(dir.path(), version).unwrap();
        (dir, peak)
    }

    #[test]
    fn peak_files() {
        // Opening resets once: the reset writes 0, which the check reads back.
        let (dir, peak) = fake(Version::V1, "9\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("memory.max_usage_in_bytes")).unwrap(),
            "0\n"
        );
        std::fs::write(peak.path(), "4096\n").unwrap();
        assert_eq!(peak.read().unwrap(), 4096);
        std::fs::write(peak.path(), "max\n").unwrap();
        assert!(matches!(peak.read(), Err(PeakError::Parse { .. })));

        let (_dir, peak) = fake(Version::V2, "7\n");
        assert!(peak.path().ends_with("memory.peak"));
        assert_eq!(peak.read().unwrap(), 0);

        let missing = tempfile::tempdir().unwrap();
        let err = CgroupPeak::open(missing.path(), Version::V2).unwrap_err();
        assert!(err.to_string().contains("memory.peak"), "{err}");
    }

    #[test]
    fn the_cgroup_counts_only_calls_served_alone() {
        let worker = WorkerPeak {
            max_rss_kb: Some(1),
            reset: true,
        };
        let source = |meter: &Meter, during: &dyn Fn()| {
            let request = meter.request();
            let window = meter.open_window();
            during();
            let peak = meter.close_window(window, worker);
            drop(request);
            peak.map(|p| p.source)
        };
        let (_dir, peak) = fake(Version::V1, "1\n");
        let meter = Meter::new(Some(peak));
        assert!(meter.uses_cgroup());
        assert_eq!(source(&meter, &|| ()), Some(MemorySource::Cgroup));
        // Another request arrives during the call.
        assert_eq!(
            source(&meter, &|| drop(meter.request())),
            Some(MemorySource::Process)
        );
        // Another request is in flight when the call starts.
        let other = meter.request();
        assert_eq!(source(&meter, &|| ()), Some(MemorySource::Process));
        drop(other);
        assert_eq!(source(&meter, &|| ()), Some(MemorySource::Cgroup));

        let without = Meter::new(None);
        assert!(!without.uses_cgroup());
        assert_eq!(source(&without, &|| ()), Some(MemorySource::Process));
    }
}

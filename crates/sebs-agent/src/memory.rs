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
//! The agent's cgroup is found as the kernel shows it to the agent itself (sebs-memory's
//! `find_own_cgroup`, whose peak reader this module uses): the memory cgroup
//! mount under the cgroup root (`<root>/memory` on v1, `<root>` on v2) whose root is a prefix
//! of the agent's own cgroup path in `/proc/self/cgroup`. Docker mounts the container's own
//! cgroup there, read-only unless the container is privileged; a read-only mount leaves the
//! worker's figure.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use sebs_memory::{CgroupError, FileError, PeakTracker};
use sebs_wire::MemorySource;

/// Why the cgroup peak cannot be used. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum PeakError {
    #[error(transparent)]
    Find(#[from] CgroupError),
    #[error("use the peak of memory cgroup {cgroup}")]
    Open {
        cgroup: PathBuf,
        #[source]
        source: FileError,
    },
}

/// The peak file of the agent's own memory cgroup, open for resetting and reading
/// (sebs-memory's [`PeakTracker`]).
#[derive(Debug)]
pub struct CgroupPeak {
    tracker: PeakTracker,
}

impl CgroupPeak {
    /// Opens the peak file of the memory cgroup the agent runs in, as mounted under
    /// `cgroup_root`, and checks that it can be reset.
    pub fn open_own(cgroup_root: &Path) -> Result<CgroupPeak, PeakError> {
        let cgroup = sebs_memory::find_own_cgroup(cgroup_root)?;
        let tracker = cgroup.resettable_peak().map_err(|source| PeakError::Open {
            cgroup: cgroup.dir.clone(),
            source,
        })?;
        Ok(CgroupPeak { tracker })
    }

    pub fn path(&self) -> &Path {
        self.tracker.path()
    }

    /// Sets the peak to the current usage (on v2, for reads through this file only).
    pub fn reset(&self) -> Result<(), FileError> {
        self.tracker.reset_strictly()
    }

    /// The peak in bytes since the last reset.
    pub fn read(&self) -> Result<u64, FileError> {
        self.tracker.read()
    }
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
    fn fake(text: &str) -> (tempfile::TempDir, CgroupPeak) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max_usage_in_bytes"), text).unwrap();
        let cgroup = sebs_memory::MemoryCgroup {
            dir: dir.path().to_path_buf(),
            version: sebs_memory::Version::V1,
        };
        let tracker = cgroup.resettable_peak().unwrap();
        (dir, CgroupPeak { tracker })
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
        let (_dir, peak) = fake("1\n");
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

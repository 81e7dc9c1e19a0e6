//! The sampler: one dedicated OS thread that reads the memory of many containers at fixed intervals.
//!
//! Why one thread for all containers rather than one each: at 1 ms a thread costs a wake-up
//! per millisecond, and wake-ups, not the reads (a `pread` of a cgroup file takes a few µs),
//! are what costs CPU. Containers asking for the same interval share deadlines (every
//! deadline is on a grid of the sampler's start), so N containers cost one wake-up per tick
//! and their samples line up in time. A cgroup read never blocks for long, so one container
//! cannot hold the others up in practice; a late tick is counted as a precision error.
//!
//! Scheduling: the deadlines of a container are `start + k * interval`, slept to with
//! `clock_nanosleep(TIMER_ABSTIME)` and 1 ns of timer slack. When the thread wakes after one
//! or more later deadlines have also passed, it takes one sample for the latest and counts the
//! others as precision errors instead of taking a burst of samples.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use sebs_wire::EpochMicros;

use crate::cgroup::MemoryCgroup;
use crate::clock::{self, CpuTimeError};
use crate::measurements::{End, Measurements, Sample, Source};

/// The longest the thread sleeps before looking for new containers and stop requests.
const MAX_NAP: Duration = Duration::from_millis(20);

/// How often the thread checks that a sampled file still has a name, which is how it notices
/// a removed file that reads still succeed on (a deleted regular file, unlike a cgroup file).
const EXISTENCE_CHECK: Duration = Duration::from_millis(100);

/// Why sampling could not start.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("start the memory sampler thread")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("open {path} to sample container {container}")]
    Open {
        container: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sample container {container} every {interval:?}: the interval must be at least 1 µs")]
    Interval {
        container: String,
        interval: Duration,
    },
    #[error("sample container {container}: the sampler thread has stopped")]
    Gone { container: String },
    #[error(transparent)]
    CpuTime(#[from] CpuTimeError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still worth reporting.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the thread has collected for one container, shared with its handle.
#[derive(Debug, Default)]
struct Collected {
    samples: Vec<Sample>,
    precision_errors: u64,
    end: Option<End>,
}

#[derive(Debug, Default)]
struct Slot {
    collected: Mutex<Collected>,
    stop: AtomicBool,
}

/// A container as the thread sees it.
struct Entry {
    file: File,
    path: PathBuf,
    /// Monotonic time of deadline 0.
    start: Duration,
    interval: Duration,
    /// Index of the next deadline to serve.
    next: u64,
    next_existence_check: Duration,
    slot: Arc<Slot>,
}

impl Entry {
    fn deadline(&self, k: u64) -> Duration {
        let nanos = self.interval.as_nanos().saturating_mul(u128::from(k));
        self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Index of the latest deadline at or before `now`.
    fn latest_due(&self, now: Duration) -> u64 {
        let since = now.saturating_sub(self.start).as_nanos();
        (since / self.interval.as_nanos().max(1)) as u64
    }

    /// Serves the due deadlines at `now`; `Some` when sampling this container has ended.
    fn serve(&mut self, now: Duration) -> Option<End> {
        let k = self.latest_due(now);
        let missed = k - self.next;
        let late = now.saturating_sub(self.deadline(k));
        self.next = k + 1;
        let bytes = match read_bytes(&self.file, &self.path) {
            Ok(bytes) => bytes,
            Err(end) => return Some(end),
        };
        let sample = Sample {
            offset_us: now.saturating_sub(self.start).as_micros() as u64,
            bytes,
            late_us: u32::try_from(late.as_micros()).unwrap_or(u32::MAX),
        };
        let mut c = lock(&self.slot.collected);
        c.samples.push(sample);
        c.precision_errors += missed;
        None
    }
}

/// Reads a number from `file` at offset 0, mapping "the cgroup is gone" errors to that end.
fn read_bytes(file: &File, path: &Path) -> Result<u64, End> {
    let mut buf = [0u8; 32];
    let n = loop {
        match file.read_at(&mut buf, 0) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_gone(&e) => return Err(End::ContainerGone),
            Err(e) => return Err(End::Failed(format!("read {}: {e}", path.display()))),
        }
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    text.trim().parse().map_err(|_| {
        End::Failed(format!(
            "parse {}: {text:?} is not a number of bytes",
            path.display()
        ))
    })
}

fn is_gone(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.kind() == ErrorKind::NotFound
        || e.raw_os_error()
            .is_some_and(|code| [Errno::ENODEV, Errno::ESRCH].contains(&Errno::from_raw(code)))
}

/// What the thread and its owners share.
#[derive(Default)]
struct Shared {
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

#[derive(Default)]
struct Inbox {
    new: Vec<Entry>,
    shutdown: bool,
}

/// Stops and joins the thread when the last [`Sampler`] or [`SampleHandle`] goes.
struct Owner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    tid: i32,
    /// Monotonic time all deadlines are aligned to.
    epoch: Duration,
}

impl Drop for Owner {
    fn drop(&mut self) {
        lock(&self.shared.inbox).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panicked sampler thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// The sampling thread; cheap to clone, shared by every container it samples.
#[derive(Clone)]
pub struct Sampler {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("tid", &self.owner.tid)
            .finish()
    }
}

impl Sampler {
    /// Starts the sampling thread; it sleeps until a container is added.
    pub fn start() -> Result<Sampler, SamplerError> {
        let shared = Arc::new(Shared::default());
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sebs-memory-sampler".into())
            .spawn(move || {
                clock::tighten_timer_slack();
                let _ = tid_tx.send(clock::current_tid());
                run(&thread_shared);
            })
            .map_err(|source| SamplerError::Spawn { source })?;
        let tid = tid_rx.recv().map_err(|_| SamplerError::Spawn {
            source: std::io::Error::other("the sampler thread ended before it started"),
        })?;
        Ok(Sampler {
            owner: Arc::new(Owner {
                shared,
                thread: Some(thread),
                tid,
                epoch: clock::monotonic(),
            }),
        })
    }

    /// Starts sampling `cgroup`'s current usage every `interval` for `container`.
    ///
    /// The file is opened here, so a wrong path fails now; the first sample is taken at the
    /// next multiple of `interval` since the sampler started (within one interval).
    pub fn add(
        &self,
        container: &str,
        cgroup: &MemoryCgroup,
        interval: Duration,
    ) -> Result<SampleHandle, SamplerError> {
        let path = cgroup.current_path();
        let mut handle = self.add_file(container, &path, interval)?;
        handle.source = Source::Cgroup(cgroup.version);
        handle.cgroup = Some(cgroup.clone());
        Ok(handle)
    }

    /// Like [`Sampler::add`] for any file holding one number, which tests and benchmarks use.
    pub fn add_file(
        &self,
        container: &str,
        path: &Path,
        interval: Duration,
    ) -> Result<SampleHandle, SamplerError> {
        if interval < Duration::from_micros(1) {
            return Err(SamplerError::Interval {
                container: container.to_string(),
                interval,
            });
        }
        let file = File::open(path).map_err(|source| SamplerError::Open {
            container: container.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        let now = clock::monotonic();
        // The first grid point of the sampler's epoch at or after now.
        let since = now.saturating_sub(self.owner.epoch).as_nanos();
        let step = interval.as_nanos();
        let ticks = since.div_ceil(step);
        let start = self.owner.epoch
            + Duration::from_nanos(u64::try_from(ticks * step).unwrap_or(u64::MAX));
        let started_at =
            EpochMicros(EpochMicros::now().0 + start.saturating_sub(now).as_micros() as i64);
        let slot = Arc::new(Slot::default());
        let entry = Entry {
            file,
            path: path.to_path_buf(),
            start,
            interval,
            next: 0,
            next_existence_check: start + EXISTENCE_CHECK,
            slot: Arc::clone(&slot),
        };
        {
            let mut inbox = lock(&self.owner.shared.inbox);
            if inbox.shutdown {
                return Err(SamplerError::Gone {
                    container: container.to_string(),
                });
            }
            inbox.new.push(entry);
        }
        self.owner.shared.wake.notify_all();
        Ok(SampleHandle {
            _owner: Arc::clone(&self.owner),
            slot,
            container: container.to_string(),
            source: Source::Cgroup(crate::cgroup::Version::V2),
            cgroup: None,
            interval,
            started_at,
        })
    }

    /// CPU time the sampling thread has used since it started.
    pub fn thread_cpu_time(&self) -> Result<Duration, SamplerError> {
        Ok(clock::thread_cpu_time(self.owner.tid)?)
    }
}

/// One container being sampled. [`SampleHandle::stop`] ends it and returns what was measured.
pub struct SampleHandle {
    /// Keeps the thread running while this container is sampled.
    _owner: Arc<Owner>,
    slot: Arc<Slot>,
    container: String,
    source: Source,
    cgroup: Option<MemoryCgroup>,
    interval: Duration,
    started_at: EpochMicros,
}

impl std::fmt::Debug for SampleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleHandle")
            .field("container", &self.container)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl SampleHandle {
    pub fn container(&self) -> &str {
        &self.container
    }

    /// `Some` once sampling has ended by itself (the container went away, reading failed).
    pub fn ended(&self) -> Option<End> {
        lock(&self.slot.collected).end.clone()
    }

    /// The number of samples taken so far.
    pub fn sample_count(&self) -> usize {
        lock(&self.slot.collected).samples.len()
    }

    /// The latest sample taken so far.
    pub fn latest(&self) -> Option<Sample> {
        lock(&self.slot.collected).samples.last().copied()
    }

    /// Stops sampling and returns the measurements, partial when the container died mid-way.
    ///
    /// Returns at once: the thread closes the file at its next wake-up. Dropping a handle
    /// stops sampling too, discarding the data.
    pub fn stop(mut self) -> Measurements {
        self.slot.stop.store(true, Ordering::Relaxed);
        let collected = std::mem::take(&mut *lock(&self.slot.collected));
        let end = collected.end.unwrap_or(End::Stopped);
        let cgroup = self.cgroup.take();
        let kernel_peak = match (&end, &cgroup) {
            (End::Stopped, Some(cgroup)) => cgroup.peak().ok().flatten(),
            _ => None,
        };
        let taken = collected.samples.len() as u64;
        Measurements {
            container: std::mem::take(&mut self.container),
            source: self.source,
            cgroup: cgroup.map(|c| c.dir),
            interval: self.interval,
            started_at: self.started_at,
            samples: collected.samples,
            samples_asked: taken + collected.precision_errors,
            precision_errors: collected.precision_errors,
            end,
            kernel_peak,
        }
    }
}

impl Drop for SampleHandle {
    fn drop(&mut self) {
        self.slot.stop.store(true, Ordering::Relaxed);
    }
}

/// The thread's loop.
fn run(shared: &Shared) {
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        {
            let mut inbox = lock(&shared.inbox);
            loop {
                if inbox.shutdown {
                    return;
                }
                entries.append(&mut inbox.new);
                entries.retain(|e| !e.slot.stop.load(Ordering::Relaxed));
                if !entries.is_empty() {
                    break;
                }
                inbox = shared
                    .wake
                    .wait(inbox)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let Some(next) = entries.iter().map(|e| e.deadline(e.next)).min() else {
            continue;
        };
        let now = clock::monotonic();
        if next > now {
            clock::sleep_until(next.min(now + MAX_NAP));
            continue;
        }
        entries.retain_mut(|e| {
            let now = clock::monotonic();
            if e.deadline(e.next) > now {
                return true;
            }
            let mut end = e.serve(now);
            if end.is_none() && now >= e.next_existence_check {
                e.next_existence_check = now + EXISTENCE_CHECK;
                if std::fs::symlink_metadata(&e.path)
                    .is_err_and(|err| err.kind() == ErrorKind::NotFound)
                {
                    end = Some(End::ContainerGone);
                }
            }
            match end {
                Some(end) => {
                    lock(&e.slot.collected).end = Some(end);
                    false
                }
                None => true,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Writes `value` the way a fixed-width rewrite would, so a concurrent reader never sees a
    /// half-written number.
    fn put(path: &Path, value: u64) {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        f.write_all_at(format!("{value:020}\n").as_bytes(), 0)
            .unwrap();
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                std::time::Instant::now() < give_up,
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn samples_follow_the_file_and_stop_returns_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.current");
        put(&path, 100);
        let sampler = Sampler::start().unwrap();
        let h = sampler
            .add_file("abc", &path, Duration::from_millis(2))
            .unwrap();
        wait_for("a first sample", || {
            h.latest().is_some_and(|s| s.bytes == 100)
        });
        put(&path, 250);
        wait_for("the new value", || {
            h.latest().is_some_and(|s| s.bytes == 250)
        });
        assert_eq!(h.ended(), None);
        let m = h.stop();
        assert_eq!(m.end, End::Stopped);
        assert_eq!(m.container, "abc");
        assert!(m.samples.len() >= 2);
        assert_eq!(m.samples_asked, m.samples.len() as u64 + m.precision_errors);
        assert_eq!(m.max_bytes(), Some(250));
        assert!(m
            .samples
            .windows(2)
            .all(|w| w[0].offset_us < w[1].offset_us));
        // Samples sit on the 2 ms grid, each less than an interval after its deadline.
        assert!(
            m.samples.iter().all(|s| s.late_us < 2_000),
            "{:?}",
            m.samples
        );
        let now = EpochMicros::now();
        assert!(m.started_at.0 <= now.0 && m.time_of(m.samples.last().unwrap()).0 <= now.0 + 2_000);
        assert!(sampler.thread_cpu_time().unwrap() > Duration::ZERO);
    }

    #[test]
    fn removing_the_file_ends_sampling_and_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.usage_in_bytes");
        put(&path, 7);
        let sampler = Sampler::start().unwrap();
        let h = sampler
            .add_file("gone", &path, Duration::from_millis(1))
            .unwrap();
        wait_for("a first sample", || h.sample_count() > 0);
        fs::remove_file(&path).unwrap();
        wait_for("the end", || h.ended().is_some());
        let count = h.sample_count();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(h.sample_count(), count, "sampling went on after the end");
        let m = h.stop();
        assert_eq!(m.end, End::ContainerGone);
        assert_eq!(m.samples.len(), count);
        assert!(m.samples.iter().all(|s| s.bytes == 7));
    }

    #[test]
    fn one_thread_serves_many_containers_and_bad_content_ends_one() {
        let dir = tempfile::tempdir().unwrap();
        let sampler = Sampler::start().unwrap();
        let paths: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("c{i}"))).collect();
        for (i, p) in paths.iter().enumerate() {
            put(p, i as u64 + 1);
        }
        let handles: Vec<SampleHandle> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                sampler
                    .add_file(&format!("c{i}"), p, Duration::from_millis(1 + i as u64))
                    .unwrap()
            })
            .collect();
        for h in &handles {
            wait_for("samples of every container", || h.sample_count() >= 3);
        }
        fs::write(&paths[2], "not a number\n").unwrap();
        wait_for("the failure", || handles[2].ended().is_some());
        let all: Vec<Measurements> = handles.into_iter().map(SampleHandle::stop).collect();
        for (i, m) in all.iter().enumerate() {
            assert!(m.samples.iter().all(|s| s.bytes == i as u64 + 1), "{m:?}");
        }
        assert_eq!(all[0].end, End::Stopped);
        assert!(
            matches!(&all[2].end, End::Failed(why) if why.contains("c2") && why.contains("not a number")),
            "{:?}",
            all[2].end
        );
    }

    #[test]
    fn dropping_a_handle_stops_its_sampling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        put(&path, 1);
        let sampler = Sampler::start().unwrap();
        let kept = sampler
            .add_file("kept", &path, Duration::from_millis(1))
            .unwrap();
        let dropped = sampler
            .add_file("dropped", &path, Duration::from_millis(1))
            .unwrap();
        let slot = Arc::clone(&dropped.slot);
        wait_for("samples", || dropped.sample_count() > 0);
        drop(dropped);
        // The thread notices within one wake-up; give it a few.
        let seen = kept.sample_count();
        wait_for("the kept container to go on", || {
            kept.sample_count() > seen + 5
        });
        let count = lock(&slot.collected).samples.len();
        wait_for("more samples of the kept one", || {
            kept.sample_count() > seen + 15
        });
        assert_eq!(
            lock(&slot.collected).samples.len(),
            count,
            "the dropped container is still sampled"
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let sampler = Sampler::start().unwrap();
        let err = sampler
            .add_file(
                "x",
                Path::new("/nonexistent/memory.current"),
                Duration::from_millis(1),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/memory.current"),
            "{err}"
        );
        let err = sampler
            .add_file("x", Path::new("/dev/null"), Duration::ZERO)
            .unwrap_err();
        assert!(matches!(err, SamplerError::Interval { .. }), "{err}");
    }

    #[test]
    fn the_thread_ends_when_the_last_owner_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        put(&path, 1);
        let sampler = Sampler::start().unwrap();
        let tid = sampler.owner.tid;
        let h = sampler
            .add_file("x", &path, Duration::from_millis(1))
            .unwrap();
        drop(sampler);
        // The handle keeps the thread alive.
        wait_for("samples after the sampler was dropped", || {
            h.sample_count() > 2
        });
        let _ = h.stop();
        assert!(
            !Path::new(&format!("/proc/self/task/{tid}")).exists(),
            "thread {tid} still runs"
        );
    }
}

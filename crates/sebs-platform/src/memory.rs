//! Memory measurement of running functions: cgroup sampling, or the engine's stats where cgroup files are not visible, journalled to disk as it goes.
//!
//! `sebs-local start --measure-interval` runs [`measure`] in a process of its own that outlives
//! `start` (as SeBS forks a measuring process per container); `stop` ends it with
//! [`stop_measurer`] and summarises the journals with [`read_journals`]. The journal is the
//! contract between the two: one JSON-lines file per container in a [`MeasureDir`], appended to
//! about once a second, so that a container that dies, or a measurer that is killed, loses at
//! most the last second. The same samples go to SeBS's measurement file ([`SebsLines`]), which
//! `out.json` names for SeBS's own `local stop`.
//!
//! Why segments: a [`SampleHandle`] hands its samples over only when stopped. Every second the
//! measurer adds the container again and then stops the old handle; both sit on the sampler's
//! deadline grid, so the new handle serves every deadline from the moment it was added and the
//! old one every deadline before. Deadlines of the old segment that it did not serve are
//! counted as precision errors, so that samples asked stay exact across segments.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sebs_container::{Docker, MemoryStat};
use sebs_memory::output::{EndName, SourceName};
use sebs_memory::{
    End, Measurements, MemoryCgroup, Recorder, Sample, SampleHandle, Sampler, SamplerError, Source,
    Version,
};
use sebs_wire::EpochMicros;
use serde::{Deserialize, Serialize};

/// How often samples reach the journal.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// Time between two samples.
    pub interval: Duration,
    /// Where the cgroup hierarchy is mounted ([`sebs_memory::DEFAULT_CGROUP_ROOT`] by default).
    pub cgroup_root: PathBuf,
    /// Where the host's `/proc` is, to find a container's cgroup from its PID.
    pub proc_root: PathBuf,
}

impl MemoryConfig {
    pub fn new(interval: Duration) -> MemoryConfig {
        MemoryConfig {
            interval,
            cgroup_root: PathBuf::from(sebs_memory::DEFAULT_CGROUP_ROOT),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// Why measuring, or reading what was measured, failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("create memory journal directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write memory journal {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read memory journal {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse memory journal {path}, line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("sample the memory of container {container}")]
    Sampler {
        container: String,
        #[source]
        source: SamplerError,
    },
}

/// The files of one measurement, in one directory (next to `out.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureDir {
    pub path: PathBuf,
}

impl MeasureDir {
    pub fn new(path: impl Into<PathBuf>) -> MeasureDir {
        MeasureDir { path: path.into() }
    }

    /// Creates the directory (and its parents).
    pub fn create(&self) -> Result<(), MemoryError> {
        std::fs::create_dir_all(&self.path).map_err(|source| MemoryError::CreateDir {
            path: self.path.clone(),
            source,
        })
    }

    /// The journal of `container`.
    pub fn journal(&self, container: &str) -> PathBuf {
        self.path.join(format!("{container}.jsonl"))
    }

    /// The measurer's log (its stderr).
    pub fn log(&self) -> PathBuf {
        self.path.join("measure.log")
    }

    /// SeBS's measurement file, which out.json names for SeBS's `local stop` (see
    /// [`SebsLines`]).
    pub fn sebs_measurements(&self) -> PathBuf {
        self.path.join("sebs_measurements.txt")
    }

    /// Exists once every container's journal has its first line: sampling has begun.
    pub fn ready_marker(&self) -> PathBuf {
        self.path.join("ready")
    }

    /// Exists once the measurer has closed every journal and is about to exit.
    pub fn done_marker(&self) -> PathBuf {
        self.path.join("done")
    }

    fn touch(&self, path: &Path) -> Result<(), MemoryError> {
        std::fs::write(path, b"").map_err(|source| MemoryError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// One line of a journal. The samples of a line are `[offset_us, bytes, late_us]`, the offset
/// counted from `started_at` of the `start` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalLine {
    Start {
        container: String,
        source: SourceName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        interval_us: u64,
        /// Microseconds since the epoch.
        started_at: i64,
    },
    Samples {
        samples: Vec<(u64, u64, u32)>,
        /// Deadlines of this stretch that got no sample.
        precision_errors: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel_peak: Option<u64>,
    },
    End {
        end: EndName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Microseconds since the epoch.
        at: i64,
    },
}

fn end_line(end: &End, at: EpochMicros) -> JournalLine {
    let (end, error) = match end {
        End::Stopped => (EndName::Stopped, None),
        End::ContainerGone => (EndName::ContainerGone, None),
        End::Failed(why) => (EndName::Failed, Some(why.clone())),
    };
    JournalLine::End {
        end,
        error,
        at: at.0,
    }
}

/// SeBS's measurement file, shared by every container of a measurement: each sample is a line
/// `<container id> <bytes>` and each missed deadline a line `precision not met`, as SeBS's
/// measuring processes write it, so that SeBS's `local stop` (which kills the measurer, reads
/// this file into `memory_stats.json` and removes it) works on our deployments too. Written
/// with the journals, one whole batch of lines per write to a file opened for appending.
#[derive(Debug, Clone)]
pub struct SebsLines {
    path: PathBuf,
    file: Arc<File>,
}

impl SebsLines {
    pub fn open(path: PathBuf) -> Result<SebsLines, MemoryError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| MemoryError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(SebsLines {
            path,
            file: Arc::new(file),
        })
    }

    /// Appends the lines of one stretch of `container`'s samples.
    pub fn append(
        &self,
        container: &str,
        bytes: impl IntoIterator<Item = u64>,
        precision_errors: u64,
    ) -> Result<(), MemoryError> {
        let mut text = String::new();
        for b in bytes {
            text.push_str(&format!("{container} {b}\n"));
        }
        for _ in 0..precision_errors {
            text.push_str("precision not met\n");
        }
        if text.is_empty() {
            return Ok(());
        }
        (&*self.file)
            .write_all(text.as_bytes())
            .map_err(|source| MemoryError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// An open journal, appended to one whole line per write; its samples also go to SeBS's
/// measurement file when it has one.
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    sebs: Option<(String, SebsLines)>,
}

impl Journal {
    fn create(path: PathBuf) -> Result<Journal, MemoryError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|source| MemoryError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(Journal {
            path,
            file,
            sebs: None,
        })
    }

    /// Also writes `container`'s samples to SeBS's measurement file.
    fn with_sebs_lines(mut self, container: &str, lines: SebsLines) -> Journal {
        self.sebs = Some((container.to_string(), lines));
        self
    }

    fn append(&mut self, line: &JournalLine) -> Result<(), MemoryError> {
        // Serialising plain data cannot fail.
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .map_err(|source| MemoryError::Write {
                path: self.path.clone(),
                source,
            })?;
        match (line, &self.sebs) {
            (
                JournalLine::Samples {
                    samples,
                    precision_errors,
                    ..
                },
                Some((container, lines)),
            ) => lines.append(
                container,
                samples.iter().map(|&(_, bytes, _)| bytes),
                *precision_errors,
            ),
            _ => Ok(()),
        }
    }
}

/// Rebuilds one container's [`Measurements`] from its journal's lines (a pure function).
///
/// A journal without an `end` line belongs to a measurer that was killed: its samples are
/// kept and the end says so.
pub fn replay(lines: &[JournalLine]) -> Result<Measurements, String> {
    let Some(JournalLine::Start {
        container,
        source,
        cgroup,
        interval_us,
        started_at,
    }) = lines.first()
    else {
        return Err("the first line is not a start line".into());
    };
    let interval = Duration::from_micros(*interval_us);
    let started_at = EpochMicros(*started_at);
    let source = match source {
        SourceName::CgroupV1 => Source::Cgroup(Version::V1),
        SourceName::CgroupV2 => Source::Cgroup(Version::V2),
        SourceName::EngineStats => Source::EngineStats,
    };
    let mut samples = Vec::new();
    let mut precision_errors = 0;
    let mut kernel_peak: Option<u64> = None;
    let mut end = None;
    for line in &lines[1..] {
        match line {
            JournalLine::Start { .. } => return Err("a second start line".into()),
            JournalLine::Samples {
                samples: s,
                precision_errors: e,
                kernel_peak: k,
            } => {
                samples.extend(s.iter().map(|&(offset_us, bytes, late_us)| Sample {
                    offset_us,
                    bytes,
                    late_us,
                }));
                precision_errors += e;
                kernel_peak = kernel_peak.max(*k);
            }
            JournalLine::End {
                end: name,
                error,
                at,
            } => {
                let reason = match name {
                    EndName::Stopped => End::Stopped,
                    EndName::ContainerGone => End::ContainerGone,
                    EndName::Failed => End::Failed(error.clone().unwrap_or_default()),
                };
                end = Some((reason, EpochMicros(*at)));
            }
        }
    }
    let (end, at) = end.unwrap_or_else(|| {
        let last = samples.last().map_or(started_at, |s| {
            EpochMicros(started_at.0 + s.offset_us as i64)
        });
        (
            End::Failed(
                "finish measuring: the measuring process ended before closing its journal".into(),
            ),
            last,
        )
    });
    if source == Source::EngineStats {
        // The engine decides when samples come; asked is counted from the elapsed time.
        let mut recorder = Recorder::starting_at(container, source, interval, started_at);
        for s in &samples {
            recorder.record(EpochMicros(started_at.0 + s.offset_us as i64), s.bytes);
        }
        return Ok(recorder.finish(at, end));
    }
    Ok(Measurements {
        container: container.clone(),
        source,
        cgroup: cgroup.clone(),
        interval,
        started_at,
        samples_asked: samples.len() as u64 + precision_errors,
        samples,
        precision_errors,
        end,
        kernel_peak,
    })
}

/// Parses a journal's text; a torn last line (no newline: the writer was killed mid-write) is
/// dropped.
pub fn parse_journal(path: &Path, text: &str) -> Result<Vec<JournalLine>, MemoryError> {
    let complete = text.ends_with('\n');
    let count = text.lines().count();
    let mut lines = Vec::with_capacity(count);
    for (i, raw) in text.lines().enumerate() {
        match serde_json::from_str(raw) {
            Ok(line) => lines.push(line),
            Err(_) if i + 1 == count && !complete => break,
            Err(e) => {
                return Err(MemoryError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(lines)
}

/// Reads one journal back into [`Measurements`].
pub fn read_journal(path: &Path) -> Result<Measurements, MemoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| MemoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lines = parse_journal(path, &text)?;
    replay(&lines).map_err(|message| MemoryError::Parse {
        path: path.to_path_buf(),
        line: 1,
        message,
    })
}

/// The measurements of `containers`, in that order; a container without a journal (the
/// measurer never got to it) is `None`.
pub fn read_journals(
    dir: &MeasureDir,
    containers: &[String],
) -> Result<Vec<Option<Measurements>>, MemoryError> {
    containers
        .iter()
        .map(|id| {
            let path = dir.journal(id);
            match read_journal(&path) {
                Ok(m) => Ok(Some(m)),
                Err(MemoryError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .collect()
}

/// Where a container's memory can be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Cgroup(MemoryCgroup),
    /// Its cgroup files are not visible here; the reason says what was tried.
    EngineStats {
        reason: String,
    },
}

/// Finds `container`'s memory cgroup below the configured root, by its id, else through its
/// PID from the engine (only a cgroup whose path names the container is believed, since a
/// remote engine's PIDs mean nothing here). Neither: the engine's stats.
pub async fn locate(docker: &Docker, config: &MemoryConfig, container: &str) -> Probe {
    let (root, id) = (config.cgroup_root.clone(), container.to_string());
    let by_id =
        tokio::task::spawn_blocking(move || sebs_memory::find_container_cgroup(&root, &id)).await;
    let by_id_error = match by_id {
        Ok(Ok(cgroup)) => return Probe::Cgroup(cgroup),
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("search the cgroup tree: {}", sebs_wire::ErrorChain(&e)),
    };
    let pid = sebs_container::inspect_state(docker, container)
        .await
        .ok()
        .and_then(|state| state.pid);
    if let Some(pid) = pid {
        match sebs_memory::find_pid_cgroup(&config.cgroup_root, &config.proc_root, pid) {
            Ok(cgroup)
                if cgroup.dir.to_string_lossy().contains(container)
                    && cgroup.current_path().is_file() =>
            {
                return Probe::Cgroup(cgroup)
            }
            Ok(cgroup) => {
                return Probe::EngineStats {
                    reason: format!(
                        "{by_id_error}; PID {pid} is in {}, which is not this container's",
                        cgroup.dir.display()
                    ),
                }
            }
            Err(e) => {
                return Probe::EngineStats {
                    reason: format!(
                        "{by_id_error}; by PID {pid}: failed to {}",
                        sebs_wire::ErrorChain(&e)
                    ),
                }
            }
        }
    }
    Probe::EngineStats {
        reason: by_id_error,
    }
}

/// A container sampled from its cgroup.
struct Sampled {
    container: String,
    cgroup: MemoryCgroup,
    journal: Journal,
    started_at: EpochMicros,
    handle: Option<SampleHandle>,
}

impl Sampled {
    /// Moves what the current handle holds to the journal; with `go_on`, sampling continues
    /// on a fresh handle. Returns false once this container is done.
    fn rotate(
        &mut self,
        sampler: &Sampler,
        interval: Duration,
        go_on: bool,
    ) -> Result<bool, MemoryError> {
        let Some(old) = self.handle.take() else {
            return Ok(false);
        };
        let alive = old.ended().is_none();
        let cut = EpochMicros::now();
        let next = if go_on && alive {
            sampler.add(&self.container, &self.cgroup, interval).ok()
        } else {
            None
        };
        let m = old.stop();
        let segment_start = m.started_at.micros_since(self.started_at);
        let to_journal = |s: &Sample| {
            (
                (segment_start + s.offset_us as i64).max(0) as u64,
                s.bytes,
                s.late_us,
            )
        };
        let step = interval.as_micros().max(1) as i64;
        let (samples, precision_errors) = if next.is_some() {
            // The new handle serves deadlines from `cut` on; this one those before it.
            let deadline = |s: &Sample| m.started_at.0 + s.offset_us as i64 - i64::from(s.late_us);
            let kept: Vec<_> = m
                .samples
                .iter()
                .filter(|s| deadline(s) < cut.0)
                .map(to_journal)
                .collect();
            let asked = if cut.0 > m.started_at.0 {
                (cut.0 - m.started_at.0 - 1) / step + 1
            } else {
                0
            };
            let errors = (asked as u64).saturating_sub(kept.len() as u64);
            (kept, errors)
        } else {
            (
                m.samples.iter().map(to_journal).collect(),
                m.precision_errors,
            )
        };
        self.journal.append(&JournalLine::Samples {
            samples,
            precision_errors,
            kernel_peak: m.kernel_peak,
        })?;
        match next {
            Some(handle) => {
                self.handle = Some(handle);
                Ok(true)
            }
            None => {
                let end = if alive && !go_on {
                    End::Stopped
                } else if alive {
                    End::ContainerGone
                } else {
                    m.end
                };
                self.journal.append(&end_line(&end, EpochMicros::now()))?;
                tracing::info!(container = %self.container, samples_end = %end, "memory sampling ended");
                Ok(false)
            }
        }
    }
}

/// Measures the memory of `containers` every `config.interval` until `until` completes or
/// every container has gone, journalling into `dir` (see the module's documentation). The
/// ready marker appears once every journal has its first line, the done marker at the end.
pub async fn measure(
    docker: &Docker,
    config: &MemoryConfig,
    containers: &[String],
    dir: &MeasureDir,
    until: impl Future<Output = ()>,
) -> Result<(), MemoryError> {
    dir.create()?;
    let sebs_lines = SebsLines::open(dir.sebs_measurements())?;
    let interval_us = config.interval.as_micros() as u64;
    let mut sampler: Option<Sampler> = None;
    let mut sampled = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut followers = tokio::task::JoinSet::new();
    for id in containers {
        let mut journal = Journal::create(dir.journal(id))?.with_sebs_lines(id, sebs_lines.clone());
        match locate(docker, config, id).await {
            Probe::Cgroup(cgroup) => {
                let sampler = match &sampler {
                    Some(s) => s.clone(),
                    None => sampler
                        .insert(Sampler::start().map_err(|source| MemoryError::Sampler {
                            container: id.clone(),
                            source,
                        })?)
                        .clone(),
                };
                let started_at = EpochMicros::now();
                let handle = sampler
                    .add(id, &cgroup, config.interval)
                    .map_err(|source| MemoryError::Sampler {
                        container: id.clone(),
                        source,
                    })?;
                journal.append(&JournalLine::Start {
                    container: id.clone(),
                    source: match cgroup.version {
                        Version::V1 => SourceName::CgroupV1,
                        Version::V2 => SourceName::CgroupV2,
                    },
                    cgroup: Some(cgroup.dir.clone()),
                    interval_us,
                    started_at: started_at.0,
                })?;
                tracing::info!(container = %id, cgroup = %cgroup.dir.display(), interval_us, "sampling memory from the cgroup");
                sampled.push(Sampled {
                    container: id.clone(),
                    cgroup,
                    journal,
                    started_at,
                    handle: Some(handle),
                });
            }
            Probe::EngineStats { reason } => {
                let started_at = EpochMicros::now();
                journal.append(&JournalLine::Start {
                    container: id.clone(),
                    source: SourceName::EngineStats,
                    cgroup: None,
                    interval_us,
                    started_at: started_at.0,
                })?;
                tracing::warn!(
                    container = %id,
                    "the container's cgroup files are not visible here (failed to {reason}); memory comes \
                     from the engine's stats stream instead (engine-stats), about one sample per second"
                );
                let (docker, id, stop) = (docker.clone(), id.clone(), stop_rx.clone());
                followers.spawn(async move {
                    follow_stats(docker, id, journal, started_at, stop).await
                });
            }
        }
    }
    dir.touch(&dir.ready_marker())?;

    tokio::pin!(until);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FLUSH_EVERY, FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut result = Ok(());
    loop {
        if sampled.is_empty() && followers.is_empty() {
            tracing::info!("every measured container has gone");
            break;
        }
        tokio::select! {
            _ = &mut until => break,
            _ = tick.tick(), if !sampled.is_empty() => {}
            Some(done) = followers.join_next(), if !followers.is_empty() => {
                if let Ok(Err(e)) = done {
                    tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                    result = Err(e);
                }
                continue;
            }
        }
        if let Some(sampler) = &sampler {
            let mut kept = Vec::with_capacity(sampled.len());
            for mut s in sampled.drain(..) {
                match s.rotate(sampler, config.interval, true) {
                    Ok(true) => kept.push(s),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                        result = Err(e);
                    }
                }
            }
            sampled = kept;
        }
    }
    if let Some(sampler) = &sampler {
        for s in &mut sampled {
            if let Err(e) = s.rotate(sampler, config.interval, false) {
                tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                result = Err(e);
            }
        }
    }
    let _ = stop_tx.send(true);
    while let Some(done) = followers.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
            result = Err(e);
        }
    }
    dir.touch(&dir.done_marker())?;
    result
}

/// Journals the engine's stats of `container` until it goes or `stop` turns true.
async fn follow_stats(
    docker: Docker,
    container: String,
    mut journal: Journal,
    started_at: EpochMicros,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), MemoryError> {
    let mut stream = Box::pin(sebs_container::memory_stats(&docker, &container));
    let end = loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break End::Stopped;
                }
            }
            item = stream.next() => match item {
                Some(Ok(MemoryStat::Usage(bytes))) => {
                    let offset = EpochMicros::now().micros_since(started_at).max(0) as u64;
                    journal.append(&JournalLine::Samples {
                        samples: vec![(offset, bytes, 0)],
                        precision_errors: 0,
                        kernel_peak: None,
                    })?;
                }
                Some(Ok(MemoryStat::Gone)) | None => break End::ContainerGone,
                Some(Err(e)) => break End::Failed(sebs_wire::ErrorChain(&e).to_string()),
            }
        }
    };
    tracing::info!(container = %container, samples_end = %end, "engine stats ended");
    journal.append(&end_line(&end, EpochMicros::now()))
}

/// How [`stop_measurer`] found the measuring process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasurerStop {
    /// It flushed its journals and exited on SIGTERM.
    Stopped,
    /// It had already ended (its containers went, or it was killed).
    AlreadyGone,
    /// It did not finish within the grace period and was killed; the journals hold all but
    /// about the last second.
    Killed,
}

/// Whether `pid` runs our measurer over `dir`: its command line names `measure` and `dir`
/// (a PID reused by another process is left alone). Without `/proc`, a live PID is believed.
fn is_measurer(pid: nix::unistd::Pid, dir: &MeasureDir) -> bool {
    if nix::sys::signal::kill(pid, None).is_err() {
        return false;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if !Path::new("/proc/self").exists() {
        return true;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let dir_arg = dir.path.as_os_str().as_encoded_bytes();
    let zombie = std::fs::read_to_string(proc_dir.join("stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    !zombie && args.contains(&&b"measure"[..]) && args.contains(&dir_arg)
}

/// Ends the measurer `pid` over `dir`: SIGTERM, then waits up to `grace` for it to close its
/// journals, then SIGKILL.
pub async fn stop_measurer(pid: u32, dir: &MeasureDir, grace: Duration) -> MeasurerStop {
    use nix::sys::signal::{kill, Signal};
    let Ok(raw) = i32::try_from(pid) else {
        return MeasurerStop::AlreadyGone;
    };
    let pid = nix::unistd::Pid::from_raw(raw);
    if dir.done_marker().exists() || !is_measurer(pid, dir) {
        return MeasurerStop::AlreadyGone;
    }
    if kill(pid, Signal::SIGTERM).is_err() {
        return MeasurerStop::AlreadyGone;
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if dir.done_marker().exists() || !is_measurer(pid, dir) {
            return MeasurerStop::Stopped;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if is_measurer(pid, dir) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    MeasurerStop::Killed
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000;

    fn start(source: SourceName, interval_us: u64) -> JournalLine {
        JournalLine::Start {
            container: "abc".into(),
            source,
            cgroup: None,
            interval_us,
            started_at: T0,
        }
    }

    fn samples(s: &[(u64, u64)], precision_errors: u64) -> JournalLine {
        JournalLine::Samples {
            samples: s.iter().map(|&(o, b)| (o, b, 5)).collect(),
            precision_errors,
            kernel_peak: None,
        }
    }

    fn end(end: EndName, at_offset: i64) -> JournalLine {
        JournalLine::End {
            end,
            error: None,
            at: T0 + at_offset,
        }
    }

    /// (bytes, samples asked, precision errors, end) of the replayed journal.
    fn check(lines: &[JournalLine], expect: Result<(&[u64], u64, u64, End), &str>) {
        let got = replay(lines);
        match (got, expect) {
            (Ok(m), Ok((bytes, asked, errors, end))) => {
                let got_bytes: Vec<u64> = m.samples.iter().map(|s| s.bytes).collect();
                assert_eq!(
                    (
                        got_bytes.as_slice(),
                        m.samples_asked,
                        m.precision_errors,
                        m.end
                    ),
                    (bytes, asked, errors, end)
                );
            }
            (Err(e), Err(needle)) => assert!(e.contains(needle), "{e:?} lacks {needle:?}"),
            (got, expect) => panic!("replay gave {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn journals_replay_into_measurements() {
        use SourceName::*;
        let cg = start(CgroupV1, 10_000);
        // Segments concatenate; their precision errors add up.
        check(
            &[
                cg.clone(),
                samples(&[(0, 1), (10_000, 2)], 1),
                samples(&[(30_000, 3)], 0),
                end(EndName::Stopped, 40_000),
            ],
            Ok((&[1, 2, 3], 4, 1, End::Stopped)),
        );
        // A container that died mid-way keeps its samples.
        check(
            &[
                cg.clone(),
                samples(&[(0, 7)], 0),
                end(EndName::ContainerGone, 5_000),
            ],
            Ok((&[7], 1, 0, End::ContainerGone)),
        );
        // A killed measurer wrote no end line.
        let killed = replay(&[cg.clone(), samples(&[(0, 7)], 0)]).unwrap();
        assert!(
            matches!(&killed.end, End::Failed(why) if why.contains("before closing its journal")),
            "{:?}",
            killed.end
        );
        assert_eq!(killed.samples.len(), 1);
        // Engine stats: asked is counted from the time that passed at the interval asked for.
        check(
            &[
                start(EngineStats, 100_000),
                samples(&[(0, 5)], 0),
                samples(&[(1_000_000, 6)], 0),
                end(EndName::Stopped, 1_050_000),
            ],
            Ok((&[5, 6], 11, 9, End::Stopped)),
        );
        check(
            &[samples(&[(0, 1)], 0)],
            Err("first line is not a start line"),
        );
        check(&[cg.clone(), cg], Err("a second start line"));
        check(&[], Err("first line is not a start line"));
    }

    #[test]
    fn journal_text_survives_a_torn_last_line() {
        let path = Path::new("/x/abc.jsonl");
        let lines = [start(SourceName::CgroupV2, 1_000), samples(&[(0, 1)], 0)];
        let mut text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        assert_eq!(parse_journal(path, &text).unwrap(), lines);
        text.push_str("{\"kind\":\"samp");
        assert_eq!(
            parse_journal(path, &text).unwrap(),
            lines,
            "a torn last line is dropped"
        );
        text.push('\n');
        let err = parse_journal(path, &text).unwrap_err().to_string();
        assert!(err.contains("/x/abc.jsonl, line 3"), "{err}");
        let first = serde_json::to_string(&lines[0]).unwrap();
        assert!(first.starts_with("{\"kind\":\"start\""), "{first}");
        assert!(first.contains("\"source\":\"cgroup-v2\""), "{first}");
    }

    #[test]
    fn journals_are_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let measure_dir = MeasureDir::new(dir.path().join("m"));
        measure_dir.create().unwrap();
        let lines = SebsLines::open(measure_dir.sebs_measurements()).unwrap();
        let mut journal = Journal::create(measure_dir.journal("abc"))
            .unwrap()
            .with_sebs_lines("abc", lines.clone());
        journal.append(&start(SourceName::CgroupV1, 1_000)).unwrap();
        journal
            .append(&samples(&[(0, 10), (1_000, 20)], 0))
            .unwrap();
        let mut other = Journal::create(measure_dir.journal("def"))
            .unwrap()
            .with_sebs_lines("def", lines);
        other.append(&samples(&[(0, 7)], 2)).unwrap();
        journal.append(&samples(&[(2_000, 30)], 0)).unwrap();
        // SeBS's file: a line per sample, one per missed deadline, in the order written.
        assert_eq!(
            std::fs::read_to_string(measure_dir.sebs_measurements()).unwrap(),
            "abc 10\nabc 20\ndef 7\nprecision not met\nprecision not met\nabc 30\n"
        );
        let all = read_journals(&measure_dir, &["abc".to_string(), "missing".to_string()]).unwrap();
        assert_eq!(all[0].as_ref().map(|m| m.max_bytes()), Some(Some(30)));
        assert_eq!(all[1], None);
        let err = read_journal(&measure_dir.journal("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.jsonl"), "{err}");
    }

    #[test]
    fn segments_of_a_real_sampler_neither_lose_nor_repeat_deadlines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.usage_in_bytes");
        std::fs::write(&file, "4096\n").unwrap();
        let cgroup = MemoryCgroup {
            dir: dir.path().to_path_buf(),
            version: Version::V1,
        };
        let measure_dir = MeasureDir::new(dir.path().join("m"));
        measure_dir.create().unwrap();
        let sampler = Sampler::start().unwrap();
        let interval = Duration::from_millis(2);
        let started_at = EpochMicros::now();
        let handle = sampler.add("abc", &cgroup, interval).unwrap();
        let mut journal = Journal::create(measure_dir.journal("abc")).unwrap();
        journal.append(&start(SourceName::CgroupV1, 2_000)).unwrap();
        let mut s = Sampled {
            container: "abc".into(),
            cgroup,
            journal,
            started_at,
            handle: Some(handle),
        };
        // At least five cuts, and samples in at least three segments, however long a loaded
        // machine takes to give the sampler those.
        let path = measure_dir.journal("abc");
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        for cuts in 1.. {
            std::thread::sleep(Duration::from_millis(50));
            assert!(s.rotate(&sampler, interval, true).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            let filled = parse_journal(&path, &text)
                .unwrap()
                .iter()
                .filter(
                    |l| matches!(l, JournalLine::Samples { samples, .. } if !samples.is_empty()),
                )
                .count();
            if cuts >= 5 && filled >= 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "{filled} segments with samples after {cuts} cuts"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!s.rotate(&sampler, interval, false).unwrap());
        let m = read_journal(&path).unwrap();
        assert_eq!(m.end, End::Stopped);
        // Every 2 ms, each deadline once: consecutive deadlines are a whole number of
        // intervals apart (give or take the µs of two clock readings), across the cuts too.
        let deadlines: Vec<i64> = m
            .samples
            .iter()
            .map(|x| x.offset_us as i64 - i64::from(x.late_us))
            .collect();
        for w in deadlines.windows(2) {
            let gap = w[1] - w[0];
            let off_grid = (gap + 1_000).rem_euclid(2_000) - 1_000;
            assert!(
                gap > 1_900 && off_grid.abs() < 100,
                "deadlines {} and {} in {deadlines:?}",
                w[0],
                w[1]
            );
        }
        assert_eq!(m.samples_asked, m.samples.len() as u64 + m.precision_errors);
    }
}

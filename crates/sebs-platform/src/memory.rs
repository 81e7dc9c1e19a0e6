//! The measurer of a deployment: where each container's memory is read (its cgroup, else the engine's stats), and the measuring process's life.
//!
//! `sebs-local start --measure-interval` runs [`measure`] in a process of its own that outlives
//! `start` (as SeBS forks a measuring process per container); `stop` ends it with
//! [`stop_measurer`] and summarises the journals (`sebs_memory::read_journals`). What is
//! measured and how it is journalled is sebs-memory's ([`sebs_memory::journal`],
//! [`Segmented`]); the engine's calls are sebs-container's. This module only composes them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sebs_container::{Docker, MemoryStat};
use sebs_memory::{
    End, Journal, JournalError, MeasureDir, MemoryCgroup, ReadingsJournal, Sampler, SebsLines,
    Segmented,
};

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

/// Why measuring failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
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
        let journal = Journal::create(dir.journal(id))?.with_sebs_lines(id, sebs_lines.clone());
        match locate(docker, config, id).await {
            Probe::Cgroup(cgroup) => {
                let sampler = match &sampler {
                    Some(s) => s.clone(),
                    None => sampler
                        .insert(Sampler::start().map_err(|source| JournalError::Sampler {
                            container: id.clone(),
                            source,
                        })?)
                        .clone(),
                };
                tracing::info!(container = %id, cgroup = %cgroup.dir.display(), interval_us, "sampling memory from the cgroup");
                sampled.push(Segmented::start(
                    &sampler,
                    id,
                    cgroup,
                    config.interval,
                    journal,
                )?);
            }
            Probe::EngineStats { reason } => {
                let journal = ReadingsJournal::start(journal, id, config.interval)?;
                tracing::warn!(
                    container = %id,
                    "the container's cgroup files are not visible here (failed to {reason}); memory comes \
                     from the engine's stats stream instead (engine-stats), about one sample per second"
                );
                let (docker, id, stop) = (docker.clone(), id.clone(), stop_rx.clone());
                followers.spawn(async move { follow_stats(docker, id, journal, stop).await });
            }
        }
    }
    dir.mark_ready()?;

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
                match s.rotate(sampler, true) {
                    Ok(None) => kept.push(s),
                    Ok(Some(end)) => sampling_ended(&s, &end),
                    Err(e) => {
                        tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                        result = Err(e.into());
                    }
                }
            }
            sampled = kept;
        }
    }
    if let Some(sampler) = &sampler {
        for s in &mut sampled {
            match s.rotate(sampler, false) {
                Ok(end) => sampling_ended(s, &end.unwrap_or(End::Stopped)),
                Err(e) => {
                    tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                    result = Err(e.into());
                }
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
    dir.mark_done()?;
    result
}

/// Journals the engine's stats of `container` until it goes or `stop` turns true.
async fn follow_stats(
    docker: Docker,
    container: String,
    mut journal: ReadingsJournal,
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
                Some(Ok(MemoryStat::Usage(bytes))) => journal.record(bytes)?,
                Some(Ok(MemoryStat::Gone)) | None => break End::ContainerGone,
                Some(Err(e)) => break End::Failed(sebs_wire::ErrorChain(&e).to_string()),
            }
        }
    };
    tracing::info!(container = %container, samples_end = %end, "engine stats ended");
    Ok(journal.finish(&end)?)
}

fn sampling_ended(s: &Segmented, end: &End) {
    tracing::info!(container = %s.container(), samples_end = %end, "memory sampling ended");
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

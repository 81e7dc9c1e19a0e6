//! The measurer of a deployment: where each container's memory is read (its cgroup, else the engine's stats), and the measuring process's life.
//!
//! `sebs-local start --measure-interval` runs [`measure`] in a process of its own that outlives
//! `start` (as SeBS forks a measuring process per container); `stop` ends it with
//! [`stop_measurer`] and summarises the journals (`sebs_memory::read_journals`). What is
//! measured and how it is journalled is sebs-memory's ([`sebs_memory::journal`],
//! [`Segmented`]); the engine's calls are sebs-container's. This module only composes them.
//!
//! Containers on an engine whose cgroup files this host cannot read (a remote engine) are
//! not the measurer's: their agents sample their own cgroup (told at create, see
//! `PlatformConfig::agent_memory_interval`), and [`finish`] fetches each series
//! (`GET /memory`, the same journal lines) into the measurement directory before reading
//! the journals, so that both kinds end in the same files, each with its source.

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use sebs_container::{Docker, MemoryStat};
use sebs_memory::{
    End, Journal, JournalError, JournalLine, MeasureDir, MemoryCgroup, MemoryReport, OutputError,
    ReadingsJournal, Sampler, SebsLines, SebsMemoryStats, Segmented, Source,
};
use sebs_wire::{EpochMicros, InvocationRecord};

use crate::deployment::AgentMeasured;

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

use crate::MemorySection;

/// The subcommand of our binary that runs [`measure`] (hidden in `sebs-local`).
pub const MEASURE_SUBCOMMAND: &str = "measure";

/// How long [`launch`] waits for the measurer to have begun sampling every container.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`abandon`] gives the measurer to close its journals.
const ABANDON_GRACE: Duration = Duration::from_secs(5);

/// How long one agent may take to hand over its memory series (a few MiB at most).
const AGENT_SERIES_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`finish`] gives the measurer to close its journals after SIGTERM.
pub const MEASURER_GRACE: Duration = Duration::from_secs(10);

/// Why measuring, or starting the measurer, failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("resolve {path}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("use {path} for the memory measurement: it exists and is not a memory measurement directory; move it away or choose another output")]
    NotMeasureDir { path: PathBuf },
    #[error("remove {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create {path}")]
    CreateLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("start the memory measuring process {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wait for the measuring process: {why}; its log {log} ends with:\n{tail}")]
    NotReady {
        why: String,
        log: PathBuf,
        tail: String,
    },
}

impl MemoryError {
    /// Whether the user's input is to blame (the output's place), rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            MemoryError::Journal(e) => matches!(e, JournalError::CreateDir { .. }),
            MemoryError::Resolve { .. }
            | MemoryError::NotMeasureDir { .. }
            | MemoryError::RemoveDir { .. }
            | MemoryError::CreateLog { .. } => true,
            MemoryError::Output(_) | MemoryError::Spawn { .. } | MemoryError::NotReady { .. } => {
                false
            }
        }
    }
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
    !zombie && args.contains(&MEASURE_SUBCOMMAND.as_bytes()) && args.contains(&dir_arg)
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

/// What the measuring process is told on its command line, after [`MEASURE_SUBCOMMAND`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurerArgs {
    /// The measurement directory: journals, log, markers.
    pub dir: PathBuf,
    /// Milliseconds between two samples.
    pub interval_ms: u64,
    /// Where the cgroup hierarchy is mounted.
    pub cgroup_root: PathBuf,
    /// The containers to measure.
    pub containers: Vec<String>,
}

impl MeasurerArgs {
    /// `measure --dir DIR --interval-ms MS --cgroup-root ROOT ID…`
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            MEASURE_SUBCOMMAND.into(),
            "--dir".into(),
            self.dir.clone().into(),
            "--interval-ms".into(),
            self.interval_ms.to_string().into(),
            "--cgroup-root".into(),
            self.cgroup_root.clone().into(),
        ];
        args.extend(self.containers.iter().map(OsString::from));
        args
    }

    /// How [`measure`] is to measure.
    pub fn config(&self) -> MemoryConfig {
        let mut config = MemoryConfig::new(Duration::from_millis(self.interval_ms));
        config.cgroup_root = self.cgroup_root.clone();
        config
    }
}

/// Starts the measuring process of the deployment written to `output` and returns once it
/// samples every container: `program` (our own binary) runs [`MEASURE_SUBCOMMAND`] over
/// `<output>.memory` ([`MeasureDir::beside`]), detached into its own process group (Ctrl-C in
/// the terminal does not reach it) and logging to that directory. SeBS forks one measuring
/// process per container that outlives `sebs local start`; we run one for all.
///
/// `agents` are containers whose agents sample their own memory: they are recorded for
/// [`finish`], and without `containers` no process is started.
pub async fn launch(
    program: &Path,
    output: &Path,
    interval_ms: u64,
    cgroup_root: &Path,
    containers: &[String],
    agents: Vec<AgentMeasured>,
) -> Result<MemorySection, MemoryError> {
    let dir = MeasureDir::beside(output).map_err(|source| MemoryError::Resolve {
        path: output.to_path_buf(),
        source,
    })?;
    let cgroup_root = std::path::absolute(cgroup_root).map_err(|source| MemoryError::Resolve {
        path: cgroup_root.to_path_buf(),
        source,
    })?;
    if dir.path.exists() {
        // A directory of an earlier measurement (its log is there) is replaced; anything else is not ours.
        if !dir.log().exists() {
            return Err(MemoryError::NotMeasureDir { path: dir.path });
        }
        std::fs::remove_dir_all(&dir.path).map_err(|source| MemoryError::RemoveDir {
            path: dir.path.clone(),
            source,
        })?;
    }
    dir.create()?;
    let log = std::fs::File::create(dir.log()).map_err(|source| MemoryError::CreateLog {
        path: dir.log(),
        source,
    })?;
    if !agents.is_empty() {
        tracing::info!(
            interval_ms,
            "{} containers sample their own memory until `stop`",
            agents.len()
        );
    }
    if containers.is_empty() {
        return Ok(MemorySection {
            pid: None,
            dir: dir.path,
            interval_ms,
            cgroup_root,
            agents,
        });
    }
    let args = MeasurerArgs {
        dir: dir.path.clone(),
        interval_ms,
        cgroup_root: cgroup_root.clone(),
        containers: containers.to_vec(),
    };
    let mut command = Command::new(program);
    command
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|source| MemoryError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    wait_ready(&mut child, &dir).await?;
    tracing::info!(
        pid = child.id(),
        dir = %dir.path.display(),
        interval_ms,
        "measuring memory of {} containers until `stop`",
        containers.len()
    );
    Ok(MemorySection {
        pid: Some(child.id()),
        dir: dir.path,
        interval_ms,
        cgroup_root,
        agents,
    })
}

/// Waits for the ready marker; a measurer that exits or takes longer than [`READY_TIMEOUT`]
/// is a failure that quotes the end of its log.
async fn wait_ready(child: &mut Child, dir: &MeasureDir) -> Result<(), MemoryError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if dir.ready_marker().exists() {
            return Ok(());
        }
        let exited = child.try_wait().ok().flatten();
        let timed_out = tokio::time::Instant::now() >= deadline;
        if exited.is_some() || timed_out {
            if timed_out {
                let _ = child.kill();
                let _ = child.wait();
            }
            let log = std::fs::read_to_string(dir.log()).unwrap_or_default();
            let why = match exited {
                Some(status) => format!("it exited ({status})"),
                None => format!("it did not begin within {READY_TIMEOUT:?}"),
            };
            return Err(MemoryError::NotReady {
                why,
                log: dir.log(),
                tail: sebs_container::text::last_lines(&log, 10),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends a measuring process [`launch`] started and removes its directory, when `start`
/// cannot finish.
pub async fn abandon(section: &MemorySection) {
    let dir = MeasureDir::new(section.dir.clone());
    if let Some(pid) = section.pid {
        stop_measurer(pid, &dir, ABANDON_GRACE).await;
    }
    let _ = std::fs::remove_dir_all(&dir.path);
}

/// Ends the measuring process of a deployment, then writes SeBS's memory file `stats` and
/// our report `report` from its journals (also those of containers that died), with each
/// container's invocations from `logs` (by container id), and removes the journals.
pub async fn finish(
    section: &MemorySection,
    containers: &[String],
    logs: &HashMap<String, Vec<InvocationRecord>>,
    stats: &Path,
    report: &Path,
) -> Result<(), MemoryError> {
    let dir = MeasureDir::new(section.dir.clone());
    let fetched = fetch_agent_series(&dir, &section.agents);
    let stopped = async {
        let Some(pid) = section.pid else { return };
        match stop_measurer(pid, &dir, MEASURER_GRACE).await {
            MeasurerStop::Stopped => {
                tracing::info!(pid, "stopped the memory measuring process")
            }
            MeasurerStop::AlreadyGone => {
                tracing::info!(pid, "the memory measuring process had already ended")
            }
            MeasurerStop::Killed => tracing::warn!(
                pid,
                "the memory measuring process did not finish within {MEASURER_GRACE:?} and was \
                 killed; its last second of samples may be missing"
            ),
        }
    };
    tokio::join!(fetched, stopped);
    let journals = sebs_memory::read_journals(&dir, containers)?;
    let mut all = Vec::with_capacity(journals.len());
    for (id, m) in containers.iter().zip(journals) {
        let Some(m) = m else {
            tracing::warn!(container = %id, "no memory was measured for container {id}: it has no journal in {}", dir.path.display());
            continue;
        };
        if let Source::Agent(_) = m.source {
            tracing::info!(
                container = %id,
                "the memory of container {id} was sampled by its agent (source {}), as this \
                 host cannot read its cgroup",
                m.source
            );
        }
        if m.source == Source::EngineStats {
            tracing::warn!(
                container = %id,
                "the memory of container {id} comes from the engine's stats stream (source engine-stats, \
                 about one sample per second), as its cgroup files were not visible"
            );
        }
        match &m.end {
            End::Stopped => {}
            End::ContainerGone => tracing::warn!(
                container = %id,
                "container {id} went away during the measurement: its memory profile ends early"
            ),
            End::Failed(why) => {
                tracing::warn!(container = %id, "measuring container {id} ended early: failed to {why}")
            }
        }
        all.push(m);
    }
    SebsMemoryStats::from_measurements(&all).write(stats)?;
    let mut memory_report = MemoryReport::from_measurements(&all);
    for container in &mut memory_report.containers {
        if let Some(log) = logs.get(&container.container) {
            container.add_invocations(log);
        }
    }
    memory_report.write(report)?;
    let samples: usize = all.iter().map(|m| m.samples.len()).sum();
    tracing::info!(
        containers = all.len(),
        samples,
        "memory statistics in {}, report in {}",
        stats.display(),
        report.display()
    );
    std::fs::remove_dir_all(&dir.path).map_err(|source| MemoryError::RemoveDir {
        path: dir.path.clone(),
        source,
    })
}

/// Fetches the series of every container whose agent sampled its own memory into its
/// journal in `dir` (SeBS's measurement file gets the samples too), closing it as stopped
/// now when the agent's series had not ended. A container that cannot say is warned about
/// and gets no journal ([`finish`] then says it has no profile).
async fn fetch_agent_series(dir: &MeasureDir, agents: &[AgentMeasured]) {
    if agents.is_empty() {
        return;
    }
    let sebs_lines = match dir
        .create()
        .and_then(|()| SebsLines::open(dir.sebs_measurements()))
    {
        Ok(lines) => lines,
        Err(e) => return tracing::error!("failed to {}", sebs_wire::ErrorChain(&e)),
    };
    let asks = agents.iter().map(|a| async move {
        let series = sebs_trigger::memory_series(&a.url, &a.container, AGENT_SERIES_TIMEOUT).await;
        (a, series)
    });
    for (a, series) in futures_util::future::join_all(asks).await {
        let id = &a.container;
        let written = match series {
            Ok(body) => write_agent_journal(dir, id, &body, sebs_lines.clone()),
            Err(e) => {
                tracing::warn!(
                    container = %id,
                    "no memory profile of container {id}, whose agent sampled it: failed to {}",
                    sebs_wire::ErrorChain(&e)
                );
                continue;
            }
        };
        if let Err(e) = written {
            tracing::warn!(container = %id, "failed to {}", sebs_wire::ErrorChain(&e));
        }
    }
}

/// Writes what the agent of `container` answered (journal lines) as its journal in `dir`.
fn write_agent_journal(
    dir: &MeasureDir,
    container: &str,
    body: &[u8],
    sebs_lines: SebsLines,
) -> Result<(), JournalError> {
    let path = dir.journal(container);
    let mut lines = sebs_memory::parse_journal(&path, &String::from_utf8_lossy(body))?;
    // The agent knows itself by its host name (the id's first 12 digits); the journal is
    // the container's, by its whole id as the other journals.
    if let Some(JournalLine::Start {
        container: named, ..
    }) = lines.first_mut()
    {
        *named = container.to_string();
    }
    if lines.is_empty() {
        return Ok(());
    }
    let ended = matches!(lines.last(), Some(JournalLine::End { .. }));
    let mut journal = Journal::create(path)?.with_sebs_lines(container, sebs_lines);
    for line in &lines {
        journal.append(line)?;
    }
    if !ended {
        journal.append(&JournalLine::end(&End::Stopped, EpochMicros::now()))?;
    }
    Ok(())
}

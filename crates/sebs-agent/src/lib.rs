//! The in-container agent: serves SeBS's HTTP protocol and runs the function in persistent language workers.
//!
//! The agent is a static binary mounted into any image at [`sebs_wire::AGENT_PATH`] and run
//! as the container's PID 1. Its main types:
//!
//! - [`Config`] and [`run`]: the whole agent, from binding the port to a clean stop on
//!   SIGTERM/SIGINT. `main.rs` only reads [`sebs_wire::AgentSettings`] from the environment.
//! - [`pool::Pool`]: `workers` persistent language workers; a call waits (FIFO) for a free one,
//!   and a worker that dies or times out is replaced.
//! - [`worker::Worker`] and [`worker::WorkerCommand`]: one worker process speaking
//!   [`sebs_wire::worker`]'s JSON lines; the command is the only language-specific part.
//! - [`children::Children`]: PID 1 duties, the single place that reaps child processes and
//!   routes exit statuses to the workers' owners.
//! - [`http`]: the routes, and the hyper service for requests [`connection`], the agent's
//!   own HTTP/1.1 loop, leaves to it; [`cgroup::MemoryCgroup`]: tells OOM kills from crashes.
//! - [`handoff`]: the warm path, a connection passed to an idle worker that answers it
//!   itself while the agent watches the timeout, its death and the pool.
//! - [`memory::Meter`]: each call's peak memory, from the container's cgroup when the call
//!   ran alone, else from the worker's own peak resident set.
//! - [`series::MemorySeries`]: the container's own memory cgroup sampled at the platform's
//!   interval and kept for `GET /memory`, where the host cannot read that cgroup itself.
//! - [`tmp::empty_dir`]: what the agent's binary does when started as
//!   `sebs-agent --empty-dir DIR`, which the pool runs as the workers' user to empty `/tmp`
//!   (a tmpfs, counted against the memory limit) after an OOM kill.
//!
//! Invariant: nothing answers an invocation before the worker serving it has imported the
//! function, and nothing but [`children::Children::reap`] waits for a child process.

pub mod cgroup;
pub mod children;
pub mod connection;
pub mod handoff;
pub mod http;
pub mod memory;
pub mod pool;
pub mod series;
pub mod tmp;
pub mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sebs_wire::AgentSettings;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{signal, SignalKind};

use crate::cgroup::MemoryCgroup;
use crate::children::{Children, Spawner};
use crate::memory::{CgroupPeak, Meter};
use crate::pool::{Pool, PoolConfig};
use crate::worker::WorkerCommand;

/// Pending connections the kernel queues for us; bursts of invocations must not be refused.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: AgentSettings,
    /// Where the container's cgroup is mounted.
    pub cgroup_root: PathBuf,
}

impl Config {
    /// A config for `settings` with the cgroup at its usual place.
    pub fn new(settings: AgentSettings) -> Config {
        Config {
            settings,
            cgroup_root: PathBuf::from(cgroup::DEFAULT_ROOT),
        }
    }
}

/// Why the agent could not run. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("start the thread that spawns workers")]
    Spawner(#[source] std::io::Error),
    #[error("listen on port {port}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the agent until SIGTERM or SIGINT; returns the name of the signal that stopped it.
///
/// Logs one line to stderr when it listens (with the bound address, so port 0 works) and
/// one when it stops. On the way out every worker's process group is killed.
pub async fn run(config: Config) -> Result<&'static str, AgentError> {
    let signal_err = |signal| move |source| AgentError::Signal { signal, source };
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_err("SIGTERM"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_err("SIGINT"))?;
    // The reaper's SIGCHLD handler must exist before the first worker is spawned.
    let children = Children::new();
    tokio::spawn(children::reaper(children.clone()).map_err(signal_err("SIGCHLD"))?);
    let spawner = Spawner::start(children.clone()).map_err(AgentError::Spawner)?;

    let settings = &config.settings;
    let listener = listen(settings.port).map_err(|source| AgentError::Listen {
        port: settings.port,
        source,
    })?;
    let addr = listener
        .local_addr()
        .map_or_else(|_| format!("0.0.0.0:{}", settings.port), |a| a.to_string());
    let command = WorkerCommand::from_settings(settings);
    eprintln!(
        "sebs-agent: listening on {addr} ({}, {} workers of `{}`, timeout {} ms)",
        settings.language,
        settings.workers,
        command.display(),
        settings.timeout_ms
    );

    let meter = Arc::new(Meter::new(cgroup_peak(&config)));
    let pool = Pool::start(
        PoolConfig {
            command,
            workers: settings.workers,
            timeout: Duration::from_millis(settings.timeout_ms),
            cgroup: MemoryCgroup::new(&config.cgroup_root),
            meter: meter.clone(),
            tmp_dir: in_container().then(|| PathBuf::from(sebs_wire::TMP_DIR)),
        },
        spawner,
    );
    let mut state = http::State::new(pool, meter);
    // The kernel's host name needs no NSS lookup; in a container it is Docker's short id.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    if let Some(name) = &hostname {
        state = state.with_instance(name);
    }
    if let Some(series) = memory_series(&config, hostname.as_deref().unwrap_or("").trim()) {
        tokio::spawn(series::rotate_forever(series.clone()));
        state = state.with_series(series);
    }
    let state = Arc::new(state);

    let stopped_by = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        () = serve(listener, state) => "the listener closing",
    };
    eprintln!("sebs-agent: stopping on {stopped_by}");
    children.kill_all();
    Ok(stopped_by)
}

/// The container's cgroup peak file, when calls can be measured by it: the agent is the
/// container's PID 1 (so the cgroup holds nothing but the agent and its descendants), it
/// runs one worker, and the kernel and the mount let it reset the peak. Says why not on
/// stderr when it is in a container and cannot.
fn cgroup_peak(config: &Config) -> Option<CgroupPeak> {
    if !in_container() {
        return None;
    }
    let why_not = if config.settings.workers != 1 {
        format!("{} workers share the container", config.settings.workers)
    } else {
        match CgroupPeak::open_own(&config.cgroup_root) {
            Ok(peak) => {
                eprintln!(
                    "sebs-agent: each call's peak memory from {}",
                    peak.path().display()
                );
                return Some(peak);
            }
            Err(e) => format!("failed to {}", sebs_wire::ErrorChain(&e)),
        }
    };
    eprintln!("sebs-agent: each call's peak memory from the worker's resident set: {why_not}");
    None
}

/// The container's memory series when the platform asked for one; says why not on stderr
/// when its cgroup cannot be sampled (the answers to `GET /memory` are then 404).
fn memory_series(config: &Config, container: &str) -> Option<Arc<series::MemorySeries>> {
    let interval = Duration::from_millis(config.settings.memory_interval_ms?);
    let started = sebs_memory::find_own_cgroup(&config.cgroup_root)
        .map_err(|e| sebs_wire::ErrorChain(&e).to_string())
        .and_then(|cgroup| {
            let path = cgroup.current_path();
            series::MemorySeries::start(cgroup, interval, container)
                .map(|s| (s, path))
                .map_err(|e| sebs_wire::ErrorChain(&e).to_string())
        });
    match started {
        Ok((series, path)) => {
            eprintln!(
                "sebs-agent: sampling its memory from {} every {interval:?}",
                path.display()
            );
            Some(Arc::new(series))
        }
        Err(e) => {
            eprintln!("sebs-agent: failed to sample its own memory: failed to {e}");
            None
        }
    }
}

/// Whether the agent is a container's PID 1 (else it runs on a host, in tests).
fn in_container() -> bool {
    std::process::id() == 1
}

/// Binds `0.0.0.0:port` with a large backlog.
fn listen(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accepts connections forever, one task per connection (see [`connection`]): passed to an
/// idle worker that takes connections whenever no request is pending on it (see
/// [`handoff`]), else served here.
async fn serve(listener: TcpListener, state: Arc<http::State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!(
                    "sebs-agent: failed to accept a connection: {}",
                    sebs_wire::ErrorChain(&e)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection::serve(state.clone(), stream, Vec::new()));
    }
}

//! Functions: a code package running in a container behind an HTTP trigger, and the
//! [`Platform`] that starts, inspects and stops them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sebs_container::transfer::TransferError;
use sebs_container::{ContainerError, ContainerSpec, Delivery, Docker, Engine, StartedContainer};
use sebs_package::{BenchmarkConfig, Package};
use sebs_ports::{AllocatorConfig, PortError};
use sebs_trigger::{ExecutionResult, InvokeError, Trigger, TriggerConfig};
use sebs_wire::{AgentSettings, Language};

use crate::addressing::{environment_needs_publish, reachable, Addressing, HostFacts};
use crate::ports::PortLeases;
use crate::sandbox::{Sandbox, SandboxRecord, TmpOn};

/// Label naming the function a container serves.
pub const FUNCTION_LABEL: &str = "sebs-local.function";
/// Label naming the benchmark a container serves.
pub const BENCHMARK_LABEL: &str = "sebs-local.benchmark";
/// Label carrying the code package's hash.
pub const HASH_LABEL: &str = "sebs-local.hash";
/// Label carrying the id of the [`Platform`] that started a container, so that
/// [`Platform::shutdown`] also finds containers whose start was interrupted half-way.
pub const RUN_LABEL: &str = "sebs-local.run";

/// Containers [`Platform::create_functions`] starts at once.
pub const DEPLOY_CONCURRENCY: usize = 8;

/// How long the first bridge address may take to accept or refuse a connection before
/// [`Addressing::Auto`] decides that the bridge is out of reach.
const REACHABILITY_TIMEOUT: Duration = Duration::from_millis(1500);

/// How often a published port that someone else grabbed between our probe and the engine's
/// bind is replaced by another before giving up.
const PUBLISH_ATTEMPTS: usize = 5;

/// After an abandoned create, [`Platform::shutdown`] sweeps until no container of this run
/// has appeared for this long...
const SHUTDOWN_SWEEP_QUIET: Duration = Duration::from_secs(3);
/// ...or this long has passed.
const SHUTDOWN_SWEEP_LIMIT: Duration = Duration::from_secs(20);

/// How long a stopping function's agent may take to exit after SIGTERM.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(2);

/// How the platform runs functions; one per [`Platform`].
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The static agent mounted into every container (see [`crate::find_agent_binary`]).
    pub agent_binary: PathBuf,
    /// The container network.
    pub network: String,
    /// Bridge address or published port; see [`Addressing`].
    pub addressing: Addressing,
    /// Range, lock directory and host address of published ports.
    pub ports: AllocatorConfig,
    /// How long a new container may take to answer `/alive`.
    pub alive_deadline: Duration,
    /// Run containers privileged (for hardware counters); off by default. A privileged
    /// container has every capability: a function that runs as root has them too.
    pub privileged: bool,
    /// The invoking user's uid and gid, whom [`crate::FunctionUser::Auto`] runs functions as
    /// (unless root).
    pub host_user: (u32, u32),
    /// Labels put on every container, e.g. to find a test's containers again.
    pub labels: BTreeMap<String, String>,
    /// Have the agents of functions on remote engines sample their own memory this often
    /// (`start --measure-interval`): this host cannot read those containers' cgroups.
    pub agent_memory_interval: Option<Duration>,
}

impl PlatformConfig {
    pub fn new(agent_binary: PathBuf) -> PlatformConfig {
        PlatformConfig {
            agent_binary,
            network: "bridge".to_string(),
            addressing: Addressing::Auto,
            ports: AllocatorConfig::from_env(),
            alive_deadline: Duration::from_secs(30),
            privileged: false,
            host_user: (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            ),
            labels: BTreeMap::new(),
            agent_memory_interval: None,
        }
    }
}

/// What a function is given: from the benchmark's `config.json` unless overridden.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    pub language: Language,
    pub language_version: String,
    /// Memory limit of the container, enforced by the engine (swap included).
    pub memory_mb: u64,
    /// A handler running longer is stopped and its invocation fails with a timeout.
    pub timeout_s: u64,
    /// CPU limit (CFS quota); `None` leaves the container unlimited.
    pub cpus: Option<f64>,
    /// Invocations one container serves at once.
    pub workers: usize,
    /// What the function may write, how many tasks it may hold, whom it runs as.
    pub sandbox: Sandbox,
    /// More environment variables of the function, e.g. SeBS's storage variables
    /// (`MINIO_ADDRESS`, `NOSQL_STORAGE_TABLE_<name>`, ...).
    pub env: BTreeMap<String, String>,
}

/// The longest timeout a function may have: a day.
pub const MAX_TIMEOUT_S: u64 = 24 * 60 * 60;
/// The smallest memory limit the engine accepts (Docker's minimum, 6 MiB).
pub const MIN_MEMORY_MB: u64 = 6;
/// The largest memory limit the engine can be given, in MB (its field is an i64 of bytes).
pub const MAX_MEMORY_MB: u64 = i64::MAX as u64 >> 20;
/// The largest CPU limit the engine can be given (its field is an i64 of nano-CPUs).
pub const MAX_CPUS: f64 = 1e9;
/// The smallest pids limit a function may have (0, no limit, aside): the agent alone holds
/// up to 6 tasks (its main thread, the worker spawner and up to 4 blocking threads started
/// on demand; it serves on a current-thread runtime), with room for its workers' first
/// threads, and a limit below that starts a container whose agent cannot start its threads and exits late.
pub const MIN_PIDS_LIMIT: u64 = 16;
/// The most containers one call starts: as many as a bridge network (a /16) has addresses
/// for. Far more would not start anyway, and their futures alone would exhaust memory.
pub const MAX_CONTAINERS: usize = 65_534;

impl FunctionConfig {
    /// Whether the engine and the agent can be given this configuration: values within the
    /// bounds above, a known language version, at least one worker. Checked by
    /// [`Platform::create_function`]; a front end checks it before doing anything else.
    pub fn check(&self) -> Result<(), PlatformError> {
        let bad = |what: &'static str, value: String, allowed: String| {
            Err(PlatformError::BadConfig {
                what,
                value,
                allowed,
            })
        };
        self.language
            .check_version(&self.language_version)
            .map_err(PlatformError::Version)?;
        if !(1..=MAX_TIMEOUT_S).contains(&self.timeout_s) {
            return bad(
                "timeout",
                format!("{} s", self.timeout_s),
                format!("from 1 s to {MAX_TIMEOUT_S} s (a day)"),
            );
        }
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&self.memory_mb) {
            return bad(
                "memory limit",
                format!("{} MB", self.memory_mb),
                format!("from {MIN_MEMORY_MB} MB to {MAX_MEMORY_MB} MB"),
            );
        }
        if let Some(cpus) = self.cpus {
            if !(cpus > 0.0 && cpus <= MAX_CPUS) {
                return bad(
                    "CPU limit",
                    format!("{cpus:?}"),
                    format!("more than 0 and at most {MAX_CPUS:?}"),
                );
            }
        }
        if self.workers == 0 {
            return bad("workers", "0".to_string(), "at least 1".to_string());
        }
        if let Some(n) = self.sandbox.pids_limit.filter(|&n| n < MIN_PIDS_LIMIT) {
            return bad(
                "pids limit",
                n.to_string(),
                format!(
                    "at least {MIN_PIDS_LIMIT} tasks (the agent's own included), or 0 for no limit"
                ),
            );
        }
        Ok(())
    }

    pub fn from_benchmark(config: &BenchmarkConfig, language: Language, version: &str) -> Self {
        FunctionConfig {
            language,
            language_version: version.to_string(),
            memory_mb: config.memory_mb,
            timeout_s: config.timeout_s,
            cpus: None,
            workers: 1,
            sandbox: Sandbox::default(),
            env: BTreeMap::new(),
        }
    }
}

/// A deployed function: one container and the trigger that invokes it.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub benchmark: String,
    pub hash: String,
    /// The code package mounted at `/function`.
    pub package_dir: PathBuf,
    pub image: String,
    pub config: FunctionConfig,
    pub container: StartedContainer,
    /// The engine its container runs on.
    pub engine: Engine,
    /// The host port leased for this function when it is published on 127.0.0.1.
    pub published_port: Option<u16>,
    /// From the create call to the first 200 of `/alive`.
    pub startup: Duration,
    /// The sandbox its container runs in.
    pub sandbox: SandboxRecord,
    pub trigger: Arc<Trigger>,
}

impl Function {
    /// The address SeBS writes as `url`: `ip:port`, without scheme.
    pub fn url(&self) -> String {
        self.container.address.to_string()
    }

    /// The port SeBS writes as `port`: the agent's port, or the published host port.
    pub fn port(&self) -> u16 {
        self.container.address.port()
    }
}

/// What the engine says a function's container is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionState {
    Running,
    /// Its process ended: killed by someone, crashed, or OOM-killed as a whole.
    Exited {
        code: i64,
        oom_killed: bool,
    },
    /// The container no longer exists: someone removed it behind our back.
    Gone,
}

/// What went wrong on the platform.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("use a {what} of {value}: it must be {allowed}")]
    BadConfig {
        what: &'static str,
        value: String,
        allowed: String,
    },
    #[error(transparent)]
    Version(sebs_wire::UnknownVersion),
    #[error("find the in-container agent{}: build it with `cargo xtask agent` or set SEBS_AGENT_BIN",
        path.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    AgentMissing { path: Option<PathBuf> },
    #[error("start function {function}")]
    Start {
        function: String,
        #[source]
        source: ContainerError,
    },
    #[error("stop function {function} (container {container})")]
    Stop {
        function: String,
        container: String,
        #[source]
        source: ContainerError,
    },
    #[error("inspect function {function} (container {container})")]
    Inspect {
        function: String,
        container: String,
        #[source]
        source: ContainerError,
    },
    #[error("update the resources of function {function} (container {container})")]
    Update {
        function: String,
        container: String,
        #[source]
        source: ContainerError,
    },
    #[error("make a trigger for function {function}")]
    Trigger {
        function: String,
        #[source]
        source: sebs_trigger::UrlError,
    },
    #[error("lease a host port for function {function}")]
    Port {
        function: String,
        #[source]
        source: PortError,
    },
    #[error("lease a host port for function {function}: the port-leasing task failed: {reason}")]
    PortTask { function: String, reason: String },
    #[error("bring the image of function {function} to the docker engine at {engine}")]
    Ship {
        function: String,
        engine: String,
        #[source]
        source: TransferError,
    },
    #[error("a remote engine reached over a Unix socket ({engine}) has no host address to publish function {function} on; reach it over tcp://")]
    NoEngineHost { function: String, engine: String },
    #[error("place function {function} on the docker engine at {engine}: it failed to take another container a moment ago")]
    EngineFailed { function: String, engine: String },
    #[error("free host port {port} of container {container}")]
    ReleasePort {
        container: String,
        port: u16,
        #[source]
        source: PortError,
    },
}

impl PlatformError {
    /// Whether the function's configuration was at fault (out of bounds, or refused by the
    /// engine) rather than the environment.
    pub fn is_bad_config(&self) -> bool {
        match self {
            PlatformError::BadConfig { .. } | PlatformError::Version(_) => true,
            PlatformError::Start { source, .. } | PlatformError::Update { source, .. } => {
                source.refused_by_engine()
            }
            _ => false,
        }
    }
}

/// Everything a container of a function is started from.
#[derive(Debug, Clone)]
struct Launch<'a> {
    name: &'a str,
    benchmark: &'a str,
    package_dir: &'a Path,
    hash: &'a str,
    image: &'a str,
    config: &'a FunctionConfig,
    /// The engine to start it on (an index into the platform's engines); `None`: the next
    /// one in turn.
    engine: Option<usize>,
}

/// A container that is up, before it has answered `/alive`.
struct Placed {
    container: StartedContainer,
    published_port: Option<u16>,
}

/// The local platform.
///
/// Cheap to clone; clones share the record of live containers, so any clone's
/// [`Platform::shutdown`] removes them all.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The home engine's client: images are resolved and packages built here, and a
    /// platform made by [`Platform::new`] places functions here too.
    docker: Docker,
    /// The home engine: this host's (by [`Platform::new`]), or as [`Platform::with_home`]
    /// found it.
    home: Engine,
    /// Where functions are placed, in turn (round robin).
    engines: Arc<Vec<Engine>>,
    /// The next engine in turn.
    next_engine: Arc<AtomicUsize>,
    /// Per engine, the images known to be there (a remote one's base and per-package
    /// images); its lock makes each image's copy or build happen once.
    shipped: Arc<Vec<tokio::sync::Mutex<BTreeSet<String>>>>,
    config: PlatformConfig,
    /// Labels every container this platform starts with [`RUN_LABEL`].
    run_id: String,
    /// Containers started and not yet removed, with their published port and engine, for
    /// [`Platform::shutdown`].
    live: Arc<Mutex<BTreeMap<String, (Option<u16>, usize)>>>,
    /// Whether to publish, once [`Addressing::Auto`] has decided.
    publish: Arc<OnceLock<bool>>,
    /// Host ports leased for published containers.
    ports: PortLeases,
    /// Create requests whose future was dropped before the engine answered (Ctrl-C during
    /// a start): the engine may still make those containers, after `shutdown` has looked.
    abandoned_creates: Arc<AtomicUsize>,
    /// Per engine index, variables over the function's own (e.g. where a remote engine's
    /// functions reach the stores); set once the storage is known, after the engines.
    engine_env: Arc<Mutex<BTreeMap<usize, BTreeMap<String, String>>>>,
    /// Per engine index, the engines that failed to take a container: why (the first
    /// failure, reported once), and whether placements pass it over now.
    failed: Arc<Mutex<BTreeMap<usize, EngineFailure>>>,
}

/// An engine that failed to take a container.
#[derive(Debug, Clone)]
struct EngineFailure {
    /// The first failure, as one line.
    reason: String,
    /// Placements try it only after every other engine (until it takes one again).
    passed_over: bool,
    /// How often it failed.
    times: usize,
}

/// Counts a create request as abandoned unless it is [`CreateWatch::finish`]ed.
struct CreateWatch<'a>(&'a AtomicUsize, bool);

impl CreateWatch<'_> {
    fn finish(mut self) {
        self.1 = true;
    }
}

impl Drop for CreateWatch<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Platform {
    pub fn new(docker: Docker, config: PlatformConfig) -> Platform {
        let publish = OnceLock::new();
        let decided = match config.addressing {
            Addressing::Bridge => Some(false),
            Addressing::Publish => Some(true),
            Addressing::Auto if environment_needs_publish(&HostFacts::of_this_process()) => {
                Some(true)
            }
            Addressing::Auto => None,
        };
        if let Some(decided) = decided {
            let _ = publish.set(decided);
        }
        let home = Engine {
            address: sebs_container::engine_address(std::env::var("DOCKER_HOST").ok().as_deref())
                .unwrap_or_else(|_| {
                    sebs_container::EngineAddress::Unix(
                        sebs_container::engine::DEFAULT_SOCKET.into(),
                    )
                }),
            docker: docker.clone(),
            local: true,
            host_ip: None,
        };
        Platform {
            ports: PortLeases::new(vec![docker.clone()], config.ports.clone()),
            docker,
            engines: Arc::new(vec![home.clone()]),
            home,
            next_engine: Arc::default(),
            shipped: Arc::new(vec![tokio::sync::Mutex::default()]),
            config,
            run_id: uuid::Uuid::new_v4().simple().to_string(),
            live: Arc::default(),
            publish: Arc::new(publish),
            abandoned_creates: Arc::default(),
            engine_env: Arc::default(),
            failed: Arc::default(),
        }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Makes `home` (connected, and known to be this host's or not) the home engine, and the
    /// one functions are placed on until [`Platform::with_engines`] says otherwise: a home
    /// engine that is not this host's gets its functions as any remote engine does.
    pub fn with_home(mut self, home: Engine) -> Platform {
        self.docker = home.docker.clone();
        self.ports = PortLeases::new(vec![home.docker.clone()], self.config.ports.clone());
        self.engines = Arc::new(vec![home.clone()]);
        self.shipped = Arc::new(vec![tokio::sync::Mutex::default()]);
        self.home = home;
        self
    }

    /// The home engine, where images are resolved and packages built.
    pub fn home(&self) -> &Engine {
        &self.home
    }

    /// Places functions on `engines` in turn (round robin) instead of the home engine; an
    /// empty list changes nothing. Remote engines (see [`Engine::local`]) get each image
    /// copied from the home engine and a per-package image built there, once, and their
    /// functions are published on the engine host's address.
    pub fn with_engines(mut self, engines: Vec<Engine>) -> Platform {
        if !engines.is_empty() {
            // Host ports are leased for the functions of local engines only; a lease is
            // stale when its container runs on neither the home engine nor one of those.
            let mut local = Vec::new();
            local.extend(self.home.local.then(|| self.docker.clone()));
            local.extend(engines.iter().filter(|e| e.local).map(|e| e.docker.clone()));
            self.ports = PortLeases::new(local, self.config.ports.clone());
            self.shipped = Arc::new(engines.iter().map(|_| Default::default()).collect());
            self.engines = Arc::new(engines);
            self.failed = Arc::default();
        }
        self
    }

    /// The engines functions are placed on.
    pub fn engines(&self) -> &[Engine] {
        &self.engines
    }

    /// Gives the functions placed on engine `index` (of [`Platform::engines`]) these
    /// variables over those of their [`FunctionConfig::env`], from now on; clones share it.
    pub fn set_engine_env(&self, index: usize, env: BTreeMap<String, String>) {
        self.engine_env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(index, env);
    }

    /// The client of the engine at `url` (as `out.json` records it): one of this platform's
    /// engines, else a new connection; `None` is the home engine.
    pub async fn docker_for(&self, url: Option<&str>) -> Result<Docker, ContainerError> {
        let Some(url) = url else {
            return Ok(self.docker.clone());
        };
        if let Some(e) = self.engines.iter().find(|e| e.address.to_string() == url) {
            return Ok(e.docker.clone());
        }
        let address = sebs_container::EngineAddress::parse_recorded(url)?;
        Ok(sebs_container::connect_to(&address).await?)
    }

    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// The value of [`RUN_LABEL`] on this platform's containers.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Starts `package` as function `name` in `image` and returns once it answers `/alive`.
    pub async fn create_function(
        &self,
        name: &str,
        benchmark: &str,
        package: &Package,
        image: &str,
        config: &FunctionConfig,
    ) -> Result<Function, PlatformError> {
        self.launch(&Launch {
            name,
            benchmark,
            package_dir: &package.dir,
            hash: &package.hash,
            image,
            config,
            engine: None,
        })
        .await
    }

    /// Starts `n` containers of the same function, [`DEPLOY_CONCURRENCY`] at a time, in the
    /// order they were asked for. When one fails, the others are removed and its error returned.
    pub async fn create_functions(
        &self,
        n: usize,
        name: &str,
        benchmark: &str,
        package: &Package,
        image: &str,
        config: &FunctionConfig,
    ) -> Result<Vec<Function>, PlatformError> {
        if n > MAX_CONTAINERS {
            return Err(PlatformError::BadConfig {
                what: "number of containers",
                value: n.to_string(),
                allowed: format!("at most {MAX_CONTAINERS}"),
            });
        }
        // Futures rather than spawned tasks: dropping this one (Ctrl-C) cancels every start.
        let gate = tokio::sync::Semaphore::new(DEPLOY_CONCURRENCY);
        let starts = (0..n).map(|_| async {
            let _permit = gate.acquire().await;
            self.create_function(name, benchmark, package, image, config)
                .await
        });
        let results = futures_util::future::join_all(starts).await;
        let mut functions = Vec::with_capacity(n);
        let mut first_error = None;
        for result in results {
            match result {
                Ok(f) => functions.push(f),
                Err(e) if first_error.is_none() => first_error = Some(e),
                Err(e) => tracing::warn!(
                    "another deployment failed too: failed to {}",
                    sebs_wire::ErrorChain(&e)
                ),
            }
        }
        match first_error {
            None => Ok(functions),
            Some(e) => {
                for f in &functions {
                    if let Err(stop) = self.stop(f).await {
                        tracing::warn!("failed to {stop}");
                    }
                }
                Err(e)
            }
        }
    }

    /// Invokes `function` once with `input`.
    pub async fn invoke(
        &self,
        function: &Function,
        input: &serde_json::Value,
    ) -> Result<ExecutionResult, InvokeError> {
        function.trigger.invoke(input).await
    }

    /// What the engine says the function's container is doing.
    pub async fn function_state(
        &self,
        function: &Function,
    ) -> Result<FunctionState, PlatformError> {
        container_state(&function.engine.docker, &function.container.id)
            .await
            .map_err(|source| PlatformError::Inspect {
                function: function.name.clone(),
                container: function.container.id.clone(),
                source,
            })
    }

    /// Stops the function's container, removes it and frees its published port. A container
    /// that is already gone counts as removed.
    pub async fn stop(&self, function: &Function) -> Result<(), PlatformError> {
        let id = &function.container.id;
        let result = match sebs_container::remove(&function.engine.docker, id, true).await {
            Ok(()) | Err(ContainerError::NotFound { .. }) => Ok(()),
            Err(source) => Err(PlatformError::Stop {
                function: function.name.clone(),
                container: id.clone(),
                source,
            }),
        };
        // Only a container that is gone is forgotten (shutdown tries the others again) and
        // frees its port.
        if result.is_ok() {
            self.forget(id);
            self.ports.release(id, function.published_port).await?;
        }
        result
    }

    /// Removes every container this platform (or a clone of it) started and has not removed
    /// yet, also those whose start was interrupted, and frees their ports.
    pub async fn shutdown(&self) {
        let live: BTreeMap<String, (Option<u16>, usize)> =
            std::mem::take(&mut *self.live.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, (port, engine)) in live {
            self.remove_quietly(&self.engines[engine].docker, &id).await;
            if let Err(e) = self.ports.release(&id, port).await {
                tracing::warn!("failed to {}", sebs_wire::ErrorChain(&e));
            }
        }
        // A create request in flight when its future was dropped may still make a
        // container, and a busy engine may take seconds to: sweep by label until it has
        // been quiet for a while, but only when such a request exists.
        let mut quiet_since = Instant::now();
        let give_up = Instant::now() + SHUTDOWN_SWEEP_LIMIT;
        loop {
            for engine in self.engines.iter() {
                let docker = &engine.docker;
                match sebs_container::list_labelled(docker, &[(RUN_LABEL, &self.run_id)]).await {
                    Ok(found) => {
                        for id in found.into_iter().filter_map(|c| c.id) {
                            quiet_since = Instant::now();
                            self.remove_quietly(docker, &id).await;
                        }
                    }
                    Err(e) => tracing::warn!("failed to {}", sebs_wire::ErrorChain(&e)),
                }
            }
            let abandoned = self.abandoned_creates.load(Ordering::SeqCst) > 0;
            if !abandoned
                || quiet_since.elapsed() >= SHUTDOWN_SWEEP_QUIET
                || Instant::now() >= give_up
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The engines that failed to take a container, each with its first failure (as one
    /// line), in the order of [`Platform::engines`].
    pub fn engine_failures(&self) -> Vec<(String, String)> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(&i, f)| (self.engines[i].address.to_string(), f.reason.clone()))
            .collect()
    }

    /// Starts a container for `l` and waits until it answers: on its engine, else (when that
    /// one fails for any reason but the function's configuration) on the next in turn, until
    /// one takes it. An engine that failed is reported once and tried after all the others
    /// from then on, until it takes a container again.
    async fn launch(&self, l: &Launch<'_>) -> Result<Function, PlatformError> {
        l.config.check()?;
        let first = l.engine.unwrap_or_else(|| {
            self.next_engine.fetch_add(1, Ordering::SeqCst) % self.engines.len()
        });
        let order = self.placement_order(first);
        let (&last, before) = order.split_last().unwrap_or((&first, &[]));
        for &index in before {
            match self.launch_on(l, index).await {
                Ok(function) => {
                    self.engine_took(index);
                    return Ok(function);
                }
                Err(e) if e.is_bad_config() => return Err(e),
                Err(e) => self.engine_failed(index, l.name, &e),
            }
        }
        let outcome = self.launch_on(l, last).await;
        match &outcome {
            Ok(_) => self.engine_took(last),
            Err(e) if e.is_bad_config() || self.engines.len() == 1 => {}
            Err(e) => self.engine_failed(last, l.name, e),
        }
        outcome
    }

    /// Every engine once, from `first` on in turn: those that took their last container
    /// first, then those that failed.
    fn placement_order(&self, first: usize) -> Vec<usize> {
        let n = self.engines.len();
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let passed_over = |i: &usize| failed.get(i).is_some_and(|f| f.passed_over);
        let turn = (0..n).map(|k| (first + k) % n);
        let (later, now): (Vec<usize>, Vec<usize>) = turn.partition(passed_over);
        now.into_iter().chain(later).collect()
    }

    /// Notes that engine `index` failed to take a container of `function`; the first
    /// failure of each engine is reported.
    fn engine_failed(&self, index: usize, function: &str, e: &PlatformError) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        match failed.get_mut(&index) {
            Some(f) => {
                f.passed_over = true;
                f.times += 1;
            }
            None => {
                let reason = sebs_wire::ErrorChain(e).to_string();
                tracing::error!(
                    engine = %self.engines[index].address,
                    "the docker engine at {} failed to take a container of function {function}; \
                     placing on the other engines, and on it only when they fail: failed to \
                     {reason}",
                    self.engines[index].address,
                );
                failed.insert(
                    index,
                    EngineFailure {
                        reason,
                        passed_over: true,
                        times: 1,
                    },
                );
            }
        }
    }

    /// Notes that engine `index` took a container: one that failed before is placed on in
    /// turn again.
    fn engine_took(&self, index: usize) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = failed.get_mut(&index).filter(|f| f.passed_over) {
            f.passed_over = false;
            tracing::info!(
                "the docker engine at {} takes containers again",
                self.engines[index].address
            );
        }
    }

    /// How often engine `index` failed to take a container.
    fn failures_of(&self, index: usize) -> usize {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&index)
            .map_or(0, |f| f.times)
    }

    /// Starts a container for `l` on engine `index` and waits until it answers.
    async fn launch_on(&self, l: &Launch<'_>, index: usize) -> Result<Function, PlatformError> {
        let start_err = |source| PlatformError::Start {
            function: l.name.to_string(),
            source,
        };
        let engine = &self.engines[index];
        let placed = if !engine.local {
            self.place_remote(l, index).await?
        } else {
            match self.publish.get().copied() {
                Some(publish) => self.place(l, index, publish).await?,
                None => {
                    // Auto, undecided: try the bridge; a refused or accepted connection proves it works.
                    let placed = self.place(l, index, false).await?;
                    if reachable(placed.container.address, REACHABILITY_TIMEOUT).await {
                        let _ = self.publish.set(false);
                        placed
                    } else {
                        tracing::info!(
                            address = %placed.container.address,
                            "the bridge network is not reachable from this host; publishing on 127.0.0.1"
                        );
                        let _ = self.publish.set(true);
                        self.remove_quietly(&engine.docker, &placed.container.id)
                            .await;
                        self.place(l, index, true).await?
                    }
                }
            }
        };
        let container = placed.container;
        let alive = sebs_container::wait_alive(
            &engine.docker,
            &container.id,
            container.address,
            self.config.alive_deadline,
        )
        .await;
        if let Err(e) = alive {
            self.discard(&engine.docker, &container.id, placed.published_port)
                .await;
            return Err(start_err(e));
        }
        let startup = container.created_at.elapsed();
        let trigger_config = TriggerConfig {
            keep_alive: true,
            // The agent answers a handler past its timeout with 504 itself, and a cold call
            // may first wait for the worker's import; this bound only catches an agent that
            // stopped answering altogether.
            timeout: sebs_wire::longest_invocation(Duration::from_secs(l.config.timeout_s))
                + Duration::from_secs(30),
            // Docker names a container's host after the first 12 digits of its id.
            expect_instance: Some(container.id.chars().take(12).collect()),
            ..TriggerConfig::default()
        };
        let trigger = match Trigger::new(&format!("http://{}/", container.address), trigger_config)
        {
            Ok(t) => t,
            Err(source) => {
                self.discard(&engine.docker, &container.id, placed.published_port)
                    .await;
                return Err(PlatformError::Trigger {
                    function: l.name.to_string(),
                    source,
                });
            }
        };
        tracing::info!(
            function = l.name,
            container = %container.id,
            engine = %engine.address,
            url = %container.address,
            startup_ms = startup.as_secs_f64() * 1e3,
            "function started"
        );
        Ok(Function {
            name: l.name.to_string(),
            benchmark: l.benchmark.to_string(),
            hash: l.hash.to_string(),
            package_dir: l.package_dir.to_path_buf(),
            image: l.image.to_string(),
            config: l.config.clone(),
            container,
            engine: engine.clone(),
            published_port: placed.published_port,
            startup,
            sandbox: self.sandbox_of(l.config),
            trigger: Arc::new(trigger),
        })
    }

    /// [`sebs_container::create_and_start`], noting when its future is dropped mid-way.
    async fn create_container(
        &self,
        docker: &Docker,
        spec: &ContainerSpec,
    ) -> Result<StartedContainer, ContainerError> {
        let watch = CreateWatch(&self.abandoned_creates, false);
        let result = sebs_container::create_and_start(docker, spec).await;
        watch.finish();
        result
    }

    /// Creates and starts the container on a remote engine: its image (the run image with
    /// the code package and the agent in it) is made there first, and the agent's port is
    /// published on the engine host's address, where the engine picks a free port.
    async fn place_remote(&self, l: &Launch<'_>, index: usize) -> Result<Placed, PlatformError> {
        let engine = &self.engines[index];
        let Some(host_ip) = engine.host_ip else {
            return Err(PlatformError::NoEngineHost {
                function: l.name.to_string(),
                engine: engine.address.to_string(),
            });
        };
        let image = self.ship(l, index).await?;
        let mut spec = self.spec(l, index);
        spec.image = image;
        spec.delivery = Delivery::Image;
        spec.agent.memory_interval_ms = self
            .config
            .agent_memory_interval
            .map(|i| (i.as_millis() as u64).max(1));
        spec.publish = Some(std::net::SocketAddr::new(host_ip, 0));
        let container = self
            .create_container(&engine.docker, &spec)
            .await
            .map_err(|source| PlatformError::Start {
                function: l.name.to_string(),
                source,
            })?;
        self.remember(&container.id, None, index);
        Ok(Placed {
            container,
            published_port: None,
        })
    }

    /// The per-package image of `l` on remote engine `index`, made once: the run image is
    /// copied there from the home engine when it lacks it, then the code package and the
    /// agent are built into `sebs-local/function:<package hash>-<agent>`.
    async fn ship(&self, l: &Launch<'_>, index: usize) -> Result<String, PlatformError> {
        let engine = &self.engines[index];
        let name = engine.address.to_string();
        let err = |source| PlatformError::Ship {
            function: l.name.to_string(),
            engine: name.clone(),
            source,
        };
        let tag = format!(
            "sebs-local/function:{}-{}",
            &l.hash[..l.hash.len().min(16)],
            agent_id(&self.config.agent_binary)
        );
        let failures = self.failures_of(index);
        let mut shipped = self.shipped[index].lock().await;
        if shipped.contains(&tag) {
            return Ok(tag);
        }
        // A placement that waited for the lock while the engine failed for another (e.g.
        // it went away: each call there waits for its bound) does not wait for it to fail
        // again, when another engine may take it.
        if self.failures_of(index) > failures && self.engines.len() > 1 {
            return Err(PlatformError::EngineFailed {
                function: l.name.to_string(),
                engine: name,
            });
        }
        let present = |image: &str| {
            let (docker, image, name) = (engine.docker.clone(), image.to_string(), name.clone());
            async move { sebs_container::transfer::image_present(&docker, &name, &image).await }
        };
        if !present(&tag).await.map_err(err)? {
            if !shipped.contains(l.image) && !present(l.image).await.map_err(err)? {
                tracing::info!(image = l.image, engine = %name, "copying the image to the engine");
                let started = Instant::now();
                let step = std::sync::atomic::AtomicU64::new(0);
                let progress = |moved: u64| {
                    // A line per 64 MiB moved.
                    let mib = moved >> 26;
                    if step.fetch_max(mib, Ordering::SeqCst) < mib {
                        tracing::info!(image = l.image, engine = %name, mib = moved >> 20, "copying");
                    }
                };
                let moved = sebs_container::transfer::copy_image(
                    &self.docker,
                    &engine.docker,
                    &name,
                    l.image,
                    &progress,
                )
                .await
                .map_err(err)?;
                tracing::info!(
                    image = l.image,
                    engine = %name,
                    mib = moved >> 20,
                    seconds = started.elapsed().as_secs_f64(),
                    "image copied"
                );
            }
            shipped.insert(l.image.to_string());
            let labels = [(BENCHMARK_LABEL, l.benchmark), (HASH_LABEL, l.hash)];
            sebs_container::transfer::build_function_image(
                &engine.docker,
                &name,
                &sebs_container::transfer::FunctionImage {
                    tag: &tag,
                    base: l.image,
                    code_dir: l.package_dir,
                    agent_binary: &self.config.agent_binary,
                    labels: &labels,
                },
            )
            .await
            .map_err(err)?;
            tracing::info!(image = %tag, engine = %name, "function image built");
        }
        shipped.insert(tag.clone());
        Ok(tag)
    }

    /// Creates and starts the container, on a leased host port when `publish`.
    async fn place(
        &self,
        l: &Launch<'_>,
        index: usize,
        publish: bool,
    ) -> Result<Placed, PlatformError> {
        let start_err = |source| PlatformError::Start {
            function: l.name.to_string(),
            source,
        };
        let docker = &self.engines[index].docker;
        let spec = self.spec(l, index);
        if !publish {
            let container = self
                .create_container(docker, &spec)
                .await
                .map_err(start_err)?;
            self.remember(&container.id, None, index);
            return Ok(Placed {
                container,
                published_port: None,
            });
        }
        let mut refused = BTreeSet::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = self.ports.lease(l.name, self.held_ports(&refused)).await?;
            let port = lease.port();
            let spec = spec.clone().publish_local(port);
            match self.create_container(docker, &spec).await {
                Ok(container) => {
                    let persisted = lease.persist(&container.id);
                    // No await between persisting and remembering: nothing can cancel in between.
                    self.remember(&container.id, Some(port), index);
                    if let Err(source) = persisted {
                        self.discard(docker, &container.id, None).await;
                        return Err(PlatformError::Port {
                            function: l.name.to_string(),
                            source,
                        });
                    }
                    return Ok(Placed {
                        container,
                        published_port: Some(port),
                    });
                }
                Err(ContainerError::PortInUse { .. }) if attempt < PUBLISH_ATTEMPTS => {
                    tracing::debug!(
                        port,
                        "host port taken between probe and publish; trying another"
                    );
                    refused.insert(port);
                }
                Err(e) => return Err(start_err(e)),
            }
        }
    }

    /// The agent's settings for a container of a function configured by `config`.
    fn agent_settings(&self, config: &FunctionConfig) -> AgentSettings {
        let mut settings = AgentSettings::new(config.language);
        settings.workers = config.workers.max(1);
        settings.timeout_ms = config.timeout_s.saturating_mul(1000);
        // The agent is root; a function that runs as root runs as the agent, which then
        // needs no capability at all.
        let (uid, gid) = config.sandbox.user.resolve(self.config.host_user);
        if (uid, gid) != (0, 0) {
            settings.uid = Some(uid);
            settings.gid = Some(gid);
        }
        settings
    }

    /// The sandbox a container of a function configured by `config` runs in.
    pub fn sandbox_of(&self, config: &FunctionConfig) -> SandboxRecord {
        let settings = self.agent_settings(config);
        SandboxRecord {
            uid: settings.uid.unwrap_or(0),
            gid: settings.gid.unwrap_or(0),
            tmp_size_mb: match config.sandbox.tmp_on {
                TmpOn::Memory => config.sandbox.tmp_size_mb,
                TmpOn::Disk => None,
            },
            tmp_on: config.sandbox.tmp_on,
            pids_limit: config.sandbox.pids_limit,
            read_only_root: true,
            privileged: self.config.privileged,
            agent_capabilities: settings
                .capabilities()
                .iter()
                .map(|c| c.to_string())
                .collect(),
        }
    }

    /// The container of `l` on engine `index`.
    fn spec(&self, l: &Launch<'_>, index: usize) -> ContainerSpec {
        let settings = self.agent_settings(l.config);
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let container_name = format!(
            "sebs-{}-{}",
            sebs_container::name_part(l.name),
            &suffix[..8]
        );
        let mut spec = ContainerSpec::new(
            container_name,
            l.image,
            l.package_dir.to_path_buf(),
            self.config.agent_binary.clone(),
            settings,
        );
        spec.network = self.config.network.clone();
        spec.privileged = self.config.privileged;
        spec.memory_bytes = Some(l.config.memory_mb.saturating_mul(1024 * 1024));
        spec.nano_cpus = l.config.cpus.map(nano_cpus);
        let sandbox = &l.config.sandbox;
        spec.read_only_root = true;
        spec.tmp_size_bytes = sandbox.tmp_size_mb.map(|mb| mb.saturating_mul(1024 * 1024));
        spec.tmp_on_disk = sandbox.tmp_on == TmpOn::Disk;
        spec.pids_limit = sandbox.pids_limit;
        spec.labels = self.config.labels.clone();
        spec = spec
            .label(FUNCTION_LABEL, l.name)
            .label(BENCHMARK_LABEL, l.benchmark)
            .label(HASH_LABEL, l.hash)
            .label(RUN_LABEL, &self.run_id);
        if let Ok(user) = std::env::var("USER") {
            spec.env.push((sebs_wire::env::USER.to_string(), user));
        }
        let mut env = l.config.env.clone();
        if let Some(over) = self
            .engine_env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&index)
        {
            env.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        spec.env.extend(env);
        spec
    }

    /// The ports of this platform's live containers, and `refused`: none of them may be leased.
    fn held_ports(&self, refused: &BTreeSet<u16>) -> BTreeSet<u16> {
        let mut held: BTreeSet<u16> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|(port, _)| *port)
            .collect();
        held.extend(refused);
        held
    }

    /// Removes a container that did not make it and frees its port.
    async fn discard(&self, docker: &Docker, id: &str, port: Option<u16>) {
        self.remove_quietly(docker, id).await;
        if let Err(e) = self.ports.release(id, port).await {
            tracing::warn!("failed to {}", sebs_wire::ErrorChain(&e));
        }
    }

    async fn remove_quietly(&self, docker: &Docker, id: &str) {
        match sebs_container::remove(docker, id, true).await {
            Ok(()) | Err(ContainerError::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(container = id, error = %sebs_wire::ErrorChain(&e), "could not remove container")
            }
        }
        self.forget(id);
    }

    fn remember(&self, id: &str, port: Option<u16>, engine: usize) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), (port, engine));
    }

    pub(crate) fn forget(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Starts a new container for `function` with `config` and `package`, then removes the
    /// old one; `function` then describes the new container. On error the old one still runs.
    pub(crate) async fn replace(
        &self,
        function: &mut Function,
        config: &FunctionConfig,
        package_dir: &Path,
        hash: &str,
    ) -> Result<(), PlatformError> {
        let fresh = self
            .launch(&Launch {
                name: &function.name,
                benchmark: &function.benchmark,
                package_dir,
                hash,
                image: &function.image,
                config,
                // The same engine: a replaced function stays where it was placed.
                engine: self
                    .engines
                    .iter()
                    .position(|e| e.address == function.engine.address),
            })
            .await?;
        let old = std::mem::replace(function, fresh);
        self.stop(&old).await
    }
}

/// What the engine says container `id` is doing.
pub(crate) async fn container_state(
    docker: &Docker,
    id: &str,
) -> Result<FunctionState, ContainerError> {
    match sebs_container::inspect_state(docker, id).await {
        Ok(s) if s.running => Ok(FunctionState::Running),
        Ok(s) => Ok(FunctionState::Exited {
            code: s.exit_code.unwrap_or(-1),
            oom_killed: s.oom_killed,
        }),
        Err(ContainerError::NotFound { .. }) => Ok(FunctionState::Gone),
        Err(e) => Err(e),
    }
}

/// A short identity of the agent binary for image tags: its size and modification time,
/// so that a rebuilt agent gets new per-package images.
fn agent_id(agent: &Path) -> String {
    let meta = std::fs::metadata(agent).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    let modified = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{:x}", (u128::from(size) << 64 ^ modified) as u64)
}

/// Billionths of a CPU, as the engine counts CPU limits.
pub(crate) fn nano_cpus(cpus: f64) -> u64 {
    (cpus * 1e9).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_out_of_bounds_are_refused_with_the_bounds() {
        let check = |change: &dyn Fn(&mut FunctionConfig), expect: Result<(), &str>| {
            let mut config = FunctionConfig {
                language: Language::Python,
                language_version: "3.11".to_string(),
                memory_mb: 128,
                timeout_s: 10,
                cpus: None,
                workers: 1,
                sandbox: Sandbox::default(),
                env: BTreeMap::new(),
            };
            change(&mut config);
            let got = config.check().map_err(|e| e.to_string());
            match (got, expect) {
                (Ok(()), Ok(())) => {}
                (Err(message), Err(fragment)) => {
                    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}")
                }
                (got, expect) => panic!("{config:?}: got {got:?}, expected {expect:?}"),
            }
        };
        check(&|_| {}, Ok(()));
        check(&|c| c.timeout_s = MAX_TIMEOUT_S, Ok(()));
        check(&|c| c.memory_mb = MIN_MEMORY_MB, Ok(()));
        check(&|c| c.cpus = Some(0.01), Ok(()));
        check(
            &|c| c.timeout_s = u64::MAX,
            Err("timeout of 18446744073709551615 s: it must be from 1 s to 86400 s"),
        );
        check(&|c| c.timeout_s = 0, Err("timeout of 0 s"));
        check(
            &|c| c.memory_mb = 5,
            Err("memory limit of 5 MB: it must be from 6 MB"),
        );
        check(
            &|c| c.memory_mb = u64::MAX,
            Err("memory limit of 18446744073709551615 MB"),
        );
        for cpus in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            check(&|c| c.cpus = Some(cpus), Err("CPU limit"));
        }
        check(&|c| c.workers = 0, Err("workers of 0"));
        check(&|c| c.sandbox.pids_limit = None, Ok(()));
        check(&|c| c.sandbox.pids_limit = Some(MIN_PIDS_LIMIT), Ok(()));
        check(
            &|c| c.sandbox.pids_limit = Some(3),
            Err("pids limit of 3: it must be at least 16 tasks"),
        );
        check(
            &|c| c.language_version = "9.99".to_string(),
            Err("the supported ones are"),
        );
        // Refused values are the user's to fix; the engine's own failures are not.
        let bad = PlatformError::BadConfig {
            what: "timeout",
            value: "0 s".to_string(),
            allowed: "from 1 s".to_string(),
        };
        assert!(bad.is_bad_config());
        assert!(!PlatformError::AgentMissing { path: None }.is_bad_config());
    }

    #[test]
    fn cpu_limits_in_billionths() {
        assert_eq!(nano_cpus(0.5), 500_000_000);
        assert_eq!(nano_cpus(1.25), 1_250_000_000);
        assert_eq!(nano_cpus(-1.0), 0);
    }
}

//! Function containers: create and start one with its agent, wait until it answers, stop,
//! inspect, resize and remove it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerUpdateBody,
    HostConfig, Mount, MountType, MountVolumeOptions, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptions, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use sebs_wire::AgentSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::engine::{control, ConnectError, CONTROL_TIMEOUT};

/// The label every container of ours carries, so cleanup can find them all.
pub const OWNER_LABEL: (&str, &str) = ("sebs-local", "1");

/// `labels` as the engine takes them, with [`OWNER_LABEL`] added (over a same-named one):
/// what every container, volume and image of ours carries.
pub(crate) fn owned_labels<K: AsRef<str>, V: AsRef<str>>(
    labels: impl IntoIterator<Item = (K, V)>,
) -> HashMap<String, String> {
    labels
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string()))
        .chain([(OWNER_LABEL.0.to_string(), OWNER_LABEL.1.to_string())])
        .collect()
}

/// The network a container joins unless told otherwise.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Lines of a container's log put into errors about it.
const LOG_LINES_IN_ERRORS: usize = 50;

/// How often [`wait_alive`] asks the engine whether the container still runs.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How long [`wait_alive`] waits before probing again after a refused connection.
const PROBE_RETRY: Duration = Duration::from_millis(1);

/// A container operation that did not work.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("find container {container}: it does not exist (was it removed by someone else?)")]
    NotFound { container: String },
    #[error("create container {container}: the name is already in use")]
    NameInUse { container: String },
    #[error(
        "publish port {port} of container {container}: the port is already in use on the host"
    )]
    PortInUse { container: String, port: u16 },
    #[error("create container {container}: image {image} is not present")]
    ImageMissing { container: String, image: String },
    #[error("mount {path} into container {container}: {reason}")]
    MountSource {
        container: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "{action} container {container}: its engine did not answer within {:?} (has it gone \
         away?)",
        CONTROL_TIMEOUT
    )]
    Unanswered {
        container: String,
        action: &'static str,
    },
    #[error("{action} container {container}")]
    Engine {
        container: String,
        action: &'static str,
        source: bollard::errors::Error,
    },
    #[error("{action} volume {volume}")]
    Volume {
        volume: String,
        action: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("create container {container}: the engine refused its configuration: {message}")]
    CreateRefused { container: String, message: String },
    #[error("update the resources of container {container}: the engine refused: {message}")]
    UpdateRefused { container: String, message: String },
    #[error("find the address of container {container}: {reason}")]
    NoAddress { container: String, reason: String },
    #[error(
        "wait for container {container} to answer /alive: it exited with code {exit_code}{} \
         before answering; its last log lines:\n{logs}",
        if *oom_killed { " (killed for using too much memory)" } else { "" }
    )]
    ExitedEarly {
        container: String,
        exit_code: i64,
        oom_killed: bool,
        logs: String,
    },
    #[error(
        "wait for container {container} to answer /alive at {address}: no 200 within \
         {waited:?} (last attempt: {last}); its last log lines:\n{logs}"
    )]
    NotAlive {
        container: String,
        address: SocketAddr,
        waited: Duration,
        last: String,
        logs: String,
    },
}

impl ContainerError {
    /// Whether the engine refused the values it was given (a memory or CPU limit out of
    /// its range): the caller's input was wrong, not the engine.
    pub fn refused_by_engine(&self) -> bool {
        matches!(
            self,
            ContainerError::CreateRefused { .. } | ContainerError::UpdateRefused { .. }
        )
    }

    /// Sorts a bollard error into the variants callers act on.
    pub(crate) fn from_engine(
        container: &str,
        action: &'static str,
        e: bollard::errors::Error,
    ) -> Self {
        if let bollard::errors::Error::RequestTimeoutError = e {
            return ContainerError::Unanswered {
                container: container.to_string(),
                action,
            };
        }
        if let bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } = &e
        {
            if let Some(port) = port_in_use(message) {
                return ContainerError::PortInUse {
                    container: container.to_string(),
                    port,
                };
            }
            match status_code {
                404 => {
                    return ContainerError::NotFound {
                        container: container.to_string(),
                    }
                }
                409 if message.contains("already in use") => {
                    return ContainerError::NameInUse {
                        container: container.to_string(),
                    }
                }
                // The engine validates what it is asked for (memory, CPUs, labels...)
                // before it does anything.
                400 if action == "create" => {
                    return ContainerError::CreateRefused {
                        container: container.to_string(),
                        message: message.clone(),
                    }
                }
                _ => {}
            }
        }
        ContainerError::Engine {
            container: container.to_string(),
            action,
            source: e,
        }
    }
}

/// The host port in an engine message saying a port is taken, e.g.
/// `Bind for 127.0.0.1:8080 failed: port is already allocated` or
/// `listen tcp4 127.0.0.1:8080: bind: address already in use`.
pub fn port_in_use(message: &str) -> Option<u16> {
    let end = ["port is already allocated", "address already in use"]
        .iter()
        .filter_map(|phrase| message.find(phrase))
        .min()?;
    let before = &message[..end];
    // The last `:<digits>` before the phrase is the port (IPv6 hosts end in `]:<port>`).
    before.match_indices(':').rev().find_map(|(i, _)| {
        let digits: String = before[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u16>().ok()
    })
}

/// Whether the engine refused to create a container because its image is not present.
pub(crate) fn image_is_missing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, message }
            if message.contains("image")
    )
}

/// How the code package and the agent get into a function container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Bind-mounted read-only from this host's file system: the engine must see it (a
    /// local engine).
    #[default]
    Mount,
    /// Already in the image, at the same paths (a per-package image built on the engine,
    /// [`crate::transfer::build_function_image`]): nothing is mounted, so any engine runs it.
    Image,
}

/// One function container to run.
///
/// Fields are public because any combination is valid; [`ContainerSpec::new`] fills in the
/// defaults: no limits, nothing published, the default bridge network, unprivileged, and a
/// sandbox: a read-only root file system with a tmpfs at [`sebs_wire::TMP_DIR`], and only
/// the capabilities the agent needs for its settings ([`AgentSettings::capabilities`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Host directory mounted read-only at [`sebs_wire::CODE_DIR`].
    pub code_dir: PathBuf,
    /// Host executable mounted read-only at [`sebs_wire::AGENT_PATH`]; the container runs
    /// exactly that, as PID 1.
    pub agent_binary: PathBuf,
    /// Whether `code_dir` and `agent_binary` are bind-mounted or already in `image`.
    pub delivery: Delivery,
    /// Passed to the agent as environment variables; its port is the one probed.
    pub agent: AgentSettings,
    /// More environment variables (storage addresses, keys), after the agent's.
    pub env: Vec<(String, String)>,
    /// Labels besides `sebs-local=1`, which every container gets.
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes; swap is limited to the same figure so the limit holds.
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU (1.5 CPUs = 1_500_000_000).
    pub nano_cpus: Option<u64>,
    /// Publish the agent's port at this host address; port 0 lets the engine pick one.
    /// `None` leaves it reachable only on the container network.
    pub publish: Option<SocketAddr>,
    pub network: String,
    /// Off by default; SeBS runs its containers privileged, we do not need to. A privileged
    /// container has every capability, whatever the agent needs.
    pub privileged: bool,
    /// Mount the image's root file system read-only (on by default): the function can write
    /// only to the tmpfs at [`sebs_wire::TMP_DIR`].
    pub read_only_root: bool,
    /// Size of the tmpfs at [`sebs_wire::TMP_DIR`] (mounted always, writable by every user,
    /// programs in it may run); `None` leaves it unlimited but for the memory limit its
    /// pages count against.
    pub tmp_size_bytes: Option<u64>,
    /// Back [`sebs_wire::TMP_DIR`] with an anonymous volume on the engine's disk instead of
    /// the tmpfs (`tmp_size_bytes` then unused): its files are not memory. The volume takes
    /// the image's `/tmp` mode (1777) and is removed with the container.
    pub tmp_on_disk: bool,
    /// The most tasks (processes and threads, the agent's included) the container may hold.
    pub pids_limit: Option<u64>,
}

impl ContainerSpec {
    pub fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        code_dir: impl Into<PathBuf>,
        agent_binary: impl Into<PathBuf>,
        agent: AgentSettings,
    ) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            code_dir: code_dir.into(),
            agent_binary: agent_binary.into(),
            delivery: Delivery::Mount,
            agent,
            env: Vec::new(),
            labels: BTreeMap::new(),
            memory_bytes: None,
            nano_cpus: None,
            publish: None,
            network: DEFAULT_NETWORK.to_string(),
            privileged: false,
            read_only_root: true,
            tmp_size_bytes: None,
            tmp_on_disk: false,
            pids_limit: None,
        }
    }

    /// Publishes the agent's port on 127.0.0.1 only (port 0: the engine picks one).
    pub fn publish_local(mut self, port: u16) -> ContainerSpec {
        self.publish = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> ContainerSpec {
        self.labels.insert(key.into(), value.into());
        self
    }

    fn port_key(&self) -> String {
        format!("{}/tcp", self.agent.port)
    }

    /// The engine's view of this spec.
    pub fn to_create_body(&self) -> ContainerCreateBody {
        let labels = owned_labels(&self.labels);
        let env = self
            .agent
            .to_env()
            .into_iter()
            .chain(self.env.iter().cloned())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let bind = |source: &PathBuf, target: &str| Mount {
            target: Some(target.to_string()),
            source: Some(source.display().to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        };
        let port_bindings = self
            .publish
            .map(|addr| publish_port(&self.port_key(), addr));
        let memory = self
            .memory_bytes
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        // The engine's own tmpfs defaults are noexec,nosuid,nodev; "exec" lets a function run
        // a program it unpacked there, as on a cloud function. Size 0 is no limit.
        let tmp_options = format!(
            "rw,exec,nosuid,nodev,mode=1777,size={}",
            self.tmp_size_bytes.unwrap_or(0)
        );
        let mut mounts = match self.delivery {
            Delivery::Mount => vec![
                bind(&self.code_dir, sebs_wire::CODE_DIR),
                bind(&self.agent_binary, sebs_wire::AGENT_PATH),
            ],
            Delivery::Image => Vec::new(),
        };
        let tmpfs = if self.tmp_on_disk {
            // Anonymous: removed with the container (`v`); labelled as the container is, so
            // a volume left by a container removed without `v` is still known as ours.
            mounts.push(Mount {
                target: Some(sebs_wire::TMP_DIR.to_string()),
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(false),
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            });
            None
        } else {
            Some(HashMap::from([(
                sebs_wire::TMP_DIR.to_string(),
                tmp_options,
            )]))
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(vec![sebs_wire::AGENT_PATH.to_string()]),
            cmd: Some(Vec::new()),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: Some(vec![self.port_key()]),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                memory,
                memory_swap: memory,
                nano_cpus: self.nano_cpus.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                port_bindings,
                network_mode: Some(self.network.clone()),
                privileged: Some(self.privileged),
                readonly_rootfs: Some(self.read_only_root),
                tmpfs,
                pids_limit: self
                    .pids_limit
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                cap_drop: Some(vec!["ALL".to_string()]),
                cap_add: Some(
                    self.agent
                        .capabilities()
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                ),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                // Our agent is PID 1 and reaps its own children.
                init: Some(false),
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The engine's port bindings that publish container port `port_key` (`9000/tcp`) on
/// `addr`; port 0 asks the engine for a free one.
pub(crate) fn publish_port(
    port_key: &str,
    addr: SocketAddr,
) -> HashMap<String, Option<Vec<PortBinding>>> {
    let binding = PortBinding {
        host_ip: Some(addr.ip().to_string()),
        // An empty host port asks the engine for a free one.
        host_port: Some(if addr.port() == 0 {
            String::new()
        } else {
            addr.port().to_string()
        }),
    };
    HashMap::from([(port_key.to_string(), Some(vec![binding]))])
}

/// A running function container.
#[derive(Debug, Clone)]
pub struct StartedContainer {
    pub id: String,
    pub name: String,
    /// Where the agent answers: the container's IP on its network and the agent's port, or
    /// the published host address when the spec publishes one.
    pub address: SocketAddr,
    /// Taken just before the create request was sent.
    pub created_at: Instant,
    /// Taken when the engine said the container started.
    pub started_at: Instant,
}

/// Creates and starts the container; a container that cannot start is removed again.
///
/// A container whose process exits before its address is known fails here with
/// [`ContainerError::ExitedEarly`], as [`wait_alive`] would have.
pub async fn create_and_start(
    docker: &Docker,
    spec: &ContainerSpec,
) -> Result<StartedContainer, ContainerError> {
    let mounted: &[&PathBuf] = match spec.delivery {
        Delivery::Mount => &[&spec.code_dir, &spec.agent_binary],
        Delivery::Image => &[],
    };
    for path in mounted {
        if let Err(e) = std::fs::metadata(path) {
            return Err(ContainerError::MountSource {
                container: spec.name.clone(),
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    let created_at = Instant::now();
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(options), spec.to_create_body())
        .await
        .map_err(|e| {
            if image_is_missing(&e) {
                ContainerError::ImageMissing {
                    container: spec.name.clone(),
                    image: spec.image.clone(),
                }
            } else {
                ContainerError::from_engine(&spec.name, "create", e)
            }
        })?;
    for warning in &created.warnings {
        tracing::warn!(container = %spec.name, "docker: {warning}");
    }
    if let Err(e) = docker.start_container(&created.id, None).await {
        let err = match ContainerError::from_engine(&spec.name, "start", e) {
            // The port is the one we asked for, whatever the message said.
            ContainerError::PortInUse { container, port } => ContainerError::PortInUse {
                container,
                port: spec.publish.map_or(port, |a| a.port()),
            },
            other => other,
        };
        if let Err(rm) = remove(docker, &created.id, true).await {
            tracing::warn!(
                container = %spec.name,
                "could not remove the container that failed to start: {}",
                sebs_wire::ErrorChain(&rm)
            );
        }
        return Err(err);
    }
    let started_at = Instant::now();
    let address = match address_of(docker, spec, &created.id).await {
        Ok(a) => a,
        Err(e) => {
            // A container whose process already exited has no address; say why instead.
            let e = match inspect_state(docker, &created.id).await {
                Ok(state) if !state.running => ContainerError::ExitedEarly {
                    container: spec.name.clone(),
                    exit_code: state.exit_code.unwrap_or(-1),
                    oom_killed: state.oom_killed,
                    logs: logs(docker, &created.id, LOG_LINES_IN_ERRORS)
                        .await
                        .unwrap_or_else(|e| format!("(no logs: {})", sebs_wire::ErrorChain(&e))),
                },
                _ => e,
            };
            if let Err(rm) = remove(docker, &created.id, true).await {
                tracing::warn!(
                    container = %spec.name,
                    "could not remove the container: {}",
                    sebs_wire::ErrorChain(&rm)
                );
            }
            return Err(e);
        }
    };
    tracing::debug!(container = %spec.name, id = %created.id, %address, "container started");
    Ok(StartedContainer {
        id: created.id,
        name: spec.name.clone(),
        address,
        created_at,
        started_at,
    })
}

async fn address_of(
    docker: &Docker,
    spec: &ContainerSpec,
    id: &str,
) -> Result<SocketAddr, ContainerError> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| ContainerError::from_engine(&spec.name, "inspect", e))?;
    let no_address = |reason: String| ContainerError::NoAddress {
        container: spec.name.clone(),
        reason,
    };
    let settings = info.network_settings.unwrap_or_default();
    if let Some(publish) = spec.publish {
        if publish.port() != 0 {
            return Ok(publish);
        }
        let port = settings
            .ports
            .as_ref()
            .and_then(|ports| ports.get(&spec.port_key()))
            .and_then(|b| b.as_ref())
            .and_then(|b| b.first())
            .and_then(|b| b.host_port.as_deref())
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| {
                no_address(format!(
                    "the engine reports no host port for {}",
                    spec.port_key()
                ))
            })?;
        return Ok(SocketAddr::new(publish.ip(), port));
    }
    if spec.network == "host" {
        return Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            spec.agent.port,
        ));
    }
    let ip = settings
        .networks
        .as_ref()
        .and_then(|n| n.get(&spec.network))
        .and_then(|n| n.ip_address.as_deref())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| no_address(format!("it has no IP address on network {}", spec.network)))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| no_address(format!("the engine reports a malformed IP address {ip:?}")))?;
    Ok(SocketAddr::new(ip, spec.agent.port))
}

/// Polls `GET /alive` at `address` until it answers 200, and returns how long that took.
///
/// A refused connection is retried after a millisecond. Meanwhile the engine is asked every
/// 50 ms whether the container still runs; one that exited fails the wait at once, with
/// its exit code and last log lines.
pub async fn wait_alive(
    docker: &Docker,
    container: &str,
    address: SocketAddr,
    deadline: Duration,
) -> Result<Duration, ContainerError> {
    let begin = Instant::now();
    let mut last = String::from("none yet");
    let outcome = tokio::time::timeout(deadline, async {
        tokio::select! {
            () = poll_alive(address, &mut last) => Ok(()),
            err = watch_exit(docker, container) => Err(err),
        }
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(begin.elapsed()),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(ContainerError::NotAlive {
            container: container.to_string(),
            address,
            waited: begin.elapsed(),
            last,
            logs: logs(docker, container, LOG_LINES_IN_ERRORS)
                .await
                .unwrap_or_else(|e| format!("(no logs: {})", sebs_wire::ErrorChain(&e))),
        }),
    }
}

async fn poll_alive(address: SocketAddr, last: &mut String) {
    loop {
        match probe_alive(address).await {
            Ok(200) => return,
            Ok(status) => *last = format!("status {status}"),
            Err(e) => *last = e.to_string(),
        }
        tokio::time::sleep(PROBE_RETRY).await;
    }
}

/// Returns only when the container stopped running or vanished.
async fn watch_exit(docker: &Docker, container: &str) -> ContainerError {
    loop {
        tokio::time::sleep(EXIT_CHECK_INTERVAL).await;
        match inspect_state(docker, container).await {
            Ok(state) if !state.running => {
                return ContainerError::ExitedEarly {
                    container: container.to_string(),
                    exit_code: state.exit_code.unwrap_or(-1),
                    oom_killed: state.oom_killed,
                    logs: logs(docker, container, LOG_LINES_IN_ERRORS)
                        .await
                        .unwrap_or_else(|e| format!("(no logs: {})", sebs_wire::ErrorChain(&e))),
                }
            }
            Err(e @ ContainerError::NotFound { .. }) => return e,
            // Running, or the engine hiccupped: keep probing.
            Ok(_) | Err(_) => {}
        }
    }
}

/// One `GET /alive` over a fresh connection; the status code of the answer.
async fn probe_alive(address: SocketAddr) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        sebs_wire::ALIVE_PATH
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(status) = parse_status_line(&buf) {
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a status line",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 4096 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no HTTP status line in the first 4 KiB",
            ));
        }
    }
}

/// The status code of a complete first line `HTTP/1.x NNN ...\r\n`, once it has arrived.
fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..end]).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// What the engine says about a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub running: bool,
    /// `created`, `running`, `exited`, ... as the engine says.
    pub status: String,
    /// Set once the container has stopped.
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The PID of its main process in the engine's PID namespace, while it runs.
    pub pid: Option<u32>,
}

pub async fn inspect_state(docker: &Docker, id: &str) -> Result<ContainerState, ContainerError> {
    let info = control(Duration::ZERO, docker.inspect_container(id, None))
        .await
        .map_err(|e| ContainerError::from_engine(id, "inspect", e))?;
    let state = info.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    Ok(ContainerState {
        running,
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        exit_code: if running { None } else { state.exit_code },
        oom_killed: state.oom_killed.unwrap_or(false),
        pid: state
            .pid
            .filter(|&p| p > 0)
            .and_then(|p| u32::try_from(p).ok()),
    })
}

/// Everything the engine says about the container, for what the functions here do not ask.
pub async fn inspect(
    docker: &Docker,
    id: &str,
) -> Result<ContainerInspectResponse, ContainerError> {
    control(Duration::ZERO, docker.inspect_container(id, None))
        .await
        .map_err(|e| ContainerError::from_engine(id, "inspect", e))
}

/// The container's address on `network` (e.g. `bridge`), if it has one there.
pub async fn network_address(
    docker: &Docker,
    id: &str,
    network: &str,
) -> Result<Option<IpAddr>, ContainerError> {
    Ok(inspect(docker, id)
        .await?
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|endpoint| endpoint.ip_address)
        .and_then(|ip| ip.parse().ok()))
}

/// Kills the container's main process with SIGKILL, as an OOM kill or `docker kill` would.
pub async fn kill(docker: &Docker, id: &str) -> Result<(), ContainerError> {
    control(
        Duration::ZERO,
        docker.kill_container(id, None::<KillContainerOptions>),
    )
    .await
    .map_err(|e| ContainerError::from_engine(id, "kill", e))
}

/// One reading of the engine's stats stream of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryStat {
    /// The memory the container uses now, in bytes, as the engine counts it.
    Usage(u64),
    /// The container has stopped or gone: the stream has nothing more to say.
    Gone,
}

/// The engine's stats stream of `id`, as memory readings (about one a second): ends after
/// [`MemoryStat::Gone`] or an error. A container that does not exist (any more) is
/// [`MemoryStat::Gone`], not an error.
pub fn memory_stats(
    docker: &Docker,
    id: &str,
) -> impl futures_util::Stream<Item = Result<MemoryStat, ContainerError>> + Send + 'static {
    let options = StatsOptions {
        stream: true,
        one_shot: false,
    };
    let id = id.to_string();
    let mut done = false;
    docker
        .stats(&id, Some(options))
        .map(move |item| match item {
            // A stopped container's stats have no memory figures.
            Ok(stats) => Ok(match stats.memory_stats.and_then(|m| m.usage) {
                Some(bytes) => MemoryStat::Usage(bytes),
                None => MemoryStat::Gone,
            }),
            Err(e) => match ContainerError::from_engine(&id, "read the engine's stats of", e) {
                ContainerError::NotFound { .. } => Ok(MemoryStat::Gone),
                e => Err(e),
            },
        })
        .chain(futures_util::stream::once(async { Ok(MemoryStat::Gone) }))
        .take_while(move |item| {
            let go_on = !done;
            done = !matches!(item, Ok(MemoryStat::Usage(_)));
            futures_util::future::ready(go_on)
        })
}

/// Stops the container, killing it after `grace`; stopping a stopped one is fine.
pub async fn stop(docker: &Docker, id: &str, grace: Duration) -> Result<(), ContainerError> {
    let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
    let options = StopContainerOptionsBuilder::default().t(secs).build();
    control(grace, docker.stop_container(id, Some(options)))
        .await
        .map_err(|e| ContainerError::from_engine(id, "stop", e))
}

/// Removes the container and its anonymous volumes; `force` kills a running one first.
pub async fn remove(docker: &Docker, id: &str, force: bool) -> Result<(), ContainerError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(force)
        .v(true)
        .build();
    control(Duration::ZERO, docker.remove_container(id, Some(options)))
        .await
        .map_err(|e| ContainerError::from_engine(id, "remove", e))
}

/// The last `tail` lines of the container's stdout and stderr, interleaved as written.
pub async fn logs(docker: &Docker, id: &str, tail: usize) -> Result<String, ContainerError> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&tail.to_string())
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        let item = item.map_err(|e| ContainerError::from_engine(id, "read the logs of", e))?;
        out.extend_from_slice(item.as_ref());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Changes a running container's memory limit (and swap with it) and CPU limit.
pub async fn update_resources(
    docker: &Docker,
    id: &str,
    memory_bytes: Option<u64>,
    nano_cpus: Option<u64>,
) -> Result<(), ContainerError> {
    let memory = memory_bytes.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
    let body = ContainerUpdateBody {
        memory,
        memory_swap: memory,
        nano_cpus: nano_cpus.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    control(Duration::ZERO, docker.update_container(id, body))
        .await
        .map_err(|e| match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } if status_code != 404 => ContainerError::UpdateRefused {
                container: id.to_string(),
                message,
            },
            e => ContainerError::from_engine(id, "update", e),
        })
}

/// All containers, running or not, that carry every one of `labels`.
pub async fn list_labelled(
    docker: &Docker,
    labels: &[(&str, &str)],
) -> Result<Vec<ContainerSummary>, ContainerError> {
    let filters = HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    control(Duration::ZERO, docker.list_containers(Some(options)))
        .await
        .map_err(|e| ContainerError::from_engine("(all)", "list", e))
}

/// Force-removes every container labelled `label`; returns how many it removed.
pub async fn remove_labelled(
    docker: &Docker,
    label: (&str, &str),
) -> Result<usize, ContainerError> {
    let mut removed = 0;
    for summary in list_labelled(docker, &[label]).await? {
        let Some(id) = summary.id else { continue };
        match remove(docker, &id, true).await {
            Ok(()) => removed += 1,
            // Someone else removed it between list and remove: the goal is met.
            Err(ContainerError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Owns a container and removes it when dropped.
///
/// [`ContainerGuard::remove`] is the main path: it waits and reports errors. Dropping the
/// guard instead spawns a best-effort forced removal on the current Tokio runtime, which
/// may not run if that runtime is shutting down.
#[derive(Debug)]
pub struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    pub fn new(docker: Docker, id: impl Into<String>) -> ContainerGuard {
        ContainerGuard {
            docker,
            id: Some(id.into()),
        }
    }

    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// Force-removes the container now; one already gone counts as removed.
    pub async fn remove(mut self) -> Result<(), ContainerError> {
        let Some(id) = self.id.take() else {
            return Ok(());
        };
        match remove(&self.docker, &id, true).await {
            Ok(()) | Err(ContainerError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives up ownership: the container is kept; returns its id.
    pub fn into_id(mut self) -> String {
        self.id.take().unwrap_or_default()
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let docker = self.docker.clone();
                handle.spawn(async move {
                    match remove(&docker, &id, true).await {
                        Ok(()) | Err(ContainerError::NotFound { .. }) => {}
                        Err(e) => {
                            tracing::warn!("dropped container guard: {}", sebs_wire::ErrorChain(&e))
                        }
                    }
                });
            }
            Err(_) => tracing::warn!(
                container = %id,
                "container guard dropped outside a Tokio runtime; the container is left behind"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_in_engine_messages() {
        fn check(message: &str, expect: Option<u16>) {
            assert_eq!(port_in_use(message), expect, "{message}");
        }
        check(
            "driver failed programming external connectivity on endpoint f (0a1b): \
             Bind for 127.0.0.1:8080 failed: port is already allocated",
            Some(8080),
        );
        check(
            "driver failed programming external connectivity on endpoint f (0a1b): Error \
             starting userland proxy: listen tcp4 127.0.0.1:9123: bind: address already in use",
            Some(9123),
        );
        check(
            "Bind for [::1]:9000 failed: port is already allocated",
            Some(9000),
        );
        check(
            "Conflict. The container name \"/x\" is already in use",
            None,
        );
        check("port is already allocated", None);
    }

    #[test]
    fn status_lines() {
        fn check(buf: &[u8], expect: Option<u16>) {
            assert_eq!(
                parse_status_line(buf),
                expect,
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
        check(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Some(200));
        check(b"HTTP/1.0 503 Service Unavailable\r\n", Some(503));
        check(b"HTTP/1.1 200 OK", None);
        check(b"SSH-2.0-OpenSSH\r\n", None);
        check(b"", None);
    }

    #[test]
    fn a_spec_becomes_a_locked_down_container() {
        let mut agent = AgentSettings::new(sebs_wire::Language::Python);
        agent.port = 9100;
        agent.uid = Some(65534);
        agent.gid = Some(65534);
        let mut spec = ContainerSpec::new("f", "img:1", "/pkg", "/bin/agent", agent)
            .publish_local(0)
            .label("sebs-local.function", "f");
        spec.memory_bytes = Some(256 << 20);
        spec.nano_cpus = Some(500_000_000);
        spec.tmp_size_bytes = Some(512 << 20);
        spec.pids_limit = Some(1024);
        spec.env
            .push(("MINIO_ADDRESS".into(), "172.17.0.1:9000".into()));
        let body = spec.to_create_body();

        assert_eq!(body.entrypoint, Some(vec!["/sebs/agent".to_string()]));
        assert_eq!(body.cmd, Some(vec![]));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get("sebs-local").map(String::as_str), Some("1"));
        assert_eq!(
            labels.get("sebs-local.function").map(String::as_str),
            Some("f")
        );
        let env = body.env.unwrap();
        assert!(env.contains(&"SEBS_AGENT_PORT=9100".to_string()), "{env:?}");
        assert_eq!(
            env.last().map(String::as_str),
            Some("MINIO_ADDRESS=172.17.0.1:9000")
        );
        assert_eq!(body.exposed_ports, Some(vec!["9100/tcp".to_string()]));

        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.memory_swap, Some(256 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.init, Some(false));
        // Only what the agent needs to run its workers as another user.
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.cap_add,
            Some(
                ["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(
            host.tmpfs,
            Some(HashMap::from([(
                "/tmp".to_string(),
                "rw,exec,nosuid,nodev,mode=1777,size=536870912".to_string()
            )]))
        );
        assert_eq!(host.pids_limit, Some(1024));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        let binding = &host.port_bindings.unwrap()["9100/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
        let mounts: Vec<_> = host
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| (m.source.unwrap(), m.target.unwrap(), m.read_only.unwrap()))
            .collect();
        assert_eq!(
            mounts,
            vec![
                ("/pkg".to_string(), "/function".to_string(), true),
                ("/bin/agent".to_string(), "/sebs/agent".to_string(), true),
            ]
        );
    }

    #[test]
    fn the_sandbox_loosened() {
        // An agent that runs its workers as itself (root) needs no capability; no limits.
        let spec = ContainerSpec::new(
            "f",
            "img:1",
            "/pkg",
            "/bin/agent",
            AgentSettings::new(sebs_wire::Language::Nodejs),
        );
        let host = spec.to_create_body().host_config.unwrap();
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, Some(vec![]));
        assert_eq!(host.pids_limit, None);
        assert_eq!(
            host.tmpfs.unwrap()["/tmp"],
            "rw,exec,nosuid,nodev,mode=1777,size=0"
        );
    }
}

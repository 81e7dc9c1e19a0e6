//! The embedded stores: our `sebs-store` binary in a `FROM scratch` image, one container per
//! service (object storage, NoSQL) on the same engine as the functions, as SeBS runs MinIO
//! and ScyllaDB.
//!
//! A store outlives the command that started it; everything about it (its keys, its
//! address, its data volume) is read back from the engine, so that any later command finds
//! it by name, starts it again if it was stopped or killed, and never needs a state file.
//! It listens only inside its container: functions reach it on the container network, the
//! host on that network's address or on a port published on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use sebs_container::{DataSource, Docker, ImageFile, ServiceInfo, ServiceSpec};

use crate::config::{MinioConfig, ScyllaDbConfig, ALTERNATOR_PORT};

/// The store binary, as `cargo xtask agent` builds it.
pub const STORE_BINARY: &str = "sebs-store";
/// Names the store binary explicitly; `cargo xtask` sets it.
pub const STORE_BIN_ENV: &str = "SEBS_STORE_BIN";
/// The store's image repository; the tag is a hash of the binary.
pub const STORE_IMAGE: &str = "sebs-local/store";
/// Label on a store container: `object` or `nosql`.
pub const STORE_LABEL: &str = "sebs-local.store";
/// Label on the image with the MD5 of the binary inside.
const BINARY_HASH_LABEL: &str = "sebs-local.store-binary";
/// Environment variables the store reads its keys from.
pub const ACCESS_KEY_ENV: &str = "SEBS_STORE_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "SEBS_STORE_SECRET_KEY";
/// Where the data volume is mounted inside the container.
const DATA_DIR: &str = "/data";
/// The unprivileged user the store runs as (nobody).
const STORE_USER: (u64, u64) = (65534, 65534);
/// The S3 port inside the container, as MinIO's.
pub const S3_PORT: u16 = 9000;
/// How long a store may take to answer after its start.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a store another command is creating may take to run before we start it ourselves.
const RACE_GRACE: Duration = Duration::from_secs(10);
/// How long the host waits for the container network before publishing is used instead.
const REACH_TIMEOUT: Duration = Duration::from_millis(1000);
/// Prefix of the embedded default stores' names; `SEBS_STORE_PREFIX` changes it (tests use
/// their own stores this way).
pub const DEFAULT_PREFIX: &str = "sebs-local-store";
pub const PREFIX_ENV: &str = "SEBS_STORE_PREFIX";

/// Which service a store serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The S3 API.
    Object,
    /// The DynamoDB API.
    Nosql,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Object => "object",
            Kind::Nosql => "nosql",
        }
    }

    fn port(self) -> u16 {
        match self {
            Kind::Object => S3_PORT,
            Kind::Nosql => ALTERNATOR_PORT,
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            Kind::Object => "s3",
            Kind::Nosql => "dynamodb",
        }
    }

    /// What to call it in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Object => "object storage",
            Kind::Nosql => "NoSQL storage",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An embedded store that could not be started, found or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(transparent)]
    Binary(#[from] sebs_container::BinaryError),
    #[error("read the store binary {path}")]
    ReadBinary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("make the store image {image}")]
    Image {
        image: String,
        #[source]
        source: sebs_container::ImageError,
    },
    #[error("{action} {kind} store {container}")]
    Container {
        kind: Kind,
        container: String,
        action: &'static str,
        #[source]
        source: sebs_container::ContainerError,
    },
    #[error(
        "wait for the {kind} store {container} to answer at {address}: nothing within \
         {waited:?} ({last}); its last log lines:\n{logs}"
    )]
    NotReady {
        kind: Kind,
        container: String,
        address: SocketAddr,
        waited: Duration,
        last: String,
        logs: String,
    },
    #[error(
        "use the {kind} store {container}: the engine reports no address for it (neither on \
         its network nor published)"
    )]
    NoAddress { kind: Kind, container: String },
    #[error("use the {kind} store {container}: it is not one of ours (no {STORE_LABEL} label)")]
    Foreign { kind: Kind, container: String },
    #[error(transparent)]
    Relay(#[from] crate::relay::RelayError),
    #[error("make the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A store that runs and answers.
#[derive(Debug, Clone)]
pub struct RunningStore {
    pub kind: Kind,
    pub container: ServiceInfo,
    pub access_key: String,
    pub secret_key: String,
    /// Where functions reach it: its address on the container network.
    pub address: SocketAddr,
    /// Where this host reaches it: the same address where the network is reachable, else
    /// the port published on 127.0.0.1.
    pub host_address: SocketAddr,
    /// The volume or host directory holding its data.
    pub data: String,
    /// What runs: `sebs-store` and the binary's hash.
    pub version: String,
}

impl RunningStore {
    /// SeBS's object storage block for this store.
    pub fn minio_config(&self) -> MinioConfig {
        MinioConfig {
            address: self.address.to_string(),
            mapped_port: self.container.published.map_or(-1, |a| i64::from(a.port())),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            instance_id: self.container.id.clone(),
            version: self.version.clone(),
            data_volume: self.data.clone(),
            ..MinioConfig::default()
        }
    }

    /// SeBS's NoSQL block for this store.
    pub fn scylladb_config(&self) -> ScyllaDbConfig {
        ScyllaDbConfig {
            address: self.address.to_string(),
            mapped_port: self.container.published.map_or(-1, |a| i64::from(a.port())),
            instance_id: self.container.id.clone(),
            version: self.version.clone(),
            data_volume: self.data.clone(),
            ..ScyllaDbConfig::default()
        }
    }
}

/// How to start a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub kind: Kind,
    /// The container's name; the embedded default has a fixed one ([`default_name`]).
    pub name: String,
    /// A named volume, or a host directory (SeBS's `data_volume` is a path).
    pub data: DataSource,
    /// Host port on 127.0.0.1 (0: the engine picks one).
    pub publish_port: u16,
    /// The container network, shared with the functions.
    pub network: String,
    /// More labels, e.g. a test's.
    pub labels: BTreeMap<String, String>,
}

impl StoreOptions {
    /// The embedded default of `kind`: a fixed name and a named volume beside it.
    pub fn embedded(kind: Kind) -> StoreOptions {
        let name = default_name(kind);
        StoreOptions {
            kind,
            data: DataSource::Volume(format!("{name}-data")),
            name,
            publish_port: 0,
            network: sebs_container::function::DEFAULT_NETWORK.to_string(),
            labels: BTreeMap::new(),
        }
    }
}

/// The embedded default store's container name for `kind`.
pub fn default_name(kind: Kind) -> String {
    let prefix = std::env::var(PREFIX_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    format!("{prefix}-{kind}")
}

/// SeBS's `data_volume`: a path (it has a `/`, or starts with `.` or `~`) is a host
/// directory, made absolute against `cwd` (`~` is `$HOME`) and created; anything else names
/// a volume. Only a directory made here is opened to the store's user (nobody); one that
/// existed keeps its mode.
pub fn data_source(data_volume: &str, cwd: &Path) -> Result<DataSource, EmbeddedError> {
    let looks_like_path =
        data_volume.contains('/') || data_volume.starts_with('.') || data_volume.starts_with('~');
    if !looks_like_path {
        return Ok(DataSource::Volume(data_volume.to_string()));
    }
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    let path = match data_volume.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => match home() {
            Some(home) => home.join(rest.trim_start_matches('/')),
            None => cwd.join(data_volume),
        },
        _ => cwd.join(data_volume),
    };
    if path.is_dir() {
        return Ok(DataSource::HostDir(path));
    }
    std::fs::create_dir_all(&path).map_err(|source| EmbeddedError::DataDir {
        path: path.clone(),
        source,
    })?;
    // The store runs as nobody: a directory made for it must be writable by it.
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)) {
        tracing::warn!("could not open {} to the store's user: {e}", path.display());
    }
    Ok(DataSource::HostDir(path))
}

/// The store image for the binary at `binary`, imported when missing or when the binary
/// changed; returns its tag.
pub async fn ensure_image(docker: &Docker, binary: &Path) -> Result<String, EmbeddedError> {
    let bytes = tokio::fs::read(binary)
        .await
        .map_err(|source| EmbeddedError::ReadBinary {
            path: binary.to_path_buf(),
            source,
        })?;
    let hash = hex::encode(Md5::digest(&bytes));
    let tag = format!("{STORE_IMAGE}:{}", &hash[..12]);
    // One import at a time in this process: two at once would leave the loser's image
    // behind, untagged.
    static IMPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = IMPORT.lock().await;
    if sebs_container::image_label(docker, &tag, BINARY_HASH_LABEL)
        .await
        .as_deref()
        == Some(&hash)
    {
        return Ok(tag);
    }
    tracing::info!(image = %tag, "making the store image from {}", binary.display());
    let (uid, gid) = STORE_USER;
    let dir = |path: &str, uid, gid| ImageFile {
        path: path.to_string(),
        contents: Vec::new(),
        mode: 0o755,
        uid,
        gid,
    };
    let files = vec![
        ImageFile {
            path: STORE_BINARY.to_string(),
            contents: bytes,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        // A fresh volume takes the owner of the directory it is mounted over.
        dir("data/", uid, gid),
        dir("tmp/", uid, gid),
    ];
    let changes = vec![
        format!("ENTRYPOINT [\"/{STORE_BINARY}\"]"),
        format!("LABEL {BINARY_HASH_LABEL}={hash}"),
        "LABEL sebs-local=1".to_string(),
        format!("USER {uid}:{gid}"),
        "ENV TMPDIR=/data".to_string(),
    ];
    sebs_container::import_image(docker, &tag, &files, changes)
        .await
        .map_err(|source| EmbeddedError::Image {
            image: tag.clone(),
            source,
        })?;
    Ok(tag)
}

/// Random keys of a new store, as SeBS makes them: an access key and a 64-hex secret.
fn new_keys() -> (String, String) {
    let access = uuid::Uuid::new_v4().simple().to_string()[..20].to_uppercase();
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    (access, secret)
}

/// Starts a new store of `options` from `image`; a store of that name that exists already
/// is used instead (two commands may start the embedded default at once).
pub async fn start(
    docker: &Docker,
    image: &str,
    options: &StoreOptions,
) -> Result<RunningStore, EmbeddedError> {
    let kind = options.kind;
    let (access, secret) = new_keys();
    let mut labels = options.labels.clone();
    labels.insert(STORE_LABEL.to_string(), kind.as_str().to_string());
    let port = kind.port();
    let spec = ServiceSpec {
        name: options.name.clone(),
        image: image.to_string(),
        cmd: vec![
            kind.subcommand().to_string(),
            "--listen".to_string(),
            format!("0.0.0.0:{port}"),
            "--data".to_string(),
            DATA_DIR.to_string(),
        ],
        env: match kind {
            Kind::Object => vec![
                (ACCESS_KEY_ENV.to_string(), access),
                (SECRET_KEY_ENV.to_string(), secret),
            ],
            Kind::Nosql => Vec::new(),
        },
        labels,
        port,
        publish: Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            options.publish_port,
        )),
        data: Some(options.data.clone()),
        data_target: DATA_DIR.to_string(),
        user: format!("{}:{}", STORE_USER.0, STORE_USER.1),
        network: options.network.clone(),
    };
    match sebs_container::create_service(docker, &spec).await {
        Ok(info) => ready(docker, kind, info).await,
        Err(sebs_container::ContainerError::NameInUse { .. }) => {
            started_by_another(docker, kind, &options.name).await
        }
        Err(source) => Err(EmbeddedError::Container {
            kind,
            container: options.name.clone(),
            action: "start",
            source,
        }),
    }
}

/// The store another command is starting under `name` at this moment, once it answers. The
/// engine reserves a name before the container can be inspected and creates it before it
/// starts, so both states are waited out for a while before `find` (which would start a
/// stopped store itself) decides.
async fn started_by_another(
    docker: &Docker,
    kind: Kind,
    name: &str,
) -> Result<RunningStore, EmbeddedError> {
    let begin = Instant::now();
    while begin.elapsed() < RACE_GRACE {
        match sebs_container::inspect_service(docker, name).await {
            Ok(Some(info)) if info.running => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(source) => {
                return Err(EmbeddedError::Container {
                    kind,
                    container: name.to_string(),
                    action: "inspect",
                    source,
                })
            }
        }
    }
    match find(docker, kind, name).await? {
        Some(store) => Ok(store),
        None => Err(EmbeddedError::Container {
            kind,
            container: name.to_string(),
            action: "find",
            source: sebs_container::ContainerError::NotFound {
                container: name.to_string(),
            },
        }),
    }
}

/// The store named (or with the id) `name`, started again if it was stopped, once it
/// answers; `None` when there is no such container.
pub async fn find(
    docker: &Docker,
    kind: Kind,
    name: &str,
) -> Result<Option<RunningStore>, EmbeddedError> {
    let container_err = |action, source| EmbeddedError::Container {
        kind,
        container: name.to_string(),
        action,
        source,
    };
    let Some(info) = sebs_container::inspect_service(docker, name)
        .await
        .map_err(|e| container_err("inspect", e))?
    else {
        return Ok(None);
    };
    if info.labels.get(STORE_LABEL).map(String::as_str) != Some(kind.as_str()) {
        return Err(EmbeddedError::Foreign {
            kind,
            container: name.to_string(),
        });
    }
    let info = if info.running {
        info
    } else {
        tracing::warn!(
            container = %info.name,
            "the {} store was not running (stopped or killed); starting it again, its data kept",
            kind.describe()
        );
        sebs_container::start_service(docker, &info.id)
            .await
            .map_err(|e| container_err("restart", e))?
    };
    ready(docker, kind, info).await.map(Some)
}

/// What [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// No container of that name.
    Absent,
    /// Removed; its data stays where this says (a volume or a host directory).
    DataKept(String),
    /// Removed with its data volume (or it had none).
    DataRemoved,
}

/// Stops and removes the store and its relays; with `remove_data`, its named volume too (a
/// host directory is left alone).
pub async fn remove(
    docker: &Docker,
    kind: Kind,
    name: &str,
    remove_data: bool,
) -> Result<Removed, EmbeddedError> {
    let container_err = |action, source| EmbeddedError::Container {
        kind,
        container: name.to_string(),
        action,
        source,
    };
    let info = sebs_container::inspect_service(docker, name)
        .await
        .map_err(|e| container_err("inspect", e))?;
    let Some(info) = info else {
        return Ok(Removed::Absent);
    };
    // A storage file may name any container (SeBS's own MinIO, a function, anything): only
    // a store of ours of this kind is removed, and its volume with it.
    if info.labels.get(STORE_LABEL).map(String::as_str) != Some(kind.as_str()) {
        return Err(EmbeddedError::Foreign {
            kind,
            container: name.to_string(),
        });
    }
    match sebs_container::remove(docker, &info.id, true).await {
        Ok(()) | Err(sebs_container::ContainerError::NotFound { .. }) => {}
        Err(e) => return Err(container_err("remove", e)),
    }
    crate::relay::remove_of(docker, &info.name).await?;
    match info.data {
        Some(DataSource::Volume(volume)) if remove_data => {
            sebs_container::remove_volume(docker, &volume)
                .await
                .map_err(|e| container_err("remove the data of", e))?;
            Ok(Removed::DataRemoved)
        }
        Some(DataSource::Volume(volume)) => Ok(Removed::DataKept(format!("volume {volume}"))),
        Some(DataSource::HostDir(dir)) => Ok(Removed::DataKept(dir.display().to_string())),
        None => Ok(Removed::DataRemoved),
    }
}

/// Waits until the store answers HTTP, and describes it.
async fn ready(
    docker: &Docker,
    kind: Kind,
    info: ServiceInfo,
) -> Result<RunningStore, EmbeddedError> {
    let port = kind.port();
    let address = match (info.ip, info.published) {
        (Some(ip), _) => SocketAddr::new(ip, port),
        (None, Some(published)) => published,
        (None, None) => {
            return Err(EmbeddedError::NoAddress {
                kind,
                container: info.name.clone(),
            })
        }
    };
    let host_address = host_reachable(address, info.published).await;
    let begin = Instant::now();
    let mut last;
    loop {
        match http_answers(host_address).await {
            Ok(()) => break,
            Err(e) => last = e,
        }
        if begin.elapsed() > READY_DEADLINE {
            let logs = sebs_container::logs(docker, &info.id, 30)
                .await
                .unwrap_or_else(|e| format!("(no logs: {e})"));
            return Err(EmbeddedError::NotReady {
                kind,
                container: info.name.clone(),
                address: host_address,
                waited: begin.elapsed(),
                last,
                logs,
            });
        }
        // A container that died while we wait will not answer: restart once is the
        // engine's job (its restart policy); here we just keep asking until the deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let version = format!(
        "{STORE_BINARY} {}",
        info.image.rsplit(':').next().unwrap_or_default()
    );
    let data = match &info.data {
        Some(DataSource::Volume(v)) => v.clone(),
        Some(DataSource::HostDir(d)) => d.display().to_string(),
        None => String::new(),
    };
    Ok(RunningStore {
        kind,
        access_key: info
            .env
            .get(ACCESS_KEY_ENV)
            .cloned()
            .unwrap_or_else(|| "None".into()),
        secret_key: info
            .env
            .get(SECRET_KEY_ENV)
            .cloned()
            .unwrap_or_else(|| "None".into()),
        address,
        host_address,
        data,
        version,
        container: info,
    })
}

/// `address` when this host can connect to it, else the published port, else `address`
/// all the same (the readiness wait then says what failed).
pub async fn host_reachable(address: SocketAddr, published: Option<SocketAddr>) -> SocketAddr {
    let connects = tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(address))
        .await
        .is_ok_and(|r| r.is_ok());
    match published {
        Some(p) if !connects => p,
        _ => address,
    }
}

/// Whether an HTTP server answers at `address` (any status: S3 answers 403 to an anonymous
/// request, and that is an answer).
pub(crate) async fn http_answers(address: SocketAddr) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    client
        .get(format!("http://{address}/"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_volumes_are_volumes_or_directories() {
        let cwd = tempfile::tempdir().unwrap();
        assert_eq!(
            data_source("minio-volume", cwd.path()).unwrap(),
            DataSource::Volume("minio-volume".into())
        );
        let got = data_source("./minio-data", cwd.path()).unwrap();
        assert_eq!(got, DataSource::HostDir(cwd.path().join("./minio-data")));
        assert!(cwd.path().join("minio-data").is_dir());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&cwd.path().join("minio-data")),
            0o777,
            "made for the store"
        );
        // A directory that exists keeps its mode.
        let own = cwd.path().join("own");
        std::fs::create_dir(&own).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(
            data_source("./own", cwd.path()).unwrap(),
            DataSource::HostDir(cwd.path().join("./own"))
        );
        assert_eq!(mode(&own), 0o750);
        // `~` is $HOME, not a directory named `~`.
        if let Some(home) = std::env::var_os("HOME") {
            let got = data_source("~", cwd.path()).unwrap();
            assert_eq!(got, DataSource::HostDir(PathBuf::from(home)));
            assert!(!cwd.path().join("~").exists());
        }
    }

    #[test]
    fn keys_are_random_and_long() {
        let (a1, s1) = new_keys();
        let (a2, s2) = new_keys();
        assert_ne!(a1, a2);
        assert_ne!(s1, s2);
        assert_eq!(a1.len(), 20);
        assert_eq!(s1.len(), 64);
        assert!(s1.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

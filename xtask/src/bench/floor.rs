//! The floors: our static responder (`sebs-floor`) in a FROM-scratch image, started through
//! the raw engine API, which is the least any container platform can do; and the Python
//! floor (`crates/sebs-floor/python/floor.py` in our Python base image), the least a Python
//! function can cost per call.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use md5::{Digest, Md5};
use sebs_container::Docker;

use crate::root;

/// The floor's image.
pub const IMAGE: &str = "sebs-local/floor:latest";
/// The port the floor listens on inside its container.
pub const PORT: u16 = 8080;
/// The Python floor's image: our functions' own base image.
pub const PYTHON_IMAGE: &str = "sebs-local/base:python-3.11";
/// Where the Python floor's script is mounted in its container.
const PYTHON_SCRIPT: &str = "/floor/floor.py";
/// Label on the image (and so on every container made from it) with the binary's hash.
const HASH_LABEL: &str = "sebs-local.floor-hash";

/// Makes sure [`IMAGE`] holds exactly `binary`; imports it again when the binary changed.
pub fn ensure_image(binary: &Path) -> Result<()> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("failed to read {}", binary.display()))?;
    let hash = hex::encode(Md5::digest(&bytes));
    let present = Command::new("docker")
        .args(["image", "inspect", "--format"])
        .arg(format!("{{{{ index .Config.Labels \"{HASH_LABEL}\" }}}}"))
        .arg(IMAGE)
        .stderr(Stdio::null())
        .output()
        .context("failed to run docker image inspect")?;
    if present.status.success() && String::from_utf8_lossy(&present.stdout).trim() == hash {
        return Ok(());
    }
    // A folder holding only the binary, tarred into `docker import`: a FROM-scratch image.
    let dir = root::dir()
        .join("target")
        .join("bench")
        .join("floor-rootfs");
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let inside = dir.join("sebs-floor");
    std::fs::copy(binary, &inside).with_context(|| {
        format!(
            "failed to copy {} to {}",
            binary.display(),
            inside.display()
        )
    })?;
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&dir)
        .args(["-c", "sebs-floor"])
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to run tar")?;
    let tar_out = tar.stdout.take().context("tar has no stdout")?;
    let mut import = Command::new("docker");
    import
        .args(["import", "--change", "LABEL sebs-local.bench=1", "--change"])
        .arg(format!("LABEL {HASH_LABEL}={hash}"))
        .args(["--change", "ENTRYPOINT [\"/sebs-floor\"]", "-", IMAGE])
        .stdin(Stdio::from(tar_out))
        .stdout(Stdio::null());
    eprintln!("xtask: importing {} as {IMAGE}", binary.display());
    let status = import.status().context("failed to run docker import")?;
    let tar_status = tar.wait().context("failed to wait for tar")?;
    if !status.success() || !tar_status.success() {
        bail!(
            "docker import of {} as {IMAGE} failed (docker: {status}, tar: {tar_status})",
            dir.display()
        );
    }
    Ok(())
}

/// A running floor container and how its start went.
#[derive(Debug, Clone)]
pub struct Floor {
    pub id: String,
    pub address: SocketAddr,
    /// From before the create call to the first 200.
    pub total: Duration,
    /// The create and start calls.
    pub create_start: Duration,
}

/// Which floor a container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sebs-floor` in its FROM-scratch image: what the engine and the network path cost.
    Static,
    /// `crates/sebs-floor/python/floor.py` in our Python base image: what one Python process
    /// costs per call.
    Python,
}

/// How the bench reaches a floor: as the platform reaches the function it compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The container's address on the default bridge.
    Bridge,
    /// A port the engine picks, published on 127.0.0.1.
    Loopback,
}

impl Reach {
    /// The reach of a function answering at `address`.
    pub fn of(address: SocketAddr) -> Reach {
        if address.ip().is_loopback() {
            Reach::Loopback
        } else {
            Reach::Bridge
        }
    }
}

/// The Python floor's script, mounted read-only into its container.
pub fn python_script() -> std::path::PathBuf {
    root::dir()
        .join("crates")
        .join("sebs-floor")
        .join("python")
        .join("floor.py")
}

/// Creates and starts a static floor container on the default bridge and waits for its
/// first 200.
pub async fn start(docker: &Docker, name: &str, labels: &[(&str, &str)]) -> Result<Floor> {
    start_kind(docker, name, labels, Kind::Static, Reach::Bridge).await
}

/// Creates and starts a floor container of `kind`, reached as `reach` says, and waits for
/// its first 200.
pub async fn start_kind(
    docker: &Docker,
    name: &str,
    labels: &[(&str, &str)],
    kind: Kind,
    reach: Reach,
) -> Result<Floor> {
    let labels: HashMap<String, String> = labels
        .iter()
        .chain(&[sebs_container::function::OWNER_LABEL])
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let port_key = format!("{PORT}/tcp");
    let mut host_config = HostConfig {
        network_mode: Some("bridge".to_string()),
        ..Default::default()
    };
    if reach == Reach::Loopback {
        host_config.port_bindings = Some(HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_string()),
                // Empty: the engine picks a free port.
                host_port: Some(String::new()),
            }]),
        )]));
    }
    let mut body = ContainerCreateBody {
        labels: Some(labels),
        exposed_ports: Some(vec![port_key.clone()]),
        ..Default::default()
    };
    match kind {
        Kind::Static => {
            body.image = Some(IMAGE.to_string());
            body.cmd = Some(vec![PORT.to_string()]);
        }
        Kind::Python => {
            let script = python_script();
            body.image = Some(PYTHON_IMAGE.to_string());
            body.entrypoint = Some(vec!["python3".to_string()]);
            body.cmd = Some(vec![PYTHON_SCRIPT.to_string(), PORT.to_string()]);
            host_config.binds = Some(vec![format!("{}:{PYTHON_SCRIPT}:ro", script.display())]);
        }
    }
    body.host_config = Some(host_config);
    let begin = Instant::now();
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    let id = docker
        .create_container(Some(options), body)
        .await
        .with_context(|| format!("failed to create floor container {name}"))?
        .id;
    let running = async {
        docker
            .start_container(&id, None)
            .await
            .with_context(|| format!("failed to start floor container {name}"))?;
        let create_start = begin.elapsed();
        let info = docker
            .inspect_container(&id, None)
            .await
            .with_context(|| format!("failed to inspect floor container {name}"))?;
        let settings = info.network_settings;
        let address = match reach {
            Reach::Bridge => settings
                .and_then(|s| s.networks)
                .and_then(|n| n.get("bridge").and_then(|b| b.ip_address.clone()))
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, PORT))
                .with_context(|| format!("floor container {name} has no address on the bridge"))?,
            Reach::Loopback => settings
                .and_then(|s| s.ports)
                .and_then(|p| p.get(&port_key).cloned().flatten())
                .and_then(|b| b.into_iter().find_map(|b| b.host_port?.parse::<u16>().ok()))
                .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
                .with_context(|| {
                    format!("floor container {name} has no port published on 127.0.0.1")
                })?,
        };
        sebs_container::wait_alive(docker, &id, address, Duration::from_secs(30))
            .await
            .with_context(|| format!("floor container {name} did not answer"))?;
        Ok::<_, anyhow::Error>((address, create_start))
    }
    .await;
    match running {
        Ok((address, create_start)) => Ok(Floor {
            id,
            address,
            total: begin.elapsed(),
            create_start,
        }),
        Err(e) => {
            remove(docker, &id).await;
            Err(e)
        }
    }
}

/// Removes a floor container; failures only warn, the final cleanup catches leftovers.
pub async fn remove(docker: &Docker, id: &str) {
    if let Err(e) = sebs_container::remove(docker, id, true).await {
        eprintln!("xtask: could not remove floor container {id}: {e}");
    }
}

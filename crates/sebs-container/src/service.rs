//! Service containers: long-lived containers of ours that are not functions (the embedded
//! object and NoSQL stores, with a data volume and a port published on one host address;
//! their relays, on the host's network, without data), from an image imported from a few
//! files (`FROM scratch`).
//!
//! Unlike a function container, a service container outlives the command that started it:
//! it is found again by name, restarted when it stopped, and removed on request.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::function::{owned_labels, remove, ContainerError};

/// Where a service keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A named volume of the engine, made when missing (works on any engine).
    Volume(String),
    /// A directory of the engine's host, bind-mounted (SeBS's `data_volume` is one).
    HostDir(PathBuf),
}

/// One service container to create.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    /// The command, after the image's entrypoint.
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Labels besides `sebs-local=1`, which every container gets.
    pub labels: BTreeMap<String, String>,
    /// The port the service listens on inside the container.
    pub port: u16,
    /// Publish [`ServiceSpec::port`] on this host address (port 0: the engine picks one).
    pub publish: Option<SocketAddr>,
    /// Mounted read-write at `data_target` (`None`: the service keeps nothing).
    pub data: Option<DataSource>,
    pub data_target: String,
    /// `uid:gid` the service runs as.
    pub user: String,
    pub network: String,
}

/// A service container as the engine sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub running: bool,
    /// Its address on its network, while it runs.
    pub ip: Option<IpAddr>,
    /// The host address its port is published on, while it runs.
    pub published: Option<SocketAddr>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The volume or host directory mounted at the data target.
    pub data: Option<DataSource>,
}

impl ServiceSpec {
    fn port_key(&self) -> String {
        format!("{}/tcp", self.port)
    }

    /// The engine's view of this spec: no capabilities, a read-only root, no new privileges,
    /// restarted by the engine unless someone stops it.
    pub fn to_create_body(&self) -> ContainerCreateBody {
        let labels = owned_labels(&self.labels);
        let mounts = self.data.as_ref().map(|data| {
            let (typ, source) = match data {
                DataSource::Volume(name) => (MountType::VOLUME, name.clone()),
                DataSource::HostDir(dir) => (MountType::BIND, dir.display().to_string()),
            };
            vec![Mount {
                target: Some(self.data_target.clone()),
                source: Some(source),
                typ: Some(typ),
                read_only: Some(false),
                ..Default::default()
            }]
        });
        let port_bindings = self
            .publish
            .map(|addr| crate::function::publish_port(&self.port_key(), addr));
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(self.cmd.clone()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            user: Some(self.user.clone()),
            exposed_ports: Some(vec![self.port_key()]),
            host_config: Some(HostConfig {
                mounts,
                port_bindings,
                network_mode: Some(self.network.clone()),
                cap_drop: Some(vec!["ALL".to_string()]),
                readonly_rootfs: Some(true),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Creates and starts the service; one that cannot start is removed again. A named
/// volume is made first when missing, with the spec's labels, and removed again with a
/// service that cannot start.
pub async fn create_service(
    docker: &Docker,
    spec: &ServiceSpec,
) -> Result<ServiceInfo, ContainerError> {
    let made_volume = match &spec.data {
        Some(DataSource::Volume(volume)) => ensure_volume(docker, volume, &spec.labels)
            .await?
            .then(|| volume.clone()),
        Some(DataSource::HostDir(_)) | None => None,
    };
    let started = create_and_start(docker, spec).await;
    if let (Err(_), Some(volume)) = (&started, &made_volume) {
        if let Err(e) = remove_volume(docker, volume).await {
            tracing::warn!(
                "could not remove the volume made for {}: {}",
                spec.name,
                sebs_wire::ErrorChain(&e)
            );
        }
    }
    started
}

async fn create_and_start(
    docker: &Docker,
    spec: &ServiceSpec,
) -> Result<ServiceInfo, ContainerError> {
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(options), spec.to_create_body())
        .await
        .map_err(|e| {
            if crate::function::image_is_missing(&e) {
                ContainerError::ImageMissing {
                    container: spec.name.clone(),
                    image: spec.image.clone(),
                }
            } else {
                ContainerError::from_engine(&spec.name, "create", e)
            }
        })?;
    if let Err(e) = docker.start_container(&created.id, None).await {
        let err = ContainerError::from_engine(&spec.name, "start", e);
        if let Err(rm) = remove(docker, &created.id, true).await {
            tracing::warn!(
                container = %spec.name,
                "could not remove the container that failed to start: {}",
                sebs_wire::ErrorChain(&rm)
            );
        }
        return Err(err);
    }
    inspect_service(docker, &created.id)
        .await?
        .ok_or_else(|| ContainerError::NotFound {
            container: spec.name.clone(),
        })
}

/// Starts a stopped service container again.
pub async fn start_service(docker: &Docker, id: &str) -> Result<ServiceInfo, ContainerError> {
    docker
        .start_container(id, None)
        .await
        .map_err(|e| ContainerError::from_engine(id, "start", e))?;
    inspect_service(docker, id)
        .await?
        .ok_or_else(|| ContainerError::NotFound {
            container: id.to_string(),
        })
}

/// The service container named (or with the id) `name`, or `None` when there is none.
pub async fn inspect_service(
    docker: &Docker,
    name: &str,
) -> Result<Option<ServiceInfo>, ContainerError> {
    let info = match docker.inspect_container(name, None).await {
        Ok(info) => info,
        Err(e) => {
            return match ContainerError::from_engine(name, "inspect", e) {
                ContainerError::NotFound { .. } => Ok(None),
                other => Err(other),
            }
        }
    };
    let config = info.config.unwrap_or_default();
    let state = info.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let settings = info.network_settings.unwrap_or_default();
    let network = info
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_else(|| crate::function::DEFAULT_NETWORK.to_string());
    let ip = settings
        .networks
        .as_ref()
        .and_then(|n| n.get(&network).or_else(|| n.values().next()))
        .and_then(|n| n.ip_address.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let published = settings.ports.as_ref().and_then(|ports| {
        ports.values().flatten().flatten().find_map(|b| {
            let ip: IpAddr = b.host_ip.as_deref()?.parse().ok()?;
            let port: u16 = b.host_port.as_deref()?.parse().ok()?;
            Some(SocketAddr::new(ip, port))
        })
    });
    let env = config
        .env
        .unwrap_or_default()
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    let labels = config.labels.unwrap_or_default().into_iter().collect();
    let data =
        info.mounts
            .unwrap_or_default()
            .into_iter()
            .find_map(|m| match m.typ.as_deref()? {
                "volume" => m.name.map(DataSource::Volume),
                "bind" => m.source.map(|s| DataSource::HostDir(PathBuf::from(s))),
                _ => None,
            });
    Ok(Some(ServiceInfo {
        id: info.id.unwrap_or_default(),
        name: info
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        running,
        ip: if running { ip } else { None },
        published: if running { published } else { None },
        env,
        labels,
        data,
    }))
}

/// Makes the named volume unless it exists; returns whether it made it.
pub async fn ensure_volume(
    docker: &Docker,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<bool, ContainerError> {
    if docker.inspect_volume(name).await.is_ok() {
        return Ok(false);
    }
    let labels = owned_labels(labels);
    let request = VolumeCreateRequest {
        name: Some(name.to_string()),
        labels: Some(labels),
        ..Default::default()
    };
    docker
        .create_volume(request)
        .await
        .map(|_| true)
        .map_err(|source| ContainerError::Volume {
            volume: name.to_string(),
            action: "create",
            source,
        })
}

/// Removes the named volume; one that does not exist counts as removed.
pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), ContainerError> {
    let options = RemoveVolumeOptionsBuilder::default().force(false).build();
    match docker.remove_volume(name, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(source) => Err(ContainerError::Volume {
            volume: name.to_string(),
            action: "remove",
            source,
        }),
    }
}

/// Names of the volumes carrying every one of `labels` (e.g. the anonymous `/tmp` volumes
/// of a run's function containers).
pub async fn list_labelled_volumes(
    docker: &Docker,
    labels: &[(&str, &str)],
) -> Result<Vec<String>, ContainerError> {
    let filters = HashMap::from([(
        "label".to_string(),
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>(),
    )]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let listed =
        docker
            .list_volumes(Some(options))
            .await
            .map_err(|source| ContainerError::Volume {
                volume: "(all)".to_string(),
                action: "list",
                source,
            })?;
    Ok(listed
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect())
}

/// One file of an image made by [`import_image`].
#[derive(Debug, Clone)]
pub struct ImageFile {
    /// Path inside the image, without the leading `/`; a trailing `/` makes a directory.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

/// The value of `label` on `image`, or `None` when the image or the label is missing.
pub async fn image_label(docker: &Docker, image: &str, label: &str) -> Option<String> {
    let info = docker.inspect_image(image).await.ok()?;
    info.config?.labels?.get(label).cloned()
}

/// Imports an image made of just `files` (`FROM scratch`), with Dockerfile instructions
/// `changes` (`ENTRYPOINT`, `LABEL`, `USER`, ...), tagged `tag`.
pub async fn import_image(
    docker: &Docker,
    tag: &str,
    files: &[ImageFile],
    changes: Vec<String>,
) -> Result<(), crate::image::ImageError> {
    let tar = tar_of(files).map_err(|source| crate::image::ImageError::Archive {
        image: tag.to_string(),
        source,
    })?;
    let (repo, version) = crate::image::split_reference(tag);
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(version.unwrap_or("latest"))
        .changes(changes)
        .build();
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(tar)) });
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    while let Some(item) = stream.next().await {
        if let Err(source) = item {
            return Err(crate::image::ImageError::Engine {
                image: tag.to_string(),
                action: "import",
                source,
            });
        }
    }
    Ok(())
}

fn tar_of(files: &[ImageFile]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for f in files {
        let mut header = tar::Header::new_gnu();
        let is_dir = f.path.ends_with('/');
        header.set_entry_type(if is_dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        header.set_size(if is_dir { 0 } else { f.contents.len() as u64 });
        header.set_mode(f.mode);
        header.set_uid(f.uid);
        header.set_gid(f.gid);
        header.set_mtime(0);
        builder.append_data(
            &mut header,
            f.path.trim_end_matches('/'),
            f.contents.as_slice(),
        )?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "sebs-local-store-object".into(),
            image: "sebs-local/store:abc".into(),
            cmd: vec!["s3".into()],
            env: vec![("K".into(), "v".into())],
            labels: BTreeMap::from([("sebs-local.store".into(), "object".into())]),
            port: 9000,
            publish: Some("127.0.0.1:0".parse().unwrap()),
            data: Some(DataSource::Volume("vol".into())),
            data_target: "/data".into(),
            user: "65534:65534".into(),
            network: "bridge".into(),
        }
    }

    #[test]
    fn service_containers_are_locked_down_and_publish_on_one_address() {
        let body = spec().to_create_body();
        let host = body.host_config.unwrap();
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        let bindings = host.port_bindings.unwrap();
        let b = &bindings["9000/tcp"].as_ref().unwrap()[0];
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(b.host_port.as_deref(), Some(""));
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.typ, Some(MountType::VOLUME));
        assert_eq!(mount.source.as_deref(), Some("vol"));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get("sebs-local").map(String::as_str), Some("1"));
        assert_eq!(body.user.as_deref(), Some("65534:65534"));
        assert_eq!(body.env, Some(vec!["K=v".to_string()]));
    }

    #[test]
    fn images_are_tars_of_their_files() {
        let files = vec![
            ImageFile {
                path: "data/".into(),
                contents: Vec::new(),
                mode: 0o755,
                uid: 65534,
                gid: 65534,
            },
            ImageFile {
                path: "bin".into(),
                contents: b"ELF".to_vec(),
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        ];
        let tar = tar_of(&files).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let got: Vec<(String, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.uid().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![("data".to_string(), 65534, 0), ("bin".to_string(), 0, 3)]
        );
    }
}

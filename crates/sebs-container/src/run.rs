//! Short-lived containers that run one command to completion, e.g. a dependency install.
//!
//! [`run_to_completion`] creates the container of a [`RunSpec`], starts it, waits for it to
//! exit (or kills it past its deadline), collects its combined output and removes it, also
//! when any step fails or the calling future is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use crate::function::{owned_labels, ContainerGuard, DEFAULT_NETWORK};

/// A host path mounted into a [`RunSpec`]'s container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// One command to run in a fresh container.
///
/// Fields are public because any combination is valid; [`RunSpec::new`] fills in the
/// defaults: the image's user and working directory, the default bridge network, no mounts,
/// no deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    /// The command and its arguments; the image's entrypoint is replaced by it.
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    /// `uid:gid` or a user name known to the image.
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<BindMount>,
    /// Labels besides `sebs-local=1`, which every container gets.
    pub labels: BTreeMap<String, String>,
    pub network: String,
    /// The container is killed and [`RunError::TimedOut`] returned after this long.
    pub timeout: Option<Duration>,
    /// The most tasks (processes and threads) the container may hold.
    pub pids_limit: Option<u64>,
    /// Capabilities the command may have; `None` keeps the engine's default set, an empty
    /// list grants none.
    pub capabilities: Option<Vec<String>>,
}

impl RunSpec {
    pub fn new(name: impl Into<String>, image: impl Into<String>, cmd: Vec<String>) -> RunSpec {
        RunSpec {
            name: name.into(),
            image: image.into(),
            cmd,
            working_dir: None,
            user: None,
            env: Vec::new(),
            mounts: Vec::new(),
            labels: BTreeMap::new(),
            network: DEFAULT_NETWORK.to_string(),
            timeout: None,
            pids_limit: None,
            capabilities: None,
        }
    }

    /// The engine's view of this spec.
    pub fn to_create_body(&self) -> ContainerCreateBody {
        let labels = owned_labels(&self.labels);
        let mounts = self
            .mounts
            .iter()
            .map(|m| Mount {
                target: Some(m.target.clone()),
                source: Some(m.source.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect();
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: Some(self.cmd.clone()),
            cmd: Some(Vec::new()),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            working_dir: self.working_dir.clone(),
            user: self.user.clone(),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                network_mode: Some(self.network.clone()),
                pids_limit: self
                    .pids_limit
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                cap_drop: self.capabilities.as_ref().map(|_| vec!["ALL".to_string()]),
                cap_add: self.capabilities.clone(),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                // A tiny init reaps whatever the command leaves behind.
                init: Some(true),
                auto_remove: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// What a finished command left: its exit code and its stdout and stderr, interleaved as
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub exit_code: i64,
    pub output: String,
}

/// A command that could not be run to its end. A command that ran and failed is not an
/// error: its [`RunOutput::exit_code`] says so.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("create container {container}: image {image} is not present")]
    ImageMissing { container: String, image: String },
    #[error("mount {path} into container {container}: {reason}")]
    MountSource {
        container: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{action} container {container}")]
    Engine {
        container: String,
        action: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("run container {container}: still running after {timeout:?}; killed it; its output:\n{output}")]
    TimedOut {
        container: String,
        timeout: Duration,
        output: String,
    },
}

/// Runs `spec`'s command in a new container and returns its exit code and output once it
/// exits. The container is removed in every case.
pub async fn run_to_completion(docker: &Docker, spec: &RunSpec) -> Result<RunOutput, RunError> {
    for mount in &spec.mounts {
        if let Err(e) = std::fs::metadata(&mount.source) {
            return Err(RunError::MountSource {
                container: spec.name.clone(),
                path: mount.source.clone(),
                reason: e.to_string(),
            });
        }
    }
    let engine = |action: &'static str| {
        let container = spec.name.clone();
        move |source| RunError::Engine {
            container,
            action,
            source,
        }
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(options), spec.to_create_body())
        .await
        .map_err(|e| {
            if crate::function::image_is_missing(&e) {
                RunError::ImageMissing {
                    container: spec.name.clone(),
                    image: spec.image.clone(),
                }
            } else {
                engine("create")(e)
            }
        })?;
    // From here on the guard removes the container, also when this future is dropped.
    let guard = ContainerGuard::new(docker.clone(), created.id.clone());
    let result = run_created(docker, spec, &created.id).await;
    if let Err(e) = guard.remove().await {
        tracing::warn!(container = %spec.name, "could not remove the finished container: {}", sebs_wire::ErrorChain(&e));
    }
    result
}

async fn run_created(docker: &Docker, spec: &RunSpec, id: &str) -> Result<RunOutput, RunError> {
    let engine = |action: &'static str| {
        let container = spec.name.clone();
        move |source| RunError::Engine {
            container,
            action,
            source,
        }
    };
    docker
        .start_container(id, None)
        .await
        .map_err(engine("start"))?;
    let wait = async {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = docker.wait_container(id, Some(options));
        let mut code = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(answer) => code = Some(answer.status_code),
                // bollard reports a non-zero exit as an error; to us it is an outcome.
                Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => {
                    code = Some(c)
                }
                Err(e) => return Err(engine("wait for")(e)),
            }
        }
        Ok(code)
    };
    let code = match spec.timeout {
        None => wait.await?,
        Some(timeout) => match tokio::time::timeout(timeout, wait).await {
            Ok(code) => code?,
            Err(_) => {
                if let Err(e) = docker.kill_container(id, None).await {
                    tracing::debug!(container = %spec.name, "kill after timeout: {}", sebs_wire::ErrorChain(&e));
                }
                return Err(RunError::TimedOut {
                    container: spec.name.clone(),
                    timeout,
                    output: all_logs(docker, id).await.unwrap_or_default(),
                });
            }
        },
    };
    let output = all_logs(docker, id)
        .await
        .map_err(engine("read the logs of"))?;
    // A wait stream that ended without an answer leaves the engine's record as the source.
    let exit_code = match code {
        Some(code) => code,
        None => docker
            .inspect_container(id, None)
            .await
            .map_err(engine("inspect"))?
            .state
            .and_then(|s| s.exit_code)
            .unwrap_or(-1),
    };
    Ok(RunOutput { exit_code, output })
}

async fn all_logs(docker: &Docker, id: &str) -> Result<String, bollard::errors::Error> {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.extend_from_slice(item?.as_ref());
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_carries_the_spec_and_the_owner_label() {
        let mut spec = RunSpec::new("b", "img:1", vec!["sh".into(), "-c".into(), "true".into()]);
        spec.user = Some("1000:1000".into());
        spec.working_dir = Some("/w".into());
        spec.env.push(("HOME".into(), "/tmp".into()));
        spec.labels.insert("sebs-local.build".into(), "1".into());
        spec.mounts.push(BindMount {
            source: "/host/pkg".into(),
            target: "/w".into(),
            read_only: false,
        });
        let body = spec.to_create_body();
        assert_eq!(body.entrypoint.as_deref(), Some(&spec.cmd[..]));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/w"));
        assert_eq!(body.env, Some(vec!["HOME=/tmp".to_string()]));
        let labels = body.labels.unwrap();
        assert_eq!(labels.get("sebs-local").map(String::as_str), Some("1"));
        assert_eq!(
            labels.get("sebs-local.build").map(String::as_str),
            Some("1")
        );
        let host = body.host_config.unwrap();
        let mount = &host.mounts.unwrap()[0];
        assert_eq!(mount.source.as_deref(), Some("/host/pkg"));
        assert_eq!(mount.read_only, Some(false));
        assert_eq!(host.network_mode.as_deref(), Some("bridge"));
        // The engine's defaults unless asked.
        assert_eq!(
            (host.pids_limit, host.cap_drop, host.cap_add),
            (None, None, None)
        );

        spec.pids_limit = Some(4096);
        spec.capabilities = Some(vec![]);
        let host = spec.to_create_body().host_config.unwrap();
        assert_eq!(host.pids_limit, Some(4096));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.cap_add, Some(vec![]));
    }
}

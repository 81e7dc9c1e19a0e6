//! Functions: a code package running in a container behind an HTTP trigger.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sebs_container::{ContainerSpec, Docker, StartedContainer};
use sebs_package::{BenchmarkConfig, Package};
use sebs_trigger::{ExecutionResult, InvokeError, Trigger, TriggerConfig};
use sebs_wire::{AgentSettings, Language};

/// Label naming the function a container serves.
pub const FUNCTION_LABEL: &str = "sebs-local.function";
/// Label naming the benchmark a container serves.
pub const BENCHMARK_LABEL: &str = "sebs-local.benchmark";
/// Label carrying the code package's hash.
pub const HASH_LABEL: &str = "sebs-local.hash";

/// How the platform runs functions; one per [`Platform`].
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The static agent mounted into every container (see [`crate::find_agent_binary`]).
    pub agent_binary: PathBuf,
    /// The container network; its addresses must be reachable from this host.
    pub network: String,
    /// How long a new container may take to answer `/alive`.
    pub alive_deadline: Duration,
    /// Run containers privileged (for hardware counters); off by default.
    pub privileged: bool,
    /// The user functions run as; by default the invoking user, as SeBS does.
    pub user: Option<(u32, u32)>,
    /// Labels put on every container, e.g. to find a test's containers again.
    pub labels: BTreeMap<String, String>,
}

impl PlatformConfig {
    pub fn new(agent_binary: PathBuf) -> PlatformConfig {
        PlatformConfig {
            agent_binary,
            network: "bridge".to_string(),
            alive_deadline: Duration::from_secs(30),
            privileged: false,
            user: Some((nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())),
            labels: BTreeMap::new(),
        }
    }
}

/// What a function is given: from the benchmark's `config.json` unless overridden.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    pub language: Language,
    pub language_version: String,
    /// Memory limit of the container, enforced by the engine.
    pub memory_mb: u64,
    /// A handler running longer is stopped and its invocation fails with a timeout.
    pub timeout_s: u64,
    /// CPU limit; `None` leaves the container unlimited.
    pub cpus: Option<f64>,
    /// Invocations one container serves at once.
    pub workers: usize,
}

impl FunctionConfig {
    pub fn from_benchmark(config: &BenchmarkConfig, language: Language, version: &str) -> Self {
        FunctionConfig {
            language,
            language_version: version.to_string(),
            memory_mb: config.memory_mb,
            timeout_s: config.timeout_s,
            cpus: None,
            workers: 1,
        }
    }
}

/// A deployed function: one container and the trigger that invokes it.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub benchmark: String,
    pub hash: String,
    pub image: String,
    pub config: FunctionConfig,
    pub container: StartedContainer,
    /// From the create call to the first 200 of `/alive`.
    pub startup: Duration,
    pub trigger: Arc<Trigger>,
}

impl Function {
    /// The address SeBS writes as `url`: `ip:port`, without scheme.
    pub fn url(&self) -> String {
        self.container.address.to_string()
    }
}

/// What went wrong on the platform.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("find the in-container agent{}: build it with `cargo xtask agent` or set SEBS_AGENT_BIN",
        path.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    AgentMissing { path: Option<PathBuf> },
    #[error("start function {function}")]
    Start {
        function: String,
        #[source]
        source: sebs_container::ContainerError,
    },
    #[error("stop function {function} (container {container})")]
    Stop {
        function: String,
        container: String,
        #[source]
        source: sebs_container::ContainerError,
    },
    #[error("make a trigger for function {function}")]
    Trigger {
        function: String,
        #[source]
        source: sebs_trigger::UrlError,
    },
}

/// The local platform.
#[derive(Debug, Clone)]
pub struct Platform {
    docker: Docker,
    config: PlatformConfig,
    /// Containers started and not yet removed, for [`Platform::shutdown`].
    live: Arc<Mutex<Vec<String>>>,
}

impl Platform {
    pub fn new(docker: Docker, config: PlatformConfig) -> Platform {
        Platform { docker, config, live: Arc::default() }
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn config(&self) -> &PlatformConfig {
        &self.config
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
        let mut settings = AgentSettings::new(config.language);
        settings.workers = config.workers.max(1);
        settings.timeout_ms = config.timeout_s.saturating_mul(1000);
        if let Some((uid, gid)) = self.config.user {
            settings.uid = Some(uid);
            settings.gid = Some(gid);
        }
        let container_name = format!("sebs-{}-{}", sanitize(name), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut spec = ContainerSpec::new(
            container_name,
            image,
            package.dir.clone(),
            self.config.agent_binary.clone(),
            settings,
        );
        spec.network = self.config.network.clone();
        spec.privileged = self.config.privileged;
        spec.memory_bytes = Some(config.memory_mb.saturating_mul(1024 * 1024));
        spec.nano_cpus = config.cpus.map(|c| (c * 1e9).round() as u64);
        spec.labels = self.config.labels.clone();
        spec = spec
            .label(FUNCTION_LABEL, name)
            .label(BENCHMARK_LABEL, benchmark)
            .label(HASH_LABEL, &package.hash);
        if let Ok(user) = std::env::var("USER") {
            spec.env.push((sebs_wire::env::USER.to_string(), user));
        }
        let start_err = |source| PlatformError::Start { function: name.to_string(), source };

        let container = sebs_container::create_and_start(&self.docker, &spec).await.map_err(start_err)?;
        self.live.lock().unwrap_or_else(|p| p.into_inner()).push(container.id.clone());
        let alive = sebs_container::wait_alive(
            &self.docker,
            &container.id,
            container.address,
            self.config.alive_deadline,
        )
        .await;
        if let Err(e) = alive {
            self.remove_quietly(&container.id).await;
            return Err(start_err(e));
        }
        let startup = container.created_at.elapsed();
        let trigger_config = TriggerConfig {
            keep_alive: true,
            // The agent answers a handler past its timeout with 504 itself; this bound only
            // catches an agent that stopped answering altogether.
            timeout: Duration::from_secs(config.timeout_s.saturating_add(30)),
        };
        let trigger = Trigger::new(&format!("http://{}/", container.address), trigger_config)
            .map_err(|source| PlatformError::Trigger { function: name.to_string(), source })?;
        tracing::info!(
            function = name,
            container = %container.id,
            url = %container.address,
            startup_ms = startup.as_secs_f64() * 1e3,
            "function started"
        );
        Ok(Function {
            name: name.to_string(),
            benchmark: benchmark.to_string(),
            hash: package.hash.clone(),
            image: image.to_string(),
            config: config.clone(),
            container,
            startup,
            trigger: Arc::new(trigger),
        })
    }

    /// Invokes `function` once with `input`.
    pub async fn invoke(
        &self,
        function: &Function,
        input: &serde_json::Value,
    ) -> Result<ExecutionResult, InvokeError> {
        function.trigger.invoke(input).await
    }

    /// Stops the function's container and removes it.
    pub async fn stop(&self, function: &Function) -> Result<(), PlatformError> {
        let id = &function.container.id;
        let result = sebs_container::remove(&self.docker, id, true).await;
        self.forget(id);
        result.map_err(|source| PlatformError::Stop {
            function: function.name.clone(),
            container: id.clone(),
            source,
        })
    }

    /// Removes every container this platform started and has not removed yet.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = std::mem::take(&mut *self.live.lock().unwrap_or_else(|p| p.into_inner()));
        for id in ids {
            self.remove_quietly(&id).await;
        }
    }

    async fn remove_quietly(&self, id: &str) {
        if let Err(e) = sebs_container::remove(&self.docker, id, true).await {
            tracing::warn!(container = id, error = %e, "could not remove container");
        }
        self.forget(id);
    }

    fn forget(&self, id: &str) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).retain(|c| c != id);
    }
}

/// A container name made of `name`: Docker allows `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
        .collect();
    s.trim_start_matches(['.', '-', '_']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        assert_eq!(sanitize("110.dynamic-html-python-128"), "110.dynamic-html-python-128");
        assert_eq!(sanitize("a b/c"), "a-b-c");
        assert_eq!(sanitize(".x"), "x");
    }
}

//! The state file of `start`/`stop` (`out.json`): SeBS's format, plus a section of ours.
//!
//! SeBS writes `{"functions": [...], "inputs": [...], "storage": ...}` with sorted keys and an
//! indent of 2, and `memory_measurements` (`pids`, `file`) when memory is measured; each
//! function has `benchmark`, `config`, `hash`, `instance_id` (the container id), `name`,
//! `port`, `triggers` and `url`. We write the same, so that SeBS's `local stop` reads our
//! files, and add `sebs_local`, which SeBS ignores, with what `stop`, `logs` and `cleanup`
//! need: whether to remove containers and which host ports to free, and the sandbox the
//! functions run in. A file without that section was not written by us and is refused rather
//! than guessed at.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::function::{Function, FunctionState, Platform, PlatformError};
use crate::sandbox::SandboxRecord;

/// The version of our `sebs_local` section; bumped when its meaning changes.
pub const FORMAT_VERSION: u32 = 1;

/// `out.json`. Field order is alphabetical, as SeBS's `json.dumps(sort_keys=True)` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentFile {
    pub functions: Vec<FunctionEntry>,
    /// The benchmark inputs, one per input size asked for (SeBS writes one).
    pub inputs: Vec<serde_json::Value>,
    /// SeBS's record of the memory measurement, for SeBS's `local stop`; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_measurements: Option<SebsMemoryMeasurements>,
    pub sebs_local: LocalSection,
    /// SeBS's object-storage configuration; `null` while we run no storage.
    pub storage: serde_json::Value,
}

/// One function as SeBS's `LocalFunction.serialize` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionEntry {
    pub benchmark: String,
    pub config: SebsFunctionConfig,
    pub hash: String,
    /// The container id.
    pub instance_id: String,
    pub name: String,
    pub port: u16,
    pub triggers: Vec<serde_json::Value>,
    /// `ip:port`, without a scheme.
    pub url: String,
}

/// SeBS's `FunctionConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SebsFunctionConfig {
    pub architecture: String,
    pub memory: u64,
    pub runtime: SebsRuntime,
    pub timeout: u64,
}

/// SeBS's `Runtime`; fields in the order SeBS's sorted keys put them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SebsRuntime {
    pub language: String,
    /// SeBS's `language-variant`: `default` is the language's own runtime (not PyPy, Bun...).
    #[serde(rename = "language-variant", default = "default_variant")]
    pub variant: String,
    pub version: String,
}

fn default_variant() -> String {
    "default".to_string()
}

/// SeBS's `memory_measurements`: the measuring processes, which SeBS's `local stop` kills,
/// and the file they append `<container id> <bytes>` lines to, which it then summarises into
/// `memory_stats.json` and removes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SebsMemoryMeasurements {
    pub file: PathBuf,
    pub pids: Vec<u32>,
}

/// Our section of `out.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalSection {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// `stop` removes the containers (else it only stops them, and `cleanup` removes them).
    pub remove_containers: bool,
    /// Where the leases of published ports live, to free them at `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_lock_dir: Option<PathBuf>,
    pub instances: Vec<Instance>,
    /// The memory measurement `start --measure-interval` runs; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySection>,
    /// The sandbox the functions run in (all of a deployment share one); absent in files of
    /// versions that did not record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxRecord>,
    /// The whole storage file the functions use (SeBS's nesting, object and NoSQL), where
    /// SeBS's `storage` above holds only the object storage block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<serde_json::Value>,
}

/// The measuring process of a deployment (see [`crate::memory`]), for `stop` to end it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySection {
    /// The measuring process; absent when no container is measured from this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its [`sebs_memory::MeasureDir`]: journals, log and markers.
    pub dir: PathBuf,
    /// Milliseconds between samples, as the user asked.
    pub interval_ms: u64,
    pub cgroup_root: PathBuf,
    /// The containers whose agents sample their own memory (those on engines whose cgroup
    /// files this host cannot read), with the address `stop` fetches the series from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentMeasured>,
}

/// A container whose agent samples its own memory (see [`MemorySection::agents`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMeasured {
    pub container: String,
    /// The function's URL (`host:port`), where `GET /memory` is asked.
    pub url: String,
}

/// One container of the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub container_name: String,
    pub function: String,
    pub instance_id: String,
    /// The leased host port when published on 127.0.0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_port: Option<u16>,
    /// The engine it runs on (`unix://...`, `tcp://host:port`, `ssh://...`); absent in files written
    /// before engines were recorded, which mean the home engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// `out.json` that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("read deployment file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse deployment file {path}: it is not JSON")]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "read deployment file {path}: it has no \"sebs_local\" section, so it was not written \
         by `sebs-local start` (SeBS's own `sebs local stop` reads files of SeBS)"
    )]
    Foreign { path: PathBuf },
    #[error(
        "read deployment file {path}: its \"sebs_local\" section has format {found}, this \
         sebs-local reads format {FORMAT_VERSION}"
    )]
    Version {
        path: PathBuf,
        found: serde_json::Value,
    },
    #[error("read deployment file {path}: field {field}: {message}")]
    Shape {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("read deployment file {path}: function {function} runs in container {container}, which its \"sebs_local\" section does not list")]
    Unlisted {
        path: PathBuf,
        function: String,
        container: String,
    },
    #[error("write deployment file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DeploymentFile {
    /// The file for `functions` started by `start`, with the benchmark's input.
    pub fn new(
        functions: &[Function],
        input: serde_json::Value,
        remove_containers: bool,
        port_lock_dir: Option<PathBuf>,
    ) -> DeploymentFile {
        let entries = functions
            .iter()
            .map(|f| FunctionEntry {
                benchmark: f.benchmark.clone(),
                config: SebsFunctionConfig {
                    architecture: host_architecture().to_string(),
                    memory: f.config.memory_mb,
                    runtime: SebsRuntime {
                        language: f.config.language.to_string(),
                        variant: default_variant(),
                        version: f.config.language_version.clone(),
                    },
                    timeout: f.config.timeout_s,
                },
                hash: f.hash.clone(),
                instance_id: f.container.id.clone(),
                name: f.name.clone(),
                port: f.port(),
                triggers: Vec::new(),
                url: f.url(),
            })
            .collect();
        let instances = functions
            .iter()
            .map(|f| Instance {
                container_name: f.container.name.clone(),
                function: f.name.clone(),
                instance_id: f.container.id.clone(),
                published_port: f.published_port,
                engine: Some(f.engine.address.to_string()),
            })
            .collect();
        let any_published = functions.iter().any(|f| f.published_port.is_some());
        DeploymentFile {
            functions: entries,
            inputs: vec![input],
            memory_measurements: None,
            sebs_local: LocalSection {
                format: FORMAT_VERSION,
                remove_containers,
                port_lock_dir: port_lock_dir.filter(|_| any_published),
                instances,
                memory: None,
                sandbox: functions.first().map(|f| f.sandbox.clone()),
                storage: None,
            },
            storage: serde_json::Value::Null,
        }
    }

    /// Records the memory measurement `start` runs: our section for our `stop`, SeBS's
    /// `memory_measurements` for SeBS's.
    pub fn set_memory(&mut self, memory: Option<MemorySection>) {
        self.memory_measurements = memory.as_ref().map(|m| SebsMemoryMeasurements {
            file: sebs_memory::MeasureDir::new(m.dir.clone()).sebs_measurements(),
            pids: m.pid.into_iter().collect(),
        });
        self.sebs_local.memory = memory;
    }

    /// Parses `text` read from `path` (only used in messages).
    pub fn parse(path: &Path, text: &str) -> Result<DeploymentFile, DeploymentError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| DeploymentError::NotJson {
                path: path.to_owned(),
                source,
            })?;
        let Some(section) = value.get("sebs_local") else {
            return Err(DeploymentError::Foreign {
                path: path.to_owned(),
            });
        };
        match section.get("format") {
            Some(v) if v.as_u64() == Some(u64::from(FORMAT_VERSION)) => {}
            found => {
                return Err(DeploymentError::Version {
                    path: path.to_owned(),
                    found: found.cloned().unwrap_or(serde_json::Value::Null),
                })
            }
        }
        let file: DeploymentFile =
            serde_path_to_error::deserialize(value).map_err(|e| DeploymentError::Shape {
                path: path.to_owned(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        for f in &file.functions {
            if !file
                .sebs_local
                .instances
                .iter()
                .any(|i| i.instance_id == f.instance_id)
            {
                return Err(DeploymentError::Unlisted {
                    path: path.to_owned(),
                    function: f.name.clone(),
                    container: f.instance_id.clone(),
                });
            }
        }
        Ok(file)
    }

    pub fn read(path: &Path) -> Result<DeploymentFile, DeploymentError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeploymentError::Read {
            path: path.to_owned(),
            source,
        })?;
        DeploymentFile::parse(path, &text)
    }

    /// The file's text: SeBS's layout (2-space indent, sorted keys) and a final newline.
    pub fn to_text(&self) -> String {
        // Serialising plain data to a string cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the file whole or not at all: to a temporary file beside it, then renamed.
    pub fn write(&self, path: &Path) -> Result<(), DeploymentError> {
        let err = |source| DeploymentError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::io::Write::write_all(&mut tmp, self.to_text().as_bytes()).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// SeBS's name of this machine's architecture (`x64` or `arm64`), which functions run on.
pub fn host_architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x64"
    }
}

/// A container a deployment file lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedContainer {
    pub instance_id: String,
    /// The function it serves, when the file says.
    pub function: String,
    /// The engine it runs on, when the file says (ours does); else the home engine.
    pub engine: Option<String>,
}

/// The containers a deployment file lists, whoever wrote it: SeBS's `functions[].instance_id`
/// and the instances of our section, each once, in the file's order.
pub fn listed_containers(file: &serde_json::Value) -> Vec<ListedContainer> {
    let functions = file["functions"].as_array().into_iter().flatten();
    let ours = file["sebs_local"]["instances"]
        .as_array()
        .into_iter()
        .flatten();
    let mut listed: Vec<ListedContainer> = Vec::new();
    for (entry, name_key) in functions
        .map(|f| (f, "name"))
        .chain(ours.map(|i| (i, "function")))
    {
        let Some(id) = entry["instance_id"].as_str().filter(|id| !id.is_empty()) else {
            continue;
        };
        if listed.iter().any(|l| l.instance_id == id) {
            continue;
        }
        listed.push(ListedContainer {
            instance_id: id.to_string(),
            function: entry[name_key].as_str().unwrap_or_default().to_string(),
            engine: entry["engine"].as_str().map(str::to_string),
        });
    }
    listed
}

/// What `stop` found and did for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// It was running and is now stopped (or removed, when asked).
    Stopped,
    /// It had already exited (killed or crashed behind our back); it was removed when asked.
    AlreadyExited { code: i64, oom_killed: bool },
    /// It no longer existed: removed behind our back.
    Gone,
}

impl StopOutcome {
    /// Whether the container was in the state `start` left it in.
    pub fn as_expected(&self) -> bool {
        matches!(self, StopOutcome::Stopped)
    }
}

impl Platform {
    /// The state of container `id` on the engine at `engine` (`None`: the home engine).
    async fn state_on(
        &self,
        engine: Option<&str>,
        id: &str,
    ) -> Result<FunctionState, sebs_container::ContainerError> {
        let docker = self.docker_for(engine).await?;
        crate::function::container_state(&docker, id).await
    }

    /// The state of each listed container, e.g. to tell a deployment that still runs from one
    /// that was stopped, removed or died.
    pub async fn listed_states(
        &self,
        listed: &[ListedContainer],
    ) -> Result<Vec<FunctionState>, PlatformError> {
        let mut states = Vec::with_capacity(listed.len());
        for l in listed {
            let state = self
                .state_on(l.engine.as_deref(), &l.instance_id)
                .await
                .map_err(|source| PlatformError::Inspect {
                    function: l.function.clone(),
                    container: l.instance_id.clone(),
                    source,
                })?;
            states.push(state);
        }
        Ok(states)
    }

    /// Stops (and, when `remove`, removes) one container of a deployment and frees its host
    /// port; a container that exited or vanished behind our back is reported, not an error.
    pub async fn stop_instance(
        &self,
        instance: &Instance,
        remove: bool,
        port_lock_dir: Option<&Path>,
    ) -> Result<StopOutcome, PlatformError> {
        let id = &instance.instance_id;
        let stop_err = |source| PlatformError::Stop {
            function: instance.function.clone(),
            container: id.clone(),
            source,
        };
        let inspect_err = |source| PlatformError::Inspect {
            function: instance.function.clone(),
            container: id.clone(),
            source,
        };
        let docker = self
            .docker_for(instance.engine.as_deref())
            .await
            .map_err(inspect_err)?;
        let state = crate::function::container_state(&docker, id)
            .await
            .map_err(inspect_err)?;
        let outcome = match state {
            FunctionState::Gone => StopOutcome::Gone,
            FunctionState::Running => StopOutcome::Stopped,
            FunctionState::Exited { code, oom_killed } => {
                StopOutcome::AlreadyExited { code, oom_killed }
            }
        };
        if outcome != StopOutcome::Gone {
            let done = if remove {
                sebs_container::remove(&docker, id, true).await
            } else {
                sebs_container::stop(&docker, id, crate::function::STOP_GRACE).await
            };
            match done {
                Ok(()) | Err(sebs_container::ContainerError::NotFound { .. }) => {}
                Err(e) => return Err(stop_err(e)),
            }
        }
        self.forget(id);
        if let Some(port) = instance.published_port {
            let mut ports = self.config().ports.clone();
            if let Some(dir) = port_lock_dir {
                ports.lock_dir = dir.to_path_buf();
            }
            let allocator =
                sebs_ports::Allocator::new(ports).map_err(|source| PlatformError::ReleasePort {
                    container: id.clone(),
                    port,
                    source,
                })?;
            crate::ports::release_persisted(allocator, id, port).await?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = r#"{
  "functions": [
    {
      "benchmark": "000.noop",
      "config": {"architecture": "x64", "memory": 128,
                 "runtime": {"language": "python", "version": "3.11"}, "timeout": 10},
      "hash": "abc",
      "instance_id": "c1",
      "name": "000.noop-python-128",
      "port": 9000,
      "triggers": [],
      "url": "172.17.0.3:9000"
    }
  ],
  "inputs": [{}],
  "sebs_local": {"format": 1, "remove_containers": true,
                 "instances": [{"container_name": "sebs-x", "function": "000.noop-python-128",
                                "instance_id": "c1"}],
                 "sandbox": {"uid": 65534, "gid": 65534, "tmp_size_mb": 512, "pids_limit": null,
                             "read_only_root": true, "privileged": false,
                             "agent_capabilities": ["CAP_KILL"]}},
  "storage": null
}"#;

    fn check(text: &str, expect: Result<(), &str>) {
        let got = DeploymentFile::parse(Path::new("out.json"), text);
        match (got, expect) {
            (Ok(file), Ok(())) => {
                // What we read, we write back the same.
                let again = DeploymentFile::parse(Path::new("out.json"), &file.to_text()).unwrap();
                assert_eq!(again, file);
            }
            (Err(e), Err(needle)) => {
                let message = e.to_string();
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
                assert!(message.contains("out.json"), "{message:?} names no path");
            }
            (got, expect) => panic!("parsing gave {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn reading_deployment_files() {
        check(OURS, Ok(()));
        check("{\"functions\": [", Err("it is not JSON"));
        check("", Err("it is not JSON"));
        // SeBS's own file: no section of ours.
        let sebs = r#"{"functions": [], "inputs": [], "storage": {"address": "x"}}"#;
        check(sebs, Err("not written by `sebs-local start`"));
        check(
            &OURS.replace("\"format\": 1", "\"format\": 7"),
            Err("has format 7"),
        );
        check(
            &OURS.replace("\"port\": 9000", "\"port\": \"x\""),
            Err("field functions[0].port"),
        );
        check(
            &OURS.replacen("\"instance_id\": \"c1\",", "\"instance_id\": \"c2\",", 1),
            Err("container c2"),
        );
    }

    #[test]
    fn the_sandbox_is_recorded_and_optional() {
        let file = DeploymentFile::parse(Path::new("out.json"), OURS).unwrap();
        let sandbox = file.sebs_local.sandbox.as_ref().unwrap();
        assert_eq!((sandbox.uid, sandbox.tmp_size_mb), (65534, Some(512)));
        assert_eq!(sandbox.pids_limit, None, "null is no limit");
        // A file of a version that did not record it still reads.
        let start = OURS.find(",\n                 \"sandbox\"").unwrap();
        let end = OURS[start..].find("]}},").unwrap() + start + 2;
        let older = format!("{}{}", &OURS[..start], &OURS[end..]);
        let file = DeploymentFile::parse(Path::new("out.json"), &older).unwrap();
        assert_eq!(file.sebs_local.sandbox, None);
        assert!(!file.to_text().contains("sandbox"));
    }

    #[test]
    fn the_text_is_sebs_layout() {
        let file = DeploymentFile::parse(Path::new("out.json"), OURS).unwrap();
        let text = file.to_text();
        // Sorted keys, two-space indent, as json.dumps(sort_keys=True, indent=2).
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(keys, ["functions", "inputs", "sebs_local", "storage"]);
        assert!(
            text.contains("\n      \"instance_id\": \"c1\",\n"),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn writing_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "old").unwrap();
        let file = DeploymentFile::parse(Path::new("out.json"), OURS).unwrap();
        file.write(&path).unwrap();
        assert_eq!(DeploymentFile::read(&path).unwrap(), file);
        let err = file
            .write(&dir.path().join("missing/out.json"))
            .unwrap_err();
        assert!(err.to_string().contains("missing/out.json"), "{err}");
        let err = DeploymentFile::read(&dir.path().join("nope.json")).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
    }
}

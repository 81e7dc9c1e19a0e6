//! The local platform: what SeBS's `Local` class does, composed from the other crates.
//!
//! This is the only crate that composes packaging, the container runtime, port leases,
//! triggers and memory measurement.
//!
//! - [`Platform`] holds the engine client and [`PlatformConfig`]; it deploys a
//!   [`sebs_package::Package`] as a [`Function`] ([`Platform::create_function`], or N at once
//!   with [`Platform::create_functions`]), invokes it, reports its [`FunctionState`], changes
//!   it live ([`Platform::update_function_configuration`], [`Platform::update_function_code`],
//!   [`Platform::enforce_cold_start`]) and stops it. It remembers every container it started,
//!   so that [`Platform::shutdown`] (e.g. on Ctrl-C) leaves none behind.
//! - [`FunctionConfig`]: language, version, memory, timeout, CPUs, workers and [`Sandbox`] of
//!   a function, from the benchmark's `config.json` unless overridden; the engine enforces
//!   memory (OOM kill), CPU (CFS quota) and the sandbox (read-only root, a sized `/tmp`, a
//!   pids limit, no capabilities), the agent the timeout and the function's user.
//!   [`SandboxRecord`] is what `out.json` and experiment results say the sandbox was.
//! - [`Addressing`]: a function is reached on its bridge IP, or on a port of 127.0.0.1 leased
//!   from `sebs-ports` where the bridge is out of reach or the user asks; the `ports` module
//!   holds a platform's leases (made, reclaimed when stale, freed).
//! - [`DeploymentFile`]: `out.json` of `start`/`stop`, in SeBS's format plus a section of ours;
//!   [`Platform::stop_instance`] stops what it lists.
//! - [`memory`]: the measurer of a deployment's memory: [`memory::launch`] starts it as a
//!   process of its own, which runs [`memory::measure`] (each container from its cgroup, else
//!   from the engine's stats, journalled by sebs-memory so that `stop` can summarise it even
//!   when a container or the measurer died); [`memory::finish`] ends it and writes the memory
//!   files; [`MemorySection`] records it in `out.json`.
//! - [`cleanup`]: removes every container of ours (narrowed by labels, some spared) and frees
//!   the host ports leased for them, whatever state files exist ([`CleanupReport`]).
//! - [`DockerBuildEnv`]: installs a package's dependencies in a build container of the run
//!   image (the `sebs_package::BuildEnv` of this platform).
//! - [`find_agent_binary`]: where the static in-container agent is.

// Errors carry the engine's answer and the container's last log lines; they happen once per
// failed start, so their size on the error path does not matter.
#![allow(clippy::result_large_err)]

mod addressing;
mod agent;
mod build;
mod cleanup;
mod deployment;
mod function;
pub mod memory;
mod ports;
mod sandbox;
mod update;

pub use addressing::{environment_needs_publish, reachable, Addressing, HostFacts};
pub use agent::{find_agent_binary, AGENT_BIN_ENV};
pub use build::{DockerBuildEnv, HostSettings};
pub use cleanup::{cleanup, Cleanup, CleanupError, CleanupReport};
pub use deployment::{
    host_architecture, listed_containers, AgentMeasured, DeploymentError, DeploymentFile,
    FunctionEntry, Instance, ListedContainer, LocalSection, MemorySection, SebsFunctionConfig,
    SebsMemoryMeasurements, SebsRuntime, StopOutcome, FORMAT_VERSION,
};
pub use function::{
    Function, FunctionConfig, FunctionState, Platform, PlatformConfig, PlatformError,
    BENCHMARK_LABEL, DEPLOY_CONCURRENCY, FUNCTION_LABEL, HASH_LABEL, MAX_CONTAINERS,
    MIN_PIDS_LIMIT, RUN_LABEL,
};
pub use sandbox::{
    FunctionUser, Sandbox, SandboxRecord, TmpOn, TmpOnError, UserError, DEFAULT_PIDS_LIMIT,
    DEFAULT_TMP_SIZE_MB, MAX_TMP_SIZE_MB, UNPRIVILEGED_USER,
};
pub use update::{config_change, ConfigChange};

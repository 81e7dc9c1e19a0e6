//! The Docker runtime of sebs-local: connecting to the engine, base images, function containers.
//!
//! This crate knows nothing about benchmarks or packaging, and nothing about HTTP beyond the
//! agent's `/alive` readiness probe. Its main types:
//!
//! - [`connect`] gives a [`bollard::Docker`] client that has pinged the engine and negotiated
//!   the API version; every other function takes that client by reference.
//! - [`image::ImageChoice`] names the official image of a language version and our offline
//!   fallback; [`image::ensure_image`] resolves it to a present [`image::ResolvedImage`],
//!   building the fallback with an [`image::BaseImageBuilder`] (debootstrap + import) when
//!   nothing else works. It installs nothing on the host: without debootstrap it fails with
//!   [`image::ImageError::DebootstrapMissing`], and a front end may install it and call
//!   [`image::build_fallback`].
//! - [`function::ContainerSpec`] describes one function container (code and agent mounts,
//!   limits, published port, labels); [`function::create_and_start`] runs it and returns a
//!   [`function::StartedContainer`] with the agent's address, and [`function::wait_alive`]
//!   polls `/alive` until the agent answers or the container dies.
//! - [`function::ContainerGuard`] removes its container when dropped.
//! - [`service::ServiceSpec`] describes a long-lived service container of ours (the embedded
//!   stores): a data volume, a port published on one host address, no capabilities;
//!   [`service::import_image`] makes a `FROM scratch` image of a few files.
//! - [`transfer`]: an image copied from one engine to another without a registry, and a
//!   per-package image holding the code package and the agent, built on the engine from a
//!   context sent from here, for engines that cannot see this host's files
//!   ([`function::Delivery::Image`]: the container then mounts nothing).
//! - [`ssh`]: `ssh://` engines, each connection an `ssh` process running
//!   `docker system dial-stdio` on the far side, as the docker CLI does it.
//! - [`testing`] names and labels test containers, for this and other crates' tests.
//! - [`text`]: the last lines of a command's output for errors, and names made fit for a
//!   container name.
//!
//! Invariant: every container this crate creates carries the label `sebs-local=1`, so that
//! [`function::remove_labelled`] can always clean up after us.

pub mod binaries;
pub mod engine;
pub mod function;
pub mod image;
pub mod run;
pub mod service;
pub mod ssh;
pub mod testing;
pub mod text;
pub mod transfer;

pub use binaries::{find_static_binary, host_triple, BinaryError, AGENT_BINARY, AGENT_BIN_ENV};
pub use bollard::Docker;
pub use engine::{
    connect, connect_engine, connect_to, engine_address, engine_addresses, info, tls_files,
    ConnectError, Engine, EngineAddress, EngineInfo, TlsDefaults, CERT_PATH_QUERY, CONTROL_TIMEOUT,
    ENGINES_ENV,
};
pub use function::{
    create_and_start, inspect, inspect_state, kill, list_labelled, logs, memory_stats,
    network_address, remove, remove_labelled, stop, update_resources, wait_alive, ContainerError,
    ContainerGuard, ContainerSpec, ContainerState, Delivery, MemoryStat, StartedContainer,
};

pub use ssh::{SshDestination, SSH_CONFIG_QUERY};

pub use service::{
    create_service, ensure_volume, image_label, import_image, inspect_service,
    list_labelled_volumes, remove_volume, start_service, DataSource, ImageFile, ServiceInfo,
    ServiceSpec,
};

pub use image::{
    build_fallback, ensure_image, BaseImageBuilder, ImageChoice, ImageError, ImageSource,
    ResolvedImage,
};
pub use text::{last_lines, name_part};

//! The local platform: what SeBS's `Local` class does, composed from the other crates.
//!
//! This is the only crate that composes packaging, the container runtime and triggers
//! (and, as they grow, ports and memory measurement).
//!
//! - [`Platform`] holds the engine client and [`PlatformConfig`]; it deploys a
//!   [`sebs_package::Package`] as a [`Function`] ([`Platform::create_function`]), invokes it,
//!   and stops it. It remembers every container it started, so that [`Platform::shutdown`]
//!   (e.g. on Ctrl-C) leaves none behind.
//! - [`FunctionConfig`]: language, version, memory, timeout, CPUs and workers of a function,
//!   from the benchmark's `config.json` unless overridden.
//! - [`find_agent_binary`]: where the static in-container agent is.

mod agent;
mod function;

pub use agent::{find_agent_binary, AGENT_BIN_ENV};
pub use function::{Function, FunctionConfig, Platform, PlatformConfig, PlatformError};

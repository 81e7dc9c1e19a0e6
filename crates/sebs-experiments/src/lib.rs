//! SeBS's experiments on the local platform.
//!
//! - [`FunctionPool`]: a function's containers, grown for concurrent batches and replaced
//!   by fresh (optionally prewarmed) ones to force cold starts.
//! - [`perf_cost`]: the perf-cost loop ([`perf_cost::run_configuration`]) and its
//!   [`perf_cost::ConfigurationResult`]s; [`run::run_perf_cost`] runs every configured mode
//!   and memory size on the platform and writes SeBS's result files ([`results`]).
//! - [`config::PerfCostSettings`]: SeBS's `perf-cost` block, from JSON or YAML.

pub mod config;
pub mod perf_cost;
pub mod pool;
pub mod results;
pub mod run;

pub use config::{PerfCostSettings, RunType};
pub use perf_cost::{ConfigurationResult, Progress};
pub use pool::FunctionPool;

//! SeBS benchmarks on disk and the code packages the local platform makes from them.
//!
//! This crate knows nothing about Docker: installing dependencies is asked of a
//! [`BuildEnv`] that the caller provides (`cargo tree -p sebs-package -i bollard` is empty).
//!
//! - [`find_benchmark`] finds a [`BenchmarkDir`] by name (`110.dynamic-html` or
//!   `dynamic-html`) under a benchmarks root `<root>/<group>/<NNN.name>/`;
//!   [`default_benchmarks_root`] decides which root.
//! - [`BenchmarkConfig`] is its `config.json` (timeout, memory, languages, [`Module`]s).
//! - [`PackageCache::get_or_build`] returns a [`Package`]: the benchmark's code laid out as
//!   SeBS's local platform does ([`layout`]), named by a content hash, built once per hash.
//! - [`BuildEnv`] installs dependencies ([`InstallRequest`]); [`NoDeps`] refuses to.
//! - [`generate_input`] and [`validate_output`] run the benchmark's `input.py` for a
//!   [`Size`] and report a [`Validation`]; [`inspect_needs`] says what [`Needs`] it has
//!   (object storage, NoSQL tables). Its storage calls are answered by a [`StorageCalls`]
//!   the caller provides. An [`InputSession`] is one `python3` that inspects and then
//!   generates, started early so that its start-up overlaps the caller's other work.

pub mod benchmark;
pub mod cache;
pub mod config;
pub mod deps;
pub mod input;
pub mod layout;
pub mod python;

pub use benchmark::{
    default_benchmarks_root, find_benchmark, list_benchmarks, BenchmarkDir, BenchmarkEntry,
    FindError, BENCHMARKS_DIR_ENV,
};
pub use cache::{default_cache_root, Package, PackageCache, PackageError};
pub use config::{BenchmarkConfig, ConfigError, Module};
pub use deps::{BuildEnv, BuildError, Install, InstallRequest, NoDeps};
pub use input::{
    generate_input, inspect_needs, validate_output, BucketLayout, InputContext, InputError,
    InputSession, Needs, NeedsMemo, NoStorage, Size, StorageCall, StorageCalls, TableKeys,
    ValidateContext, Validation,
};
pub use layout::{wrapper_files, LayoutError};
pub use sebs_wire::Language;

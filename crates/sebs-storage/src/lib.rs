//! Object storage and NoSQL for SeBS's benchmarks: the embedded stores, any S3 or DynamoDB
//! endpoint a user names, and what a benchmark's deployment makes in them.
//!
//! - [`config::StorageFile`] is SeBS's storage file (`sebs storage start` output, the
//!   `storage` block of `out.json`): [`config::MinioConfig`] and [`config::ScyllaDbConfig`].
//! - [`embedded`] runs our `sebs-store` binary as one container per service on the
//!   functions' engine ([`embedded::start`], [`embedded::find`], [`embedded::remove`]);
//!   [`embedded::RunningStore`] describes one.
//! - [`relay`] makes a store reachable from functions on a remote engine: a forwarder on
//!   this host's address toward that engine's host ([`relay::route_source`],
//!   [`relay::ensure`]).
//! - [`session::Storage`] holds the endpoints one command uses, with host-side clients
//!   ([`s3::S3Client`], [`dynamodb::DynamoClient`], signed by [`sign::Signer`]);
//!   [`session::prepare_resources`] makes a benchmark's bucket and tables
//!   ([`session::Resources`]), [`session::function_env`] is the functions' environment, and
//!   [`session::InputCalls`] answers `input.py`'s uploads, NoSQL writes and downloads.
//!
//! Invariant: a store listens only inside its container (functions reach it on the
//! container network, the host there or on 127.0.0.1; remote functions through a relay on
//! this host's address toward their engine's host), its keys are random per instance,
//! and its data lives in a volume or directory that outlives the container.

pub mod config;
pub mod dynamodb;
pub mod embedded;
pub mod relay;
pub mod s3;
pub mod session;
pub mod sign;

pub use config::{ConfigError, MinioConfig, ScyllaDbConfig, StorageFile};
pub use embedded::{EmbeddedError, Kind, RunningStore, StoreOptions};
pub use session::{
    function_env, prepare_resources, InputCalls, Resources, Storage, StorageError, UploadProgress,
};

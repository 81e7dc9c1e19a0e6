//! The embedded stores that SeBS's storage benchmarks use: object storage with the S3 API
//! and NoSQL with the DynamoDB API, one server per process of the `sebs-store` binary.
//!
//! - [`s3`]: an S3 server on the `s3s` crate (protocol, XML, SigV4) over our own store
//!   ([`s3::Store`]: object files named by random ids, metadata in SQLite), answering what
//!   the clients of SeBS's functions read: complete listings with ETags and sizes,
//!   multipart uploads with `Location`, ranges, MinIO's `BucketAlreadyOwnedByYou`.
//! - [`dynamodb`]: the DynamoDB JSON API of `dynoxide` over one SQLite file.
//! - [`relay`]: a TCP forwarder (`sebs-store relay`), so that functions on another engine
//!   reach a store through an address of this host.
//! - [`cli`]: the binary's command line, so that `main.rs` only parses and exits.
//!
//! Both stores keep everything under one data directory and survive a restart on it. They know
//! nothing about Docker or benchmarks: the host side decides where they run and what goes in.

pub mod cli;
pub mod dynamodb;
pub mod relay;
pub mod s3;
pub mod serve;

/// `e` and its sources, joined by ": ", each once: how errors are printed and sent to S3
/// clients.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

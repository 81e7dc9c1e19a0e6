//! The S3 server: s3s speaks the protocol (routing, XML, SigV4), [`Store`] keeps the data.
//!
//! - [`store`]: the backend (files plus SQLite metadata) and its [`StoreError`];
//! - [`service`]: the S3 operations over the store, with S3's error codes;
//! - [`list`], [`multipart`], [`digest`], [`names`]: the pure rules (listings, completions,
//!   ETags, keys) the operations follow, tested on their own.
//!
//! One access key; every request must be signed with it (a wrong secret gets
//! `SignatureDoesNotMatch`). [`HEALTH_PATH`] answers without a signature, before s3s sees
//! the request, so that whoever started the store can poll it cheaply.

pub mod digest;
pub mod list;
pub mod multipart;
pub mod names;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3ErrorCode, S3Result};

pub use self::store::{Store, StoreError};
use crate::serve::{self, ServeError};

/// The unauthenticated readiness route, MinIO's, so that tools that poll MinIO work too.
pub const HEALTH_PATH: &str = "/minio/health/live";

/// The key pair clients sign with.
#[derive(Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// How to run the S3 server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The data directory; the store lives in its `s3/`.
    pub data: PathBuf,
    pub keys: Keys,
}

/// Why the S3 server could not run. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Answers the one access key with its secret, and any other with S3's
/// `InvalidAccessKeyId`.
struct OneKey(Keys);

#[async_trait::async_trait]
impl S3Auth for OneKey {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.0.access_key {
            Ok(SecretKey::from(self.0.secret_key.clone()))
        } else {
            Err(s3s::S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                format!("failed to find access key {access_key:?}: this store has one key, and it is another"),
            ))
        }
    }
}

/// The S3 service over `store`, checking signatures against `keys`.
pub fn service(store: Arc<Store>, keys: Keys) -> S3Service {
    let mut builder = S3ServiceBuilder::new(service::Backend::new(store));
    builder.set_auth(OneKey(keys));
    builder.build()
}

/// Serves S3 on `config.listen` until SIGTERM or SIGINT; requests in flight finish.
///
/// Logs the address it listens on (the bound one, so port 0 works) and why it stops.
pub async fn run(config: Config) -> Result<(), RunError> {
    let stop = serve::stop_signal()?;
    serve::prepare_data_dir(&config.data)?;
    let store = Arc::new(Store::open(&config.data)?);
    let listener = serve::listen(config.listen).await?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        "s3 listening on {addr} (data in {}, access key {})",
        config.data.join("s3").display(),
        config.keys.access_key
    );
    let s3 = service(store, config.keys);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let s3 = s3.clone();
        async move {
            if is_health_check(&req) {
                let mut ok = Response::new(s3s::Body::from("ok\n".to_string()));
                *ok.status_mut() = StatusCode::OK;
                return Ok(ok);
            }
            s3.call(req.map(s3s::Body::from)).await
        }
    });
    serve::http(listener, service, async move {
        let signal = stop.await;
        tracing::info!("s3 stopping on {signal}: finishing requests in flight");
    })
    .await;
    tracing::info!("s3 stopped");
    Ok(())
}

fn is_health_check(req: &Request<Incoming>) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == HEALTH_PATH
}

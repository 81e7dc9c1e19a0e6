//! The DynamoDB server: dynoxide's SQLite-backed implementation of the DynamoDB JSON API,
//! served from one file in the data directory.
//!
//! It answers what SeBS's `nosql` wrappers and 130.crud-api call (CreateTable with a string
//! HASH and RANGE key, PutItem, GetItem, UpdateItem with `SET` and attribute names and
//! values, Query by hash key, DeleteItem) plus DescribeTable and DeleteTable, with
//! DynamoDB's errors (`ResourceInUseException` on a second CreateTable). Like DynamoDB
//! Local it accepts any credentials and region, "None" included; `GET /` is its health
//! check.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::serve::{self, ServeError};

/// The database file's name in the data directory.
pub const DATABASE_FILE: &str = "dynamodb.sqlite";

/// How to run the DynamoDB server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The data directory; the tables live in its [`DATABASE_FILE`].
    pub data: PathBuf,
}

/// Why the DynamoDB server could not run. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("open the DynamoDB database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: dynoxide::DynoxideError,
    },
    #[error("serve DynamoDB on {addr}: {message}")]
    Server { addr: SocketAddr, message: String },
}

/// Serves DynamoDB on `config.listen` until SIGTERM or SIGINT; requests in flight finish.
///
/// Logs the address it listens on (the bound one, so port 0 works) and why it stops.
pub async fn run(config: Config) -> Result<(), RunError> {
    let stop = serve::stop_signal()?;
    serve::prepare_data_dir(&config.data)?;
    let path = config.data.join(DATABASE_FILE);
    let db = dynoxide::Database::new(&path.to_string_lossy()).map_err(|source| RunError::Open {
        path: path.clone(),
        source,
    })?;
    let listener = serve::listen(config.listen).await?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    tracing::info!("dynamodb listening on {addr} (data in {})", path.display());
    let stop = async move {
        let signal = stop.await;
        tracing::info!("dynamodb stopping on {signal}: finishing requests in flight");
    };
    dynoxide::server::serve_with_shutdown(listener, db, stop)
        .await
        .map_err(|message| RunError::Server { addr, message })?;
    tracing::info!("dynamodb stopped");
    Ok(())
}

//! What both servers share: the data directory check, the listener, the stop signals, and
//! HTTP/1.1 serving that finishes requests in flight when it is told to stop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// How long requests in flight may take to finish once a stop signal came. Below Docker's
/// default 10 s between `docker stop`'s SIGTERM and its SIGKILL.
pub const GRACE: Duration = Duration::from_secs(8);

/// Why a server could not start or stopped early. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("use the data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// Creates `dir` when needed and checks that a file can be written in it, so that a
/// read-only or missing volume fails at start with its path.
pub fn prepare_data_dir(dir: &Path) -> Result<(), ServeError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ServeError::DataDir { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let probe = dir.join(format!(".sebs-store-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(err(&probe))?;
    std::fs::remove_file(&probe).map_err(err(&probe))
}

/// Binds `addr` (port 0: any free port).
pub async fn listen(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

/// A future that resolves with the signal's name on the first SIGTERM or SIGINT.
///
/// The handlers are installed now, before the server starts, so that a signal that comes
/// early is not lost (and, as a container's PID 1, not ignored).
pub fn stop_signal() -> Result<impl Future<Output = &'static str> + Send + 'static, ServeError> {
    let install = |kind, name| {
        signal(kind).map_err(|source| ServeError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

/// Serves HTTP/1.1 on `listener` with `service` until `stop` resolves, then stops
/// accepting, closes idle connections, and gives requests in flight [`GRACE`] to finish.
pub async fn http<S, B>(listener: TcpListener, service: S, stop: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("failed to accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client hanging up mid-request is its business, not a server error.
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!("requests still running after {} s; stopping anyway", GRACE.as_secs());
        }
    }
}

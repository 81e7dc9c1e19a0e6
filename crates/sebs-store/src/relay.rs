//! `sebs-store relay`: a TCP forwarder, so that a store listening on one address is reached
//! on another (functions on a remote engine reach this host's store through it).
//!
//! It knows nothing about what crosses it: each accepted connection gets one connection to
//! the target, and bytes are copied both ways until either side closes. A target that
//! refuses is logged and the client's connection closed; the relay keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::serve::{self, ServeError};

/// How long a connection to the target may take before the client's is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to listen and where to forward.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub to: SocketAddr,
}

/// Forwards until SIGTERM or SIGINT; connections in flight are abandoned then (the client
/// sees its connection close, as with a store that stops).
pub async fn run(config: Config) -> Result<(), ServeError> {
    let stop = serve::stop_signal()?;
    let listener = serve::listen(config.listen).await?;
    tracing::info!(listen = %config.listen, to = %config.to, "relaying");
    tokio::select! {
        () = forward(listener, config.to) => {}
        signal = stop => tracing::info!("{signal}: stopping"),
    }
    Ok(())
}

/// Accepts on `listener` forever, each connection copied to and from a new one to `to`.
pub async fn forward(listener: TcpListener, to: SocketAddr) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("failed to accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            if let Err(e) = pipe(client, to).await {
                tracing::warn!(%peer, "failed to relay a connection to {to}: {e}");
            }
        });
    }
}

/// Copies `client` to a new connection to `to` and back, until both directions are done.
async fn pipe(mut client: TcpStream, to: SocketAddr) -> std::io::Result<()> {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to));
    let mut target = connect
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut client, &mut target).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// An upper-casing echo server: what the relay forwards must come back transformed, so
    /// that a relay that answered by itself could not pass.
    async fn upper_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf[..n].make_ascii_uppercase();
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn relay_to(to: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(forward(listener, to));
        addr
    }

    #[test]
    fn forwards_both_ways_on_concurrent_connections() {
        runtime().block_on(async {
            let relay = relay_to(upper_server().await).await;
            let mut clients = Vec::new();
            for i in 0..8 {
                clients.push(tokio::spawn(async move {
                    let mut s = TcpStream::connect(relay).await.unwrap();
                    // More than one buffer's worth, so that the copy loops.
                    let sent: Vec<u8> = (0..200_000).map(|j| b"abcxyz"[(i + j) % 6]).collect();
                    let (mut r, mut w) = s.split();
                    let (_, got) = tokio::join!(
                        async {
                            w.write_all(&sent).await.unwrap();
                            w.shutdown().await.unwrap();
                        },
                        async {
                            let mut got = Vec::new();
                            r.read_to_end(&mut got).await.unwrap();
                            got
                        }
                    );
                    assert_eq!(got, sent.to_ascii_uppercase(), "connection {i}");
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
        });
    }

    #[test]
    fn a_refusing_target_closes_the_client_and_the_relay_goes_on() {
        runtime().block_on(async {
            // A port nobody listens on: bound, then closed.
            let closed = {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                l.local_addr().unwrap()
            };
            let relay = relay_to(closed).await;
            let mut s = TcpStream::connect(relay).await.unwrap();
            let mut got = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got));
            assert!(read.await.is_ok(), "the client's connection was not closed");
            assert!(got.is_empty());
            // Still accepting.
            assert!(TcpStream::connect(relay).await.is_ok());
        });
    }
}

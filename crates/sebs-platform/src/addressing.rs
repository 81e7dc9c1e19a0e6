//! Where a function is reached: its bridge IP, or a port published on 127.0.0.1.

use std::net::SocketAddr;
use std::time::Duration;

/// How function containers are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// The container's IP on its network and the agent's port, as SeBS does on Linux.
    Bridge,
    /// The agent's port published on 127.0.0.1 only, on a port from the platform's range.
    Publish,
    /// Publish where the environment says the bridge cannot be reached (macOS, Windows, WSL,
    /// an engine on another host); else use the bridge, unless the first container's bridge
    /// address turns out unreachable, in which case publish from then on.
    #[default]
    Auto,
}

/// What decides [`Addressing::Auto`] before any container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `std::env::consts::OS`.
    pub os: String,
    /// The kernel release says Microsoft (WSL).
    pub wsl: bool,
    /// `DOCKER_HOST`, when set.
    pub docker_host: Option<String>,
}

impl HostFacts {
    pub fn of_this_process() -> HostFacts {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        HostFacts {
            os: std::env::consts::OS.to_string(),
            wsl: release.to_ascii_lowercase().contains("microsoft"),
            docker_host: std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()),
        }
    }
}

/// Whether the environment alone says the bridge network is out of reach: the engine runs in
/// a VM (macOS, Windows, WSL) or on another machine (`DOCKER_HOST` not a local socket).
pub fn environment_needs_publish(facts: &HostFacts) -> bool {
    if facts.os != "linux" || facts.wsl {
        return true;
    }
    match &facts.docker_host {
        None => false,
        Some(host) => !(host.starts_with("unix://") || host.starts_with('/')),
    }
}

/// Whether `address` can be reached from this host: a connection that is accepted or
/// actively refused proves a route; a timeout or "unreachable" does not.
pub async fn reachable(address: SocketAddr, timeout: Duration) -> bool {
    let outcome = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await;
    route_proven(outcome.ok().map(|r| r.map(drop)))
}

/// Whether a connection attempt proves a route; `None` is an attempt that timed out.
fn route_proven(connect: Option<std::io::Result<()>>) -> bool {
    match connect {
        Some(Ok(())) => true,
        Some(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_the_environment_needs_publishing() {
        fn check(os: &str, wsl: bool, docker_host: Option<&str>, expect: bool) {
            let facts = HostFacts {
                os: os.into(),
                wsl,
                docker_host: docker_host.map(Into::into),
            };
            assert_eq!(environment_needs_publish(&facts), expect, "{facts:?}");
        }
        check("linux", false, None, false);
        check("linux", false, Some("unix:///var/run/docker.sock"), false);
        check("linux", false, Some("tcp://10.0.0.2:2375"), true);
        check("linux", false, Some("ssh://user@host"), true);
        check("linux", true, None, true);
        check("macos", false, None, true);
        check("windows", false, None, true);
    }

    #[test]
    fn which_connection_attempts_prove_a_route() {
        use std::io::{Error, ErrorKind};
        let check = |connect: Option<std::io::Result<()>>, expect: bool| {
            let shown = format!("{connect:?}");
            assert_eq!(route_proven(connect), expect, "{shown}");
        };
        check(Some(Ok(())), true);
        check(Some(Err(Error::from(ErrorKind::ConnectionRefused))), true);
        check(Some(Err(Error::from(ErrorKind::HostUnreachable))), false);
        check(Some(Err(Error::from(ErrorKind::NetworkUnreachable))), false);
        check(None, false);
    }

    #[tokio::test]
    async fn a_refused_port_is_reachable() {
        // Bind and drop: nothing listens there now, so the kernel refuses at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(reachable(port, Duration::from_secs(1)).await);
    }
}

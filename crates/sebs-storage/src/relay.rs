//! Relays to the embedded stores, so that functions on a remote engine reach them: a store
//! listens on this host's container network, which another host cannot route to.
//!
//! A relay is `sebs-store relay` in the store image, run as a service container on the
//! store's (home) engine with the host's network: it listens on the address this host uses
//! toward the remote engine's host ([`route_source`]) and forwards each connection to the
//! store. Its name says which store and which address, so that concurrent commands share
//! it; it outlives the command that made it (functions keep running after `start`), holds
//! no data, and carries no store label, so `sebs-local cleanup` removes it (a later command
//! makes it again) and so does `storage stop` of its store. Its labels say where it listens
//! and where it forwards, so a relay to a store that moved (a restart gives a new address)
//! is replaced.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sebs_container::{Docker, ServiceInfo, ServiceSpec};

use crate::embedded::{self, RunningStore, STORE_LABEL};

/// Label on a relay: the name of the store it forwards to.
pub const RELAY_LABEL: &str = "sebs-local.relay";
/// Label on a relay: the address it listens on.
const LISTEN_LABEL: &str = "sebs-local.relay-listen";
/// Label on a relay: the address it forwards to.
const TO_LABEL: &str = "sebs-local.relay-to";
/// The user the relay runs as (nobody): it binds an unprivileged port.
const RELAY_USER: &str = "65534:65534";
/// How long a relay may take to answer (through it, the store) after its start.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a relay another command is creating may take to run.
const RACE_GRACE: Duration = Duration::from_secs(10);

/// A relay that could not be made or found. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("find this host's address toward {peer} (the source address of its route)")]
    Route {
        peer: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("find a free port on {ip} for the relay {container}")]
    Port {
        ip: IpAddr,
        container: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} the relay {container}")]
    Container {
        container: String,
        action: &'static str,
        #[source]
        source: sebs_container::ContainerError,
    },
    #[error(
        "reach the store through the relay {container} at {address}: nothing answered within \
         {waited:?} ({last}); its last log lines:\n{logs}"
    )]
    NotReady {
        container: String,
        address: SocketAddr,
        waited: Duration,
        last: String,
        logs: String,
    },
}

/// The address this host's packets to `peer` leave from: the source address of the route
/// to it, found by `connect`ing a UDP socket (which sends nothing) and reading its address.
pub fn route_source(peer: IpAddr) -> Result<IpAddr, RelayError> {
    let err = |source| RelayError::Route { peer, source };
    let any: IpAddr = match peer {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(err)?;
    // Any port: only the route matters, and connect sends no packet.
    socket.connect(SocketAddr::new(peer, 9)).map_err(err)?;
    Ok(socket.local_addr().map_err(err)?.ip())
}

/// The relay's container name for `store` on `ip`.
pub fn name(store: &str, ip: IpAddr) -> String {
    let ip: String = ip
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{store}-relay-{ip}")
}

/// The address on `ip` where a relay to `store` listens, made (from the store image
/// `image`, on `docker`, the store's engine) when there is none, or when the one there
/// forwards elsewhere or does not answer.
pub async fn ensure(
    docker: &Docker,
    image: &str,
    store: &RunningStore,
    ip: IpAddr,
) -> Result<SocketAddr, RelayError> {
    let container = name(&store.container.name, ip);
    let to = store.host_address;
    let err = |action, source| RelayError::Container {
        container: container.clone(),
        action,
        source,
    };
    let found = sebs_container::inspect_service(docker, &container)
        .await
        .map_err(|e| err("inspect", e))?;
    if let Some(info) = found {
        match usable(&info, to).await {
            Some(listen) => return Ok(listen),
            None => {
                tracing::info!(%container, "replacing the relay (stopped, or the store moved)");
                match sebs_container::remove(docker, &info.id, true).await {
                    Ok(()) | Err(sebs_container::ContainerError::NotFound { .. }) => {}
                    Err(e) => return Err(err("remove", e)),
                }
            }
        }
    }
    let port = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .map_err(|source| RelayError::Port {
            ip,
            container: container.clone(),
            source,
        })?
        .port();
    let listen = SocketAddr::new(ip, port);
    let mut labels: BTreeMap<String, String> = store
        .container
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != STORE_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(RELAY_LABEL.into(), store.container.name.clone());
    labels.insert(LISTEN_LABEL.into(), listen.to_string());
    labels.insert(TO_LABEL.into(), to.to_string());
    let spec = ServiceSpec {
        name: container.clone(),
        image: image.to_string(),
        cmd: vec![
            "relay".into(),
            "--listen".into(),
            listen.to_string(),
            "--to".into(),
            to.to_string(),
        ],
        env: Vec::new(),
        labels,
        port,
        publish: None,
        data: None,
        data_target: String::new(),
        user: RELAY_USER.into(),
        // On this host's addresses, where the remote engine's containers reach it.
        network: "host".into(),
    };
    let info = match sebs_container::create_service(docker, &spec).await {
        Ok(info) => info,
        Err(sebs_container::ContainerError::NameInUse { .. }) => {
            made_by_another(docker, &container).await?
        }
        Err(e) => return Err(err("start", e)),
    };
    let listen = listen_of(&info).unwrap_or(listen);
    tracing::info!(%container, %listen, %to, "relay to the {} store", store.kind);
    ready(docker, &info, listen).await?;
    Ok(listen)
}

/// Removes every relay to the store named `store`; returns how many it removed.
pub async fn remove_of(docker: &Docker, store: &str) -> Result<usize, RelayError> {
    sebs_container::remove_labelled(docker, (RELAY_LABEL, store))
        .await
        .map_err(|source| RelayError::Container {
            container: format!("(relays of {store})"),
            action: "remove",
            source,
        })
}

fn listen_of(info: &ServiceInfo) -> Option<SocketAddr> {
    info.labels.get(LISTEN_LABEL)?.parse().ok()
}

/// Where `info` listens, when it runs, forwards to `to` and answers.
async fn usable(info: &ServiceInfo, to: SocketAddr) -> Option<SocketAddr> {
    let listen = listen_of(info)?;
    let forwards_to = info.labels.get(TO_LABEL).and_then(|t| t.parse().ok());
    if !info.running || forwards_to != Some(to) {
        return None;
    }
    embedded::http_answers(listen).await.ok().map(|()| listen)
}

/// The relay another command is making under `name`, once it runs.
async fn made_by_another(docker: &Docker, name: &str) -> Result<ServiceInfo, RelayError> {
    let begin = Instant::now();
    loop {
        let found = sebs_container::inspect_service(docker, name)
            .await
            .map_err(|source| RelayError::Container {
                container: name.to_string(),
                action: "inspect",
                source,
            })?;
        match found {
            Some(info) if info.running || begin.elapsed() > RACE_GRACE => return Ok(info),
            None if begin.elapsed() > RACE_GRACE => {
                return Err(RelayError::Container {
                    container: name.to_string(),
                    action: "find",
                    source: sebs_container::ContainerError::NotFound {
                        container: name.to_string(),
                    },
                })
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until the store answers HTTP through the relay at `listen`.
async fn ready(docker: &Docker, info: &ServiceInfo, listen: SocketAddr) -> Result<(), RelayError> {
    let begin = Instant::now();
    loop {
        let last = match embedded::http_answers(listen).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if begin.elapsed() > READY_DEADLINE {
            let logs = sebs_container::logs(docker, &info.id, 30)
                .await
                .unwrap_or_else(|e| format!("(no logs: {e})"));
            return Err(RelayError::NotReady {
                container: info.name.clone(),
                address: listen,
                waited: begin.elapsed(),
                last,
                logs,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_to_loopback_leaves_from_loopback() {
        for (peer, source) in [
            ("127.0.0.1", "127.0.0.1"),
            // The whole of 127/8 is this host's, reached from 127.0.0.1.
            ("127.1.2.3", "127.0.0.1"),
        ] {
            let got = route_source(peer.parse().unwrap()).unwrap();
            assert_eq!(got, source.parse::<IpAddr>().unwrap(), "{peer}");
        }
    }

    #[test]
    fn the_route_elsewhere_leaves_from_an_address_of_ours_or_says_why_not() {
        // Documentation's address: routed by a default route when there is one.
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        match route_source(peer) {
            Ok(ip) => {
                assert!(!ip.is_unspecified() && !ip.is_loopback(), "{ip}");
                // An address of ours: it can be bound.
                assert!(std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok());
            }
            Err(e) => assert!(e.to_string().contains("192.0.2.1"), "{e}"),
        }
    }

    #[test]
    fn names_say_the_store_and_the_address() {
        let check = |ip: &str, expect: &str| {
            assert_eq!(name("sebs-local-store-object", ip.parse().unwrap()), expect);
        };
        check("10.231.0.1", "sebs-local-store-object-relay-10-231-0-1");
        check("fd00::1", "sebs-local-store-object-relay-fd00--1");
    }
}

//! Published functions: bound on 127.0.0.1 only, on leased ports that parallel platforms never
//! share, freed at stop; and many deployments at once.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sebs_platform::{Addressing, FunctionConfig, Platform};
use sebs_ports::{Allocator, PortRange};
use sebs_testkit::{trial, Trial, ENGINE};
use sebs_wire::Language;
use serde_json::json;

use crate::{with_harness, Harness, AGENT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            published_ports_are_on_127_0_0_1_only_disjoint_across_platforms_and_freed_at_stop,
            ENGINE,
            AGENT
        ),
        trial!(
            a_range_that_runs_out_is_a_clear_error_and_leaves_nothing_behind,
            ENGINE,
            AGENT
        ),
    ]
}

/// A platform like the harness's, publishing on ports of `range` leased in `lock_dir`.
fn publishing(h: &Harness, range: PortRange, lock_dir: &std::path::Path) -> Platform {
    let mut config = h.platform.config().clone();
    config.addressing = Addressing::Publish;
    config.ports.range = range;
    config.ports.lock_dir = lock_dir.to_path_buf();
    Platform::new(h.platform.docker().clone(), config)
}

/// This host's address towards the container's bridge IP: not loopback, so a port bound on
/// 127.0.0.1 only must refuse connections there.
fn host_address_towards(container_ip: IpAddr) -> IpAddr {
    // Connecting a UDP socket sends nothing; it only picks the route and source address.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect(SocketAddr::new(container_ip, 9)).unwrap();
    socket.local_addr().unwrap().ip()
}

async fn published_ports_are_on_127_0_0_1_only_disjoint_across_platforms_and_freed_at_stop() {
    with_harness(|h| async move {
        let locks = tempfile::tempdir().unwrap();
        let range: PortRange = "19400-19499".parse().unwrap();
        let (a, b) = (
            publishing(&h, range, locks.path()),
            publishing(&h, range, locks.path()),
        );
        let root = h.benchmarks.path().to_path_buf();
        let (bench, package, config) = h.package(&root, "900.programmable");
        let config = FunctionConfig::from_benchmark(&config, Language::Python, "3.11");

        // Two platforms (as two `start`s would) deploy at the same time.
        let (fa, fb) = tokio::join!(
            a.create_functions(3, "test-ports-a", &bench, &package, &h.image, &config),
            b.create_functions(3, "test-ports-b", &bench, &package, &h.image, &config),
        );
        let (a2, h) = (a.clone(), h.clone());
        let result = async move {
            let a = a2;
            let (fa, fb) = (fa.unwrap(), fb.unwrap());
            let ports: Vec<u16> = fa.iter().chain(&fb).map(|f| f.port()).collect();
            let distinct: BTreeSet<u16> = ports.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                6,
                "ports shared between deployments: {ports:?}"
            );
            assert!(ports.iter().all(|p| range.contains(*p)), "{ports:?}");

            for f in fa.iter().chain(&fb) {
                assert_eq!(f.published_port, Some(f.port()));
                assert_eq!(f.container.address.ip(), IpAddr::from([127, 0, 0, 1]));
                let info = sebs_container::inspect(h.platform.docker(), &f.container.id)
                    .await
                    .unwrap();
                let bridge_ip: IpAddr = info
                    .network_settings
                    .as_ref()
                    .unwrap()
                    .networks
                    .as_ref()
                    .unwrap()["bridge"]
                    .ip_address
                    .as_deref()
                    .unwrap()
                    .parse()
                    .unwrap();
                let gateway = host_address_towards(bridge_ip);
                assert!(!gateway.is_loopback(), "{gateway}");
                let bindings = info.host_config.unwrap().port_bindings.unwrap();
                let hosts: Vec<_> = bindings
                    .values()
                    .flatten()
                    .flatten()
                    .map(|b| b.host_ip.clone())
                    .collect();
                assert_eq!(hosts, vec![Some("127.0.0.1".to_string())]);
                h.platform.invoke(f, &json!({})).await.unwrap();
                // Not on any other address of this host.
                let elsewhere = SocketAddr::new(gateway, f.port());
                let connect = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::net::TcpStream::connect(elsewhere),
                )
                .await;
                assert!(
                    !matches!(connect, Ok(Ok(_))),
                    "port {} answers on {gateway}",
                    f.port()
                );
            }

            let allocator = Allocator::new(a.config().ports.clone()).unwrap();
            let persisted: BTreeSet<u16> = allocator
                .persisted()
                .unwrap()
                .into_iter()
                .map(|p| p.port)
                .collect();
            assert_eq!(
                persisted, distinct,
                "every published port is leased while its function lives"
            );
            for f in fa.iter().chain(&fb) {
                a.stop(f).await.unwrap();
            }
            assert_eq!(
                allocator.persisted().unwrap(),
                vec![],
                "stop frees the ports"
            );
        };
        let outcome = tokio::spawn(result).await;
        a.shutdown().await;
        b.shutdown().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    })
    .await;
}

async fn a_range_that_runs_out_is_a_clear_error_and_leaves_nothing_behind() {
    with_harness(|h| async move {
        let locks = tempfile::tempdir().unwrap();
        let platform = publishing(&h, "19500-19501".parse().unwrap(), locks.path());
        let root = h.benchmarks.path().to_path_buf();
        let (bench, package, config) = h.package(&root, "900.programmable");
        let config = FunctionConfig::from_benchmark(&config, Language::Python, "3.11");
        let err = platform
            .create_functions(3, "test-exhausted", &bench, &package, &h.image, &config)
            .await
            .unwrap_err();
        platform.shutdown().await;
        let message = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        assert!(message.contains("19500-19501"), "{message}");
        let left = sebs_container::list_labelled(
            h.platform.docker(),
            &[(sebs_platform::RUN_LABEL, platform.run_id())],
        )
        .await
        .unwrap();
        assert!(
            left.is_empty(),
            "the two that started are removed: {left:?}"
        );
        assert_eq!(
            Allocator::new(platform.config().ports.clone())
                .unwrap()
                .persisted()
                .unwrap(),
            vec![]
        );
    })
    .await;
}

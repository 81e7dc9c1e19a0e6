//! What the other crates ask the engine through sebs-container: a container's PID and bridge
//! address, its memory from the stats stream, and a kill behind the platform's back.

use futures_util::StreamExt;
use sebs_container::{
    create_and_start, inspect_state, kill, memory_stats, network_address, remove, ContainerError,
    MemoryStat,
};
use sebs_testkit::{trial, Trial, ENGINE, ENGINE2};

use crate::support::run;

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(pid_address_memory_and_kill_of_a_container, ENGINE),
        trial!(
            the_second_engine_shares_nothing_with_the_first,
            ENGINE,
            ENGINE2
        ),
        trial!(
            control_calls_to_an_engine_that_went_away_fail_within_their_bound,
            ENGINE2
        ),
    ]
}

/// The tests' second engine is what a remote one would be: another identity, other
/// images, and none of this host's work tree or /tmp in its view of the file system.
async fn the_second_engine_shares_nothing_with_the_first() {
    let first =
        sebs_container::engine_address(std::env::var("DOCKER_HOST").ok().as_deref()).unwrap();
    let second = sebs_testkit::engine2_address().unwrap();
    let (d1, d2) = (sebs_testkit::docker().await, sebs_testkit::docker2().await);
    let (i1, i2) = (
        sebs_container::info(&d1, &first).await.unwrap(),
        sebs_container::info(&d2, &second).await.unwrap(),
    );
    assert_ne!(i1.id, i2.id, "{i1:?} {i2:?}");
    assert_ne!(i1.root_dir, i2.root_dir, "{i1:?} {i2:?}");

    // An image made on the first is not on the second (other tests copy the base image
    // there, so this test makes one of its own).
    let tag = format!(
        "sebs-local-test/only-here:{}",
        sebs_container::testing::unique_name("engine")
    );
    let file = sebs_container::ImageFile {
        path: "marker".to_string(),
        contents: b"first engine".to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    sebs_container::import_image(&d1, &tag, &[file], vec!["LABEL sebs-local.test=1".into()])
        .await
        .unwrap();
    let on = (
        sebs_container::image::image_exists(&d1, &tag).await,
        sebs_container::image::image_exists(&d2, &tag).await,
    );
    sebs_container::transfer::remove_image(&d1, &first.to_string(), &tag)
        .await
        .unwrap();
    assert!(on.0.unwrap() && !on.1.unwrap(), "{tag}");

    // dockerd's own view of the file system (its mount namespace), through /proc.
    let pid = std::env::var("SEBS_ENGINE2_PID").expect("SEBS_ENGINE2_PID is set with SEBS_ENGINE2");
    let view = std::path::Path::new("/proc").join(pid).join("root");
    let here = tempfile::NamedTempFile::new().unwrap();
    for path in [here.path(), env!("CARGO_MANIFEST_DIR").as_ref()] {
        assert!(path.exists());
        let there = view.join(path.strip_prefix("/").unwrap());
        assert!(
            !there.exists(),
            "{} is visible to the second engine",
            path.display()
        );
    }
    assert!(view.join("usr/sbin/dockerd").exists() || view.join("usr/bin/dockerd").exists());
}

async fn pid_address_memory_and_kill_of_a_container() {
    run("engine", |docker, fx| async move {
        let started = create_and_start(&docker, &fx.spec("engine", &fx.serve))
            .await
            .unwrap();
        let state = inspect_state(&docker, &started.id).await.unwrap();
        assert!(state.running && state.pid.is_some(), "{state:?}");
        assert_eq!(
            network_address(&docker, &started.id, "bridge")
                .await
                .unwrap(),
            Some(started.address.ip())
        );
        assert_eq!(
            network_address(&docker, &started.id, "no-such-network")
                .await
                .unwrap(),
            None
        );

        // A running container's stream reports what it uses.
        let mut stats = Box::pin(memory_stats(&docker, &started.id));
        let first = stats.next().await.expect("a first reading").unwrap();
        assert!(
            matches!(first, MemoryStat::Usage(bytes) if bytes > 0),
            "{first:?}"
        );

        // Killed, it is gone for the stream, which then ends.
        kill(&docker, &started.id).await.unwrap();
        let mut rest = Vec::new();
        while let Some(item) = stats.next().await {
            rest.push(item.unwrap());
        }
        assert_eq!(rest.last(), Some(&MemoryStat::Gone), "{rest:?}");
        assert!(rest[..rest.len() - 1]
            .iter()
            .all(|r| matches!(r, MemoryStat::Usage(_))));
        let state = inspect_state(&docker, &started.id).await.unwrap();
        assert!(!state.running, "{state:?}");
        assert_eq!(state.exit_code, Some(137), "{state:?}");
        assert_eq!(state.pid, None, "{state:?}");

        // Removed, it is gone at once; killing it names it as missing.
        remove(&docker, &started.id, true).await.unwrap();
        let after: Vec<_> = memory_stats(&docker, &started.id).collect().await;
        assert!(
            matches!(after.as_slice(), [Ok(MemoryStat::Gone)]),
            "{after:?}"
        );
        let e = kill(&docker, &started.id).await.unwrap_err();
        assert!(matches!(e, ContainerError::NotFound { .. }), "{e}");
    })
    .await;
}

/// A relay on loopback to the second engine that can go silent: from then on it forwards
/// nothing either way and answers no new connection, but closes none, as a host that went
/// off the network after we connected (a blackhole route would not do: the kernel fails a
/// send there at once, and the client retries on a new connection, which fails at once).
struct SilentRelay {
    address: std::net::SocketAddr,
    silent: tokio::sync::watch::Sender<bool>,
}

impl SilentRelay {
    async fn to(engine: String) -> SilentRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (silent, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            // Held open once silent, so that nothing is closed.
            let mut held = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let now_silent = *watch.borrow();
                if now_silent {
                    held.push(client);
                    continue;
                }
                let (engine, mut watch) = (engine.clone(), watch.clone());
                tokio::spawn(async move {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&engine).await else {
                        return;
                    };
                    let went_silent = async move {
                        let silent = watch.wait_for(|silent| *silent).await.is_ok();
                        silent
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        true = went_silent => std::future::pending::<()>().await,
                    }
                });
            }
        });
        SilentRelay { address, silent }
    }

    fn go_silent(&self) {
        self.silent.send_replace(true);
    }
}

/// An engine that went away after we connected leaves every control call unanswered: each
/// fails within its bound ([`sebs_container::CONTROL_TIMEOUT`], plus a stop's grace), where
/// bollard alone would wait 120 s per call.
async fn control_calls_to_an_engine_that_went_away_fail_within_their_bound() {
    use std::time::{Duration, Instant};
    let engine = sebs_testkit::engine2_address().unwrap();
    let relay = SilentRelay::to(engine.tcp_host().unwrap().to_string()).await;
    let address = sebs_container::EngineAddress::Tcp(relay.address.to_string());
    let docker = sebs_container::connect_to(&address).await.unwrap();
    let label = [("sebs-local.test", "1")];
    sebs_container::list_labelled(&docker, &label)
        .await
        .unwrap();
    relay.go_silent();
    let id = "sebs-local-test-no-such-container";
    let began = Instant::now();
    let (inspected, stopped, removed, listed) = tokio::join!(
        inspect_state(&docker, id),
        sebs_container::stop(&docker, id, Duration::from_secs(1)),
        remove(&docker, id, true),
        sebs_container::list_labelled(&docker, &label),
    );
    let took = began.elapsed();
    let outcomes = [
        ("inspect", inspected.err()),
        ("stop", stopped.err()),
        ("remove", removed.err()),
        ("list", listed.err()),
    ];
    for (what, e) in outcomes {
        let e = e.unwrap_or_else(|| panic!("{what} worked on an engine that went away"));
        assert!(
            matches!(e, ContainerError::Unanswered { .. }),
            "{what}: {}",
            sebs_wire::ErrorChain(&e)
        );
        assert!(e.to_string().contains("did not answer within"), "{e}");
    }
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

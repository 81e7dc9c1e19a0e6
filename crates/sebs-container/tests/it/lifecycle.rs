//! Function containers for real: start, readiness, limits, publishing, errors, cleanup.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sebs_container::testing::unique_name;
use sebs_container::{
    create_and_start, inspect_state, list_labelled, logs, remove, remove_labelled, stop,
    update_resources, wait_alive, ContainerError, ContainerGuard,
};

use sebs_testkit::{trial, Trial, ENGINE};

use crate::support::{run, CASE_LABEL};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(a_started_container_answers_alive_and_stops_and_goes, ENGINE),
        trial!(
            an_agent_that_exits_fails_the_wait_at_once_with_its_logs,
            ENGINE
        ),
        trial!(an_agent_that_never_answers_times_out_with_its_logs, ENGINE),
        trial!(limits_show_in_inspect_and_can_be_updated, ENGINE),
        trial!(
            publish_binds_loopback_only_and_a_taken_port_is_reported,
            ENGINE
        ),
        trial!(
            missing_containers_and_names_in_use_have_their_own_errors,
            ENGINE
        ),
        trial!(
            labelled_cleanup_removes_running_and_stopped_containers,
            ENGINE
        ),
        trial!(a_guard_removes_its_container, ENGINE),
    ]
}

const ALIVE_DEADLINE: Duration = Duration::from_secs(30);

async fn a_started_container_answers_alive_and_stops_and_goes() {
    run("alive", |docker, fx| async move {
        let started = create_and_start(&docker, &fx.spec("alive", &fx.serve))
            .await
            .unwrap();
        // Not published: the agent is reached on the bridge network, at the agent's port.
        assert_eq!(started.address.port(), sebs_wire::DEFAULT_PORT);
        assert!(!started.address.ip().is_loopback(), "{}", started.address);

        let took = wait_alive(&docker, &started.id, started.address, ALIVE_DEADLINE)
            .await
            .unwrap();
        eprintln!("alive after {took:?}");
        let state = inspect_state(&docker, &started.id).await.unwrap();
        assert!(state.running, "{state:?}");
        assert_eq!(state.exit_code, None);
        assert!(logs(&docker, &started.id, 10)
            .await
            .unwrap()
            .contains("serving on 9000"));

        stop(&docker, &started.id, Duration::from_secs(1))
            .await
            .unwrap();
        let state = inspect_state(&docker, &started.id).await.unwrap();
        assert!(!state.running, "{state:?}");
        assert!(state.exit_code.is_some(), "{state:?}");
        // Stopping a stopped container is fine.
        stop(&docker, &started.id, Duration::from_secs(1))
            .await
            .unwrap();

        remove(&docker, &started.id, false).await.unwrap();
        let gone = inspect_state(&docker, &started.id).await.unwrap_err();
        assert!(matches!(gone, ContainerError::NotFound { .. }), "{gone}");
    })
    .await;
}

/// An agent that exits is reported as exited, with its code and logs, instead of being
/// waited for until the deadline (that would be `NotAlive`).
async fn an_agent_that_exits_fails_the_wait_at_once_with_its_logs() {
    run("exit3", |docker, fx| async move {
        // Whether the exit is seen while starting or while waiting is a race; either way
        // the caller learns the exit code and the logs.
        let err = match create_and_start(&docker, &fx.spec("exit3", &fx.exit3)).await {
            Ok(started) => wait_alive(&docker, &started.id, started.address, ALIVE_DEADLINE)
                .await
                .unwrap_err(),
            Err(e) => e,
        };
        match &err {
            ContainerError::ExitedEarly {
                exit_code,
                logs,
                oom_killed,
                ..
            } => {
                assert_eq!(*exit_code, 3);
                assert!(!oom_killed);
                assert!(logs.contains("agent cannot start: no worker"), "{logs}");
            }
            other => panic!("expected ExitedEarly, got {other}"),
        }
        assert!(err.to_string().contains("exited with code 3"), "{err}");
    })
    .await;
}

async fn an_agent_that_never_answers_times_out_with_its_logs() {
    run("silent", |docker, fx| async move {
        let started = create_and_start(&docker, &fx.spec("silent", &fx.silent))
            .await
            .unwrap();
        let deadline = Duration::from_millis(500);
        let err = wait_alive(&docker, &started.id, started.address, deadline)
            .await
            .unwrap_err();
        match &err {
            ContainerError::NotAlive {
                waited, logs, last, ..
            } => {
                assert!(*waited >= deadline, "gave up after {waited:?}");
                assert!(logs.contains("sleeping instead"), "{logs}");
                assert!(last.contains("refused"), "{last}");
            }
            other => panic!("expected NotAlive, got {other}"),
        }
    })
    .await;
}

async fn limits_show_in_inspect_and_can_be_updated() {
    run("limits", |docker, fx| async move {
        let mut spec = fx.spec("limits", &fx.serve);
        spec.memory_bytes = Some(128 << 20);
        spec.nano_cpus = Some(500_000_000);
        let started = create_and_start(&docker, &spec).await.unwrap();

        let host = docker
            .inspect_container(&started.id, None)
            .await
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(host.memory, Some(128 << 20));
        assert_eq!(host.memory_swap, Some(128 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.privileged, Some(false));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert!(host.cap_add.unwrap_or_default().is_empty());
        let mounts = host.mounts.unwrap();
        assert!(
            mounts.iter().all(|m| m.read_only == Some(true)),
            "{mounts:?}"
        );

        update_resources(&docker, &started.id, Some(256 << 20), Some(1_000_000_000))
            .await
            .unwrap();
        let host = docker
            .inspect_container(&started.id, None)
            .await
            .unwrap()
            .host_config
            .unwrap();
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.nano_cpus, Some(1_000_000_000));

        // The engine refuses a limit below what the container already uses, and we say so.
        let err = update_resources(&docker, &started.id, Some(1 << 20), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ContainerError::UpdateRefused { .. }),
            "expected UpdateRefused, got {err}"
        );
    })
    .await;
}

async fn publish_binds_loopback_only_and_a_taken_port_is_reported() {
    run("publish", |docker, fx| async move {
        let started = create_and_start(&docker, &fx.spec("publish", &fx.serve).publish_local(0))
            .await
            .unwrap();
        let address = started.address;
        assert!(
            address.ip().is_loopback() && address.port() != 0,
            "{address}"
        );

        let info = docker.inspect_container(&started.id, None).await.unwrap();
        let bindings = info.host_config.unwrap().port_bindings.unwrap();
        let binding = &bindings["9000/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));

        wait_alive(&docker, &started.id, address, ALIVE_DEADLINE)
            .await
            .unwrap();
        tokio::net::TcpStream::connect(address).await.unwrap();
        // The bridge's gateway is this host too, but the port is not bound there.
        let gateway: IpAddr = info.network_settings.unwrap().networks.unwrap()["bridge"]
            .gateway
            .clone()
            .unwrap()
            .parse()
            .unwrap();
        let elsewhere =
            tokio::net::TcpStream::connect(SocketAddr::new(gateway, address.port())).await;
        assert!(
            elsewhere.is_err(),
            "port {} answers on {gateway} too",
            address.port()
        );

        let mut second = fx.spec("publish-again", &fx.serve);
        second.publish = Some(address);
        let err = create_and_start(&docker, &second).await.unwrap_err();
        match &err {
            ContainerError::PortInUse { port, .. } => assert_eq!(*port, address.port()),
            other => panic!("expected PortInUse, got {other}"),
        }
        // The container that could not start was removed again.
        let left = list_labelled(&docker, &[(CASE_LABEL, &fx.case)])
            .await
            .unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
    })
    .await;
}

async fn missing_containers_and_names_in_use_have_their_own_errors() {
    run("errors", |docker, fx| async move {
        let missing = unique_name("sebs-it-missing");
        let not_found = |r: Result<_, ContainerError>| match r {
            Err(ContainerError::NotFound { container }) => assert_eq!(container, missing),
            other => panic!("expected NotFound, got {other:?}"),
        };
        not_found(remove(&docker, &missing, true).await);
        not_found(inspect_state(&docker, &missing).await.map(drop));
        not_found(stop(&docker, &missing, Duration::ZERO).await);
        not_found(logs(&docker, &missing, 5).await.map(drop));
        not_found(update_resources(&docker, &missing, Some(64 << 20), None).await);

        let spec = fx.spec("twice", &fx.serve);
        create_and_start(&docker, &spec).await.unwrap();
        let err = create_and_start(&docker, &spec).await.unwrap_err();
        assert!(matches!(err, ContainerError::NameInUse { .. }), "{err}");

        let mut spec = fx.spec("nocode", &fx.serve);
        spec.code_dir = spec.code_dir.join("missing");
        match create_and_start(&docker, &spec).await.unwrap_err() {
            ContainerError::MountSource { path, .. } => assert_eq!(path, spec.code_dir),
            other => panic!("expected MountSource, got {other}"),
        }

        let mut spec = fx.spec("noimage", &fx.serve);
        spec.image = "sebs-local/absent:never".to_string();
        let err = create_and_start(&docker, &spec).await.unwrap_err();
        assert!(matches!(err, ContainerError::ImageMissing { .. }), "{err}");

        // A limit the engine does not accept is the caller's to fix, and says why.
        let mut spec = fx.spec("tiny", &fx.serve);
        spec.memory_bytes = Some(1 << 20);
        let err = create_and_start(&docker, &spec).await.unwrap_err();
        assert!(
            matches!(err, ContainerError::CreateRefused { .. }) && err.refused_by_engine(),
            "{err}"
        );
        assert!(err.to_string().contains("6MB"), "{err}");
    })
    .await;
}

async fn labelled_cleanup_removes_running_and_stopped_containers() {
    run("cleanup", |docker, fx| async move {
        let group = ("sebs-local.test.group", unique_name("g"));
        for what in ["running", "stopped"] {
            let spec = fx.spec(what, &fx.serve).label(group.0, &group.1);
            let started = create_and_start(&docker, &spec).await.unwrap();
            if what == "stopped" {
                stop(&docker, &started.id, Duration::ZERO).await.unwrap();
            }
        }
        let group = (group.0, group.1.as_str());
        assert_eq!(list_labelled(&docker, &[group]).await.unwrap().len(), 2);
        assert_eq!(remove_labelled(&docker, group).await.unwrap(), 2);
        assert!(list_labelled(&docker, &[group]).await.unwrap().is_empty());
        assert_eq!(remove_labelled(&docker, group).await.unwrap(), 0);
    })
    .await;
}

async fn a_guard_removes_its_container() {
    run("guard", |docker, fx| async move {
        let kept = create_and_start(&docker, &fx.spec("guard-remove", &fx.serve))
            .await
            .unwrap();
        ContainerGuard::new(docker.clone(), &kept.id)
            .remove()
            .await
            .unwrap();
        assert!(matches!(
            inspect_state(&docker, &kept.id).await,
            Err(ContainerError::NotFound { .. })
        ));

        let dropped = create_and_start(&docker, &fx.spec("guard-drop", &fx.serve))
            .await
            .unwrap();
        drop(ContainerGuard::new(docker.clone(), &dropped.id));
        let begin = Instant::now();
        loop {
            match inspect_state(&docker, &dropped.id).await {
                Err(ContainerError::NotFound { .. }) => break,
                _ if begin.elapsed() > Duration::from_secs(20) => {
                    panic!("the dropped guard did not remove {}", dropped.id)
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
}

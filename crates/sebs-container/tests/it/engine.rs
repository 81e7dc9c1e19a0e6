//! What the other crates ask the engine through sebs-container: a container's PID and bridge
//! address, its memory from the stats stream, and a kill behind the platform's back.

use futures_util::StreamExt;
use sebs_container::{
    create_and_start, inspect_state, kill, memory_stats, network_address, remove, ContainerError,
    MemoryStat,
};
use sebs_testkit::{trial, Trial, ENGINE};

use crate::support::run;

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![trial!(pid_address_memory_and_kill_of_a_container, ENGINE)]
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

//! Host ports of published functions: one platform's leases from `sebs-ports`, its allocator
//! made on first use, and leases of containers that are gone reclaimed then.
//!
//! The engine is asked which containers still run only here; the leasing itself (lock files,
//! the choice of a port) is `sebs-ports`', which knows nothing of Docker.

use std::collections::BTreeSet;
use std::sync::Arc;

use sebs_container::Docker;
use sebs_ports::{Allocator, AllocatorConfig, PortError, PortLease};

use crate::function::PlatformError;

/// The port leases of one [`crate::Platform`] and its clones, which share its allocator.
#[derive(Debug, Clone)]
pub(crate) struct PortLeases {
    /// The engines whose containers publish on this host's ports (the home engine and the
    /// local ones): a lease is stale only when its container runs on none of them. A remote
    /// engine's ports are on its own host, where the engine picks them; none is leased here.
    engines: Vec<Docker>,
    config: AllocatorConfig,
    /// Made on the first published function; leases of vanished containers are reclaimed then.
    allocator: Arc<tokio::sync::OnceCell<Allocator>>,
}

impl PortLeases {
    pub(crate) fn new(engines: Vec<Docker>, config: AllocatorConfig) -> PortLeases {
        PortLeases {
            engines,
            config,
            allocator: Arc::default(),
        }
    }

    /// The allocator, made (and stale leases reclaimed) on first use.
    async fn allocator(&self) -> Result<&Allocator, PortError> {
        self.allocator
            .get_or_try_init(|| async {
                let allocator = Allocator::new(self.config.clone())?;
                reclaim_stale(&self.engines, &allocator).await;
                Ok(allocator)
            })
            .await
    }

    /// Leases a port for `function` that is none of `held` (the ports of the platform's live
    /// containers, and any the engine refused to publish).
    pub(crate) async fn lease(
        &self,
        function: &str,
        held: BTreeSet<u16>,
    ) -> Result<PortLease, PlatformError> {
        let port_err = |source| PlatformError::Port {
            function: function.to_string(),
            source,
        };
        let allocator = self.allocator().await.map_err(port_err)?.clone();
        tokio::task::spawn_blocking(move || allocator.allocate(&held))
            .await
            .map_err(|e| PlatformError::PortTask {
                function: function.to_string(),
                reason: e.to_string(),
            })?
            .map_err(port_err)
    }

    /// Frees the port persisted for container `id`, if it has one.
    pub(crate) async fn release(&self, id: &str, port: Option<u16>) -> Result<(), PlatformError> {
        let Some(port) = port else { return Ok(()) };
        let err = |source| PlatformError::ReleasePort {
            container: id.to_string(),
            port,
            source,
        };
        let allocator = self.allocator().await.map_err(err)?.clone();
        release_persisted(allocator, id, port).await
    }
}

/// Frees ports persisted for containers that no longer run. Only leases seen *before*
/// listing the containers are candidates: a lease persisted after the listing belongs to
/// a container the listing could not have seen. A container counts as running when it runs
/// on any of `engines`; when one cannot be listed, nothing is reclaimed.
async fn reclaim_stale(engines: &[Docker], allocator: &Allocator) {
    let before: BTreeSet<String> = match allocator.persisted() {
        Ok(p) => p.into_iter().map(|p| p.container).collect(),
        Err(e) => return tracing::warn!("failed to {}", sebs_wire::ErrorChain(&e)),
    };
    if before.is_empty() {
        return;
    }
    let mut running = BTreeSet::new();
    for docker in engines {
        match sebs_container::list_labelled(docker, &[sebs_container::function::OWNER_LABEL]).await
        {
            Ok(list) => running.extend(
                list.into_iter()
                    .filter(|c| {
                        !matches!(
                            c.state.as_ref().map(|s| s.to_string()).as_deref(),
                            Some("exited" | "dead")
                        )
                    })
                    .filter_map(|c| c.id),
            ),
            Err(e) => return tracing::warn!("failed to {}", sebs_wire::ErrorChain(&e)),
        }
    }
    let allocator = allocator.clone();
    let reclaimed = tokio::task::spawn_blocking(move || {
        allocator.reclaim_stale(|id| !before.contains(id) || running.contains(id))
    })
    .await;
    match reclaimed {
        Ok(Ok(ports)) if !ports.is_empty() => {
            tracing::info!(
                count = ports.len(),
                "freed host ports of containers that are gone"
            )
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("failed to {}", sebs_wire::ErrorChain(&e)),
        Err(e) => tracing::warn!(
            "the port reclaiming task failed: {}",
            sebs_wire::ErrorChain(&e)
        ),
    }
}

/// Frees `port`, leased for container `id`, off the async threads (it takes a file lock).
pub(crate) async fn release_persisted(
    allocator: Allocator,
    id: &str,
    port: u16,
) -> Result<(), PlatformError> {
    let owner = id.to_string();
    match tokio::task::spawn_blocking(move || allocator.release_persisted(port, &owner)).await {
        Ok(result) => result
            .map(drop)
            .map_err(|source| PlatformError::ReleasePort {
                container: id.to_string(),
                port,
                source,
            }),
        Err(e) => {
            tracing::warn!(
                port,
                "the port releasing task failed: {}",
                sebs_wire::ErrorChain(&e)
            );
            Ok(())
        }
    }
}

/// Frees the ports leased for `removed` containers, and only those: other leases may belong
/// to a `start` running right now. Returns how many were freed. It takes no lock that another
/// process holds for long (a lease being made is skipped), so it may run on an async thread.
pub(crate) fn free_leases_of(
    config: AllocatorConfig,
    removed: &BTreeSet<String>,
) -> Result<usize, PortError> {
    Allocator::new(config)?
        .reclaim_stale(|id| !removed.contains(id))
        .map(|freed| freed.len())
}

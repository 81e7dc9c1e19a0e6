//! `cleanup`: removes every container sebs-local started, whatever state files exist, and
//! frees the host ports they held.
//!
//! Global by design: containers are found by the label `sebs-local=1` that every container of
//! ours carries, so the functions of other `start`s still running go too; [`Cleanup::labels`]
//! narrows it to containers that also carry those labels, and [`Cleanup::spare`] leaves some
//! running (the CLI spares the embedded stores: they outlive every deployment).

use std::collections::BTreeSet;

use sebs_container::function::OWNER_LABEL;
use sebs_container::{ContainerError, Docker};
use sebs_ports::{AllocatorConfig, PortError};

/// What [`cleanup`] removes.
#[derive(Debug, Clone)]
pub struct Cleanup {
    /// Only containers that also carry every one of these labels (key, value).
    pub labels: Vec<(String, String)>,
    /// Containers that carry any of these label keys are left running.
    pub spare: Vec<String>,
    /// Where the leases of host ports are (the CLI's: [`AllocatorConfig::from_env`]).
    pub ports: AllocatorConfig,
}

/// What [`cleanup`] did. It goes on past a container it cannot remove and past ports it
/// cannot free; those are reported here.
#[derive(Debug)]
pub struct CleanupReport {
    /// The ids of the containers removed, or gone already.
    pub removed: BTreeSet<String>,
    /// Why each container that is still there could not be removed.
    pub failed: Vec<ContainerError>,
    /// Containers left running because they carry a label of [`Cleanup::spare`].
    pub spared: usize,
    /// Host ports freed: those leased for the containers removed.
    pub freed_ports: usize,
    /// Why the ports of the removed containers could not be freed, when they could not.
    pub ports_error: Option<PortError>,
}

/// Cleaning up failed before anything was removed.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("list the containers of sebs-local")]
    List {
        #[source]
        source: ContainerError,
    },
}

/// Removes the containers `what` names and frees the host ports leased for them.
pub async fn cleanup(docker: &Docker, what: &Cleanup) -> Result<CleanupReport, CleanupError> {
    let mut filter = vec![OWNER_LABEL];
    filter.extend(what.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let found = sebs_container::list_labelled(docker, &filter)
        .await
        .map_err(|source| CleanupError::List { source })?;
    let (spared, found): (Vec<_>, Vec<_>) = found.into_iter().partition(|c| {
        c.labels
            .as_ref()
            .is_some_and(|l| what.spare.iter().any(|key| l.contains_key(key)))
    });
    let mut report = CleanupReport {
        removed: BTreeSet::new(),
        failed: Vec::new(),
        spared: spared.len(),
        freed_ports: 0,
        ports_error: None,
    };
    for id in found.into_iter().filter_map(|c| c.id) {
        match sebs_container::remove(docker, &id, true).await {
            Ok(()) | Err(ContainerError::NotFound { .. }) => {
                report.removed.insert(id);
            }
            Err(e) => report.failed.push(e),
        }
    }
    match crate::ports::free_leases_of(what.ports.clone(), &report.removed) {
        Ok(n) => report.freed_ports = n,
        Err(e) => report.ports_error = Some(e),
    }
    Ok(report)
}

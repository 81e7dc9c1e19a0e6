//! `sebs-local cleanup`: remove every container sebs-local started, whatever state files exist.
//!
//! Global by design: it finds containers by the label `sebs-local=1` that every container of
//! ours carries, so it also removes the functions of other `start`s still running. `--label`
//! narrows it to containers that also carry the given labels. The stores (`storage start`,
//! the embedded ones) carry it too but are left alone: they outlive every deployment, and
//! `storage stop` is how they go.

use std::collections::BTreeSet;

use sebs_container::function::OWNER_LABEL;
use sebs_ports::{Allocator, AllocatorConfig};

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;
use crate::start::parse_label;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only containers that also carry this label KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let docker = setup::docker().await?;
    let mut filter = vec![OWNER_LABEL];
    filter.extend(args.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let found = sebs_container::list_labelled(&docker, &filter).await.exit(
        Exit::Environment,
        "failed to list the containers of sebs-local",
    )?;
    let mut removed = BTreeSet::new();
    let mut exit = Exit::Ok;
    let (stores, found): (Vec<_>, Vec<_>) = found.into_iter().partition(|c| {
        c.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(sebs_storage::embedded::STORE_LABEL))
    });
    if !stores.is_empty() {
        tracing::info!(
            "left {} store(s) running (`sebs-local storage stop` removes them)",
            stores.len()
        );
    }
    for id in found.into_iter().filter_map(|c| c.id) {
        match sebs_container::remove(&docker, &id, true).await {
            Ok(()) | Err(sebs_container::ContainerError::NotFound { .. }) => {
                removed.insert(id);
            }
            Err(e) => {
                tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                exit = Exit::Environment;
            }
        }
    }
    // Free the host ports leased for the containers just removed (and only those: other
    // leases may belong to a `start` that is running right now).
    let freed = match Allocator::new(AllocatorConfig::from_env()) {
        Ok(allocator) => allocator
            .reclaim_stale(|id| !removed.contains(id))
            .map(|p| p.len()),
        Err(e) => Err(e),
    };
    let freed = match freed {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(
                "failed to free the host ports of removed containers: failed to {}",
                sebs_wire::ErrorChain(&e)
            );
            0
        }
    };
    eprintln!(
        "removed {} containers, freed {freed} host ports",
        removed.len()
    );
    Ok(exit)
}

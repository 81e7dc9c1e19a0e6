//! `sebs-local cleanup`: remove every container sebs-local started, whatever state files exist.
//!
//! Global by design (see [`sebs_platform::cleanup`]): it also removes the functions of other
//! `start`s still running. `--label` narrows it to containers that also carry the given labels.
//! The stores (`storage start`, the embedded ones) carry our label too but are left alone: they
//! outlive every deployment, and `storage stop` is how they go.

use sebs_platform::Cleanup;
use sebs_ports::AllocatorConfig;

use crate::exit::{Exit, Failure};
use crate::setup;
use crate::start::parse_label;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only containers that also carry this label KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// On these engines (each, in turn).
    #[command(flatten)]
    pub engines: setup::EngineArgs,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let what = Cleanup {
        labels: args.labels,
        spare: vec![sebs_storage::embedded::STORE_LABEL.to_string()],
        ports: AllocatorConfig::from_env(),
    };
    let (mut removed, mut freed, mut failed) = (0, 0, false);
    // Each engine in turn, and all of them even when one fails: a remote engine that went
    // away must not keep this host's containers (and their leased ports) behind.
    for address in args.engines.addresses()? {
        let docker = match sebs_container::connect_to(&address).await {
            Ok(docker) => docker,
            Err(e) => {
                tracing::error!("failed to {}", sebs_wire::ErrorChain(&e));
                failed = true;
                continue;
            }
        };
        let report = match sebs_platform::cleanup(&docker, &what).await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(
                    "failed to clean up the engine at {address}: failed to {}",
                    sebs_wire::ErrorChain(&e)
                );
                failed = true;
                continue;
            }
        };
        if report.spared > 0 {
            tracing::info!(
                "left {} store(s) running on the engine at {address} (`sebs-local storage \
                 stop` removes them)",
                report.spared
            );
        }
        for e in &report.failed {
            tracing::error!("failed to {}", sebs_wire::ErrorChain(e));
        }
        if let Some(e) = &report.ports_error {
            tracing::warn!(
                "failed to free the host ports of removed containers: failed to {}",
                sebs_wire::ErrorChain(e)
            );
        }
        failed |= !report.failed.is_empty();
        removed += report.removed.len();
        freed += report.freed_ports;
    }
    eprintln!("removed {removed} containers, freed {freed} host ports");
    Ok(if failed { Exit::Environment } else { Exit::Ok })
}

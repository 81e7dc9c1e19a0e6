//! `sebs-local cleanup`: remove every container sebs-local started, whatever state files exist.
//!
//! Global by design (see [`sebs_platform::cleanup`]): it also removes the functions of other
//! `start`s still running. `--label` narrows it to containers that also carry the given labels.
//! The stores (`storage start`, the embedded ones) carry our label too but are left alone: they
//! outlive every deployment, and `storage stop` is how they go.

use sebs_platform::Cleanup;
use sebs_ports::AllocatorConfig;

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
    let what = Cleanup {
        labels: args.labels,
        spare: vec![sebs_storage::embedded::STORE_LABEL.to_string()],
        ports: AllocatorConfig::from_env(),
    };
    let report = sebs_platform::cleanup(&docker, &what)
        .await
        .exit(Exit::Environment, "failed to clean up")?;
    if report.spared > 0 {
        tracing::info!(
            "left {} store(s) running (`sebs-local storage stop` removes them)",
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
    eprintln!(
        "removed {} containers, freed {} host ports",
        report.removed.len(),
        report.freed_ports
    );
    Ok(if report.failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Environment
    })
}

//! `sebs-local measure` (hidden): the measuring process `start --measure-interval` leaves running, and how `start` launches it.
//!
//! The measurer's life (its launch, its directory, its end) is sebs-platform's
//! (`sebs_platform::memory`); this module parses its command line, turns signals into the
//! request to stop, and maps failures to exit codes.

use std::path::{Path, PathBuf};

use sebs_memory::MeasureDir;
use sebs_platform::memory::{self, MeasurerArgs, MemoryError};
use sebs_platform::MemorySection;
use tokio::signal::unix::{signal, SignalKind};

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

/// The longest sampling interval: an hour.
const MAX_INTERVAL_MS: u64 = 60 * 60 * 1000;

/// `--measure-interval` and `--interval-ms`: 1 ms to an hour.
pub fn interval_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=MAX_INTERVAL_MS)
}

/// The arguments of [`MeasurerArgs::to_args`].
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The measurement directory: journals, log, markers.
    #[arg(long)]
    pub dir: PathBuf,
    /// Milliseconds between two samples.
    #[arg(long, value_parser = interval_parser())]
    pub interval_ms: u64,
    /// Where the cgroup hierarchy is mounted.
    #[arg(long, default_value = sebs_memory::DEFAULT_CGROUP_ROOT)]
    pub cgroup_root: PathBuf,
    /// The containers to measure.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

impl From<Args> for MeasurerArgs {
    fn from(args: Args) -> MeasurerArgs {
        MeasurerArgs {
            dir: args.dir,
            interval_ms: args.interval_ms,
            cgroup_root: args.cgroup_root,
            containers: args.containers,
        }
    }
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    // Registered before anything else, so that an early SIGTERM is a request to stop, not death.
    let mut term =
        signal(SignalKind::terminate()).exit(Exit::Environment, "failed to handle SIGTERM")?;
    let mut int =
        signal(SignalKind::interrupt()).exit(Exit::Environment, "failed to handle SIGINT")?;
    let mut hup =
        signal(SignalKind::hangup()).exit(Exit::Environment, "failed to handle SIGHUP")?;
    let until = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: closing the memory journals"),
            _ = int.recv() => tracing::info!("SIGINT: closing the memory journals"),
            _ = hup.recv() => tracing::info!("SIGHUP: closing the memory journals"),
        }
    };
    let docker = setup::docker().await?;
    let args = MeasurerArgs::from(args);
    let dir = MeasureDir::new(args.dir.clone());
    memory::measure(&docker, &args.config(), &args.containers, &dir, until)
        .await
        .exit(Exit::Environment, "memory measurement failed")?;
    Ok(Exit::Ok)
}

/// Starts the measuring process over `containers` and returns once it samples them all;
/// `agents` sample their own memory (see [`memory::launch`]).
pub async fn launch(
    output: &Path,
    interval_ms: u64,
    cgroup_root: &Path,
    containers: &[String],
    agents: Vec<sebs_platform::AgentMeasured>,
) -> Result<MemorySection, Failure> {
    let exe =
        std::env::current_exe().exit(Exit::Environment, "failed to find the sebs-local binary")?;
    memory::launch(&exe, output, interval_ms, cgroup_root, containers, agents)
        .await
        .map_err(|e: MemoryError| Failure {
            exit: if e.is_bad_input() {
                Exit::BadInput
            } else {
                Exit::Environment
            },
            error: anyhow::Error::new(e).context("failed to start measuring memory"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The command line the platform launches the measurer with is the one this parses.
    #[test]
    fn the_measurer_reads_what_launch_writes() {
        let args = MeasurerArgs {
            dir: "/x/out.json.memory".into(),
            interval_ms: 10,
            cgroup_root: "/sys/fs/cgroup".into(),
            containers: vec!["abc".into(), "def".into()],
        };
        let line = std::iter::once("sebs-local".into()).chain(args.to_args());
        match crate::Cli::try_parse_from(line).unwrap().command {
            crate::Command::Measure(parsed) => assert_eq!(MeasurerArgs::from(parsed), args),
            other => panic!("parsed as {other:?}"),
        }
    }
}

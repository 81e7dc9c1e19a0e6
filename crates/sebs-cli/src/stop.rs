//! `sebs-local stop`: stop (or remove) the containers an `out.json` lists and free their ports.

use std::path::PathBuf;

use sebs_platform::{DeploymentFile, Platform, PlatformConfig, StopOutcome};

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

/// Containers stopped at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment written by `sebs-local start`.
    pub input_json: PathBuf,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let file = DeploymentFile::read(&args.input_json).exit(Exit::BadInput, "cannot stop this deployment")?;
    let docker = setup::docker().await?;
    // Stopping needs no agent binary: the path is never used.
    let platform = Platform::new(docker, PlatformConfig::new(PathBuf::new()));
    let section = &file.sebs_local;
    let gate = tokio::sync::Semaphore::new(CONCURRENCY);
    let (gate, platform) = (&gate, &platform);
    let stops = section.instances.iter().map(|instance| async move {
        let _permit = gate.acquire().await;
        let outcome = platform
            .stop_instance(instance, section.remove_containers, section.port_lock_dir.as_deref())
            .await;
        (instance, outcome)
    });
    let mut exit = Exit::Ok;
    for (instance, outcome) in futures_util::future::join_all(stops).await {
        let (id, function) = (&instance.instance_id, &instance.function);
        match outcome {
            Ok(StopOutcome::Stopped) => {
                let done = if section.remove_containers { "removed" } else { "stopped" };
                tracing::info!(container = %id, "{done} function {function}");
            }
            Ok(StopOutcome::AlreadyExited { code, oom_killed }) => {
                let oom = if oom_killed { ", killed for using too much memory" } else { "" };
                tracing::error!(
                    "container {id} of function {function} had already exited (code {code}{oom}): \
                     killed or crashed behind our back; cleaned up"
                );
                exit = worse(exit, Exit::FunctionLost);
            }
            Ok(StopOutcome::Gone) => {
                tracing::error!(
                    "container {id} of function {function} no longer exists: removed behind our back"
                );
                exit = worse(exit, Exit::FunctionLost);
            }
            Err(e) => {
                tracing::error!("failed to {:#}", anyhow::Error::from(e));
                exit = worse(exit, Exit::Environment);
            }
        }
    }
    Ok(exit)
}

/// An engine failure outranks a lost function, which outranks success.
fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Ok => 0,
        Exit::FunctionLost => 1,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

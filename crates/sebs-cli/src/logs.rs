//! `sebs-local logs`: print the output of each container an `out.json` lists.

use std::io::Write;
use std::path::PathBuf;

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment written by `sebs-local start`.
    pub input_json: PathBuf,
    /// Only the last N lines of each container (default: all).
    #[arg(long)]
    pub tail: Option<usize>,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let file = sebs_platform::DeploymentFile::read(&args.input_json)
        .exit(Exit::BadInput, "cannot read the logs of this deployment")?;
    let docker = setup::docker().await?;
    // Reading logs needs no agent binary: the path is never used. The platform finds each
    // instance's engine as out.json records it.
    let platform =
        sebs_platform::Platform::new(docker, sebs_platform::PlatformConfig::new(PathBuf::new()));
    // The engine takes a line count or "all"; i64::MAX lines is all of them.
    let tail = args.tail.unwrap_or(i64::MAX as usize);
    let mut exit = Exit::Ok;
    // An engine that cannot be reached is reported once; the others' logs are printed.
    let mut unreachable = std::collections::BTreeSet::new();
    for instance in &file.sebs_local.instances {
        let id = &instance.instance_id;
        let engine = instance.engine.as_deref();
        if engine.is_some_and(|url| unreachable.contains(url)) {
            continue;
        }
        let docker = match platform.docker_for(engine).await {
            Ok(docker) => docker,
            Err(e) => {
                tracing::error!(
                    "no logs of the containers on the docker engine at {}: failed to {}",
                    engine.unwrap_or("DOCKER_HOST"),
                    sebs_wire::ErrorChain(&e)
                );
                unreachable.insert(engine.unwrap_or_default().to_string());
                exit = Exit::Environment;
                continue;
            }
        };
        match sebs_container::logs(&docker, id, tail).await {
            Ok(text) => {
                let header = format!(
                    "==> {} ({}, container {id}) <==\n",
                    instance.function, instance.container_name
                );
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(header.as_bytes())
                    .and_then(|()| stdout.write_all(text.as_bytes()))
                    .exit(Exit::Environment, "failed to write to stdout")?;
            }
            Err(sebs_container::ContainerError::NotFound { .. }) => {
                tracing::error!(
                    "container {id} of function {} no longer exists: removed behind our back",
                    instance.function
                );
                // An engine that could not be reached outranks a lost function.
                if exit == Exit::Ok {
                    exit = Exit::FunctionLost;
                }
            }
            Err(e) => {
                return Err(e).exit(
                    Exit::Environment,
                    format!("failed to read the logs of container {id}"),
                )
            }
        }
    }
    Ok(exit)
}

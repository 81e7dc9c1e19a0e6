//! `sebs-local package`: build (or find in the cache) a benchmark's code package and print
//! where it is, its hash and its size as one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use sebs_package::{BuildEnv, BuildError, InstallRequest};
use sebs_platform::DockerBuildEnv;
use sebs_wire::Language;
use serde::Serialize;

use crate::exit::{Exit, ExitContext, Failure};
use crate::{images, setup};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub bench: setup::BenchmarkArgs,
}

/// The line printed on stdout.
#[derive(Debug, Serialize)]
struct Report {
    benchmark: String,
    language: Language,
    version: String,
    dir: PathBuf,
    hash: String,
    size_bytes: u64,
    /// False when this run built the package.
    reused: bool,
    /// Wall time of finding or building it.
    seconds: f64,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let mut bench = args.bench.find()?;
    let started = Instant::now();
    // The same modules as invoke and start package, so the same hash.
    let mut session = sebs_package::InputSession::start(&bench);
    crate::inputs::add_storage_modules(&mut bench, &mut session).await?;
    // The engine is reached only when there are dependencies to install, so packaging a
    // dependency-free benchmark works (and is timed) without Docker.
    let env = OnDemand {
        handle: tokio::runtime::Handle::current(),
        language: args.bench.language,
        version: args.bench.language_version.clone(),
    };
    let package = args.bench.package(&bench, env).await?;
    let report = Report {
        benchmark: bench.name.clone(),
        language: args.bench.language,
        version: args.bench.language_version.clone(),
        dir: package.dir,
        hash: package.hash,
        size_bytes: package.size_bytes,
        reused: package.reused,
        seconds: started.elapsed().as_secs_f64(),
    };
    let line =
        serde_json::to_string(&report).exit(Exit::Environment, "failed to print the report")?;
    println!("{line}");
    Ok(Exit::Ok)
}

/// A [`DockerBuildEnv`] made on first use: connects to the engine and resolves the run
/// image of the language version only when an install is asked for.
struct OnDemand {
    handle: tokio::runtime::Handle,
    language: Language,
    version: String,
}

impl BuildEnv for OnDemand {
    fn install(&self, request: &InstallRequest) -> Result<(), BuildError> {
        let environment = |f: Failure| BuildError::Environment {
            benchmark: request.benchmark.clone(),
            reason: format!("{:#}", f.error),
        };
        let (docker, image) = self
            .handle
            .block_on(async {
                let docker = setup::docker().await?;
                let image = images::resolve(&docker, self.language, &self.version).await?;
                Ok::<_, Failure>((docker, image))
            })
            .map_err(environment)?;
        DockerBuildEnv::new(docker, image, self.handle.clone()).install(request)
    }
}

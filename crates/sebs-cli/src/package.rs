//! `sebs-local package`: build (or find in the cache) a benchmark's code package and print
//! where it is, its hash and its size as one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use sebs_package::{BuildEnv, BuildError, InstallRequest};
use sebs_platform::DockerBuildEnv;
use sebs_wire::Language;
use serde::Serialize;

use crate::exit::{Exit, ExitContext, Failure};
use crate::{images, invoke, setup};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Benchmark name, e.g. `110.template` or `template`.
    pub benchmark: String,
    /// Where benchmarks are: else SEBS_BENCHMARKS_DIR, ./benchmarks, or the fixtures.
    #[arg(long)]
    pub benchmarks_dir: Option<PathBuf>,
    #[arg(long, default_value = "python")]
    pub language: Language,
    #[arg(
        long,
        default_value = Language::Python.default_version(),
        default_value_if("language", "nodejs", Language::Nodejs.default_version()),
        default_value_if("language", "node", Language::Nodejs.default_version())
    )]
    pub language_version: String,
    /// The package cache (default: under the user's cache directory).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Rebuild the code package even when its hash is unchanged.
    #[arg(long)]
    pub update_code: bool,
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
    let root = setup::benchmarks_root(args.benchmarks_dir.as_deref())?;
    let bench = sebs_package::find_benchmark(&root, &args.benchmark)
        .exit(Exit::BadInput, format!("no benchmark {:?}", args.benchmark))?;
    let started = Instant::now();
    // The engine is reached only when there are dependencies to install, so packaging a
    // dependency-free benchmark works (and is timed) without Docker.
    let env = OnDemand {
        handle: tokio::runtime::Handle::current(),
        language: args.language,
        version: args.language_version.clone(),
    };
    let package = invoke::build_package(
        &bench,
        args.cache.as_deref(),
        args.language,
        &args.language_version,
        args.update_code,
        env,
    )
    .await?;
    let report = Report {
        benchmark: bench.name.clone(),
        language: args.language,
        version: args.language_version.clone(),
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

//! `sebs-local invoke`: package, start, invoke N times, print results, remove.

use std::path::PathBuf;

use sebs_package::{generate_input, BenchmarkDir, NoDeps, PackageCache, Size};
use sebs_platform::{Function, FunctionConfig, Platform};
use sebs_trigger::{ExecutionResult, InvokeError};
use sebs_wire::Language;

use crate::exit::{Exit, ExitContext, Failure};
use crate::{images, setup};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Benchmark name, e.g. `010.sleep` or `sleep`.
    pub benchmark: String,
    /// Input size: test, small or large.
    pub size: Size,
    /// Where benchmarks are: else SEBS_BENCHMARKS_DIR, ./benchmarks, or the fixtures.
    #[arg(long)]
    pub benchmarks_dir: Option<PathBuf>,
    /// How many invocations, one after the other.
    #[arg(long, default_value_t = 1)]
    pub repetitions: usize,
    #[arg(long, default_value = "python")]
    pub language: Language,
    #[arg(long, default_value = "3.11")]
    pub language_version: String,
    /// The package cache (default: under the user's cache directory).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Rebuild the code package even when its hash is unchanged.
    #[arg(long)]
    pub update_code: bool,
    /// The data directory handed to `input.py` (SeBS's benchmarks-data/<benchmark>).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let root = setup::benchmarks_root(args.benchmarks_dir.as_deref())?;
    let bench = sebs_package::find_benchmark(&root, &args.benchmark)
        .exit(Exit::BadInput, format!("no benchmark {:?}", args.benchmark))?;
    if !bench.config.languages.contains(&args.language) {
        return Err(Failure {
            exit: Exit::BadInput,
            error: anyhow::anyhow!(
                "benchmark {} is not written in {} (its config.json lists {:?})",
                bench.name,
                args.language,
                bench.config.languages
            ),
        });
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(|| bench.path.clone());
    let input = generate_input(&bench, args.size, &data_dir)
        .exit(Exit::BadInput, format!("failed to generate the input of {}", bench.name))?;

    let docker = setup::docker().await?;
    let platform = setup::platform(docker).await?;
    let image = images::resolve(platform.docker(), args.language, &args.language_version).await?;
    let package = package(&bench, &args).await?;
    tracing::info!(
        benchmark = %bench.name,
        hash = %package.hash,
        size_kb = package.size_bytes / 1024,
        reused = package.reused,
        "code package ready"
    );

    let config = FunctionConfig::from_benchmark(&bench.config, args.language, &args.language_version);
    let name = format!("{}-{}-{}", bench.name, args.language, bench.config.memory_mb);
    // Everything from here on runs under Ctrl-C watch, so that no container outlives us.
    let work = async {
        let function = platform
            .create_function(&name, &bench.name, &package, &image, &config)
            .await
            .exit(Exit::Environment, format!("failed to start {name}"))?;
        let outcome = invoke_all(&platform, &function, &input, args.repetitions).await;
        platform.stop(&function).await.exit(Exit::Environment, "failed to remove the container")?;
        Ok::<_, Failure>(outcome)
    };
    let result = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!("interrupted; removing containers");
            platform.shutdown().await;
            return Ok(Exit::Interrupted);
        }
    };
    platform.shutdown().await;
    result
}

async fn package(bench: &BenchmarkDir, args: &Args) -> Result<sebs_package::Package, Failure> {
    let cache = PackageCache::new(setup::cache_root(args.cache.as_deref())?);
    let bench = bench.clone();
    let (language, version, force) = (args.language, args.language_version.clone(), args.update_code);
    tokio::task::spawn_blocking(move || cache.get_or_build(&bench, language, &version, &NoDeps, force))
        .await
        .exit(Exit::Environment, "the packaging task failed")?
        .exit(Exit::BadInput, "failed to build the code package")
}

/// Invokes `repetitions` times, printing each result as one JSON line as soon as it is
/// there, so that an interruption loses nothing already measured.
async fn invoke_all(
    platform: &Platform,
    function: &Function,
    input: &serde_json::Value,
    repetitions: usize,
) -> Exit {
    let mut exit = Exit::Ok;
    for _ in 0..repetitions {
        let record = match platform.invoke(function, input).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!("invocation failed: {e}");
                exit = Exit::InvocationFailed;
                failure_record(&e)
            }
        };
        match serde_json::to_string(&record) {
            Ok(line) => println!("{line}"),
            Err(e) => tracing::error!("could not print a result: {e}"),
        }
    }
    exit
}

/// A failed invocation in SeBS's shape: `stats.failure` set, the agent's error answer (or
/// our description) as `output`, and whatever times were measured.
pub fn failure_record(error: &InvokeError) -> ExecutionResult {
    use sebs_trigger::{python_datetime, ExecutionStats, ExecutionTimes};
    let output = match error {
        InvokeError::Function { answer, .. } => {
            serde_json::to_value(answer.as_ref()).unwrap_or(serde_json::Value::Null)
        }
        other => serde_json::json!({ "error": other.to_string() }),
    };
    let times = error.times();
    ExecutionResult {
        request_id: match error {
            InvokeError::Function { answer, .. } => answer.request_id.clone().unwrap_or_default(),
            _ => String::new(),
        },
        times: ExecutionTimes {
            client: times.map_or(0, |t| t.client_us),
            client_begin: times.map(|t| python_datetime(t.begin.0)).unwrap_or_default(),
            client_end: times.map(|t| python_datetime(t.end.0)).unwrap_or_default(),
            benchmark: 0,
            initialization: 0,
            http_startup: times.map_or(0.0, |t| t.http_startup),
            http_first_byte_return: times.map_or(0.0, |t| t.http_first_byte_return),
        },
        provider_times: Default::default(),
        stats: ExecutionStats {
            memory_used: None,
            cold_start: matches!(error, InvokeError::Function { answer, .. } if answer.is_cold),
            failure: true,
        },
        billing: Default::default(),
        output,
    }
}

//! `sebs-local invoke`: package, start, invoke N times, print results, remove.

use std::path::PathBuf;

use sebs_package::{validate_output, BenchmarkDir, Size, Validation};
use sebs_platform::{Function, FunctionConfig, Platform};
use sebs_trigger::ExecutionResult;
use sebs_wire::Language;

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub bench: setup::BenchmarkArgs,
    /// Input size: test, small or large.
    pub size: Size,
    /// How many invocations, one after the other.
    #[arg(long, default_value_t = 1)]
    pub repetitions: usize,
    /// The data directory handed to `input.py` (SeBS's benchmarks-data/<benchmark>).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Check every output with the benchmark's `validate_output`; exit code 4 when one is
    /// wrong.
    #[arg(long)]
    pub validate: bool,
    #[command(flatten)]
    pub sandbox: setup::SandboxArgs,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let bench = args.bench.find()?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| bench.path.clone());
    let input = setup::generate_input(&bench, args.size, &data_dir)?;

    let docker = setup::docker().await?;
    let platform = setup::platform(docker, |_| {}).await?;

    let mut config = FunctionConfig::from_benchmark(
        &bench.config,
        args.bench.language,
        &args.bench.language_version,
    );
    args.sandbox.apply(&mut config.sandbox);
    let name = format!(
        "{}-{}-{}",
        bench.name, args.bench.language, bench.config.memory_mb
    );
    // Everything from here on runs under Ctrl-C watch, so that no container outlives us.
    let work = async {
        let (image, package) = args.bench.prepare(&platform, &bench).await?;
        let function = platform
            .create_function(&name, &bench.name, &package, &image, &config)
            .await
            .exit(Exit::Environment, format!("failed to start {name}"))?;
        let validate = args.validate.then_some(Validate {
            bench: &bench,
            data_dir: &data_dir,
            language: args.bench.language,
        });
        let outcome = invoke_all(&platform, &function, &input, args.repetitions, validate).await;
        platform
            .stop(&function)
            .await
            .exit(Exit::Environment, "failed to remove the container")?;
        Ok::<_, Failure>(outcome)
    };
    let result = setup::until_ctrl_c(&platform, work).await;
    platform.shutdown().await;
    result
}

/// What `--validate` needs to check an output.
#[derive(Clone, Copy)]
struct Validate<'a> {
    bench: &'a BenchmarkDir,
    data_dir: &'a std::path::Path,
    language: Language,
}

/// Counts of validation outcomes, summarised at the end.
#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    failed: usize,
    unchecked: usize,
}

/// Runs the benchmark's validator on one output and logs what it said.
async fn validate_one(
    v: Validate<'_>,
    n: usize,
    input: &serde_json::Value,
    output: &serde_json::Value,
    tally: &mut Tally,
) {
    let (bench, data_dir, input, output) = (
        v.bench.clone(),
        v.data_dir.to_path_buf(),
        input.clone(),
        output.clone(),
    );
    let language = v.language;
    let verdict = tokio::task::spawn_blocking(move || {
        validate_output(&bench, &data_dir, &input, &output, language)
    })
    .await;
    match verdict {
        Ok(Ok(Validation::Passed)) => {
            tally.passed += 1;
            tracing::info!(invocation = n, "validation passed");
        }
        Ok(Ok(Validation::Failed(message))) => {
            tally.failed += 1;
            tracing::error!(invocation = n, "validation failed: {message}");
        }
        Ok(Ok(Validation::NoValidator)) => {
            tally.unchecked += 1;
            if tally.unchecked == 1 {
                tracing::warn!(
                    "benchmark {} has no validate_output in its input.py: outputs are not checked",
                    v.bench.name
                );
            }
        }
        Ok(Err(e)) => {
            tally.failed += 1;
            tracing::error!(
                invocation = n,
                "validation failed: the validator itself failed: {e}"
            );
        }
        Err(e) => {
            tally.failed += 1;
            tracing::error!(
                invocation = n,
                "validation failed: the validation task failed: {e}"
            );
        }
    }
}

/// Invokes `repetitions` times, printing each result as one JSON line as soon as it is
/// there, so that an interruption loses nothing already measured. With `validate`, each
/// successful output is checked and the verdicts are logged and summarised; a failed
/// invocation outranks a wrong output in the exit code.
async fn invoke_all(
    platform: &Platform,
    function: &Function,
    input: &serde_json::Value,
    repetitions: usize,
    validate: Option<Validate<'_>>,
) -> Exit {
    let mut exit = Exit::Ok;
    let mut tally = Tally::default();
    for n in 1..=repetitions {
        let record = match platform.invoke(function, input).await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!("invocation failed: {e}");
                exit = Exit::InvocationFailed;
                ExecutionResult::failed(&e)
            }
        };
        match serde_json::to_string(&record) {
            Ok(line) => println!("{line}"),
            Err(e) => tracing::error!("could not print a result: {e}"),
        }
        if let (Some(v), false) = (validate, record.stats.failure) {
            let output = record
                .handler_output()
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            validate_one(v, n, input, &output, &mut tally).await;
        }
    }
    if let Some(v) = validate {
        let Tally {
            passed,
            failed,
            unchecked,
        } = tally;
        if unchecked > 0 {
            tracing::warn!("validation of {}: {unchecked} output(s) not checked: the benchmark has no validator", v.bench.name);
        } else {
            tracing::info!(
                "validation of {}: {passed} passed, {failed} failed",
                v.bench.name
            );
        }
        if failed > 0 && exit == Exit::Ok {
            exit = Exit::ValidationFailed;
        }
    }
    exit
}

//! `sebs-local invoke`: package, start, invoke N times, print results, remove.

use sebs_package::{validate_output, BenchmarkDir, NoStorage, Size, ValidateContext, Validation};
use sebs_platform::{Function, FunctionConfig, Platform};
use sebs_storage::InputCalls;
use sebs_trigger::ExecutionResult;
use sebs_wire::{ErrorChain, Language};

use crate::exit::{Exit, ExitContext, Failure};
use crate::{inputs, setup};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub bench: setup::BenchmarkArgs,
    /// Input size: test, small or large.
    pub size: Size,
    /// How many invocations, one after the other.
    #[arg(long, default_value_t = 1)]
    pub repetitions: usize,
    #[command(flatten)]
    pub inputs: inputs::InputArgs,
    /// Check every output with the benchmark's `validate_output`; exit code 4 when one is
    /// wrong.
    #[arg(long)]
    pub validate: bool,
    #[command(flatten)]
    pub sandbox: setup::SandboxArgs,
    #[command(flatten)]
    pub engines: setup::EngineArgs,
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let mut bench = args.bench.find()?;
    let mut config = FunctionConfig::from_benchmark(
        &bench.config,
        args.bench.language,
        &args.bench.language_version,
    );
    args.sandbox.apply(&mut config.sandbox)?;
    setup::check_config(&config)?;
    let prepared = inputs::prepare(&mut bench, args.size, &args.inputs).await?;
    let input = prepared.input;
    config.env = prepared.env;

    let home = setup::home().await?;
    let platform = setup::platform(home, |_| {})
        .await?
        .with_engines(args.engines.connect().await?);
    inputs::relay_to_remote_engines(&platform, prepared.storage.as_ref()).await?;

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
            .map_err(setup::platform_failure(format!("failed to start {name}")))?;
        let validate = args.validate.then_some(Validate {
            bench: &bench,
            context: &prepared.validate,
            language: args.bench.language,
            storage: prepared.storage.as_ref().map(|s| s.calls.as_ref()),
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
    context: &'a ValidateContext,
    language: Language,
    /// Downloads of validators that check what the function stored.
    storage: Option<&'a InputCalls>,
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
    let verdict = match v.storage {
        Some(storage) => {
            validate_output(v.bench, v.context, input, output, v.language, storage).await
        }
        None => validate_output(v.bench, v.context, input, output, v.language, &NoStorage).await,
    };
    match verdict {
        Ok(Validation::Passed) => {
            tally.passed += 1;
            tracing::info!(invocation = n, "validation passed");
        }
        Ok(Validation::Failed(message)) => {
            tally.failed += 1;
            tracing::error!(invocation = n, "validation failed: {message}");
        }
        Ok(Validation::NoValidator) => {
            tally.unchecked += 1;
            if tally.unchecked == 1 {
                tracing::warn!(
                    "benchmark {} has no validate_output in its input.py: outputs are not checked",
                    v.bench.name
                );
            }
        }
        Err(e) => {
            tally.failed += 1;
            tracing::error!(
                invocation = n,
                "validation failed: the validator itself failed: {}",
                ErrorChain(&e)
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
                tracing::error!("invocation failed: {}", ErrorChain(&e));
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

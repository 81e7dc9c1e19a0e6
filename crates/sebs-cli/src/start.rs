//! `sebs-local start`: package a benchmark, start N containers of it, write `out.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sebs_package::{Needs, NeedsMemo, Size};
use sebs_platform::{Addressing, DeploymentFile, FunctionConfig, FunctionState, Platform};
use sebs_ports::PortRange;

use crate::exit::{Exit, ExitContext, Failure};
use crate::{inputs, measure, setup};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub bench: setup::BenchmarkArgs,
    /// Input size: test, small or large.
    pub size: Size,
    /// Where to write the deployment (SeBS's `out.json` format).
    pub output: PathBuf,
    /// How many containers of the function to start (in parallel), 1 to 65534.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=sebs_platform::MAX_CONTAINERS as i64))]
    pub deployments: u32,
    /// Make `stop` remove the containers (the default, as SeBS).
    #[arg(long, overrides_with = "no_remove_containers")]
    pub remove_containers: bool,
    /// Make `stop` only stop the containers, keeping them for `logs` and inspection
    /// (`sebs-local cleanup` removes them later).
    #[arg(
        long,
        visible_alias = "keep-containers",
        overrides_with = "remove_containers"
    )]
    pub no_remove_containers: bool,
    /// Memory limit in MB (default: the benchmark's config.json).
    #[arg(long)]
    pub memory: Option<u64>,
    /// CPU limit, e.g. 0.5 (default: unlimited).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Timeout of one invocation in seconds (default: the benchmark's config.json).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Publish each function on 127.0.0.1 instead of using its bridge IP (automatic where
    /// the bridge is not reachable: macOS, Windows, WSL, a remote engine).
    #[arg(long)]
    pub publish: bool,
    /// Host ports published functions may use.
    #[arg(long, default_value_t = PortRange::DEFAULT)]
    pub port_range: PortRange,
    #[command(flatten)]
    pub sandbox: setup::SandboxArgs,
    /// Run the containers privileged (e.g. for hardware performance counters); a function
    /// that runs as root (`--user root`) then has every capability.
    #[arg(long)]
    pub privileged: bool,
    #[command(flatten)]
    pub engines: setup::EngineArgs,
    /// Extra label KEY=VALUE on every container (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    #[command(flatten)]
    pub inputs: inputs::InputArgs,
    /// Sample every container's memory every MS milliseconds (1 to 3600000) until `stop`,
    /// which writes SeBS's memory_stats.json (and our memory_report.json).
    #[arg(long, value_name = "MS", value_parser = measure::interval_parser())]
    pub measure_interval: Option<u64>,
    /// Where the cgroup hierarchy is mounted, for --measure-interval. Where a container's
    /// cgroup is not found there, its memory comes from the engine's stats (about 1/s).
    #[arg(long, default_value = sebs_memory::DEFAULT_CGROUP_ROOT)]
    pub cgroup_root: PathBuf,
}

impl Args {
    /// Whether `stop` removes the containers: unless `--no-remove-containers` came last.
    fn removes_containers(&self) -> bool {
        self.remove_containers || !self.no_remove_containers
    }
}

/// `KEY=VALUE`, as Docker writes labels.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Refuses to write over a deployment file whose containers still run, which would orphan
/// them; a file whose deployment is gone (stopped, removed or dead) is replaced, as SeBS users
/// re-run start and stop on one file.
async fn check_replaceable(platform: &Platform, output: &Path) -> Result<(), Failure> {
    // A file that is missing, unreadable or not JSON lists nothing (writing it may still fail).
    let Some(file) = std::fs::read_to_string(output)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    else {
        return Ok(());
    };
    let listed = sebs_platform::listed_containers(&file);
    let states = platform.listed_states(&listed).await.exit(
        Exit::Environment,
        format!(
            "failed to check whether the deployment in {} still runs",
            output.display()
        ),
    )?;
    let with_state = || listed.iter().zip(&states);
    let running: Vec<String> = with_state()
        .filter(|(_, s)| matches!(s, FunctionState::Running))
        .map(|(l, _)| format!("{} (function {})", l.instance_id, l.function))
        .collect();
    if !running.is_empty() {
        let stop = if file.get("sebs_local").is_some() {
            "sebs-local stop"
        } else {
            "sebs local stop"
        };
        return Err(Failure {
            exit: Exit::BadInput,
            error: anyhow::anyhow!(
                "{} lists a deployment that still runs, in containers {}; stop it first \
                 (`{stop} {}`) or choose another file",
                output.display(),
                running.join(", "),
                output.display()
            ),
        });
    }
    if !listed.is_empty() {
        let exited: Vec<&str> = with_state()
            .filter(|(_, s)| matches!(s, FunctionState::Exited { .. }))
            .map(|(l, _)| l.instance_id.as_str())
            .collect();
        let left = if exited.is_empty() {
            String::new()
        } else {
            format!(
                "; its stopped containers {} remain (`sebs-local cleanup` removes them)",
                exited.join(", ")
            )
        };
        tracing::info!(
            "replacing {}: its deployment no longer runs{left}",
            output.display()
        );
    }
    Ok(())
}

/// Remembers `needs` for the next start of the same `input.py`; one that cannot be kept
/// only costs that start its wait for the inspection.
fn keep_needs(session: &sebs_package::InputSession, memo: &NeedsMemo, needs: &Needs) {
    if let Err(e) = session.keep_needs(memo, needs) {
        tracing::debug!("failed to {:#}", anyhow::Error::new(e));
    }
}

/// Logs how long after process start `phase` ended (`RUST_LOG=debug`): where a start's time
/// goes, phase by phase.
fn phase(phase: &str) {
    tracing::debug!(
        phase,
        ms = setup::since_start().as_secs_f64() * 1e3,
        "start: phase done"
    );
}

/// A start whose `input.py` answered its inspection otherwise than the remembered answer of
/// the same text (one that depends on more than its text): what was started for the
/// remembered answer is removed, and the start begins again on the new one.
#[derive(Debug)]
struct NeedsChanged {
    benchmark: String,
}

impl std::fmt::Display for NeedsChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input.py of {} asks for other storage than when this text of it was last \
             inspected",
            self.benchmark
        )
    }
}

impl std::error::Error for NeedsChanged {}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    phase("parse");
    // No cache directory is the package's failure to report, later.
    let memo = setup::cache_root(args.bench.cache.as_deref())
        .ok()
        .map(|root| sebs_package::PackageCache::new(root).needs_memo());
    match attempt(&args, memo.as_ref(), true).await {
        Err(failure) if failure.error.is::<NeedsChanged>() => {
            tracing::info!(
                "{}; its containers were removed, starting again on the new answer",
                failure.error
            );
            attempt(&args, memo.as_ref(), false).await
        }
        done => done,
    }
}

/// One start; with `recall`, on `input.py`'s remembered needs (in `memo`) when there are
/// any, checked against its inspection while the containers start.
async fn attempt(args: &Args, memo: Option<&NeedsMemo>, recall: bool) -> Result<Exit, Failure> {
    let mut bench = args.bench.find()?;
    // python3 first: its start-up (slow here) overlaps the engine's connection, the file's
    // check, the image and the containers' start; it inspects and then generates.
    let mut session = sebs_package::InputSession::start(&bench);
    phase("python3 spawned");
    // What this input.py asked for when last inspected: packaging and deploying need not
    // wait for the interpreter (the slowest part of a start before the engine's), and the
    // inspection, still made, only has to agree before the start is done.
    let recalled = memo
        .filter(|_| recall)
        .and_then(|memo| session.recall_needs(memo));
    if let Some(needs) = &recalled {
        inputs::add_modules(&mut bench, needs);
    }
    let mut fconfig = FunctionConfig::from_benchmark(
        &bench.config,
        args.bench.language,
        &args.bench.language_version,
    );
    fconfig.memory_mb = args.memory.unwrap_or(fconfig.memory_mb);
    fconfig.timeout_s = args.timeout.unwrap_or(fconfig.timeout_s);
    fconfig.cpus = args.cpus;
    args.sandbox.apply(&mut fconfig.sandbox)?;
    setup::check_config(&fconfig)?;
    // The home engine and the engines functions go on (often the same one) are connected
    // at once: each connection is a ping and a version negotiation.
    let (home, engines) = tokio::join!(setup::home(), args.engines.connect());
    let (home, engines) = (home?, engines?);
    let platform = setup::platform(home, |config| {
        config.privileged = args.privileged;
        config.ports.range = args.port_range;
        if args.publish {
            config.addressing = Addressing::Publish;
        }
        config.labels = args.labels.iter().cloned().collect::<BTreeMap<_, _>>();
        // Functions on remote engines sample their own memory: this host cannot read
        // their cgroups.
        config.agent_memory_interval = args.measure_interval.map(std::time::Duration::from_millis);
    })
    .await?
    .with_engines(engines);
    phase("engine connected");
    // At once, as none needs another: whether the file is still in use, what input.py asks
    // for (the session's python3), and the image. A file still in use is refused first, before inputs are
    // uploaded or stores started.
    let inspection = async {
        if let Some(needs) = &recalled {
            return Ok(needs.clone());
        }
        let needs = inputs::add_storage_modules(&mut bench, &mut session).await?;
        if let Some(memo) = memo {
            keep_needs(&session, memo, &needs);
        }
        Ok(needs)
    };
    let (replaceable, needs, image) = tokio::join!(
        check_replaceable(&platform, &args.output),
        inspection,
        crate::images::resolve(
            platform.docker(),
            args.bench.language,
            &args.bench.language_version
        ),
    );
    replaceable?;
    let needs = needs?;
    let image = image?;
    phase(if recalled.is_some() {
        "file checked, input.py's needs remembered, image found"
    } else {
        "file checked, input.py inspected, image found"
    });
    let name = format!(
        "{}-{}-{}",
        bench.name, args.bench.language, fconfig.memory_mb
    );
    let n = args.deployments as usize;
    let started = std::time::Instant::now();
    let deploy = |fconfig: FunctionConfig| {
        let (bench, platform, image, name) = (&bench, &platform, &image, &name);
        async move {
            let package = args.bench.package_for(platform, bench, image).await?;
            phase("package ready");
            let functions = platform
                .create_functions(n, name, &bench.name, &package, image, &fconfig)
                .await
                .map_err(setup::platform_failure(format!(
                    "failed to start {n} containers of {name}"
                )))?;
            phase("containers answer");
            Ok::<_, Failure>(functions)
        }
    };
    let input_side = async {
        let mut session = session;
        if let Some(remembered) = &recalled {
            let inspected = session
                .inspect()
                .await
                .map_err(|e| inputs::input_failure(e, &bench))?;
            phase("input.py inspected");
            if inspected != *remembered {
                if let Some(memo) = memo {
                    keep_needs(&session, memo, &inspected);
                }
                return Err(Failure {
                    exit: Exit::BadInput,
                    error: anyhow::Error::new(NeedsChanged {
                        benchmark: bench.name.clone(),
                    }),
                });
            }
        }
        let prepared =
            inputs::prepare_with(&bench, session, &needs, args.size, &args.inputs).await?;
        phase("input generated");
        // Before any function starts when the benchmark has storage (below), so that a store
        // that cannot start leaves nothing behind; a store-free benchmark's block is only
        // SeBS's formality and never fails the start.
        let block = inputs::object_block(&args.inputs, &prepared).await?;
        phase("storage block");
        Ok::<_, Failure>((prepared, block))
    };
    // Packaging, starting and the measurer's launch all run under Ctrl-C watch, so that no
    // container outlives an interrupted start.
    let work = async {
        let ((prepared, block), functions) = if inputs::storage_free(&bench) {
            // Nothing the containers are given depends on the input: input.py runs while
            // they start. Its failure drops the start (the platform removes what it made).
            tokio::try_join!(input_side, deploy(fconfig))?
        } else {
            // The containers need the storage's variables, which preparing the input gives.
            let (prepared, block) = input_side.await?;
            fconfig.env = prepared.env.clone();
            inputs::relay_to_remote_engines(&platform, prepared.storage.as_ref()).await?;
            let functions = deploy(fconfig).await?;
            ((prepared, block), functions)
        };
        // Only once the start cannot fail any more for its input: nothing stops a measurer
        // of a start that failed.
        let memory = match args.measure_interval {
            Some(ms) => {
                // This host's engines' containers are sampled by the measurer, from this
                // host's cgroupfs; the others by their agents.
                let (here, remote): (Vec<_>, Vec<_>) =
                    functions.iter().partition(|f| f.engine.local);
                let ids: Vec<String> = here.iter().map(|f| f.container.id.clone()).collect();
                let agents = remote
                    .iter()
                    .map(|f| sebs_platform::AgentMeasured {
                        container: f.container.id.clone(),
                        url: f.url(),
                    })
                    .collect();
                Some(measure::launch(&args.output, ms, &args.cgroup_root, &ids, agents).await?)
            }
            None => None,
        };
        Ok((prepared, block, (functions, memory)))
    };
    let (prepared, storage_block, (functions, memory)) =
        match setup::until_ctrl_c(&platform, work).await {
            Ok(done) => done,
            Err(failure) => {
                platform.shutdown().await;
                return Err(failure);
            }
        };
    let mut file = DeploymentFile::new(
        &functions,
        prepared.input.clone(),
        args.removes_containers(),
        Some(platform.config().ports.lock_dir.clone()),
    );
    file.set_memory(memory);
    file.storage = storage_block;
    if let Some(storage) = &prepared.storage {
        file.sebs_local.storage = Some(storage.storage.to_file().to_json());
    }
    if let Err(e) = file.write(&args.output) {
        // Nobody could stop containers the file does not list: take them down again.
        if let Some(section) = &file.sebs_local.memory {
            sebs_platform::memory::abandon(section).await;
        }
        platform.shutdown().await;
        return Err(e).exit(Exit::BadInput, "the containers were removed again");
    }
    phase("out.json written");
    for f in &functions {
        println!("{}", f.url());
    }
    tracing::info!(
        deployments = n,
        seconds = started.elapsed().as_secs_f64(),
        output = %args.output.display(),
        "all functions answer; stop them with `sebs-local stop {}`",
        args.output.display()
    );
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let check = |text: &str, expect: Result<(&str, &str), ()>| {
            let got = parse_label(text);
            match expect {
                Ok((k, v)) => assert_eq!(got, Ok((k.to_string(), v.to_string()))),
                Err(()) => assert!(got.is_err(), "{text:?} gave {got:?}"),
            }
        };
        check("a=b", Ok(("a", "b")));
        check("sebs-local.test=1", Ok(("sebs-local.test", "1")));
        check("a=", Ok(("a", "")));
        check("a=b=c", Ok(("a", "b=c")));
        check("=b", Err(()));
        check("ab", Err(()));
    }
}

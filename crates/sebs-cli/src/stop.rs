//! `sebs-local stop`: end the memory measurement and write its files, stop (or remove) the containers an `out.json` lists and free their ports.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sebs_platform::{DeploymentFile, Platform, PlatformConfig, StopOutcome};
use sebs_wire::InvocationRecord;

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

/// Containers stopped at once.
const CONCURRENCY: usize = 8;

/// SeBS's default memory file.
const DEFAULT_MEMORY_OUTPUT: &str = "memory_stats.json";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployment written by `sebs-local start`.
    pub input_json: PathBuf,
    /// Where to write SeBS's memory statistics when `start` measured memory (as SeBS's
    /// `local stop INPUT OUTPUT`); default memory_stats.json.
    #[arg(conflicts_with = "memory_output")]
    pub output_json: Option<PathBuf>,
    /// The same as the second argument.
    #[arg(long, value_name = "FILE")]
    pub memory_output: Option<PathBuf>,
    /// Where to write our memory report (timestamps, percentiles, sampler timing); default:
    /// beside the memory statistics, `memory_stats.json` → `memory_report.json`,
    /// `x.json` → `x_report.json`.
    #[arg(long, value_name = "FILE")]
    pub memory_report: Option<PathBuf>,
    /// Only stop the containers, also when `start` asked for their removal (the default);
    /// `sebs-local logs` still reads them and `sebs-local cleanup` removes them later.
    #[arg(long)]
    pub keep_containers: bool,
}

/// The report's default path beside SeBS's memory file.
fn report_path(memory_output: &Path) -> PathBuf {
    let stem = memory_output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = stem.strip_suffix("_stats").unwrap_or(&stem);
    memory_output.with_file_name(format!("{base}_report.json"))
}

pub async fn run(args: Args) -> Result<Exit, Failure> {
    let file = DeploymentFile::read(&args.input_json)
        .exit(Exit::BadInput, "cannot stop this deployment")?;
    let mut exit = Exit::Ok;
    if let Some(section) = &file.sebs_local.memory {
        let stats = args
            .memory_output
            .clone()
            .or(args.output_json.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MEMORY_OUTPUT));
        let report = args
            .memory_report
            .clone()
            .unwrap_or_else(|| report_path(&stats));
        let ids: Vec<String> = file
            .sebs_local
            .instances
            .iter()
            .map(|i| i.instance_id.clone())
            .collect();
        // Asked while the containers still run: when each call ran, for the profiles.
        let logs = invocation_logs(&file).await;
        match sebs_platform::memory::finish(section, &ids, &logs, &stats, &report).await {
            Ok(()) => {
                // The page goes beside the memory files and shows every result there, and
                // the report just written whatever its name. The measurements are written:
                // a page that cannot be drawn is said, not this stop's failure.
                let dir = report.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new("."));
                if let Err(failure) = crate::report::write(dir, std::slice::from_ref(&report)) {
                    tracing::error!("{:#} (the memory measurements are written)", failure.error);
                }
            }
            Err(e) => {
                tracing::error!(
                    "failed to write the memory measurements: {:#}",
                    anyhow::Error::from(e)
                );
                exit = Exit::Environment;
            }
        }
    }
    let docker = setup::docker().await?;
    // Stopping needs no agent binary: the path is never used.
    let platform = Platform::new(docker, PlatformConfig::new(PathBuf::new()));
    let section = &file.sebs_local;
    let remove = section.remove_containers && !args.keep_containers;
    // Each engine of the deployment is reached once first: one that cannot be reached is
    // reported once, with the containers left there, and the others are stopped all the
    // same (an engine that goes away later fails each call there within its bound).
    let urls: BTreeSet<&str> = section
        .instances
        .iter()
        .filter_map(|i| i.engine.as_deref())
        .collect();
    let reached = futures_util::future::join_all(urls.into_iter().map(|url| {
        let platform = &platform;
        async move { (url, platform.docker_for(Some(url)).await) }
    }))
    .await;
    let mut unreachable = BTreeSet::new();
    for (url, reached) in reached {
        if let Err(e) = reached {
            let left: Vec<&str> = section
                .instances
                .iter()
                .filter(|i| i.engine.as_deref() == Some(url))
                .map(|i| i.instance_id.as_str())
                .collect();
            tracing::error!(
                "left containers {} as they are on the docker engine at {url} (`sebs-local \
                 stop` again, or `sebs-local cleanup --engine {url}`, once it is back): \
                 failed to {}",
                left.join(", "),
                sebs_wire::ErrorChain(&e)
            );
            exit = worse(exit, Exit::Environment);
            unreachable.insert(url);
        }
    }
    let gate = tokio::sync::Semaphore::new(CONCURRENCY);
    let (gate, platform) = (&gate, &platform);
    let reachable = section.instances.iter().filter(|i| {
        i.engine
            .as_deref()
            .is_none_or(|url| !unreachable.contains(url))
    });
    let stops = reachable.map(|instance| async move {
        let _permit = gate.acquire().await;
        let outcome = platform
            .stop_instance(instance, remove, section.port_lock_dir.as_deref())
            .await;
        (instance, outcome)
    });
    for (instance, outcome) in futures_util::future::join_all(stops).await {
        let (id, function) = (&instance.instance_id, &instance.function);
        match outcome {
            Ok(StopOutcome::Stopped) => {
                let done = if remove { "removed" } else { "stopped" };
                tracing::info!(container = %id, "{done} function {function}");
            }
            Ok(StopOutcome::AlreadyExited { code, oom_killed }) => {
                let oom = if oom_killed {
                    ", killed for using too much memory"
                } else {
                    ""
                };
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

/// How long one agent may take to hand over its invocation log.
const LOG_TIMEOUT: Duration = Duration::from_secs(2);

/// Each running function's invocation log, by container id; a container that cannot say
/// (gone, its address taken by another, or an agent from before the log) simply has no
/// invocations marked.
async fn invocation_logs(file: &DeploymentFile) -> HashMap<String, Vec<InvocationRecord>> {
    let asks = file.functions.iter().map(|f| async move {
        let log = sebs_trigger::invocation_log(&f.url, &f.instance_id, LOG_TIMEOUT).await;
        (f.instance_id.clone(), log)
    });
    let mut logs = HashMap::new();
    for (id, log) in futures_util::future::join_all(asks).await {
        match log {
            Ok(log) => {
                if log.dropped > 0 {
                    tracing::warn!(
                        container = %id,
                        "container {id} forgot its {} oldest invocations; its memory profile \
                         marks only the latest {}",
                        log.dropped,
                        log.invocations.len()
                    );
                }
                logs.insert(id, log.invocations);
            }
            Err(e) => tracing::warn!(
                container = %id,
                "the memory profile of container {id} marks no invocations: failed to {}",
                sebs_wire::ErrorChain(&e)
            ),
        }
    }
    logs
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sits_beside_the_memory_file() {
        let check = |stats: &str, expect: &str| {
            assert_eq!(report_path(Path::new(stats)), PathBuf::from(expect))
        };
        check("memory_stats.json", "memory_report.json");
        check("/x/run1.json", "/x/run1_report.json");
        check("/x/a_stats", "/x/a_report.json");
    }
}

//! `sebs-local measure` (hidden): the measuring process `start --measure-interval` leaves running, and how `start` launches it.
//!
//! SeBS forks one measuring process per container that outlives `sebs local start`; we run
//! one for all containers of a deployment, detached into its own process group (Ctrl-C in the
//! terminal does not reach it), logging to a file in its directory. `stop` ends it with
//! SIGTERM; it flushes its journals and exits by itself once every container has gone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sebs_memory::MeasureDir;
use sebs_platform::memory::{self, MemoryConfig};
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

/// How long `start` waits for the measurer to have begun sampling every container.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
    let mut config = MemoryConfig::new(Duration::from_millis(args.interval_ms));
    config.cgroup_root = args.cgroup_root;
    let dir = MeasureDir::new(args.dir);
    memory::measure(&docker, &config, &args.containers, &dir, until)
        .await
        .exit(Exit::Environment, "memory measurement failed")?;
    Ok(Exit::Ok)
}

/// The measurement directory of a deployment file: `<out.json>.memory` beside it.
pub fn dir_for(output: &Path) -> Result<MeasureDir, Failure> {
    let output = std::path::absolute(output).exit(
        Exit::BadInput,
        format!("failed to resolve {}", output.display()),
    )?;
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".memory");
    Ok(MeasureDir::new(output.with_file_name(name)))
}

/// Starts the measuring process over `containers` and returns once it samples them all.
pub async fn launch(
    output: &Path,
    interval_ms: u64,
    cgroup_root: &Path,
    containers: &[String],
) -> Result<MemorySection, Failure> {
    let dir = dir_for(output)?;
    let cgroup_root = std::path::absolute(cgroup_root).exit(
        Exit::BadInput,
        format!("failed to resolve {}", cgroup_root.display()),
    )?;
    if dir.path.exists() {
        // A directory of an earlier measurement (its log is there) is replaced; anything else is not ours.
        if !dir.log().exists() {
            return Err(Failure {
                exit: Exit::BadInput,
                error: anyhow::anyhow!(
                    "{} exists and is not a memory measurement directory; move it away or choose another output",
                    dir.path.display()
                ),
            });
        }
        std::fs::remove_dir_all(&dir.path).exit(
            Exit::BadInput,
            format!("failed to remove {}", dir.path.display()),
        )?;
    }
    dir.create()
        .exit(Exit::BadInput, "no place for the memory measurement")?;
    let log = std::fs::File::create(dir.log()).exit(
        Exit::BadInput,
        format!("failed to create {}", dir.log().display()),
    )?;
    let exe =
        std::env::current_exe().exit(Exit::Environment, "failed to find the sebs-local binary")?;
    let mut command = Command::new(exe);
    command
        .arg("measure")
        .arg("--dir")
        .arg(&dir.path)
        .arg("--interval-ms")
        .arg(interval_ms.to_string())
        .arg("--cgroup-root")
        .arg(&cgroup_root)
        .args(containers)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().exit(
        Exit::Environment,
        "failed to start the memory measuring process",
    )?;
    wait_ready(&mut child, &dir).await?;
    tracing::info!(
        pid = child.id(),
        dir = %dir.path.display(),
        interval_ms,
        "measuring memory of {} containers until `stop`",
        containers.len()
    );
    Ok(MemorySection {
        pid: child.id(),
        dir: dir.path,
        interval_ms,
        cgroup_root,
    })
}

async fn wait_ready(child: &mut Child, dir: &MeasureDir) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        if dir.ready_marker().exists() {
            return Ok(());
        }
        let exited = child.try_wait().ok().flatten();
        let timed_out = tokio::time::Instant::now() >= deadline;
        if exited.is_some() || timed_out {
            if timed_out {
                let _ = child.kill();
                let _ = child.wait();
            }
            let log = std::fs::read_to_string(dir.log()).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let why = match exited {
                Some(status) => format!("it exited ({status})"),
                None => format!("it did not begin within {READY_TIMEOUT:?}"),
            };
            return Err(Failure {
                exit: Exit::Environment,
                error: anyhow::anyhow!(
                    "failed to start measuring memory: {why}; its log {} ends with:\n{}",
                    dir.log().display(),
                    tail.join("\n")
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends a measuring process `launch` started, when `start` cannot finish.
pub async fn abandon(section: &MemorySection) {
    let dir = MeasureDir::new(section.dir.clone());
    memory::stop_measurer(section.pid, &dir, Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir.path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_sits_beside_the_deployment_file() {
        let check = |output: &str, expect: &str| {
            assert_eq!(
                dir_for(Path::new(output)).unwrap().path,
                PathBuf::from(expect),
                "{output}"
            );
        };
        check("/tmp/out.json", "/tmp/out.json.memory");
        check("/a/b/deploy", "/a/b/deploy.memory");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            dir_for(Path::new("out.json")).unwrap().path,
            cwd.join("out.json.memory")
        );
    }
}

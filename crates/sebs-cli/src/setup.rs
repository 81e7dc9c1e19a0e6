//! Shared set-up of commands: logging, the engine, the platform, paths.

use std::path::{Path, PathBuf};

use sebs_container::Docker;
use sebs_platform::{Platform, PlatformConfig};

use crate::exit::{Exit, ExitContext, Failure};

/// Logs to stderr; `RUST_LOG` picks the level (info by default).
pub fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub async fn docker() -> Result<Docker, Failure> {
    sebs_container::connect().await.exit(Exit::Environment, "failed to reach a Docker engine")
}

pub async fn platform(docker: Docker) -> Result<Platform, Failure> {
    let agent = sebs_platform::find_agent_binary(None).exit(Exit::Environment, "no agent binary")?;
    Ok(Platform::new(docker, PlatformConfig::new(agent)))
}

/// The benchmarks root: `--benchmarks-dir`, `SEBS_BENCHMARKS_DIR`, `./benchmarks`, or the
/// fixtures of this repository.
pub fn benchmarks_root(cli: Option<&Path>) -> Result<PathBuf, Failure> {
    let cwd = std::env::current_dir().exit(Exit::Environment, "failed to read the current directory")?;
    let env = std::env::var(sebs_package::BENCHMARKS_DIR_ENV).ok();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(|root| root.join("fixtures"))
        .filter(|p| p.is_dir());
    sebs_package::default_benchmarks_root(cli, env.as_deref(), &cwd, fixtures.as_deref())
        .exit(Exit::BadInput, "no benchmarks")
}

/// The package cache: `--cache`, else under the user's cache directory.
pub fn cache_root(cli: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(dir) = cli {
        return Ok(dir.to_path_buf());
    }
    let xdg = std::env::var("XDG_CACHE_HOME").ok();
    let home = std::env::var("HOME").ok();
    sebs_package::default_cache_root(xdg.as_deref(), home.as_deref())
        .ok_or_else(|| anyhow::anyhow!("neither XDG_CACHE_HOME nor HOME is set; pass --cache DIR"))
        .exit(Exit::Environment, "no cache directory")
}

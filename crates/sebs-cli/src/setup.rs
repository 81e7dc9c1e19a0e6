//! Shared set-up of commands: logging, the engine, the platform, paths.

use std::path::{Path, PathBuf};

use sebs_package::{BenchmarkDir, BuildError, PackageCache, PackageError};
use sebs_wire::Language;

use sebs_container::Docker;
use sebs_platform::{
    DockerBuildEnv, FunctionConfig, FunctionUser, Platform, PlatformConfig, PlatformError, Sandbox,
    TmpOn,
};

use crate::exit::{Exit, ExitContext, Failure};

/// Logs to stderr; `RUST_LOG` picks the level (info by default). Coloured only on a terminal
/// and without `NO_COLOR`, so that logs in files and pipes carry no escape codes.
pub fn logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
}

/// Whether logs are coloured: on a terminal, unless `NO_COLOR` is set to anything but the
/// empty string (no-color.org).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Where functions run, for every command that starts or finds them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// A Docker engine to run functions on, unix:///PATH, tcp://HOST:PORT (TLS:
    /// ?cert-path=DIR) or ssh://[USER@]HOST[:PORT] (?ssh-config=FILE) (repeatable:
    /// functions are placed on them in turn). An engine that is not this host's local one
    /// gets the image and a per-package image, and publishes its functions on its host's
    /// address [default: SEBS_ENGINES, comma-separated, else DOCKER_HOST or the local socket]
    #[arg(long = "engine", value_name = "URL")]
    pub engines: Vec<String>,
}

impl EngineArgs {
    /// The engines' addresses; a malformed one is bad input.
    pub fn addresses(&self) -> Result<Vec<sebs_container::EngineAddress>, Failure> {
        let env = std::env::var(sebs_container::ENGINES_ENV).ok();
        let host = std::env::var("DOCKER_HOST").ok();
        let tls = sebs_container::TlsDefaults::from_env();
        sebs_container::engine_addresses(&self.engines, env.as_deref(), host.as_deref(), &tls)
            .exit(Exit::BadInput, "bad --engine or SEBS_ENGINES")
    }

    /// Connects to every engine and finds out which are local.
    pub async fn connect(&self) -> Result<Vec<sebs_container::Engine>, Failure> {
        let mut engines = Vec::new();
        for address in self.addresses()? {
            let engine = sebs_container::connect_engine(&address)
                .await
                .map_err(connect_failure)?;
            tracing::debug!(engine = %engine.address, local = engine.local, "engine");
            engines.push(engine);
        }
        Ok(engines)
    }
}

pub async fn docker() -> Result<Docker, Failure> {
    sebs_container::connect().await.map_err(connect_failure)
}

/// The home engine (`DOCKER_HOST`, else the local socket), known to be this host's or not
/// by what it says it is (a `DOCKER_HOST` naming this host's engine over TCP counts as
/// this host's; one on another host, or in a namespace that hides this host's files, not).
pub async fn home() -> Result<sebs_container::Engine, Failure> {
    let host = std::env::var("DOCKER_HOST").ok();
    let address = sebs_container::engine_address(host.as_deref()).map_err(connect_failure)?;
    let home = sebs_container::connect_engine(&address)
        .await
        .map_err(connect_failure)?;
    if !home.local {
        tracing::info!(
            "the home engine at {} (DOCKER_HOST) is not this host's: functions get per-package \
             images there; what needs this host's engine (a package build with dependencies, \
             the embedded stores) is refused",
            home.address
        );
    }
    Ok(home)
}

/// Refuses what needs the home engine to see this host's files and bridge (`what`), when it
/// does not: the user's choice of engine, bad input.
pub fn needs_local_home(home: &sebs_container::Engine, what: &str) -> Result<(), Failure> {
    if home.local {
        return Ok(());
    }
    Err(Failure {
        exit: Exit::BadInput,
        error: anyhow::anyhow!(
            "{what} needs this host's docker engine as the home engine, but DOCKER_HOST names \
             {}, which is not this host's; unset DOCKER_HOST (or point it at this host's \
             engine) and name {} with --engine",
            home.address,
            home.address
        ),
    })
}

/// A failure to reach an engine, with the exit code of its cause: an address we do not
/// take or a TLS file that is not there is the user's input, anything else the engine's.
pub fn connect_failure(e: sebs_container::ConnectError) -> Failure {
    Failure {
        exit: if e.is_bad_input() {
            Exit::BadInput
        } else {
            Exit::Environment
        },
        error: anyhow::Error::new(e).context("failed to reach a Docker engine"),
    }
}

/// The platform on the home engine `home` ([`home`]), with its defaults changed by
/// `configure`.
pub async fn platform(
    home: sebs_container::Engine,
    configure: impl FnOnce(&mut PlatformConfig),
) -> Result<Platform, Failure> {
    let agent =
        sebs_platform::find_agent_binary(None).exit(Exit::Environment, "no agent binary")?;
    let mut config = PlatformConfig::new(agent);
    configure(&mut config);
    Ok(Platform::new(home.docker.clone(), config).with_home(home))
}

/// A failure of the platform, with the exit code of its cause: a function configuration
/// out of bounds or refused by the engine (the user's `--memory`, `--cpus`, ...) is bad
/// input, anything else the environment's.
pub fn platform_failure(context: String) -> impl FnOnce(PlatformError) -> Failure {
    move |e| Failure {
        exit: if e.is_bad_config() {
            Exit::BadInput
        } else {
            Exit::Environment
        },
        error: anyhow::Error::new(e).context(context),
    }
}

/// Refuses a function configuration the platform would refuse, before anything is built,
/// pulled or started.
pub fn check_config(config: &FunctionConfig) -> Result<(), Failure> {
    config
        .check()
        .map_err(platform_failure("bad function configuration".to_string()))
}

/// Refuses a language version we do not run, before anything is built or pulled.
pub fn check_version(language: Language, version: &str) -> Result<(), Failure> {
    language
        .check_version(version)
        .exit(Exit::BadInput, "bad --language-version")
}

/// Runs `work` unless Ctrl-C comes first; then every container the platform started is
/// removed and the command ends as interrupted.
pub async fn until_ctrl_c<T>(
    platform: &Platform,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!("interrupted; removing containers");
            platform.shutdown().await;
            Err(Failure {
                exit: Exit::Interrupted,
                error: anyhow::anyhow!("interrupted by Ctrl-C; every container started was removed"),
            })
        }
    }
}

/// `name` under the benchmarks root (see [`benchmarks_root`]), which must be written in
/// `language`.
pub fn find_benchmark(
    benchmarks_dir: Option<&Path>,
    name: &str,
    language: Language,
) -> Result<BenchmarkDir, Failure> {
    let root = benchmarks_root(benchmarks_dir)?;
    let bench = sebs_package::find_benchmark(&root, name)
        .exit(Exit::BadInput, format!("no benchmark {name:?}"))?;
    if !bench.config.languages.contains(&language) {
        return Err(Failure {
            exit: Exit::BadInput,
            error: anyhow::anyhow!(
                "benchmark {} is not written in {language} (its config.json lists {:?})",
                bench.name,
                bench.config.languages
            ),
        });
    }
    Ok(bench)
}

/// The embedded stores' image, made from the `sebs-store` binary (found as the agent is).
pub async fn store_image(docker: &Docker) -> Result<String, Failure> {
    let binary = sebs_container::find_static_binary(
        sebs_storage::embedded::STORE_BINARY,
        sebs_storage::embedded::STORE_BIN_ENV,
        None,
    )
    .exit(Exit::Environment, "no store binary")?;
    sebs_storage::embedded::ensure_image(docker, &binary)
        .await
        .exit(Exit::Environment, "failed to make the store image")
}

/// The benchmarks root: `--benchmarks-dir`, `SEBS_BENCHMARKS_DIR`, `./benchmarks`, or the
/// fixtures of this repository.
pub fn benchmarks_root(cli: Option<&Path>) -> Result<PathBuf, Failure> {
    let cwd =
        std::env::current_dir().exit(Exit::Environment, "failed to read the current directory")?;
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
        // Packages are mounted into containers, and the engine mounts absolute paths only.
        return std::path::absolute(dir).exit(
            Exit::Environment,
            format!("failed to find the cache {}", dir.display()),
        );
    }
    let xdg = std::env::var("XDG_CACHE_HOME").ok();
    let home = std::env::var("HOME").ok();
    sebs_package::default_cache_root(xdg.as_deref(), home.as_deref())
        .ok_or_else(|| anyhow::anyhow!("neither XDG_CACHE_HOME nor HOME is set; pass --cache DIR"))
        .exit(Exit::Environment, "no cache directory")
}

/// The options that loosen a function's sandbox, of every command that starts functions.
/// Each one given replaces that part of the sandbox; the others keep their defaults (or, in
/// perf-cost, the experiment config's values).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SandboxArgs {
    /// Size of the function's /tmp in MiB, a tmpfs whose files count against the memory
    /// limit; 0: no size limit [default: 512]
    #[arg(long, value_name = "MB",
          value_parser = clap::value_parser!(u64).range(0..=sebs_platform::MAX_TMP_SIZE_MB))]
    pub tmp_size: Option<u64>,
    /// What backs the function's /tmp: `memory`, the tmpfs of --tmp-size, or `disk`, a
    /// volume of its container's own whose files are not memory (as AWS Lambda's /tmp) and
    /// whose size is not limited [default: memory]
    #[arg(long, value_name = "memory|disk")]
    pub tmp_on: Option<TmpOn>,
    /// The most processes and threads in the function's container, the agent's few
    /// included; 0: no limit [default: 1024]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub pids_limit: Option<u64>,
    /// Whom the function runs as: `root`, `UID[:GID]`, or `auto`: the invoking user, or
    /// nobody (65534) when that is root [default: auto]
    #[arg(long, value_name = "USER")]
    pub user: Option<FunctionUser>,
}

impl SandboxArgs {
    /// `sandbox` with what these options set. A --tmp-size for a /tmp on disk (by
    /// --tmp-on disk or the experiment config's `tmp-on`) is refused as bad input rather than
    /// silently ignored: the disk's /tmp has no size limit.
    pub fn apply(&self, sandbox: &mut Sandbox) -> Result<(), Failure> {
        if let Some(mb) = self.tmp_size {
            sandbox.tmp_size_mb = Sandbox::limit(mb);
        }
        if let Some(tmp_on) = self.tmp_on {
            sandbox.tmp_on = tmp_on;
        }
        if let Some(n) = self.pids_limit {
            sandbox.pids_limit = Sandbox::limit(n);
        }
        if let Some(user) = self.user {
            sandbox.user = user;
        }
        match self.tmp_size {
            Some(mb) if mb > 0 && sandbox.tmp_on == TmpOn::Disk => Err(Failure {
                exit: Exit::BadInput,
                error: anyhow::anyhow!(
                    "--tmp-size {mb} cannot apply to a /tmp on disk: a volume of the \
                     container's own has no size limit; drop --tmp-size or use --tmp-on memory"
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// The options of every command that packages a benchmark.
#[derive(Debug, clap::Args)]
pub struct BenchmarkArgs {
    /// Benchmark name, e.g. `010.sleep` or `sleep`.
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

impl BenchmarkArgs {
    /// The benchmark, which must be written in the language asked for, in a version we run.
    pub fn find(&self) -> Result<BenchmarkDir, Failure> {
        check_version(self.language, &self.language_version)?;
        find_benchmark(
            self.benchmarks_dir.as_deref(),
            &self.benchmark,
            self.language,
        )
    }

    /// [`prepare`] for the benchmark, language and cache these options name.
    pub async fn prepare(
        &self,
        platform: &Platform,
        bench: &BenchmarkDir,
    ) -> Result<(String, sebs_package::Package), Failure> {
        prepare(
            platform,
            bench,
            self.language,
            &self.language_version,
            self.cache.as_deref(),
            self.update_code,
        )
        .await
    }

    /// [`package_for`] the image these options' language runs in, already resolved.
    pub async fn package_for(
        &self,
        platform: &Platform,
        bench: &BenchmarkDir,
        image: &str,
    ) -> Result<sebs_package::Package, Failure> {
        package_for(
            platform,
            bench,
            image,
            self.language,
            &self.language_version,
            self.cache.as_deref(),
            self.update_code,
        )
        .await
    }

    /// The benchmark's code package from the cache, built (its dependencies installed
    /// through `env`) when missing or when `--update-code` asks.
    pub async fn package(
        &self,
        bench: &BenchmarkDir,
        env: impl sebs_package::BuildEnv + Send + 'static,
    ) -> Result<sebs_package::Package, Failure> {
        build_package(
            bench,
            self.cache.as_deref(),
            self.language,
            &self.language_version,
            self.update_code,
            env,
        )
        .await
    }
}

/// [`PackageCache::get_or_build`] on a blocking thread, with its failure sorted into an exit
/// code: a broken engine is the environment's fault, anything else the benchmark's.
pub async fn build_package(
    bench: &BenchmarkDir,
    cache: Option<&std::path::Path>,
    language: Language,
    version: &str,
    force: bool,
    env: impl sebs_package::BuildEnv + Send + 'static,
) -> Result<sebs_package::Package, Failure> {
    let cache = PackageCache::new(cache_root(cache)?);
    let bench = bench.clone();
    let version = version.to_string();
    let built = tokio::task::spawn_blocking(move || {
        cache.get_or_build(&bench, language, &version, &env, force)
    })
    .await
    .exit(Exit::Environment, "the packaging task failed")?;
    built.map_err(|e| {
        let exit = match &e {
            PackageError::Build(
                BuildError::Environment { .. } | BuildError::NoEnvironment { .. },
            ) => Exit::Environment,
            _ => Exit::BadInput,
        };
        Failure {
            exit,
            error: anyhow::Error::new(e).context("failed to build the code package"),
        }
    })
}

/// The image `language` `version` runs in, and the benchmark's package built for it (its
/// dependencies installed in a build container of that image).
pub async fn prepare(
    platform: &Platform,
    bench: &BenchmarkDir,
    language: Language,
    version: &str,
    cache: Option<&Path>,
    force: bool,
) -> Result<(String, sebs_package::Package), Failure> {
    let image = crate::images::resolve(platform.docker(), language, version).await?;
    let package = package_for(platform, bench, &image, language, version, cache, force).await?;
    Ok((image, package))
}

/// The benchmark's package for `image` (already resolved), its dependencies installed in a
/// build container of that image.
pub async fn package_for(
    platform: &Platform,
    bench: &BenchmarkDir,
    image: &str,
    language: Language,
    version: &str,
    cache: Option<&Path>,
    force: bool,
) -> Result<sebs_package::Package, Failure> {
    let mut env = DockerBuildEnv::new(
        platform.docker().clone(),
        image,
        tokio::runtime::Handle::current(),
    );
    if !platform.home().local {
        env.remote = Some(platform.home().address.to_string());
    }
    let package = build_package(bench, cache, language, version, force, env).await?;
    tracing::info!(
        benchmark = %bench.name,
        hash = %package.hash,
        size_kb = package.size_bytes / 1024,
        reused = package.reused,
        "code package ready"
    );
    Ok(package)
}

/// Time since this process started (since `main` ran), for the debug log of each phase of
/// a command, so that a slow phase shows where it is (`RUST_LOG=debug`).
pub fn since_start() -> std::time::Duration {
    process_start().elapsed()
}

/// The moment [`main`](crate::main) began; set once, on first use.
pub fn process_start() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let check = |terminal: bool, no_color: Option<&str>, expect: bool| {
            assert_eq!(
                colour(terminal, no_color.map(OsStr::new)),
                expect,
                "terminal {terminal}, NO_COLOR {no_color:?}"
            );
        };
        check(true, None, true);
        check(true, Some(""), true);
        check(true, Some("1"), false);
        check(false, None, false);
        check(false, Some(""), false);
    }
}

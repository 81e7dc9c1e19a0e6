//! Installing a package's dependencies in a short-lived build container of the run image.
//!
//! [`DockerBuildEnv`] is the [`sebs_package::BuildEnv`] of the local platform: it runs
//! [`InstallRequest::command`] in a container of the same image the function will run in, so
//! that compiled wheels match its Python and libc. The container sees the package directory
//! read-write, runs as the invoking user (the files it writes are theirs), reaches the
//! registry through the default bridge with the host's CA bundle mounted read-only, and is
//! removed afterwards whatever happened.
//!
//! Its limits are its own, not the function's sandbox: a writable root file system (the
//! tools may write where they like in their throw-away container), no capabilities (pip and
//! npm need none, also as root: the package directory is the invoking user's), at most
//! [`BUILD_PIDS_LIMIT`] tasks, and [`DEFAULT_BUILD_TIMEOUT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sebs_container::run::{run_to_completion, BindMount, RunError, RunSpec};
use sebs_container::Docker;
use sebs_package::{BuildEnv, BuildError, InstallRequest};

/// Where the package directory is mounted in the build container.
pub const BUILD_DIR: &str = "/sebs/build";

/// Where the host's CA bundle is mounted in the build container.
pub const CA_BUNDLE_PATH: &str = "/sebs/ca-certificates.crt";

/// The label that tells build containers apart from function containers.
pub const BUILD_LABEL: (&str, &str) = ("sebs-local.build", "1");

/// Where Linux distributions keep their CA bundle, tried in order after `$SSL_CERT_FILE`.
const CA_BUNDLE_CANDIDATES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Environment variables that tell the tools in the container to trust [`CA_BUNDLE_PATH`].
const CA_BUNDLE_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

/// Host settings passed through unchanged when set: proxies and package indexes.
const PASSED_THROUGH: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
];

/// Lines of the install's output kept in [`BuildError::Install`].
const OUTPUT_LINES_IN_ERRORS: usize = 100;

/// The most tasks (processes and threads) a build container may hold: room for npm's and
/// pip's helpers and compilers, and a stop to a runaway install script.
pub const BUILD_PIDS_LIMIT: u64 = 4096;

/// How long an install may run before its container is killed.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What the build container takes from the host, read once at construction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostSettings {
    /// The host's CA bundle, when one was found.
    pub ca_bundle: Option<PathBuf>,
    /// Proxy and package index settings to pass through (`HTTPS_PROXY`, `PIP_INDEX_URL`, ...).
    pub env: Vec<(String, String)>,
}

impl HostSettings {
    /// Reads the settings through `get` (an environment lookup) and `is_file`.
    pub fn from_host(
        get: impl Fn(&str) -> Option<String>,
        is_file: impl Fn(&Path) -> bool,
    ) -> HostSettings {
        let from_env = get("SSL_CERT_FILE")
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from);
        let ca_bundle = from_env
            .into_iter()
            .chain(CA_BUNDLE_CANDIDATES.iter().map(PathBuf::from))
            .find(|p| is_file(p));
        let env = PASSED_THROUGH
            .iter()
            .filter_map(|name| {
                get(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| (name.to_string(), v))
            })
            .collect();
        HostSettings { ca_bundle, env }
    }

    /// The settings of this process's environment and file system.
    pub fn current() -> HostSettings {
        HostSettings::from_host(|k| std::env::var(k).ok(), Path::is_file)
    }
}

/// Installs dependencies in a build container of `image`; see the module documentation.
///
/// [`BuildEnv::install`] is synchronous, as `sebs_package` wants it; it blocks on the
/// captured runtime `handle`, so call it from a blocking thread
/// (`tokio::task::spawn_blocking`), never from inside an async task.
#[derive(Debug, Clone)]
pub struct DockerBuildEnv {
    docker: Docker,
    image: String,
    handle: tokio::runtime::Handle,
    /// Labels besides `sebs-local=1` and `sebs-local.build=1` (tests add theirs).
    pub labels: BTreeMap<String, String>,
    pub host: HostSettings,
    /// `uid:gid` the install runs as; the invoking user by default.
    pub user: String,
    pub timeout: Duration,
    /// The engine's address when it is not this host's (it would not see the package
    /// directory): every install is then refused.
    pub remote: Option<String>,
}

impl DockerBuildEnv {
    /// A build environment for packages that will run in `image`, with this process's user
    /// and host settings.
    pub fn new(docker: Docker, image: impl Into<String>, handle: tokio::runtime::Handle) -> Self {
        let user = format!(
            "{}:{}",
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw()
        );
        DockerBuildEnv {
            docker,
            image: image.into(),
            handle,
            labels: BTreeMap::new(),
            host: HostSettings::current(),
            user,
            timeout: DEFAULT_BUILD_TIMEOUT,
            remote: None,
        }
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    /// The container that carries out `request`.
    pub fn run_spec(&self, request: &InstallRequest) -> RunSpec {
        let name = format!(
            "sebs-build-{}-{}",
            sebs_container::name_part(&request.benchmark),
            uuid::Uuid::new_v4().simple()
        );
        let mut spec = RunSpec::new(name, self.image.clone(), request.command());
        spec.working_dir = Some(BUILD_DIR.to_string());
        spec.user = Some(self.user.clone());
        spec.mounts.push(BindMount {
            source: request.package_dir.clone(),
            target: BUILD_DIR.to_string(),
            read_only: false,
        });
        spec.labels = self.labels.clone();
        spec.labels
            .insert(BUILD_LABEL.0.to_string(), BUILD_LABEL.1.to_string());
        spec.timeout = Some(self.timeout);
        spec.pids_limit = Some(BUILD_PIDS_LIMIT);
        spec.capabilities = Some(Vec::new());
        // The user may not exist in the image: give the tools a writable home and no caches
        // that would outlive the container anyway.
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), "/tmp".into()),
            ("PIP_NO_CACHE_DIR".into(), "1".into()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
            ("PIP_NO_INPUT".into(), "1".into()),
            ("npm_config_cache".into(), "/tmp/.npm".into()),
            ("npm_config_update_notifier".into(), "false".into()),
        ];
        if let Some(bundle) = &self.host.ca_bundle {
            // Bind-mounting a symlink would mount whatever it points to in the container's
            // view; mount the file it names on the host.
            let source = std::fs::canonicalize(bundle).unwrap_or_else(|_| bundle.clone());
            spec.mounts.push(BindMount {
                source,
                target: CA_BUNDLE_PATH.to_string(),
                read_only: true,
            });
            env.extend(
                CA_BUNDLE_VARS
                    .iter()
                    .map(|v| (v.to_string(), CA_BUNDLE_PATH.to_string())),
            );
        }
        env.extend(self.host.env.iter().cloned());
        spec.env = env;
        spec
    }

    async fn install_async(&self, request: &InstallRequest) -> Result<(), BuildError> {
        let spec = self.run_spec(request);
        let started = Instant::now();
        tracing::info!(
            benchmark = %request.benchmark,
            container = %spec.name,
            image = %self.image,
            "installing dependencies: {}",
            spec.cmd.join(" ")
        );
        let out = run_to_completion(&self.docker, &spec)
            .await
            .map_err(|e| match e {
                RunError::TimedOut {
                    timeout, output, ..
                } => BuildError::Install {
                    benchmark: request.benchmark.clone(),
                    package_dir: request.package_dir.clone(),
                    reason: format!("{} ran past {timeout:?} and was killed", tool(request)),
                    output: sebs_container::last_lines(&output, OUTPUT_LINES_IN_ERRORS),
                },
                other => BuildError::Environment {
                    benchmark: request.benchmark.clone(),
                    reason: other.to_string(),
                },
            })?;
        if out.exit_code != 0 {
            return Err(BuildError::Install {
                benchmark: request.benchmark.clone(),
                package_dir: request.package_dir.clone(),
                reason: format!(
                    "{} in image {} exited with code {}; its output",
                    tool(request),
                    self.image,
                    out.exit_code
                ),
                output: sebs_container::last_lines(&out.output, OUTPUT_LINES_IN_ERRORS),
            });
        }
        tracing::info!(
            benchmark = %request.benchmark,
            seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
            "dependencies installed"
        );
        Ok(())
    }
}

impl BuildEnv for DockerBuildEnv {
    fn install(&self, request: &InstallRequest) -> Result<(), BuildError> {
        if let Some(engine) = &self.remote {
            return Err(BuildError::NeedsLocalEngine {
                benchmark: request.benchmark.clone(),
                engine: engine.clone(),
            });
        }
        self.handle.block_on(self.install_async(request))
    }
}

fn tool(request: &InstallRequest) -> &'static str {
    match request.install {
        sebs_package::Install::Pip { .. } => "pip install",
        sebs_package::Install::Npm => "npm install",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_settings() {
        let check = |env: &[(&str, &str)], files: &[&str], expect: HostSettings| {
            let got = HostSettings::from_host(
                |k| {
                    env.iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| v.to_string())
                },
                |p| files.iter().any(|f| Path::new(f) == p),
            );
            assert_eq!(got, expect, "{env:?} {files:?}");
        };
        let debian = "/etc/ssl/certs/ca-certificates.crt";
        let fedora = "/etc/pki/tls/certs/ca-bundle.crt";
        check(
            &[],
            &[debian, fedora],
            HostSettings {
                ca_bundle: Some(debian.into()),
                env: vec![],
            },
        );
        check(
            &[],
            &[fedora],
            HostSettings {
                ca_bundle: Some(fedora.into()),
                env: vec![],
            },
        );
        check(&[], &[], HostSettings::default());
        // $SSL_CERT_FILE wins when it is a file, and is skipped when it is not.
        check(
            &[
                ("SSL_CERT_FILE", "/my/ca.pem"),
                ("HTTPS_PROXY", "http://p:3128"),
            ],
            &["/my/ca.pem", debian],
            HostSettings {
                ca_bundle: Some("/my/ca.pem".into()),
                env: vec![("HTTPS_PROXY".into(), "http://p:3128".into())],
            },
        );
        check(
            &[
                ("SSL_CERT_FILE", "/gone.pem"),
                ("PIP_INDEX_URL", ""),
                ("PIP_FIND_LINKS", "/w"),
            ],
            &[debian],
            HostSettings {
                ca_bundle: Some(debian.into()),
                env: vec![],
            },
        );
    }

    #[test]
    fn build_container_spec() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // The client connects lazily: nothing here talks to an engine.
        let docker = Docker::connect_with_socket_defaults().unwrap();
        let mut env = DockerBuildEnv::new(docker, "img:3.11", runtime.handle().clone())
            .label("sebs-local.test", "1");
        env.user = "1000:100".into();
        env.host = HostSettings {
            ca_bundle: Some("/etc/ssl/certs/ca-certificates.crt".into()),
            env: vec![("HTTPS_PROXY".into(), "http://proxy:3128".into())],
        };
        let request = InstallRequest {
            benchmark: "110.template".into(),
            language: sebs_package::Language::Python,
            version: "3.11".into(),
            package_dir: "/cache/.build-x".into(),
            install: sebs_package::Install::Pip {
                requirements: "requirements.txt".into(),
                target: ".python_packages/lib/site-packages".into(),
            },
        };
        let spec = env.run_spec(&request);
        assert!(
            spec.name.starts_with("sebs-build-110.template-"),
            "{}",
            spec.name
        );
        assert_eq!(spec.image, "img:3.11");
        assert_eq!(spec.cmd, request.command());
        assert_eq!(spec.user.as_deref(), Some("1000:100"));
        assert_eq!(spec.working_dir.as_deref(), Some(BUILD_DIR));
        assert_eq!(spec.network, "bridge");
        assert_eq!(spec.pids_limit, Some(BUILD_PIDS_LIMIT));
        assert_eq!(spec.capabilities, Some(vec![]));
        assert_eq!(
            spec.mounts[0],
            BindMount {
                source: "/cache/.build-x".into(),
                target: BUILD_DIR.into(),
                read_only: false
            }
        );
        assert_eq!(spec.mounts[1].target, CA_BUNDLE_PATH);
        assert!(spec.mounts[1].read_only);
        let env_of = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        for var in CA_BUNDLE_VARS {
            assert_eq!(env_of(var), Some(CA_BUNDLE_PATH), "{var}");
        }
        assert_eq!(env_of("HOME"), Some("/tmp"));
        assert_eq!(env_of("PIP_NO_CACHE_DIR"), Some("1"));
        assert_eq!(env_of("HTTPS_PROXY"), Some("http://proxy:3128"));
        let labels: Vec<_> = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(labels, ["sebs-local.build=1", "sebs-local.test=1"]);

        // Without a CA bundle nothing is mounted or named.
        env.host = HostSettings::default();
        let spec = env.run_spec(&request);
        assert_eq!(spec.mounts.len(), 1);
        assert!(!spec.env.iter().any(|(k, _)| k == "PIP_CERT"));
    }
}

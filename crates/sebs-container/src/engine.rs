//! Connecting to the Docker engine: `DOCKER_HOST` or the local socket, plain or TLS TCP, SSH,
//! ping, API negotiation.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};

use crate::ssh::{SshDestination, SSH_CONFIG_QUERY};

/// The local engine's socket when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Seconds a single request to the engine may take before bollard gives up. Pulls and
/// imports stream for longer; that is fine, the timeout applies between chunks.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How long the first ping may take: an engine that is up answers in milliseconds.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a short control call (inspect, stop, remove, list) may go unanswered: an engine
/// that is up answers those within a second or two, even loaded; one that went away after
/// we connected (its host off the network) would otherwise hold each for
/// `REQUEST_TIMEOUT_SECS`. Image copies and builds, and log streams, keep bollard's bound.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);

/// `call`, a short control call to an engine, given [`CONTROL_TIMEOUT`] and `extra` (e.g. a
/// stop's grace) to answer; past that it fails as bollard's own timeout does.
pub(crate) async fn control<T>(
    extra: Duration,
    call: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, bollard::errors::Error> {
    tokio::time::timeout(CONTROL_TIMEOUT + extra, call)
        .await
        .unwrap_or(Err(bollard::errors::Error::RequestTimeoutError))
}

/// How long the first ping may take over SSH: `ssh`'s own connect timeout (10 s) first, so
/// that its reason is the one given, then its handshake and the far side's `docker`.
const SSH_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The query of a `tcp://` address naming the directory of its TLS files (`ca.pem`,
/// `cert.pem`, `key.pem`), for one engine: `tcp://HOST:PORT?cert-path=DIR`.
pub const CERT_PATH_QUERY: &str = "cert-path";

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    Unix(PathBuf),
    /// `host:port`, from a `tcp://` address.
    Tcp(String),
    /// `host:port` over TLS: the engine is verified against `ca.pem` of `certs` and is shown
    /// `cert.pem` and `key.pem` of `certs` (the docker CLI's `--tlsverify`).
    Tls {
        host: String,
        certs: PathBuf,
    },
    /// Reached by running `ssh` with `docker system dial-stdio` on the far side.
    Ssh(SshDestination),
}

impl EngineAddress {
    /// `host:port` of a TCP engine, TLS or not.
    pub fn tcp_host(&self) -> Option<&str> {
        match self {
            EngineAddress::Unix(_) | EngineAddress::Ssh(_) => None,
            EngineAddress::Tcp(host) | EngineAddress::Tls { host, .. } => Some(host),
        }
    }
}

/// It reads back as the same address ([`EngineAddress::parse`]), whatever the environment:
/// a TLS engine carries its certificates' directory, so `stop` finds it with the files
/// `start` used.
impl std::fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineAddress::Unix(path) => write!(f, "unix://{}", path.display()),
            EngineAddress::Tcp(host) => write!(f, "tcp://{host}"),
            EngineAddress::Tls { host, certs } => {
                write!(f, "tcp://{host}?{CERT_PATH_QUERY}={}", certs.display())
            }
            EngineAddress::Ssh(destination) => destination.fmt(f),
        }
    }
}

/// Whether and how a `tcp://` engine without its own `cert-path` speaks TLS, read as the
/// docker CLI reads it: `DOCKER_TLS_VERIFY` set to anything but the empty string turns it
/// on (it cannot turn it off), with the files of `DOCKER_CERT_PATH`, else `~/.docker`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsDefaults {
    /// The certificates' directory when TLS is on.
    pub certs: Option<PathBuf>,
}

impl TlsDefaults {
    /// From `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` and `HOME`.
    pub fn from_env() -> TlsDefaults {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        TlsDefaults::from_values(
            var("DOCKER_TLS_VERIFY").is_some(),
            var("DOCKER_CERT_PATH").map(PathBuf::from),
            var("HOME").map(PathBuf::from),
        )
    }

    /// From the values of those variables (`verify`: `DOCKER_TLS_VERIFY` is set, not empty).
    pub fn from_values(
        verify: bool,
        cert_path: Option<PathBuf>,
        home: Option<PathBuf>,
    ) -> TlsDefaults {
        TlsDefaults {
            certs: verify
                .then(|| cert_path.unwrap_or_else(|| home.unwrap_or_default().join(".docker"))),
        }
    }
}

/// The TLS files of a directory, as the docker CLI names them.
pub fn tls_files(certs: &Path) -> [(&'static str, PathBuf); 3] {
    [
        ("CA certificate", certs.join("ca.pem")),
        ("client certificate", certs.join("cert.pem")),
        ("client key", certs.join("key.pem")),
    ]
}

/// No engine to talk to, or one we cannot talk with.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "connect to docker at {host:?}: only unix://, tcp:// and ssh:// addresses are \
         supported (TLS: tcp:// with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, or \
         tcp://HOST:PORT?{CERT_PATH_QUERY}=DIR; SSH: \
         ssh://[USER@]HOST[:PORT][?{SSH_CONFIG_QUERY}=FILE])"
    )]
    UnsupportedHost { host: String },
    #[error("read the ssh configuration {path} for the docker engine at {address}")]
    SshConfig {
        address: EngineAddress,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "run ssh for the docker engine at {address}: there is no ssh program in PATH \
         ({path}); install an OpenSSH client (Debian: `apt-get install openssh-client`)"
    )]
    NoSsh {
        address: EngineAddress,
        path: String,
    },
    #[error(
        "read the {what} {path} for the docker engine at {address} (TLS files are ca.pem, \
         cert.pem and key.pem of DOCKER_CERT_PATH or of the address's {CERT_PATH_QUERY})"
    )]
    TlsFile {
        address: EngineAddress,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reach a docker engine at {address}: {reason}; {hint}")]
    NoEngine {
        address: EngineAddress,
        reason: String,
        hint: String,
    },
    #[error("agree on an API version with the docker engine at {address}")]
    Negotiate {
        address: EngineAddress,
        source: bollard::errors::Error,
    },
    #[error("ask the docker engine at {address} who it is")]
    Info {
        address: EngineAddress,
        source: bollard::errors::Error,
    },
}

impl ConnectError {
    /// Whether the user's value is at fault (an address we do not take, a TLS file or ssh
    /// configuration that is not there), not the engine or this host (no `ssh` program).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ConnectError::UnsupportedHost { .. }
                | ConnectError::TlsFile { .. }
                | ConnectError::SshConfig { .. }
        )
    }
}

/// The environment variable naming the engines functions are placed on, comma-separated.
pub const ENGINES_ENV: &str = "SEBS_ENGINES";

/// The engines functions are placed on: those given (`--engine`, in order, repeats
/// dropped), else those of `SEBS_ENGINES` (comma-separated), else the one of `DOCKER_HOST`
/// or the local socket; `tcp://` ones without their own `cert-path` speak TLS as `tls` says.
pub fn engine_addresses(
    given: &[String],
    engines_env: Option<&str>,
    docker_host: Option<&str>,
    tls: &TlsDefaults,
) -> Result<Vec<EngineAddress>, ConnectError> {
    let listed: Vec<&str> = if given.is_empty() {
        engines_env
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        given.iter().map(String::as_str).collect()
    };
    if listed.is_empty() {
        return Ok(vec![EngineAddress::parse(docker_host, tls)?]);
    }
    let mut addresses: Vec<EngineAddress> = Vec::new();
    for url in listed {
        if url.trim().is_empty() {
            return Err(ConnectError::UnsupportedHost {
                host: url.to_string(),
            });
        }
        let address = EngineAddress::parse(Some(url), tls)?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

/// An engine functions may be placed on.
#[derive(Debug, Clone)]
pub struct Engine {
    pub address: EngineAddress,
    pub docker: Docker,
    /// Whether it is the engine of this host's local socket (same ID and data root), which
    /// sees this host's files; any other, a `tcp://` one on this host included, is remote.
    pub local: bool,
    /// The address of the engine's host, where a remote engine's functions are published
    /// (`None` for a Unix socket).
    pub host_ip: Option<IpAddr>,
}

/// Connects to `address` and finds out whether it is this host's local engine (see
/// [`Engine::local`]) by comparing what it says it is with what the local socket's says.
pub async fn connect_engine(address: &EngineAddress) -> Result<Engine, ConnectError> {
    let docker = connect_to(address).await?;
    let local_socket = EngineAddress::Unix(PathBuf::from(DEFAULT_SOCKET));
    let local = if *address == local_socket {
        true
    } else if Path::new(DEFAULT_SOCKET).exists() {
        match connect_to(&local_socket).await {
            Ok(here) => info(&here, &local_socket).await? == info(&docker, address).await?,
            Err(_) => false,
        }
    } else {
        false
    };
    let host_ip = match address.tcp_host() {
        None => match address {
            EngineAddress::Ssh(destination) => Some(destination.host_address().await.map_err(
                |e| ConnectError::NoEngine {
                    address: address.clone(),
                    reason: chain(&e),
                    hint: hint(address),
                },
            )?),
            _ => None,
        },
        Some(host) => {
            let resolved =
                tokio::net::lookup_host(host)
                    .await
                    .map_err(|e| ConnectError::NoEngine {
                        address: address.clone(),
                        reason: format!("its host name does not resolve: {e}"),
                        hint: hint(address),
                    })?;
            let all: Vec<_> = resolved.map(|a| a.ip()).collect();
            all.iter().find(|ip| ip.is_ipv4()).or(all.first()).copied()
        }
    };
    Ok(Engine {
        address: address.clone(),
        docker,
        local,
        host_ip,
    })
}

/// Who an engine is, as it says itself: two engines of one host share nothing when these
/// differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// The engine's ID (from its own identity key).
    pub id: String,
    /// The host name of the machine, or namespace, it runs on.
    pub name: String,
    /// Where it keeps images and containers.
    pub root_dir: String,
}

/// Asks the engine at `address`, to which `docker` is connected, who it is.
pub async fn info(docker: &Docker, address: &EngineAddress) -> Result<EngineInfo, ConnectError> {
    let info = docker.info().await.map_err(|source| ConnectError::Info {
        address: address.clone(),
        source,
    })?;
    Ok(EngineInfo {
        id: info.id.unwrap_or_default(),
        name: info.name.unwrap_or_default(),
        root_dir: info.docker_root_dir.unwrap_or_default(),
    })
}

/// `path` from an engine's address, made absolute against the current directory: the address
/// is recorded in out.json, and `stop` or `logs` may run from another directory.
pub(crate) fn absolute(path: &str) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path))
}

/// Reads a `DOCKER_HOST` value, with TLS as the environment says ([`TlsDefaults::from_env`]);
/// `None` or empty means the local socket.
pub fn engine_address(docker_host: Option<&str>) -> Result<EngineAddress, ConnectError> {
    EngineAddress::parse(docker_host, &TlsDefaults::from_env())
}

impl EngineAddress {
    /// Reads an engine's URL: `unix:///PATH`, `tcp://HOST:PORT` (TLS when `tls` says so),
    /// `tcp://HOST:PORT?cert-path=DIR` (TLS with DIR's files) or
    /// `ssh://[USER@]HOST[:PORT][?ssh-config=FILE]`; `None` or empty means the local
    /// socket. Like the docker CLI, `https://` and `http://` are refused.
    pub fn parse(url: Option<&str>, tls: &TlsDefaults) -> Result<EngineAddress, ConnectError> {
        let host = match url.map(str::trim) {
            None | Some("") => return Ok(EngineAddress::Unix(PathBuf::from(DEFAULT_SOCKET))),
            Some(h) => h,
        };
        let unsupported = || ConnectError::UnsupportedHost {
            host: host.to_string(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if !path.is_empty() {
                return Ok(EngineAddress::Unix(PathBuf::from(path)));
            }
        } else if let Some(rest) = host.strip_prefix("ssh://") {
            return SshDestination::parse(rest)
                .map(EngineAddress::Ssh)
                .ok_or_else(unsupported);
        } else if let Some(rest) = host.strip_prefix("tcp://") {
            let (rest, query) = match rest.split_once('?') {
                Some((rest, query)) => (rest, Some(query)),
                None => (rest, None),
            };
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                return Err(unsupported());
            }
            let certs = match query {
                None => tls.certs.clone(),
                Some(query) => match query.split_once('=') {
                    Some((CERT_PATH_QUERY, dir)) if !dir.is_empty() => Some(absolute(dir)),
                    _ => return Err(unsupported()),
                },
            };
            return Ok(match certs {
                None => EngineAddress::Tcp(rest.to_string()),
                Some(certs) => EngineAddress::Tls {
                    host: rest.to_string(),
                    certs,
                },
            });
        }
        Err(unsupported())
    }

    /// Reads back an address as [`Display`](std::fmt::Display) wrote it (e.g. in `out.json`),
    /// whatever `DOCKER_TLS_VERIFY` says now.
    pub fn parse_recorded(url: &str) -> Result<EngineAddress, ConnectError> {
        EngineAddress::parse(Some(url), &TlsDefaults::default())
    }
}

/// Connects to the engine named by `DOCKER_HOST`, or the local socket, pings it and
/// negotiates the API version (an older engine, e.g. API 1.41, refuses newer requests).
pub async fn connect() -> Result<Docker, ConnectError> {
    let host = std::env::var("DOCKER_HOST").ok();
    connect_to(&engine_address(host.as_deref())?).await
}

/// Like [`connect`], to a given address.
pub async fn connect_to(address: &EngineAddress) -> Result<Docker, ConnectError> {
    let no_engine = |reason: String| ConnectError::NoEngine {
        address: address.clone(),
        reason,
        hint: hint(address),
    };
    let docker = match address {
        EngineAddress::Unix(path) => {
            if !Path::new(path).exists() {
                return Err(no_engine(format!(
                    "there is no socket at {}",
                    path.display()
                )));
            }
            Docker::connect_with_unix(
                &path.display().to_string(),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            )
        }
        EngineAddress::Tcp(host) => Docker::connect_with_http(
            &format!("tcp://{host}"),
            REQUEST_TIMEOUT_SECS,
            API_DEFAULT_VERSION,
        ),
        EngineAddress::Tls { host, certs } => {
            // bollard reads the client's certificate and key only during the handshake
            // and goes on without them when they are missing: the engine's refusal would
            // then not say which file. Each is read here first.
            let [ca, cert, key] = tls_files(certs);
            for (what, path) in [&ca, &cert, &key] {
                std::fs::File::open(path).map_err(|source| ConnectError::TlsFile {
                    address: address.clone(),
                    what,
                    path: path.clone(),
                    source,
                })?;
            }
            Docker::connect_with_ssl(
                &format!("tcp://{host}"),
                &key.1,
                &cert.1,
                &ca.1,
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            )
        }
        EngineAddress::Ssh(destination) => {
            // `ssh -F` of a file that is not there, or no ssh at all, would only show as
            // each connection's failure: both are named here first.
            if let Some(config) = &destination.config {
                std::fs::File::open(config).map_err(|source| ConnectError::SshConfig {
                    address: address.clone(),
                    path: config.clone(),
                    source,
                })?;
            }
            if crate::ssh::find_ssh().is_none() {
                return Err(ConnectError::NoSsh {
                    address: address.clone(),
                    path: std::env::var("PATH").unwrap_or_default(),
                });
            }
            crate::ssh::docker(destination, REQUEST_TIMEOUT_SECS)
        }
    }
    .map_err(|e| no_engine(chain(&e)))?;
    let ping_timeout = match address {
        EngineAddress::Ssh(_) => SSH_PING_TIMEOUT,
        _ => PING_TIMEOUT,
    };
    match tokio::time::timeout(ping_timeout, docker.ping()).await {
        Err(_) => {
            return Err(no_engine(format!(
                "no answer to ping within {ping_timeout:?}"
            )))
        }
        Ok(Err(e)) => return Err(no_engine(chain(&e))),
        Ok(Ok(_)) => {}
    }
    docker
        .negotiate_version()
        .await
        .map_err(|source| ConnectError::Negotiate {
            address: address.clone(),
            source,
        })
}

/// An error with its causes: a TLS handshake's reason (an unknown issuer, the engine's
/// alert) is a cause of bollard's error, not in its message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn hint(address: &EngineAddress) -> String {
    match address {
        EngineAddress::Unix(_) => "start the engine (`sudo systemctl start docker`, or \
            `sudo dockerd &` where there is no systemd), check that you may use its socket \
            (`sudo usermod -aG docker $USER`), or point DOCKER_HOST at a running engine"
            .to_string(),
        // The address may come from DOCKER_HOST, --engine or SEBS_ENGINES.
        EngineAddress::Tcp(host) => format!(
            "check that a Docker engine is running and listening with plain TCP at {host} \
             (one that takes TLS needs DOCKER_TLS_VERIFY or ?{CERT_PATH_QUERY}=DIR)"
        ),
        EngineAddress::Tls { certs, .. } => {
            let [ca, cert, _] = tls_files(certs);
            format!(
                "check that the engine is running and listening there with TLS, that {} \
                 is the CA that signed the engine's certificate (whose names must include \
                 the address's host), and that the engine trusts the issuer of {}",
                ca.1.display(),
                cert.1.display()
            )
        }
        EngineAddress::Ssh(destination) => format!(
            "check that `ssh -o BatchMode=yes{}{} {} docker version` answers without a \
             prompt (a key the host takes, its host key already known) from the engine \
             there",
            match &destination.config {
                Some(c) => format!(" -F {}", c.display()),
                None => String::new(),
            },
            match destination.port {
                Some(p) => format!(" -p {p}"),
                None => String::new(),
            },
            destination.login()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(docker_host: Option<&str>, expect: Result<EngineAddress, &str>) {
        let got =
            EngineAddress::parse(docker_host, &TlsDefaults::default()).map_err(|e| e.to_string());
        match (got, expect) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{docker_host:?}"),
            (Err(a), Err(b)) => assert!(a.contains(b), "{docker_host:?}: {a}"),
            (got, expect) => panic!("{docker_host:?}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn docker_host_values() {
        let unix = |p: &str| Ok(EngineAddress::Unix(PathBuf::from(p)));
        check(None, unix("/var/run/docker.sock"));
        check(Some(""), unix("/var/run/docker.sock"));
        check(
            Some("unix:///run/user/1000/docker.sock"),
            unix("/run/user/1000/docker.sock"),
        );
        check(
            Some("tcp://127.0.0.1:2375"),
            Ok(EngineAddress::Tcp("127.0.0.1:2375".into())),
        );
        check(
            Some("tcp://dockerhost:2375/"),
            Ok(EngineAddress::Tcp("dockerhost:2375".into())),
        );
        check(
            Some("ssh://me@host:2222?ssh-config=/c"),
            Ok(EngineAddress::Ssh(SshDestination {
                user: Some("me".into()),
                host: "host".into(),
                port: Some(2222),
                config: Some("/c".into()),
            })),
        );
        check(Some("ssh://-oProxyCommand=x"), Err("ssh://[USER@]HOST"));
        check(Some("unix://"), Err("only unix://, tcp:// and ssh://"));
        // As the docker CLI: https:// is not an engine address; TLS is tcp:// with certs.
        check(Some("https://h:2376"), Err("DOCKER_TLS_VERIFY"));
        let tls = |host: &str, certs: &str| {
            Ok(EngineAddress::Tls {
                host: host.into(),
                certs: certs.into(),
            })
        };
        check(Some("tcp://h:2376?cert-path=/c/h"), tls("h:2376", "/c/h"));
        check(Some("tcp://h:2376/?cert-path=/c"), tls("h:2376", "/c"));
        // Recorded in out.json, read by stop from anywhere: relative paths are made absolute.
        let here = std::env::current_dir().unwrap();
        let in_here = |p: &str| here.join(p).to_string_lossy().into_owned();
        check(
            Some("tcp://h:2376?cert-path=certs/h"),
            tls("h:2376", &in_here("certs/h")),
        );
        check(
            Some("ssh://h?ssh-config=ssh/config"),
            Ok(EngineAddress::Ssh(SshDestination {
                user: None,
                host: "h".into(),
                port: None,
                config: Some(in_here("ssh/config").into()),
            })),
        );
        check(
            Some("tcp://h:2376?cert-path="),
            Err("\"tcp://h:2376?cert-path=\""),
        );
        check(Some("tcp://h:2376?certs=/c"), Err("cert-path=DIR"));
    }

    #[test]
    fn tls_as_the_docker_cli_reads_the_environment() {
        let check = |verify, cert_path: Option<&str>, url: &str, expect: &str| {
            let tls = TlsDefaults::from_values(
                verify,
                cert_path.map(PathBuf::from),
                Some("/home/u".into()),
            );
            let got = EngineAddress::parse(Some(url), &tls).unwrap();
            assert_eq!(got.to_string(), expect, "{verify} {cert_path:?} {url}");
            // What is written reads back as the same engine, whatever the environment.
            assert_eq!(EngineAddress::parse_recorded(expect).unwrap(), got);
        };
        check(false, Some("/c"), "tcp://h:2375", "tcp://h:2375");
        check(
            true,
            Some("/c"),
            "tcp://h:2376",
            "tcp://h:2376?cert-path=/c",
        );
        check(
            true,
            None,
            "tcp://h:2376",
            "tcp://h:2376?cert-path=/home/u/.docker",
        );
        // An engine's own directory wins; unix sockets have no TLS.
        check(
            true,
            Some("/c"),
            "tcp://h:1?cert-path=/d",
            "tcp://h:1?cert-path=/d",
        );
        check(true, Some("/c"), "unix:///s", "unix:///s");
    }

    #[test]
    fn engines_from_flags_then_sebs_engines_then_docker_host() {
        let check = |given: &[&str],
                     env: Option<&str>,
                     host: Option<&str>,
                     expect: Result<&[&str], &str>| {
            let given: Vec<String> = given.iter().map(|s| s.to_string()).collect();
            let got = engine_addresses(&given, env, host, &TlsDefaults::default())
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                .map_err(|e| e.to_string());
            match (got, expect) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{given:?} {env:?} {host:?}"),
                (Err(a), Err(b)) => assert!(a.contains(b), "{a}"),
                (got, expect) => panic!("{given:?} {env:?}: got {got:?}, expected {expect:?}"),
            }
        };
        let local = "unix:///var/run/docker.sock";
        check(&[], None, None, Ok(&[local]));
        check(&[], Some(""), Some("tcp://h:2375"), Ok(&["tcp://h:2375"]));
        check(
            &[],
            Some(" tcp://a:1 , ,tcp://b:2"),
            Some("tcp://h:2375"),
            Ok(&["tcp://a:1", "tcp://b:2"]),
        );
        check(
            &[local, "tcp://a:1", local],
            Some("tcp://b:2"),
            None,
            Ok(&[local, "tcp://a:1"]),
        );
        check(&["tcp://a:1/"], None, None, Ok(&["tcp://a:1"]));
        check(
            &["http://a:1"],
            None,
            None,
            Err("only unix://, tcp:// and ssh://"),
        );
        check(&[""], None, None, Err("only unix://, tcp:// and ssh://"));
        check(&[], Some("tcp://a:1,ftp://b"), None, Err("\"ftp://b\""));
    }

    #[tokio::test]
    async fn a_missing_socket_names_it_and_says_how_to_start_an_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let err = connect_to(&EngineAddress::Unix(path.clone()))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("systemctl start docker"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_tls_file_is_named_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        std::fs::write(dir.path().join("key.pem"), "").unwrap();
        let address = EngineAddress::Tls {
            host: "127.0.0.1:1".into(),
            certs: dir.path().into(),
        };
        let err = connect_to(&address).await.unwrap_err();
        assert!(err.is_bad_input());
        let text = err.to_string();
        let cert = dir.path().join("cert.pem");
        assert!(
            text.starts_with(&format!(
                "read the client certificate {} for the docker engine at {address}",
                cert.display()
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_ssh_configuration_is_named_before_ssh_runs() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        let url = format!("ssh://me@127.0.0.1:1?ssh-config={}", config.display());
        let address = EngineAddress::parse_recorded(&url).unwrap();
        assert_eq!(address.to_string(), url);
        let err = connect_to(&address).await.unwrap_err();
        assert!(err.is_bad_input());
        let text = err.to_string();
        assert_eq!(
            text,
            format!(
                "read the ssh configuration {} for the docker engine at {url}",
                config.display()
            )
        );
    }

    #[tokio::test]
    async fn a_silent_tcp_engine_is_named_with_a_hint() {
        // Port 1 on loopback: nothing listens there, the connection is refused.
        let address = engine_address(Some("tcp://127.0.0.1:1")).unwrap();
        let text = connect_to(&address).await.unwrap_err().to_string();
        assert!(
            text.starts_with("reach a docker engine at tcp://127.0.0.1:1"),
            "{text}"
        );
        // The hint names the address, which may have come from --engine, not DOCKER_HOST.
        assert!(
            text.contains("listening with plain TCP at 127.0.0.1:1"),
            "{text}"
        );
    }
}

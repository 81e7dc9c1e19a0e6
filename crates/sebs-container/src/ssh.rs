//! `ssh://` engines, as the docker CLI reaches them: each connection is an `ssh` process
//! running `docker system dial-stdio` on the far side, the Docker API spoken over its stdin
//! and stdout.
//!
//! The `ssh` command is run rather than an SSH library so that the user's `~/.ssh/config`,
//! agent and keys work unchanged; it runs with `BatchMode=yes` (no password or host-key
//! prompt can hang us) and `ConnectTimeout=10`, and `-F FILE` when the address carries
//! `?ssh-config=FILE`. hyper pools the connections (one process each, killed when its
//! connection is dropped). A connection whose `ssh` ended before answering fails with what
//! `ssh` said on stderr ([`SshError::Exited`]).

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker, API_DEFAULT_VERSION};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The query of an `ssh://` address naming the `ssh -F` file of one engine:
/// `ssh://[USER@]HOST[:PORT]?ssh-config=FILE`.
pub const SSH_CONFIG_QUERY: &str = "ssh-config";

/// How long `ssh` may take to open its TCP connection (`ConnectTimeout`).
const CONNECT_TIMEOUT_SECS: u64 = 10;

/// How long an idle connection (an `ssh` process) is kept for the next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of `ssh`'s stderr an error quotes (its end, where the reason is).
const STDERR_LINES: usize = 10;

/// An engine reached by `ssh`: `ssh://[USER@]HOST[:PORT][?ssh-config=FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshDestination {
    pub user: Option<String>,
    /// A host name, an address, or a `Host` of the ssh configuration.
    pub host: String,
    pub port: Option<u16>,
    /// The file given to `ssh -F` (instead of `~/.ssh/config`).
    pub config: Option<PathBuf>,
}

/// A connection to the engine could not be made or kept.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "speak with the engine through `{command}`, which ended ({status}): {}",
        if stderr.is_empty() { "it wrote nothing on stderr" } else { stderr }
    )]
    Exited {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("read `{command}`'s configuration: {stderr}")]
    Config { command: String, stderr: String },
    #[error("find the address of {host}, the ssh host name of {login}")]
    Resolve {
        host: String,
        login: String,
        #[source]
        source: io::Error,
    },
}

impl SshDestination {
    /// Reads what follows `ssh://`; `None` when it is not `[USER@]HOST[:PORT]`, with at most
    /// a final `/` and `?ssh-config=FILE`. A user or host starting with `-` is refused
    /// (`ssh` would take it for an option).
    pub fn parse(rest: &str) -> Option<SshDestination> {
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', ' ', '\t']) {
            return None;
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']')?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':')?)),
            }
        } else {
            match hostport.split_once(':') {
                Some((_, port)) if port.contains(':') => return None,
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0)?),
        };
        let fit = |s: &str| !s.is_empty() && !s.starts_with('-');
        if !fit(host) || !user.is_none_or(fit) {
            return None;
        }
        let config = match query {
            None => None,
            Some(query) => match query.split_once('=') {
                Some((SSH_CONFIG_QUERY, file)) if !file.is_empty() => {
                    Some(crate::engine::absolute(file))
                }
                _ => return None,
            },
        };
        Some(SshDestination {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            config,
        })
    }

    /// `[USER@]HOST`, as `ssh` takes it.
    pub fn login(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// `ssh`'s options and destination, before the remote command: `BatchMode` so that no
    /// prompt waits for a terminal, `-T` (no terminal), `-F`, `-p`, then `--` so that the
    /// destination is never read as an option.
    fn ssh_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"),
            "-T",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if let Some(config) = &self.config {
            args.push("-F".into());
            args.push(config.into());
        }
        if let Some(port) = self.port {
            args.push("-p".into());
            args.push(port.to_string().into());
        }
        args.push("--".into());
        args.push(self.login().into());
        args
    }

    /// The command of one connection, as a user would type it (for errors).
    fn dial_command(&self) -> String {
        shown(&self.dial_args())
    }

    fn dial_args(&self) -> Vec<OsString> {
        let mut args = self.ssh_args();
        args.extend(["docker", "system", "dial-stdio"].map(OsString::from));
        args
    }

    /// Starts one connection: `ssh … docker system dial-stdio`.
    fn dial(&self) -> Result<SshStream, SshError> {
        let command = self.dial_command();
        let mut child = Command::new("ssh")
            .args(self.dial_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SshError::Spawn {
                command: command.clone(),
                source,
            })?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SshError::Spawn {
                command,
                source: io::Error::other("its standard streams were not piped"),
            });
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shown = command.clone();
        // Waits for the process and keeps its stderr for the error; when the connection is
        // dropped first, `stop` is dropped and the process killed (kill_on_drop).
        let exit = tokio::spawn(async move {
            let mut said = Vec::new();
            let ended = async {
                let _ = stderr.read_to_end(&mut said).await;
                child.wait().await
            };
            tokio::select! {
                status = ended => Some(match status {
                    Ok(status) => SshError::Exited {
                        command: shown,
                        status,
                        stderr: crate::text::last_lines(
                            String::from_utf8_lossy(&said).trim(),
                            STDERR_LINES,
                        ),
                    },
                    Err(source) => SshError::Spawn { command: shown, source },
                }),
                _ = stopped => None,
            }
        });
        Ok(SshStream {
            stdin,
            stdout,
            exit: Some(exit),
            _stop: stop,
            answered: false,
        })
    }

    /// The address `ssh` connects to: the `hostname` of `ssh -G` (the configuration's, for
    /// a `Host` alias), resolved, IPv4 first.
    pub async fn host_address(&self) -> Result<IpAddr, SshError> {
        let mut args = self.ssh_args();
        args.insert(0, "-G".into());
        let command = shown(&args);
        let out = Command::new("ssh")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| SshError::Spawn {
                command: command.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hostname = text
            .lines()
            .find_map(|l| l.strip_prefix("hostname "))
            .map(str::trim)
            .filter(|h| out.status.success() && !h.is_empty());
        let Some(hostname) = hostname else {
            return Err(SshError::Config {
                command,
                stderr: crate::text::last_lines(
                    String::from_utf8_lossy(&out.stderr).trim(),
                    STDERR_LINES,
                ),
            });
        };
        let resolve = |source| SshError::Resolve {
            host: hostname.to_string(),
            login: self.login(),
            source,
        };
        let all: Vec<IpAddr> = tokio::net::lookup_host((hostname, 0))
            .await
            .map_err(resolve)?
            .map(|a| a.ip())
            .collect();
        all.iter()
            .find(|ip| ip.is_ipv4())
            .or(all.first())
            .copied()
            .ok_or_else(|| resolve(io::Error::other("no address")))
    }
}

/// It reads back as the same destination ([`SshDestination::parse`] after `ssh://`).
impl std::fmt::Display for SshDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ssh://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(config) = &self.config {
            write!(f, "?{SSH_CONFIG_QUERY}={}", config.display())?;
        }
        Ok(())
    }
}

fn shown(args: &[OsString]) -> String {
    let mut text = String::from("ssh");
    for a in args {
        text.push(' ');
        text.push_str(&a.to_string_lossy());
    }
    text
}

/// The `ssh` program on `PATH`, if any.
pub fn find_ssh() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ssh"))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A client of the engine at `destination`, each of whose connections is an `ssh` process;
/// nothing is started until the first request.
pub fn docker(
    destination: &SshDestination,
    timeout_secs: u64,
) -> Result<Docker, bollard::errors::Error> {
    let connector = Dialer(Arc::new(destination.clone()));
    let client = Arc::new(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector),
    );
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client
                    .request(request)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        // The host is not used to connect; the engine reads it as the Host header.
        Some("http://docker"),
        timeout_secs,
        API_DEFAULT_VERSION,
    )
}

/// hyper's connector: each new connection runs `ssh`.
#[derive(Clone)]
struct Dialer(Arc<SshDestination>);

impl tower_service::Service<hyper::Uri> for Dialer {
    type Response = TokioIo<SshStream>;
    type Error = io::Error;
    type Future = std::future::Ready<Result<TokioIo<SshStream>, io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        std::future::ready(self.0.dial().map(TokioIo::new).map_err(io::Error::other))
    }
}

/// One connection: the stdin and stdout of an `ssh` process.
struct SshStream {
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// The process's end, with what it said ([`SshError::Exited`]); `None` once taken.
    exit: Option<JoinHandle<Option<SshError>>>,
    /// Dropped with the connection, which kills the process.
    _stop: tokio::sync::oneshot::Sender<()>,
    /// Whether the engine has sent anything: an end before that is `ssh` failing.
    answered: bool,
}

impl SshStream {
    /// Once the process has ended: why, as an error in place of `fallback`.
    fn poll_ended(&mut self, cx: &mut Context<'_>, fallback: io::Error) -> Poll<io::Error> {
        let Some(exit) = self.exit.as_mut() else {
            return Poll::Ready(fallback);
        };
        match Pin::new(exit).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(ended) => {
                self.exit = None;
                Poll::Ready(match ended {
                    Ok(Some(e)) => io::Error::new(fallback.kind(), e),
                    _ => fallback,
                })
            }
        }
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stdout).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.answered = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) if !this.answered && buf.remaining() > 0 => {
                let eof = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "ssh ended before the engine answered",
                );
                this.poll_ended(cx, eof).map(Err)
            }
            other => other,
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stdin).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => this.poll_ended(cx, e).map(Err),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stdin).poll_flush(cx) {
            Poll::Ready(Err(e)) => this.poll_ended(cx, e).map(Err),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

impl Connection for SshStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rest: &str, expect: Option<(Option<&str>, &str, Option<u16>, Option<&str>)>) {
        let got = SshDestination::parse(rest);
        let expect = expect.map(|(user, host, port, config)| SshDestination {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            config: config.map(PathBuf::from),
        });
        assert_eq!(got, expect, "{rest}");
        if let Some(d) = got {
            // What is written reads back as the same destination.
            let text = d.to_string();
            let again = SshDestination::parse(text.strip_prefix("ssh://").unwrap());
            assert_eq!(again, Some(d), "{text}");
        }
    }

    #[test]
    fn destinations() {
        check("h", Some((None, "h", None, None)));
        check("me@h", Some((Some("me"), "h", None, None)));
        check("me@h:2222/", Some((Some("me"), "h", Some(2222), None)));
        check(
            "h?ssh-config=/etc/x y",
            Some((None, "h", None, Some("/etc/x y"))),
        );
        check("[::1]:22", Some((None, "::1", Some(22), None)));
        check("me@[fe80::1]", Some((Some("me"), "fe80::1", None, None)));
        check(
            "a.b@h.example",
            Some((Some("a.b"), "h.example", None, None)),
        );
        for bad in [
            "",
            "me@",
            "@h",
            "h:",
            "h:0",
            "h:65536",
            "h:x",
            "::1",
            "-oProxyCommand=x",
            "-x@h",
            "h/path",
            "h?config=/x",
            "h?ssh-config=",
            "[::1]x",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn ssh_runs_without_prompts_and_never_takes_the_destination_for_an_option() {
        let d = SshDestination::parse("me@h:2222?ssh-config=/c").unwrap();
        assert_eq!(
            d.dial_command(),
            "ssh -o BatchMode=yes -o ConnectTimeout=10 -T -F /c -p 2222 -- me@h \
             docker system dial-stdio"
        );
        let d = SshDestination::parse("h").unwrap();
        assert_eq!(
            d.dial_command(),
            "ssh -o BatchMode=yes -o ConnectTimeout=10 -T -- h docker system dial-stdio"
        );
    }
}

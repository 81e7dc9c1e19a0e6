//! The `sebs-store` command line: which store to serve, where, and with which data.
//!
//! Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 2 for bad usage (an unknown flag,
//! a malformed address, S3 keys missing from the environment), 1 when the store cannot
//! start (a data directory it cannot write, a port in use) or fails while serving.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::{dynamodb, relay, s3};

/// The environment variable holding the S3 access key.
pub const ACCESS_KEY_ENV: &str = "SEBS_STORE_ACCESS_KEY";
/// The environment variable holding the S3 secret key.
pub const SECRET_KEY_ENV: &str = "SEBS_STORE_SECRET_KEY";

const AFTER_HELP: &str = "\
Logs go to stderr (RUST_LOG sets the filter). Exit codes: 0 stopped by SIGTERM or SIGINT
after finishing requests in flight, 1 could not start or failed, 2 bad usage.";

/// Serves one of sebs-local's embedded stores, or relays to one, until SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "sebs-store", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Object storage with the S3 API; clients sign with the keys in SEBS_STORE_ACCESS_KEY
    /// and SEBS_STORE_SECRET_KEY, which must be set. GET /minio/health/live answers
    /// without a signature.
    S3(Where),
    /// NoSQL with the DynamoDB API; any credentials and region are accepted. GET / answers
    /// as a health check.
    Dynamodb(Where),
    /// Forwards every TCP connection on --listen to --to: how functions on another engine
    /// reach a store that listens on this host's container network.
    Relay(Relay),
}

#[derive(Debug, Args)]
pub struct Relay {
    /// Address to listen on, e.g. 10.0.0.1:9000.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddr,
    /// Address to forward each connection to.
    #[arg(long, value_name = "IP:PORT")]
    pub to: SocketAddr,
}

#[derive(Debug, Args)]
pub struct Where {
    /// Address to listen on, e.g. 127.0.0.1:9011 (port 0: a free port, named in the log).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddr,
    /// Directory of the store's data, created if needed; a restart on the same directory
    /// finds everything again.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

/// Runs the command line `args` with the environment `env` and returns the exit code.
pub fn main(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints usage errors to stderr and --help/--version to stdout.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    init_logging(&env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sebs-store: failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = match cli.command {
        Command::S3(at) => {
            let keys = match keys(&env) {
                Ok(keys) => keys,
                Err(message) => {
                    eprintln!("sebs-store s3: {message}");
                    return ExitCode::from(2);
                }
            };
            runtime
                .block_on(s3::run(s3::Config {
                    listen: at.listen,
                    data: at.data,
                    keys,
                }))
                .map_err(|e| crate::error_chain(&e))
        }
        Command::Dynamodb(at) => runtime
            .block_on(dynamodb::run(dynamodb::Config {
                listen: at.listen,
                data: at.data,
            }))
            .map_err(|e| crate::error_chain(&e)),
        Command::Relay(r) => runtime
            .block_on(relay::run(relay::Config {
                listen: r.listen,
                to: r.to,
            }))
            .map_err(|e| crate::error_chain(&e)),
    };
    // Connections past their grace period are abandoned, not waited for.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sebs-store: failed to {message}");
            ExitCode::from(1)
        }
    }
}

/// The S3 keys from the environment; both must be set and non-empty.
fn keys(env: &impl Fn(&str) -> Option<String>) -> Result<s3::Keys, String> {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    match (get(ACCESS_KEY_ENV), get(SECRET_KEY_ENV)) {
        (Some(access_key), Some(secret_key)) => Ok(s3::Keys {
            access_key,
            secret_key,
        }),
        _ => Err(format!(
            "set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} to the keys clients sign with; \
             the store does not serve S3 without them"
        )),
    }
}

fn init_logging(env: &impl Fn(&str) -> Option<String>) {
    use tracing_subscriber::EnvFilter;
    // s3s logs every refused request (a missing key, a bucket that exists) as an error;
    // ours say what matters, so its own are off unless asked for.
    let filter = env("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,s3s=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sebs-store").chain(args.iter().copied()))
    }

    #[test]
    fn command_lines() {
        let cli = parse(&["s3", "--listen", "127.0.0.1:0", "--data", "/d"]).unwrap();
        assert!(
            matches!(&cli.command, Command::S3(w) if w.listen.port() == 0 && w.data == Path::new("/d"))
        );
        let cli = parse(&["dynamodb", "--listen", "[::1]:8000", "--data", "d"]).unwrap();
        assert!(matches!(&cli.command, Command::Dynamodb(w) if w.listen.port() == 8000));
        let cli = parse(&[
            "relay",
            "--listen",
            "10.0.0.1:9000",
            "--to",
            "172.17.0.2:9000",
        ])
        .unwrap();
        assert!(
            matches!(&cli.command, Command::Relay(r) if r.listen.port() == 9000 && r.to.ip().to_string() == "172.17.0.2")
        );
        for bad in [
            &["s3", "--listen", "localhost:9000", "--data", "/d"][..],
            &["s3", "--listen", "127.0.0.1", "--data", "/d"],
            &["s3", "--data", "/d"],
            &["s3", "--listen", "127.0.0.1:0"],
            &["s3", "--listen", "127.0.0.1:0", "--data", "/d", "--verbose"],
            &["minio", "--listen", "127.0.0.1:0", "--data", "/d"],
            &["relay", "--listen", "127.0.0.1:0"],
            &["relay", "--listen", "127.0.0.1:0", "--to", "localhost:9000"],
            &[],
        ] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parsed"));
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn s3_needs_both_keys() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = keys(&env(&[(ACCESS_KEY_ENV, "ak"), (SECRET_KEY_ENV, "sk")])).unwrap();
        assert_eq!(
            (both.access_key.as_str(), both.secret_key.as_str()),
            ("ak", "sk")
        );
        for missing in [
            &[(ACCESS_KEY_ENV, "ak")][..],
            &[(SECRET_KEY_ENV, "sk")],
            &[(ACCESS_KEY_ENV, ""), (SECRET_KEY_ENV, "sk")],
            &[],
        ] {
            let message = keys(&env(missing)).unwrap_err();
            assert!(message.contains(ACCESS_KEY_ENV) && message.contains(SECRET_KEY_ENV));
        }
    }
}

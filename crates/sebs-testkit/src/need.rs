//! What a trial may need from the machine, each checked at most once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A prerequisite of some trials: what it is, and how to tell whether this machine has it.
///
/// Declare one as a `static`, so that its check runs once however many trials need it:
///
/// ```text
/// static STORE: Need = Need::new("the static store (cargo xtask agent)", || {
///     sebs_container::find_static_binary("sebs-store", "SEBS_STORE_BIN", None)
///         .map(drop)
///         .map_err(|e| format!("failed to {e}"))
/// });
/// ```
pub struct Need {
    what: &'static str,
    check: fn() -> Result<(), String>,
    verdict: OnceLock<Result<(), String>>,
}

impl Need {
    /// `what` reads after "needs": "a Docker engine"; `check` says why not, if not.
    pub const fn new(what: &'static str, check: fn() -> Result<(), String>) -> Need {
        Need {
            what,
            check,
            verdict: OnceLock::new(),
        }
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Whether this machine has it, checked on the first call.
    pub fn verdict(&self) -> Result<(), &str> {
        self.verdict
            .get_or_init(|| (self.check)())
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }
}

/// The static agent function containers run, found as `sebs-local` finds it
/// (`SEBS_AGENT_BIN`, beside the executable, or where `cargo xtask agent` builds it).
pub static AGENT: Need = Need::new("the static agent (`cargo xtask agent`)", || {
    agent_binary().map(drop)
});

/// The static agent's path (see [`AGENT`]), or why there is none.
pub fn agent_binary() -> Result<PathBuf, String> {
    sebs_container::find_static_binary(
        sebs_container::AGENT_BINARY,
        sebs_container::AGENT_BIN_ENV,
        None,
    )
    .map_err(|e| format!("failed to {e}"))
}

/// A Docker engine answers where `sebs_container::connect` looks (`DOCKER_HOST`, else the
/// local socket).
pub static ENGINE: Need = Need::new("a Docker engine", engine);

/// The tests' second Docker engine, which shares nothing with the first: its own network
/// and mount namespaces, data, cgroups and identity, reached over TCP at `SEBS_ENGINE2`
/// (`cargo xtask test` starts it; `cargo xtask engine2 <command>` runs a command with it).
pub static ENGINE2: Need = Need::new("the second Docker engine (SEBS_ENGINE2)", || {
    let address = engine2_address()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start an async runtime: {e}"))?;
    runtime
        .block_on(sebs_container::connect_to(&address))
        .map(drop)
        .map_err(|e| format!("failed to {}", sebs_wire::ErrorChain(&e)))
});

/// Where the second engine listens (see [`ENGINE2`]), or why there is none.
pub fn engine2_address() -> Result<sebs_container::EngineAddress, String> {
    match std::env::var("SEBS_ENGINE2") {
        Ok(url) if !url.trim().is_empty() => sebs_container::engine_address(Some(&url))
            .map_err(|e| format!("failed to {}", sebs_wire::ErrorChain(&e))),
        _ => Err(match std::env::var("SEBS_ENGINE2_ERROR") {
            Ok(why) => format!("the second engine did not start: {why}"),
            Err(_) => "SEBS_ENGINE2 is not set; `cargo xtask test` starts the second engine, \
                       `cargo xtask engine2 <command>` runs a command with it"
                .to_string(),
        }),
    }
}

/// The `docker` command reaches an engine (tests that drive containers as a user would).
pub static DOCKER_CLI: Need = Need::new("the docker command and an engine", || {
    runs("docker", &["version", "--format", "{{.Server.Version}}"])
});

/// `node` runs on this host (the agent's Node.js worker tests).
pub static NODE: Need = Need::new("Node.js (node)", || runs("node", &["--version"]));

/// `python3` runs on this host (the agent's Python worker tests, benchmarks' `input.py`).
pub static PYTHON3: Need = Need::new("python3", || runs("python3", &["--version"]));

/// util-linux `flock(1)`, to hold a lock from another process.
pub static FLOCK: Need = Need::new("util-linux flock(1)", || runs("flock", &["--version"]));

/// The test runs as root (it changes users or gives files away).
pub static ROOT: Need = Need::new("root", || {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        Ok(())
    } else {
        Err(format!("this runs as uid {uid}"))
    }
});

/// This host can listen on IPv6 (`[::1]`).
pub static IPV6: Need = Need::new("IPv6", || {
    std::net::TcpListener::bind("[::1]:0")
        .map(drop)
        .map_err(|e| format!("cannot listen on [::1]: {e}"))
});

fn engine() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start an async runtime: {e}"))?;
    runtime
        .block_on(sebs_container::connect())
        .map(drop)
        .map_err(|e| format!("failed to {}", sebs_wire::ErrorChain(&e)))
}

/// Whether `program args` runs and succeeds, and if not, what it said.
fn runs(program: &str, args: &[&str]) -> Result<(), String> {
    let command = format!("`{program} {}`", args.join(" "));
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{command} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {command}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_is_checked_once_and_says_why_not() {
        use std::sync::atomic::{AtomicU32, Ordering};
        static CHECKS: AtomicU32 = AtomicU32::new(0);
        static ABSENT: Need = Need::new("a unicorn", || {
            CHECKS.fetch_add(1, Ordering::SeqCst);
            Err("none in this stable".to_string())
        });
        assert_eq!(ABSENT.verdict(), Err("none in this stable"));
        assert_eq!(ABSENT.verdict(), Err("none in this stable"));
        assert_eq!(CHECKS.load(Ordering::SeqCst), 1);
        assert_eq!(ABSENT.what(), "a unicorn");
    }

    #[test]
    fn a_missing_program_is_a_reason_naming_it() {
        let why = runs("sebs-no-such-program", &["--version"]).unwrap_err();
        assert!(why.contains("`sebs-no-such-program --version`"), "{why}");
        assert!(runs("true", &[]).is_ok());
        let why = runs("false", &[]).unwrap_err();
        assert!(why.contains("failed with exit status: 1"), "{why}");
    }
}

/// The second engine at an address of its namespace that this test alone uses
/// (`SEBS_ENGINE2_ALIAS`), which it may take away and give back: for the test, the engine
/// goes away (this host's route to the address becomes a blackhole: what is sent there is
/// dropped, as to a host that went off the network; a new connection fails at once) while
/// other tests go on using it at its own address. Given back when dropped. The tests of one
/// binary that use it take turns: [`Engine2Alias::new`] waits until no other holds it (the
/// tests of a binary run in parallel; cargo runs the binaries one after another).
pub struct Engine2Alias {
    /// `tcp://<alias>:2375`.
    pub url: String,
    dev: String,
    cidr: String,
    away: bool,
    _turn: AliasTurn,
}

/// Whether a test of this process holds the alias, and where the next one waits for it.
static ALIAS_TURN: (std::sync::Mutex<bool>, std::sync::Condvar) =
    (std::sync::Mutex::new(false), std::sync::Condvar::new());

/// This test's turn with the alias, given up when dropped (after the address came back:
/// fields drop after [`Engine2Alias`]'s own `drop`).
struct AliasTurn;

impl AliasTurn {
    fn take() -> AliasTurn {
        let (lock, freed) = &ALIAS_TURN;
        let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *held {
            held = freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        *held = true;
        AliasTurn
    }
}

impl Drop for AliasTurn {
    fn drop(&mut self) {
        let (lock, freed) = &ALIAS_TURN;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = false;
        freed.notify_one();
    }
}

impl Engine2Alias {
    /// From the variables `cargo xtask test` and `cargo xtask engine2` set.
    pub fn new() -> Result<Engine2Alias, String> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!("{name} is not set (the second engine sets it with SEBS_ENGINE2)")
            })
        };
        let url = var("SEBS_ENGINE2_ALIAS")?;
        let ip = url
            .trim_start_matches("tcp://")
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string())
            .ok_or_else(|| format!("SEBS_ENGINE2_ALIAS is not tcp://IP:PORT: {url}"))?;
        let dev = var("SEBS_ENGINE2_ALIAS_DEV")?;
        Ok(Engine2Alias {
            url,
            dev,
            cidr: format!("{ip}/32"),
            away: false,
            // Blocks this test's thread (each test runs on a thread and runtime of its own).
            _turn: AliasTurn::take(),
        })
    }

    /// Takes the address away.
    ///
    /// # Panics
    ///
    /// When `ip` fails.
    pub fn go_away(&mut self) {
        self.ip(&["blackhole", &self.cidr]);
        self.away = true;
    }

    /// Gives the address back.
    ///
    /// # Panics
    ///
    /// When `ip` fails.
    pub fn come_back(&mut self) {
        if self.away {
            self.ip(&[&self.cidr, "dev", &self.dev]);
            self.away = false;
        }
    }

    fn ip(&self, route: &[&str]) {
        let out = std::process::Command::new("ip")
            .args(["route", "replace"])
            .args(route)
            .output()
            .unwrap_or_else(|e| panic!("failed to run ip: {e}"));
        assert!(
            out.status.success(),
            "ip route replace {}: {}",
            route.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Engine2Alias {
    fn drop(&mut self) {
        if self.away {
            self.come_back();
        }
    }
}

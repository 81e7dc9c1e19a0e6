//! Makes sure the host has what the project runs on: a Docker engine, `python3` for
//! benchmarks' `input.py`, and for the tests `node` (the agent's Node.js worker), Chromium,
//! in which the report test renders `report.html`, and Python's venv and npm, with which the
//! store's tests install the real S3 and DynamoDB clients.
//!
//! When none answers and we may (root, a Debian-like system, no `DOCKER_HOST` pointing
//! elsewhere), install Debian's `docker.io` and start `dockerd` in the background;
//! otherwise stop with the exact command the user must run. Likewise for the others.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::root;

/// Benchmarks' `input.py` runs on the host, so the host needs `python3`; install Debian's
/// where we may, as for the engine.
pub fn ensure_python3() -> Result<()> {
    ensure_program(
        "python3",
        "python3",
        "benchmarks' input.py runs on the host",
    )
}

/// The agent's Node.js worker is tested on the host, so the tests need `node`; install
/// Debian's `nodejs` where we may.
pub fn ensure_node() -> Result<()> {
    ensure_program(
        "node",
        "nodejs",
        "the agent's Node.js worker is tested on the host",
    )
}

/// The second engine runs in namespaces the tests make with `ip` (veth pair, netns) and
/// `nsenter`/`unshare`; install Debian's `iproute2` and `util-linux` where we may.
pub fn ensure_netns_tools() -> Result<()> {
    let why = "the second engine runs in a network namespace of its own";
    ensure_program("ip", "iproute2", why)?;
    ensure_program("nsenter", "util-linux", why)?;
    ensure_program("unshare", "util-linux", why)
}

/// The second engine's certificates are made with `openssl`, its plain TCP is `socat`, and
/// its `ssh://` side is Debian's `sshd` (with `ssh` and `ssh-keygen` here).
pub fn ensure_engine2_tools() -> Result<()> {
    ensure_program(
        "openssl",
        "openssl",
        "the second engine's TLS certificates are made by it",
    )?;
    ensure_program(
        "socat",
        "socat",
        "the second engine's plain TCP is relayed by it",
    )?;
    ensure_sshd()
}

/// Where Debian's openssh-server puts sshd (which must be run by its absolute path).
pub const SSHD: &str = "/usr/sbin/sshd";

/// Debian's hook that `invoke-rc.d` and `deb-systemd-invoke` ask before starting a service
/// from a package's scripts; exit status 101 forbids it.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// The second engine's sshd is Debian's openssh-server, installed where missing without
/// starting a system sshd on this host: its scripts start the `ssh` service unless
/// policy-rc.d forbids it, so one that forbids every start is in place for the install
/// (ours, or the host's own when it already forbids `ssh start`; a host's that allows it is
/// set aside and put back after).
fn ensure_sshd() -> Result<()> {
    let why = "the second engine is also reached over ssh";
    if Path::new(SSHD).is_file() && which("ssh").is_some() && which("ssh-keygen").is_some() {
        return Ok(());
    }
    if !(is_root() && Path::new("/etc/debian_version").exists()) {
        bail!(
            "no {SSHD}, ssh or ssh-keygen on this host ({why}); install them, e.g.\n    \
             sudo apt-get install -y openssh-server openssh-client\n\
             (then stop and disable the ssh service it may start: the tests run their own sshd)"
        );
    }
    eprintln!(
        "xtask: no {SSHD}, ssh or ssh-keygen on this host ({why}); installing Debian's \
         openssh-server with services kept from starting ({POLICY_RC_D})"
    );
    let policy = NoServiceStarts::take()?;
    let installed = root::run(Command::new("apt-get").arg("update").arg("-qq")).and_then(|()| {
        root::run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "openssh-server", "openssh-client"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    });
    policy.give_back()?;
    installed
}

/// A policy-rc.d that forbids starting any service, in place until [`give_back`] (or drop).
///
/// [`give_back`]: NoServiceStarts::give_back
struct NoServiceStarts {
    /// Whether the file is ours (removed after), and where the host's own was set aside.
    ours: bool,
    saved: Option<std::path::PathBuf>,
}

impl NoServiceStarts {
    fn take() -> Result<NoServiceStarts> {
        let policy = Path::new(POLICY_RC_D);
        if policy.exists() {
            let forbids = Command::new(policy)
                .args(["ssh", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.code() == Some(101));
            if forbids {
                return Ok(NoServiceStarts {
                    ours: false,
                    saved: None,
                });
            }
        }
        let saved = std::path::PathBuf::from(format!("{POLICY_RC_D}.sebs-local-saved"));
        let saved = if policy.exists() {
            std::fs::rename(policy, &saved).with_context(|| {
                format!(
                    "failed to set {} aside as {}",
                    policy.display(),
                    saved.display()
                )
            })?;
            Some(saved)
        } else {
            None
        };
        let mut guard = NoServiceStarts { ours: true, saved };
        let written = std::fs::write(
            policy,
            "#!/bin/sh\n# sebs-local xtask: no service starts while it installs packages\nexit 101\n",
        )
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))
        });
        if let Err(e) = written {
            guard.restore()?;
            return Err(e).with_context(|| format!("failed to write {}", policy.display()));
        }
        Ok(guard)
    }

    fn give_back(mut self) -> Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> Result<()> {
        let policy = Path::new(POLICY_RC_D);
        if std::mem::take(&mut self.ours) {
            std::fs::remove_file(policy)
                .with_context(|| format!("failed to remove {}", policy.display()))?;
        }
        if let Some(saved) = self.saved.take() {
            std::fs::rename(&saved, policy).with_context(|| {
                format!(
                    "failed to put {} back as {}",
                    saved.display(),
                    policy.display()
                )
            })?;
        }
        Ok(())
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("xtask: {e:#}");
        }
    }
}

/// sebs-store's tests install boto3 and minio into a venv and the `minio` and AWS SDK npm
/// packages with npm; install Debian's `python3-venv` and `npm` where we may.
pub fn ensure_store_test_tools() -> Result<()> {
    let why = "the store's tests install the S3 and DynamoDB client libraries";
    ensure_program("npm", "npm", why)?;
    let venv = Command::new("python3")
        .args(["-m", "venv", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if venv {
        return Ok(());
    }
    if !(is_root() && Path::new("/etc/debian_version").exists()) {
        bail!(
            "python3 has no venv module ({why}); install it, e.g.\n    \
             sudo apt-get install -y python3-venv"
        );
    }
    eprintln!("xtask: python3 has no venv module ({why}); installing Debian's python3-venv");
    root::run(Command::new("apt-get").arg("update").arg("-qq"))?;
    root::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "python3-venv"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Makes sure `program` runs here, installing Debian's `package` where we may (root on a
/// Debian-like system), else stops with the command to run. `why` says who needs it.
fn ensure_program(program: &str, package: &str, why: &str) -> Result<()> {
    if which(program).is_some() {
        return Ok(());
    }
    if !(is_root() && Path::new("/etc/debian_version").exists()) {
        bail!(
            "no {program} on this host ({why}); install it, e.g.\n    \
             sudo apt-get install -y {package}"
        );
    }
    eprintln!("xtask: no {program} on this host ({why}); installing Debian's {package}");
    root::run(Command::new("apt-get").arg("update").arg("-qq"))?;
    root::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Names under which a Chromium binary is found on the PATH (the report test looks for the
/// same names, or `SEBS_CHROMIUM`).
const CHROMIUM: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The report test renders `report.html` in headless Chromium; it takes any of
/// [`CHROMIUM`] (or `SEBS_CHROMIUM`), and Debian's `chromium` is installed where none is.
pub fn ensure_chromium() -> Result<()> {
    if std::env::var_os("SEBS_CHROMIUM").is_some() || CHROMIUM.iter().any(|c| which(c).is_some()) {
        return Ok(());
    }
    ensure_program(
        "chromium",
        "chromium",
        "the report test renders report.html in it",
    )
}

pub fn ensure_engine() -> Result<()> {
    if engine_answers(None) {
        return Ok(());
    }
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        bail!(
            "no Docker engine answers at DOCKER_HOST={}; start that engine or unset DOCKER_HOST",
            host.to_string_lossy()
        );
    }
    let root_user = is_root();
    let debian = Path::new("/etc/debian_version").exists();
    if !(root_user && debian) {
        bail!(
            "no Docker engine answers; start one, e.g.\n    sudo systemctl start docker\n\
             or on Debian/Ubuntu without one installed:\n    \
             sudo apt-get install -y docker.io && sudo systemctl start docker"
        );
    }
    if which("dockerd").is_none() {
        eprintln!("xtask: no Docker engine installed; installing Debian's docker.io");
        root::run(Command::new("apt-get").arg("update").arg("-qq"))?;
        root::run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "docker.io"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    start_dockerd()
}

fn start_dockerd() -> Result<()> {
    let log_path = root::dir().join("target").join("dockerd.log");
    std::fs::create_dir_all(log_path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .context("failed to duplicate the dockerd log handle")?;
    eprintln!(
        "xtask: starting dockerd in the background (log: {})",
        log_path.display()
    );
    let mut cmd = Command::new("dockerd");
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // Its own session, so that it outlives this process and a Ctrl-C in this terminal.
    detach(&mut cmd);
    let mut child = cmd.spawn().context("failed to start dockerd")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if engine_answers(None) {
            eprintln!("xtask: dockerd answers");
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("failed to check on dockerd")? {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(20).collect();
            bail!(
                "dockerd exited with {status}; last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!(
        "dockerd did not answer within 60 s; see {}",
        log_path.display()
    )
}

/// Whether the engine at `host` (`-H`; the docker CLI's default when `None`) answers.
pub(crate) fn engine_answers(host: Option<&str>) -> bool {
    let mut cmd = Command::new("docker");
    if let Some(host) = host {
        cmd.args(["-H", host]);
    }
    cmd.args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // The effective uid, read without unsafe code or an extra dependency.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn detach(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // `process_group(0)` detaches dockerd from our terminal's process group, which is
    // what keeps a Ctrl-C here from stopping it.
    cmd.process_group(0);
}

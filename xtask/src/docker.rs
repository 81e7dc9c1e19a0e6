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

/// The second engine's certificates are made with `openssl`, and its plain TCP is `socat`.
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
    )
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

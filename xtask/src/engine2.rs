//! The second Docker engine of the tests: a `dockerd` on this machine that shares nothing
//! with the first, so that "a remote engine" is tested for real.
//!
//! It runs in a network namespace of its own (`sebs-local-engine2-<slot>`), reached from
//! this host over a veth pair (`10.231.0.<4·slot+1>` here, `.<4·slot+2>` there), with its
//! own data root, exec root, pid file, cgroup parent and bridge (`10.232.<slot>.1/24`).
//! dockerd itself listens with TLS on port 2376 (`--tlsverify`, certificates made by the
//! `openssl` command for each start, in the run directory); since its TLS settings are
//! for all its TCP sockets, the plain TCP of port 2375 is `socat` in the namespace relaying
//! to dockerd's Unix socket, on every address of the namespace: the engine address and an
//! alias (`10.233.<slot>.2`), whose route from this host a test may make a blackhole and
//! give back, to make the engine go away from its point of view only (taking the address
//! away in the namespace would not do: dockerd's DNAT rules still take the packets sent
//! there to the containers). It also runs in a mount namespace of its own where this host's
//! work tree, `/tmp`, `/var/tmp`, the home directory (caches), `/run/containerd` (the
//! first engine's shim sockets) and `/etc/docker` (its settings and identity key) are
//! empty tmpfs, so that a bind mount of anything of ours
//! finds nothing there, as on another machine. `nsenter --net` is used rather than
//! `ip netns exec`, which would remount `/sys` and hide the cgroup mounts dockerd needs.
//!
//! An `sshd` (Debian's, run by us, never the host's service) listens on the engine's
//! address, port 2222, in the engine's network and mount namespaces: a client key and a
//! host key made for each start under the run directory, root's login by that key only,
//! and `docker` of a session reaching this engine (`SetEnv DOCKER_HOST`, for sshd's sessions
//! alone), so that `ssh://` engines are tested against it with a client configuration of
//! their own (`ssh -F`), never touching `~/.ssh`.
//!
//! Several runs may share the machine (one per work tree): each claims a free slot under
//! a lock, and a slot whose namespace holds no process (a run that was killed) is torn down
//! and taken again. Everything is torn down when the [`Engine2`] is stopped or dropped:
//! dockerd and every process left in its network namespace, the namespace, the veth pair,
//! the cgroups and the directories.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use anyhow::{bail, Context, Result};

use crate::root;

/// How many engines may run at once on one machine (one per concurrent test run).
const SLOTS: u8 = 16;
/// The TCP port the engine answers on without TLS, inside its namespace.
const PORT: u16 = 2375;
/// The TCP port dockerd answers on with TLS.
const TLS_PORT: u16 = 2376;
/// How long dockerd may take to answer (it answers in a few seconds).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long dockerd may take to stop its containers and exit on SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The port sshd listens on, on the engine's address (not ssh's default, so that the
/// tests' address carries a port).
const SSH_PORT: u16 = 2222;
/// How long sshd may take to listen.
const SSHD_START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running second engine; torn down by [`Engine2::stop`] or, failing that, on drop.
pub struct Engine2 {
    slot: u8,
    dockerd: Option<Child>,
    relay: Option<Child>,
    sshd: Option<Child>,
    stopped: bool,
}

/// The names and addresses of one slot.
struct Slot(u8);

impl Slot {
    fn netns(&self) -> String {
        format!("sebs-local-engine2-{}", self.0)
    }
    /// The host's end of the veth pair (at most 15 characters, as Linux allows).
    fn veth_host(&self) -> String {
        format!("sebs-e2-{}-h", self.0)
    }
    fn veth_ns(&self) -> String {
        format!("sebs-e2-{}-n", self.0)
    }
    fn host_ip(&self) -> String {
        format!("10.231.0.{}", 4 * u32::from(self.0) + 1)
    }
    fn engine_ip(&self) -> String {
        format!("10.231.0.{}", 4 * u32::from(self.0) + 2)
    }
    /// An address of the namespace besides the engine's, which a test may take away.
    fn alias_ip(&self) -> String {
        format!("10.233.{}.2", self.0)
    }
    fn bridge(&self) -> String {
        format!("10.232.{}.1/24", self.0)
    }
    fn data_root(&self) -> PathBuf {
        PathBuf::from(format!("/var/lib/sebs-local-engine2-{}", self.0))
    }
    /// Exec root, pid file and Unix socket: on the host's /run, visible from here.
    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/sebs-local-engine2-{}", self.0))
    }
    fn cgroup_parent(&self) -> String {
        self.netns()
    }
    /// The certificates of dockerd, and those of the tests' clients: `client` (signed by
    /// the engine's CA, with that CA) and `stranger` (of another CA, with that CA).
    fn tls_dir(&self) -> PathBuf {
        self.run_dir().join("tls")
    }
    /// sshd's configuration and keys, and those of the tests' clients: `client` (its key
    /// authorised, `config` for `ssh -F`, `known_hosts` with the host key) and `stranger`
    /// (a key sshd does not know).
    fn ssh_dir(&self) -> PathBuf {
        self.run_dir().join("ssh")
    }
}

impl Engine2 {
    /// Claims a slot and starts the engine in it; returns once it answers over TCP.
    pub fn start() -> Result<Engine2> {
        crate::docker::ensure_netns_tools()?;
        crate::docker::ensure_engine2_tools()?;
        let lock_path = Path::new("/run/sebs-local-engine2.lock");
        let lock = File::create(lock_path)
            .with_context(|| format!("failed to create {}", lock_path.display()))?;
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .with_context(|| format!("failed to lock {}", lock_path.display()))?;
        let slot = claim_slot()?;
        let mut engine = Engine2 {
            slot,
            dockerd: None,
            relay: None,
            sshd: None,
            stopped: false,
        };
        // Until dockerd runs in it, the namespace is empty and would look stale to another
        // run; the lock is held until then.
        let (dockerd, relay) = launch(&Slot(slot))?;
        engine.dockerd = Some(dockerd);
        engine.relay = Some(relay);
        drop(lock);
        engine.wait_answers()?;
        // In dockerd's mount namespace, which is set up once dockerd answers.
        let dockerd_pid = engine
            .pid()
            .context("the second engine's dockerd is gone")?;
        engine.sshd = Some(start_sshd(&Slot(slot), dockerd_pid)?);
        eprintln!(
            "xtask: second engine answers at {} (log: {})",
            engine.url(),
            log_path(slot).display()
        );
        Ok(engine)
    }

    /// `tcp://<address>:2375`, the engine's address as tests and `--engine` take it.
    pub fn url(&self) -> String {
        format!("tcp://{}:{PORT}", Slot(self.slot).engine_ip())
    }

    /// dockerd's process id (its `/proc/<pid>/root` is its view of the file system).
    pub fn pid(&self) -> Option<u32> {
        self.dockerd.as_ref().map(Child::id)
    }

    /// What a command run with the engine is told: `SEBS_ENGINE2` (plain TCP),
    /// `SEBS_ENGINE2_TLS` (`tcp://…:2376?cert-path=` the `client` directory; `stranger` is
    /// its sibling), `SEBS_ENGINE2_ALIAS` (plain TCP at the alias) with
    /// `SEBS_ENGINE2_ALIAS_DEV` (this host's end of the veth pair: a test takes the alias
    /// away by making this host's route to it a blackhole, and gives it back), the
    /// namespace in `SEBS_ENGINE2_NETNS`, `SEBS_ENGINE2_SSH` (`ssh://root@…:2222?ssh-config=`
    /// the `client` configuration; the `stranger` key is in its sibling directory), and
    /// dockerd's pid in `SEBS_ENGINE2_PID`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let s = Slot(self.slot);
        let mut env = vec![
            ("SEBS_ENGINE2", self.url()),
            (
                "SEBS_ENGINE2_TLS",
                format!(
                    "tcp://{}:{TLS_PORT}?{}={}",
                    s.engine_ip(),
                    sebs_container::CERT_PATH_QUERY,
                    s.tls_dir().join("client").display()
                ),
            ),
            (
                "SEBS_ENGINE2_ALIAS",
                format!("tcp://{}:{PORT}", s.alias_ip()),
            ),
            ("SEBS_ENGINE2_NETNS", s.netns()),
            (
                "SEBS_ENGINE2_SSH",
                format!(
                    "ssh://root@{}:{SSH_PORT}?{}={}",
                    s.engine_ip(),
                    sebs_container::SSH_CONFIG_QUERY,
                    s.ssh_dir().join("client").join("config").display()
                ),
            ),
            ("SEBS_ENGINE2_ALIAS_DEV", s.veth_host()),
        ];
        if let Some(pid) = self.pid() {
            env.push(("SEBS_ENGINE2_PID", pid.to_string()));
        }
        env
    }

    fn wait_answers(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = self.url();
        loop {
            if crate::docker::engine_answers(Some(&url)) {
                return Ok(());
            }
            if let Some(child) = self.dockerd.as_mut() {
                if let Some(status) = child.try_wait().context("failed to check on dockerd")? {
                    bail!(
                        "the second engine's dockerd exited with {status}; last lines of {}:\n{}",
                        log_path(self.slot).display(),
                        tail(&log_path(self.slot), 20)
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the second engine did not answer at {url} within {START_TIMEOUT:?}; see {}",
                    log_path(self.slot).display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops dockerd and removes everything of the slot.
    pub fn stop(mut self) -> Result<()> {
        self.stopped = true;
        if let Some(mut child) = self.sshd.take() {
            terminate(&mut child);
        }
        if let Some(mut child) = self.dockerd.take() {
            terminate(&mut child);
        }
        if let Some(mut child) = self.relay.take() {
            terminate(&mut child);
        }
        teardown(&Slot(self.slot))
    }
}

impl Drop for Engine2 {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if let Some(mut child) = self.sshd.take() {
            terminate(&mut child);
        }
        if let Some(mut child) = self.dockerd.take() {
            terminate(&mut child);
        }
        if let Some(mut child) = self.relay.take() {
            terminate(&mut child);
        }
        if let Err(e) = teardown(&Slot(self.slot)) {
            eprintln!("xtask: the second engine was not removed entirely: {e:#}");
        }
    }
}

fn log_path(slot: u8) -> PathBuf {
    root::dir()
        .join("target")
        .join(format!("engine2-{slot}.log"))
}

/// A free slot, or a stale one (its namespace holds no process) after tearing it down.
fn claim_slot() -> Result<u8> {
    for slot in 0..SLOTS {
        let s = Slot(slot);
        let netns = Path::new("/run/netns").join(s.netns());
        if netns.exists() {
            if !netns_pids(&s.netns())?.is_empty() {
                continue;
            }
            eprintln!(
                "xtask: removing what a killed run left of the second engine ({})",
                s.netns()
            );
        }
        // Also a slot without a namespace may hold a veth or directories of a run killed
        // halfway through its set-up or tear-down.
        teardown(&s)?;
        return Ok(slot);
    }
    bail!(
        "all {SLOTS} slots of the second engine are in use (network namespaces \
         sebs-local-engine2-*); wait for the other test runs to end"
    )
}

/// Sets up the slot's network and starts dockerd in it, in a mount namespace of its own,
/// and the plain TCP relay to it.
fn launch(s: &Slot) -> Result<(Child, Child)> {
    let (netns, vh, vn) = (s.netns(), s.veth_host(), s.veth_ns());
    let host_cidr = format!("{}/30", s.host_ip());
    let ns_cidr = format!("{}/30", s.engine_ip());
    ip(&["netns", "add", &netns])?;
    ip(&["link", "add", &vh, "type", "veth", "peer", "name", &vn])?;
    ip(&["link", "set", &vn, "netns", &netns])?;
    ip(&["addr", "add", &host_cidr, "dev", &vh])?;
    ip(&["link", "set", &vh, "up"])?;
    ip(&["-n", &netns, "addr", "add", &ns_cidr, "dev", &vn])?;
    ip(&["-n", &netns, "link", "set", &vn, "up"])?;
    ip(&["-n", &netns, "link", "set", "lo", "up"])?;
    ip(&["-n", &netns, "route", "add", "default", "via", &s.host_ip()])?;
    let alias = s.alias_ip();
    ip(&[
        "-n",
        &netns,
        "addr",
        "add",
        &format!("{alias}/32"),
        "dev",
        &vn,
    ])?;
    // replace, not add: a test killed while the alias was away left a blackhole route.
    ip(&["route", "replace", &format!("{alias}/32"), "dev", &vh])?;

    let (data, run) = (s.data_root(), s.run_dir());
    for dir in [&data, &run] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let tls = s.tls_dir();
    make_certificates(&tls, &[s.engine_ip(), alias.clone()])?;
    let mut script = String::from("set -e\n");
    for dir in hidden_dirs() {
        script.push_str(&format!(
            "mount -t tmpfs -o mode=1777 sebs-local-engine2-hidden {}\n",
            quote(&dir)?
        ));
    }
    let args = [
        format!("--data-root={}", data.display()),
        format!("--exec-root={}", run.join("exec").display()),
        format!("--pidfile={}", run.join("dockerd.pid").display()),
        format!("--host=tcp://{}:{TLS_PORT}", s.engine_ip()),
        format!("--host=unix://{}", run.join("docker.sock").display()),
        format!("--cgroup-parent={}", s.cgroup_parent()),
        format!("--bip={}", s.bridge()),
        "--tlsverify".to_string(),
        format!("--tlscacert={}", tls.join("ca.pem").display()),
        format!("--tlscert={}", tls.join("server-cert.pem").display()),
        format!("--tlskey={}", tls.join("server-key.pem").display()),
    ];
    script.push_str("exec dockerd");
    for a in &args {
        script.push(' ');
        script.push_str(&quote(Path::new(a))?);
    }
    let log_path = log_path(s.0);
    let log = File::create(&log_path)
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .context("failed to duplicate a log handle")?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{netns}"))
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // Its own process group: a Ctrl-C in this terminal is for the tests; the engine is
    // stopped by us (or, when we are killed, taken as stale by the next run).
    cmd.process_group(0);
    eprintln!(
        "xtask: starting the second engine in {netns} (log: {})",
        log_path.display()
    );
    let dockerd = cmd
        .spawn()
        .context("failed to start the second engine (nsenter, unshare, dockerd)")?;
    // A connection's other half may go on long after one half ended (an upload answered
    // after its body): `-t` is how long socat waits for it.
    let relay_log = File::options()
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open {}", log_path.display()))?;
    let relay = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["socat", "-t", "600"])
        .arg(format!("TCP-LISTEN:{PORT},fork,reuseaddr"))
        .arg(format!(
            "UNIX-CONNECT:{}",
            run.join("docker.sock").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(relay_log)
        .process_group(0)
        .spawn();
    match relay {
        Ok(relay) => Ok((dockerd, relay)),
        Err(e) => {
            let mut dockerd = dockerd;
            terminate(&mut dockerd);
            Err(e).context("failed to start the second engine's plain TCP relay (socat)")
        }
    }
}

/// dockerd's CA, certificate and key, and two clients' directories (`ca.pem`, `cert.pem`,
/// `key.pem`, as the docker CLI reads them): `client`, of the engine's CA, and `stranger`,
/// of another CA the engine does not know; made with the `openssl` command, for
/// `addresses` (IPs), valid two days.
fn make_certificates(dir: &Path, addresses: &[String]) -> Result<()> {
    let (client, stranger) = (dir.join("client"), dir.join("stranger"));
    for d in [dir, &client, &stranger] {
        std::fs::create_dir_all(d).with_context(|| format!("failed to create {}", d.display()))?;
    }
    let ca = |key: &Path, cert: &Path, name: &str| {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &path_str(key)?,
            "-out",
            &path_str(cert)?,
        ])
    };
    let leaf = |ca_dir: &Path, ca_key: &Path, key: &Path, cert: &Path, ext: String| {
        let (csr, ext_file) = (cert.with_extension("csr"), cert.with_extension("ext"));
        std::fs::write(&ext_file, ext)
            .with_context(|| format!("failed to write {}", ext_file.display()))?;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=sebs-local-engine2",
            "-keyout",
            &path_str(key)?,
            "-out",
            &path_str(&csr)?,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            &format!("{}", std::process::id()),
            "-in",
            &path_str(&csr)?,
            "-CA",
            &path_str(&ca_dir.join("ca.pem"))?,
            "-CAkey",
            &path_str(ca_key)?,
            "-extfile",
            &path_str(&ext_file)?,
            "-out",
            &path_str(cert)?,
        ])
    };
    let ca_key = dir.join("ca-key.pem");
    ca(&ca_key, &dir.join("ca.pem"), "sebs-local engine2 CA")?;
    let names: Vec<String> = addresses.iter().map(|a| format!("IP:{a}")).collect();
    leaf(
        dir,
        &ca_key,
        &dir.join("server-key.pem"),
        &dir.join("server-cert.pem"),
        format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            names.join(",")
        ),
    )?;
    let client_ext = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n".to_string();
    leaf(
        dir,
        &ca_key,
        &client.join("key.pem"),
        &client.join("cert.pem"),
        client_ext.clone(),
    )?;
    copy(&dir.join("ca.pem"), &client.join("ca.pem"))?;
    let stranger_key = dir.join("stranger-ca-key.pem");
    ca(
        &stranger_key,
        &stranger.join("ca.pem"),
        "sebs-local stranger CA",
    )?;
    leaf(
        &stranger,
        &stranger_key,
        &stranger.join("key.pem"),
        &stranger.join("cert.pem"),
        client_ext,
    )
}

/// sshd's host key, the `client` and `stranger` keys, the client's configuration and known
/// hosts, and sshd's configuration, under the slot's [`Slot::ssh_dir`]; then sshd, in the
/// engine's network namespace and in dockerd's (process `dockerd_pid`) mount namespace,
/// once it listens.
fn start_sshd(s: &Slot, dockerd_pid: u32) -> Result<Child> {
    let dir = s.ssh_dir();
    let (client, stranger) = (dir.join("client"), dir.join("stranger"));
    for d in [&dir, &client, &stranger] {
        std::fs::create_dir_all(d).with_context(|| format!("failed to create {}", d.display()))?;
    }
    let host_key = dir.join("host_key");
    let client_key = client.join("id_ed25519");
    for key in [&host_key, &client_key, &stranger.join("id_ed25519")] {
        let _ = std::fs::remove_file(key);
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "sebs-local-engine2",
                "-f",
            ])
            .arg(key)
            .stdin(Stdio::null())
            .output()
            .context("failed to run ssh-keygen")?;
        if !out.status.success() {
            bail!(
                "ssh-keygen for {} failed with {}: {}",
                key.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let public = |key: &Path| {
        let path = key.with_extension("pub");
        std::fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))
    };
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))
    };
    let engine_ip = s.engine_ip();
    write(dir.join("authorized_keys"), public(&client_key)?)?;
    write(
        client.join("known_hosts"),
        format!("[{engine_ip}]:{SSH_PORT} {}", public(&host_key)?),
    )?;
    // Everything ssh would read from ~/.ssh or /etc/ssh is here: `ssh -F` reads neither
    // configuration, and no agent's keys are offered.
    write(
        client.join("config"),
        format!(
            "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  UpdateHostKeys no\n",
            client_key.display(),
            client.join("known_hosts").display()
        ),
    )?;
    let config = dir.join("sshd_config");
    write(
        config.clone(),
        format!(
            "ListenAddress {engine_ip}:{SSH_PORT}\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             AllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\n\
             SetEnv DOCKER_HOST=unix://{}\n",
            host_key.display(),
            dir.join("sshd.pid").display(),
            dir.join("authorized_keys").display(),
            s.run_dir().join("docker.sock").display()
        ),
    )?;
    // sshd refuses to start without its privilege separation directory (which Debian's
    // service would make).
    std::fs::create_dir_all("/run/sshd").context("failed to create /run/sshd")?;
    let log_path = log_path(s.0);
    let log = File::options()
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open {}", log_path.display()))?;
    let mut sshd = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", s.netns()))
        .arg(format!("--mount=/proc/{dockerd_pid}/ns/mnt"))
        .arg(crate::docker::SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("failed to start the second engine's sshd (nsenter, sshd)")?;
    let address = std::net::SocketAddr::new(
        engine_ip
            .parse()
            .context("the engine's address is not an IP")?,
        SSH_PORT,
    );
    let deadline = Instant::now() + SSHD_START_TIMEOUT;
    loop {
        if std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
            return Ok(sshd);
        }
        if let Some(status) = sshd.try_wait().context("failed to check on sshd")? {
            bail!(
                "the second engine's sshd exited with {status}; last lines of {}:\n{}",
                log_path.display(),
                tail(&log_path, 20)
            );
        }
        if Instant::now() > deadline {
            terminate(&mut sshd);
            bail!(
                "the second engine's sshd did not listen on {address} within \
                 {SSHD_START_TIMEOUT:?}; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("failed to copy {} to {}", from.display(), to.display()))
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("failed to run openssl")?;
    if !out.status.success() {
        bail!(
            "`openssl {}` failed with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Directories of this host that the second engine must not see: the work tree (the
/// top-level directory holding it, so that sibling work trees are hidden too, unless
/// that is a system directory), `/tmp`, `/var/tmp`, the home directory with its caches,
/// cargo's and rustup's homes, `/run/containerd` and `/etc/docker` (the first engine's
/// settings and the key its ID comes from).
fn hidden_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let repo = root::dir();
    let top = repo
        .components()
        .nth(1)
        .map(|c| Path::new("/").join(c.as_os_str()));
    const SYSTEM: &[&str] = &[
        "/usr", "/etc", "/var", "/run", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/proc",
        "/sys", "/dev", "/boot",
    ];
    match top {
        Some(top) if !SYSTEM.iter().any(|s| top == Path::new(s)) => dirs.push(top),
        _ => dirs.push(repo),
    }
    dirs.extend(["/tmp", "/var/tmp", "/run/containerd", "/etc/docker"].map(PathBuf::from));
    for var in ["HOME", "CARGO_HOME", "RUSTUP_HOME"] {
        if let Some(dir) = std::env::var_os(var) {
            dirs.push(PathBuf::from(dir));
        }
    }
    // A directory under one already hidden is hidden with it (and could not be mounted
    // on once its parent is an empty tmpfs).
    dirs.sort();
    dirs.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for d in dirs {
        if d.is_dir() && d != Path::new("/") && !kept.iter().any(|k| d.starts_with(k)) {
            kept.push(d);
        }
    }
    kept
}

/// A path quoted for `sh`.
fn quote(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    if s.contains('\'') {
        bail!("{s} contains a single quote; the second engine cannot be set up with it");
    }
    Ok(format!("'{s}'"))
}

/// Removes everything of a slot that exists; what does not exist is fine.
fn teardown(s: &Slot) -> Result<()> {
    let netns = s.netns();
    if Path::new("/run/netns").join(&netns).exists() {
        // dockerd is gone by now; its containers' shims and anything else left in the
        // namespace are ours.
        for pid in netns_pids(&netns)? {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !netns_pids(&netns)?.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        ip(&["netns", "del", &netns])?;
    }
    // Deleting the namespace deletes the pair, asynchronously: gone meanwhile is fine.
    let veth = Path::new("/sys/class/net").join(s.veth_host());
    if veth.exists() {
        if let Err(e) = ip(&["link", "del", &s.veth_host()]) {
            if veth.exists() {
                return Err(e);
            }
        }
    }
    remove_cgroups(&s.cgroup_parent());
    for dir in [s.run_dir(), s.data_root()] {
        remove_dir(&dir)?;
    }
    Ok(())
}

/// Removes a directory tree that may still hold mount points the engine left on this
/// host's mount namespace (none should: the engine's mounts were in its own).
fn remove_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("failed to remove {}", dir.display()))
}

/// The cgroups dockerd made under `--cgroup-parent` (v1: one per controller; v2: one),
/// children first; a cgroup that still holds a process stays, which is logged.
fn remove_cgroups(parent: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut bases = vec![root.join(parent)];
    if let Ok(entries) = std::fs::read_dir(root) {
        bases.extend(entries.flatten().map(|e| e.path().join(parent)));
    }
    for base in bases {
        if !base.is_dir() {
            continue;
        }
        let mut dirs = vec![base.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            i += 1;
        }
        for dir in dirs.iter().rev() {
            if let Err(e) = std::fs::remove_dir(dir) {
                eprintln!("xtask: could not remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
fn terminate(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "xtask: the second engine's dockerd did not stop within {STOP_TIMEOUT:?}; killing it"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The processes in a network namespace (`ip netns pids`).
fn netns_pids(netns: &str) -> Result<Vec<i32>> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .context("failed to run ip netns pids")?;
    if !out.status.success() {
        bail!(
            "`ip netns pids {netns}` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("failed to run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    sebs_container::last_lines(&text, n)
}

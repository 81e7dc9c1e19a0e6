//! Test support: the `sebs-store` binary running on the host, and the real client
//! libraries (a Python venv and an npm prefix under the workspace's `target/`, made once and
//! reused, as the needs [`PYTHON_CLIENTS`] and [`NODE_CLIENTS`]) that scripts drive it with.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sebs_testkit::Need;
use serde_json::Value;

/// The keys every test's S3 server is started with.
pub const ACCESS_KEY: &str = "test-access-key";
pub const SECRET_KEY: &str = "test-secret-key-0123456789";

/// The binary under test: `SEBS_STORE_BIN` (the static build `cargo xtask test` ships),
/// else the one cargo just built.
pub fn binary() -> PathBuf {
    std::env::var_os("SEBS_STORE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sebs-store")))
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    DynamoDb,
}

impl Kind {
    fn command(self) -> &'static str {
        match self {
            Kind::S3 => "s3",
            Kind::DynamoDb => "dynamodb",
        }
    }
}

/// A running `sebs-store`; killed on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    pub kind: Kind,
}

impl Server {
    /// Starts a server on a free port of 127.0.0.1 with its data in `data`.
    pub fn start(kind: Kind, data: &Path) -> Server {
        let mut cmd = Command::new(binary());
        cmd.args([kind.command(), "--listen", "127.0.0.1:0", "--data"])
            .arg(data);
        Server::spawn(kind, cmd)
    }

    /// Starts a server from `cmd` (which must run the binary with `--listen 127.0.0.1:0`),
    /// with the test keys, and waits for the line that says where it listens.
    pub fn spawn(kind: Kind, mut cmd: Command) -> Server {
        cmd.env("SEBS_STORE_ACCESS_KEY", ACCESS_KEY)
            .env("SEBS_STORE_SECRET_KEY", SECRET_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut address = None;
        let mut seen = String::new();
        for line in (&mut stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split(" listening on ").nth(1) {
                address = rest.split_whitespace().next().map(str::to_string);
                break;
            }
        }
        let Some(address) = address else {
            let status = child.wait().unwrap();
            panic!("{cmd:?} exited with {status} before listening; it said:\n{seen}");
        };
        // Keep forwarding the server's log to the test's output.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        Server {
            child,
            address,
            kind,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits (at most 15 s) for the exit.
    pub fn stop(self) -> ExitStatus {
        signal(self.pid(), "TERM");
        self.wait()
    }

    /// Waits (at most 15 s) for the exit.
    pub fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} server did not exit within 15 s",
                self.kind
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code and body of a plain, unsigned `GET path` (HTTP/1.1, one connection).
pub fn unsigned_get(address: &str, path: &str) -> (u16, String) {
    use std::io::Write as _;
    let mut conn = std::net::TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("failed to connect to {address}: {e}"));
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Sends `SIG<name>` to `pid` with kill(1), to keep the tests free of libc bindings.
pub fn signal(pid: i32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last stdout line as JSON, after checking that the command succeeded.
    pub fn json(&self) -> Value {
        assert!(
            self.status.success(),
            "the client script failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        let last = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "the client script's last line is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `cmd` to its end.
pub fn run(cmd: &mut Command) -> Output {
    try_run(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// The workspace's `target/`, where the clients are installed once.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// boto3 and minio-py, at the versions the Python wrappers pin, in a venv under `target/`.
pub static PYTHON_CLIENTS: Need = Need::new(
    "boto3 and minio-py in a venv (python3 with venv, and PyPI the first time)",
    || python_install().as_ref().map(drop).map_err(Clone::clone),
);

/// The `minio` npm package and the AWS SDK v3's DynamoDB clients, at the versions the
/// Node.js wrappers pin, under `target/`.
pub static NODE_CLIENTS: Need = Need::new(
    "the minio and AWS SDK v3 npm packages (node and npm, and the npm registry the first time)",
    || node_install().as_ref().map(drop).map_err(Clone::clone),
);

/// The venv's `python` (a trial that needs [`PYTHON_CLIENTS`] has it).
pub fn python_bin() -> &'static Path {
    python_install()
        .as_deref()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The `node_modules` with the Node.js clients (a trial that needs [`NODE_CLIENTS`] has it).
pub fn node_modules() -> &'static Path {
    node_install().as_deref().unwrap_or_else(|e| panic!("{e}"))
}

fn python_install() -> &'static Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON.get_or_init(|| installing(python_clients))
}

fn node_install() -> &'static Result<PathBuf, String> {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    NODE.get_or_init(|| installing(node_clients))
}

/// Runs `install` on `target/sebs-store-clients/`, one installer at a time, also across
/// test processes.
fn installing(install: fn(&Path) -> Result<PathBuf, String>) -> Result<PathBuf, String> {
    let base = target_dir().join("sebs-store-clients");
    std::fs::create_dir_all(&base)
        .map_err(|e| format!("failed to create {}: {e}", base.display()))?;
    let lock_path = base.join(".lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("failed to create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("failed to lock {}: {e}", lock_path.display()))?;
    install(&base)
}

/// A directory name that changes when the pinned versions do, so a new pin gets a fresh
/// install and an old one is never reused by mistake.
fn versioned(base: &Path, kind: &str, specs: &[String]) -> PathBuf {
    let joined = specs.join(" ");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in joined.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    base.join(format!("{kind}-{hash:016x}"))
}

fn python_clients(base: &Path) -> Result<PathBuf, String> {
    let specs: Vec<String> = sebs_wire::storage::PYTHON_STORAGE_WRAPPERS
        .iter()
        .flat_map(|w| w.packages)
        .map(|p| p.pip_requirement())
        .collect();
    let dir = versioned(base, "python", &specs);
    let python = dir.join("bin").join("python");
    if dir.join(".complete").exists() {
        return Ok(python);
    }
    let began = Instant::now();
    let _ = std::fs::remove_dir_all(&dir);
    let venv = try_run(Command::new("python3").arg("-m").arg("venv").arg(&dir))?;
    if !venv.status.success() {
        return Err(format!(
            "`python3 -m venv` failed ({}; Debian: apt-get install python3-venv): {}",
            venv.status,
            venv.stderr.trim()
        ));
    }
    let pip = try_run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&specs),
    )?;
    if !pip.status.success() {
        return Err(format!(
            "pip could not install {specs:?} ({}): {}",
            pip.status,
            pip.stderr.trim()
        ));
    }
    complete(&dir, &specs)?;
    eprintln!(
        "installed the Python clients {specs:?} into {} in {:.1} s",
        dir.display(),
        began.elapsed().as_secs_f64()
    );
    Ok(python)
}

fn node_clients(base: &Path) -> Result<PathBuf, String> {
    let specs: Vec<String> = sebs_wire::storage::NODEJS_STORAGE_WRAPPERS
        .iter()
        .flat_map(|w| w.packages)
        .map(|p| p.npm_spec())
        .collect();
    let dir = versioned(base, "node", &specs);
    let modules = dir.join("node_modules");
    if dir.join(".complete").exists() {
        return Ok(modules);
    }
    let began = Instant::now();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("package.json"), "{\"private\": true}\n"))
        .map_err(|e| format!("failed to prepare {}: {e}", dir.display()))?;
    let node = try_run(Command::new("node").arg("--version"))?;
    if !node.status.success() {
        return Err(format!("`node --version` failed ({})", node.status));
    }
    let npm = try_run(
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--loglevel=error",
            ])
            .args(&specs)
            .current_dir(&dir),
    )?;
    if !npm.status.success() {
        return Err(format!(
            "npm could not install {specs:?} ({}): {}",
            npm.status,
            npm.stderr.trim()
        ));
    }
    complete(&dir, &specs)?;
    eprintln!(
        "installed the Node.js clients {specs:?} into {} in {:.1} s (node {})",
        dir.display(),
        began.elapsed().as_secs_f64(),
        node.stdout.trim()
    );
    Ok(modules)
}

/// Marks an install as complete, so that later runs reuse it.
fn complete(dir: &Path, specs: &[String]) -> Result<(), String> {
    let path = dir.join(".complete");
    std::fs::write(&path, specs.join("\n"))
        .map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// Runs `cmd` to its end; an error when it cannot be started.
fn try_run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    Ok(Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A client script, written to a temp dir, run with `args` and `env`; its output.
pub fn python(script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.py");
    std::fs::write(&path, script).unwrap();
    let mut cmd = Command::new(python_bin());
    cmd.arg(&path).args(args).current_dir(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// As [`python`], for a Node.js script.
pub fn node(script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.js");
    std::fs::write(&path, script).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(&path)
        .args(args)
        .current_dir(dir.path())
        .env("NODE_PATH", node_modules());
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// A running client script whose stdout is read line by line.
pub struct Running {
    pub child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Starts a Python client script.
    pub fn python(script: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.py");
        std::fs::write(&path, script).unwrap();
        let mut child = Command::new(python_bin())
            .arg(&path)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running {
            child,
            lines,
            _dir: dir,
        }
    }

    /// Waits for the next line of stdout.
    pub fn next_line(&mut self) -> String {
        match self.lines.next() {
            Some(Ok(line)) => line,
            _ => panic!("the client script ended early: {}", self.stderr()),
        }
    }

    /// Waits for the end; its last stdout line as JSON.
    pub fn finish(mut self) -> Value {
        let rest: Vec<String> = self.lines.by_ref().map_while(Result::ok).collect();
        let status = self.child.wait().unwrap();
        let stderr = self.stderr();
        Output {
            status,
            stdout: rest.join("\n"),
            stderr,
        }
        .json()
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Benchmark inputs and output validation, by running the benchmark's `input.py` with the
//! host's `python3` (a pyenv shim's interpreter directly, see [`crate::python`]).
//!
//! `input.py` talks to storage through the functions SeBS hands it (`upload_func`,
//! `nosql_func`, and the `storage` object of `validate_output`). Here those are stubs in a
//! small Python driver that send each call as one JSON line to this process, which answers
//! it through a [`StorageCalls`] the caller provides, so that this crate stays free of any
//! storage client and the calls are made by the same code that starts the stores.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use sebs_wire::Language;

use crate::benchmark::BenchmarkDir;

/// The input size a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    Test,
    Small,
    Large,
}

impl Size {
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Test => "test",
            Size::Small => "small",
            Size::Large => "large",
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A size name other than `test`, `small` or `large`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown input size {name:?}: expected \"test\", \"small\" or \"large\"")]
pub struct UnknownSize {
    pub name: String,
}

impl FromStr for Size {
    type Err = UnknownSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(Size::Test),
            "small" => Ok(Size::Small),
            "large" => Ok(Size::Large),
            _ => Err(UnknownSize {
                name: s.to_string(),
            }),
        }
    }
}

/// What a benchmark's `validate_output` said about an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    Passed,
    /// The validator's message.
    Failed(String),
    /// The benchmark has no `validate_output` (or no `input.py`).
    NoValidator,
}

/// The keys of one NoSQL table a benchmark allocates: string HASH and RANGE attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableKeys {
    pub primary_key: String,
    pub secondary_key: String,
}

/// What a benchmark needs at run time, as its `input.py` says: SeBS decides from
/// `buckets_count()` and `allocate_nosql()`, not from `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// `buckets_count()`: how many input and output prefixes; `None` without the function.
    pub buckets: Option<(usize, usize)>,
    /// `allocate_nosql()`: logical table name → keys; empty without the function.
    pub tables: BTreeMap<String, TableKeys>,
}

impl Needs {
    /// Whether the function needs object storage: some prefix to read or write.
    /// `buckets_count()` of `(0, 0)` (SeBS's 010.sleep and 040.server-reply have it) asks
    /// for nothing here. SeBS makes a bucket even then, but neither of them passes it on, so
    /// we start no store for them and their `generate_input` gets `benchmarks_bucket=None`.
    pub fn object_storage(&self) -> bool {
        matches!(self.buckets, Some((i, o)) if i + o > 0)
    }

    /// Whether the function needs NoSQL tables.
    pub fn nosql(&self) -> bool {
        !self.tables.is_empty()
    }
}

/// Where a benchmark's objects go: SeBS's one bucket per deployment and the benchmark's
/// prefixes in it, `<benchmark>-<i>-input` and `<benchmark>-<i>-output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketLayout {
    pub bucket: String,
    pub input_prefixes: Vec<String>,
    pub output_prefixes: Vec<String>,
}

impl BucketLayout {
    /// The prefixes of `benchmark` for `buckets_count()` = `(inputs, outputs)` in `bucket`.
    pub fn new(bucket: &str, benchmark: &str, (inputs, outputs): (usize, usize)) -> Self {
        BucketLayout {
            bucket: bucket.to_string(),
            input_prefixes: (0..inputs)
                .map(|i| format!("{benchmark}-{i}-input"))
                .collect(),
            output_prefixes: (0..outputs)
                .map(|i| format!("{benchmark}-{i}-output"))
                .collect(),
        }
    }
}

/// One storage call that `input.py` made.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum StorageCall {
    /// `upload_func(index, key, path)`: the file goes to `<input_prefixes[index]>/<key>`.
    Upload {
        index: usize,
        key: String,
        path: PathBuf,
    },
    /// `nosql_func(benchmark, table, item, (pk, v), (sk, v))`: one item, keys included.
    NosqlPut {
        benchmark: String,
        table: String,
        item: serde_json::Map<String, serde_json::Value>,
    },
    /// `storage.download(bucket, key, path)` in `validate_output`.
    Download {
        bucket: String,
        key: String,
        path: PathBuf,
    },
}

/// Answers the storage calls of `input.py`. An `Err` becomes a Python exception in the
/// script, carrying the message; a call may also be taken on and finished later (uploads
/// run concurrently), as long as [`StorageCalls::finish`] waits for it.
pub trait StorageCalls: Sync {
    fn call(&self, call: StorageCall) -> impl Future<Output = Result<(), String>> + Send;
    /// Waits for every call taken on; an `Err` fails the input.
    fn finish(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// No storage: every call is refused with a message saying so.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStorage;

impl StorageCalls for NoStorage {
    async fn call(&self, call: StorageCall) -> Result<(), String> {
        Err(match call {
            StorageCall::Upload { .. } | StorageCall::Download { .. } => {
                "no object storage is configured for this benchmark".to_string()
            }
            StorageCall::NosqlPut { .. } => {
                "no NoSQL storage is configured for this benchmark".to_string()
            }
        })
    }

    async fn finish(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What `input.py`'s `generate_input` is called with, besides the size.
#[derive(Debug, Clone, Default)]
pub struct InputContext {
    /// `<benchmarks-data>/<group>/<benchmark>`, or `None` (SeBS passes None when the data
    /// repository has no folder for the benchmark).
    pub data_dir: Option<PathBuf>,
    /// The bucket and prefixes; `None` for a benchmark without object storage.
    pub buckets: Option<BucketLayout>,
}

/// What `validate_output` is called with, besides input and output.
#[derive(Debug, Clone, Default)]
pub struct ValidateContext {
    pub data_dir: Option<PathBuf>,
    /// The root of SeBS's data repository: validators that import
    /// `sebs.utils.get_project_root()` find it as `<root>/benchmarks-data`.
    pub data_root: Option<PathBuf>,
}

/// An input that could not be made, or an output that could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("start python3 for {benchmark}'s input.py")]
    Spawn {
        benchmark: String,
        #[source]
        source: std::io::Error,
    },
    #[error("talk to python3 running {benchmark}'s input.py")]
    Pipe {
        benchmark: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{stage} of {benchmark}: input.py failed ({status}):\n{stderr}")]
    Script {
        benchmark: String,
        stage: &'static str,
        status: String,
        stderr: String,
    },
    #[error(
        "{stage} of {benchmark}: input.py imports `{module}`, which the host's python3 does \
         not have; install it with `python3 -m pip install {package}` (SeBS installs it with \
         its requirements.txt)"
    )]
    MissingModule {
        benchmark: String,
        stage: &'static str,
        module: String,
        package: String,
    },
    #[error("{stage} of {benchmark}: a storage call of input.py failed: {message}")]
    Storage {
        benchmark: String,
        stage: &'static str,
        message: String,
    },
    #[error("{stage} of {benchmark}: input.py printed something that is not JSON: {line}")]
    BadJson {
        benchmark: String,
        stage: &'static str,
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("keep input.py's inspection in {path}")]
    Memo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generate input of {benchmark}: it has neither input.py nor input.json")]
    NoInput { benchmark: String },
    #[error("{stage} of {benchmark}: {what}")]
    Shape {
        benchmark: String,
        stage: &'static str,
        what: String,
    },
}

/// The Python side: imports `input.py` as soon as it starts, then speaks JSON lines with us.
/// Each command is one line on stdin (`{"command": ..., "args": ...}`); each storage call
/// goes out as one line on stdout and waits for its answer on stdin; a command's last line
/// out is `{"result": ...}`. It exits when stdin closes. The benchmark's own prints go to
/// stderr.
const DRIVER: &str = include_str!("input_driver.py");

/// What a benchmark needs at run time: its `input.py`'s `buckets_count()` and
/// `allocate_nosql()`, without calling anything else. A benchmark without `input.py` needs
/// nothing.
pub async fn inspect_needs(bench: &BenchmarkDir) -> Result<Needs, InputError> {
    InputSession::start(bench).inspect().await
}

/// The input for `bench` at `size`: what `input.py`'s `generate_input` returns, or, for a
/// benchmark without `input.py`, the contents of its `input.json` (one input for all sizes).
///
/// Uploads and NoSQL items the script makes go through `storage`; its work is waited for
/// ([`StorageCalls::finish`]) before the input is returned.
pub async fn generate_input(
    bench: &BenchmarkDir,
    size: Size,
    context: &InputContext,
    storage: &impl StorageCalls,
) -> Result<serde_json::Value, InputError> {
    InputSession::start(bench)
        .generate(size, context, storage)
        .await
}

/// One `python3` running a benchmark's `input.py` for the commands of one start: it is
/// spawned (and imports `input.py`) at [`InputSession::start`], so that the interpreter's
/// start-up overlaps whatever the caller does meanwhile; [`InputSession::inspect`] and then
/// [`InputSession::generate`] are answered by the same process, which exits after the
/// latter. Dropping a session kills its process.
pub struct InputSession {
    name: String,
    path: PathBuf,
    driver: Driver,
    /// What names this session's inspection in a [`NeedsMemo`]: a hash of `input.py`, the
    /// driver and the `python3` that runs them; `None` without `input.py` or when it could
    /// not be read.
    memo_key: Option<String>,
}

/// The answers of earlier inspections, one small file each in a directory (the package
/// cache's, [`crate::PackageCache::needs_memo`]), named by the hash of what decides them:
/// `input.py`'s bytes, the driver's and which `python3` ran them. A start that finds its
/// answer there need not wait for the interpreter before it packages and deploys; it still
/// inspects, and a different answer is the caller's to act on (an `input.py` whose answer
/// depends on more than its own text). A changed `input.py` has another name, so it is never
/// answered from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsMemo {
    pub dir: PathBuf,
}

/// A remembered answer's file format.
#[derive(Serialize, Deserialize)]
struct MemoFile {
    buckets: Option<(usize, usize)>,
    tables: BTreeMap<String, TableKeys>,
}

impl NeedsMemo {
    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The remembered answer of the inspection named `key`; a missing or unreadable file is
    /// no answer.
    fn recall(&self, key: &str) -> Option<Needs> {
        let text = std::fs::read(self.file(key)).ok()?;
        let memo: MemoFile = serde_json::from_slice(&text).ok()?;
        Some(Needs {
            buckets: memo.buckets,
            tables: memo.tables,
        })
    }

    /// Keeps `needs` as the answer named `key`, written aside and renamed into place so
    /// that a concurrent start reads a whole file or none.
    fn keep(&self, key: &str, needs: &Needs) -> Result<(), InputError> {
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| InputError::Memo { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let memo = MemoFile {
            buckets: needs.buckets,
            tables: needs.tables.clone(),
        };
        let text = serde_json::to_vec(&memo).unwrap_or_default();
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        std::io::Write::write_all(&mut tmp, &text).map_err(io(tmp.path()))?;
        let path = self.file(key);
        tmp.persist(&path).map_err(|e| InputError::Memo {
            path,
            source: e.error,
        })?;
        Ok(())
    }
}

enum Driver {
    /// The benchmark has no `input.py`.
    None,
    /// `python3` could not be spawned: the first command reports it.
    Failed(Option<InputError>),
    Running(Box<Running>),
    /// The process has exited (or its answers cannot be trusted any more).
    Ended,
}

struct Running {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    /// Whether the driver still reads what we write (it may have died).
    alive: bool,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// stderr is read concurrently, so that a chatty script never blocks on a full pipe.
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

impl InputSession {
    /// Spawns `python3` on `bench`'s `input.py`, if it has one; a spawn that fails is
    /// reported by the first command.
    pub fn start(bench: &BenchmarkDir) -> InputSession {
        let input_py = bench.path.join("input.py");
        let (driver, memo_key) = if !input_py.is_file() {
            (Driver::None, None)
        } else {
            let python = host_python(bench);
            let driver = match spawn_driver(bench, &input_py, &python) {
                Ok(running) => Driver::Running(Box::new(running)),
                Err(source) => Driver::Failed(Some(InputError::Spawn {
                    benchmark: bench.name.clone(),
                    source,
                })),
            };
            // After the spawn: hashing input.py is no reason for python3 to start later.
            (driver, memo_key(bench, &input_py, &python))
        };
        InputSession {
            name: bench.name.clone(),
            path: bench.path.clone(),
            driver,
            memo_key,
        }
    }

    /// What an earlier inspection of this `input.py` by this `python3` answered, kept in
    /// `memo`; a benchmark without `input.py` needs nothing, without asking.
    pub fn recall_needs(&self, memo: &NeedsMemo) -> Option<Needs> {
        if matches!(self.driver, Driver::None) {
            return Some(Needs::default());
        }
        memo.recall(self.memo_key.as_deref()?)
    }

    /// Keeps `needs`, this session's inspection, in `memo` for later sessions of the same
    /// `input.py` and `python3`.
    pub fn keep_needs(&self, memo: &NeedsMemo, needs: &Needs) -> Result<(), InputError> {
        match &self.memo_key {
            Some(key) => memo.keep(key, needs),
            None => Ok(()),
        }
    }

    /// What the benchmark needs at run time (see [`inspect_needs`]).
    pub async fn inspect(&mut self) -> Result<Needs, InputError> {
        if matches!(self.driver, Driver::None) {
            return Ok(Needs::default());
        }
        let stage = "inspect input.py";
        let answer = self
            .command(stage, "inspect", serde_json::json!({}), &NoStorage)
            .await?;
        #[derive(Deserialize)]
        struct Inspected {
            buckets: Option<(usize, usize)>,
            #[serde(default)]
            tables: Option<BTreeMap<String, TableKeys>>,
        }
        let inspected: Inspected =
            serde_json::from_value(answer).map_err(|e| InputError::Shape {
                benchmark: self.name.clone(),
                stage,
                what: format!(
                    "buckets_count() must return two integers and allocate_nosql() a dict of \
                     {{table: {{\"primary_key\": name, \"secondary_key\": name}}}}: {e}"
                ),
            })?;
        Ok(Needs {
            buckets: inspected.buckets,
            tables: inspected.tables.unwrap_or_default(),
        })
    }

    /// The input at `size` (see [`generate_input`]); the session's last command: the
    /// process is waited for.
    pub async fn generate(
        mut self,
        size: Size,
        context: &InputContext,
        storage: &impl StorageCalls,
    ) -> Result<serde_json::Value, InputError> {
        if matches!(self.driver, Driver::None) {
            let path = self.path.join("input.json");
            if !path.is_file() {
                return Err(InputError::NoInput {
                    benchmark: self.name.clone(),
                });
            }
            let text = std::fs::read_to_string(&path).map_err(|source| InputError::Read {
                path: path.clone(),
                source,
            })?;
            return serde_json::from_str(&text)
                .map_err(|source| InputError::Parse { path, source });
        }
        let (bucket, inputs, outputs) = match &context.buckets {
            Some(b) => (
                Some(b.bucket.clone()),
                b.input_prefixes.clone(),
                b.output_prefixes.clone(),
            ),
            None => (None, Vec::new(), Vec::new()),
        };
        let args = serde_json::json!({
            "size": size.as_str(),
            "data_dir": context.data_dir,
            "bucket": bucket,
            "input_prefixes": inputs,
            "output_prefixes": outputs,
        });
        let stage = "generate input";
        let value = self.command(stage, "generate", args, storage).await?;
        self.finish(stage).await?;
        storage
            .finish()
            .await
            .map_err(|message| InputError::Storage {
                benchmark: self.name.clone(),
                stage,
                message,
            })?;
        Ok(value)
    }

    /// Sends one command and answers its storage calls until its result comes; a driver
    /// that ends before is waited for and its failure reported.
    async fn command(
        &mut self,
        stage: &'static str,
        command: &str,
        args: serde_json::Value,
        storage: &impl StorageCalls,
    ) -> Result<serde_json::Value, InputError> {
        let running = match &mut self.driver {
            Driver::Running(running) => running,
            Driver::Failed(error) => {
                let error = error.take();
                self.driver = Driver::Ended;
                return Err(error.unwrap_or_else(|| self.ended(stage)));
            }
            Driver::None | Driver::Ended => return Err(self.ended(stage)),
        };
        let pipe_err = |source| InputError::Pipe {
            benchmark: self.name.clone(),
            source,
        };
        let mut line = serde_json::json!({"command": command, "args": args}).to_string();
        line.push('\n');
        // A script that dies while importing never reads its command; its exit status
        // tells why, so a broken pipe here is not the error to report.
        running.write(line.as_bytes()).await;
        let mut storage_failure = None;
        let mut bad_line = None;
        let mut result = None;
        while let Some(text) = running.lines.next_line().await.map_err(pipe_err)? {
            match serde_json::from_str::<DriverLine>(&text) {
                Ok(DriverLine::Result { result: r }) => {
                    result = Some(r);
                    break;
                }
                Ok(DriverLine::StorageFailed { storage_failed }) => {
                    storage_failure = Some(storage_failed)
                }
                Ok(DriverLine::Call(call)) => {
                    let answer = match storage.call(call).await {
                        Ok(()) => serde_json::json!({"ok": true}),
                        Err(message) => serde_json::json!({"error": message}),
                    };
                    let mut reply = answer.to_string();
                    reply.push('\n');
                    running.write(reply.as_bytes()).await;
                }
                Err(source) => {
                    bad_line.get_or_insert((text, source));
                }
            }
        }
        if let Some(message) = storage_failure {
            self.driver = Driver::Ended;
            return Err(InputError::Storage {
                benchmark: self.name.clone(),
                stage,
                message,
            });
        }
        let Some(result) = result else {
            // The driver ended without an answer: its status and stderr say why.
            return Err(match self.finish(stage).await {
                Err(e) => e,
                Ok(stderr) => InputError::Shape {
                    benchmark: self.name.clone(),
                    stage,
                    what: format!("input.py ended without an answer; its stderr:\n{stderr}"),
                },
            });
        };
        if let Some((line, source)) = bad_line {
            self.driver = Driver::Ended;
            return Err(InputError::BadJson {
                benchmark: self.name.clone(),
                stage,
                line,
                source,
            });
        }
        Ok(result)
    }

    /// Closes the driver's stdin and waits for it to exit; a failed exit is `stage`'s error,
    /// a clean one gives its stderr.
    async fn finish(&mut self, stage: &'static str) -> Result<String, InputError> {
        let Driver::Running(running) = std::mem::replace(&mut self.driver, Driver::Ended) else {
            return Ok(String::new());
        };
        let Running {
            mut child,
            stdin,
            stderr,
            ..
        } = *running;
        drop(stdin);
        let status = child.wait().await.map_err(|source| InputError::Pipe {
            benchmark: self.name.clone(),
            source,
        })?;
        let stderr = String::from_utf8_lossy(&stderr.await.unwrap_or_default()).into_owned();
        if status.success() {
            return Ok(stderr);
        }
        if let Some(module) = missing_module(&stderr) {
            return Err(InputError::MissingModule {
                benchmark: self.name.clone(),
                stage,
                package: pip_package(&module).to_string(),
                module,
            });
        }
        let status = match status.code() {
            Some(c) => format!("status {c}"),
            None => status.to_string(),
        };
        Err(InputError::Script {
            benchmark: self.name.clone(),
            stage,
            status,
            stderr,
        })
    }

    /// A command after the driver ended (a caller's mistake, not the script's).
    fn ended(&self, stage: &'static str) -> InputError {
        InputError::Shape {
            benchmark: self.name.clone(),
            stage,
            what: "input.py's driver has already ended".to_string(),
        }
    }
}

impl Running {
    /// Writes to the driver while it reads; a driver that stopped reading is left to be
    /// judged by its exit.
    async fn write(&mut self, bytes: &[u8]) {
        if let (true, Some(stdin)) = (self.alive, self.stdin.as_mut()) {
            self.alive = stdin.write_all(bytes).await.is_ok() && stdin.flush().await.is_ok();
        }
    }
}

/// The `python3` that runs `bench`'s `input.py`, as the process's environment chooses it.
fn host_python(bench: &BenchmarkDir) -> crate::python::HostPython {
    crate::python::host_python(
        std::env::var_os("PATH").as_deref(),
        std::env::var_os("PYENV_VERSION").as_deref(),
        &bench.path,
    )
}

/// The name of `input_py`'s inspection in a [`NeedsMemo`]: the hash of the benchmark's
/// name, `input.py`, the driver, and the `python3` (its path and `PATH`) that runs them.
fn memo_key(
    bench: &BenchmarkDir,
    input_py: &std::path::Path,
    python: &crate::python::HostPython,
) -> Option<String> {
    use md5::{Digest, Md5};
    let script = std::fs::read(input_py).ok()?;
    let mut md5 = Md5::new();
    let path = python.path.as_ref().map(|p| p.as_encoded_bytes());
    let parts: [&[u8]; 5] = [
        bench.name.as_bytes(),
        &script,
        DRIVER.as_bytes(),
        python.program.as_os_str().as_encoded_bytes(),
        path.unwrap_or_default(),
    ];
    for part in parts {
        md5.update((part.len() as u64).to_le_bytes());
        md5.update(part);
    }
    Some(format!("{}-{}", bench.name, hex::encode(md5.finalize())))
}

fn spawn_driver(
    bench: &BenchmarkDir,
    input_py: &std::path::Path,
    python: &crate::python::HostPython,
) -> std::io::Result<Running> {
    let mut command = tokio::process::Command::new(&python.program);
    if let Some(path) = &python.path {
        command.env("PATH", path);
    }
    let mut child = command
        .arg("-B")
        .arg("-c")
        .arg(DRIVER)
        .arg(input_py)
        .arg(&bench.name)
        .current_dir(&bench.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "python3 has no stdout pipe")
    })?;
    let mut stderr_pipe = child.stderr.take();
    let stderr = tokio::spawn(async move {
        let mut s = Vec::new();
        if let Some(e) = stderr_pipe.as_mut() {
            let _ = e.read_to_end(&mut s).await;
        }
        s
    });
    Ok(Running {
        child,
        alive: stdin.is_some(),
        stdin,
        lines: BufReader::new(stdout).lines(),
        stderr,
    })
}

/// Checks `output` (the handler's return value) for `input` with the benchmark's
/// `validate_output(data_dir, input, output, language[, storage])`; validators that take a
/// `storage` argument get one whose `download` goes through `storage`.
pub async fn validate_output(
    bench: &BenchmarkDir,
    context: &ValidateContext,
    input: &serde_json::Value,
    output: &serde_json::Value,
    language: Language,
    storage: &impl StorageCalls,
) -> Result<Validation, InputError> {
    let input_py = bench.path.join("input.py");
    if !input_py.is_file() {
        return Ok(Validation::NoValidator);
    }
    // `get_project_root() / "benchmarks-data"` must be the data root in use: a folder of
    // our own whose `benchmarks-data` points there.
    let project_root = match &context.data_root {
        Some(root) => {
            let dir = tempfile::Builder::new()
                .prefix("sebs-local-project-")
                .tempdir()
                .map_err(|source| InputError::Read {
                    path: std::env::temp_dir(),
                    source,
                })?;
            let link = dir.path().join("benchmarks-data");
            let target = std::path::absolute(root).unwrap_or_else(|_| root.clone());
            std::os::unix::fs::symlink(&target, &link)
                .map_err(|source| InputError::Read { path: link, source })?;
            Some(dir)
        }
        None => None,
    };
    let args = serde_json::json!({
        "data_dir": context.data_dir,
        "input": input,
        "output": output,
        "language": language.as_str(),
        "project_root": project_root.as_ref().map(|d| d.path()),
    });
    let stage = "validate output";
    let mut session = InputSession::start(bench);
    let answer = session.command(stage, "validate", args, storage).await?;
    session.finish(stage).await?;
    let status = answer.get("status").and_then(|s| s.as_str()).unwrap_or("");
    Ok(match status {
        "passed" => Validation::Passed,
        "none" => Validation::NoValidator,
        _ => Validation::Failed(
            answer
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        ),
    })
}

/// One line the driver writes on stdout.
#[derive(Deserialize)]
#[serde(untagged)]
enum DriverLine {
    Result {
        result: serde_json::Value,
    },
    /// The storage call that the script's failure came from (the script may have caught and
    /// re-raised it as something else, so this is sent before it exits).
    StorageFailed {
        storage_failed: String,
    },
    Call(StorageCall),
}

/// The top-level module of the last `ModuleNotFoundError` in a traceback.
fn missing_module(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("ModuleNotFoundError: No module named "))?;
    let quoted = line.trim_start_matches("ModuleNotFoundError: No module named ");
    let name = quoted.trim().trim_matches(|c| c == '\'' || c == '"');
    let top = name.split('.').next().unwrap_or(name);
    (!top.is_empty()).then(|| top.to_string())
}

/// The PyPI package that provides `module`, where the names differ.
fn pip_package(module: &str) -> &str {
    match module {
        "PIL" => "pillow",
        "cv2" => "opencv-python",
        "yaml" => "pyyaml",
        "sklearn" => "scikit-learn",
        "skimage" => "scikit-image",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_modules_are_named_with_their_package() {
        let trace = "Traceback (most recent call last):\n  File \"input.py\", line 6\n    \
                     from PIL import Image\nModuleNotFoundError: No module named 'PIL'\n";
        assert_eq!(missing_module(trace).as_deref(), Some("PIL"));
        assert_eq!(pip_package("PIL"), "pillow");
        assert_eq!(
            missing_module("ModuleNotFoundError: No module named 'numpy.linalg'").as_deref(),
            Some("numpy")
        );
        assert_eq!(missing_module("KeyError: 'x'"), None);
    }

    #[test]
    fn sizes() {
        for s in [Size::Test, Size::Small, Size::Large] {
            assert_eq!(s.as_str().parse::<Size>(), Ok(s));
        }
        assert_eq!(
            "medium".parse::<Size>().unwrap_err().to_string(),
            "unknown input size \"medium\": expected \"test\", \"small\" or \"large\""
        );
    }

    #[test]
    fn bucket_layouts() {
        let check = |counts, inputs: &[&str], outputs: &[&str]| {
            let got = BucketLayout::new("b", "311.compression", counts);
            assert_eq!(got.bucket, "b");
            assert_eq!(got.input_prefixes, inputs);
            assert_eq!(got.output_prefixes, outputs);
        };
        check((0, 0), &[], &[]);
        check(
            (1, 1),
            &["311.compression-0-input"],
            &["311.compression-0-output"],
        );
        check(
            (2, 0),
            &["311.compression-0-input", "311.compression-1-input"],
            &[],
        );
    }

    #[test]
    fn needs() {
        let check = |buckets, tables: &[&str], object: bool, nosql: bool| {
            let needs = Needs {
                buckets,
                tables: tables
                    .iter()
                    .map(|t| {
                        (
                            t.to_string(),
                            TableKeys {
                                primary_key: "a".into(),
                                secondary_key: "b".into(),
                            },
                        )
                    })
                    .collect(),
            };
            assert_eq!(needs.object_storage(), object, "{needs:?}");
            assert_eq!(needs.nosql(), nosql, "{needs:?}");
        };
        check(None, &[], false, false);
        check(Some((0, 0)), &[], false, false);
        check(Some((1, 0)), &[], true, false);
        check(Some((0, 1)), &["cart"], true, true);
        check(None, &["cart"], false, true);
    }
}

//! The wire format spoken between a function's in-container agent and whoever invokes it.
//!
//! The agent (`sebs-agent`) serves SeBS's local protocol and the trigger (`sebs-trigger`)
//! reads it; both use the types here so the format is written once:
//!
//! - [`InvocationAnswer`]: the 200 answer to `POST /`, SeBS's shape plus a few fields of ours
//!   that SeBS readers ignore.
//! - [`ErrorAnswer`] with its [`ErrorKind`]: every non-200 answer, as JSON that says why.
//! - [`AgentSettings`]: how a container's agent is configured (port, workers, timeout,
//!   language), as environment variables, so the container runtime and the agent agree.
//! - [`MemorySource`]: what an answer's `memory_peak_bytes` measures.
//! - [`EpochMicros`]: SeBS's `"seconds.micros"` timestamps, parsed and printed exactly.
//! - [`storage`]: the environment that names a function's stores, and our `storage` and
//!   `nosql` modules (SeBS's API) with the client libraries they need.
//! - [`handoff`]: the warm path, where a worker answers a connection the agent passed it.
//! - [`ErrorChain`]: an error with its causes as one line, the form of every error message
//!   the agent answers with and every crate logs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The warm path: connections a worker answers itself, and the bytes both sides write.
pub mod handoff;
/// The protocol between the agent and its language workers (JSON lines), and the workers.
pub mod worker;

/// What functions that use object storage or NoSQL get: environment and modules.
pub mod storage;

/// The port the agent listens on inside a container, as in SeBS.
pub const DEFAULT_PORT: u16 = 9000;
/// Readiness probe: answers 200 once the server is up.
pub const ALIVE_PATH: &str = "/alive";
/// Response header naming the instance (the container's host name, which Docker sets to
/// the first 12 digits of its id) that served a request, so that a caller can tell when an
/// address it kept now belongs to another container.
pub const INSTANCE_HEADER: &str = "x-sebs-instance";
/// `GET` answers the invocations the agent has served, as an [`InvocationLog`], so that a
/// memory profile can show where each call ran.
pub const INVOCATIONS_PATH: &str = "/invocations";
/// Invocations an agent remembers; older ones are dropped (and counted) first, so the log
/// stays a few hundred KiB, charged to the function's memory.
pub const INVOCATION_LOG_CAPACITY: usize = 10_000;
/// `GET` answers the memory the agent sampled of its own cgroup since the last `GET`, as
/// sebs-memory's journal lines (a `start` line first, then `samples`), when it was told to
/// sample ([`AgentSettings::memory_interval_ms`]); 404 otherwise. For engines whose cgroup
/// files this host cannot read.
pub const MEMORY_PATH: &str = "/memory";
/// Where the code package is mounted (read-only) in a function container.
pub const CODE_DIR: &str = "/function";
/// Where the agent binary is mounted (read-only) in a function container.
pub const AGENT_PATH: &str = "/sebs/agent";
/// The only place a function may write in its container, also the workers' `HOME`: a tmpfs
/// of a set size (whose files count against the memory limit), or with `--tmp-on disk` a
/// volume of the container's own, without a size limit.
pub const TMP_DIR: &str = "/tmp";

/// A point in time as SeBS writes it: seconds since the Unix epoch with six decimals.
///
/// Kept as integer microseconds so that differences are exact; `f64` seconds lose the
/// last microsecond digit around the year 2026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EpochMicros(pub i64);

impl EpochMicros {
    /// The current wall-clock time.
    pub fn now() -> EpochMicros {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        EpochMicros(d.as_micros() as i64)
    }

    /// Microseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn micros_since(self, earlier: EpochMicros) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for EpochMicros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

/// A timestamp that is not of the form `seconds[.fraction]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse timestamp {text:?}: expected seconds since the epoch like \"1700000000.123456\"")]
pub struct TimestampError {
    pub text: String,
}

impl FromStr for EpochMicros {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TimestampError {
            text: s.to_string(),
        };
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let secs: i64 = whole.parse().map_err(|_| err())?;
        // Take the first six fractional digits, padding short fractions with zeros.
        let mut micros: i64 = 0;
        for i in 0..6 {
            let digit = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
            micros = micros * 10 + digit;
        }
        let total = secs
            .checked_mul(1_000_000)
            .and_then(|v| v.checked_add(micros))
            .ok_or_else(err)?;
        Ok(EpochMicros(if neg { -total } else { total }))
    }
}

/// The handler's return value, nested as SeBS's local server nests it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerResult {
    pub output: serde_json::Value,
}

/// The answer to `GET` [`INVOCATIONS_PATH`]: when each invocation's handler ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvocationLog {
    /// Oldest first; at most [`INVOCATION_LOG_CAPACITY`].
    pub invocations: Vec<InvocationRecord>,
    /// Invocations served but no longer in the log.
    pub dropped: u64,
    /// Of every invocation served, how many the agent relayed to a worker (every cold one,
    /// and warm ones on a connection no idle worker could take).
    #[serde(default)]
    pub relayed: u64,
    /// Of every invocation served, how many a worker answered itself, on a connection the
    /// agent passed it (the warm path, `handoff`).
    #[serde(default)]
    pub by_worker: u64,
}

/// One invocation in an [`InvocationLog`]: its handler's `begin` and `end` (microseconds
/// since the epoch, the answer's clock), and how it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    pub begin_us: i64,
    pub end_us: i64,
    pub is_cold: bool,
    /// Whether the handler returned (rather than raised, timed out or died).
    pub ok: bool,
}

/// The 200 answer to `POST /`.
///
/// The first five fields are SeBS's; the others are ours and optional on the wire so that
/// answers of SeBS's own server parse too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationAnswer {
    /// Taken in the language worker just before the handler was called.
    pub begin: String,
    /// Taken in the language worker just after the handler returned.
    pub end: String,
    pub request_id: String,
    /// True exactly for the first invocation a container serves.
    pub is_cold: bool,
    pub result: HandlerResult,
    /// Microseconds the worker that served this call spent importing the function, when
    /// this call was that worker's first; 0 otherwise.
    #[serde(default)]
    pub init_time_us: u64,
    /// Microseconds from the agent receiving the request to it having the worker's reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_time_us: Option<u64>,
    /// Peak memory of the invocation in bytes, when the agent could measure it.
    ///
    /// The figure includes the container's baseline, as AWS's "Max Memory Used" includes
    /// the runtime's: with [`MemorySource::Cgroup`] it is the whole container (agent, idle
    /// workers, page cache) at its highest during the call; with the process sources it is
    /// the worker's resident set, interpreter and imported function included. Subtract a
    /// no-op call's figure to get what the handler itself added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// Where `memory_peak_bytes` comes from; absent when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_source: Option<MemorySource>,
}

/// What an invocation's `memory_peak_bytes` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    /// The container's memory cgroup peak, reset just before the call and read just after
    /// (`memory.max_usage_in_bytes` on cgroup v1, `memory.peak` on v2 from Linux 6.12). Used
    /// only when the container served this call alone: one worker, no other request in flight.
    Cgroup,
    /// The worker process's peak resident set (`VmHWM`), reset just before the call through
    /// `/proc/self/clear_refs`. Processes the handler starts are not counted.
    Process,
    /// The worker process's peak resident set over its whole life (`ru_maxrss`), when the
    /// kernel did not let it be reset: an upper bound of the call's peak.
    ProcessLifetime,
}

impl MemorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySource::Cgroup => "cgroup",
            MemorySource::Process => "process",
            MemorySource::ProcessLifetime => "process_lifetime",
        }
    }
}

impl fmt::Display for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an invocation failed; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request body was not a JSON value.
    BadRequest,
    /// The function could not be imported (syntax error, missing module, missing handler).
    InitError,
    /// The handler raised; `type` and `traceback` say what.
    HandlerError,
    /// The handler's return value could not be sent back as JSON.
    BadOutput,
    /// The handler ran past the function's timeout and its worker was stopped.
    Timeout,
    /// The language worker died during the invocation (crash, `exit`, signal).
    WorkerDied,
    /// The worker was killed for using more memory than the function may.
    OutOfMemory,
    /// Anything else that went wrong inside the agent.
    Internal,
}

impl ErrorKind {
    /// The HTTP status the agent answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Timeout => 504,
            ErrorKind::InitError
            | ErrorKind::HandlerError
            | ErrorKind::BadOutput
            | ErrorKind::WorkerDied
            | ErrorKind::OutOfMemory
            | ErrorKind::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::InitError => "function failed to initialise",
            ErrorKind::HandlerError => "handler raised an exception",
            ErrorKind::BadOutput => "handler returned a value that is not JSON",
            ErrorKind::Timeout => "timeout",
            ErrorKind::WorkerDied => "worker died",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::Internal => "internal agent error",
        })
    }
}

/// Every non-200 answer of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// One line for a human: what happened.
    pub error: String,
    pub kind: ErrorKind,
    /// The exception's type name, for handler and init errors.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
    /// The formatted traceback, for handler and init errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Whether this was the container's first invocation (a failed cold start).
    #[serde(default)]
    pub is_cold: bool,
    /// Around the handler, as in [`InvocationAnswer`], when the handler ran and raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// As in [`InvocationAnswer`]: the import this call waited for, also when it failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub init_time_us: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ErrorAnswer {
    pub fn new(kind: ErrorKind, error: impl Into<String>) -> ErrorAnswer {
        ErrorAnswer {
            error: error.into(),
            kind,
            exception_type: None,
            traceback: None,
            request_id: None,
            is_cold: false,
            begin: None,
            end: None,
            init_time_us: 0,
        }
    }
}

/// Languages a function can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Nodejs,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Nodejs => "nodejs",
        }
    }

    /// The version used when none is given: one the offline base image (Debian bookworm)
    /// serves, `3.11` and `18`.
    pub fn default_version(self) -> &'static str {
        match self {
            Language::Python => "3.11",
            Language::Nodejs => "18",
        }
    }

    /// The versions a function can run in: those SeBS's local platform lists, each with an
    /// official image (`python:<v>-slim`, `node:<v>-slim`).
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Language::Python => &["3.7", "3.8", "3.9", "3.10", "3.11", "3.12"],
            Language::Nodejs => &["14", "16", "18", "20"],
        }
    }

    /// `version` when it is one of [`Language::versions`], else why not. Image tags and
    /// cache paths are made only of checked versions.
    pub fn check_version(self, version: &str) -> Result<(), UnknownVersion> {
        if self.versions().contains(&version) {
            Ok(())
        } else {
            Err(UnknownVersion {
                language: self,
                version: version.to_string(),
            })
        }
    }
}

/// A language version none of [`Language::versions`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "use {language} {version:?}: unknown version; the supported ones are {}",
    language.versions().join(", ")
)]
pub struct UnknownVersion {
    pub language: Language,
    pub version: String,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error and its causes, `a: b: c`, as the CLI prints a chain: for messages and logs
/// written where no `anyhow` is at hand. Every error's message leaves its cause to
/// [`std::error::Error::source`], so printing only `{e}` would drop it.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// A language name that is neither `python` nor `nodejs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {name:?}: expected \"python\" or \"nodejs\"")]
pub struct UnknownLanguage {
    pub name: String,
}

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "python" => Ok(Language::Python),
            "nodejs" | "node" => Ok(Language::Nodejs),
            _ => Err(UnknownLanguage {
                name: s.to_string(),
            }),
        }
    }
}

/// How a container's agent is configured, passed as environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    pub port: u16,
    pub language: Language,
    /// Language workers serving requests at once.
    pub workers: usize,
    /// A handler running longer is stopped and answered with [`ErrorKind::Timeout`].
    pub timeout_ms: u64,
    /// The user the function runs as; `None` keeps the agent's own (root).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The code package's root; [`CODE_DIR`] in a container.
    pub code_dir: std::path::PathBuf,
    /// The language runtime's executable, looked up on `PATH` (`python3`, `node`).
    pub runtime: Option<String>,
    /// Sample the container's own memory cgroup this often and keep the series for `GET`
    /// [`MEMORY_PATH`]; set only where the platform cannot read the cgroup itself.
    pub memory_interval_ms: Option<u64>,
}

/// The least time a worker gets to start and import the function, whatever the function's
/// timeout: imports of large libraries can take long, and are not the handler's time.
pub const MIN_IMPORT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long a worker may take to start and import a function whose handler may run for
/// `timeout`.
pub fn import_limit(timeout: std::time::Duration) -> std::time::Duration {
    timeout.max(MIN_IMPORT_LIMIT)
}

/// The longest the agent can take to answer one invocation of a function whose handler may
/// run for `timeout`: its worker's start and import (a cold call), then the handler.
pub fn longest_invocation(timeout: std::time::Duration) -> std::time::Duration {
    import_limit(timeout) + timeout
}

/// Names of the environment variables that carry [`AgentSettings`].
pub mod env {
    pub const PORT: &str = "SEBS_AGENT_PORT";
    pub const LANGUAGE: &str = "SEBS_LANGUAGE";
    pub const WORKERS: &str = "SEBS_WORKERS";
    pub const TIMEOUT_MS: &str = "SEBS_TIMEOUT_MS";
    /// SeBS's names for the host user, honoured as is.
    pub const UID: &str = "CONTAINER_UID";
    pub const GID: &str = "CONTAINER_GID";
    pub const USER: &str = "CONTAINER_USER";
    pub const CODE_DIR: &str = "SEBS_CODE_DIR";
    pub const RUNTIME: &str = "SEBS_RUNTIME";
    pub const MEMORY_INTERVAL_MS: &str = "SEBS_MEMORY_INTERVAL_MS";
}

/// An agent setting that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent setting {name}={value:?} is invalid: {reason}")]
pub struct SettingsError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl AgentSettings {
    /// Settings for `language` with the platform's defaults: port 9000, one worker, 60 s.
    pub fn new(language: Language) -> AgentSettings {
        AgentSettings {
            port: DEFAULT_PORT,
            language,
            workers: 1,
            timeout_ms: 60_000,
            uid: None,
            gid: None,
            code_dir: std::path::PathBuf::from(CODE_DIR),
            runtime: None,
            memory_interval_ms: None,
        }
    }

    /// Whether the agent starts its workers as another user than its own (root).
    pub fn switches_user(&self) -> bool {
        self.uid.is_some() || self.gid.is_some()
    }

    /// The capabilities (as the engine names them) the agent needs with these settings, and
    /// the only ones its container should grant: to start workers as another user (`SETUID`,
    /// `SETGID`), to give them their protocol pipes (`CHOWN`) and to stop them (`KILL`). An
    /// agent that runs its workers as itself needs none. Workers never keep any: the kernel
    /// clears the capabilities of a program a non-root user executes.
    pub fn capabilities(&self) -> &'static [&'static str] {
        if self.switches_user() {
            &["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"]
        } else {
            &[]
        }
    }

    /// The `NAME=value` pairs to put in the container's environment.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (env::PORT.to_string(), self.port.to_string()),
            (
                env::LANGUAGE.to_string(),
                self.language.as_str().to_string(),
            ),
            (env::WORKERS.to_string(), self.workers.to_string()),
            (env::TIMEOUT_MS.to_string(), self.timeout_ms.to_string()),
            (
                env::CODE_DIR.to_string(),
                self.code_dir.display().to_string(),
            ),
        ];
        if let Some(runtime) = &self.runtime {
            out.push((env::RUNTIME.to_string(), runtime.clone()));
        }
        if let Some(uid) = self.uid {
            out.push((env::UID.to_string(), uid.to_string()));
        }
        if let Some(gid) = self.gid {
            out.push((env::GID.to_string(), gid.to_string()));
        }
        if let Some(ms) = self.memory_interval_ms {
            out.push((env::MEMORY_INTERVAL_MS.to_string(), ms.to_string()));
        }
        out
    }

    /// Reads the settings back through `get` (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<AgentSettings, SettingsError> {
        fn parse<T: FromStr>(
            get: &dyn Fn(&str) -> Option<String>,
            name: &'static str,
        ) -> Result<Option<T>, SettingsError>
        where
            T::Err: fmt::Display,
        {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse::<T>().map(Some).map_err(|e| SettingsError {
                    name,
                    value: v.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        let language = parse::<Language>(&get, env::LANGUAGE)?.unwrap_or(Language::Python);
        let mut s = AgentSettings::new(language);
        if let Some(port) = parse(&get, env::PORT)? {
            s.port = port;
        }
        if let Some(workers) = parse::<usize>(&get, env::WORKERS)? {
            if workers == 0 {
                return Err(SettingsError {
                    name: env::WORKERS,
                    value: "0".into(),
                    reason: "at least one worker is needed".into(),
                });
            }
            s.workers = workers;
        }
        if let Some(t) = parse(&get, env::TIMEOUT_MS)? {
            s.timeout_ms = t;
        }
        s.uid = parse(&get, env::UID)?;
        s.gid = parse(&get, env::GID)?;
        if let Some(dir) = get(env::CODE_DIR).filter(|d| !d.trim().is_empty()) {
            s.code_dir = dir.into();
        }
        s.runtime = get(env::RUNTIME).filter(|r| !r.trim().is_empty());
        s.memory_interval_ms = parse::<u64>(&get, env::MEMORY_INTERVAL_MS)?;
        if s.memory_interval_ms == Some(0) {
            return Err(SettingsError {
                name: env::MEMORY_INTERVAL_MS,
                value: "0".into(),
                reason: "the interval must be at least 1 ms".into(),
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ts(text: &str, expect: Option<i64>) {
        let got = text.parse::<EpochMicros>().ok().map(|t| t.0);
        assert_eq!(got, expect, "parsing {text:?}");
        if let Some(v) = expect {
            // Printing and parsing again gives the same instant.
            let printed = EpochMicros(v).to_string();
            assert_eq!(printed.parse::<EpochMicros>().unwrap().0, v);
        }
    }

    #[test]
    fn an_error_chain_prints_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("read config {path}")]
        struct Read {
            path: String,
            source: std::io::Error,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("start function f")]
        struct Start {
            #[source]
            source: Read,
        }
        let e = Start {
            source: Read {
                path: "/x.json".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            },
        };
        assert_eq!(
            ErrorChain(&e).to_string(),
            "start function f: read config /x.json: no such file"
        );
    }

    #[test]
    fn only_known_versions_pass_and_the_refusal_names_the_known_ones() {
        let check = |language: Language, version: &str, ok: bool| {
            assert_eq!(
                language.check_version(version).is_ok(),
                ok,
                "{language} {version}"
            );
        };
        check(Language::Python, "3.11", true);
        check(Language::Python, "3.7", true);
        check(Language::Nodejs, "18", true);
        for bad in ["9.99", "", "3", "3.11 ", "../../x", "3.11/..", "18"] {
            check(Language::Python, bad, false);
        }
        check(Language::Nodejs, "3.11", false);
        for language in [Language::Python, Language::Nodejs] {
            check(language, language.default_version(), true);
        }
        let err = Language::Python.check_version("9.99").unwrap_err();
        assert_eq!(
            err.to_string(),
            "use python \"9.99\": unknown version; the supported ones are \
             3.7, 3.8, 3.9, 3.10, 3.11, 3.12"
        );
    }

    #[test]
    fn timestamps() {
        check_ts("1700000000.123456", Some(1_700_000_000_123_456));
        check_ts("1700000000.1", Some(1_700_000_000_100_000));
        check_ts("1700000000", Some(1_700_000_000_000_000));
        check_ts("1700000000.1234567", Some(1_700_000_000_123_456));
        check_ts("-1.5", Some(-1_500_000));
        check_ts("", None);
        check_ts(".5", None);
        check_ts("12a.5", None);
        check_ts("1.5e3", None);
        check_ts("99999999999999999999", None);
        assert_eq!(
            EpochMicros(1_700_000_000_000_042).to_string(),
            "1700000000.000042"
        );
    }

    #[test]
    fn answers_round_trip_and_read_sebs_answers() {
        // An answer as SeBS's own local server writes it: no fields of ours.
        let sebs = r#"{"begin": "1700000000.123456", "end": "1700000000.234567",
            "request_id": "abc", "is_cold": false, "result": {"output": {"result": 1}}}"#;
        let a: InvocationAnswer = serde_json::from_str(sebs).unwrap();
        assert_eq!(a.init_time_us, 0);
        assert_eq!((a.memory_peak_bytes, a.memory_source), (None, None));
        // Absent optional fields stay absent when written back.
        let written = serde_json::to_value(&a).unwrap();
        assert!(written.get("memory_source").is_none(), "{written}");
        assert_eq!(a.result.output, serde_json::json!({"result": 1}));
        let back: InvocationAnswer =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, back);

        // An answer of ours with the memory fields.
        let ours = r#"{"begin": "1.0", "end": "2.0", "request_id": "x", "is_cold": true,
            "result": {"output": null}, "memory_peak_bytes": 1048576, "memory_source": "cgroup"}"#;
        let a: InvocationAnswer = serde_json::from_str(ours).unwrap();
        assert_eq!(
            (a.memory_peak_bytes, a.memory_source),
            (Some(1 << 20), Some(MemorySource::Cgroup))
        );
        for source in [
            MemorySource::Cgroup,
            MemorySource::Process,
            MemorySource::ProcessLifetime,
        ] {
            let json = serde_json::to_value(source).unwrap();
            assert_eq!(json, source.as_str());
            assert_eq!(
                serde_json::from_value::<MemorySource>(json).unwrap(),
                source
            );
        }

        let e = ErrorAnswer::new(ErrorKind::Timeout, "handler ran past 1000 ms");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], "timeout");
        assert_eq!(ErrorKind::Timeout.status(), 504);
    }

    #[test]
    fn settings_round_trip_through_env() {
        let mut s = AgentSettings::new(Language::Nodejs);
        s.workers = 4;
        s.uid = Some(1000);
        s.code_dir = "/tmp/pkg".into();
        s.runtime = Some("node".into());
        s.memory_interval_ms = Some(10);
        let env = s.to_env();
        let back =
            AgentSettings::from_env(|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .unwrap();
        assert_eq!(back, s);

        assert_eq!(
            s.capabilities(),
            ["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"]
        );
        assert!(AgentSettings::new(Language::Python)
            .capabilities()
            .is_empty());

        let err =
            AgentSettings::from_env(|k| (k == env::WORKERS).then(|| "0".to_string())).unwrap_err();
        assert_eq!(err.name, env::WORKERS);
        let err =
            AgentSettings::from_env(|k| (k == env::PORT).then(|| "x".to_string())).unwrap_err();
        assert!(err.to_string().contains("SEBS_AGENT_PORT"), "{err}");
        let err = AgentSettings::from_env(|k| (k == env::MEMORY_INTERVAL_MS).then(|| "0".into()))
            .unwrap_err();
        assert_eq!(err.name, env::MEMORY_INTERVAL_MS);
    }
}

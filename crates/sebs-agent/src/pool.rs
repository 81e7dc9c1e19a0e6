//! The pool of language workers: at most one call per worker, callers beyond the pool wait in FIFO order.
//!
//! The pool has `workers` slots and as many permits of a fair semaphore. A call takes a
//! permit, then a slot: a ready worker if there is one, else an empty slot it fills by
//! starting a worker. The slot goes back before the permit, so a permit always finds a slot.
//! A worker that died, timed out, broke the protocol or failed its import leaves its slot
//! empty: the next call that needs it starts a new one, and reports that start's import as
//! its own `init_time_us`, since it is the call that waited for it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sebs_wire::worker::{Exception, Reply, Request};
use sebs_wire::{EpochMicros, ErrorAnswer, ErrorKind};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::cgroup::MemoryCgroup;
use crate::children::{ExitStatus, Spawner};
use crate::memory::{MemoryPeak, Meter, WorkerPeak};
use crate::worker::{
    describe_death, tmp_note, tmpfs_used_bytes, Worker, WorkerCommand, WorkerError,
};

/// How long emptying `/tmp` after an OOM kill may take before the helper is killed.
const EMPTY_TMP_LIMIT: Duration = Duration::from_secs(30);

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub command: WorkerCommand,
    pub workers: usize,
    /// A call running longer is stopped and its worker killed.
    pub timeout: Duration,
    /// Consulted when a worker dies, to tell an OOM kill from a crash.
    pub cgroup: MemoryCgroup,
    /// Measures each call's peak memory.
    pub meter: Arc<Meter>,
    /// The function's `/tmp`, named in the answer to an OOM kill when it is a tmpfs (whose
    /// files count against the memory limit); `None` outside a container.
    pub tmp_dir: Option<PathBuf>,
}

/// A successful call.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub begin: EpochMicros,
    pub end: EpochMicros,
    pub output: serde_json::Value,
    /// The worker's import time when this was its first call, else 0.
    pub init_time_us: u64,
    /// The call's peak memory, when it could be measured.
    pub memory_peak: Option<MemoryPeak>,
}

/// A failed call: what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub kind: ErrorKind,
    pub message: String,
    pub exception: Option<Exception>,
    /// Begin and end around the handler, when it ran and raised.
    pub span: Option<(EpochMicros, EpochMicros)>,
    /// The import this call waited for, as for a successful call.
    pub init_time_us: u64,
}

impl CallFailure {
    fn new(kind: ErrorKind, message: impl Into<String>) -> CallFailure {
        CallFailure {
            kind,
            message: message.into(),
            exception: None,
            span: None,
            init_time_us: 0,
        }
    }

    fn after_import(mut self, init_time_us: u64) -> CallFailure {
        self.init_time_us = init_time_us;
        self
    }

    /// The HTTP answer, without request id and cold flag.
    pub fn into_answer(self) -> ErrorAnswer {
        let mut answer = ErrorAnswer::new(self.kind, self.message);
        if let Some(e) = self.exception {
            answer.exception_type = Some(e.exception_type);
            answer.traceback = Some(e.traceback);
        }
        if let Some((begin, end)) = self.span {
            answer.begin = Some(begin.to_string());
            answer.end = Some(end.to_string());
        }
        answer.init_time_us = self.init_time_us;
        answer
    }
}

enum Slot {
    Ready(Worker),
    Empty,
}

impl Slot {
    /// Which slot a call prefers: lower is better.
    fn rank(&self) -> u8 {
        match self {
            Slot::Ready(_) => 0,
            Slot::Empty => 1,
        }
    }
}

struct Inner {
    config: PoolConfig,
    spawner: Spawner,
    permits: Arc<Semaphore>,
    slots: Mutex<Vec<Slot>>,
    /// The cgroup's OOM-kill count when we last looked.
    oom_kills_seen: AtomicU64,
    /// Bumped when a call waits for a worker: workers holding connections give them back.
    wanted: watch::Sender<u64>,
}

/// A worker taken from the pool to serve a connection itself, with its permit.
pub struct Held {
    pub worker: Worker,
    permit: OwnedSemaphorePermit,
}

/// The worker pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// Creates the pool; each worker starts on the first request that needs it.
    ///
    /// Must run inside a Tokio runtime whose SIGCHLD reaper serves the spawner's children.
    pub fn start(config: PoolConfig, spawner: Spawner) -> Pool {
        let workers = config.workers.max(1);
        let oom_kills_seen = config.cgroup.oom_kills().unwrap_or(0);
        let inner = Arc::new(Inner {
            permits: Arc::new(Semaphore::new(workers)),
            slots: Mutex::new(Vec::with_capacity(workers)),
            oom_kills_seen: AtomicU64::new(oom_kills_seen),
            wanted: watch::Sender::new(0),
            config,
            spawner,
        });
        let pool = Pool { inner };
        // Workers start on their first request, not here: a cold invocation then always
        // pays the language runtime's start and the function's import, as a cold start on
        // a FaaS platform does, however long the container sat idle before it.
        *pool.lock_slots() = (0..workers).map(|_| Slot::Empty).collect();
        pool
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn import_limit(&self) -> Duration {
        sebs_wire::import_limit(self.inner.config.timeout)
    }

    fn take_slot(&self) -> Slot {
        let mut slots = self.lock_slots();
        let best = slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.rank())
            .map(|(i, _)| i);
        // A held permit guarantees a slot; an empty one is the safe answer if that broke.
        best.map_or(Slot::Empty, |i| slots.swap_remove(i))
    }

    fn put_slot(&self, slot: Slot) {
        self.lock_slots().push(slot);
    }

    /// An idle worker that has served a call before, to pass a connection to, when one is
    /// free now, no call waits, its language takes connections, and no call is measured by
    /// the cgroup's peak (which the agent resets around each call it relays).
    pub fn try_hold(&self) -> Option<Held> {
        if !self.inner.config.command.handoff || self.inner.config.meter.uses_cgroup() {
            return None;
        }
        let permit = self.inner.permits.clone().try_acquire_owned().ok()?;
        let mut slots = self.lock_slots();
        let ready = slots.iter().position(|s| matches!(s, Slot::Ready(_)))?;
        match slots.swap_remove(ready) {
            Slot::Ready(worker) => Some(Held { worker, permit }),
            Slot::Empty => {
                slots.push(Slot::Empty);
                None
            }
        }
    }

    /// Puts a held worker back (`alive`), or its slot empty, and frees its permit.
    pub fn release(&self, held: Held, alive: bool) {
        let Held { worker, permit } = held;
        self.put_slot(if alive {
            Slot::Ready(worker)
        } else {
            Slot::Empty
        });
        drop(permit);
    }

    /// Changes whenever a call waits for a worker.
    pub fn wanted(&self) -> watch::Receiver<u64> {
        self.inner.wanted.subscribe()
    }

    /// Runs one call of the handler with `event`, waiting for a free worker first.
    pub async fn invoke(
        &self,
        request_id: &str,
        event: &serde_json::Value,
    ) -> Result<Invocation, CallFailure> {
        let permits = &self.inner.permits;
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => {
                // Workers serving connections themselves give one back between requests.
                self.inner.wanted.send_modify(|n| *n += 1);
                permits.clone().acquire_owned().await
            }
        };
        let Ok(permit) = permit else {
            return Err(CallFailure::new(
                ErrorKind::Internal,
                "the worker pool is closed",
            ));
        };
        let result = self.invoke_with_permit(request_id, event).await;
        drop(permit);
        result
    }

    async fn invoke_with_permit(
        &self,
        request_id: &str,
        event: &serde_json::Value,
    ) -> Result<Invocation, CallFailure> {
        let started = match self.take_slot() {
            Slot::Ready(worker) => Ok(worker),
            Slot::Empty => {
                let inner = &self.inner;
                let started =
                    Worker::start(&inner.config.command, &inner.spawner, self.import_limit()).await;
                if let Err(e) = &started {
                    eprintln!("sebs-agent: worker failed to {}", sebs_wire::ErrorChain(&e));
                }
                started
            }
        };
        let mut worker = match started {
            Ok(worker) => worker,
            Err(e) => {
                let failure = self.start_failure(e).await;
                // The next call tries a fresh worker.
                self.put_slot(Slot::Empty);
                return Err(failure);
            }
        };

        let line = Request::encode(request_id, event);
        let timeout = self.inner.config.timeout;
        let meter = &self.inner.config.meter;
        let window = meter.open_window();
        let outcome = tokio::time::timeout(timeout, worker.call(&line)).await;
        let worker_peak = match &outcome {
            Ok(Ok(Reply::Ok(s))) => WorkerPeak {
                max_rss_kb: s.max_rss_kb,
                reset: s.max_rss_reset,
            },
            _ => WorkerPeak::default(),
        };
        let memory_peak = meter.close_window(window, worker_peak);
        match outcome {
            Ok(Ok(Reply::Ok(s))) => {
                let init_time_us = worker.take_init_time_us();
                self.put_slot(Slot::Ready(worker));
                Ok(Invocation {
                    begin: EpochMicros(s.begin_us),
                    end: EpochMicros(s.end_us),
                    output: s.output,
                    init_time_us,
                    memory_peak,
                })
            }
            Ok(Ok(Reply::Err(f))) => {
                let init_time_us = worker.take_init_time_us();
                self.put_slot(Slot::Ready(worker));
                Err(CallFailure {
                    kind: f.kind.error_kind(),
                    message: format!("{}: {}", f.exception.exception_type, f.exception.error),
                    exception: Some(f.exception),
                    span: Some((EpochMicros(f.begin_us), EpochMicros(f.end_us))),
                    init_time_us,
                })
            }
            Ok(Err(WorkerError::Died { status })) => {
                let init_time_us = worker.take_init_time_us();
                let failure = self.death(status, worker.pid()).await;
                // After /tmp is emptied, so that the next worker finds the memory it gave back.
                self.put_slot(Slot::Empty);
                Err(failure.after_import(init_time_us))
            }
            Ok(Err(e)) => {
                worker.kill();
                self.put_slot(Slot::Empty);
                eprintln!(
                    "sebs-agent: worker {} failed to serve a call: {}",
                    worker.pid(),
                    sebs_wire::ErrorChain(&e)
                );
                Err(CallFailure::new(
                    ErrorKind::Internal,
                    format!("failed to {}", sebs_wire::ErrorChain(&e)),
                ))
            }
            Err(_elapsed) => {
                let init_time_us = worker.take_init_time_us();
                worker.kill();
                self.put_slot(Slot::Empty);
                Err(self.timed_out(worker.pid()).after_import(init_time_us))
            }
        }
    }

    /// The function's timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    /// What to answer for a call whose worker `pid` was stopped at the timeout.
    pub fn timed_out(&self, pid: i32) -> CallFailure {
        let ms = self.inner.config.timeout.as_millis();
        eprintln!("sebs-agent: worker {pid} stopped after the {ms} ms timeout");
        CallFailure::new(
            ErrorKind::Timeout,
            format!("the handler ran past the function's timeout of {ms} ms and was stopped"),
        )
    }

    /// What to answer for a call whose worker `pid` died with `status`; after an OOM kill,
    /// `/tmp` is emptied first.
    pub async fn death(&self, status: Option<ExitStatus>, pid: i32) -> CallFailure {
        let oom_killed = self.oom_kills_increased();
        let (kind, mut message) =
            describe_death(status, self.inner.config.cgroup.limited(), oom_killed);
        if kind == ErrorKind::OutOfMemory {
            message.push_str(&self.empty_tmp_after_oom().await);
        }
        eprintln!("sebs-agent: worker {pid} died: {message}");
        CallFailure::new(kind, message)
    }

    /// What to answer when no worker could be started; a worker OOM-killed during its start
    /// (e.g. because `/tmp` holds the memory) is reported as such, and `/tmp` emptied.
    async fn start_failure(&self, e: WorkerError) -> CallFailure {
        const SIGKILL: i32 = 9;
        let killed = matches!(
            e,
            WorkerError::Died {
                status: Some(ExitStatus::Signaled(SIGKILL))
            }
        );
        if killed && self.oom_kills_increased() {
            let note = self.empty_tmp_after_oom().await;
            let message = format!(
                "the worker was killed for exceeding the container's memory limit (signal 9) \
                 before it imported the function{note}"
            );
            eprintln!("sebs-agent: {message}");
            return CallFailure::new(ErrorKind::OutOfMemory, message);
        }
        init_failure(e)
    }

    /// After an OOM kill, empties the function's `/tmp` when it is a tmpfs holding anything,
    /// and says what it held (see [`crate::tmp`]); an empty string otherwise.
    async fn empty_tmp_after_oom(&self) -> String {
        let Some(dir) = self.inner.config.tmp_dir.as_deref() else {
            return String::new();
        };
        let Some(bytes) = tmpfs_used_bytes(dir).filter(|&b| b > 0) else {
            return String::new();
        };
        let emptied = self.empty_dir(dir).await;
        tmp_note(bytes, &emptied)
    }

    /// Runs the agent's binary as the workers' user to empty `dir`.
    async fn empty_dir(&self, dir: &Path) -> Result<(), String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("failed to find the agent's binary: {e}"))?;
        let args = [OsStr::new(crate::tmp::EMPTY_DIR_ARG), dir.as_os_str()];
        let command = self.inner.config.command.helper(&exe, &args);
        let (child, exit) = self.inner.spawner.spawn(command).await.map_err(|e| {
            format!(
                "failed to start `{} {} {}`: {e}",
                exe.display(),
                crate::tmp::EMPTY_DIR_ARG,
                dir.display()
            )
        })?;
        match tokio::time::timeout(EMPTY_TMP_LIMIT, exit).await {
            Ok(Ok(ExitStatus::Exited(0))) => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "its helper {status} (the container's log says why)"
            )),
            Ok(Err(_)) => Err("its helper's exit status was lost".into()),
            Err(_) => {
                self.inner.spawner.children().kill_group(child.id() as i32);
                Err(format!(
                    "its helper ran past {EMPTY_TMP_LIMIT:?} and was killed"
                ))
            }
        }
    }

    /// Whether the cgroup counted an OOM kill since we last looked.
    fn oom_kills_increased(&self) -> bool {
        let Some(now) = self.inner.config.cgroup.oom_kills() else {
            return false;
        };
        let before = self.inner.oom_kills_seen.swap(now, Ordering::AcqRel);
        now > before
    }
}

/// What to answer when no worker could be started.
fn init_failure(e: WorkerError) -> CallFailure {
    match e {
        WorkerError::Import(exception) => CallFailure {
            kind: ErrorKind::InitError,
            message: format!(
                "the function could not be imported: {}: {}",
                exception.exception_type, exception.error
            ),
            exception: Some(exception),
            span: None,
            init_time_us: 0,
        },
        WorkerError::Died { status } => CallFailure::new(
            ErrorKind::InitError,
            match status {
                Some(s) => format!("the worker {s} before it imported the function"),
                None => "the worker closed its output before it imported the function".into(),
            },
        ),
        other => CallFailure::new(ErrorKind::InitError, format!("failed to {other}")),
    }
}

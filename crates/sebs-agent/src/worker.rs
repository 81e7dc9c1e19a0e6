//! One language worker: starting it, waiting for its import, and passing it calls.
//!
//! [`WorkerCommand`] is the only place that knows languages: it turns [`AgentSettings`] into
//! a command line. Everything after that speaks [`sebs_wire::worker`] and is the same for
//! every language, so a new language needs only its wrapper file and a line here.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sebs_wire::worker::{Exception, ProtocolError, Ready, Reply};
use sebs_wire::{handoff, AgentSettings, EpochMicros, ErrorKind, Language};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::children::{Children, ExitStatus, Spawner};

/// How long a worker that closed its output gets to be reaped before we stop waiting.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The OOM score adjustment of workers and what they start: when the container runs out of
/// memory, the kernel kills a worker (whose death the agent reports and recovers from)
/// rather than the agent, whose death would end the container. Half the scale is enough to
/// outweigh any difference in size between the agent and a worker.
const WORKER_OOM_SCORE_ADJ: &[u8] = b"500";

/// How to start a worker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCommand {
    /// The runtime, looked up on `PATH`.
    pub program: String,
    pub args: Vec<OsString>,
    /// The working directory: the code package's root.
    pub dir: PathBuf,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Set in the worker's environment besides `HOME`.
    pub env: Vec<(String, String)>,
    /// Whether the worker takes connections on the warm path ([`sebs_wire::handoff`]).
    pub handoff: bool,
}

impl WorkerCommand {
    /// The worker command for a function configured by `settings`.
    pub fn from_settings(settings: &AgentSettings) -> WorkerCommand {
        let dir = settings.code_dir.clone();
        let mut env = Vec::new();
        let handoff = settings.language == Language::Python;
        let (default_runtime, args): (&str, Vec<OsString>) = match settings.language {
            // -u: unbuffered, so a handler's prints reach the log even if it is killed.
            Language::Python => {
                // The package and the root are read-only: Python would try (and fail) to
                // write bytecode beside every module it compiles. The variable, unlike -B,
                // also reaches the Python processes a handler starts.
                env.push(("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()));
                (
                    "python3",
                    vec![
                        "-u".into(),
                        dir.join(sebs_wire::worker::PYTHON_WRAPPER_FILE).into(),
                    ],
                )
            }
            Language::Nodejs => (
                "node",
                vec![dir.join(sebs_wire::worker::NODEJS_WRAPPER_FILE).into()],
            ),
        };
        WorkerCommand {
            program: settings
                .runtime
                .clone()
                .unwrap_or_else(|| default_runtime.to_string()),
            args,
            dir,
            uid: settings.uid,
            gid: settings.gid,
            env,
            handoff,
        }
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// `program` with `args`, run as the workers' user (as [`WorkerCommand::command`] runs
    /// the worker), e.g. to empty the workers' `/tmp`, which the agent cannot do itself: it
    /// has no capability to remove other users' files.
    pub fn helper(&self, program: &std::path::Path, args: &[&std::ffi::OsStr]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: as in `command`.
        unsafe {
            cmd.pre_exec(move || become_worker(uid, gid));
        }
        cmd
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.dir)
            // The only writable place of a function container; libraries that keep files
            // under `~` need a home they can write.
            .env("HOME", sebs_wire::TMP_DIR)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // stdin and stdout are the pipes of `worker_pipes`, set by `Worker::start`.
            .stderr(Stdio::inherit())
            // Its own process group, so a timeout kills what the handler started too, and
            // a Ctrl-C meant for the agent does not reach the worker.
            .process_group(0);
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: the closure runs between fork and exec; `become_worker` makes only
        // async-signal-safe system calls and allocates nothing.
        unsafe {
            cmd.pre_exec(move || become_worker(uid, gid));
        }
        cmd
    }
}

/// In the forked child, before `exec`: raises the child's OOM score, then switches to the
/// function's user (no supplementary groups).
///
/// The score comes first: raising one's own needs no privilege, but once the uid changes the
/// process is no longer dumpable and `/proc/self/oom_score_adj` belongs to root. (std's
/// `Command::uid` switches before any `pre_exec` closure runs, hence the switch here.)
fn become_worker(uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    use nix::unistd::{getuid, setgid, setgroups, setuid, Gid, Uid};
    // Best effort: a kernel without the file still runs the worker.
    if let Ok(fd) = open(
        c"/proc/self/oom_score_adj",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        let _ = nix::unistd::write(&fd, WORKER_OOM_SCORE_ADJ);
    }
    if (uid.is_some() || gid.is_some()) && getuid().is_root() {
        setgroups(&[])?;
    }
    if let Some(gid) = gid {
        setgid(Gid::from_raw(gid))?;
    }
    if let Some(uid) = uid {
        setuid(Uid::from_raw(uid))?;
    }
    Ok(())
}

/// The hand-off socket pair and the shared state file of a worker that takes connections;
/// the worker's ends are left open across `exec` and named in its environment.
fn handoff_channel(cmd: &mut Command) -> std::io::Result<(Handoff, [OwnedFd; 2])> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let state = SharedState::create()?;
    let theirs_state = OwnedFd::from(state.file.try_clone()?);
    let fds = [theirs.as_raw_fd(), theirs_state.as_raw_fd()];
    cmd.env(handoff::HANDOFF_FDS_ENV, format!("{},{}", fds[0], fds[1]));
    // SAFETY: between fork and exec, fcntl alone, on descriptors the closure's owner keeps
    // open until the spawn returned.
    unsafe {
        cmd.pre_exec(move || {
            for fd in fds {
                nix::fcntl::fcntl(
                    BorrowedFd::borrow_raw(fd),
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
            }
            Ok(())
        });
    }
    Ok((
        Handoff {
            socket: ours,
            state: Arc::new(state),
        },
        [theirs, theirs_state],
    ))
}

/// One pipe between the agent and a worker.
struct WorkerPipe {
    ours: OwnedFd,
    theirs: OwnedFd,
}

/// The worker's stdin and stdout pipes, owned by the worker's user when it runs as another.
///
/// A pipe's owner matters only to whoever opens it by path: the Node.js worker, which cannot
/// `dup2`, reopens its pipes through `/proc/self/fd` to move the protocol off fd 0/1, and as
/// `CONTAINER_UID` it may do so only when the pipes are that user's. Changing the owner is
/// best effort: an agent that cannot is not root, and cannot switch users either.
fn worker_pipes(uid: Option<u32>, gid: Option<u32>) -> std::io::Result<(WorkerPipe, WorkerPipe)> {
    use nix::unistd::{fchown, pipe2, Gid, Uid};
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (stdin_read, stdin_write) = pipe2(flags)?;
    let (stdout_read, stdout_write) = pipe2(flags)?;
    if uid.is_some() || gid.is_some() {
        for end in [&stdin_read, &stdout_write] {
            let _ = fchown(end, uid.map(Uid::from_raw), gid.map(Gid::from_raw));
        }
    }
    let stdin = WorkerPipe {
        ours: stdin_write,
        theirs: stdin_read,
    };
    let stdout = WorkerPipe {
        ours: stdout_read,
        theirs: stdout_write,
    };
    Ok((stdin, stdout))
}

/// What went wrong with a worker. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("start worker `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "start worker `{command}`: the container's pids limit is reached (the function's \
         processes and threads hold every task left)"
    )]
    TaskLimit { command: String },
    #[error("import the function: {}: {}", .0.exception_type, .0.error)]
    Import(Exception),
    #[error("import the function within {limit_ms} ms")]
    ImportTimeout { limit_ms: u64 },
    /// The worker's output ended: it died, before it was ready or during a call.
    #[error("keep the worker alive: it {}", match .status {
        Some(s) => s.to_string(),
        None => "closed its output".to_string(),
    })]
    Died { status: Option<ExitStatus> },
    #[error("talk to worker {pid}")]
    Pipe {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("understand worker {pid}: it sent {line:?} while it held a connection")]
    Unexpected { pid: i32, line: String },
}

/// A running worker that has imported the function.
#[derive(Debug)]
pub struct Worker {
    pid: i32,
    children: Children,
    stdin: pipe::Sender,
    stdout: BufReader<pipe::Receiver>,
    exit: oneshot::Receiver<ExitStatus>,
    /// The import time, until the first call has reported it.
    unreported_init_us: Option<u64>,
    line: Vec<u8>,
    /// A line [`Worker::next_line`] is reading, kept when its future is dropped.
    partial: Vec<u8>,
    /// The hand-off socket and shared state, for a worker that takes connections.
    handoff: Option<Handoff>,
}

/// The agent's side of a worker's hand-off channel ([`sebs_wire::handoff`]).
#[derive(Debug)]
struct Handoff {
    socket: OwnedFd,
    state: Arc<SharedState>,
}

/// A worker's shared state file, read by the agent without waking the worker.
#[derive(Debug)]
pub struct SharedState {
    file: std::fs::File,
    /// How many of the worker's handler spans the agent has taken from the ring.
    log_read: Mutex<u64>,
}

/// The call a worker is running, as it published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// The seqlock counter at the read: it changes when the call ends.
    pub seq: u64,
    pub since: EpochMicros,
    pub request_id: String,
    /// The number of the connection the call came on.
    pub connection: u64,
}

impl SharedState {
    fn create() -> std::io::Result<SharedState> {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        let fd = memfd_create(c"sebs-worker-state", MFdFlags::MFD_CLOEXEC)?;
        let file = std::fs::File::from(fd);
        file.set_len(handoff::state::SIZE as u64)?;
        Ok(SharedState {
            file,
            log_read: Mutex::new(0),
        })
    }

    fn read_at(&self, offset: usize, buf: &mut [u8]) -> bool {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset as u64).is_ok()
    }

    fn u64_at(&self, offset: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_at(offset, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// The running call, `None` between calls (or when no consistent copy could be read).
    pub fn busy(&self) -> Option<Busy> {
        use handoff::state::*;
        for _ in 0..100 {
            let mut head = [0u8; LOG_WRITTEN];
            if !self.read_at(0, &mut head) {
                return None;
            }
            let seq = u64::from_le_bytes(head[SEQ..SEQ + 8].try_into().ok()?);
            if seq % 2 == 1 || self.u64_at(SEQ) != Some(seq) {
                std::thread::yield_now();
                continue;
            }
            let since = i64::from_le_bytes(head[BUSY_SINCE_US..BUSY_SINCE_US + 8].try_into().ok()?);
            if since == 0 {
                return None;
            }
            let len = (u64::from_le_bytes(head[ID_LEN..ID_LEN + 8].try_into().ok()?) as usize)
                .min(ID_MAX);
            return Some(Busy {
                seq,
                since: EpochMicros(since),
                connection: u64::from_le_bytes(head[CONNECTION..CONNECTION + 8].try_into().ok()?),
                request_id: String::from_utf8_lossy(&head[REQUEST_ID..REQUEST_ID + len])
                    .into_owned(),
            });
        }
        None
    }

    /// The seqlock counter now.
    pub fn seq(&self) -> Option<u64> {
        self.u64_at(handoff::state::SEQ)
    }

    /// The handler spans the worker wrote since the last call: `(begin, end, ok)`, and how
    /// many were overwritten before they could be read.
    pub fn take_log(&self) -> (Vec<(EpochMicros, EpochMicros, bool)>, u64) {
        use handoff::state::*;
        let mut read = self.log_read.lock().unwrap_or_else(|p| p.into_inner());
        let Some(written) = self.u64_at(LOG_WRITTEN) else {
            return (Vec::new(), 0);
        };
        let lost = written
            .saturating_sub(*read)
            .saturating_sub(RING_SLOTS as u64);
        let mut records = Vec::new();
        for n in (*read + lost)..written {
            let mut r = [0u8; RECORD];
            if !self.read_at(RING + RECORD * (n as usize % RING_SLOTS), &mut r) {
                break;
            }
            let field =
                |i: usize| i64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            records.push((EpochMicros(field(0)), EpochMicros(field(1)), field(2) != 0));
        }
        *read = written;
        (records, lost)
    }
}

impl Worker {
    /// Starts a worker and waits until it has imported the function, at most `import_limit`.
    pub async fn start(
        command: &WorkerCommand,
        spawner: &Spawner,
        import_limit: Duration,
    ) -> Result<Worker, WorkerError> {
        let spawn_err = |source| WorkerError::Spawn {
            command: command.display(),
            source,
        };
        let mut cmd = command.command();
        let (stdin, stdout) = worker_pipes(command.uid, command.gid).map_err(spawn_err)?;
        let channel = if command.handoff {
            Some(handoff_channel(&mut cmd).map_err(spawn_err)?)
        } else {
            None
        };
        cmd.stdin(Stdio::from(stdin.theirs))
            .stdout(Stdio::from(stdout.theirs));
        let (child, exit) = spawner.spawn(cmd).await.map_err(|source| {
            // fork fails with EAGAIN when the pids limit leaves no task for the worker.
            if source.raw_os_error() == Some(nix::errno::Errno::EAGAIN as i32) {
                WorkerError::TaskLimit {
                    command: command.display(),
                }
            } else {
                spawn_err(source)
            }
        })?;
        let children = spawner.children();
        let pid = child.id() as i32;
        // The worker's ends were copied into it; ours alone stay open.
        let handoff = channel.map(|(ours, _theirs)| ours);
        let pipes = pipe::Sender::from_owned_fd(stdin.ours)
            .and_then(|stdin| Ok((stdin, pipe::Receiver::from_owned_fd(stdout.ours)?)))
            .map_err(spawn_err);
        let (stdin, stdout) = match pipes {
            Ok(p) => p,
            Err(e) => {
                children.kill_group(pid);
                return Err(e);
            }
        };
        let mut worker = Worker {
            pid,
            children: children.clone(),
            stdin,
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            exit,
            unreported_init_us: None,
            line: Vec::new(),
            partial: Vec::new(),
            handoff,
        };
        let limit_ms = import_limit.as_millis() as u64;
        let ready = match tokio::time::timeout(import_limit, worker.read_line()).await {
            Ok(Ok(())) => Ready::parse(&worker.line),
            Ok(Err(e)) => {
                worker.kill();
                return Err(e);
            }
            Err(_) => {
                worker.kill();
                return Err(WorkerError::ImportTimeout { limit_ms });
            }
        };
        match ready {
            Ok(Ready::Imported { init_time_us }) => {
                worker.unreported_init_us = Some(init_time_us);
                Ok(worker)
            }
            Ok(Ready::Failed(exception)) => {
                worker.kill();
                Err(WorkerError::Import(exception))
            }
            Err(e) => {
                worker.kill();
                Err(e.into())
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The import time if no call has reported it yet; 0 afterwards.
    pub fn take_init_time_us(&mut self) -> u64 {
        self.unreported_init_us.take().unwrap_or(0)
    }

    /// Sends one request line (from [`sebs_wire::worker::Request::encode`]) and reads the reply.
    pub async fn call(&mut self, request_line: &[u8]) -> Result<Reply, WorkerError> {
        if let Err(source) = self.stdin.write_all(request_line).await {
            if source.kind() == std::io::ErrorKind::BrokenPipe {
                return Err(self.died().await);
            }
            return Err(WorkerError::Pipe {
                pid: self.pid,
                source,
            });
        }
        // The reply, or the worker's exit if it comes first: a process the handler forked
        // can hold the protocol pipe open after the worker died, so that end-of-file alone
        // would never come.
        self.line.clear();
        let read = tokio::select! {
            biased;
            read = self.stdout.read_until(b'\n', &mut self.line) => read,
            status = &mut self.exit => return Err(WorkerError::Died { status: status.ok() }),
        };
        match read {
            Ok(n) if n > 0 && self.line.last() == Some(&b'\n') => Ok(Reply::parse(&self.line)?),
            Ok(_) => Err(self.died().await),
            Err(source) => Err(WorkerError::Pipe {
                pid: self.pid,
                source,
            }),
        }
    }

    /// Whether the worker takes connections.
    pub fn takes_connections(&self) -> bool {
        self.handoff.is_some()
    }

    /// The worker's shared state, for a worker that takes connections.
    pub fn shared_state(&self) -> Option<Arc<SharedState>> {
        self.handoff.as_ref().map(|h| h.state.clone())
    }

    /// Passes connection `conn` to the worker as number `number`.
    pub async fn hand_off(
        &mut self,
        conn: BorrowedFd<'_>,
        number: u64,
        instance: &str,
    ) -> Result<(), WorkerError> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let pid = self.pid;
        let Some(h) = &self.handoff else {
            return Err(WorkerError::Pipe {
                pid,
                source: std::io::Error::other("the worker takes no connections"),
            });
        };
        let fds = [conn.as_raw_fd()];
        let iov = [std::io::IoSlice::new(b"c")];
        // One byte on a blocking unix socket the worker drains: this does not block.
        sendmsg::<()>(
            h.socket.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| WorkerError::Pipe {
            pid,
            source: e.into(),
        })?;
        let line = handoff::ToWorker::Connection {
            connection: number,
            instance: instance.to_string(),
        };
        self.send(&line.encode()).await
    }

    /// Asks the worker to give connection `number` back between requests.
    pub async fn give_back(&mut self, number: u64) -> Result<(), WorkerError> {
        self.send(&handoff::ToWorker::GiveBack { give_back: number }.encode())
            .await
    }

    async fn send(&mut self, line: &[u8]) -> Result<(), WorkerError> {
        match self.stdin.write_all(line).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(self.died().await),
            Err(source) => Err(WorkerError::Pipe {
                pid: self.pid,
                source,
            }),
        }
    }

    /// The worker's next line, or its death. Cancel-safe: a partly read line is kept.
    pub async fn next_line(&mut self) -> Result<Vec<u8>, WorkerError> {
        loop {
            let read = tokio::select! {
                biased;
                read = self.stdout.read_until(b'\n', &mut self.partial) => read,
                status = &mut self.exit => return Err(WorkerError::Died { status: status.ok() }),
            };
            match read {
                Ok(0) => return Err(self.died().await),
                Ok(_) if self.partial.last() == Some(&b'\n') => {
                    return Ok(std::mem::take(&mut self.partial))
                }
                Ok(_) => continue,
                Err(source) => {
                    return Err(WorkerError::Pipe {
                        pid: self.pid,
                        source,
                    })
                }
            }
        }
    }

    /// Kills the worker and waits (briefly) until it is gone.
    pub async fn kill_and_wait(&mut self) -> Option<ExitStatus> {
        self.kill();
        tokio::time::timeout(EXIT_GRACE, &mut self.exit)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Stops the worker and everything it started.
    pub fn kill(&self) {
        self.children.kill_group(self.pid);
    }

    /// Reads one line into `self.line`; the end of the output means the worker died.
    async fn read_line(&mut self) -> Result<(), WorkerError> {
        self.line.clear();
        match self.stdout.read_until(b'\n', &mut self.line).await {
            Ok(0) => Err(self.died().await),
            Ok(_) if self.line.last() != Some(&b'\n') => Err(self.died().await),
            Ok(_) => Ok(()),
            Err(source) => Err(WorkerError::Pipe {
                pid: self.pid,
                source,
            }),
        }
    }

    /// The worker closed its output: wait briefly for its exit status.
    async fn died(&mut self) -> WorkerError {
        let status = match tokio::time::timeout(EXIT_GRACE, &mut self.exit).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                self.kill();
                None
            }
        };
        WorkerError::Died { status }
    }
}

/// What to answer for a worker that died during a call.
///
/// `memory_limited`: the container has a memory limit; `oom_killed`: the cgroup counted a
/// new OOM kill since the last death we looked at.
pub fn describe_death(
    status: Option<ExitStatus>,
    memory_limited: bool,
    oom_killed: bool,
) -> (ErrorKind, String) {
    const SIGKILL: i32 = 9;
    match status {
        Some(ExitStatus::Signaled(SIGKILL)) if oom_killed => (
            ErrorKind::OutOfMemory,
            "worker was killed for exceeding the container's memory limit (signal 9)".into(),
        ),
        Some(ExitStatus::Signaled(SIGKILL)) if memory_limited => (
            ErrorKind::WorkerDied,
            "worker was killed (signal 9), possibly out of memory".into(),
        ),
        Some(status) => (
            ErrorKind::WorkerDied,
            format!("worker {status} during the call"),
        ),
        None => (
            ErrorKind::WorkerDied,
            "worker closed its output during the call".into(),
        ),
    }
}

/// What to add to the answer to an OOM kill about the function's `/tmp`, a tmpfs whose
/// files count against the memory limit: it held `bytes`, and emptying it worked or not.
pub fn tmp_note(bytes: u64, emptied: &Result<(), String>) -> String {
    if bytes == 0 {
        return String::new();
    }
    let held = format!(
        "{} held {:.1} MiB of it (a tmpfs, whose files count against the memory limit; \
         `--tmp-on disk` keeps them out of it)",
        sebs_wire::TMP_DIR,
        bytes as f64 / f64::from(1 << 20)
    );
    match emptied {
        Ok(()) => format!("; {held} and was emptied, so that the next worker can start"),
        Err(e) => format!("; {held} and could not be emptied: {e}"),
    }
}

/// Bytes in use on the file system at `dir` when it is a tmpfs (held in memory, and
/// charged to the container's memory cgroup); `None` for any other file system.
pub fn tmpfs_used_bytes(dir: &std::path::Path) -> Option<u64> {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    if statfs(dir).ok()?.filesystem_type() != TMPFS_MAGIC {
        return None;
    }
    let vfs = nix::sys::statvfs::statvfs(dir).ok()?;
    let used_blocks = u64::from(vfs.blocks()).saturating_sub(u64::from(vfs.blocks_free()));
    Some(used_blocks.saturating_mul(u64::from(vfs.fragment_size())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deaths() {
        let check = |status, limited, oom, kind: ErrorKind, message: &str| {
            assert_eq!(
                describe_death(status, limited, oom),
                (kind, message.to_string()),
                "{status:?} limited={limited} oom={oom}"
            );
        };
        use ExitStatus::*;
        check(
            Some(Exited(3)),
            false,
            false,
            ErrorKind::WorkerDied,
            "worker exited with status 3 during the call",
        );
        check(
            Some(Signaled(9)),
            false,
            false,
            ErrorKind::WorkerDied,
            "worker was killed by signal 9 (SIGKILL) during the call",
        );
        check(
            Some(Signaled(9)),
            true,
            false,
            ErrorKind::WorkerDied,
            "worker was killed (signal 9), possibly out of memory",
        );
        check(
            Some(Signaled(9)),
            true,
            true,
            ErrorKind::OutOfMemory,
            "worker was killed for exceeding the container's memory limit (signal 9)",
        );
        // An OOM count that moved while the worker crashed on its own is not blamed.
        check(
            Some(Signaled(11)),
            true,
            true,
            ErrorKind::WorkerDied,
            "worker was killed by signal 11 (SIGSEGV) during the call",
        );
        check(
            None,
            true,
            true,
            ErrorKind::WorkerDied,
            "worker closed its output during the call",
        );
    }

    #[test]
    fn notes_about_tmp() {
        let check = |bytes: u64, emptied: Result<(), &str>, expect: &str| {
            let emptied = emptied.map_err(str::to_string);
            assert_eq!(tmp_note(bytes, &emptied), expect, "{bytes} {emptied:?}");
        };
        check(0, Ok(()), "");
        check(
            120 << 20,
            Ok(()),
            "; /tmp held 120.0 MiB of it (a tmpfs, whose files count against the memory \
             limit; `--tmp-on disk` keeps them out of it) and was emptied, so that the next \
             worker can start",
        );
        check(
            1 << 19,
            Err("failed to remove /tmp/x: Permission denied (os error 13)"),
            "; /tmp held 0.5 MiB of it (a tmpfs, whose files count against the memory limit; \
             `--tmp-on disk` keeps them out of it) and could not be emptied: failed to remove \
             /tmp/x: Permission denied (os error 13)",
        );
    }

    #[test]
    fn tmpfs_usage_only_for_a_tmpfs() {
        // /proc is no tmpfs; /dev/shm is one wherever it exists.
        assert_eq!(tmpfs_used_bytes(std::path::Path::new("/proc")), None);
        if std::path::Path::new("/dev/shm").is_dir() {
            assert!(tmpfs_used_bytes(std::path::Path::new("/dev/shm")).is_some());
        }
    }

    #[test]
    fn commands_per_language() {
        let check = |language, runtime: Option<&str>, expect: &str| {
            let mut s = AgentSettings::new(language);
            s.code_dir = "/function".into();
            s.runtime = runtime.map(str::to_string);
            assert_eq!(WorkerCommand::from_settings(&s).display(), expect);
        };
        check(Language::Python, None, "python3 -u /function/handler.py");
        check(
            Language::Python,
            Some("python3.11"),
            "python3.11 -u /function/handler.py",
        );
        check(Language::Nodejs, None, "node /function/handler.js");
        let python = WorkerCommand::from_settings(&AgentSettings::new(Language::Python));
        assert_eq!(
            python.env,
            [("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string())]
        );
        assert!(
            WorkerCommand::from_settings(&AgentSettings::new(Language::Nodejs))
                .env
                .is_empty()
        );
    }
}

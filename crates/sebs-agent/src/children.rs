//! The agent's child processes: spawning them and reaping every child, as PID 1 must.
//!
//! In a container the agent is PID 1, so every orphan of the namespace (a handler's
//! background process, a double fork) becomes its child and must be reaped. A single owner
//! calls `waitpid(-1)`: [`Children::reap`] collects every exited child and routes the status
//! of those spawned through [`Children::spawn`] to whoever waits for them. Nothing else in the
//! agent may wait for a child (no `tokio::process`), or it would race the reaper.
//!
//! The registry lock is held from before `fork` until the pid is registered, and while
//! reaping, so a child that exits at once is still routed to its owner, and a failed `exec`
//! (which std reaps itself) is not stolen.
//!
//! The agent forks from one thread of its own ([`Spawner`]), started before it serves: in a
//! container with a pids limit, a function that holds every task left would keep the agent
//! from starting a thread to fork from (Tokio's blocking pool panics then), whereas the fork
//! itself fails cleanly with `EAGAIN`, which the call that needed a worker reports.

use std::collections::HashMap;
use std::fmt;
use std::process::{Child, Command};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this status.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled(sig) => match Signal::try_from(sig) {
                Ok(name) => write!(f, "was killed by signal {sig} ({})", name.as_str()),
                Err(_) => write!(f, "was killed by signal {sig}"),
            },
        }
    }
}

type Waiters = HashMap<i32, oneshot::Sender<ExitStatus>>;

/// The registry of children whose exit status someone waits for. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Children {
    waiters: Arc<Mutex<Waiters>>,
}

impl Children {
    pub fn new() -> Children {
        Children::default()
    }

    fn lock(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding the lock leaves the map consistent: keep using it.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns `command` and registers it; the receiver gets its exit status once reaped.
    ///
    /// Blocks while the process is forked; call it from a blocking context.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<Spawned> {
        let mut waiters = self.lock();
        let child = command.spawn()?;
        let (tx, rx) = oneshot::channel();
        waiters.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Reaps every child that has exited, registered or not; returns how many.
    pub fn reap(&self) -> usize {
        let mut waiters = self.lock();
        let mut reaped = 0;
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                    (pid, ExitStatus::Signaled(sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                // Stop/continue reports are not asked for; anything else is unexpected.
                Ok(_) => continue,
                Err(_) => break,
            };
            reaped += 1;
            if let Some(tx) = waiters.remove(&pid.as_raw()) {
                // What the worker started dies with it. Its group id cannot have been
                // reused: a pid stays taken while a process group of that id has members.
                let _ = killpg(pid, Signal::SIGKILL);
                // The owner may have stopped waiting (a killed worker); that is fine.
                let _ = tx.send(status);
            }
        }
        reaped
    }

    /// Sends SIGKILL to the process group of registered child `pid`, if it is still running.
    ///
    /// Children are spawned as leaders of their own process group, so this also stops what
    /// they started. A pid that was already reaped is left alone: it may have been reused.
    pub fn kill_group(&self, pid: i32) {
        let waiters = self.lock();
        if waiters.contains_key(&pid) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Sends SIGKILL to the process groups of all registered children.
    pub fn kill_all(&self) {
        let waiters = self.lock();
        for &pid in waiters.keys() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// A spawned child and the receiver of its exit status.
pub type Spawned = (Child, oneshot::Receiver<ExitStatus>);

type SpawnJob = (Command, oneshot::Sender<std::io::Result<Spawned>>);

/// Spawns children through [`Children::spawn`] on a thread of its own. Cheap to clone; the
/// thread ends with the last clone.
#[derive(Debug, Clone)]
pub struct Spawner {
    children: Children,
    jobs: mpsc::Sender<SpawnJob>,
}

impl Spawner {
    /// Starts the spawning thread for `children`.
    pub fn start(children: Children) -> std::io::Result<Spawner> {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        let registry = children.clone();
        std::thread::Builder::new()
            .name("sebs-spawner".into())
            .spawn(move || {
                for (mut command, reply) in queue {
                    // The caller may have given up waiting; the child is registered either way.
                    let _ = reply.send(registry.spawn(&mut command));
                }
            })?;
        Ok(Spawner { children, jobs })
    }

    /// The registry the children are spawned into.
    pub fn children(&self) -> &Children {
        &self.children
    }

    /// Spawns `command` (see [`Children::spawn`]) without blocking the caller's thread.
    pub async fn spawn(&self, command: Command) -> std::io::Result<Spawned> {
        let gone = || std::io::Error::other("the agent's spawning thread is gone");
        let (reply, answer) = oneshot::channel();
        self.jobs.send((command, reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Reaps children whenever SIGCHLD arrives, until the runtime stops.
///
/// The SIGCHLD handler must be installed before the first child is spawned; this function
/// installs it and returns the task to run.
pub fn reaper(
    children: Children,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let mut sigchld = signal(SignalKind::child())?;
    Ok(async move {
        children.reap();
        while sigchld.recv().await.is_some() {
            children.reap();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_sentences() {
        let check = |s: ExitStatus, expect: &str| assert_eq!(s.to_string(), expect);
        check(ExitStatus::Exited(3), "exited with status 3");
        check(ExitStatus::Signaled(9), "was killed by signal 9 (SIGKILL)");
        check(
            ExitStatus::Signaled(15),
            "was killed by signal 15 (SIGTERM)",
        );
        check(ExitStatus::Signaled(99), "was killed by signal 99");
    }

    #[tokio::test]
    async fn routes_statuses_of_registered_children() {
        let children = Children::new();
        tokio::spawn(reaper(children.clone()).unwrap());
        let (_child, rx) = children
            .spawn(Command::new("sh").args(["-c", "exit 7"]))
            .unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, ExitStatus::Exited(7));

        // The same through the spawning thread. (One test: a second reaper in this process
        // would reap the other's children.)
        let spawner = Spawner::start(children).unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "exit 4"]);
        let (_child, rx) = spawner.spawn(command).await.unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, ExitStatus::Exited(4));
        let missing = spawner
            .spawn(Command::new("/nonexistent/sebs-test-program"))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}

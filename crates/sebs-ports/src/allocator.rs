//! Port leases: one lock file per port in a runtime directory, held with `flock`, probed on the host.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::policy::{first_available, Choice, SkipReason, Skipped, Verdict};
use crate::PortRange;

/// What went wrong while allocating, releasing or reclaiming a port. Messages read after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Every port of the range is taken.
    #[error("find a free port in {range}: all {count} ports are taken ({skipped})", count = range.len())]
    Exhausted {
        /// The range searched.
        range: PortRange,
        /// Why each port was passed over.
        skipped: Skipped,
    },
    /// The lock directory could not be created or inspected.
    #[error("create port lock directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The lock directory (or its parent) belongs to another user, who could then take our ports.
    #[error(
        "use port lock directory {path}: it belongs to uid {owner}, not to us (uid {uid}) or root"
    )]
    ForeignDir {
        /// The directory found foreign.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        uid: u32,
    },
    /// The lock directory is a symbolic link or not a directory.
    #[error("use port lock directory {path}: it is not a plain directory")]
    NotADir {
        /// The path.
        path: PathBuf,
    },
    /// The lock directory could not be listed.
    #[error("list port lock directory {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A lock file could not be opened, locked, read, written or removed.
    #[error("{action} lock file {path} of port {port}")]
    LockFile {
        /// What was being done: "open", "lock", "read", "write", "remove", "inspect".
        action: &'static str,
        /// The port.
        port: u16,
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A persisted lease stayed locked by someone else for too long to release it.
    #[error("release port {port}: its lock file {path} stays locked by another process")]
    Busy {
        /// The port.
        port: u16,
        /// The lock file.
        path: PathBuf,
    },
    /// Probing a port failed in a way that is not "in use": the host address is wrong, say.
    #[error("probe port {port} on {host}")]
    Probe {
        /// The address probed.
        host: Ipv4Addr,
        /// The port.
        port: u16,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A container id that cannot be written to a lock file and read back as itself.
    #[error(
        "persist port {port} for container {container:?}: a container id is one non-empty word"
    )]
    InvalidContainer {
        /// The port.
        port: u16,
        /// The id given.
        container: String,
    },
}

/// Where and how ports are allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// Ports to choose from.
    pub range: PortRange,
    /// Directory of the per-port lock files; shared by every allocator that must not collide.
    pub lock_dir: PathBuf,
    /// The address functions are published on, where ports are probed. Docker must be told
    /// to publish on this same address.
    pub host: Ipv4Addr,
}

impl AllocatorConfig {
    /// The default range on 127.0.0.1, with lock files in `lock_dir`.
    pub fn new(lock_dir: impl Into<PathBuf>) -> AllocatorConfig {
        AllocatorConfig {
            range: PortRange::DEFAULT,
            lock_dir: lock_dir.into(),
            host: Ipv4Addr::LOCALHOST,
        }
    }

    /// [`AllocatorConfig::new`] with the lock directory [`default_lock_dir`] picks for this
    /// process's `XDG_RUNTIME_DIR` and effective uid.
    pub fn from_env() -> AllocatorConfig {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR");
        AllocatorConfig::new(default_lock_dir(
            xdg.as_deref(),
            nix::unistd::geteuid().as_raw(),
        ))
    }
}

/// The lock directory for a user: `$XDG_RUNTIME_DIR/sebs-local/ports` when that variable is an
/// absolute path (the XDG spec ignores it otherwise), else `/tmp/sebs-local-<uid>/ports`.
///
/// `/tmp` itself rather than `$TMPDIR`: every `sebs-local` of the user must find the same
/// directory, whatever its environment.
pub fn default_lock_dir(xdg_runtime_dir: Option<&OsStr>, uid: u32) -> PathBuf {
    match xdg_runtime_dir.map(Path::new) {
        Some(dir) if dir.is_absolute() => dir.join("sebs-local").join("ports"),
        _ => PathBuf::from(format!("/tmp/sebs-local-{uid}")).join("ports"),
    }
}

/// A port persisted for a container: the lock file names the container that owns the port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersistedPort {
    /// The port.
    pub port: u16,
    /// The id of the container that owns it.
    pub container: String,
}

/// Hands out host ports, leasing each with a lock file and checking it on the host.
///
/// # Protocol
///
/// Every port has a file `<lock_dir>/<port>.lock`. Its state:
///
/// - absent, or empty and unlocked: free as far as we know (an empty unlocked file is what a
///   process that died mid-allocation leaves behind);
/// - locked (`flock`, exclusive): an allocation holds it; a [`PortLease`] keeps the lock;
/// - containing a container id: a persisted lease; the function in that container owns the
///   port beyond the life of the process that started it.
///
/// A lease is released by removing the file *while holding its lock*. Someone who opened the
/// file before it was removed can still lock the removed inode afterwards, so after locking,
/// every taker checks that the path still names the inode it locked, and starts over if not.
///
/// `flock` locks belong to an open file description, so two allocations in the same process
/// (two threads, two [`Allocator`]s) exclude each other as two processes do. The kernel drops
/// the lock when a process dies, so a crash never leaves a port locked, at worst an empty file.
/// Lock files are opened close-on-exec (std's default), so programs the caller runs, such as
/// a `docker` CLI, do not inherit leases.
///
/// # Probing the host
///
/// A port not locked by us is bound once on the configured host address (127.0.0.1 by
/// default, where Docker publishes our functions) and let go at once. The bind fails, and the
/// port is skipped, when anything listens on that address or on the wildcard 0.0.0.0, or on a
/// dual-stack `[::]`, so processes bound to all interfaces are caught too. Two things a probe
/// cannot see: a port published by Docker with its userland proxy disabled (iptables only, no
/// socket), and a process that binds the port between our probe and Docker's. A caller whose
/// container then fails to publish adds the port to its `held` set and allocates again.
/// std binds with `SO_REUSEADDR` on Unix, as Docker's proxy does, so connections lingering in
/// `TIME_WAIT` on a port do not make it look taken.
#[derive(Debug, Clone)]
pub struct Allocator {
    config: AllocatorConfig,
}

/// How many times a port is retried when its lock file is removed under us.
const REOPEN_ATTEMPTS: usize = 5;
/// How long [`Allocator::release_persisted`] waits for a lock held by a probing allocator.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl Allocator {
    /// An allocator; creates the lock directory (mode 0700) if needed and checks that it and
    /// its parent belong to us or root.
    pub fn new(config: AllocatorConfig) -> Result<Allocator, PortError> {
        ensure_private_dir(&config.lock_dir)?;
        Ok(Allocator { config })
    }

    /// The configuration.
    pub fn config(&self) -> &AllocatorConfig {
        &self.config
    }

    /// Where the lock file of `port` lives.
    pub fn lock_path(&self, port: u16) -> PathBuf {
        self.config.lock_dir.join(format!("{port}.lock"))
    }

    /// Leases the lowest port of the range that is not in `held` (ports of our live functions
    /// the caller knows of), not locked or persisted by another allocation, and free on the
    /// host. Persisted leases of dead containers keep their ports until
    /// [`Allocator::reclaim_stale`] runs: call it first.
    pub fn allocate(&self, held: &BTreeSet<u16>) -> Result<PortLease, PortError> {
        match first_available(self.config.range, held, |port| self.try_port(port))? {
            Choice::Found(_, lease) => Ok(lease),
            Choice::Exhausted(skipped) => Err(PortError::Exhausted {
                range: self.config.range,
                skipped,
            }),
        }
    }

    fn try_port(&self, port: u16) -> Result<Verdict<PortLease>, PortError> {
        let path = self.lock_path(port);
        for _ in 0..REOPEN_ATTEMPTS {
            let mut lock = match lock_file(port, &path, true)? {
                Locking::Locked(lock) => lock,
                Locking::Busy | Locking::Missing => {
                    return Ok(Verdict::Skip(SkipReason::Allocating))
                }
            };
            if !still_linked(port, &path, &lock)? {
                continue;
            }
            if !read_owner(port, &path, &mut lock)?.is_empty() {
                return Ok(Verdict::Skip(SkipReason::Persisted));
            }
            // The file is ours now: it is either new or an orphan of a dead allocation.
            let lease = PortLease {
                port,
                path,
                lock: Some(lock),
            };
            return if probe(self.config.host, port)? {
                Ok(Verdict::Take(lease))
            } else {
                lease.release()?;
                Ok(Verdict::Skip(SkipReason::InUse))
            };
        }
        // Removed under us every time: others are busy with this port.
        Ok(Verdict::Skip(SkipReason::Allocating))
    }

    /// Every persisted lease, sorted by port. Lock files are read without locking: a persisted
    /// id is written by a single `write` into an empty file, so a reader sees all of it or none.
    pub fn persisted(&self) -> Result<Vec<PersistedPort>, PortError> {
        let mut found = Vec::new();
        for (port, path) in self.lock_files()? {
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(lock_error("read", port, &path, source)),
            };
            let container = text.trim();
            if !container.is_empty() {
                found.push(PersistedPort {
                    port,
                    container: container.to_owned(),
                });
            }
        }
        found.sort();
        Ok(found)
    }

    /// Frees the port persisted for `container`, as `stop` does once the container is gone.
    /// Returns false when the port is not persisted for that container (already released, or
    /// reclaimed and now someone else's).
    pub fn release_persisted(&self, port: u16, container: &str) -> Result<bool, PortError> {
        let path = self.lock_path(port);
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        loop {
            let mut lock = match lock_file(port, &path, false)? {
                Locking::Locked(lock) => lock,
                Locking::Missing => return Ok(false),
                Locking::Busy if std::time::Instant::now() >= deadline => {
                    return Err(PortError::Busy { port, path });
                }
                Locking::Busy => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            if !still_linked(port, &path, &lock)? {
                // Removed since we opened it: look again at whatever the path names now.
                if std::time::Instant::now() >= deadline {
                    return Err(PortError::Busy { port, path });
                }
                continue;
            }
            if read_owner(port, &path, &mut lock)? != container {
                return Ok(false);
            }
            remove_locked(port, &path, lock)?;
            return Ok(true);
        }
    }

    /// Removes persisted leases whose container `is_alive` says is gone, and empty lock files
    /// that dead allocations left; returns the persisted leases removed, sorted by port.
    /// Files locked by an allocation in progress are left alone.
    pub fn reclaim_stale(
        &self,
        is_alive: impl Fn(&str) -> bool,
    ) -> Result<Vec<PersistedPort>, PortError> {
        let mut reclaimed = Vec::new();
        for (port, path) in self.lock_files()? {
            let Locking::Locked(mut lock) = lock_file(port, &path, false)? else {
                continue;
            };
            if !still_linked(port, &path, &lock)? {
                continue;
            }
            let owner = read_owner(port, &path, &mut lock)?;
            if owner.is_empty() {
                remove_locked(port, &path, lock)?;
            } else if !is_alive(&owner) {
                remove_locked(port, &path, lock)?;
                reclaimed.push(PersistedPort {
                    port,
                    container: owner,
                });
            }
        }
        reclaimed.sort();
        Ok(reclaimed)
    }

    /// The lock files in the directory, by port; other files are ignored.
    fn lock_files(&self) -> Result<Vec<(u16, PathBuf)>, PortError> {
        let dir = &self.config.lock_dir;
        let read_dir_error = |source| PortError::ReadDir {
            path: dir.clone(),
            source,
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_dir_error(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_dir_error)?;
            let name = entry.file_name();
            let port = name
                .to_str()
                .and_then(|n| n.strip_suffix(".lock"))
                .and_then(|n| n.parse::<u16>().ok());
            if let Some(port) = port {
                files.push((port, entry.path()));
            }
        }
        Ok(files)
    }
}

/// A port reserved for one function: its lock file stays locked while the lease lives.
///
/// Dropping the lease releases the port (best effort); [`PortLease::release`] does the same and
/// reports errors; [`PortLease::persist`] hands the port to a container for good.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    path: PathBuf,
    /// `None` only once released or persisted, so that `Drop` does nothing more.
    lock: Option<Flock<File>>,
}

impl PortLease {
    /// The leased port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The lease's lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frees the port: removes the lock file, then unlocks it.
    pub fn release(mut self) -> Result<(), PortError> {
        match self.lock.take() {
            Some(lock) => remove_locked(self.port, &self.path, lock),
            None => Ok(()),
        }
    }

    /// Makes the lease outlive this process: writes `container` into the lock file and unlocks
    /// it, so the port stays taken until [`Allocator::release_persisted`], or until
    /// [`Allocator::reclaim_stale`] finds the container gone.
    pub fn persist(mut self, container: &str) -> Result<PersistedPort, PortError> {
        if container.is_empty() || container.contains(char::is_whitespace) {
            return Err(PortError::InvalidContainer {
                port: self.port,
                container: container.to_owned(),
            });
        }
        if let Some(mut lock) = self.lock.take() {
            // One write into the empty file, so that unlocked readers see all or nothing.
            let line = format!("{container}\n");
            if let Err(source) = lock.write_all(line.as_bytes()) {
                // Put the lock back so that Drop removes the file.
                self.lock = Some(lock);
                return Err(lock_error("write", self.port, &self.path, source));
            }
        }
        Ok(PersistedPort {
            port: self.port,
            container: container.to_owned(),
        })
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            // Best effort: an orphaned empty file is reused or reclaimed later anyway.
            let _ = remove_locked(self.port, &self.path, lock);
        }
    }
}

fn lock_error(action: &'static str, port: u16, path: &Path, source: io::Error) -> PortError {
    PortError::LockFile {
        action,
        port,
        path: path.to_owned(),
        source,
    }
}

/// What trying to lock a lock file found.
enum Locking {
    /// We hold the lock.
    Locked(Flock<File>),
    /// Someone else holds it.
    Busy,
    /// There is no file (only when not asked to create it).
    Missing,
}

/// Opens (creating it when `create`) and locks a lock file, without blocking.
fn lock_file(port: u16, path: &Path, create: bool) -> Result<Locking, PortError> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(Locking::Missing),
        Err(source) => return Err(lock_error("open", port, path, source)),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Locking::Locked(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(Locking::Busy),
        Err((_, errno)) => Err(lock_error("lock", port, path, errno.into())),
    }
}

/// Whether `path` still names the inode we locked (it may have been released since we opened it).
fn still_linked(port: u16, path: &Path, lock: &Flock<File>) -> Result<bool, PortError> {
    let ours = lock
        .metadata()
        .map_err(|e| lock_error("inspect", port, path, e))?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == ours.dev() && now.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(lock_error("inspect", port, path, source)),
    }
}

/// The container id in a locked lock file, or "" for an empty (in-flight or orphaned) one.
fn read_owner(port: u16, path: &Path, lock: &mut Flock<File>) -> Result<String, PortError> {
    let mut text = String::new();
    lock.read_to_string(&mut text)
        .map_err(|e| lock_error("read", port, path, e))?;
    Ok(text.trim().to_owned())
}

/// Removes a lock file while still holding its lock, then unlocks it by dropping it.
fn remove_locked(port: u16, path: &Path, lock: Flock<File>) -> Result<(), PortError> {
    let removed = match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(lock_error("remove", port, path, source)),
    };
    drop(lock);
    removed
}

/// Whether `port` can be bound on `host` right now. "In use" and "not permitted" (a privileged
/// port) are a no; other errors, such as an address this host does not have, are errors.
fn probe(host: Ipv4Addr, port: u16) -> Result<bool, PortError> {
    match TcpListener::bind(SocketAddrV4::new(host, port)) {
        Ok(listener) => {
            drop(listener);
            Ok(true)
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(false)
        }
        Err(source) => Err(PortError::Probe { host, port, source }),
    }
}

/// Creates `dir` (mode 0700 for every level created) and checks that it is a real directory
/// owned by us or root, and its parent too: in a shared `/tmp`, another user who owned either
/// could swap our lock files.
fn ensure_private_dir(dir: &Path) -> Result<(), PortError> {
    let create_error = |source| PortError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(create_error)?;
    let uid = nix::unistd::geteuid().as_raw();
    let mut checked = vec![dir];
    checked.extend(dir.parent().filter(|p| !p.as_os_str().is_empty()));
    for path in checked {
        let meta = fs::symlink_metadata(path).map_err(|source| PortError::CreateDir {
            path: path.to_owned(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(PortError::NotADir {
                path: path.to_owned(),
            });
        }
        if meta.uid() != uid && meta.uid() != 0 {
            return Err(PortError::ForeignDir {
                path: path.to_owned(),
                owner: meta.uid(),
                uid,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

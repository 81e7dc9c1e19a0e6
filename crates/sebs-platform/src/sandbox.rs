//! The sandbox of a function's container, as strict as a cloud function's by default, and
//! the record of it that goes into `out.json` and experiment results.
//!
//! What every function container gets (see [`Sandbox`] for what can be loosened): a
//! read-only root file system (the code package at `/function` is read-only too) with a
//! tmpfs of [`Sandbox::tmp_size_mb`] at `/tmp`, whose pages count against the memory limit
//! (or, with [`TmpOn::Disk`], a volume of the container's own on the engine's disk, as a
//! cloud function's ephemeral storage, apart from its memory);
//! at most [`Sandbox::pids_limit`] tasks; the function's processes run as
//! [`Sandbox::user`] without capabilities, and the agent keeps only the few it needs to start
//! and stop them as that user ([`sebs_wire::AgentSettings::capabilities`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The size of `/tmp` unless configured, as AWS Lambda's default ephemeral storage.
pub const DEFAULT_TMP_SIZE_MB: u64 = 512;
/// The most tasks (processes and threads) in a container unless configured, as AWS Lambda's.
pub const DEFAULT_PIDS_LIMIT: u64 = 1024;
/// Whom a function runs as when the invoking user is root: `nobody`/`nogroup`. The function
/// writes nowhere outside its container, so no host user needs to own what it writes.
pub const UNPRIVILEGED_USER: (u32, u32) = (65534, 65534);
/// The largest `/tmp` the engine can be asked for: its sizes are signed 64-bit byte counts.
pub const MAX_TMP_SIZE_MB: u64 = (i64::MAX as u64) >> 20;

/// What backs the function's `/tmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TmpOn {
    /// A tmpfs of [`Sandbox::tmp_size_mb`]: writes past it fail with `ENOSPC`, and its files
    /// are memory, counted against the memory limit.
    #[default]
    Memory,
    /// A volume of the container's own on the engine's disk (removed with the container):
    /// files there do not count against the memory limit, as AWS Lambda's `/tmp` does not,
    /// but its size is not limited.
    Disk,
}

impl fmt::Display for TmpOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TmpOn::Memory => "memory",
            TmpOn::Disk => "disk",
        })
    }
}

/// Neither `memory` nor `disk`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read /tmp backing {0:?}: expected `memory` or `disk`")]
pub struct TmpOnError(pub String);

impl FromStr for TmpOn {
    type Err = TmpOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "memory" => Ok(TmpOn::Memory),
            "disk" => Ok(TmpOn::Disk),
            other => Err(TmpOnError(other.to_string())),
        }
    }
}

/// Whom the function's processes run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunctionUser {
    /// The invoking user, as SeBS does; when that is root, [`UNPRIVILEGED_USER`].
    #[default]
    Auto,
    /// Root (uid and gid 0), still without capabilities unless the container is privileged.
    Root,
    /// This uid and gid.
    Id { uid: u32, gid: u32 },
}

impl FunctionUser {
    /// The uid and gid the function runs as when `host` is the invoking user's.
    pub fn resolve(self, host: (u32, u32)) -> (u32, u32) {
        match self {
            FunctionUser::Auto if host.0 == 0 => UNPRIVILEGED_USER,
            FunctionUser::Auto => host,
            FunctionUser::Root => (0, 0),
            FunctionUser::Id { uid, gid } => (uid, gid),
        }
    }
}

impl fmt::Display for FunctionUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunctionUser::Auto => f.write_str("auto"),
            FunctionUser::Root => f.write_str("root"),
            FunctionUser::Id { uid, gid } => write!(f, "{uid}:{gid}"),
        }
    }
}

/// A user that is neither `auto`, `root` nor `UID[:GID]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("read user {text:?}: {reason}")]
pub struct UserError {
    pub text: String,
    pub reason: String,
}

impl FromStr for FunctionUser {
    type Err = UserError;

    /// `auto`, `root`, or `UID[:GID]` (the gid defaults to the uid). Uid 0 is root, whose
    /// group must be 0: root in another group would keep the agent's capabilities.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| UserError {
            text: s.to_string(),
            reason: reason.to_string(),
        };
        let id = |part: &str| {
            part.parse::<u32>()
                .map_err(|_| err("expected `auto`, `root` or UID[:GID] with numeric ids"))
        };
        match s.trim() {
            "auto" => Ok(FunctionUser::Auto),
            "root" => Ok(FunctionUser::Root),
            text => {
                let (uid, gid) = match text.split_once(':') {
                    Some((uid, gid)) => (id(uid)?, id(gid)?),
                    None => (id(text)?, id(text)?),
                };
                match (uid, gid) {
                    (0, 0) => Ok(FunctionUser::Root),
                    (0, _) => Err(err("uid 0 is root, whose group must be 0: use `root`")),
                    (uid, gid) => Ok(FunctionUser::Id { uid, gid }),
                }
            }
        }
    }
}

/// The walls around a function; [`Sandbox::default`] is the strict one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sandbox {
    /// Size of the tmpfs at `/tmp` in MiB; `None`: no limit but the memory limit, which its
    /// pages count against. Not used when `tmp_on` is [`TmpOn::Disk`].
    pub tmp_size_mb: Option<u64>,
    pub tmp_on: TmpOn,
    /// The most tasks (processes and threads) the container may hold, the agent's few
    /// included; `None`: no limit.
    pub pids_limit: Option<u64>,
    pub user: FunctionUser,
}

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox {
            tmp_size_mb: Some(DEFAULT_TMP_SIZE_MB),
            tmp_on: TmpOn::Memory,
            pids_limit: Some(DEFAULT_PIDS_LIMIT),
            user: FunctionUser::Auto,
        }
    }
}

impl Sandbox {
    /// A limit as flags and configs write it: 0 is none.
    pub fn limit(n: u64) -> Option<u64> {
        (n > 0).then_some(n)
    }
}

/// The sandbox a function ran in, as `out.json` and experiment results record it: the
/// values in force, not the settings they came from (`auto` is written as the ids it chose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// Whom the function's processes ran as.
    pub uid: u32,
    pub gid: u32,
    /// Size of `/tmp` (a tmpfs counted against the memory limit); `null`: no limit.
    pub tmp_size_mb: Option<u64>,
    /// What backed `/tmp`: `memory` (the tmpfs) or `disk`; files older than this field
    /// had the tmpfs.
    #[serde(default)]
    pub tmp_on: TmpOn,
    /// The most tasks in the container; `null`: no limit.
    pub pids_limit: Option<u64>,
    /// Whether the root file system was read-only.
    pub read_only_root: bool,
    /// A privileged container has every capability: a function running as root had them.
    pub privileged: bool,
    /// The capabilities the agent kept (unless privileged); the function's processes had none.
    pub agent_capabilities: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        let check = |text: &str, expect: Result<FunctionUser, &str>| {
            let got = text.parse::<FunctionUser>();
            match (got, expect) {
                (Ok(user), Ok(want)) => {
                    assert_eq!(user, want, "{text}");
                    // What is printed reads back the same.
                    assert_eq!(user.to_string().parse::<FunctionUser>(), Ok(user));
                }
                (Err(e), Err(fragment)) => {
                    let message = e.to_string();
                    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
                    assert!(message.contains(text), "{message:?} names not {text:?}");
                }
                (got, want) => panic!("{text:?} gave {got:?}, expected {want:?}"),
            }
        };
        check("auto", Ok(FunctionUser::Auto));
        check("root", Ok(FunctionUser::Root));
        check("0", Ok(FunctionUser::Root));
        check("0:0", Ok(FunctionUser::Root));
        check(
            "1000",
            Ok(FunctionUser::Id {
                uid: 1000,
                gid: 1000,
            }),
        );
        check(
            "1000:100",
            Ok(FunctionUser::Id {
                uid: 1000,
                gid: 100,
            }),
        );
        check("0:100", Err("use `root`"));
        check("alice", Err("numeric ids"));
        check("1000:", Err("numeric ids"));
        check("-1", Err("numeric ids"));
        check("", Err("numeric ids"));
    }

    #[test]
    fn whom_a_function_runs_as() {
        let check = |user: FunctionUser, host: (u32, u32), expect: (u32, u32)| {
            assert_eq!(user.resolve(host), expect, "{user} for host user {host:?}");
        };
        // Root on the host: an unprivileged user in the container; anyone else stays himself.
        check(FunctionUser::Auto, (0, 0), UNPRIVILEGED_USER);
        check(FunctionUser::Auto, (1000, 100), (1000, 100));
        check(FunctionUser::Root, (1000, 100), (0, 0));
        check(FunctionUser::Id { uid: 7, gid: 8 }, (0, 0), (7, 8));
    }

    #[test]
    fn defaults_and_limits() {
        let s = Sandbox::default();
        assert_eq!(
            (s.tmp_size_mb, s.pids_limit, s.user),
            (Some(512), Some(1024), FunctionUser::Auto)
        );
        assert_eq!(s.tmp_on, TmpOn::Memory);
        assert_eq!(Sandbox::limit(0), None);
        for tmp_on in [TmpOn::Memory, TmpOn::Disk] {
            assert_eq!(tmp_on.to_string().parse::<TmpOn>(), Ok(tmp_on));
        }
        assert!("ram"
            .parse::<TmpOn>()
            .unwrap_err()
            .to_string()
            .contains("`disk`"));
        assert_eq!(Sandbox::limit(64), Some(64));
    }
}

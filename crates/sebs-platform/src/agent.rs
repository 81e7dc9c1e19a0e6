//! Finding the static agent binary that every function container runs as PID 1.

use std::path::{Path, PathBuf};

use crate::PlatformError;

/// Names the agent binary explicitly; `cargo xtask` sets it.
pub const AGENT_BIN_ENV: &str = "SEBS_AGENT_BIN";

/// The agent binary: `explicit` if given, else `$SEBS_AGENT_BIN`, else `sebs-agent` next to
/// the running executable, else the one `cargo xtask agent` builds in this workspace.
pub fn find_agent_binary(explicit: Option<&Path>) -> Result<PathBuf, PlatformError> {
    let env = std::env::var_os(AGENT_BIN_ENV).map(PathBuf::from);
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("sebs-agent")));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(|root| {
            root.join("target/agent")
                .join(host_triple())
                .join("release/sebs-agent")
        });
    pick_agent(explicit.map(Path::to_path_buf), env, beside_exe, workspace)
}

/// The policy of [`find_agent_binary`], over candidate paths.
fn pick_agent(
    explicit: Option<PathBuf>,
    env: Option<PathBuf>,
    beside_exe: Option<PathBuf>,
    workspace: Option<PathBuf>,
) -> Result<PathBuf, PlatformError> {
    // A path the user named must exist; guessed ones are just skipped.
    if let Some(p) = explicit.or(env) {
        return if p.is_file() {
            // The engine mounts absolute paths only.
            Ok(std::path::absolute(&p).unwrap_or(p))
        } else {
            Err(PlatformError::AgentMissing { path: Some(p) })
        };
    }
    [beside_exe, workspace]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or(PlatformError::AgentMissing { path: None })
}

fn host_triple() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_policy() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("agent");
        std::fs::write(&present, b"").unwrap();
        let absent = dir.path().join("nope");

        let got = pick_agent(None, None, Some(absent.clone()), Some(present.clone())).unwrap();
        assert_eq!(got, present);
        let err = pick_agent(Some(absent.clone()), None, None, Some(present.clone())).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = pick_agent(None, None, Some(absent), None).unwrap_err();
        assert!(err.to_string().contains("cargo xtask agent"), "{err}");
        // A relative SEBS_AGENT_BIN is made absolute: the engine mounts absolute paths only.
        let relative = PathBuf::from("Cargo.toml");
        let got = pick_agent(None, Some(relative), None, None).unwrap();
        assert!(got.is_absolute() && got.ends_with("Cargo.toml"), "{got:?}");
    }
}

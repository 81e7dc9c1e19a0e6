//! Finding the static agent binary that every function container runs as PID 1.

use std::path::{Path, PathBuf};

use sebs_container::{BinaryError, AGENT_BINARY};

use crate::PlatformError;

/// Names the agent binary explicitly; `cargo xtask` sets it.
pub use sebs_container::AGENT_BIN_ENV;

/// The agent binary: `explicit` if given, else `$SEBS_AGENT_BIN`, else `sebs-agent` next to
/// the running executable, else the one `cargo xtask agent` builds in this workspace
/// ([`sebs_container::find_static_binary`]'s order).
pub fn find_agent_binary(explicit: Option<&Path>) -> Result<PathBuf, PlatformError> {
    sebs_container::find_static_binary(AGENT_BINARY, AGENT_BIN_ENV, explicit).map_err(|e| {
        PlatformError::AgentMissing {
            path: match e {
                BinaryError::Named { path, .. } => Some(path),
                BinaryError::NotFound { .. } => None,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_agent_that_is_not_there_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("nope");
        let err = find_agent_binary(Some(&absent)).unwrap_err();
        assert!(
            matches!(&err, PlatformError::AgentMissing { path: Some(p) } if *p == absent),
            "{err}"
        );
        let present = dir.path().join("sebs-agent");
        std::fs::write(&present, b"").unwrap();
        assert_eq!(find_agent_binary(Some(&present)).unwrap(), present);
    }
}

//! Where the repository is, and running commands from it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root, found from this crate's manifest directory, never from the cwd.
pub fn dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `cargo` as invoked us (honours `CARGO`), run from the workspace root.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir());
    cmd
}

/// Runs `cmd` with inherited output; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(cmd));
    }
    Ok(())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

//! Builds our static binaries (the in-container agent, the embedded stores, the bench's
//! floor) so that they run in any Linux image, even an empty one.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::root;

/// Builds `sebs-agent` statically linked for the host's target and returns its path.
pub fn build() -> Result<PathBuf> {
    build_static("sebs-agent")
}

/// Builds `sebs-store` (the embedded S3 and DynamoDB servers, PID 1 of a FROM-scratch
/// image) statically linked and returns its path.
pub fn build_store() -> Result<PathBuf> {
    build_static("sebs-store")
}

/// Builds the binary of the same name as `package` statically linked for the host's target
/// and returns its path.
///
/// A separate target directory keeps the static build's flags from invalidating the
/// normal build; `RUSTFLAGS` with an explicit `--target` leaves build scripts and proc
/// macros dynamically linked, as they must be. All static binaries share that directory,
/// so their common dependencies are built once.
pub fn build_static(package: &str) -> Result<PathBuf> {
    let triple = host_triple()?;
    let target_dir = root::dir().join("target").join("agent");
    let mut cmd = root::cargo();
    cmd.args([
        "build",
        "--quiet",
        "--release",
        "--package",
        package,
        "--target",
        &triple,
    ])
    .env("CARGO_TARGET_DIR", &target_dir)
    .env("RUSTFLAGS", "-C target-feature=+crt-static");
    root::run(&mut cmd)?;
    let path = target_dir.join(&triple).join("release").join(package);
    if !path.is_file() {
        bail!(
            "cargo built {package} but {} does not exist",
            path.display()
        );
    }
    Ok(path)
}

fn host_triple() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = std::process::Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("failed to run {} -vV", rustc.to_string_lossy()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|s| s.trim().to_string())
        .context("rustc -vV printed no host triple")
}

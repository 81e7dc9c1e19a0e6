//! `cargo xtask bench`: the project's benchmark on defaults.
//!
//! For now: package a fixture, start it, invoke it cold and warm through the CLI, and
//! print the results with their timings.

use anyhow::Result;

use crate::root;

pub fn run(args: &[String]) -> Result<()> {
    let prepared = crate::prepare()?;
    let _quick = args.iter().any(|a| a == "--quick");
    let mut cmd = root::cargo();
    cmd.args(["run", "--quiet", "--release", "--package", "sebs-cli", "--"])
        .args(["invoke", "010.sleep", "test", "--repetitions", "3"])
        .env("SEBS_AGENT_BIN", &prepared.agent);
    root::run(&mut cmd)
}

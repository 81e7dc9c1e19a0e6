//! Project automation, run as `cargo xtask <task>`: the two commands of the README.
//!
//! - `cargo xtask test`: makes sure a Docker engine answers (and Chromium, for the report
//!   test, is installed), builds the static agent, the static stores and the offline base
//!   image, then runs the whole test suite with Docker tests for real.
//! - `cargo xtask bench`: the same preparation, then the project's benchmark.
//! - `cargo xtask agent`: builds the static in-container agent and the static store
//!   (embedded S3/DynamoDB) and prints their paths.
//! - `cargo xtask engine2 <command...>`: runs a command with the tests' second Docker
//!   engine up (`SEBS_ENGINE2`), e.g. to run by hand the tests that need it.

mod agent;
mod bench;
mod docker;
mod engine2;
mod root;
mod tidy;

use anyhow::Result;

const USAGE: &str = "usage: cargo xtask <test|bench|agent> [args...]

  test [cargo test args]   prepare Docker, the agent and images, then run every test
  bench [--quick] [--only GROUP,...]
                           prepare, then run the benchmark and print its figures
                           (written to target/bench/summary.json); groups: cold, start,
                           warm, deployments, batches, perf-cost, storage
  agent                    build the static in-container agent and the static store
                           (embedded S3/DynamoDB), and print their paths
  engine2 <command...>     run a command with the tests' second Docker engine up
                           (its address in SEBS_ENGINE2), then remove that engine";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("test") => test(&rest),
        Some("bench") => bench::run(&rest),
        // What `bench` runs in a release build once everything is prepared.
        Some("bench-run") => bench::measure_main(&rest),
        Some("agent") => {
            println!("{}", agent::build()?.display());
            println!("{}", agent::build_store()?.display());
            Ok(())
        }
        Some("engine2") => with_engine2(&rest),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// Everything the tests need, then the tests, none of which may be skipped: a missing
/// prerequisite fails its test (`sebs-testkit`'s gate).
fn test(extra: &[String]) -> Result<()> {
    let prepared = prepare()?;
    docker::ensure_node()?;
    docker::ensure_chromium()?;
    docker::ensure_store_test_tools()?;
    let mut cmd = root::cargo();
    cmd.args(["test", "--workspace"]).args(extra);
    cmd.env("SEBS_AGENT_BIN", &prepared.agent);
    cmd.env("SEBS_STORE_BIN", &prepared.store);
    cmd.env("SEBS_TESTS_REQUIRE_ALL", "1");
    // The second engine lives as long as the tests; it is removed however they end.
    let engine2 = start_engine2(&mut cmd);
    let result = root::run(&mut cmd);
    if let Some(engine2) = engine2 {
        engine2.stop()?;
    }
    result
}

/// Starts the second engine and tells `cmd` where it is (see [`engine2::Engine2::env`]). When it cannot start, the tests that need it are told why
/// (`SEBS_ENGINE2_ERROR`) and fail with that reason: they are never skipped here.
fn start_engine2(cmd: &mut std::process::Command) -> Option<engine2::Engine2> {
    match engine2::Engine2::start() {
        Ok(engine) => {
            cmd.envs(engine.env());
            Some(engine)
        }
        Err(e) => {
            eprintln!("xtask: the second engine did not start: {e:#}");
            cmd.env("SEBS_ENGINE2_ERROR", format!("{e:#}"));
            None
        }
    }
}

/// `cargo xtask engine2 <command...>`: the command, run with the second engine up.
fn with_engine2(command: &[String]) -> Result<()> {
    let Some((program, args)) = command.split_first() else {
        anyhow::bail!("engine2 needs a command to run, e.g.\n    cargo xtask engine2 cargo test -p sebs-container --test it\n\n{USAGE}");
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    let engine2 = engine2::Engine2::start()?;
    cmd.envs(engine2.env());
    let result = root::run(&mut cmd);
    engine2.stop()?;
    result
}

/// What a run needs from the machine: an engine, the agent and store binaries and a
/// Python image.
pub struct Prepared {
    pub agent: std::path::PathBuf,
    /// The static `sebs-store` (embedded S3 and DynamoDB servers).
    pub store: std::path::PathBuf,
}

pub fn prepare() -> Result<Prepared> {
    docker::ensure_engine()?;
    docker::ensure_python3()?;
    let agent = agent::build()?;
    let store = agent::build_store()?;
    // The CLI owns image resolution (official image, else the offline base it builds);
    // running it here builds the base once, before tests run in parallel.
    let mut cmd = root::cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "sebs-cli",
        "--",
        "images",
        "prepare",
    ]);
    cmd.env("SEBS_AGENT_BIN", &agent);
    root::run(&mut cmd)?;
    Ok(Prepared { agent, store })
}

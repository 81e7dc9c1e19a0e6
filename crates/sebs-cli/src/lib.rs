//! The `sebs-local` command line: parsing, exit codes and the commands' glue.
//!
//! Each command lives in its own module and returns a [`Failure`] that carries the exit
//! code it maps to ([`Exit`]); `main` only prints and exits. Logs go to stderr and results
//! to stdout, so `sebs-local invoke ... | jq` works.

mod cleanup;
mod exit;
mod experiment;
mod images;
mod inputs;
mod invoke;
mod logs;
mod measure;
mod package;
mod report;
mod setup;
mod start;
mod stop;
mod storage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use exit::{Exit, Failure};

#[derive(Debug, Parser)]
#[command(
    name = "sebs-local",
    version,
    about = "Run SeBS benchmarks in local Docker containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Package a benchmark, start it, invoke it and print one JSON result per invocation.
    Invoke(invoke::Args),
    /// Build a benchmark's code package (or find it in the cache) and print its directory, hash and size.
    Package(package::Args),
    /// Run one of SeBS's experiments.
    #[command(subcommand)]
    Experiment(experiment::Command),
    /// Manage the base images functions run in.
    #[command(subcommand)]
    Images(images::Command),
    /// Start N containers of a benchmark and write out.json (SeBS's `local start`).
    Start(start::Args),
    /// Stop the containers an out.json lists (SeBS's `local stop`).
    Stop(stop::Args),
    /// Write report.html (plots and tables, self-contained) for a results directory.
    Report(report::Args),
    /// Remove every container sebs-local started (all of them, found by label).
    Cleanup(cleanup::Args),
    /// Print the output of each container an out.json lists.
    Logs(logs::Args),
    /// Object storage and NoSQL: SeBS's `storage start` and `storage stop`.
    #[command(subcommand)]
    Storage(storage::Command),
    /// The memory measuring process `start --measure-interval` leaves running (internal).
    #[command(hide = true)]
    Measure(measure::Args),
}

/// Runs the command line of this process and returns its exit code.
pub fn main() -> ExitCode {
    setup::process_start();
    let cli = Cli::parse();
    setup::logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(Exit::Environment as u8);
        }
    };
    // The command runs on a worker thread: a future that `block_on` polls itself is woken
    // through a worker at every answer (two context switches per call instead of one), which
    // every client time the trigger records would count.
    let command = runtime.spawn(async move {
        match cli.command {
            Command::Invoke(args) => invoke::run(args).await,
            Command::Package(args) => package::run(args).await,
            Command::Images(cmd) => images::run(cmd).await,
            Command::Start(args) => start::run(args).await,
            Command::Stop(args) => stop::run(args).await,
            Command::Cleanup(args) => cleanup::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Logs(args) => logs::run(args).await,
            Command::Measure(args) => measure::run(args).await,
            Command::Experiment(cmd) => experiment::run(cmd).await,
            Command::Storage(cmd) => storage::run(cmd).await,
        }
    });
    let result = match runtime.block_on(command) {
        Ok(result) => result,
        // As if it had run on this thread.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            eprintln!("error: the command's task ended early: {e}");
            return ExitCode::from(Exit::Environment as u8);
        }
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.exit as u8)
        }
    }
}

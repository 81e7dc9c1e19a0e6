//! `sebs-agent`: the container's PID 1; reads its settings from the environment and runs the
//! agent, or, as `sebs-agent --empty-dir DIR`, the helper that empties the function's `/tmp`.

use std::process::ExitCode;

/// The most blocking threads the runtime starts.
const MAX_BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(sebs_agent::tmp::EMPTY_DIR_ARG)) {
        // The helper the agent runs as the function's user; see `sebs_agent::tmp`.
        let Some(dir) = args.next() else {
            eprintln!(
                "sebs-agent: {} needs a directory",
                sebs_agent::tmp::EMPTY_DIR_ARG
            );
            return ExitCode::from(2);
        };
        return match sebs_agent::tmp::empty_dir(std::path::Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sebs-agent: failed to {}", sebs_wire::ErrorChain(&e));
                ExitCode::from(1)
            }
        };
    }
    let settings = match sebs_wire::AgentSettings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sebs-agent: {}", sebs_wire::ErrorChain(&e));
            return ExitCode::from(2);
        }
    };
    // One thread serves every connection and worker pipe: a call's request, its pipe write,
    // the worker's reply and the answer then happen on the thread that was woken for them,
    // with no hand-off between runtime threads (each a futex wake-up and a context switch,
    // which cost more than the agent's own work on a warm call). The agent only waits on
    // sockets and pipes; the function has the other cores. Blocking threads, which nothing
    // on the warm path uses, are each a task of the container's pids limit.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "sebs-agent: failed to start the async runtime: {}",
                sebs_wire::ErrorChain(&e)
            );
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(sebs_agent::run(sebs_agent::Config::new(settings)));
    // Connections and workers are gone or killed; do not wait for their tasks.
    runtime.shutdown_background();
    match outcome {
        Ok(_signal) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sebs-agent: failed to {}", sebs_wire::ErrorChain(&e));
            ExitCode::from(1)
        }
    }
}

//! `sebs-agent`: the container's PID 1; reads its settings from the environment and runs the agent.

use std::process::ExitCode;

fn main() -> ExitCode {
    let settings = match sebs_wire::AgentSettings::from_env(|k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sebs-agent: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sebs-agent: failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(sebs_agent::run(sebs_agent::Config::new(settings)));
    // Connections and workers are gone or killed; do not wait for their tasks.
    runtime.shutdown_background();
    match outcome {
        Ok(_signal) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sebs-agent: failed to {e}");
            ExitCode::from(1)
        }
    }
}

//! `sebs-local experiment perf-cost`: SeBS's perf-cost experiment on the local platform.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Subcommand;
use sebs_experiments::run::{configurations, run_perf_cost, statistics_lines, Experiment};
use sebs_experiments::{PerfCostSettings, Progress};

use crate::exit::{Exit, ExitContext, Failure};
use crate::{inputs, setup};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cold, warm, burst and sequential invocations with SeBS's statistics and result files.
    PerfCost {
        /// SeBS's experiment config (JSON, or YAML by extension) with a `perf-cost` block.
        #[arg(long)]
        config: PathBuf,
        /// Results go to `<DIR>/perf-cost/`.
        #[arg(long)]
        output_dir: PathBuf,
        #[arg(long)]
        benchmarks_dir: Option<PathBuf>,
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Rebuild the code package even when its hash is unchanged.
        #[arg(long)]
        update_code: bool,
        /// Loosen the functions' sandbox; these flags win over the config's `tmp-size`,
        /// `pids-limit` and `user`.
        #[command(flatten)]
        sandbox: setup::SandboxArgs,
        #[command(flatten)]
        inputs: inputs::InputArgs,
        #[command(flatten)]
        engines: setup::EngineArgs,
    },
}

pub async fn run(command: Command) -> Result<Exit, Failure> {
    let Command::PerfCost {
        config,
        output_dir,
        benchmarks_dir,
        cache,
        update_code,
        sandbox,
        inputs,
        engines,
    } = command;
    let mut settings =
        PerfCostSettings::load(&config).exit(Exit::BadInput, "invalid experiment config")?;
    sandbox.apply(&mut settings.sandbox)?;
    // As SeBS's `--update-code`, the flag decides, whatever the file says.
    settings.sebs.update_code = update_code;
    let mut bench = setup::find_benchmark(
        benchmarks_dir.as_deref(),
        &settings.benchmark,
        settings.language,
    )?;
    for config in configurations(&bench.config, &settings) {
        setup::check_config(&config)?;
    }
    let prepared = inputs::prepare(&mut bench, settings.input_size, &inputs).await?;
    let home = setup::home().await?;
    let platform = setup::platform(home, |_| {})
        .await?
        .with_engines(engines.connect().await?);
    inputs::relay_to_remote_engines(&platform, prepared.storage.as_ref()).await?;
    let prepare = setup::prepare(
        &platform,
        &bench,
        settings.language,
        &settings.language_version,
        cache.as_deref(),
        update_code,
    );
    let (image, package) = setup::until_ctrl_c(&platform, prepare).await?;
    let experiment = Experiment {
        platform: platform.clone(),
        bench,
        package,
        image,
        input: prepared.input,
        env: prepared.env,
    };

    // Ctrl-C stops after the current batch; the run then writes what it has and cleans up.
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupted: stopping after the current batch");
            on_signal.store(true, Ordering::SeqCst);
        }
    });
    let bar = progress_bar();
    let report = run_perf_cost(
        &experiment,
        &settings,
        &output_dir,
        &stop,
        &|p: Progress| bar(p),
    )
    .await;
    watcher.abort();
    platform.shutdown().await;
    let report = report.exit(Exit::Environment, "failed to write results")?;

    for result in &report.configurations {
        for line in statistics_lines(result) {
            println!("{line}");
        }
    }
    for file in &report.files {
        eprintln!("wrote {}", file.display());
    }
    // The page shows what the files hold, so it is written from them, also after Ctrl-C.
    // The results are written by now: a page that cannot be drawn is said, and the exit
    // code stays the experiment's own.
    if !report.configurations.is_empty() {
        let dir = output_dir.join(sebs_report::read::PERF_COST_DIR);
        if let Err(failure) = crate::report::write(&dir, &[]) {
            tracing::error!(
                "{:#} (the results are written; `sebs-local report {}` tries again)",
                failure.error,
                dir.display()
            );
        }
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(Exit::Interrupted);
    }
    let failed = report
        .configurations
        .iter()
        .any(|r| !r.failures.is_empty() || r.stopped_early.is_some());
    Ok(if failed {
        Exit::InvocationFailed
    } else {
        Exit::Ok
    })
}

/// A progress bar on a terminal, plain log lines otherwise.
fn progress_bar() -> impl Fn(Progress) {
    use std::io::IsTerminal;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    move |p: Progress| {
        let msg = if p.warm_up {
            "warm-up".to_string()
        } else {
            format!("{} failures", p.failures)
        };
        match &bar {
            Some(bar) => {
                bar.set_prefix(p.run_type.to_string());
                bar.set_length(p.wanted as u64);
                bar.set_position(p.gathered.min(p.wanted) as u64);
                bar.set_message(msg);
            }
            None => tracing::info!("{}: {}/{} samples, {msg}", p.run_type, p.gathered, p.wanted),
        }
    }
}

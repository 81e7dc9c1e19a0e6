//! Runs perf-cost on the platform: every memory size × mode, writing results as it goes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sebs_package::{BenchmarkDir, Package};
use sebs_platform::{FunctionConfig, Platform};
use sebs_stats::Confidence;

use crate::config::PerfCostSettings;
use crate::perf_cost::{run_configuration, ConfigurationResult, PoolTarget, Progress, RunSettings};
use crate::pool::FunctionPool;
use crate::results::{self, WriteError};

/// A benchmark ready to run: its package, image and input.
pub struct Experiment {
    pub platform: Platform,
    pub bench: BenchmarkDir,
    pub package: Package,
    pub image: String,
    pub input: serde_json::Value,
    /// More environment of the functions: SeBS's storage variables.
    pub env: std::collections::BTreeMap<String, String>,
}

/// What a perf-cost run produced.
#[derive(Debug, Default)]
pub struct Report {
    pub configurations: Vec<ConfigurationResult>,
    /// Every file written, results first.
    pub files: Vec<PathBuf>,
}

/// The function configurations a run goes through, in order: the benchmark's, with each of
/// the settings' memory sizes (or its own when there are none). Never empty.
pub fn configurations(
    bench: &sebs_package::BenchmarkConfig,
    settings: &PerfCostSettings,
) -> Vec<FunctionConfig> {
    let mut base =
        FunctionConfig::from_benchmark(bench, settings.language, &settings.language_version);
    base.sandbox = settings.sandbox;
    if settings.memory_sizes.is_empty() {
        return vec![base];
    }
    settings
        .memory_sizes
        .iter()
        .map(|&memory_mb| FunctionConfig {
            memory_mb,
            ..base.clone()
        })
        .collect()
}

/// Runs every configured mode for every memory size (or the benchmark's own), writing
/// `<out_dir>/perf-cost/*` after each configuration so that an interruption loses nothing.
/// Containers are removed before returning, also when `stop` interrupted the run.
pub async fn run_perf_cost(
    experiment: &Experiment,
    settings: &PerfCostSettings,
    out_dir: &Path,
    stop: &AtomicBool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, WriteError> {
    let dir = out_dir.join("perf-cost");
    let mut configs = configurations(&experiment.bench.config, settings);
    for config in &mut configs {
        config.env = experiment.env.clone();
    }
    let mut report = Report::default();
    let base = configs[0].clone();
    let name_for =
        |memory: u64| format!("{}-{}-{memory}", experiment.bench.name, settings.language);
    let mut pool = FunctionPool::new(
        experiment.platform.clone(),
        name_for(base.memory_mb),
        experiment.bench.name.clone(),
        experiment.package.clone(),
        experiment.image.clone(),
        base.clone(),
    );
    let experiment_config = settings.sebs_experiment_config(sebs_platform::host_architecture());
    let mut csv = None;
    let outcome = async {
        for config in configs {
            // The memory size asked for, if the settings ask for any.
            let memory = (!settings.memory_sizes.is_empty()).then_some(config.memory_mb);
            // Replaces the containers, as SeBS's update of a local function does.
            pool.reconfigure(config.clone(), name_for(config.memory_mb))
                .await;
            for &run_type in &settings.experiments {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                tracing::info!("begin {run_type} experiment with {} MB", config.memory_mb);
                let run = RunSettings {
                    run_type,
                    repetitions: settings.repetitions,
                    concurrent_invocations: settings.concurrent_invocations,
                    pause_between_batches: settings.pause_between_batches,
                };
                let mut result = run_configuration(
                    &mut PoolTarget(&mut pool),
                    &run,
                    &experiment.input,
                    memory,
                    stop,
                    progress,
                )
                .await;
                result.function_memory_mb = config.memory_mb;
                result.function = Some(config.clone());
                result.sandbox = Some(experiment.platform.sandbox_of(&config));
                result.engine_failures =
                    experiment.platform.engine_failures().into_iter().collect();
                for line in statistics_lines(&result) {
                    tracing::info!("{line}");
                }
                if let Some(why) = &result.stopped_early {
                    tracing::warn!("{run_type} stopped early: {why}");
                }
                report
                    .files
                    .push(results::write_json(&dir, &result, &experiment_config)?);
                report.configurations.push(result);
                // Rewritten after every configuration, so an interruption keeps the rows.
                csv = Some(results::write_csv(&dir, &report.configurations)?);
            }
        }
        Ok(())
    }
    .await;
    pool.shutdown().await;
    outcome?;
    if let Some(csv) = csv {
        report.files.push(csv);
    }
    Ok(report)
}

/// SeBS's printed statistics for one configuration: mean, median, std, CV; Student-t
/// intervals at 0.95 and 0.99; above 20 samples, Le Boudec's interval on the median.
pub fn statistics_lines(result: &ConfigurationResult) -> Vec<String> {
    let head = format!(
        "{}{}: {} samples, {} failures, {} incorrect, {} cold",
        result.run_type,
        result
            .memory_mb
            .map(|m| format!(" {m} MB"))
            .unwrap_or_default(),
        result.valid.len(),
        result.failures.len(),
        result.incorrect.len(),
        result.cold_count
    );
    let Some(s) = result.summary() else {
        return vec![head, "too few samples for statistics".into()];
    };
    let mut lines = vec![
        head,
        format!(
            "Mean {:.3} [ms], median {:.3} [ms], std {:.3}, CV {}",
            s.mean,
            s.median,
            s.std,
            s.cv_percent.map_or("n/a".into(), |c| format!("{c:.2} %"))
        ),
    ];
    for c in Confidence::ALL {
        let t = s.t_interval(c);
        lines.push(format!(
            "Parametric CI (Student's t-distribution) {} from {:.3} to {:.3}, within {}% of mean",
            c.level(),
            t.low,
            t.high,
            t.within_percent_of(s.mean)
                .map_or("n/a".into(), |p| format!("{p:.2}"))
        ));
        if let Some(m) = s.median_interval(c) {
            lines.push(format!(
                "Non-parametric CI {} from {:.3} to {:.3}, within {}% of median",
                c.level(),
                m.low,
                m.high,
                m.within_percent_of(s.median)
                    .map_or("n/a".into(), |p| format!("{p:.2}"))
            ));
        }
    }
    lines
}

//! The report's data: what was read from a results directory and the figures derived
//! from it, before anything is drawn.
//!
//! Everything the plots and tables show is computed here, as plain numbers, so that a
//! snapshot of the model is a snapshot of what the report says.

use sebs_stats::{Interval, Summary};

/// Everything one report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The benchmark(s) the results are of, e.g. `010.sleep`.
    pub title: String,
    /// perf-cost configurations, ordered by memory size, then experiment type.
    pub configurations: Vec<Configuration>,
    /// Memory measurements, one per `memory_report.json`-like file.
    pub memory: Vec<MemoryFile>,
    /// Files that were looked at and left out, with why.
    pub notes: Vec<String>,
}

/// One perf-cost configuration: an experiment type at a memory size.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// The results file it came from (its name only).
    pub file: String,
    /// `cold`, `warm`, `burst`, `sequential`, or whatever the file says.
    pub run_type: String,
    /// The memory size asked for (from the file name), if any.
    pub memory_mb: Option<u64>,
    pub function_name: String,
    pub benchmark: Option<String>,
    /// Valid invocations, in the file's order.
    pub invocations: Vec<Invocation>,
    pub failures: Vec<String>,
    pub incorrect: usize,
    pub cold_count: usize,
    pub limits: Limits,
    pub stopped_early: Option<String>,
    /// Seconds since the epoch.
    pub begin_time: Option<f64>,
    pub end_time: Option<f64>,
    /// Statistics of client time in ms; `None` below two samples.
    pub stats: Option<Stats>,
    /// Where the median client time goes; `None` without samples.
    pub breakdown: Option<Breakdown>,
}

impl Configuration {
    /// `cold · 128 MB`, or the type alone when no memory size was set.
    pub fn label(&self) -> String {
        match self.memory_mb.or(self.limits.memory_mb) {
            Some(m) => format!("{} · {m} MB", self.run_type),
            None => self.run_type.clone(),
        }
    }

    /// Client times in milliseconds.
    pub fn client_ms(&self) -> Vec<f64> {
        self.invocations.iter().map(|i| i.client_ms).collect()
    }

    /// Whether this type measures cold starts (`cold`, `burst`) rather than warm calls.
    pub fn is_cold_type(&self) -> bool {
        matches!(self.run_type.as_str(), "cold" | "burst")
    }
}

/// One valid invocation's times, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Invocation {
    pub client_ms: f64,
    /// The handler alone (`end - begin` in the container).
    pub benchmark_ms: f64,
    /// The function's import, for the call that paid for it.
    pub initialization_ms: f64,
    pub cold: bool,
}

/// The limits and sandbox a configuration ran with, as far as its file says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory_mb: Option<u64>,
    pub timeout_s: Option<u64>,
    /// `None` when unlimited or unknown; see `cpus_known`.
    pub cpus: Option<f64>,
    /// Whether the file said anything about CPUs (absent means "not recorded").
    pub cpus_known: bool,
    /// Any further settings (sandbox: tmp size, pids limit, user, ...), as written.
    pub other: Vec<(String, String)>,
}

/// SeBS's statistics of one configuration's client times, in ms, plus the quartiles the
/// box plot draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub cv_percent: Option<f64>,
    pub t_95: Interval,
    pub t_99: Interval,
    /// Le Boudec intervals on the median; only above 20 samples, as in SeBS.
    pub median_95: Option<Interval>,
    pub median_99: Option<Interval>,
    pub min: f64,
    pub q1: f64,
    pub q3: f64,
    pub max: f64,
}

impl Stats {
    /// `None` below two samples (as sebs-stats) or for non-finite ones.
    pub fn of(samples_ms: &[f64]) -> Option<Stats> {
        let s = Summary::new(samples_ms).ok()?;
        let sorted = sebs_stats::sorted_numbers(samples_ms);
        let quartile = |p| sebs_stats::percentile_interpolated(&sorted, p).unwrap_or(f64::NAN);
        Some(Stats {
            n: s.n,
            mean: s.mean,
            median: s.median,
            std: s.std,
            cv_percent: s.cv_percent,
            t_95: s.t_95,
            t_99: s.t_99,
            median_95: s.median_95,
            median_99: s.median_99,
            min: sorted[0],
            q1: quartile(25.0),
            q3: quartile(75.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The median client time split into the handler, the import (cold calls) and the rest:
/// what the platform and the network add. The parts add up to the median client time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakdown {
    pub client_ms: f64,
    pub benchmark_ms: f64,
    pub initialization_ms: f64,
    /// `client - benchmark - initialization` of the medians, never below 0.
    pub rest_ms: f64,
}

impl Breakdown {
    /// Medians of each part over `invocations`; `None` when there are none.
    pub fn of(invocations: &[Invocation]) -> Option<Breakdown> {
        if invocations.is_empty() {
            return None;
        }
        let median = |f: fn(&Invocation) -> f64| {
            let v: Vec<f64> = invocations.iter().map(f).collect();
            sebs_stats::median(&v).unwrap_or(f64::NAN)
        };
        let client_ms = median(|i| i.client_ms);
        // The handler and the import cannot take longer than the whole call; scale them
        // down together in the rare case their medians add up to more.
        let mut benchmark_ms = median(|i| i.benchmark_ms).max(0.0);
        let mut initialization_ms = median(|i| i.initialization_ms).max(0.0);
        let inside = benchmark_ms + initialization_ms;
        if inside > client_ms && inside > 0.0 {
            benchmark_ms *= client_ms / inside;
            initialization_ms *= client_ms / inside;
        }
        Some(Breakdown {
            client_ms,
            benchmark_ms,
            initialization_ms,
            rest_ms: (client_ms - benchmark_ms - initialization_ms).max(0.0),
        })
    }
}

/// One memory report file.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryFile {
    pub file: String,
    pub precision_errors: u64,
    pub containers: Vec<MemorySeries>,
}

/// One container's memory over time.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySeries {
    pub container: String,
    /// `cgroup-v1`, `cgroup-v2` or `engine-stats`.
    pub source: String,
    pub interval_ms: f64,
    /// When the first sample was due, seconds since the epoch.
    pub started_at: Option<f64>,
    /// `stopped`, `container_gone` or `failed`.
    pub end: String,
    pub error: Option<String>,
    pub precision_errors: u64,
    /// (seconds after the start, MB = 10^6 bytes).
    pub points: Vec<(f64, f64)>,
    /// The kernel's peak at stop, in MB.
    pub kernel_peak_mb: Option<f64>,
    /// Invocations served by the container, (begin, end) in seconds after the start.
    pub invocations: Vec<(f64, f64)>,
}

impl MemorySeries {
    /// The short container id Docker prints.
    pub fn short_id(&self) -> &str {
        let end = self
            .container
            .char_indices()
            .nth(12)
            .map_or(self.container.len(), |(i, _)| i);
        &self.container[..end]
    }

    pub fn peak_mb(&self) -> Option<f64> {
        self.points.iter().map(|p| p.1).reduce(f64::max)
    }

    pub fn mean_mb(&self) -> Option<f64> {
        (!self.points.is_empty())
            .then(|| self.points.iter().map(|p| p.1).sum::<f64>() / self.points.len() as f64)
    }
}

/// The order of perf-cost's types in tables and plots.
pub fn type_rank(run_type: &str) -> usize {
    match run_type {
        "cold" => 0,
        "warm" => 1,
        "burst" => 2,
        "sequential" => 3,
        _ => 4,
    }
}

/// Milliseconds as the report prints them: about four significant digits.
pub fn fmt_ms(v: f64) -> String {
    let decimals = if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{v:.decimals$} ms")
}

impl Report {
    /// The configurations of one memory size (the key tables and plots group by).
    fn memory_key(c: &Configuration) -> Option<u64> {
        c.memory_mb.or(c.limits.memory_mb)
    }

    fn find(&self, memory: Option<u64>, run_type: &str) -> Option<&Configuration> {
        self.configurations
            .iter()
            .find(|c| Self::memory_key(c) == memory && c.run_type == run_type && c.stats.is_some())
    }

    /// Sentences that answer what perf-cost is run for: what a cold start costs, what the
    /// platform adds to a call, how memory sizes compare, how stable the figures are.
    pub fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut memories: Vec<Option<u64>> =
            self.configurations.iter().map(Self::memory_key).collect();
        memories.dedup();
        let at = |m: Option<u64>| m.map(|m| format!(" at {m} MB")).unwrap_or_default();
        for &m in &memories {
            let cold = self.find(m, "cold").or_else(|| self.find(m, "burst"));
            let warm = self.find(m, "warm").or_else(|| self.find(m, "sequential"));
            if let (Some(cold), Some(warm)) = (cold, warm) {
                let (c, w) = (
                    cold.stats.as_ref().map_or(0.0, |s| s.median),
                    warm.stats.as_ref().map_or(0.0, |s| s.median),
                );
                let mut line = format!(
                    "Cold start{}: a {} call takes {} (median), a {} call {}; the cold start adds {}",
                    at(m),
                    cold.run_type,
                    fmt_ms(c),
                    warm.run_type,
                    fmt_ms(w),
                    fmt_ms(c - w),
                );
                if w > 0.0 {
                    line.push_str(&format!(" ({:.2}× the warm call)", c / w));
                }
                if let Some(b) = cold.breakdown.filter(|b| b.initialization_ms > 0.0) {
                    line.push_str(&format!(
                        ", of which importing the function takes {}",
                        fmt_ms(b.initialization_ms)
                    ));
                }
                line.push('.');
                out.push(line);
            }
            if let Some(b) = warm.and_then(|w| w.breakdown) {
                out.push(format!(
                    "Platform overhead{}: of a warm call's {} (median), the handler takes {} and \
                     the platform and network add {}{}.",
                    at(m),
                    fmt_ms(b.client_ms),
                    fmt_ms(b.benchmark_ms + b.initialization_ms),
                    fmt_ms(b.rest_ms),
                    if b.client_ms > 0.0 {
                        format!(" ({:.1} % of the call)", 100.0 * b.rest_ms / b.client_ms)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        if memories.len() > 1 {
            let mut types: Vec<&str> = self
                .configurations
                .iter()
                .map(|c| c.run_type.as_str())
                .collect();
            types.sort_by_key(|t| (type_rank(t), *t));
            types.dedup();
            for t in types {
                let parts: Vec<String> = memories
                    .iter()
                    .filter_map(|&m| {
                        let s = self.find(m, t)?.stats.as_ref()?;
                        Some(format!("{}{}", fmt_ms(s.median), at(m)))
                    })
                    .collect();
                if parts.len() > 1 {
                    out.push(format!("Memory sizes, {t}: median {}.", parts.join(", ")));
                }
            }
        }
        let cvs: Vec<(&Configuration, f64)> = self
            .configurations
            .iter()
            .filter_map(|c| Some((c, c.stats.as_ref()?.cv_percent?)))
            .collect();
        let most = cvs.iter().min_by(|a, b| a.1.total_cmp(&b.1));
        let least = cvs.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(most), Some(least)) = (most, least) {
            if cvs.len() > 1 {
                out.push(format!(
                    "Stability: the coefficient of variation ranges from {:.1} % ({}) to {:.1} % ({}).",
                    most.1,
                    most.0.label(),
                    least.1,
                    least.0.label()
                ));
            } else {
                out.push(format!(
                    "Stability: the coefficient of variation is {:.1} %.",
                    most.1
                ));
            }
        }
        let failed: usize = self.configurations.iter().map(|c| c.failures.len()).sum();
        let incorrect: usize = self.configurations.iter().map(|c| c.incorrect).sum();
        if !self.configurations.is_empty() {
            out.push(match (failed, incorrect) {
                (0, 0) => "No invocation failed or came back at the wrong temperature.".into(),
                _ => format!(
                    "{failed} invocations failed and {incorrect} came back at the wrong \
                     temperature (not counted in the statistics)."
                ),
            });
        }
        let stopped: Vec<String> = self
            .configurations
            .iter()
            .filter(|c| c.stopped_early.is_some())
            .map(|c| c.label())
            .collect();
        if !stopped.is_empty() {
            out.push(format!(
                "Stopped before all repetitions: {}.",
                stopped.join(", ")
            ));
        }
        out
    }
}

//! How well the sampler keeps time on this machine: `cargo xtask bench` calls [`measure_precision`].

use std::path::Path;
use std::time::Duration;

use sebs_stats::percentile_nearest_rank as percentile;

use crate::sampler::{Sampler, SamplerError};

/// The outcome of sampling one file for a while at one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionReport {
    pub interval: Duration,
    pub duration: Duration,
    pub samples_asked: u64,
    pub samples_taken: u64,
    pub precision_errors: u64,
    /// How long after its deadline the median, 99th-percentile and latest sample came.
    pub late_p50: Duration,
    pub late_p99: Duration,
    pub late_max: Duration,
    /// CPU time the sampling thread used over `duration`.
    pub thread_cpu: Duration,
}

impl PrecisionReport {
    /// Samples taken per sample asked, 0 to 1.
    pub fn on_time_share(&self) -> f64 {
        if self.samples_asked == 0 {
            return 0.0;
        }
        self.samples_taken as f64 / self.samples_asked as f64
    }

    /// The sampler thread's CPU time as a share of one core over `duration`.
    pub fn cpu_share(&self) -> f64 {
        self.thread_cpu.as_secs_f64() / self.duration.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Samples `path` (e.g. a container's `memory.current`) every `interval` for `duration` on a
/// sampler thread of its own, and reports how many deadlines it met and what it cost.
pub fn measure_precision(
    path: &Path,
    interval: Duration,
    duration: Duration,
) -> Result<PrecisionReport, SamplerError> {
    let sampler = Sampler::start()?;
    let cpu_before = sampler.thread_cpu_time()?;
    let handle = sampler.add_file("precision", path, interval)?;
    std::thread::sleep(duration);
    let m = handle.stop();
    let thread_cpu = sampler.thread_cpu_time()?.saturating_sub(cpu_before);
    let mut late: Vec<u64> = m.samples.iter().map(|s| u64::from(s.late_us)).collect();
    late.sort_unstable();
    let us = |p: f64| Duration::from_micros(percentile(&late, p).unwrap_or(0));
    Ok(PrecisionReport {
        interval,
        duration,
        samples_asked: m.samples_asked,
        samples_taken: m.samples.len() as u64,
        precision_errors: m.precision_errors,
        late_p50: us(50.0),
        late_p99: us(99.0),
        late_max: us(100.0),
        thread_cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_on_a_fake_file_adds_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.current");
        std::fs::write(&path, "4096\n").unwrap();
        let r =
            measure_precision(&path, Duration::from_millis(5), Duration::from_millis(200)).unwrap();
        assert_eq!(r.samples_asked, r.samples_taken + r.precision_errors);
        // How many of the 40 deadlines the sampler served, and at what CPU cost, depends on
        // the machine's load: figures of `cargo xtask bench`, not properties. What holds
        // anywhere: the sampler served some, the file's value is what it read, and each
        // sample came less than an interval after its deadline.
        assert!(r.samples_asked >= 1, "{r:?}");
        assert!(r.samples_taken >= 1, "{r:?}");
        assert!(
            r.late_p50 <= r.late_p99 && r.late_p99 <= r.late_max && r.late_max < r.interval,
            "{r:?}"
        );
        assert!(r.on_time_share() > 0.0 && r.on_time_share() <= 1.0, "{r:?}");
    }
}

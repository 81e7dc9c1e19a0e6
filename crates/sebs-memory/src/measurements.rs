//! The core result types: [`Sample`], [`Measurements`] of one container, and the [`Recorder`]
//! that builds them from samples fed from outside (the engine's stats stream).
//!
//! None of these derive `Serialize`: the files written from them are the deliberate types of
//! `sebs_json` and `report`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sebs_wire::EpochMicros;

use crate::cgroup::Version;

/// One reading of a container's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Microseconds from [`Measurements::started_at`], on the monotonic clock.
    pub offset_us: u64,
    pub bytes: u64,
    /// Microseconds after its deadline that the sample was taken (always < one interval).
    pub late_us: u32,
}

/// Where the samples came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The container's cgroup read from this host's cgroupfs.
    Cgroup(Version),
    /// The container's cgroup read from inside, by its agent, and fetched at `stop`: for
    /// engines whose cgroup files this host cannot see (a remote engine).
    Agent(Version),
    /// The engine's stats API (Docker Desktop, a remote engine): coarse, about one per second.
    EngineStats,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cgroup(v) => v.fmt(f),
            Source::Agent(v) => write!(f, "agent-{v}"),
            Source::EngineStats => f.write_str("engine-stats"),
        }
    }
}

/// Why sampling ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Someone called `stop`.
    Stopped,
    /// The container's cgroup went away (the container stopped or was removed).
    ContainerGone,
    /// Reading failed in a way that does not mean the container is gone; says what failed.
    Failed(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Stopped => f.write_str("stopped"),
            End::ContainerGone => f.write_str("container gone"),
            End::Failed(why) => write!(f, "failed to {why}"),
        }
    }
}

/// Everything measured for one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurements {
    pub container: String,
    pub source: Source,
    /// The cgroup directory read, for cgroup sources.
    pub cgroup: Option<PathBuf>,
    pub interval: Duration,
    /// Wall-clock time of the first deadline; sample times are this plus their offset.
    pub started_at: EpochMicros,
    pub samples: Vec<Sample>,
    /// Deadlines that passed while sampling: samples taken plus precision errors.
    pub samples_asked: u64,
    /// Deadlines missed: the sampler woke later than the following deadline and skipped it.
    pub precision_errors: u64,
    pub end: End,
    /// The kernel's own peak (`memory.peak` | `memory.max_usage_in_bytes`) read at `stop`,
    /// which also sees spikes between samples; `None` when absent or the container was gone.
    pub kernel_peak: Option<u64>,
}

impl Measurements {
    /// The wall-clock time of `sample`.
    pub fn time_of(&self, sample: &Sample) -> EpochMicros {
        EpochMicros(self.started_at.0 + sample.offset_us as i64)
    }

    /// The largest sampled value.
    pub fn max_bytes(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.bytes).max()
    }
}

/// Builds [`Measurements`] from samples delivered by someone else, such as the platform
/// reading the engine's stats stream where cgroup files are not visible.
///
/// Samples asked are counted from the elapsed time at [`Recorder::finish`], so a coarse
/// source shows up as precision errors against the interval the user asked for.
#[derive(Debug)]
pub struct Recorder {
    measurements: Measurements,
}

impl Recorder {
    /// Starts recording now.
    pub fn new(container: &str, source: Source, interval: Duration) -> Recorder {
        Recorder::starting_at(container, source, interval, EpochMicros::now())
    }

    /// Starts recording as of `started_at`.
    pub fn starting_at(
        container: &str,
        source: Source,
        interval: Duration,
        started_at: EpochMicros,
    ) -> Recorder {
        Recorder {
            measurements: Measurements {
                container: container.to_string(),
                source,
                cgroup: None,
                interval,
                started_at,
                samples: Vec::new(),
                samples_asked: 0,
                precision_errors: 0,
                end: End::Stopped,
                kernel_peak: None,
            },
        }
    }

    /// Adds a reading taken at `at`; readings before the start count as taken at the start.
    pub fn record(&mut self, at: EpochMicros, bytes: u64) {
        let offset_us = u64::try_from(at.micros_since(self.measurements.started_at)).unwrap_or(0);
        self.measurements.samples.push(Sample {
            offset_us,
            bytes,
            late_us: 0,
        });
    }

    /// Ends recording at `at` for reason `end`.
    pub fn finish(mut self, at: EpochMicros, end: End) -> Measurements {
        let m = &mut self.measurements;
        let elapsed = u64::try_from(at.micros_since(m.started_at)).unwrap_or(0);
        let interval = (m.interval.as_micros() as u64).max(1);
        let taken = m.samples.len() as u64;
        // Deadlines at 0, interval, 2*interval, … up to `at`.
        m.samples_asked = (elapsed / interval + 1).max(taken);
        m.precision_errors = m.samples_asked - taken;
        m.end = end;
        self.measurements
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_counts_what_a_coarse_source_missed() {
        let t0 = EpochMicros(1_700_000_000_000_000);
        let mut r =
            Recorder::starting_at("abc", Source::EngineStats, Duration::from_millis(100), t0);
        r.record(EpochMicros(t0.0 - 5), 10);
        r.record(EpochMicros(t0.0 + 1_000_000), 20);
        let m = r.finish(EpochMicros(t0.0 + 1_050_000), End::ContainerGone);
        assert_eq!(
            m.samples.iter().map(|s| s.offset_us).collect::<Vec<_>>(),
            [0, 1_000_000]
        );
        // Deadlines at 0, 0.1, …, 1.0 s: 11 asked, 2 taken.
        assert_eq!((m.samples_asked, m.precision_errors), (11, 9));
        assert_eq!(m.time_of(&m.samples[1]), EpochMicros(t0.0 + 1_000_000));
        assert_eq!(m.max_bytes(), Some(20));
        assert_eq!(m.end, End::ContainerGone);
    }
}

//! The statistics SeBS's perf-cost experiment prints for each configuration, computed in Rust.
//!
//! SeBS (`sebs/statistics.py`) summarises the client times of an experiment with numpy and
//! scipy; this crate reproduces those numbers exactly, as pure functions of a `&[f64]`:
//!
//! - [`Summary`]: everything SeBS prints for one configuration (mean, median, std, CV,
//!   Student-t intervals at 0.95 and 0.99, and above 20 samples the Le Boudec intervals on the
//!   median), built by [`Summary::new`].
//! - [`Confidence`]: the two levels SeBS reports, 0.95 and 0.99, with their normal quantiles.
//! - [`Interval`]: a confidence interval, with the "within x% of" figure SeBS prints.
//! - [`t_interval`] and [`le_boudec_interval`]: the two intervals on their own.
//! - [`order`]: medians and percentiles (interpolated as numpy's, or by nearest rank) of any
//!   samples, the one place the project computes them.
//!
//! What SeBS computes, and so what we compute (checked against its source):
//!
//! - `std` is numpy's default `np.std`, the *population* standard deviation (divisor n),
//!   and the CV is that std over the mean, in percent.
//! - The Student-t interval is `scipy.stats.t.interval(c, n - 1, loc=mean, scale=sem)` with
//!   `sem = scipy.stats.sem(times)`, which divides by n - 1: the *sample* standard deviation
//!   over sqrt(n). So the interval is mean ± t_{(1+c)/2, n-1} · s / sqrt(n) with s the sample
//!   standard deviation, which [`Summary`] also reports as `sample_std`.
//! - The median is numpy's: the mean of the two middle values when n is even.
//! - The Le Boudec interval takes the sorted samples at the 0-based indices
//!   floor((n - z·sqrt(n)) / 2) and ceil(1 + (n + z·sqrt(n)) / 2), z = 1.96 or 2.576. Le Boudec's
//!   book counts order statistics from 1, so SeBS's interval sits one order statistic higher
//!   than the book's at both ends; we keep SeBS's indexing so that our numbers are its numbers.
//!
//! Too few samples or a non-finite sample is an error, never a NaN in the output.

use statrs::distribution::{ContinuousCDF, StudentsT};

pub mod order;

pub use order::{
    median, median_of_sorted, percentile_interpolated, percentile_nearest_rank, sorted_numbers,
};

/// Why a statistic could not be computed. Messages read after "failed to".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// The statistic needs more samples than were given.
    #[error("compute {what}: it needs at least {needed} samples, got {got}")]
    TooFewSamples {
        /// Which statistic was asked for.
        what: &'static str,
        /// The smallest sample count it is defined for.
        needed: usize,
        /// How many samples there were.
        got: usize,
    },
    /// A sample is NaN or infinite, which would poison every statistic.
    #[error("summarize samples: sample {index} is {value}, not a finite number")]
    NotFinite {
        /// Position of the sample in the input.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A confidence level outside (0, 1).
    #[error("compute a confidence interval at level {level}: the level must lie strictly between 0 and 1")]
    InvalidConfidence {
        /// The level that was asked for.
        level: f64,
    },
}

/// The two confidence levels SeBS reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Confidence {
    /// 95 %.
    P95,
    /// 99 %.
    P99,
}

impl Confidence {
    /// Both levels, in the order SeBS prints them.
    pub const ALL: [Confidence; 2] = [Confidence::P95, Confidence::P99];

    /// The level as a probability: 0.95 or 0.99.
    pub fn level(self) -> f64 {
        match self {
            Confidence::P95 => 0.95,
            Confidence::P99 => 0.99,
        }
    }

    /// The rounded two-sided normal quantile SeBS uses for the Le Boudec interval: 1.96 or 2.576.
    pub fn z(self) -> f64 {
        match self {
            Confidence::P95 => 1.96,
            Confidence::P99 => 2.576,
        }
    }
}

/// A confidence interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// Half of the interval's width.
    pub fn half_width(&self) -> f64 {
        (self.high - self.low) / 2.0
    }

    /// The half width as a percentage of `centre`: SeBS's "within x% of mean" (or "of median").
    /// `None` when `centre` is zero.
    pub fn within_percent_of(&self, centre: f64) -> Option<f64> {
        if centre == 0.0 {
            return None;
        }
        Some(100.0 * (self.high - self.low) / centre / 2.0)
    }
}

/// Everything SeBS prints about one configuration's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Population standard deviation (divisor n), which is what SeBS prints as "std".
    pub std: f64,
    /// Sample standard deviation (divisor n - 1), which SeBS's t interval is built on.
    pub sample_std: f64,
    /// Coefficient of variation in percent: `std / mean * 100`, as SeBS. `None` when the mean is 0.
    pub cv_percent: Option<f64>,
    /// Student-t interval on the mean at 0.95.
    pub t_95: Interval,
    /// Student-t interval on the mean at 0.99.
    pub t_99: Interval,
    /// Le Boudec interval on the median at 0.95; `None` for 20 samples or fewer, as in SeBS.
    pub median_95: Option<Interval>,
    /// Le Boudec interval on the median at 0.99; `None` for 20 samples or fewer, as in SeBS.
    pub median_99: Option<Interval>,
}

/// Le Boudec intervals are reported only above this many samples, as in SeBS.
pub const LE_BOUDEC_MIN_SAMPLES: usize = 21;

impl Summary {
    /// Summarises `samples`; needs at least two, all finite.
    pub fn new(samples: &[f64]) -> Result<Summary, StatsError> {
        check_samples(samples, "a summary", 2)?;
        let n = samples.len();
        let mean = mean_unchecked(samples);
        let std = (sum_of_squares(samples, mean) / n as f64).sqrt();
        let sample_std = (sum_of_squares(samples, mean) / (n - 1) as f64).sqrt();
        let sorted = sorted_numbers(samples);
        let le_boudec = |c| {
            if n >= LE_BOUDEC_MIN_SAMPLES {
                le_boudec_sorted(&sorted, c).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Summary {
            n,
            mean,
            // Two samples at least: there is a median.
            median: median_of_sorted(&sorted).unwrap_or(f64::NAN),
            std,
            sample_std,
            cv_percent: (mean != 0.0).then(|| std / mean * 100.0),
            t_95: t_interval_from(mean, sample_std, n, Confidence::P95.level())?,
            t_99: t_interval_from(mean, sample_std, n, Confidence::P99.level())?,
            median_95: le_boudec(Confidence::P95)?,
            median_99: le_boudec(Confidence::P99)?,
        })
    }

    /// The Student-t interval at `confidence`.
    pub fn t_interval(&self, confidence: Confidence) -> Interval {
        match confidence {
            Confidence::P95 => self.t_95,
            Confidence::P99 => self.t_99,
        }
    }

    /// The Le Boudec interval on the median at `confidence`, when there are enough samples.
    pub fn median_interval(&self, confidence: Confidence) -> Option<Interval> {
        match confidence {
            Confidence::P95 => self.median_95,
            Confidence::P99 => self.median_99,
        }
    }
}

/// Student-t interval on the mean at any level in (0, 1), as
/// `scipy.stats.t.interval(level, n - 1, loc=mean, scale=scipy.stats.sem(samples))`.
pub fn t_interval(samples: &[f64], level: f64) -> Result<Interval, StatsError> {
    check_samples(samples, "a Student-t interval", 2)?;
    let mean = mean_unchecked(samples);
    let n = samples.len();
    let sample_std = (sum_of_squares(samples, mean) / (n - 1) as f64).sqrt();
    t_interval_from(mean, sample_std, n, level)
}

/// Le Boudec's non-parametric interval on the median, indexed as SeBS does (see the crate
/// documentation); needs more than 20 samples.
pub fn le_boudec_interval(samples: &[f64], confidence: Confidence) -> Result<Interval, StatsError> {
    check_samples(samples, "a Le Boudec interval", LE_BOUDEC_MIN_SAMPLES)?;
    le_boudec_sorted(&sorted_numbers(samples), confidence)
}

fn check_samples(samples: &[f64], what: &'static str, needed: usize) -> Result<(), StatsError> {
    if let Some((index, &value)) = samples.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(StatsError::NotFinite { index, value });
    }
    if samples.len() < needed {
        return Err(StatsError::TooFewSamples {
            what,
            needed,
            got: samples.len(),
        });
    }
    Ok(())
}

/// Mean with Neumaier's compensated sum, so that long series of similar values keep their
/// last digits (numpy's pairwise sum is close to this; a plain running sum drifts).
fn mean_unchecked(samples: &[f64]) -> f64 {
    let mut sum = 0.0_f64;
    let mut compensation = 0.0_f64;
    for &x in samples {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            compensation += (sum - t) + x;
        } else {
            compensation += (x - t) + sum;
        }
        sum = t;
    }
    (sum + compensation) / samples.len() as f64
}

/// Sum of squared deviations from `mean`, by the two-pass method numpy uses.
fn sum_of_squares(samples: &[f64], mean: f64) -> f64 {
    samples.iter().map(|x| (x - mean) * (x - mean)).sum()
}

fn t_interval_from(
    mean: f64,
    sample_std: f64,
    n: usize,
    level: f64,
) -> Result<Interval, StatsError> {
    // Written as a negated range test so that NaN is refused too.
    if !(level > 0.0 && level < 1.0) {
        return Err(StatsError::InvalidConfidence { level });
    }
    let freedom = (n - 1) as f64;
    // n >= 2 makes the freedom positive, which is all StudentsT::new checks.
    let t = StudentsT::new(0.0, 1.0, freedom)
        .map_err(|_| StatsError::TooFewSamples {
            what: "a Student-t interval",
            needed: 2,
            got: n,
        })?
        .inverse_cdf((1.0 + level) / 2.0);
    let sem = sample_std / (n as f64).sqrt();
    Ok(Interval {
        low: mean - t * sem,
        high: mean + t * sem,
    })
}

fn le_boudec_sorted(sorted: &[f64], confidence: Confidence) -> Result<Interval, StatsError> {
    let n = sorted.len();
    let spread = confidence.z() * (n as f64).sqrt();
    // The same float expressions as SeBS, so floor and ceil land on the same integers.
    let low = ((n as f64 - spread) / 2.0).floor();
    let high = (1.0 + (n as f64 + spread) / 2.0).ceil();
    let at = |position: f64| {
        // Positions outside the slice only happen for tiny n, which the callers refuse; refuse
        // them here as well rather than index out of bounds.
        if position < 0.0 {
            return None;
        }
        sorted.get(position as usize).copied()
    };
    match (at(low), at(high)) {
        (Some(low), Some(high)) => Ok(Interval { low, high }),
        _ => Err(StatsError::TooFewSamples {
            what: "a Le Boudec interval",
            needed: LE_BOUDEC_MIN_SAMPLES,
            got: n,
        }),
    }
}

#[cfg(test)]
mod tests;

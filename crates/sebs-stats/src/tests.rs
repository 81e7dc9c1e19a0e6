//! Tests of the statistics against reference values from numpy and scipy, as SeBS computes them.
//!
//! The samples and expected summaries below were printed by this Python script (numpy 2.4.6,
//! scipy 1.17.1); the Le Boudec function is SeBS's `ci_le_boudec` formula, 0-based indices:
//!
//! ```python
//! import math
//! import numpy as np
//! import scipy.stats as st
//!
//! rng = np.random.default_rng(20240611)
//! samples = {
//!     "N2": [12.5, 13.75],
//!     "N5": [3.1, 4.7, 2.2, 9.8, 5.0],
//!     "N21": [round(float(x), 3) for x in rng.lognormal(mean=3.0, sigma=0.4, size=21)],
//!     "N30": [round(float(x), 3) for x in rng.lognormal(mean=1.0, sigma=0.8, size=30)],
//!     "N100": [round(float(x), 3) for x in rng.normal(loc=250.0, scale=40.0, size=100)],
//! }
//!
//! def le_boudec(alpha, times):  # as sebs/statistics.py ci_le_boudec
//!     s = sorted(times)
//!     n = len(times)
//!     z = {0.95: 1.96, 0.99: 2.576}[alpha]
//!     lo = math.floor((n - z * math.sqrt(n)) / 2)
//!     hi = math.ceil(1 + (n + z * math.sqrt(n)) / 2)
//!     return (s[lo], s[hi])
//!
//! def iv(pair):
//!     return f"Interval {{ low: {float(pair[0])!r}, high: {float(pair[1])!r} }}"
//!
//! def opt(pair):
//!     return "None" if pair is None else f"Some({iv(pair)})"
//!
//! for name, xs in samples.items():
//!     wrapped = ",\n".join("    " + ", ".join(repr(x) for x in xs[i:i + 8]) for i in range(0, len(xs), 8))
//!     print(f"const {name}: &[f64] = &[\n{wrapped},\n];")
//! for name, xs in samples.items():
//!     mean = float(np.mean(xs)); std = float(np.std(xs))
//!     big = len(xs) > 20
//!     print(f"""
//! fn expect_{name.lower()}() -> Summary {{
//!     Summary {{
//!         n: {len(xs)},
//!         mean: {mean!r},
//!         median: {float(np.median(xs))!r},
//!         std: {std!r},
//!         sample_std: {float(np.std(xs, ddof=1))!r},
//!         cv_percent: Some({std / mean * 100!r}),
//!         t_95: {iv(st.t.interval(0.95, len(xs) - 1, loc=mean, scale=st.sem(xs)))},
//!         t_99: {iv(st.t.interval(0.99, len(xs) - 1, loc=mean, scale=st.sem(xs)))},
//!         median_95: {opt(le_boudec(0.95, xs) if big else None)},
//!         median_99: {opt(le_boudec(0.99, xs) if big else None)},
//!     }}
//! }}""")
//! ```

use super::*;

/// Relative tolerance for comparisons with the Python reference values.
const REL: f64 = 1e-9;

fn close(actual: f64, expected: f64) -> bool {
    actual == expected || (actual - expected).abs() <= REL * expected.abs().max(actual.abs())
}

fn close_interval(actual: Interval, expected: Interval) -> bool {
    close(actual.low, expected.low) && close(actual.high, expected.high)
}

fn close_option(actual: Option<Interval>, expected: Option<Interval>) -> bool {
    match (actual, expected) {
        (Some(a), Some(e)) => close_interval(a, e),
        (None, None) => true,
        _ => false,
    }
}

fn check(samples: &[f64], expect: Summary) {
    let got = Summary::new(samples).unwrap();
    let cv_ok = match (got.cv_percent, expect.cv_percent) {
        (Some(a), Some(e)) => close(a, e),
        (a, e) => a == e,
    };
    let ok = got.n == expect.n
        && close(got.mean, expect.mean)
        && close(got.median, expect.median)
        && close(got.std, expect.std)
        && close(got.sample_std, expect.sample_std)
        && cv_ok
        && close_interval(got.t_95, expect.t_95)
        && close_interval(got.t_99, expect.t_99)
        && close_option(got.median_95, expect.median_95)
        && close_option(got.median_99, expect.median_99);
    assert!(
        ok,
        "summary of {} samples differs from the reference:\n got {got:#?}\nwant {expect:#?}",
        samples.len()
    );
}

#[test]
fn summaries_match_numpy_and_scipy() {
    check(N2, expect_n2());
    check(N5, expect_n5());
    check(N21, expect_n21());
    check(N30, expect_n30());
    check(N100, expect_n100());
}

#[test]
fn summary_does_not_depend_on_sample_order() {
    let mut reversed = N30.to_vec();
    reversed.reverse();
    check(&reversed, expect_n30());
}

#[test]
fn standalone_intervals_agree_with_the_summary() {
    for samples in [N21, N30, N100] {
        let summary = Summary::new(samples).unwrap();
        for c in Confidence::ALL {
            let t = t_interval(samples, c.level()).unwrap();
            assert!(close_interval(t, summary.t_interval(c)), "{c:?}: {t:?}");
            let m = le_boudec_interval(samples, c).unwrap();
            assert_eq!(Some(m), summary.median_interval(c), "{c:?}");
        }
    }
}

#[test]
fn t_interval_at_other_levels_matches_scipy() {
    // scipy.stats.t.interval(0.9, 4, loc=np.mean(N5), scale=st.sem(N5))
    // -> (2.1571281393481834, 7.762871860651815)
    let got = t_interval(N5, 0.9).unwrap();
    let want = Interval {
        low: 2.1571281393481834,
        high: 7.762871860651815,
    };
    assert!(close_interval(got, want), "{got:?}");
}

#[test]
fn constant_samples_give_a_zero_width_interval() {
    let s = Summary::new(&[5.0; 25]).unwrap();
    assert_eq!(
        (s.mean, s.median, s.std, s.sample_std, s.cv_percent),
        (5.0, 5.0, 0.0, 0.0, Some(0.0))
    );
    assert_eq!(
        s.t_95,
        Interval {
            low: 5.0,
            high: 5.0
        }
    );
    assert_eq!(
        s.median_99,
        Some(Interval {
            low: 5.0,
            high: 5.0
        })
    );
}

#[test]
fn zero_mean_has_no_cv() {
    let s = Summary::new(&[-1.0, 1.0]).unwrap();
    assert_eq!(s.cv_percent, None);
}

#[test]
fn le_boudec_starts_above_twenty_samples() {
    let twenty: Vec<f64> = (0..20).map(f64::from).collect();
    assert_eq!(Summary::new(&twenty).unwrap().median_95, None);
    assert_eq!(
        le_boudec_interval(&twenty, Confidence::P95),
        Err(StatsError::TooFewSamples {
            what: "a Le Boudec interval",
            needed: 21,
            got: 20
        })
    );
    // For n = 21: floor((21 - 1.96 sqrt 21) / 2) = floor(6.009) = 6 and
    // ceil(1 + (21 + 1.96 sqrt 21) / 2) = ceil(15.991) = 16; on 0..21 values equal indices, and
    // SeBS uses both as 0-based indices.
    let twenty_one: Vec<f64> = (0..21).map(f64::from).collect();
    assert_eq!(
        le_boudec_interval(&twenty_one, Confidence::P95),
        Ok(Interval {
            low: 6.0,
            high: 16.0
        })
    );
}

#[test]
fn bad_input_is_an_error_not_nan() {
    // Compared through Debug, because NaN is not equal to itself.
    fn check_err(samples: &[f64], expect: StatsError) {
        assert_eq!(
            format!("{:?}", Summary::new(samples)),
            format!("{:?}", Err::<Summary, _>(expect))
        );
    }
    check_err(
        &[],
        StatsError::TooFewSamples {
            what: "a summary",
            needed: 2,
            got: 0,
        },
    );
    check_err(
        &[1.0],
        StatsError::TooFewSamples {
            what: "a summary",
            needed: 2,
            got: 1,
        },
    );
    check_err(
        &[1.0, f64::NAN],
        StatsError::NotFinite {
            index: 1,
            value: f64::NAN,
        },
    );
    check_err(
        &[f64::INFINITY, 1.0],
        StatsError::NotFinite {
            index: 0,
            value: f64::INFINITY,
        },
    );
}

#[test]
fn bad_levels_are_refused() {
    for level in [0.0, 1.0, -0.5, 1.5] {
        assert_eq!(
            t_interval(N5, level),
            Err(StatsError::InvalidConfidence { level })
        );
    }
    assert!(matches!(
        t_interval(N5, f64::NAN),
        Err(StatsError::InvalidConfidence { .. })
    ));
}

#[test]
fn error_messages_read_after_failed_to() {
    let err = Summary::new(&[1.0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "compute a summary: it needs at least 2 samples, got 1"
    );
}

#[test]
fn within_percent_is_what_sebs_prints() {
    // SeBS: ratio = 100 * (high - low) / mean / 2.0
    let i = Interval {
        low: 90.0,
        high: 110.0,
    };
    assert_eq!(i.within_percent_of(100.0), Some(10.0));
    assert_eq!(i.half_width(), 10.0);
    assert_eq!(i.within_percent_of(0.0), None);
}

const N2: &[f64] = &[12.5, 13.75];
const N5: &[f64] = &[3.1, 4.7, 2.2, 9.8, 5.0];
const N21: &[f64] = &[
    18.458, 16.328, 21.324, 9.816, 22.506, 17.66, 15.023, 20.893, 9.202, 18.852, 14.992, 23.662,
    23.974, 13.858, 13.829, 11.156, 14.657, 22.823, 28.301, 22.011, 20.367,
];
const N30: &[f64] = &[
    1.358, 3.179, 1.415, 3.293, 2.312, 5.391, 3.196, 8.126, 1.961, 4.977, 3.255, 10.562, 0.566,
    5.471, 1.199, 1.357, 2.679, 0.812, 1.045, 1.814, 2.1, 0.593, 1.351, 2.419, 2.446, 1.6, 2.709,
    1.803, 6.95, 1.423,
];
const N100: &[f64] = &[
    252.364, 230.416, 284.182, 211.138, 285.064, 202.188, 195.32, 228.061, 253.685, 189.159,
    229.832, 249.841, 248.578, 285.023, 281.371, 263.313, 286.537, 287.589, 205.634, 337.41,
    248.043, 225.762, 274.006, 230.457, 275.086, 201.944, 279.014, 199.445, 265.029, 241.471,
    229.941, 256.123, 226.988, 219.122, 265.796, 327.248, 210.09, 296.207, 293.262, 205.197,
    257.609, 270.962, 213.566, 293.169, 285.116, 317.938, 265.593, 287.841, 322.485, 258.12,
    229.991, 191.963, 261.458, 199.311, 293.908, 255.887, 282.442, 256.509, 299.533, 231.746,
    252.003, 306.005, 199.668, 257.701, 289.01, 207.459, 222.011, 200.004, 297.23, 242.425,
    237.394, 193.498, 207.448, 287.061, 242.421, 233.965, 281.676, 213.765, 314.535, 235.271,
    229.478, 239.393, 251.494, 278.047, 222.047, 217.039, 251.526, 263.558, 285.09, 230.93, 288.68,
    209.204, 305.431, 206.317, 246.549, 257.812, 290.527, 308.407, 251.969, 325.826,
];

fn expect_n2() -> Summary {
    Summary {
        n: 2,
        mean: 13.125,
        median: 13.125,
        std: 0.625,
        sample_std: 0.8838834764831844,
        cv_percent: Some(4.761904761904762),
        t_95: Interval {
            low: 5.183622039890816,
            high: 21.066377960109186,
        },
        t_99: Interval {
            low: -26.660463226794704,
            high: 52.910463226794704,
        },
        median_95: None,
        median_99: None,
    }
}

fn expect_n5() -> Summary {
    Summary {
        n: 5,
        mean: 4.96,
        median: 4.7,
        std: 2.6295246718751284,
        sample_std: 2.9398979574128083,
        cv_percent: Some(53.01461032006307),
        t_95: Interval {
            low: 1.309634547887733,
            high: 8.610365452112267,
        },
        t_99: Interval {
            low: -1.0932905279342746,
            high: 11.013290527934274,
        },
        median_95: None,
        median_99: None,
    }
}

fn expect_n21() -> Summary {
    Summary {
        n: 21,
        mean: 18.080571428571428,
        median: 18.458,
        std: 4.962263736215066,
        sample_std: 5.0848072192702505,
        cv_percent: Some(27.44528155992657),
        t_95: Interval {
            low: 15.765994932330152,
            high: 20.395147924812704,
        },
        t_99: Interval {
            low: 14.923394142111757,
            high: 21.2377487150311,
        },
        median_95: Some(Interval {
            low: 14.992,
            high: 22.506,
        }),
        median_99: Some(Interval {
            low: 13.858,
            high: 23.662,
        }),
    }
}

fn expect_n30() -> Summary {
    Summary {
        n: 30,
        mean: 2.912066666666667,
        median: 2.206,
        std: 2.3055169042007813,
        sample_std: 2.344930304579079,
        cv_percent: Some(79.17115808477763),
        t_95: Interval {
            low: 2.0364553006667987,
            high: 3.7876780326665354,
        },
        t_99: Interval {
            low: 1.7319924214004718,
            high: 4.092140911932862,
        },
        median_95: Some(Interval {
            low: 1.423,
            high: 3.255,
        }),
        median_99: Some(Interval {
            low: 1.358,
            high: 4.977,
        }),
    }
}

fn expect_n100() -> Summary {
    Summary {
        n: 100,
        mean: 253.31957000000003,
        median: 252.18349999999998,
        std: 36.43824025999472,
        sample_std: 36.621809382795355,
        cv_percent: Some(14.384297375838242),
        t_95: Interval {
            low: 246.05300850248912,
            high: 260.5861314975109,
        },
        t_99: Interval {
            low: 243.70119799815285,
            high: 262.9379420018472,
        },
        median_95: Some(Interval {
            low: 242.421,
            high: 263.558,
        }),
        median_99: Some(Interval {
            low: 237.394,
            high: 265.796,
        }),
    }
}

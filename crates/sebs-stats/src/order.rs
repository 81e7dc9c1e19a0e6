//! Order statistics (medians and percentiles): the one home of every median and percentile
//! the project computes, whatever its samples measure (call times, memory, bench figures).

/// `samples` without NaN, in ascending order.
pub fn sorted_numbers(samples: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The median of `samples`, NaN left out, as numpy takes it (the mean of the two middle
/// values of an even count); `None` without a number.
pub fn median(samples: &[f64]) -> Option<f64> {
    median_of_sorted(&sorted_numbers(samples))
}

/// The median of ascending `sorted`; `None` when it is empty.
pub fn median_of_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Percentile `p` (0 to 100) of ascending `sorted`, interpolated linearly between the two
/// nearest values as numpy's default does; `None` when it is empty.
pub fn percentile_interpolated(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// The value at percentile `p` (0 to 100) of ascending `sorted` by the nearest-rank method:
/// always one of the values, never between two; `None` when it is empty.
pub fn percentile_nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        for (samples, expect) in [
            (&[][..], None),
            (&[f64::NAN][..], None),
            (&[3.0, 1.0, 2.0][..], Some(2.0)),
            (&[4.0, 1.0, 3.0, 2.0][..], Some(2.5)),
            (&[f64::NAN, 5.0, 1.0][..], Some(3.0)),
        ] {
            assert_eq!(median(samples), expect, "median of {samples:?}");
        }
    }

    #[test]
    fn interpolated_percentiles_are_numpys() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 75, 100])
        let sorted = [1.0, 2.0, 3.0, 4.0];
        for (p, expect) in [
            (0.0, 1.0),
            (25.0, 1.75),
            (50.0, 2.5),
            (75.0, 3.25),
            (100.0, 4.0),
        ] {
            assert_eq!(percentile_interpolated(&sorted, p), Some(expect), "p{p}");
        }
        assert_eq!(percentile_interpolated(&[7.0], 90.0), Some(7.0));
        assert_eq!(percentile_interpolated(&[], 50.0), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<u64> = (1..=100).collect();
        for (p, expect) in [(0.0, 1), (50.0, 50), (90.0, 90), (99.0, 99), (100.0, 100)] {
            assert_eq!(percentile_nearest_rank(&hundred, p), Some(expect), "p{p}");
        }
        let four = [1.0, 2.0, 3.0, 4.0];
        for (p, expect) in [(0.0, 1.0), (50.0, 2.0), (99.0, 4.0)] {
            assert_eq!(percentile_nearest_rank(&four, p), Some(expect), "p{p}");
        }
        assert_eq!(percentile_nearest_rank::<u64>(&[], 50.0), None);
    }
}

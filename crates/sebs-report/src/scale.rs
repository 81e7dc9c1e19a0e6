//! Axis arithmetic for the plots: when to use a log scale, ticks at round numbers that
//! leave room for their labels, tick labels, and a conservative estimate of text width.
//!
//! Pure functions of numbers, so that the rules ("ticks never crowd their labels", "a
//! range over a decade is drawn on a log scale") are tested without drawing anything.

/// Gap, in pixels, kept between two neighbouring tick labels.
pub const LABEL_GAP: f64 = 8.0;

/// A log scale is used when the largest value is at least this many times the smallest.
pub const LOG_RATIO: f64 = 10.0;

/// The width in pixels that `text` takes at `px` pixels per em, estimated from above.
///
/// The browser picks the font (the report ships none), so the estimate uses per-glyph
/// widths of DejaVu Sans, among the widest common sans-serif faces; narrower fonts only
/// leave more room. The Chromium test measures the real boxes.
pub fn text_width(text: &str, px: f64) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.32,
            ' ' | '·' | '(' | ')' | '[' | ']' | 'f' | 't' | 'r' | '-' | '/' => 0.42,
            'm' | 'w' | 'M' | 'W' | '%' | '—' | '@' => 1.0,
            'A'..='Z' => 0.78,
            '0'..='9' => 0.64,
            c if c.is_ascii() => 0.62,
            // Anything else (accents, CJK, symbols) as a full em.
            _ => 1.0,
        })
        .sum();
    em * px
}

/// An axis: its range, whether it is logarithmic, its labelled ticks and its minor lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// Ticks with labels, at round numbers, ascending.
    pub ticks: Vec<f64>,
    /// Unlabelled grid lines (log scale: 2..9 times each decade, where they fit).
    pub minor: Vec<f64>,
}

impl Axis {
    /// The label of tick `v`, with as many decimals as the ticks need and no more.
    pub fn label(&self, v: f64) -> String {
        if self.log {
            format_number(v, decimals_for(v))
        } else {
            let step = self
                .ticks
                .windows(2)
                .map(|w| w[1] - w[0])
                .fold(f64::INFINITY, f64::min);
            let step = if step.is_finite() { step } else { v.abs() };
            format_number(v, decimals_for(step))
        }
    }

    /// Where `v` falls along `px` pixels, 0 at `lo`.
    pub fn position(&self, v: f64, px: f64) -> f64 {
        if self.log {
            px * (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            px * (v - self.lo) / (self.hi - self.lo)
        }
    }
}

/// Whether values from `min` to `max` (both positive) are best shown on a log scale.
pub fn wants_log(min: f64, max: f64) -> bool {
    min > 0.0 && max / min >= LOG_RATIO
}

/// Decimals that show `v` (a tick or a step between ticks) without rounding it away.
fn decimals_for(v: f64) -> usize {
    if v <= 0.0 || !v.is_finite() {
        return 0;
    }
    let mut d = 0;
    while d < 9 {
        let scaled = v * 10f64.powi(d as i32);
        if (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0) {
            return d;
        }
        d += 1;
    }
    d
}

/// `v` with `decimals` decimals; thousands are not separated (labels stay short).
pub fn format_number(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    // -0 reads oddly on an axis.
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        return text.trim_start_matches('-').to_string();
    }
    text
}

/// A round step (1, 2 or 5 times a power of ten) of at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * power >= raw * (1.0 - 1e-12) {
            return m * power;
        }
    }
    10.0 * power
}

/// A linear axis over `[min, max]` on `px` pixels whose labels, `font_px` high, never
/// touch: the step grows until every label fits between its neighbours. With `from_zero`
/// the axis starts at 0 (bars); otherwise it hugs the data with a little padding.
pub fn linear_axis(min: f64, max: f64, px: f64, font_px: f64, from_zero: bool) -> Axis {
    linear(min, max, px, from_zero, 60.0, |axis| {
        fits(axis, px, font_px)
    })
}

/// [`linear_axis`] for a vertical axis, whose labels need only their height between them.
pub fn linear_y_axis(min: f64, max: f64, px: f64, font_px: f64, from_zero: bool) -> Axis {
    linear(min, max, px, from_zero, 36.0, |axis| {
        let positions: Vec<f64> = axis.ticks.iter().map(|&t| axis.position(t, px)).collect();
        positions
            .windows(2)
            .all(|w| w[1] - w[0] >= font_px + LABEL_GAP)
    })
}

/// A linear axis starting with about one tick per `spacing` pixels, its step grown until
/// `ok` accepts it.
fn linear(
    min: f64,
    max: f64,
    px: f64,
    from_zero: bool,
    spacing: f64,
    ok: impl Fn(&Axis) -> bool,
) -> Axis {
    let (mut lo, mut hi) = if min <= max { (min, max) } else { (max, min) };
    if from_zero {
        lo = lo.min(0.0);
    }
    if hi - lo <= 0.0 {
        // A single value: a window around it.
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
        lo -= pad;
        hi += pad;
        if from_zero {
            lo = lo.max(0.0).min(min);
        }
    } else if !from_zero {
        let pad = (hi - lo) * 0.05;
        lo -= pad;
        hi += pad;
        if min >= 0.0 {
            lo = lo.max(0.0);
        }
    }
    // Start from a step that gives about one tick per 60 px, then grow it until the
    // labels fit.
    let mut step = nice_step((hi - lo) / (px / spacing).max(1.0));
    loop {
        let first = (lo / step).floor() * step;
        let last = (hi / step).ceil() * step;
        let count = ((last - first) / step).round() as usize + 1;
        let ticks: Vec<f64> = (0..count).map(|i| clean(first + step * i as f64)).collect();
        let axis = Axis {
            lo: first,
            hi: last,
            log: false,
            ticks,
            minor: Vec::new(),
        };
        if ok(&axis) || count <= 2 {
            return axis;
        }
        step = nice_step(step * 1.5);
    }
}

/// A log axis over `[min, max]` (both positive) on `px` pixels: decades, with 2 and 5
/// between them when there is room, every other decade when even decades crowd.
pub fn log_axis(min: f64, max: f64, px: f64, font_px: f64) -> Axis {
    let min = min.max(f64::MIN_POSITIVE);
    let max = max.max(min);
    // A little room either side, so that no sample sits on the frame; the ends need not be
    // round, the ticks are.
    let (lo, mut hi) = (min / 1.06, max * 1.06);
    if hi <= lo {
        hi = lo * 10.0;
    }
    let first_decade = lo.log10().floor() as i32;
    let last_decade = hi.log10().ceil() as i32;
    let in_range = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    let decades = |every: i32| -> Vec<f64> {
        (first_decade..=last_decade)
            .filter(|d| d.rem_euclid(every) == 0)
            .map(|d| clean(10f64.powi(d)))
            .filter(in_range)
            .collect()
    };
    let with_multiples = |ms: &[f64]| -> Vec<f64> {
        let mut v: Vec<f64> = (first_decade..=last_decade)
            .flat_map(|d| ms.iter().map(move |m| clean(m * 10f64.powi(d))))
            .filter(in_range)
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let minor = with_multiples(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    // Within a decade or so every multiple may fit; over more, 1-2-5 reads best.
    let mut candidates = Vec::new();
    if (hi / lo).log10() <= 1.5 {
        candidates.push(minor.clone());
        candidates.push(with_multiples(&[1.0, 2.0, 3.0, 5.0]));
    }
    candidates.extend([
        with_multiples(&[1.0, 2.0, 5.0]),
        with_multiples(&[1.0, 2.0]),
        decades(1),
    ]);
    for every in 2..=6 {
        candidates.push(decades(every));
    }
    for mut ticks in candidates {
        // The range's own ends are labelled too when the decades alone would be too few.
        if ticks.len() < 2 {
            ticks = vec![lo, hi];
        }
        let axis = Axis {
            lo,
            hi,
            log: true,
            ticks,
            minor: minor.clone(),
        };
        if fits(&axis, px, font_px) {
            return axis;
        }
    }
    Axis {
        lo,
        hi,
        log: true,
        ticks: vec![lo, hi],
        minor,
    }
}

/// Whether the labels of `axis` (horizontal, `font_px` high) leave [`LABEL_GAP`] between
/// neighbours along `px` pixels.
pub fn fits(axis: &Axis, px: f64, font_px: f64) -> bool {
    let spans: Vec<(f64, f64)> = axis
        .ticks
        .iter()
        .map(|&t| {
            let centre = axis.position(t, px);
            let half = text_width(&axis.label(t), font_px) / 2.0;
            (centre - half, centre + half)
        })
        .collect();
    spans.windows(2).all(|w| w[1].0 - w[0].1 >= LABEL_GAP)
}

/// Rounds away the float noise of `first + step * i` (0.30000000000000004 → 0.3).
fn clean(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 12 - v.abs().log10().ceil() as i32;
    let scale = 10f64.powi(digits.clamp(0, 300));
    (v * scale).round() / scale
}

/// `text` shortened with an ellipsis so that it fits `max_px` at `font_px`.
pub fn abbreviate(text: &str, font_px: f64, max_px: f64) -> String {
    if text_width(text, font_px) <= max_px {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().collect::<String>() + "…";
        if text_width(&candidate, font_px) <= max_px {
            return candidate;
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_log(min: f64, max: f64, px: f64, expect: &[f64]) {
        let axis = log_axis(min, max, px, 13.0);
        assert_eq!(axis.ticks, expect, "{min}..{max} on {px} px");
        assert!(axis.lo < min && axis.hi > max, "{axis:?}");
        assert!(fits(&axis, px, 13.0), "{axis:?}");
    }

    #[test]
    fn log_ticks_are_decades_with_2_and_5_where_they_fit() {
        // 010.sleep: warm 100 ms, cold 1 s.
        check_log(101.0, 1044.0, 750.0, &[100.0, 200.0, 300.0, 500.0, 1000.0]);
        // Cold 200 ms next to warm 0.2 ms.
        check_log(
            0.2,
            200.0,
            800.0,
            &[0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0],
        );
        check_log(0.2, 200.0, 250.0, &[1.0, 10.0, 100.0]);
        check_log(
            0.013,
            12_000.0,
            300.0,
            &[0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0],
        );
        check_log(0.013, 12_000.0, 200.0, &[1.0, 100.0, 10000.0]);
        check_log(
            3.0,
            40.0,
            600.0,
            &[3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 20.0, 30.0, 40.0],
        );
    }

    fn check_linear(min: f64, max: f64, from_zero: bool, expect: &[f64]) {
        let axis = linear_axis(min, max, 600.0, 13.0, from_zero);
        assert_eq!(axis.ticks, expect, "{min}..{max}");
        assert!(fits(&axis, 600.0, 13.0));
        let labels: Vec<String> = axis.ticks.iter().map(|&t| axis.label(t)).collect();
        for l in &labels {
            assert!(l.len() <= 8, "{l} is not a round label");
        }
    }

    #[test]
    fn linear_ticks_are_round_and_hug_the_data() {
        // The old plot's 885.58 and 1180.78: now round numbers around the data, not from 0.
        check_linear(
            1002.0,
            1180.78,
            false,
            &[
                980.0, 1000.0, 1020.0, 1040.0, 1060.0, 1080.0, 1100.0, 1120.0, 1140.0, 1160.0,
                1180.0, 1200.0,
            ],
        );
        check_linear(0.0, 212.4, true, &[0.0, 50.0, 100.0, 150.0, 200.0, 250.0]);
        check_linear(0.1, 0.3, true, &[0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
        check_linear(
            5.0,
            5.0,
            false,
            &[4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.1, 5.2, 5.3, 5.4, 5.5],
        );
    }

    #[test]
    fn vertical_ticks_need_only_their_height() {
        let axis = linear_y_axis(0.0, 8.5, 170.0, 13.0, true);
        assert_eq!(axis.ticks, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    }

    #[test]
    fn labels_carry_the_decimals_they_need() {
        let axis = linear_axis(0.0, 0.3, 600.0, 13.0, true);
        assert_eq!(axis.label(0.1), "0.10");
        let log = log_axis(0.2, 200.0, 800.0, 13.0);
        assert_eq!(
            log.ticks.iter().map(|&t| log.label(t)).collect::<Vec<_>>(),
            ["0.2", "0.5", "1", "2", "5", "10", "20", "50", "100", "200"]
        );
        assert_eq!(format_number(-0.0, 1), "0.0");
    }

    #[test]
    fn log_is_for_ranges_over_a_decade() {
        assert!(wants_log(0.2, 200.0));
        assert!(!wants_log(100.0, 130.0));
        assert!(!wants_log(0.0, 10.0));
    }

    #[test]
    fn abbreviation_fits() {
        let long = "sequential · 1024 MB · a very long benchmark name";
        let short = abbreviate(long, 13.0, 120.0);
        assert!(
            short.ends_with('…') && text_width(&short, 13.0) <= 120.0,
            "{short}"
        );
        assert_eq!(abbreviate("cold", 13.0, 120.0), "cold");
    }
}

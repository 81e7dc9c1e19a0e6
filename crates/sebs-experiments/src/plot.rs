//! An SVG box plot of client time per configuration (experiment type × memory size).
//!
//! Written by hand, without a plotting dependency: boxes span the quartiles, whiskers
//! the 5th and 95th percentiles, a line marks the median; the axis is in milliseconds.

use std::fmt::Write;

use crate::perf_cost::ConfigurationResult;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 60.0;
const TOP: f64 = 30.0;

/// Linear-interpolated percentile `p` (0..=1) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The SVG document for `results`; configurations without samples are left out.
pub fn svg(title: &str, results: &[ConfigurationResult]) -> String {
    let series: Vec<(String, Vec<f64>)> = results
        .iter()
        .map(|r| {
            let mut t = r.client_times_ms();
            t.sort_by(f64::total_cmp);
            let label = match r.memory_mb {
                Some(m) => format!("{} {m} MB", r.run_type),
                None => r.run_type.to_string(),
            };
            (label, t)
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let max = series
        .iter()
        .map(|(_, t)| percentile(t, 0.95))
        .fold(0.0_f64, f64::max)
        .max(1e-3)
        * 1.1;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).min(1.0));
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
        HEIGHT - BOTTOM
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text><line x1="{LEFT}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#ddd"/>"##,
            LEFT - 6.0,
            y(v) + 4.0,
            y(v),
            WIDTH - 10.0,
            y(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">client time [ms]</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    let slot = (WIDTH - LEFT - 10.0) / series.len().max(1) as f64;
    for (i, (label, t)) in series.iter().enumerate() {
        let cx = LEFT + slot * (i as f64 + 0.5);
        let half = (slot * 0.3).min(40.0);
        let (p5, q1, med, q3, p95) = (
            percentile(t, 0.05),
            percentile(t, 0.25),
            percentile(t, 0.5),
            percentile(t, 0.75),
            percentile(t, 0.95),
        );
        let _ = writeln!(
            s,
            r##"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="#333"/><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#8ab4f8" stroke="#333"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#c00" stroke-width="2"/>"##,
            y(p5),
            y(p95),
            cx - half,
            y(q3),
            2.0 * half,
            (y(q1) - y(q3)).max(1.0),
            cx - half,
            y(med),
            cx + half,
            y(med)
        );
        let _ = writeln!(
            s,
            r##"<text x="{cx:.1}" y="{}" text-anchor="middle">{}</text><text x="{cx:.1}" y="{}" text-anchor="middle" fill="#555">n={} median {med:.2}</text>"##,
            HEIGHT - BOTTOM + 18.0,
            escape(label),
            HEIGHT - BOTTOM + 34.0,
            t.len()
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.25), 2.0);
        assert_eq!(percentile(&v, 0.1), 1.4);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn svg_has_a_box_per_configuration() {
        assert!(svg("t", &[]).starts_with("<svg"));
        assert_eq!(escape("a<b&c>"), "a&lt;b&amp;c&gt;");
    }
}

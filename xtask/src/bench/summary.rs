//! The bench's figures: one [`Entry`] per figure, written to `target/bench/summary.json` and
//! printed as a table.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// One figure. `target` applies to `ratio` when there is one, else to `value`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A bound on a figure: at most or at least some number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    pub fn met(self, x: f64) -> bool {
        match self {
            Target::AtMost(t) => x <= t,
            Target::AtLeast(t) => x >= t,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtMost(t) => format!("<= {t}"),
            Target::AtLeast(t) => format!(">= {t}"),
        }
    }
}

impl Entry {
    /// A figure without a target.
    pub fn plain(name: &str, unit: &str, value: f64, samples: usize) -> Entry {
        Entry {
            name: name.to_string(),
            unit: unit.to_string(),
            value,
            samples: samples as u64,
            target: None,
            ratio: None,
            met: None,
            note: None,
        }
    }

    /// A figure compared with `reference` as `value / reference`, which `target` bounds.
    pub fn versus(mut self, reference: f64, target: Target) -> Entry {
        let ratio = if reference > 0.0 {
            self.value / reference
        } else {
            f64::NAN
        };
        self.ratio = Some(ratio);
        self.target = Some(target.text());
        self.met = Some(ratio.is_finite() && target.met(ratio));
        self
    }

    /// A figure compared with `reference` as `value / reference`, without a target.
    pub fn relative_to(mut self, reference: f64) -> Entry {
        self.ratio = Some(if reference > 0.0 {
            self.value / reference
        } else {
            f64::NAN
        });
        self
    }

    /// A figure whose value itself `target` bounds.
    pub fn bounded(mut self, target: Target) -> Entry {
        self.target = Some(target.text());
        self.met = Some(target.met(self.value));
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Entry {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(before) => format!("{before}; {note}"),
            None => note,
        });
        self
    }
}

/// The median of `xs` (sebs-stats'), NaN when there is none: the bench prints NaN as `-`.
pub fn median(xs: &[f64]) -> f64 {
    sebs_stats::median(xs).unwrap_or(f64::NAN)
}

/// The `p`-th percentile (0–100) of `xs` by nearest rank (sebs-stats'); NaN when empty.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    sebs_stats::percentile_nearest_rank(&sebs_stats::sorted_numbers(xs), p).unwrap_or(f64::NAN)
}

/// A number with as many decimals as its size calls for.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let a = x.abs();
    if a >= 1000.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// The table printed on stdout.
pub fn table(entries: &[Entry]) -> String {
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                num(e.value),
                e.unit.clone(),
                e.samples.to_string(),
                e.ratio.map(num).unwrap_or_default(),
                e.target.clone().unwrap_or_default(),
                match e.met {
                    Some(true) => "yes".to_string(),
                    Some(false) => "NO".to_string(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let head = ["figure", "value", "unit", "n", "ratio", "target", "met"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            // Names left-aligned, numbers right-aligned.
            let pad = w - c.chars().count();
            if i == 0 || i == 2 || i == 5 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            s.push_str("  ");
        }
        s.trim_end().to_string()
    };
    let mut out = line(&head.map(String::from));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    let notes: Vec<String> = entries
        .iter()
        .filter_map(|e| e.note.as_ref().map(|n| format!("- {}: {n}", e.name)))
        .collect();
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

pub fn write(path: &Path, entries: &[Entry]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(entries).context("failed to serialise the summary")?;
    std::fs::write(path, json + "\n").with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_median(xs: &[f64], expect: f64) {
        let got = median(xs);
        assert!(
            got == expect || (got.is_nan() && expect.is_nan()),
            "{xs:?}: {got} != {expect}"
        );
    }

    #[test]
    fn medians() {
        check_median(&[3.0, 1.0, 2.0], 2.0);
        check_median(&[4.0, 1.0, 2.0, 3.0], 2.5);
        check_median(&[], f64::NAN);
        check_median(&[f64::NAN, 5.0], 5.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 99.0), 4.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.0), 1.0);
    }

    #[test]
    fn targets_and_serialisation() {
        let e = Entry::plain("cold", "ms", 330.0, 5)
            .versus(300.0, Target::AtMost(1.1))
            .note("x");
        assert_eq!(e.met, Some(true));
        let e2 = Entry::plain("rps", "req/s", 3900.0, 10).versus(1300.0, Target::AtLeast(10.0));
        assert_eq!(e2.met, Some(false));
        assert!((e2.ratio.unwrap() - 3.0).abs() < 1e-12);
        let zero = Entry::plain("errors", "count", 0.0, 1).bounded(Target::AtMost(0.0));
        assert_eq!(zero.met, Some(true));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["target"], "<= 1.1");
        assert_eq!(v["note"], "x");
        let plain = serde_json::to_value(Entry::plain("p", "ms", 1.0, 1)).unwrap();
        assert!(
            plain.get("ratio").is_none() && plain.get("met").is_none(),
            "{plain}"
        );
        let t = table(&[e, e2]);
        assert!(t.lines().nth(1).unwrap().starts_with("cold "), "{t}");
        assert!(t.contains("NO") && t.contains("- cold: x"), "{t}");
    }

    #[test]
    fn numbers() {
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(123.45), "123.5");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.1234), "0.123");
        assert_eq!(num(f64::NAN), "-");
    }
}

//! A self-contained HTML report of a results directory: perf-cost's client times and where
//! they go, SeBS's statistics, the limits the functions ran with, and memory over time.
//!
//! - [`read::load`] reads a directory's `<type>_results[_<memory>].json` and memory reports
//!   into a [`Report`] ([`model`]): the figures every plot and table shows, computed once.
//! - [`render`] draws the plots ([`plot`], with plotters' SVG backend; axis rules in
//!   [`scale`]) and the page ([`html`]): one document with everything inline.
//! - [`write_report`] does both and writes `report.html` and each plot as its own SVG file
//!   beside the results.
//!
//! Invariant: the page loads nothing (no script, font, stylesheet or image from anywhere:
//! its Content-Security-Policy forbids it), so it opens from disk, offline, years later.

pub mod html;
pub mod model;
pub mod plot;
pub mod read;
pub mod scale;

use std::path::{Path, PathBuf};

pub use model::Report;
pub use plot::{Plot, PlotError};
pub use read::ReadError;

/// The report's file name.
pub const REPORT_FILE: &str = "report.html";

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The page and its plots.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub html: String,
    /// Every plot in the page, in page order.
    pub plots: Vec<Plot>,
}

/// Draws every plot of `report` and the page that holds them.
pub fn render(report: &Report) -> Result<Rendered, PlotError> {
    let client = plot::client_time(report)?;
    let breakdown = plot::breakdown(report)?;
    let mut memory = Vec::new();
    for (i, file) in report.memory.iter().enumerate() {
        let stem = file.file.strip_suffix(".json").unwrap_or(&file.file);
        let stem = stem.strip_suffix("_report").unwrap_or(stem);
        let mut plots = Vec::new();
        for series in &file.containers {
            if plots.len() == plot::MAX_MEMORY_PLOTS {
                break;
            }
            if let Some(p) = plot::memory(stem, series)? {
                plots.push(p);
            }
        }
        memory.push((i, plots));
    }
    let html = html::page(report, client.as_ref(), breakdown.as_ref(), &memory);
    let plots = client
        .into_iter()
        .chain(breakdown)
        .chain(memory.into_iter().flat_map(|(_, p)| p))
        .collect();
    Ok(Rendered { html, plots })
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The directory whose results the report shows (see [`read::results_dir`]).
    pub dir: PathBuf,
    pub html: PathBuf,
    pub plots: Vec<PathBuf>,
    /// Files left out, with why.
    pub notes: Vec<String>,
}

/// Reads the results in `dir` (or `dir/perf-cost`) and writes `report.html` and the plots'
/// SVG files beside them.
pub fn write_report(dir: &Path) -> Result<Written, ReportError> {
    write_report_with(dir, &[])
}

/// [`write_report`], also showing `memory_reports` whatever their names (see
/// [`read::load_with`]); the page goes into `dir` when it holds no other results.
pub fn write_report_with(dir: &Path, memory_reports: &[PathBuf]) -> Result<Written, ReportError> {
    let results = match read::results_dir(dir) {
        Err(ReadError::NoResults { .. }) if !memory_reports.is_empty() => dir.to_path_buf(),
        other => other?,
    };
    let report = read::load_with(&results, memory_reports)?;
    let rendered = render(&report)?;
    let write = |name: &str, text: &str| {
        let path = results.join(name);
        std::fs::write(&path, text).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        Ok::<_, ReportError>(path)
    };
    let mut plots = Vec::new();
    for plot in &rendered.plots {
        plots.push(write(&plot.file_name, &plot.svg)?);
    }
    let html = write(REPORT_FILE, &rendered.html)?;
    Ok(Written {
        dir: results,
        html,
        plots,
        notes: report.notes,
    })
}

//! The report's plots, drawn with plotters' SVG backend: client time per configuration
//! (box plots with every sample), where the median client time goes (stacked bars, cold
//! starts and warm calls side by side), and memory over time per container.
//!
//! Layout is decided here from estimated text widths ([`scale::text_width`]): label areas
//! are as wide as their longest label, ticks are spaced so their labels never touch,
//! rows are taller than their labels, and a label too long for its area is shortened.
//! The browser draws the text (no font is embedded), so sizes are given in CSS pixels.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::model::{Configuration, MemorySeries, Report};
use crate::scale::{self, Axis};

/// Plot width in pixels; the HTML scales it down on narrow screens.
pub const WIDTH: u32 = 960;
/// Label text height in CSS pixels.
const FONT: f64 = 13.0;
/// Title text height.
const TITLE_FONT: f64 = 16.0;
/// Height of one configuration's row.
const ROW: f64 = 28.0;
/// Length of tick marks; plotters puts labels twice as far from the axis.
const TICK: i32 = 4;
/// Font families: whatever sans-serif face the reader's system has.
const FAMILY: &str = "sans-serif";
/// Samples drawn per memory curve at most; longer series keep each bucket's min and max.
pub const MAX_MEMORY_POINTS: usize = 4000;
/// A memory plot's size: small multiples, two side by side on a wide screen.
const MEMORY_SIZE: (u32, u32) = (520, 300);
/// Memory plots drawn at most per memory file; the rest are in the table only.
pub const MAX_MEMORY_PLOTS: usize = 48;

/// A drawn plot: its SVG document and what the report says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// The SVG file's name, e.g. `client_time.svg`.
    pub file_name: String,
    /// A heading for the figure.
    pub title: String,
    pub svg: String,
}

/// A plot that could not be drawn (plotters refused a coordinate or a drawing call).
#[derive(Debug, thiserror::Error)]
#[error("draw plot {plot}: {message}")]
pub struct PlotError {
    pub plot: String,
    pub message: String,
}

/// Colour of an experiment type (Okabe–Ito, readable with colour blindness).
pub fn type_colour(run_type: &str) -> RGBColor {
    match run_type {
        "cold" => RGBColor(0, 114, 178),
        "warm" => RGBColor(230, 159, 0),
        "burst" => RGBColor(0, 158, 115),
        "sequential" => RGBColor(204, 121, 167),
        _ => RGBColor(86, 86, 86),
    }
}

/// Colours of the breakdown's parts: benchmark, initialization, platform + network.
pub const PART_COLOURS: [RGBColor; 3] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(160, 160, 160),
];
/// Names of the breakdown's parts, in [`PART_COLOURS`]' order.
pub const PART_NAMES: [&str; 3] = [
    "benchmark (the handler)",
    "initialization (import, cold calls)",
    "platform + network (client − the others)",
];

fn font(px: f64) -> TextStyle<'static> {
    // plotters' SVG backend writes the size divided by 1.24; undo that so `px` is what
    // the browser gets.
    TextStyle::from((FAMILY, px * 1.24).into_font()).color(&BLACK)
}

fn err(plot: &str) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError {
        plot: plot.to_string(),
        message,
    }
}

/// Draws into a new SVG document of `width` × `height` pixels.
fn svg(
    name: &str,
    (width, height): (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(name)(e.to_string()))?;
        draw(&root).map_err(err(name))?;
        root.present().map_err(|e| err(name)(e.to_string()))?;
    }
    Ok(out)
}

/// A title line at the top left of `area`.
fn title(area: &DrawingArea<SVGBackend<'_>, Shift>, text: &str) -> Result<(), String> {
    let max = f64::from(area.dim_in_pixel().0) - 20.0;
    let text = scale::abbreviate(text, TITLE_FONT, max);
    let style = font(TITLE_FONT).pos(Pos::new(HPos::Left, VPos::Top));
    area.draw(&Text::new(text, (10, 10), style))
        .map_err(|e| e.to_string())
}

/// Row labels shortened to fit `max_px`, and the width the widest one needs.
fn row_labels(labels: &[String], max_px: f64) -> (Vec<String>, f64) {
    let short: Vec<String> = labels
        .iter()
        .map(|l| scale::abbreviate(l, FONT, max_px))
        .collect();
    let widest = short
        .iter()
        .map(|l| scale::text_width(l, FONT))
        .fold(0.0, f64::max);
    (short, widest)
}

/// Height of the x label area: ticks, their labels, a gap and the axis description.
fn x_label_area() -> u32 {
    (f64::from(2 * TICK) + FONT + 10.0 + FONT + 8.0) as u32
}

/// Width of a y label area holding labels `widest` wide (and a rotated description).
fn y_label_area(widest: f64, with_desc: bool) -> u32 {
    let desc = if with_desc { FONT + 10.0 } else { 0.0 };
    (f64::from(2 * TICK) + widest + 6.0 + desc).ceil() as u32
}

/// A linear coordinate with ticks (and minor grid lines) of our choosing; plotters' own
/// `WithKeyPoints` cannot be given a label formatter.
#[derive(Debug, Clone)]
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Ticked {
    fn new(range: Range<f64>, ticks: Vec<f64>, minor: Vec<f64>) -> Ticked {
        Ticked {
            range,
            ticks,
            minor,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let t = if span == 0.0 {
            0.5
        } else {
            (value - self.range.start) / span
        };
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A horizontal axis for a plot `total` pixels wide with `left` pixels of labels, and the
/// right margin that keeps its last tick label (centred on the frame's edge) inside.
fn x_axis(total: u32, left: u32, make: impl Fn(f64) -> Axis) -> (Axis, u32) {
    let margin = |axis: &Axis| {
        let last = axis.ticks.last().map_or(0.0, |&t| {
            let px = f64::from(total - left);
            // Only a label near the right edge reaches past it.
            let from_edge = px - axis.position(t, px);
            (scale::text_width(&axis.label(t), FONT) / 2.0 - from_edge).max(0.0)
        });
        (last.ceil() as u32 + 6).max(16)
    };
    let first = make(f64::from(total - left - 16));
    let right = margin(&first);
    if right == 16 {
        return (first, right);
    }
    let axis = make(f64::from(total - left - right));
    let right = margin(&axis).max(right);
    (axis, right)
}

/// Values mapped onto a plot's x coordinate: log10 of them on a log axis.
struct XMap {
    axis: Axis,
}

impl XMap {
    fn x(&self, v: f64) -> f64 {
        if self.axis.log {
            v.max(self.axis.lo).log10()
        } else {
            v
        }
    }
    fn coord(&self) -> Ticked {
        Ticked::new(
            self.x(self.axis.lo)..self.x(self.axis.hi),
            self.axis.ticks.iter().map(|&t| self.x(t)).collect(),
            self.axis.minor.iter().map(|&t| self.x(t)).collect(),
        )
    }
    /// The label of a tick given in plot coordinates.
    fn label(&self, x: f64) -> String {
        let v = if self.axis.log { 10f64.powf(x) } else { x };
        // Ticks are the axis's own values; find the one this is, to print it exactly.
        let tick = self
            .axis
            .ticks
            .iter()
            .copied()
            .min_by(|a, b| (a - v).abs().total_cmp(&(b - v).abs()))
            .unwrap_or(v);
        self.axis.label(tick)
    }
}

/// A deterministic spread in [-0.5, 0.5) for the k-th point of a row, so that samples of
/// equal value stay visible side by side and the same data always gives the same plot.
fn jitter(k: usize) -> f64 {
    ((k as f64 + 1.0) * 0.618_033_988_75).fract() - 0.5
}

/// Client time per configuration: one row each, a box (quartiles, median, whiskers to the
/// furthest sample within 1.5 IQR) over every sample as a dot; log scale when the
/// samples span a decade or more. `None` without samples.
pub fn client_time(report: &Report) -> Result<Option<Plot>, PlotError> {
    const NAME: &str = "client_time.svg";
    let rows: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| !c.invocations.is_empty())
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let all: Vec<f64> = rows.iter().flat_map(|c| c.client_ms()).collect();
    let min = all.iter().copied().fold(f64::INFINITY, f64::min);
    let max = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let labels: Vec<String> = rows.iter().map(|c| c.label()).collect();
    let (labels, widest) = row_labels(&labels, f64::from(WIDTH) * 0.35);
    let left = y_label_area(widest, false);
    let log = scale::wants_log(min, max);
    let (axis, right) = x_axis(WIDTH, left, |px| {
        if log {
            scale::log_axis(min, max, px, FONT)
        } else {
            scale::linear_axis(min, max, px, FONT, false)
        }
    });
    let map = XMap { axis };
    let top = 44;
    let height = top + (ROW * rows.len() as f64) as u32 + x_label_area() + 8;
    let desc = if log {
        "client time [ms], log scale"
    } else {
        "client time [ms]"
    };
    let n = rows.len() as f64;
    let svg = svg(NAME, (WIDTH, height), |root| {
        let (head, body) = root.split_vertically(top);
        title(
            &head,
            &format!("{}: client time per configuration", report.title),
        )?;
        let centres: Vec<f64> = (0..rows.len()).map(|i| n - i as f64 - 0.5).collect();
        let label_of = |y: &f64| {
            let i = (n - y - 0.5).round();
            if i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        };
        let x_label = |x: &f64| map.label(*x);
        let mut chart = ChartBuilder::on(&body)
            .margin_right(right)
            .margin_bottom(8)
            .x_label_area_size(x_label_area())
            .y_label_area_size(left)
            .build_cartesian_2d(
                map.coord(),
                Ticked::new(0.0..n, centres.clone(), Vec::new()),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .set_all_tick_mark_size(TICK)
            .label_style(font(FONT))
            .axis_desc_style(font(FONT))
            .x_desc(desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&label_of)
            .bold_line_style(RGBColor(200, 200, 200))
            .light_line_style(RGBColor(236, 236, 236))
            .draw()
            .map_err(|e| e.to_string())?;
        for (row, (c, &y)) in rows.iter().zip(&centres).enumerate() {
            let colour = type_colour(&c.run_type);
            let mut sorted = c.client_ms();
            sorted.sort_by(f64::total_cmp);
            let q = |p| sebs_stats::percentile_interpolated(&sorted, p).unwrap_or(f64::NAN);
            let (q1, median, q3) = (q(25.0), q(50.0), q(75.0));
            let iqr = q3 - q1;
            let low = sorted
                .iter()
                .copied()
                .find(|&v| v >= q1 - 1.5 * iqr)
                .unwrap_or(q1);
            let high = sorted
                .iter()
                .rev()
                .copied()
                .find(|&v| v <= q3 + 1.5 * iqr)
                .unwrap_or(q3);
            let x = |v: f64| map.x(v);
            let half = 0.32;
            let stroke = colour.stroke_width(2);
            let whisker = BLACK.mix(0.7).stroke_width(1);
            let box_elements = vec![
                PathElement::new(vec![(x(low), y), (x(q1), y)], whisker),
                PathElement::new(vec![(x(q3), y), (x(high), y)], whisker),
                PathElement::new(vec![(x(low), y - 0.15), (x(low), y + 0.15)], whisker),
                PathElement::new(vec![(x(high), y - 0.15), (x(high), y + 0.15)], whisker),
            ];
            chart.draw_series(box_elements).map_err(|e| e.to_string())?;
            chart
                .draw_series([Rectangle::new(
                    [(x(q1), y - half), (x(q3), y + half)],
                    colour.mix(0.18).filled(),
                )])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([Rectangle::new(
                    [(x(q1), y - half), (x(q3), y + half)],
                    stroke,
                )])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(c.client_ms().into_iter().enumerate().map(|(k, v)| {
                    Circle::new(
                        (x(v), y + jitter(k + row) * 0.5),
                        2,
                        colour.mix(0.55).filled(),
                    )
                }))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([PathElement::new(
                    vec![(x(median), y - half), (x(median), y + half)],
                    BLACK.stroke_width(3),
                )])
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    Ok(Some(Plot {
        file_name: NAME.into(),
        title: "Client time per configuration".into(),
        svg,
    }))
}

/// A short duration label: three significant digits, `ms`.
pub fn ms_label(v: f64) -> String {
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else if v >= 1.0 {
        2
    } else {
        3
    };
    format!("{} ms", scale::format_number(v, decimals))
}

/// Where the median client time goes, per configuration: the handler, the import (paid
/// by cold calls) and the rest, which the platform and the network add. Cold-start types
/// (cold, burst) and warm ones (warm, sequential) are drawn side by side, each on its
/// own linear scale, so a 0.2 ms warm overhead is as readable as a 200 ms cold start.
pub fn breakdown(report: &Report) -> Result<Option<Plot>, PlotError> {
    const NAME: &str = "time_breakdown.svg";
    let with: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| c.breakdown.is_some())
        .collect();
    if with.is_empty() {
        return Ok(None);
    }
    let cold: Vec<&Configuration> = with.iter().copied().filter(|c| c.is_cold_type()).collect();
    let warm: Vec<&Configuration> = with.iter().copied().filter(|c| !c.is_cold_type()).collect();
    let panels: Vec<(&str, Vec<&Configuration>)> = [
        ("cold starts (cold, burst)", cold),
        ("warm calls (warm, sequential)", warm),
    ]
    .into_iter()
    .filter(|(_, rows)| !rows.is_empty())
    .collect();
    let rows = panels.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
    let top = 40;
    let legend = legend_layout(f64::from(WIDTH) - 20.0);
    let legend_h = legend.iter().map(|l| l.2).fold(0.0, f64::max) + FONT + 12.0;
    let caption_h = 28;
    let height =
        top + legend_h as u32 + caption_h + (ROW * rows as f64) as u32 + x_label_area() + 8;
    let panel_w = WIDTH / panels.len() as u32;
    let svg = svg(NAME, (WIDTH, height), |root| {
        let (head, rest) = root.split_vertically(top);
        title(
            &head,
            &format!("{}: where the median client time goes", report.title),
        )?;
        let (legend_area, body) = rest.split_vertically(legend_h as u32);
        for (i, (x, _, y)) in legend.iter().enumerate() {
            let (x, y) = (*x as i32 + 10, *y as i32 + 4);
            legend_area
                .draw(&Rectangle::new(
                    [(x, y), (x + 14, y + 14)],
                    PART_COLOURS[i].filled(),
                ))
                .map_err(|e| e.to_string())?;
            legend_area
                .draw(&Text::new(
                    PART_NAMES[i],
                    (x + 20, y + 7),
                    font(FONT).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(|e| e.to_string())?;
        }
        let areas = body.split_evenly((1, panels.len()));
        for ((caption, configs), area) in panels.iter().zip(&areas) {
            draw_breakdown_panel(area, caption, configs, panel_w)?;
        }
        Ok(())
    })?;
    Ok(Some(Plot {
        file_name: NAME.into(),
        title: "Where the median client time goes".into(),
        svg,
    }))
}

/// Legend entries laid out left to right, wrapping: (x, width, y) of each.
fn legend_layout(width: f64) -> Vec<(f64, f64, f64)> {
    let mut out = Vec::new();
    let (mut x, mut y) = (0.0, 0.0);
    for name in PART_NAMES {
        let w = 20.0 + scale::text_width(name, FONT) + 24.0;
        if x > 0.0 && x + w > width {
            x = 0.0;
            y += FONT + 10.0;
        }
        out.push((x, w, y));
        x += w;
    }
    out
}

fn draw_breakdown_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    caption: &str,
    configs: &[&Configuration],
    panel_w: u32,
) -> Result<(), String> {
    let n = configs.len() as f64;
    let labels: Vec<String> = configs.iter().map(|c| c.label()).collect();
    let (labels, widest) = row_labels(&labels, f64::from(panel_w) * 0.3);
    let left = y_label_area(widest, false);
    let plot_px = f64::from(panel_w - left - 16);
    let totals: Vec<f64> = configs
        .iter()
        .filter_map(|c| c.breakdown.map(|b| b.client_ms))
        .collect();
    let max_total = totals.iter().copied().fold(0.0, f64::max);
    // Room right of the longest bar for its total.
    let label_px = totals
        .iter()
        .map(|&t| scale::text_width(&ms_label(t), FONT))
        .fold(0.0, f64::max)
        + 10.0;
    let needed = if plot_px > label_px + 20.0 {
        max_total * plot_px / (plot_px - label_px)
    } else {
        max_total * 2.0
    };
    let (axis, right) = x_axis(panel_w, left, |px| {
        scale::linear_axis(0.0, needed.max(1e-3), px, FONT, true)
    });
    let map = XMap { axis };
    let centres: Vec<f64> = (0..configs.len()).map(|i| n - i as f64 - 0.5).collect();
    let label_of = |y: &f64| {
        let i = (n - y - 0.5).round();
        if i >= 0.0 && (i as usize) < labels.len() {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    let x_label = |x: &f64| map.label(*x);
    let mut chart = ChartBuilder::on(area)
        .caption(
            scale::abbreviate(caption, FONT + 1.0, f64::from(panel_w) - 20.0),
            font(FONT + 1.0),
        )
        .margin_right(right)
        .margin_bottom(8)
        .x_label_area_size(x_label_area())
        .y_label_area_size(left)
        .build_cartesian_2d(
            map.coord(),
            Ticked::new(0.0..n, centres.clone(), Vec::new()),
        )
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .set_all_tick_mark_size(TICK)
        .label_style(font(FONT))
        .axis_desc_style(font(FONT))
        .x_desc("median client time [ms]")
        .x_label_formatter(&x_label)
        .y_label_formatter(&label_of)
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(|e| e.to_string())?;
    for (c, &y) in configs.iter().zip(&centres) {
        let Some(b) = c.breakdown else { continue };
        let parts = [b.benchmark_ms, b.initialization_ms, b.rest_ms];
        let mut start = 0.0;
        for (part, colour) in parts.iter().zip(PART_COLOURS) {
            if *part > 0.0 {
                chart
                    .draw_series([Rectangle::new(
                        [(start, y - 0.32), (start + part, y + 0.32)],
                        colour.filled(),
                    )])
                    .map_err(|e| e.to_string())?;
            }
            start += part;
        }
        // The total, 6 px right of the bar's end.
        chart
            .draw_series([EmptyElement::at((b.client_ms, y))
                + Text::new(
                    ms_label(b.client_ms),
                    (6, 0),
                    font(FONT).pos(Pos::new(HPos::Left, VPos::Center)),
                )])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Memory over time for one container, with the invocations it served shaded.
pub fn memory(file_stem: &str, series: &MemorySeries) -> Result<Option<Plot>, PlotError> {
    if series.points.is_empty() {
        return Ok(None);
    }
    let name = format!("{file_stem}_{}.svg", series.short_id());
    let points = downsample(&series.points, MAX_MEMORY_POINTS);
    let t_max = series
        .points
        .iter()
        .map(|p| p.0)
        .chain(series.invocations.iter().map(|i| i.1))
        .fold(0.0, f64::max);
    let t_min = series.invocations.iter().map(|i| i.0).fold(0.0, f64::min);
    let y_max = series.points.iter().map(|p| p.1).fold(0.0, f64::max);
    let (width, height) = (MEMORY_SIZE.0, MEMORY_SIZE.1);
    // Title, legend, the x label area and margins take the rest.
    let plot_h = f64::from(height) - 40.0 - 24.0 - f64::from(x_label_area()) - 10.0;
    let y_axis = scale::linear_y_axis(0.0, y_max.max(1e-3), plot_h, FONT, true);
    let widest = y_axis
        .ticks
        .iter()
        .map(|&t| scale::text_width(&y_axis.label(t), FONT))
        .fold(0.0, f64::max);
    let left = y_label_area(widest, true);
    let (x_axis, right) = x_axis(width, left + 4, |px| {
        scale::linear_axis(t_min, t_max.max(t_min + 1e-3), px, FONT, t_min >= 0.0)
    });
    let top = 40;
    let legend_h = 24;
    let heading = format!(
        "container {} ({}, every {} ms)",
        series.short_id(),
        series.source,
        scale::format_number(
            series.interval_ms,
            if series.interval_ms.fract() == 0.0 {
                0
            } else {
                1
            }
        ),
    );
    let svg = svg(&name, (width, height), |root| {
        let (head, rest) = root.split_vertically(top);
        title(&head, &heading)?;
        let (legend, body) = rest.split_vertically(legend_h);
        let entry = |x: i32, text: &str, fill: ShapeStyle| -> Result<i32, String> {
            legend
                .draw(&Rectangle::new([(x, 4), (x + 14, 16)], fill))
                .map_err(|e| e.to_string())?;
            legend
                .draw(&Text::new(
                    text.to_string(),
                    (x + 20, 10),
                    font(FONT).pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(|e| e.to_string())?;
            Ok(x + 20 + scale::text_width(text, FONT) as i32 + 24)
        };
        let x = entry(10, "memory used [MB]", RGBColor(0, 114, 178).filled())?;
        if !series.invocations.is_empty() {
            entry(
                x,
                "invocation (handler running)",
                RGBColor(230, 159, 0).mix(0.35).filled(),
            )?;
        }
        let x_label = |x: &f64| x_axis.label(*x);
        let y_label = |y: &f64| y_axis.label(*y);
        let mut chart = ChartBuilder::on(&body)
            .margin_right(right)
            // The rotated axis description's glyphs reach a little past its box.
            .margin_left(4)
            .margin_top(6)
            .margin_bottom(4)
            .x_label_area_size(x_label_area())
            .y_label_area_size(left)
            .build_cartesian_2d(
                Ticked::new(x_axis.lo..x_axis.hi, x_axis.ticks.clone(), Vec::new()),
                Ticked::new(y_axis.lo..y_axis.hi, y_axis.ticks.clone(), Vec::new()),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .set_all_tick_mark_size(TICK)
            .label_style(font(FONT))
            .axis_desc_style(font(FONT))
            .x_desc("time since the first sample [s]")
            .y_desc("memory [MB]")
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(series.invocations.iter().map(|&(b, e)| {
                Rectangle::new(
                    [(b, y_axis.lo), (e.max(b), y_axis.hi)],
                    RGBColor(230, 159, 0).mix(0.3).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        // A call shorter than a pixel still shows: a line at its start.
        chart
            .draw_series(series.invocations.iter().map(|&(b, _)| {
                PathElement::new(
                    vec![(b, y_axis.lo), (b, y_axis.hi)],
                    RGBColor(230, 159, 0).mix(0.8).stroke_width(1),
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series([PathElement::new(
                points,
                RGBColor(0, 114, 178).stroke_width(2),
            )])
            .map_err(|e| e.to_string())?;
        Ok(())
    })?;
    Ok(Some(Plot {
        file_name: name,
        title: heading,
        svg,
    }))
}

/// At most about `max` points: each time bucket keeps its smallest and largest sample,
/// in time order, so spikes survive.
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 4 {
        return points.to_vec();
    }
    let buckets = max / 2;
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(buckets * 2);
    for chunk in points.chunks(per) {
        let lo = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map_or(0, |(i, _)| i);
        let hi = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map_or(0, |(i, _)| i);
        let (first, second) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out.push(chunk[first]);
        if second != first {
            out.push(chunk[second]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_spikes_and_order() {
        let points: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (i as f64, if i == 4321 { 99.0 } else { 1.0 }))
            .collect();
        let out = downsample(&points, 100);
        assert!(out.len() <= 100, "{}", out.len());
        assert!(out.contains(&(4321.0, 99.0)));
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(downsample(&points[..10], 100).len(), 10);
    }

    #[test]
    fn ms_labels_have_three_digits() {
        assert_eq!(ms_label(212.44), "212 ms");
        assert_eq!(ms_label(12.44), "12.4 ms");
        assert_eq!(ms_label(0.2123), "0.212 ms");
    }
}

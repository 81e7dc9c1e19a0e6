//! No two text labels of a plot overlap, computed from their positions and estimated sizes
//! in the SVG, over data chosen to crowd them: many configurations, long names, values
//! over many decades, a single sample. (The Chromium test checks real glyph boxes.)

use sebs_experiments::RunType;
use sebs_report::scale::text_width;

use crate::synthetic;

/// The tests of this module.
pub fn trials() -> Vec<sebs_testkit::Trial> {
    use sebs_testkit::trial;
    vec![
        trial!(cold_200_ms_next_to_warm_0_2_ms),
        trial!(many_memory_sizes),
        trial!(extreme_values),
        trial!(the_parser_sees_an_overlap),
    ]
}

/// One `<text>` of an SVG and the box it covers, in SVG pixels.
#[derive(Debug, Clone)]
pub struct Label {
    pub text: String,
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].to_string())
}

/// Every text element of a plotters SVG with its box: plotters writes `x`, `y`, `dy`
/// (`0.76em` top, `0.5ex` centre, `-0.5ex` bottom), `text-anchor`, `font-size` and, for
/// rotated text, `transform="rotate(a, x, y)"`.
pub fn labels(svg: &str) -> Vec<Label> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        let tag_end = start + rest[start..].find('>').unwrap();
        let tag = &rest[start..tag_end];
        let close = tag_end + rest[tag_end..].find("</text>").unwrap();
        let text = rest[tag_end + 1..close]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        rest = &rest[close..];
        let num = |name: &str| attribute(tag, name).and_then(|v| v.parse::<f64>().ok());
        let (x, y, size) = (
            num("x").unwrap(),
            num("y").unwrap(),
            num("font-size").unwrap(),
        );
        let w = text_width(&text, size);
        let (dx0, dx1) = match attribute(tag, "text-anchor").as_deref() {
            Some("middle") => (-w / 2.0, w / 2.0),
            Some("end") => (-w, 0.0),
            _ => (0.0, w),
        };
        let (dy0, dy1) = match attribute(tag, "dy").as_deref() {
            Some("0.76em") => (0.0, size),
            Some("-0.5ex") => (-size, 0.0),
            _ => (-size / 2.0, size / 2.0),
        };
        // Rotation by 270° maps an offset (dx, dy) to (dy, -dx); by 90° to (-dy, dx).
        let (bx0, bx1, by0, by1) = match attribute(tag, "transform") {
            Some(t) if t.starts_with("rotate(270") => (dy0, dy1, -dx1, -dx0),
            Some(t) if t.starts_with("rotate(90") => (-dy1, -dy0, dx0, dx1),
            _ => (dx0, dx1, dy0, dy1),
        };
        out.push(Label {
            text,
            x0: x + bx0,
            y0: y + by0,
            x1: x + bx1,
            y1: y + by1,
        });
    }
    out
}

/// Pairs of labels whose boxes share more than a pixel each way.
pub fn overlaps(labels: &[Label]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let w = a.x1.min(b.x1) - a.x0.max(b.x0);
            let h = a.y1.min(b.y1) - a.y0.max(b.y0);
            if w > 1.0 && h > 1.0 {
                out.push((a.text.clone(), b.text.clone()));
            }
        }
    }
    out
}

fn check(name: &str, configurations: Vec<sebs_experiments::perf_cost::ConfigurationResult>) {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write(dir.path(), &configurations);
    std::fs::write(
        dir.path().join("memory_report.json"),
        synthetic::memory_report().to_string(),
    )
    .unwrap();
    let report = sebs_report::read::load(dir.path()).unwrap();
    let rendered = sebs_report::render(&report).unwrap();
    assert!(
        rendered.plots.len() >= 3,
        "{name}: {} plots",
        rendered.plots.len()
    );
    for plot in &rendered.plots {
        let labels = labels(&plot.svg);
        assert!(labels.len() >= 5, "{name}/{}: {labels:?}", plot.file_name);
        let clash = overlaps(&labels);
        assert!(
            clash.is_empty(),
            "{name}/{}: overlapping labels {clash:?}",
            plot.file_name
        );
        // Every label inside the drawing.
        let (w, h) = size(&plot.svg);
        for l in &labels {
            assert!(
                l.x0 >= -0.5 && l.y0 >= -0.5 && l.x1 <= w + 0.5 && l.y1 <= h + 0.5,
                "{name}/{}: {l:?} leaves the {w}x{h} drawing",
                plot.file_name
            );
        }
        // A unit on every axis.
        let texts: Vec<&str> = labels.iter().map(|l| l.text.as_str()).collect();
        let units = texts.iter().filter(|t| t.contains(" [")).count();
        let expected = if plot.file_name.starts_with("memory") {
            3
        } else {
            1
        };
        assert!(
            units >= expected,
            "{name}/{}: axis units missing in {texts:?}",
            plot.file_name
        );
    }
}

fn size(svg: &str) -> (f64, f64) {
    let tag = &svg[svg.find("<svg").unwrap()..];
    let tag = &tag[..tag.find('>').unwrap()];
    let num = |n| attribute(tag, n).unwrap().parse::<f64>().unwrap();
    (num("width"), num("height"))
}

fn cold_200_ms_next_to_warm_0_2_ms() {
    check("decades", synthetic::decades());
}

fn many_memory_sizes() {
    let mut all = Vec::new();
    for m in [
        128, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048, 3008,
    ] {
        for t in [
            RunType::Cold,
            RunType::Warm,
            RunType::Burst,
            RunType::Sequential,
        ] {
            let cold = matches!(t, RunType::Cold | RunType::Burst);
            let base = if cold { 900.0 } else { 101.0 } * 128.0 / m as f64;
            all.push(synthetic::configuration(
                t,
                Some(m),
                30,
                base,
                25.0,
                100.0,
                25.0,
            ));
        }
    }
    check("many", all);
}

fn extreme_values() {
    check(
        "extreme",
        vec![
            synthetic::configuration(
                RunType::Cold,
                None,
                2,
                1_234_567.0,
                5.0,
                1_000_000.0,
                1000.0,
            ),
            synthetic::configuration(RunType::Warm, None, 40, 0.0123, 80.0, 0.001, 0.0),
        ],
    );
    check(
        "one value",
        vec![synthetic::configuration(
            RunType::Warm,
            Some(128),
            5,
            101.0,
            0.0,
            100.0,
            0.0,
        )],
    );
}

fn the_parser_sees_an_overlap() {
    // The check itself must be able to fail: two labels at the same place.
    let svg = r#"<svg width="100" height="100"><text x="10" y="10" dy="0.5ex" text-anchor="start" font-size="13">cold · 128 MB
</text><text x="30" y="12" dy="0.5ex" text-anchor="start" font-size="13">warm
</text><text x="10" y="140" dy="0.5ex" text-anchor="start" font-size="13" transform="rotate(270, 10, 140)">rotated
</text></svg>"#;
    let l = labels(svg);
    assert_eq!(l.len(), 3);
    assert_eq!(
        overlaps(&l),
        [("cold · 128 MB".to_string(), "warm".to_string())]
    );
    // Rotated: tall and narrow.
    assert!(l[2].y1 - l[2].y0 > l[2].x1 - l[2].x0);
}

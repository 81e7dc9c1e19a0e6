//! The report page: one HTML document with its style and every plot inline, so that it
//! opens from disk in any browser with no network, and refuses to load anything else
//! (its Content-Security-Policy allows nothing outside the page).

use std::fmt::Write;

use crate::model::{fmt_ms, Configuration, MemoryFile, Report};
use crate::plot::{Plot, PART_COLOURS};
use sebs_stats::Interval;

/// The page's policy: inline style and nothing else, so a report that tried to reach the
/// network would be stopped by the browser and the test would see it.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'";

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; color: #1b1b1b; background: #fafafa; line-height: 1.45; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 36px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
p.lead { color: #555; margin-top: 0; }
nav a { margin-right: 14px; }
ul.findings li { margin: 4px 0; }
figure { margin: 12px 0 20px; background: #fff; border: 1px solid #e2e2e2; border-radius: 6px;
         padding: 8px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #444; margin: 6px 4px 2px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 12px; }
.grid figure { margin: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88em; background: #fff; margin: 8px 0; }
th, td { border: 1px solid #e0e0e0; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; font-weight: 600; }
td.l, th.l { text-align: left; }
tr.bad td { background: #fff2f0; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
details { margin: 6px 0; }
code { font-size: 0.95em; }
footer { margin-top: 40px; font-size: 0.85em; color: #777; }
"#;

/// HTML-escapes `text`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn interval(i: Option<Interval>) -> String {
    match i {
        Some(i) => format!("{:.3} – {:.3}", i.low, i.high),
        None => "—".into(),
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "—".into(), f)
}

/// An SVG made to sit inside HTML: without its XML declaration, if any.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn figure(out: &mut String, plot: &Plot, caption: &str) {
    let _ = writeln!(
        out,
        "<figure>{}<figcaption>{} Also written as <a href=\"{}\">{}</a>.</figcaption></figure>",
        inline_svg(&plot.svg),
        caption,
        escape(&plot.file_name),
        escape(&plot.file_name)
    );
}

/// When a run was, from its configurations' begin and end times (UTC).
fn period(report: &Report) -> Option<String> {
    let begin = report
        .configurations
        .iter()
        .filter_map(|c| c.begin_time)
        .fold(f64::INFINITY, f64::min);
    let end = report
        .configurations
        .iter()
        .filter_map(|c| c.end_time)
        .fold(f64::NEG_INFINITY, f64::max);
    if !begin.is_finite() || !end.is_finite() || end < begin {
        return None;
    }
    Some(format!(
        "from {} to {} UTC ({:.0} s)",
        utc(begin),
        utc(end),
        end - begin
    ))
}

/// Seconds since the epoch as `2026-11-29 08:58:16`, UTC (civil-from-days, no time zone
/// database needed).
pub fn utc(epoch_s: f64) -> String {
    let secs = epoch_s.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The whole page.
pub fn page(
    report: &Report,
    client: Option<&Plot>,
    breakdown: Option<&Plot>,
    memory: &[(usize, Vec<Plot>)],
) -> String {
    let mut out = String::new();
    let title = format!("sebs-local report: {}", report.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&report.title));
    let samples: usize = report
        .configurations
        .iter()
        .map(|c| c.invocations.len())
        .sum();
    let mut lead = Vec::new();
    if !report.configurations.is_empty() {
        lead.push(format!(
            "perf-cost: {} configurations, {} valid invocations{}",
            report.configurations.len(),
            samples,
            period(report).map(|p| format!(", {p}")).unwrap_or_default()
        ));
    }
    let containers: usize = report.memory.iter().map(|m| m.containers.len()).sum();
    if containers > 0 {
        lead.push(format!("memory of {containers} containers"));
    }
    let _ = writeln!(out, "<p class=\"lead\">{}.</p>", escape(&lead.join("; ")));

    let mut nav = Vec::new();
    if !report.configurations.is_empty() {
        nav.extend([
            ("findings", "Findings"),
            ("client-time", "Client time"),
            ("breakdown", "Where the time goes"),
            ("statistics", "Statistics"),
            ("limits", "Limits"),
        ]);
        if report
            .configurations
            .iter()
            .any(|c| !c.failures.is_empty() || c.stopped_early.is_some())
        {
            nav.push(("failures", "Failures"));
        }
    }
    if !report.memory.is_empty() {
        nav.push(("memory", "Memory"));
    }
    if !report.notes.is_empty() {
        nav.push(("notes", "Notes"));
    }
    out.push_str("<nav>");
    for (id, name) in &nav {
        let _ = write!(out, "<a href=\"#{id}\">{name}</a>");
    }
    out.push_str("</nav>\n");

    if !report.configurations.is_empty() {
        perf_cost_sections(&mut out, report, client, breakdown);
    }
    if !report.memory.is_empty() {
        out.push_str("<h2 id=\"memory\">Memory</h2>\n");
        for (i, file) in report.memory.iter().enumerate() {
            let plots = memory
                .iter()
                .find(|(index, _)| *index == i)
                .map_or(&[][..], |(_, p)| p.as_slice());
            memory_section(&mut out, file, plots);
        }
    }
    if !report.notes.is_empty() {
        out.push_str("<h2 id=\"notes\">Notes</h2>\n<ul>\n");
        for note in &report.notes {
            let _ = writeln!(out, "<li>{}</li>", escape(note));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(
        out,
        "<footer>Written by sebs-local {} from the results files beside this page \
         (<code>sebs-local report DIR</code> writes it again).</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn perf_cost_sections(
    out: &mut String,
    report: &Report,
    client: Option<&Plot>,
    breakdown: Option<&Plot>,
) {
    out.push_str("<h2 id=\"findings\">Findings</h2>\n<ul class=\"findings\">\n");
    for f in report.findings() {
        let _ = writeln!(out, "<li>{}</li>", escape(&f));
    }
    out.push_str("</ul>\n");

    out.push_str("<h2 id=\"client-time\">Client time</h2>\n");
    if let Some(plot) = client {
        figure(
            out,
            plot,
            "Client time of every valid invocation (a dot each), per experiment type and \
             memory size: from before connecting to the last byte of the answer. Boxes span \
             the quartiles, the black bar is the median, whiskers reach the furthest sample \
             within 1.5 times the box.",
        );
    } else {
        out.push_str("<p>No configuration has valid invocations.</p>\n");
    }

    out.push_str("<h2 id=\"breakdown\">Where the time goes</h2>\n");
    if let Some(plot) = breakdown {
        figure(
            out,
            plot,
            "Median client time split into the handler (<code>benchmark</code>: end − begin \
             in the container), importing the function (<code>initialization</code>, paid by \
             cold calls) and the rest: what the platform adds (the agent, handing the call to \
             a worker and, for a cold call, starting the language runtime) and the network. \
             Each panel has its own scale; the table gives the medians.",
        );
        out.push_str("<div class=\"scroll\"><table>\n<tr><th class=\"l\">configuration</th>");
        for (name, colour) in ["benchmark", "initialization", "platform + network"]
            .iter()
            .zip(PART_COLOURS)
        {
            let _ = write!(
                out,
                "<th><span class=\"swatch\" style=\"background:rgb({},{},{})\"></span>{}</th>",
                colour.0,
                colour.1,
                colour.2,
                escape(name)
            );
        }
        out.push_str("<th>client</th></tr>\n");
        for c in &report.configurations {
            if let Some(b) = c.breakdown {
                let _ = writeln!(
                    out,
                    "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&c.label()),
                    fmt_ms(b.benchmark_ms),
                    fmt_ms(b.initialization_ms),
                    fmt_ms(b.rest_ms),
                    fmt_ms(b.client_ms)
                );
            }
        }
        out.push_str("</table></div>\n");
    }

    statistics_table(out, report);
    limits_table(out, report);
    failures(out, report);
}

fn statistics_table(out: &mut String, report: &Report) {
    out.push_str(
        "<h2 id=\"statistics\">Statistics</h2>\n<p>Client time in ms, as SeBS computes it: \
         std is the population standard deviation, CV = std / mean. Failed invocations and \
         those at the wrong temperature (<em>incorrect</em>) are not samples.</p>\n\
         <div class=\"scroll\"><table>\n<tr><th class=\"l\">type</th><th>memory</th><th>n</th>\
         <th>mean</th><th>median</th><th>std</th><th>CV</th><th>min</th><th>max</th>\
         <th>failures</th><th>incorrect</th><th>cold</th></tr>\n",
    );
    let row_head = |out: &mut String, c: &Configuration| {
        let bad = !c.failures.is_empty() || c.stopped_early.is_some();
        let _ = write!(
            out,
            "<tr{}><td class=\"l\">{}</td><td>{}</td>",
            if bad { " class=\"bad\"" } else { "" },
            escape(&c.run_type),
            opt(c.memory_mb.or(c.limits.memory_mb), |m| format!("{m} MB")),
        );
    };
    for c in &report.configurations {
        row_head(out, c);
        match &c.stats {
            Some(s) => {
                let _ = write!(
                    out,
                    "<td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td>\
                     <td>{:.3}</td><td>{:.3}</td>",
                    s.n,
                    s.mean,
                    s.median,
                    s.std,
                    opt(s.cv_percent, |v| format!("{v:.2} %")),
                    s.min,
                    s.max
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<td>{}</td><td colspan=\"6\" class=\"l\">too few samples for statistics</td>",
                    c.invocations.len()
                );
            }
        }
        let _ = writeln!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            c.failures.len(),
            c.incorrect,
            c.cold_count
        );
    }
    out.push_str("</table></div>\n");
    out.push_str(
        "<h3>Confidence intervals</h3>\n<p>In ms: Student's t intervals on the mean; Le \
         Boudec's non-parametric intervals on the median, given above 20 samples (as SeBS).</p>\n\
         <div class=\"scroll\"><table>\n<tr><th class=\"l\">type</th><th>memory</th>\
         <th>mean, 95 %</th><th>mean, 99 %</th><th>median, 95 %</th><th>median, 99 %</th></tr>\n",
    );
    for c in &report.configurations {
        row_head(out, c);
        match &c.stats {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    interval(Some(s.t_95)),
                    interval(Some(s.t_99)),
                    interval(s.median_95),
                    interval(s.median_99),
                );
            }
            None => out.push_str("<td>—</td><td>—</td><td>—</td><td>—</td></tr>\n"),
        }
    }
    out.push_str("</table></div>\n");
}

fn limits_table(out: &mut String, report: &Report) {
    let mut other_keys: Vec<&str> = report
        .configurations
        .iter()
        .flat_map(|c| c.limits.other.iter().map(|(k, _)| k.as_str()))
        .collect();
    other_keys.sort_unstable();
    other_keys.dedup();
    out.push_str(
        "<h2 id=\"limits\">Limits</h2>\n<p>What each configuration's function ran with, as its \
         results file records it (— where the file does not say).</p>\n\
         <div class=\"scroll\"><table>\n<tr><th class=\"l\">configuration</th>\
         <th class=\"l\">function</th><th>memory</th><th>timeout</th><th>CPUs</th>",
    );
    for k in &other_keys {
        let _ = write!(out, "<th>{}</th>", escape(&k.replace('_', " ")));
    }
    out.push_str("<th class=\"l\">file</th></tr>\n");
    for c in &report.configurations {
        let l = &c.limits;
        let cpus = match (l.cpus, l.cpus_known) {
            (Some(v), _) => format!("{v}"),
            (None, true) => "unlimited".into(),
            (None, false) => "—".into(),
        };
        let _ = write!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape(&c.label()),
            escape(&c.function_name),
            opt(l.memory_mb, |m| format!("{m} MB")),
            opt(l.timeout_s, |t| format!("{t} s")),
            cpus
        );
        for k in &other_keys {
            let v = l
                .other
                .iter()
                .find(|(key, _)| key == k)
                .map_or("—", |(_, v)| v.as_str());
            let _ = write!(out, "<td>{}</td>", escape(v));
        }
        let _ = writeln!(
            out,
            "<td class=\"l\"><code>{}</code></td></tr>",
            escape(&c.file)
        );
    }
    out.push_str("</table></div>\n");
}

fn failures(out: &mut String, report: &Report) {
    let troubled: Vec<&Configuration> = report
        .configurations
        .iter()
        .filter(|c| !c.failures.is_empty() || c.stopped_early.is_some())
        .collect();
    if troubled.is_empty() {
        return;
    }
    out.push_str("<h2 id=\"failures\">Failures</h2>\n");
    for c in troubled {
        let _ = writeln!(out, "<h3>{}</h3>", escape(&c.label()));
        if let Some(why) = &c.stopped_early {
            let _ = writeln!(out, "<p>Stopped early: {}</p>", escape(why));
        }
        // The same message many times is one line with its count.
        let mut counted: Vec<(&str, usize)> = Vec::new();
        for f in &c.failures {
            match counted.iter_mut().find(|(m, _)| *m == f.as_str()) {
                Some(entry) => entry.1 += 1,
                None => counted.push((f, 1)),
            }
        }
        if !counted.is_empty() {
            out.push_str("<ul>\n");
            for (message, n) in counted {
                let _ = writeln!(out, "<li>{n} × <code>{}</code></li>", escape(message));
            }
            out.push_str("</ul>\n");
        }
    }
}

fn memory_section(out: &mut String, file: &MemoryFile, plots: &[Plot]) {
    let _ = writeln!(
        out,
        "<h3><code>{}</code></h3>\n<p>{} container{}; {} samples came later than their interval \
         (precision errors). MB = 10<sup>6</sup> bytes, as SeBS prints them.</p>",
        escape(&file.file),
        file.containers.len(),
        if file.containers.len() == 1 { "" } else { "s" },
        file.precision_errors
    );
    out.push_str(
        "<div class=\"scroll\"><table>\n<tr><th class=\"l\">container</th><th class=\"l\">source</th>\
         <th>interval</th><th>samples</th><th>mean</th><th>peak (sampled)</th><th>peak (kernel)</th>\
         <th>precision errors</th><th>invocations</th><th class=\"l\">end</th></tr>\n",
    );
    for c in &file.containers {
        let end = match &c.error {
            Some(e) => format!("{}: {}", c.end, e),
            None => c.end.clone(),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td>{} ms</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            escape(c.short_id()),
            escape(&c.source),
            c.interval_ms,
            c.points.len(),
            opt(c.mean_mb(), |v| format!("{v:.1} MB")),
            opt(c.peak_mb(), |v| format!("{v:.1} MB")),
            opt(c.kernel_peak_mb, |v| format!("{v:.1} MB")),
            c.precision_errors,
            if c.invocations.is_empty() {
                "—".to_string()
            } else {
                c.invocations.len().to_string()
            },
            escape(&end)
        );
    }
    out.push_str("</table></div>\n");
    if plots.is_empty() {
        return;
    }
    let shown = plots.len();
    let with_samples = file
        .containers
        .iter()
        .filter(|c| !c.points.is_empty())
        .count();
    if shown < with_samples {
        let _ = writeln!(
            out,
            "<p>The first {shown} of {with_samples} containers are drawn; all are in the table \
             and in <code>{}</code>.</p>",
            escape(&file.file)
        );
    }
    out.push_str("<div class=\"grid\">\n");
    for plot in plots {
        let served = file
            .containers
            .iter()
            .find(|c| plot.file_name.ends_with(&format!("_{}.svg", c.short_id())))
            .is_some_and(|c| !c.invocations.is_empty());
        let caption = if served {
            "Memory the container used over time; shaded: the handler of an invocation running."
        } else {
            "Memory the container used over time (this file records no invocations)."
        };
        figure(out, plot, caption);
    }
    out.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000.5), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

//! The page in headless Chromium (Debian's `chromium`, which `cargo xtask test` installs):
//! it loads from disk without a console message (a blocked request, a policy violation,
//! an error), every plot has drawn content, and no two labels of a plot overlap by the
//! browser's own text boxes. Without Chromium the test is reported as not run, or fails
//! under `CI` (sebs-testkit's gate).
//!
//! `SEBS_UPDATE_SCREENSHOT=1` also copies the screenshot it takes to `docs/`, for the README.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one Chromium run may take.
const TIMEOUT: Duration = Duration::from_secs(90);

/// Measures every figure of the page and appends the result as JSON in `#sebs-probe`.
const PROBE: &str = r#"<script>
(function () {
  const out = [];
  for (const fig of document.querySelectorAll('figure')) {
    const svg = fig.querySelector('svg');
    const link = fig.querySelector('figcaption a');
    const box = svg.getBoundingClientRect();
    const texts = [...svg.querySelectorAll('text')].map(t => {
      const r = t.getBoundingClientRect();
      return {text: t.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
    }).filter(t => t.text.length > 0);
    const overlaps = [];
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const a = texts[i], b = texts[j];
        const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
        const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
        if (w > 0.5 && h > 0.5) overlaps.push([a.text, b.text]);
      }
    }
    const outside = texts.filter(t => t.x0 < box.left - 0.5 || t.x1 > box.right + 0.5 ||
      t.y0 < box.top - 0.5 || t.y1 > box.bottom + 0.5).map(t => t.text);
    let maxPoints = 0;
    for (const p of svg.querySelectorAll('polyline')) maxPoints = Math.max(maxPoints, p.points.numberOfItems);
    const drawn = [...svg.querySelectorAll('circle, rect, polyline, path')].filter(e => {
      const r = e.getBoundingClientRect();
      return r.width > 0 || r.height > 0;
    }).length;
    out.push({file: link ? link.textContent : '', circles: svg.querySelectorAll('circle').length,
      rects: svg.querySelectorAll('rect').length, max_points: maxPoints, drawn,
      texts: texts.length, overlaps, outside, width: box.width, height: box.height});
  }
  const pre = document.createElement('pre');
  pre.id = 'sebs-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"#;

/// The tests of this module.
pub fn trials() -> Vec<sebs_testkit::Trial> {
    use sebs_testkit::trial;
    vec![trial!(the_page_loads_and_every_plot_is_drawn, CHROMIUM)]
}

/// A Chromium to render the page in.
static CHROMIUM: sebs_testkit::Need = sebs_testkit::Need::new(
    "Chromium (chromium, chromium-browser or google-chrome on the PATH, or SEBS_CHROMIUM)",
    || {
        chromium()
            .map(drop)
            .ok_or_else(|| "none found; `cargo xtask test` installs Debian's chromium".into())
    },
);

/// Chromium's binary: `SEBS_CHROMIUM`, else `chromium`, `chromium-browser` or
/// `google-chrome` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SEBS_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// What one headless run printed: the DOM (with `--dump-dom`) and its log.
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium on `page` with `extra` flags, in a profile of its own.
fn run(chromium: &Path, page: &Path, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {} within {TIMEOUT:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run {
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    };
    assert!(
        status.success(),
        "chromium failed on {}: {status}\n{}",
        page.display(),
        run.stderr
    );
    run
}

/// The page's console messages, from Chromium's log.
fn console(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .collect()
}

/// The probe's measurements of every figure of `page`.
fn probe(chromium: &Path, page: &Path) -> Vec<Value> {
    let html = std::fs::read_to_string(page).unwrap();
    let policy = sebs_report::html::CONTENT_SECURITY_POLICY;
    assert!(html.contains(policy), "the page has no strict policy");
    let probed = html
        .replace(
            policy,
            &policy.replace("script-src 'none'", "script-src 'unsafe-inline'"),
        )
        .replace("</body>", &format!("{PROBE}</body>"));
    let copy = page.with_file_name("probed.html");
    std::fs::write(&copy, probed).unwrap();
    let run = run(chromium, &copy, &["--window-size=1100,1600", "--dump-dom"]);
    std::fs::remove_file(&copy).unwrap();
    let start = run
        .stdout
        .find("<pre id=\"sebs-probe\">")
        .unwrap_or_else(|| panic!("the probe did not run:\n{}", run.stderr))
        + "<pre id=\"sebs-probe\">".len();
    let end = start + run.stdout[start..].find("</pre>").unwrap();
    let json = run.stdout[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str::<Value>(&json)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Loads `page` as a reader would and returns its console messages; the DOM must have
/// come up with the report's heading.
fn load(chromium: &Path, page: &Path, heading: &str) -> Vec<String> {
    let run = run(chromium, page, &["--dump-dom"]);
    assert!(
        run.stdout.contains(&format!("<h1>{heading}</h1>")),
        "the page did not load:\n{}",
        run.stderr
    );
    console(&run).into_iter().map(str::to_string).collect()
}

/// Every figure drawn, every label clear of the others and inside its plot.
fn check_figures(figures: &[Value], files: &[&str]) {
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(names, files);
    for f in figures {
        let name = f["file"].as_str().unwrap();
        assert_eq!(
            f["overlaps"],
            serde_json::json!([]),
            "{name}: labels overlap"
        );
        assert_eq!(
            f["outside"],
            serde_json::json!([]),
            "{name}: labels outside"
        );
        assert!(f["texts"].as_u64().unwrap() >= 5, "{name}: {f}");
        assert!(
            f["drawn"].as_u64().unwrap() >= 3,
            "{name}: nothing drawn: {f}"
        );
        assert!(f["width"].as_f64().unwrap() > 300.0, "{name}: {f}");
    }
}

fn the_page_loads_and_every_plot_is_drawn() {
    let chromium = chromium().unwrap();

    // The check can fail: a page under the same policy that asks the network for an image
    // is reported on the console.
    let bad = tempfile::tempdir().unwrap();
    let bad_page = bad.path().join("bad.html");
    std::fs::write(
        &bad_page,
        format!(
            "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
             </head><body><h1>bad</h1><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
            sebs_report::html::CONTENT_SECURITY_POLICY
        ),
    )
    .unwrap();
    assert!(
        !load(&chromium, &bad_page, "bad").is_empty(),
        "a blocked request did not reach the console log: this check would miss one"
    );

    // A real perf-cost run.
    let perf = crate::copy_of("010.sleep");
    let written = sebs_report::write_report(perf.path()).unwrap();
    let messages = load(&chromium, &written.html, "010.sleep");
    assert!(messages.is_empty(), "console: {messages:#?}");
    let figures = probe(&chromium, &written.html);
    check_figures(&figures, &["client_time.svg", "time_breakdown.svg"]);
    // One dot per valid invocation: 8 configurations of 25.
    assert_eq!(figures[0]["circles"], 200, "{}", figures[0]);
    // Three parts per bar at most, at least the handler's.
    assert!(
        figures[1]["rects"].as_u64().unwrap() >= 8 + 3,
        "{}",
        figures[1]
    );

    // Memory: a real report, and one with invocations.
    let memory = crate::copy_of("memory");
    std::fs::write(
        memory.path().join("synthetic_report.json"),
        crate::synthetic::memory_report().to_string(),
    )
    .unwrap();
    let written = sebs_report::write_report(memory.path()).unwrap();
    let messages = load(&chromium, &written.html, "memory measurement");
    assert!(messages.is_empty(), "console: {messages:#?}");
    let figures = probe(&chromium, &written.html);
    check_figures(
        &figures,
        &[
            "memory_065c12901f04.svg",
            "memory_e0c2c9fcb958.svg",
            "synthetic_fd77cb419f7c.svg",
            "synthetic_371735025f1b.svg",
        ],
    );
    for f in &figures {
        assert!(f["max_points"].as_u64().unwrap() >= 100, "{f}");
    }

    // A picture of the perf-cost page as a reader first sees it.
    let shot = perf.path().join("report.png");
    let page = perf.path().join("perf-cost/report.html");
    run(
        &chromium,
        &page,
        &[
            "--window-size=1000,1250",
            "--force-device-scale-factor=1",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    if std::env::var_os("SEBS_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.png");
        std::fs::write(&docs, png).unwrap();
        eprintln!("wrote {}", docs.display());
    }
}

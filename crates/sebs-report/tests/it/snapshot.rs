//! What the report reads and computes, as snapshots of its model (not of pixels): every
//! figure a plot or table shows, from synthetic and real results directories.

use sebs_experiments::RunType;
use sebs_report::model::{Configuration, MemorySeries, Report};
use sebs_stats::Interval;
use serde_json::{json, Value};

use crate::synthetic;

/// The tests of this module.
pub fn trials() -> Vec<sebs_testkit::Trial> {
    use sebs_testkit::trial;
    vec![
        trial!(synthetic_results_directory),
        trial!(real_perf_cost_run),
        trial!(where_results_are_found),
        trial!(writes_the_page_and_every_plot),
        trial!(a_memory_report_of_any_name_when_named),
    ]
}

/// Four decimals: enough to read, and free of the last bits floats may differ in.
fn r(v: f64) -> Value {
    json!((v * 10_000.0).round() / 10_000.0)
}

fn interval(i: Option<Interval>) -> Value {
    i.map_or(Value::Null, |i| json!([r(i.low), r(i.high)]))
}

fn configuration(c: &Configuration) -> Value {
    json!({
        "label": c.label(),
        "file": c.file,
        "function": c.function_name,
        "benchmark": c.benchmark,
        "n": c.invocations.len(),
        "stats": c.stats.as_ref().map(|s| json!({
            "mean": r(s.mean), "median": r(s.median), "std": r(s.std),
            "cv_percent": s.cv_percent.map(r),
            "t_95": interval(Some(s.t_95)), "t_99": interval(Some(s.t_99)),
            "median_95": interval(s.median_95), "median_99": interval(s.median_99),
            "min": r(s.min), "q1": r(s.q1), "q3": r(s.q3), "max": r(s.max),
        })),
        "breakdown": c.breakdown.map(|b| json!({
            "client": r(b.client_ms), "benchmark": r(b.benchmark_ms),
            "initialization": r(b.initialization_ms), "rest": r(b.rest_ms),
        })),
        "failures": c.failures,
        "incorrect": c.incorrect,
        "cold": c.cold_count,
        "limits": {
            "memory_mb": c.limits.memory_mb,
            "timeout_s": c.limits.timeout_s,
            "cpus": c.limits.cpus,
            "cpus_known": c.limits.cpus_known,
            "other": c.limits.other,
        },
        "stopped_early": c.stopped_early,
    })
}

fn series(s: &MemorySeries) -> Value {
    json!({
        "container": s.short_id(),
        "source": s.source,
        "end": s.end,
        "error": s.error,
        "interval_ms": s.interval_ms,
        "samples": s.points.len(),
        "first": s.points.first().map(|p| [r(p.0), r(p.1)]),
        "last": s.points.last().map(|p| [r(p.0), r(p.1)]),
        "mean_mb": s.mean_mb().map(r),
        "peak_mb": s.peak_mb().map(r),
        "kernel_peak_mb": s.kernel_peak_mb.map(r),
        "invocations": s.invocations.iter().map(|i| [r(i.0), r(i.1)]).collect::<Vec<_>>(),
    })
}

/// The report as a reader sees it: every number, no raw samples.
fn view(report: &Report) -> Value {
    json!({
        "title": report.title,
        "findings": report.findings(),
        "notes": report.notes,
        "configurations": report.configurations.iter().map(configuration).collect::<Vec<_>>(),
        "memory": report.memory.iter().map(|m| json!({
            "file": m.file,
            "precision_errors": m.precision_errors,
            "containers": m.containers.iter().map(series).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Synthetic results covering what a reader must tolerate: cold 200 ms next to warm
/// 0.2 ms, failures and stopped runs, a sandbox section, SeBS's own files without ours,
/// unreadable files, and a memory report with invocations.
fn synthetic_results_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut configurations = synthetic::decades();
    configurations[2].failures = vec![
        "invoke function at 172.17.0.3:9000: connection refused".into(),
        "invoke function at 172.17.0.3:9000: connection refused".into(),
        "the handler raised: ValueError".into(),
    ];
    configurations[2].incorrect = vec![configurations[2].valid[0].clone()];
    configurations[7].stopped_early = Some("interrupted".into());
    synthetic::write(dir.path(), &configurations);
    // Another engineer's sandbox settings, and a key this version does not know.
    synthetic::edit(&dir.path().join("cold_results_256.json"), |doc| {
        doc["sebs_local"]["sandbox"] =
            json!({"tmp_size_mb": 512, "pids_limit": 1024, "user": "1000:1000"});
        doc["sebs_local"]["function"]["gpus"] = json!(0);
    });
    // SeBS's own file: no `sebs_local`, no memory size in its name.
    let sebs = synthetic::configuration(RunType::Warm, None, 3, 5.0, 10.0, 4.0, 0.0);
    synthetic::write(dir.path(), &[sebs]);
    synthetic::edit(&dir.path().join("warm_results.json"), |doc| {
        doc.as_object_mut().unwrap().remove("sebs_local");
    });
    std::fs::write(dir.path().join("sequential_results_512.json"), "{").unwrap();
    std::fs::write(dir.path().join("other_report.json"), r#"{"hello": 1}"#).unwrap();
    std::fs::write(
        dir.path().join("burst_results_64.json"),
        r#"{"statistics": {}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("memory_report.json"),
        synthetic::memory_report().to_string(),
    )
    .unwrap();

    let report = sebs_report::read::load(dir.path()).unwrap();
    insta::assert_yaml_snapshot!(view(&report));
}

/// A real run: `experiment perf-cost` of 010.sleep over 128 and 256 MB, all four types.
fn real_perf_cost_run() {
    let report = sebs_report::read::load(&crate::data("010.sleep")).unwrap();
    assert_eq!(report.configurations.len(), 8);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    insta::assert_yaml_snapshot!(view(&report));
}

/// `report DIR` finds results in DIR or DIR/perf-cost, and says what it looked for when
/// there are none.
fn where_results_are_found() {
    let data = crate::data("010.sleep");
    assert_eq!(
        sebs_report::read::results_dir(&data).unwrap(),
        data.join("perf-cost")
    );
    let empty = tempfile::tempdir().unwrap();
    let err = sebs_report::read::load(empty.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no perf-cost results"), "{err}");
    assert!(err.contains(&empty.path().display().to_string()), "{err}");
    std::fs::write(empty.path().join("cold_results.json"), "[]").unwrap();
    let err = sebs_report::read::load(empty.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("cold_results.json: left out"), "{err}");
    let missing = empty.path().join("nope");
    let err = sebs_report::write_report(&missing).unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
}

/// Writing: the page, and each plot as its own SVG file beside the results.
fn writes_the_page_and_every_plot() {
    let dir = crate::copy_of("010.sleep");
    let written = sebs_report::write_report(dir.path()).unwrap();
    let names: Vec<String> = written
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["client_time.svg", "time_breakdown.svg"]);
    assert_eq!(written.html, dir.path().join("perf-cost/report.html"));
    for path in written.plots.iter().chain([&written.html]) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains("http://") || text.contains("http://www.w3.org/2000/svg"));
        assert!(!text.contains("https://"), "{} links out", path.display());
    }
}

/// `stop --memory-report /tmp/profile.json` names its report anything: a report found by its
/// name alone is not there, and one named explicitly is read and drawn beside it.
fn a_memory_report_of_any_name_when_named() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    std::fs::write(&profile, synthetic::memory_report().to_string()).unwrap();
    let err = sebs_report::write_report(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no memory report"), "{err}");
    let written = sebs_report::write_report_with(dir.path(), &[profile.clone()]).unwrap();
    assert_eq!(written.html, dir.path().join("report.html"));
    assert!(written.notes.is_empty(), "{:?}", written.notes);
    assert!(!written.plots.is_empty());
    let report = sebs_report::read::load_with(dir.path(), &[profile.clone()]).unwrap();
    assert_eq!(report.memory.len(), 1);
    assert_eq!(report.memory[0].file, "profile.json");
    // Named and also found by its name: read once.
    let named = dir.path().join("memory_report.json");
    std::fs::rename(&profile, &named).unwrap();
    let relative = dir.path().join(".").join("memory_report.json");
    let report = sebs_report::read::load_with(dir.path(), &[relative]).unwrap();
    assert_eq!(report.memory.len(), 1);
}

//! Reading a results directory into the [`Report`] model: perf-cost's
//! `<type>_results[_<memory>].json` files and `memory_report.json`-like files.
//!
//! Reading is tolerant, as results outlive the code that wrote them: SeBS's own files
//! (without our `sebs_local` section), files from before limits were recorded, and
//! settings this version does not know are all read; a file that cannot be read at all
//! is left out with a note in the report, never fatal while something else is readable.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::{
    type_rank, Breakdown, Configuration, Invocation, Limits, MemoryFile, MemorySeries, Report,
    Stats,
};

/// The subdirectory `experiment perf-cost --output-dir DIR` writes into.
pub const PERF_COST_DIR: &str = "perf-cost";

/// A results directory that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("list results directory {path}")]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "find results in {path}: no perf-cost results (<type>_results[_<memory>].json) \
         and no memory report (*report.json) there or in its perf-cost/ directory{notes}"
    )]
    NoResults { path: PathBuf, notes: String },
}

/// What kind of results file a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `<type>_results[_<memory>].json`, with the memory size of its name.
    PerfCost { memory_mb: Option<u64> },
    /// A memory report: `memory_report.json` or `<name>_report.json`.
    Memory,
}

/// The kind of a results file, from its name alone.
pub fn file_kind(name: &str) -> Option<FileKind> {
    let stem = name.strip_suffix(".json")?;
    if stem == "memory_report" || stem.ends_with("_report") {
        return Some(FileKind::Memory);
    }
    let (run_type, rest) = stem.split_once("_results")?;
    if run_type.is_empty() || !run_type.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
        return None;
    }
    match rest {
        "" => Some(FileKind::PerfCost { memory_mb: None }),
        _ => {
            let memory = rest.strip_prefix('_')?.parse().ok()?;
            Some(FileKind::PerfCost {
                memory_mb: Some(memory),
            })
        }
    }
}

/// The directory whose results a report of `dir` shows: `dir` itself when it holds
/// results, else its `perf-cost/` directory when that does (as `--output-dir` names it).
pub fn results_dir(dir: &Path) -> Result<PathBuf, ReadError> {
    if !results_files(dir)?.is_empty() {
        return Ok(dir.to_path_buf());
    }
    let sub = dir.join(PERF_COST_DIR);
    if sub.is_dir() && !results_files(&sub)?.is_empty() {
        return Ok(sub);
    }
    Err(ReadError::NoResults {
        path: dir.to_path_buf(),
        notes: String::new(),
    })
}

/// The results files in `dir`, sorted by name.
fn results_files(dir: &Path) -> Result<Vec<(PathBuf, FileKind)>, ReadError> {
    let list_err = |source| ReadError::List {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let path = entry.map_err(list_err)?.path();
        let Some(kind) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(file_kind)
        else {
            continue;
        };
        if path.is_file() {
            files.push((path, kind));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Reads every results file of `dir` (see [`results_dir`] for which directory that is).
pub fn load(dir: &Path) -> Result<Report, ReadError> {
    load_with(dir, &[])
}

/// Reads the results files of `dir` as [`load`] does, and each of `memory_reports` as a
/// memory report whatever its name: `stop --memory-report FILE` may name it anything.
/// With such files, `dir` itself is the results directory when it holds nothing else.
pub fn load_with(dir: &Path, memory_reports: &[PathBuf]) -> Result<Report, ReadError> {
    let dir = match results_dir(dir) {
        Err(ReadError::NoResults { .. }) if !memory_reports.is_empty() => dir.to_path_buf(),
        other => other?,
    };
    let mut files = results_files(&dir)?;
    for path in memory_reports {
        let same = |p: &PathBuf| match (p.canonicalize(), path.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => p == path,
        };
        if !files.iter().any(|(p, _)| same(p)) {
            files.push((path.clone(), FileKind::Memory));
        }
    }
    let mut inputs = Vec::new();
    for (path, kind) in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ReadError::File {
            path: path.clone(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        inputs.push((name, kind, text));
    }
    let report = from_texts(&inputs);
    if report.configurations.is_empty() && report.memory.is_empty() {
        let notes = report
            .notes
            .iter()
            .map(|n| format!("\n  {n}"))
            .collect::<String>();
        return Err(ReadError::NoResults { path: dir, notes });
    }
    Ok(report)
}

/// The report of files given as (name, kind, text): pure, for tests and for [`load`].
pub fn from_texts(files: &[(String, FileKind, String)]) -> Report {
    let mut report = Report {
        title: String::new(),
        configurations: Vec::new(),
        memory: Vec::new(),
        notes: Vec::new(),
    };
    for (name, kind, text) in files {
        let doc: Value = match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(e) => {
                report
                    .notes
                    .push(format!("{name}: left out, not JSON: {e}"));
                continue;
            }
        };
        let read = match kind {
            FileKind::PerfCost { memory_mb } => {
                configuration(name, *memory_mb, &doc).map(|c| report.configurations.push(c))
            }
            FileKind::Memory => memory_file(name, &doc).map(|m| report.memory.push(m)),
        };
        if let Err(why) = read {
            report.notes.push(format!("{name}: left out: {why}"));
        }
    }
    report.configurations.sort_by(|a, b| {
        (
            a.memory_mb.or(a.limits.memory_mb),
            type_rank(&a.run_type),
            &a.run_type,
        )
            .cmp(&(
                b.memory_mb.or(b.limits.memory_mb),
                type_rank(&b.run_type),
                &b.run_type,
            ))
    });
    let mut benchmarks: Vec<String> = report
        .configurations
        .iter()
        .map(|c| {
            c.benchmark
                .clone()
                .unwrap_or_else(|| c.function_name.clone())
        })
        .collect();
    benchmarks.sort();
    benchmarks.dedup();
    report.title = match (benchmarks.is_empty(), report.memory.is_empty()) {
        (false, _) => benchmarks.join(", "),
        (true, false) => "memory measurement".into(),
        (true, true) => "no results".into(),
    };
    report
}

/// One perf-cost results file, as SeBS writes it (with our `sebs_local` section or not).
pub fn configuration(
    name: &str,
    memory_mb: Option<u64>,
    doc: &Value,
) -> Result<Configuration, String> {
    let run_type = name
        .split_once("_results")
        .map_or("unknown", |(t, _)| t)
        .to_string();
    let functions = doc
        .get("_invocations")
        .and_then(Value::as_object)
        .ok_or("it has no `_invocations` object: not a perf-cost results file")?;
    let mut function_name = String::new();
    let mut invocations = Vec::new();
    for (function, calls) in functions {
        function_name.clone_from(function);
        for call in calls.as_object().into_iter().flat_map(|m| m.values()) {
            if let Some(i) = invocation(call) {
                invocations.push(i);
            }
        }
    }
    let stats = doc.get("statistics");
    let stat = |key: &str| stats.and_then(|s| s.get(key));
    let failures = match stat("failures").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .map(|f| match f {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        None => Vec::new(),
    };
    let count = |key: &str, list: &str| {
        stat(key)
            .and_then(Value::as_u64)
            .or_else(|| stat(list).and_then(Value::as_array).map(|a| a.len() as u64))
            .unwrap_or(0) as usize
    };
    let ours = doc.get("sebs_local");
    let client_ms: Vec<f64> = invocations
        .iter()
        .map(|i: &Invocation| i.client_ms)
        .collect();
    Ok(Configuration {
        file: name.to_string(),
        run_type,
        memory_mb,
        // SeBS's experiment config holds the block under `experiments`; files of ours before
        // it did held the perf-cost block alone.
        benchmark: [
            "/config/experiments/experiments/perf-cost/benchmark",
            "/config/experiments/perf-cost/benchmark",
            "/config/experiments/benchmark",
        ]
        .iter()
        .find_map(|p| doc.pointer(p).and_then(Value::as_str))
        .map(str::to_string),
        function_name,
        failures,
        incorrect: count("incorrect_count", "incorrect"),
        cold_count: count("cold_count", "cold_count"),
        limits: limits(ours, memory_mb),
        stopped_early: ours
            .and_then(|o| o.get("stopped_early"))
            .and_then(Value::as_str)
            .map(str::to_string),
        begin_time: doc.get("begin_time").and_then(Value::as_f64),
        end_time: doc.get("end_time").and_then(Value::as_f64),
        stats: Stats::of(&client_ms),
        breakdown: Breakdown::of(&invocations),
        invocations,
    })
}

/// One invocation of `_invocations`; `None` when it has no client time.
fn invocation(call: &Value) -> Option<Invocation> {
    let times = call.get("times")?;
    let us = |key: &str| times.get(key).and_then(Value::as_f64);
    let client = us("client")?;
    Some(Invocation {
        client_ms: client / 1000.0,
        benchmark_ms: us("benchmark").unwrap_or(0.0) / 1000.0,
        initialization_ms: us("initialization").unwrap_or(0.0) / 1000.0,
        cold: call
            .pointer("/stats/cold_start")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The limits from `sebs_local.function` and any sandbox settings from
/// `sebs_local.sandbox`; keys this version does not know are shown as they are.
fn limits(ours: Option<&Value>, memory_mb: Option<u64>) -> Limits {
    let mut limits = Limits {
        memory_mb,
        ..Limits::default()
    };
    let function = ours
        .and_then(|o| o.get("function"))
        .and_then(Value::as_object);
    for (key, value) in function.into_iter().flatten() {
        match key.as_str() {
            "memory_mb" => limits.memory_mb = value.as_u64().or(memory_mb),
            "timeout_s" => limits.timeout_s = value.as_u64(),
            "cpus" => {
                limits.cpus_known = true;
                limits.cpus = value.as_f64();
            }
            // Shown with the function's name and language elsewhere.
            "language" | "language_version" => {}
            _ => limits.other.push((key.clone(), show(value))),
        }
    }
    let sandbox = ours.and_then(|o| o.get("sandbox"));
    match sandbox {
        Some(Value::Object(map)) => {
            for (key, value) in map {
                limits.other.push((key.clone(), show(value)));
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => limits.other.push(("sandbox".into(), show(other))),
    }
    limits
}

/// A setting's value as a person reads it.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        other => other.to_string(),
    }
}

/// One memory report, as `stop` writes it ([`sebs_memory::MemoryReport`]).
pub fn memory_file(name: &str, doc: &Value) -> Result<MemoryFile, String> {
    let report: sebs_memory::MemoryReport = serde_json::from_value(doc.clone())
        .map_err(|e| format!("not a memory report as `stop` writes it: {e}"))?;
    let containers = report
        .containers
        .iter()
        .map(|c| {
            let started_at = c.started_at.parse::<f64>().ok();
            let invocations = c
                .invocations
                .iter()
                .map(|i| (i.begin_us as f64 / 1e6, i.end_us as f64 / 1e6))
                .collect();
            MemorySeries {
                container: c.container.clone(),
                source: enum_name(&c.source),
                interval_ms: c.interval_us as f64 / 1000.0,
                started_at,
                end: enum_name(&c.end),
                error: c.error.clone(),
                precision_errors: c.precision_errors,
                points: c
                    .offsets_us
                    .iter()
                    .zip(&c.samples_bytes)
                    .map(|(&t, &b)| (t as f64 / 1e6, b as f64 / 1e6))
                    .collect(),
                kernel_peak_mb: c.kernel_peak_bytes.map(|b| b as f64 / 1e6),
                invocations,
            }
        })
        .collect();
    Ok(MemoryFile {
        file: name.to_string(),
        precision_errors: report.precision_errors,
        containers,
    })
}

/// The name serde gives an enum value (`cgroup-v1`, `container_gone`).
fn enum_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds() {
        let check =
            |name: &str, expect: Option<FileKind>| assert_eq!(file_kind(name), expect, "{name}");
        check(
            "cold_results_128.json",
            Some(FileKind::PerfCost {
                memory_mb: Some(128),
            }),
        );
        check(
            "warm_results.json",
            Some(FileKind::PerfCost { memory_mb: None }),
        );
        check("memory_report.json", Some(FileKind::Memory));
        check("run1_report.json", Some(FileKind::Memory));
        check("memory_stats.json", None);
        check("result.csv", None);
        check("out.json", None);
        check("cold_results_x.json", None);
        check("_results.json", None);
    }
}

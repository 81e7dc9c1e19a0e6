//! Results directories made for a test, written by perf-cost's own writer
//! (`sebs_experiments::results`), so that the reader is checked against the real format.

use std::path::Path;
use std::time::Duration;

use sebs_experiments::perf_cost::ConfigurationResult;
use sebs_experiments::results;
use sebs_experiments::RunType;
use sebs_platform::FunctionConfig;
use sebs_trigger::{
    ExecutionBilling, ExecutionResult, ExecutionStats, ExecutionTimes, ProviderTimes,
};
use serde_json::{json, Value};

/// A deterministic spread in [-0.5, 0.5).
fn spread(k: usize) -> f64 {
    ((k as f64 + 1.0) * 0.754_877_666_2).fract() - 0.5
}

fn invocation(
    k: usize,
    client_ms: f64,
    benchmark_ms: f64,
    init_ms: f64,
    cold: bool,
) -> ExecutionResult {
    let us = |ms: f64| (ms * 1000.0).round() as i64;
    ExecutionResult {
        output: json!({"is_cold": cold, "result": {"output": {"result": 1}}}),
        request_id: format!("request-{k}"),
        times: ExecutionTimes {
            client: us(client_ms),
            client_begin: "2026-11-29 09:00:00.000000".into(),
            client_end: "2026-11-29 09:00:00.100000".into(),
            benchmark: us(benchmark_ms),
            initialization: us(init_ms),
            http_startup: 0.0002,
            http_first_byte_return: client_ms / 1000.0,
        },
        provider_times: ProviderTimes::default(),
        stats: ExecutionStats {
            memory_used: Some(12.5),
            cold_start: cold,
            failure: false,
        },
        billing: ExecutionBilling::default(),
    }
}

/// A configuration of `n` invocations around `client_ms` (±`spread_pct` %), of which the
/// handler takes `benchmark_ms` and, for cold types, the import `init_ms`.
pub fn configuration(
    run_type: RunType,
    memory_mb: Option<u64>,
    n: usize,
    client_ms: f64,
    spread_pct: f64,
    benchmark_ms: f64,
    init_ms: f64,
) -> ConfigurationResult {
    let cold = matches!(run_type, RunType::Cold | RunType::Burst);
    let memory = memory_mb.unwrap_or(128);
    ConfigurationResult {
        run_type,
        memory_mb,
        function_memory_mb: memory,
        function: Some(FunctionConfig {
            language: sebs_wire::Language::Python,
            language_version: "3.11".into(),
            memory_mb: memory,
            timeout_s: 30,
            cpus: None,
            workers: 1,
            sandbox: Default::default(),
            env: Default::default(),
        }),
        function_name: format!("010.sleep-python-{memory}"),
        valid: (0..n)
            .map(|k| {
                let client = client_ms * (1.0 + spread_pct / 100.0 * spread(k));
                invocation(
                    k,
                    client,
                    benchmark_ms,
                    if cold { init_ms } else { 0.0 },
                    cold,
                )
            })
            .collect(),
        incorrect: Vec::new(),
        failures: Vec::new(),
        engines: Default::default(),
        engine_failures: Default::default(),
        cold_count: if cold { n } else { 0 },
        begin_time: 1_795_944_000.0,
        end_time: 1_795_944_083.0,
        batch_times: vec![Duration::from_millis(400)],
        stopped_early: None,
        sandbox: None,
    }
}

/// Writes each configuration's results file into `dir`, as perf-cost does.
pub fn write(dir: &Path, configurations: &[ConfigurationResult]) {
    let raw = json!({"benchmark": "010.sleep", "experiments": ["cold", "warm", "burst", "sequential"],
        "input-size": "test", "repetitions": 25, "concurrent-invocations": 5});
    let settings = sebs_experiments::PerfCostSettings::parse(
        &raw.to_string(),
        false,
        Path::new("perf-cost.json"),
    )
    .unwrap();
    let config = settings.sebs_experiment_config("x64");
    for c in configurations {
        results::write_json(dir, c, &config).unwrap();
    }
}

/// Changes a written results file: `edit` gets its JSON.
pub fn edit(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(path, serde_json::to_string(&doc).unwrap()).unwrap();
}

/// A cold start of about 200 ms next to warm calls of about 0.2 ms, at two memory sizes.
pub fn decades() -> Vec<ConfigurationResult> {
    let mut out = Vec::new();
    for (m, slower) in [(128, 1.2), (256, 1.0)] {
        out.push(configuration(
            RunType::Cold,
            Some(m),
            25,
            200.0 * slower,
            20.0,
            60.0,
            30.0 * slower,
        ));
        out.push(configuration(
            RunType::Warm,
            Some(m),
            25,
            0.2 * slower,
            10.0,
            0.08,
            0.0,
        ));
        out.push(configuration(
            RunType::Burst,
            Some(m),
            25,
            240.0 * slower,
            40.0,
            60.0,
            35.0 * slower,
        ));
        out.push(configuration(
            RunType::Sequential,
            Some(m),
            25,
            0.25 * slower,
            30.0,
            0.08,
            0.0,
        ));
    }
    out
}

/// A memory report (as `stop` writes it) of two containers, one of which served two
/// invocations.
pub fn memory_report() -> Value {
    let samples = |base: u64, n: u64| -> (Vec<u64>, Vec<u64>) {
        let offsets = (0..n).map(|i| i * 10_000).collect();
        let bytes = (0..n)
            .map(|i| {
                base + if (100..160).contains(&i) {
                    40_000_000
                } else {
                    0
                } + i * 1000
            })
            .collect();
        (offsets, bytes)
    };
    let (o1, b1) = samples(6_000_000, 300);
    let (o2, b2) = samples(8_000_000, 200);
    json!({
        "format": 1,
        "precision_errors": 4,
        "containers": [
            {"container": "fd77cb419f7c74918a894678ae381d144c8b276340c6a56595718baac9597950",
             "source": "cgroup-v1", "interval_us": 10000, "started_at": "1795944300.000000",
             "samples_asked": 302, "samples_taken": 300, "precision_errors": 3, "end": "stopped",
             "kernel_peak_bytes": 46_500_000, "offsets_us": o1, "samples_bytes": b1,
             "invocations": [
                {"begin_us": 1_000_000, "end_us": 1_600_000, "is_cold": true, "ok": true},
                {"begin_us": 2_200_000, "end_us": 2_300_000, "is_cold": false, "ok": false}
             ]},
            {"container": "371735025f1be84a0c55057d149e61050183f6dc6411b8273bda0001e4e748c7",
             "source": "engine-stats", "interval_us": 10000, "started_at": "1795944300.500000",
             "samples_asked": 201, "samples_taken": 200, "precision_errors": 1, "end": "container_gone",
             "offsets_us": o2, "samples_bytes": b2},
            {"container": "0123456789ab", "source": "cgroup-v2", "interval_us": 10000,
             "started_at": "1795944300.000000", "samples_asked": 0, "samples_taken": 0,
             "precision_errors": 0, "end": "failed", "error": "read /sys/fs/cgroup/x/memory.current: gone",
             "offsets_us": [], "samples_bytes": []}
        ]
    })
}

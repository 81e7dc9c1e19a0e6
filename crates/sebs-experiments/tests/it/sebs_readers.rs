//! SeBS's readers of a perf-cost results directory, written down as rules (CI has no SeBS):
//! what `sebs experiment process` and `sebs experiment statistics` read from each
//! `<type>_results[_<memory>].json`, field by field, and the `result.csv` rows `process` writes
//! from them. Checked on files written without containers here, and on a real run's files in
//! `all_four_modes_on_real_containers`.
//!
//! The rules, as SeBS's code has them (serverless-benchmarks, 2026):
//! - `process` globs `perf-cost/*.json`; a path containing `processed` is taken for its own
//!   output. A file's name, without `.json`, split at `_`: the first part is the experiment
//!   type; a third part, when there is one, is the memory size and must be an integer (else
//!   `ValueError`), otherwise the memory is 0. It reads `statistics`, and writes
//!   `<name>-processed.json`.
//! - `ExperimentResult.deserialize`: `_invocations` maps function names to maps of invocations,
//!   each read by `ExecutionResult.deserialize` (`times`, `billing`, `provider_times`, `stats`
//!   objects, `request_id`, `output`); `config.experiments` by `ExperimentConfig.deserialize`;
//!   `config.deployment` by the deployment's config (`process` only); `metrics` if present;
//!   `result_bucket`, `begin_time`, `end_time` (numbers: `process` adds seconds to them).
//! - `ExperimentConfig.deserialize`: `update_code`, `update_storage`, `download_results`,
//!   `architecture` must be there; `system_variant`, when there, one of `package`,
//!   `container`, `function-gen1`, `function-gen2`; `runtime.language` one of `python`,
//!   `nodejs`, `cpp`, `java`, `runtime.version` there, `runtime.language-variant` (default
//!   `default`) a variant of that language; `flags` optional; the experiments' settings are
//!   read from `perf-cost`, `network-ping-pong`, `invocation-overhead`, `eviction-model` at
//!   its top level.
//! - The deployment config: `name` picks the platform; for `local`, storage is read from
//!   `storage.object` (`type`, and the block of that type) when there, `allocated_ports`
//!   optional.
//! - Each invocation's `output.result` must exist: `process` drops `output` (or `result`) from
//!   it when it is an object, `statistics` looks for `measurement` in it.
//! - Times are read by updating an object's attributes: `times.http_startup` must be there;
//!   `times.benchmark`, `times.client`, `provider_times.execution` and `initialization`
//!   default to 0, `stats.cold_start` to False, `stats.memory_used` to None.
//! - A row of result.csv: memory, type, `stats.cold_start`, `times.benchmark`,
//!   `times.http_startup`, `times.client`, `provider_times.execution`, `stats.memory_used`, as
//!   Python's csv writer prints them (`True`, `repr` of floats, an empty cell for None), each
//!   line ended by CRLF, after the header
//!   `memory,type,is_cold,exec_time,connection_time,client_time,provider_time,mem_used`; the
//!   invocations of a file in their order in the file (SeBS's files have sorted keys).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sebs_experiments::results::{self, python_float};
use sebs_experiments::{ConfigurationResult, RunType};
use sebs_trigger::{
    ExecutionBilling, ExecutionResult, ExecutionStats, ExecutionTimes, ProviderTimes,
};
use serde_json::{json, Value};

/// The tests of this module: they need nothing but files.
pub fn trials() -> Vec<sebs_testkit::Trial> {
    use sebs_testkit::trial;
    vec![
        trial!(result_files_read_as_sebs_reads_them),
        trial!(the_rules_catch_what_sebs_would_fail_on),
    ]
}

pub const CSV_HEADER: &str =
    "memory,type,is_cold,exec_time,connection_time,client_time,provider_time,mem_used";

/// `doc[key]`, or SeBS's `KeyError` as a message naming the field.
fn key<'a>(doc: &'a Value, path: &str, name: &str) -> Result<&'a Value, String> {
    doc.get(name)
        .ok_or_else(|| format!("KeyError: {path}.{name} is missing"))
}

fn object<'a>(doc: &'a Value, path: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    doc.as_object()
        .ok_or_else(|| format!("{path} is not an object: {doc}"))
}

/// `ExperimentConfig.deserialize`.
fn read_experiment_config(config: &Value) -> Result<(), String> {
    let at = "config.experiments";
    object(config, at)?;
    for name in [
        "update_code",
        "update_storage",
        "download_results",
        "architecture",
    ] {
        key(config, at, name)?;
    }
    if let Some(variant) = config.get("system_variant") {
        let known = ["package", "container", "function-gen1", "function-gen2"];
        if !known.iter().any(|k| variant == k) {
            return Err(format!("ValueError: invalid system variant {variant}"));
        }
    }
    let runtime = key(config, at, "runtime")?;
    let language = key(runtime, "config.experiments.runtime", "language")?;
    key(runtime, "config.experiments.runtime", "version")?;
    let variants: &[&str] = match language.as_str() {
        Some("python") => &["default", "pypy"],
        Some("nodejs") => &["default", "bun", "llrt"],
        Some("cpp" | "java") => &["default"],
        _ => return Err(format!("unknown language type {language}")),
    };
    let variant = runtime
        .get("language-variant")
        .map_or(Some("default"), Value::as_str);
    if !variant.is_some_and(|v| variants.contains(&v)) {
        return Err(format!(
            "ValueError: unknown variant {variant:?} for {language}"
        ));
    }
    Ok(())
}

/// The deployment config as `process` reads it (with its cache), for the local platform.
fn read_deployment_config(config: &Value) -> Result<(), String> {
    let at = "config.deployment";
    let name = key(config, at, "name")?;
    if name != "local" {
        return Err(format!("{at}.name is {name}, not local"));
    }
    let local = config.get("local").unwrap_or(config);
    if let Some(object) = local.get("storage").and_then(|s| s.get("object")) {
        let kind = key(object, "storage.object", "type")?;
        key(object, "storage.object", kind.as_str().unwrap_or_default())?;
    }
    if let Some(ports) = local.get("allocated_ports") {
        ports
            .as_array()
            .ok_or(format!("{at}.allocated_ports is not a list"))?;
    }
    Ok(())
}

/// Python's `str` of a JSON value that SeBS read.
fn python_str(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) if n.is_f64() => python_float(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What SeBS gets from one results file: its rows of result.csv (without line ends).
/// `name` is the file's name; `process` says whether the deployment config is read too.
pub fn sebs_reads(name: &str, doc: &Value, process: bool) -> Result<Vec<String>, String> {
    let stem = name
        .strip_suffix(".json")
        .ok_or(format!("{name} is not .json"))?;
    if stem.contains("processed") {
        return Err(format!("{name} would be taken for SeBS's processed output"));
    }
    let parts: Vec<&str> = stem.split('_').collect();
    let memory: i64 = match parts.get(2) {
        Some(m) => m
            .parse()
            .map_err(|_| format!("ValueError: memory {m:?} in {name}"))?,
        None => 0,
    };
    let exp_type = parts[0];
    object(doc, name)?;
    if process {
        key(doc, "", "statistics")?;
    }
    let config = key(doc, "", "config")?;
    read_experiment_config(key(config, "config", "experiments")?)?;
    if process {
        read_deployment_config(key(config, "config", "deployment")?)?;
    }
    key(doc, "", "result_bucket")?;
    for time in ["begin_time", "end_time"] {
        if !key(doc, "", time)?.is_number() {
            return Err(format!("{time} is not a number"));
        }
    }
    let mut rows = Vec::new();
    for (function, invocations) in object(key(doc, "", "_invocations")?, "_invocations")? {
        for (id, invocation) in object(invocations, &format!("_invocations.{function}"))? {
            let at = format!("_invocations.{function}.{id}");
            for part in ["times", "billing", "provider_times", "stats"] {
                object(key(invocation, &at, part)?, &format!("{at}.{part}"))?;
            }
            key(invocation, &at, "request_id")?;
            let result = key(key(invocation, &at, "output")?, &at, "result")?;
            if !(result.is_object() || result.is_array() || result.is_string()) {
                return Err(format!(
                    "{at}.output.result cannot hold `measurement`: {result}"
                ));
            }
            let times = &invocation["times"];
            let http_startup = key(times, &format!("{at}.times"), "http_startup")?;
            let or_zero = |v: &Value| if v.is_null() { json!(0) } else { v.clone() };
            let cold = invocation["stats"]
                .get("cold_start")
                .cloned()
                .unwrap_or(json!(false));
            let memory_used = invocation["stats"]
                .get("memory_used")
                .cloned()
                .unwrap_or(Value::Null);
            rows.push(
                [
                    json!(memory),
                    json!(exp_type),
                    cold,
                    or_zero(&times["benchmark"]),
                    http_startup.clone(),
                    or_zero(&times["client"]),
                    or_zero(&invocation["provider_times"]["execution"]),
                    memory_used,
                ]
                .iter()
                .map(python_str)
                .collect::<Vec<_>>()
                .join(","),
            );
        }
    }
    Ok(rows)
}

/// Reads every results file as `process` and `statistics` do and checks that result.csv is
/// what `process` writes from them, the files taken in the order given.
pub fn check_results_dir(files: &[PathBuf]) {
    let mut expected = format!("{CSV_HEADER}\r\n");
    let mut csv = None;
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap();
        if name == "result.csv" {
            csv = Some(path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let rows = sebs_reads(name, &doc, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        sebs_reads(name, &doc, false).unwrap_or_else(|e| panic!("statistics, {name}: {e}"));
        assert!(!rows.is_empty(), "{name} has no invocations");
        for row in rows {
            expected.push_str(&row);
            expected.push_str("\r\n");
        }
    }
    let csv = csv.expect("no result.csv");
    assert_eq!(std::fs::read_to_string(csv).unwrap(), expected);
}

fn sample(id: &str, cold: bool, client: i64, http_startup: f64) -> ExecutionResult {
    ExecutionResult {
        output: json!({"begin": "1.0", "end": "1.5", "request_id": id, "is_cold": cold,
            "result": {"output": {"slept": 0.1}}}),
        request_id: id.into(),
        times: ExecutionTimes {
            client,
            client_begin: "2026-01-01 00:00:00.000000".into(),
            client_end: "2026-01-01 00:00:00.100000".into(),
            benchmark: 500_000,
            initialization: 0,
            http_startup,
            http_first_byte_return: 0.1,
        },
        provider_times: ProviderTimes::default(),
        stats: ExecutionStats {
            memory_used: None,
            cold_start: cold,
            failure: false,
        },
        billing: ExecutionBilling::default(),
    }
}

fn configuration(run_type: RunType, memory_mb: Option<u64>) -> ConfigurationResult {
    let cold = run_type == RunType::Cold;
    ConfigurationResult {
        run_type,
        memory_mb,
        function_memory_mb: memory_mb.unwrap_or(128),
        function: None,
        sandbox: None,
        function_name: format!("901.nap-python-{}", memory_mb.unwrap_or(128)),
        // Arrival order differs from the order of the ids.
        valid: vec![
            sample("c-3", cold, 1_700, 2.1e-5),
            sample("a-1", cold, 1_500, 0.00021),
            sample("b-2", cold, 1_600, 0.0),
        ],
        incorrect: vec![sample("d-4", !cold, 900, 0.0003)],
        failures: vec!["failed to reach the function".into()],
        engines: Default::default(),
        engine_failures: Default::default(),
        cold_count: if cold { 3 } else { 0 },
        begin_time: 1_700_000_000.25,
        end_time: 1_700_000_010.5,
        batch_times: vec![Duration::from_millis(5)],
        stopped_early: None,
    }
}

/// Writes the configurations as `run_perf_cost` does and returns every file, in its order.
fn write_all(dir: &Path, config: &Value, results: &[ConfigurationResult]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = results
        .iter()
        .map(|r| results::write_json(dir, r, config).unwrap())
        .collect();
    files.push(results::write_csv(dir, results).unwrap());
    files
}

fn result_files_read_as_sebs_reads_them() {
    let settings = crate::inline_settings(
        r#"{"experiments": {"update_code": false, "update_storage": false, "download_results": false,
             "architecture": "x64", "runtime": {"language": "python", "version": "3.11"},
             "perf-cost": {"benchmark": "901.nap", "experiments": ["cold", "warm"], "input-size": "test",
               "repetitions": 3, "concurrent-invocations": 3, "memory-sizes": [256, 512]}}}"#,
    );
    let config = settings.sebs_experiment_config(sebs_platform::host_architecture());

    // With memory sizes: four files named by size, rows saying so.
    let dir = tempfile::tempdir().unwrap();
    let with_sizes = [
        configuration(RunType::Cold, Some(256)),
        configuration(RunType::Warm, Some(256)),
        configuration(RunType::Cold, Some(512)),
        configuration(RunType::Warm, Some(512)),
    ];
    let files = write_all(dir.path(), &config, &with_sizes);
    check_results_dir(&files);
    let csv = std::fs::read_to_string(dir.path().join("result.csv")).unwrap();
    let rows: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(rows[1], "256,cold,True,500000,0.00021,1500,0,");
    assert_eq!(rows[3], "256,cold,True,500000,2.1e-05,1700,0,");
    assert_eq!(rows[7], "512,cold,True,500000,0.00021,1500,0,");
    assert_eq!(rows.len(), 1 + 12 + 1, "{csv}");

    // Without: no size in the names, and memory 0 although the function had 128 MB.
    let dir = tempfile::tempdir().unwrap();
    let files = write_all(
        dir.path(),
        &config,
        &[
            configuration(RunType::Burst, None),
            configuration(RunType::Sequential, None),
        ],
    );
    let names: Vec<&str> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "burst_results.json",
            "sequential_results.json",
            "result.csv"
        ]
    );
    check_results_dir(&files);
    let csv = std::fs::read_to_string(dir.path().join("result.csv")).unwrap();
    assert!(
        csv.split("\r\n")
            .skip(1)
            .filter(|r| !r.is_empty())
            .all(|r| r.starts_with("0,")),
        "{csv}"
    );

    // The document's own config, pinned: what SeBS's `ExperimentConfig.serialize()` writes.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let experiments = &doc["config"]["experiments"];
    let mut keys: Vec<&str> = experiments
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "architecture",
            "download_results",
            "experiments",
            "flags",
            "perf-cost",
            "runtime",
            "system_variant",
            "update_code",
            "update_storage"
        ]
    );
    assert_eq!(
        experiments["experiments"]["perf-cost"],
        experiments["perf-cost"]
    );
    assert_eq!(
        doc["config"]["deployment"],
        json!({"name": "local", "region": "", "resources": {"allocated_ports": []}})
    );
}

fn the_rules_catch_what_sebs_would_fail_on() {
    let settings = crate::inline_settings(
        r#"{"benchmark": "901.nap", "experiments": ["cold"], "input-size": "test",
            "repetitions": 3, "concurrent-invocations": 3}"#,
    );
    let config = settings.sebs_experiment_config("x64");
    let good = results::document(&configuration(RunType::Cold, None), &config);
    assert!(sebs_reads("cold_results.json", &good, true).is_ok());
    let check = |name: &str, change: &dyn Fn(&mut Value), needle: &str| {
        let mut doc = good.clone();
        change(&mut doc);
        let err = sebs_reads(name, &doc, true).unwrap_err();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    // The issue's KeyError: only the perf-cost block under config.experiments.
    check(
        "cold_results.json",
        &|d| d["config"]["experiments"] = d["config"]["experiments"]["perf-cost"].clone(),
        "update_code",
    );
    check("cold_results_x.json", &|_| {}, "ValueError");
    check(
        "cold_results.json",
        &|d| {
            d.as_object_mut().unwrap().remove("statistics");
        },
        "statistics",
    );
    check(
        "cold_results.json",
        &|d| d["config"]["experiments"]["runtime"]["language-variant"] = json!("graal"),
        "unknown variant",
    );
    check(
        "cold_results.json",
        &|d| {
            for inv in d["_invocations"]["901.nap-python-128"]
                .as_object_mut()
                .unwrap()
                .values_mut()
            {
                inv["times"].as_object_mut().unwrap().remove("http_startup");
            }
        },
        "http_startup",
    );
}

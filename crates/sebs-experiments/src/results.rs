//! perf-cost's result files, in SeBS's shapes: `<type>_results[_<memory>].json` and
//! `result.csv`.
//!
//! The JSON mirrors what SeBS's `Result` serialises to (`config` with SeBS's experiment and
//! deployment configs, `_invocations` keyed by function name and request id, `_metrics`,
//! `result_bucket`, `begin_time`, `end_time`) plus the `statistics` block its perf-cost adds,
//! so that SeBS's `experiment process` and `experiment statistics` read ours; our own
//! `sebs_local` block adds the function's limits, the sandbox it ran in
//! ([`sebs_platform::SandboxRecord`]) and the engine that served each invocation (`engines`,
//! under the keys of `_invocations`; `incorrect_engines`, in the order of `incorrect`;
//! `engine_failures`, the engines placements passed over, each with its first failure). `result.csv` has the rows SeBS's `process` writes from
//! these files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sebs_trigger::ExecutionResult;
use serde::Serialize;
use serde_json::{json, Map, Value};

use sebs_platform::FunctionConfig;

use crate::perf_cost::ConfigurationResult;

/// A results file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("write results file {path}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `<type>_results.json`, or `<type>_results_<memory>.json` when a memory size was set.
pub fn file_name(result: &ConfigurationResult) -> String {
    match result.memory_mb {
        Some(m) => format!("{}_results_{m}.json", result.run_type),
        None => format!("{}_results.json", result.run_type),
    }
}

/// SeBS's deployment config of the local platform, as its `LocalConfig.serialize()` writes
/// it: no region, and no ports allocated by SeBS's own port search (which it runs only off
/// Linux).
pub fn deployment_config() -> Value {
    json!({"name": "local", "region": "", "resources": {"allocated_ports": []}})
}

/// The valid invocations keyed as SeBS's `Result.add_invocation` keys them (the request id, or
/// `failed-<n>` without one), in the order of the file's sorted keys, which is the order
/// SeBS's `process` reads them back in.
fn keyed(result: &ConfigurationResult) -> BTreeMap<String, &ExecutionResult> {
    let mut invocations = BTreeMap::new();
    for r in &result.valid {
        let id = if r.request_id.is_empty() {
            format!("failed-{}", invocations.len())
        } else {
            r.request_id.clone()
        };
        invocations.insert(id, r);
    }
    invocations
}

/// The JSON document SeBS writes for one configuration; `experiment_config` is SeBS's
/// experiment config ([`crate::PerfCostSettings::sebs_experiment_config`]).
pub fn document(result: &ConfigurationResult, experiment_config: &Value) -> Value {
    let keyed = keyed(result);
    // Which engine served each invocation, under the keys of `_invocations` (our block:
    // SeBS's readers take only the fields they know from an invocation, and none from here).
    let engines: Map<String, Value> = keyed
        .iter()
        .filter_map(|(id, r)| {
            Some((
                id.clone(),
                result.engines.get(&r.request_id)?.clone().into(),
            ))
        })
        .collect();
    let incorrect_engines: Vec<Option<&String>> = result
        .incorrect
        .iter()
        .map(|r| result.engines.get(&r.request_id))
        .collect();
    let invocations: Map<String, Value> =
        keyed.into_iter().map(|(id, r)| (id, to_value(r))).collect();
    json!({
        "config": {
            "experiments": experiment_config,
            "deployment": deployment_config(),
        },
        "_invocations": { result.function_name.clone(): invocations },
        "_metrics": {},
        "result_bucket": null,
        "begin_time": result.begin_time,
        "end_time": result.end_time,
        "statistics": {
            // SeBS writes the number of valid samples under this name.
            "samples_generated": result.valid.len(),
            "failures": result.failures,
            "failures_count": result.failures.len(),
            "incorrect": result.incorrect.iter().map(to_value).collect::<Vec<_>>(),
            "incorrect_count": result.incorrect.len(),
            "cold_count": result.cold_count,
        },
        "sebs_local": {
            "sandbox": result.sandbox.as_ref().map(to_value),
            "stopped_early": result.stopped_early,
            "batch_times_us": result.batch_times.iter().map(|d| d.as_micros() as u64).collect::<Vec<_>>(),
            "function": result.function.as_ref().map(function),
            "engines": engines,
            "incorrect_engines": incorrect_engines,
            "engine_failures": result.engine_failures,
        },
    })
}

/// The limits a configuration's function ran with (`cpus` null: unlimited).
fn function(config: &FunctionConfig) -> Value {
    json!({
        "language": config.language.as_str(),
        "language_version": config.language_version,
        "memory_mb": config.memory_mb,
        "timeout_s": config.timeout_s,
        "cpus": config.cpus,
        "workers": config.workers,
    })
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Writes [`document`] into `dir` (created if needed) and returns the file's path.
pub fn write_json(
    dir: &Path,
    result: &ConfigurationResult,
    experiment_config: &Value,
) -> Result<PathBuf, WriteError> {
    let path = dir.join(file_name(result));
    let err = |source| WriteError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let text = serde_json::to_string_pretty(&document(result, experiment_config))
        .map_err(|e| err(e.into()))?;
    std::fs::write(&path, text).map_err(err)?;
    Ok(path)
}

/// Writes `result.csv` as SeBS's `experiment process` writes it from the result files: one
/// row per invocation of each file, in the file's order, files in the order they were written;
/// `memory` is the size in the file's name (0 without one), numbers and booleans as Python
/// prints them (`True`, `2.1e-05`, an empty cell for no memory figure), lines ending in CRLF
/// as Python's csv writer ends them.
pub fn write_csv(dir: &Path, results: &[ConfigurationResult]) -> Result<PathBuf, WriteError> {
    let path = dir.join("result.csv");
    let err = |source| WriteError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut out = Vec::new();
    let _ = write!(
        out,
        "memory,type,is_cold,exec_time,connection_time,client_time,provider_time,mem_used\r\n"
    );
    for result in results {
        for r in keyed(result).values() {
            let _ = write!(
                out,
                "{},{},{},{},{},{},{},{}\r\n",
                result.memory_mb.unwrap_or(0),
                result.run_type,
                if r.stats.cold_start { "True" } else { "False" },
                r.times.benchmark,
                python_float(r.times.http_startup),
                r.times.client,
                r.provider_times.execution,
                r.stats.memory_used.map(python_float).unwrap_or_default(),
            );
        }
    }
    std::fs::write(&path, out).map_err(err)?;
    Ok(path)
}

/// A float as Python's `repr` (and so its csv writer) prints it: the shortest digits that
/// read back the same, fixed-point from 1e-4 up to 1e16 with at least one decimal,
/// scientific with a signed two-digit exponent outside.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest digits, e.g. `2.1e-5`.
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if x == 0.0 || (-4..16).contains(&exponent) {
        let fixed = format!("{x}");
        if fixed.contains('.') {
            fixed
        } else {
            fixed + ".0"
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunType;
    use sebs_trigger::{
        ExecutionBilling, ExecutionResult, ExecutionStats, ExecutionTimes, ProviderTimes,
    };
    use std::time::Duration;

    fn sample(id: &str, cold: bool, client: i64) -> ExecutionResult {
        ExecutionResult {
            output: json!({"is_cold": cold}),
            request_id: id.into(),
            times: ExecutionTimes {
                client,
                client_begin: "b".into(),
                client_end: "e".into(),
                benchmark: 100,
                initialization: 0,
                http_startup: 0.0002,
                http_first_byte_return: 0.001,
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

    fn config_result() -> ConfigurationResult {
        ConfigurationResult {
            run_type: RunType::Cold,
            memory_mb: Some(256),
            function_memory_mb: 256,
            function: Some(FunctionConfig {
                language: sebs_wire::Language::Python,
                language_version: "3.11".into(),
                memory_mb: 256,
                timeout_s: 10,
                cpus: Some(1.5),
                workers: 1,
                sandbox: Default::default(),
                env: Default::default(),
            }),
            function_name: "010.sleep-python-256".into(),
            valid: vec![sample("a", true, 1500), sample("b", true, 1700)],
            incorrect: vec![sample("c", false, 900)],
            failures: vec!["boom".into()],
            engines: Default::default(),
            engine_failures: Default::default(),
            cold_count: 2,
            begin_time: 1.0,
            end_time: 2.0,
            batch_times: vec![Duration::from_millis(3)],
            stopped_early: None,
            sandbox: Some(sebs_platform::SandboxRecord {
                uid: 65534,
                gid: 65534,
                tmp_size_mb: Some(512),
                tmp_on: sebs_platform::TmpOn::Memory,
                pids_limit: None,
                read_only_root: true,
                privileged: false,
                agent_capabilities: vec!["CAP_KILL".into()],
            }),
        }
    }

    #[test]
    fn json_has_sebs_shape() {
        let r = config_result();
        assert_eq!(file_name(&r), "cold_results_256.json");
        let doc = document(&r, &json!({"benchmark": "010.sleep"}));
        let inv = &doc["_invocations"]["010.sleep-python-256"];
        assert_eq!(inv["a"]["times"]["client"], 1500);
        assert_eq!(inv["b"]["stats"]["cold_start"], true);
        let s = &doc["statistics"];
        assert_eq!(s["samples_generated"], 2);
        assert_eq!(s["failures"], json!(["boom"]));
        assert_eq!(s["failures_count"], 1);
        assert_eq!(s["incorrect_count"], 1);
        assert_eq!(s["incorrect"][0]["request_id"], "c");
        assert_eq!(s["cold_count"], 2);
        assert_eq!(doc["config"]["experiments"]["benchmark"], "010.sleep");
        let f = &doc["sebs_local"]["function"];
        assert_eq!(
            (&f["memory_mb"], &f["timeout_s"], &f["cpus"], &f["language"]),
            (&json!(256), &json!(10), &json!(1.5), &json!("python"))
        );
        // The sandbox the figures come from, with null for a limit not set.
        let sandbox = &doc["sebs_local"]["sandbox"];
        assert_eq!(sandbox["uid"], 65534);
        assert_eq!(sandbox["tmp_size_mb"], 512);
        assert_eq!(sandbox["pids_limit"], Value::Null);
    }

    #[test]
    fn csv_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_csv(dir.path(), &[config_result()]).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "memory,type,is_cold,exec_time,connection_time,client_time,provider_time,mem_used"
        );
        assert_eq!(lines[1], "256,cold,True,100,0.0002,1500,0,12.5");
        assert_eq!(lines.len(), 3);
        assert!(text.ends_with("12.5\r\n") && text.matches("\r\n").count() == 3);

        // Without memory sizes SeBS's file names carry none, and its rows say 0; rows follow
        // the file's sorted request ids, not their arrival.
        let mut r = config_result();
        r.memory_mb = None;
        r.function_memory_mb = 128;
        r.valid = vec![sample("z", true, 1), sample("m", true, 2)];
        r.valid[0].stats.memory_used = None;
        r.valid[1].times.http_startup = 2.1e-5;
        let text = std::fs::read_to_string(write_csv(dir.path(), &[r]).unwrap()).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            rows,
            [
                "0,cold,True,100,2.1e-05,2,0,12.5",
                "0,cold,True,100,0.0002,1,0,"
            ]
        );
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        // Pairs checked against Python 3.11's repr.
        for (x, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.0002, "0.0002"),
            (0.0001, "0.0001"),
            (2.1e-05, "2.1e-05"),
            (1e-05, "1e-05"),
            (-3.25e-07, "-3.25e-07"),
            (123456.789, "123456.789"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-300, "1e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
        ] {
            assert_eq!(python_float(x), python, "{x:e}");
        }
    }
}

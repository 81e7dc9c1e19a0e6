//! perf-cost's result files, in SeBS's shapes: `<type>_results[_<memory>].json` and
//! `result.csv`.
//!
//! The JSON mirrors what SeBS's `Result` serialises to (`config`, `_invocations` keyed by
//! function name and request id, `_metrics`, `begin_time`, `end_time`) plus the
//! `statistics` block its perf-cost adds, so SeBS's processing scripts read ours; our own
//! `sebs_local` block adds the function's limits and the sandbox it ran in
//! ([`sebs_platform::SandboxRecord`]).

use std::io::Write;
use std::path::{Path, PathBuf};

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

/// The JSON document SeBS writes for one configuration.
pub fn document(result: &ConfigurationResult, experiment_config: &Value) -> Value {
    let mut invocations = Map::new();
    for (i, r) in result.valid.iter().enumerate() {
        let id = if r.request_id.is_empty() {
            format!("failed-{i}")
        } else {
            r.request_id.clone()
        };
        invocations.insert(id, to_value(r));
    }
    json!({
        "config": {
            "experiments": experiment_config,
            "deployment": {"name": "local"},
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

/// Writes `result.csv` with one row per valid invocation, SeBS's columns and formatting
/// (Python's `True`/`False`, an empty cell for a missing memory figure).
pub fn write_csv(dir: &Path, results: &[ConfigurationResult]) -> Result<PathBuf, WriteError> {
    let path = dir.join("result.csv");
    let err = |source| WriteError {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut out = Vec::new();
    let _ = writeln!(
        out,
        "memory,type,is_cold,exec_time,connection_time,client_time,provider_time,mem_used"
    );
    for result in results {
        for r in &result.valid {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}",
                result.function_memory_mb,
                result.run_type,
                if r.stats.cold_start { "True" } else { "False" },
                r.times.benchmark,
                r.times.http_startup,
                r.times.client,
                r.provider_times.execution,
                r.stats
                    .memory_used
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            );
        }
    }
    std::fs::write(&path, out).map_err(err)?;
    Ok(path)
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
            }),
            function_name: "010.sleep-python-256".into(),
            valid: vec![sample("a", true, 1500), sample("b", true, 1700)],
            incorrect: vec![sample("c", false, 900)],
            failures: vec!["boom".into()],
            cold_count: 2,
            begin_time: 1.0,
            end_time: 2.0,
            batch_times: vec![Duration::from_millis(3)],
            stopped_early: None,
            sandbox: Some(sebs_platform::SandboxRecord {
                uid: 65534,
                gid: 65534,
                tmp_size_mb: Some(512),
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
    }
}

//! The perf-cost experiment's settings, read from SeBS's experiment configuration.
//!
//! Accepted as SeBS writes it (a whole config with `experiments.perf-cost`, the
//! `experiments` block, or the `perf-cost` block alone), in JSON or, by file extension,
//! YAML of the same shape.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sebs_package::Size;
use sebs_platform::{
    FunctionUser, Sandbox, TmpOn, MAX_CONTAINERS, MAX_TMP_SIZE_MB, MIN_PIDS_LIMIT,
};
use sebs_wire::Language;
use serde::Deserialize;

/// One of perf-cost's four modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunType {
    /// A fresh container for every invocation of every batch; warm results are incorrect.
    Cold,
    /// Reused containers; the first batch warms them up, cold results are incorrect.
    Warm,
    /// Batches of concurrent invocations, each batch on fresh containers.
    Burst,
    /// One invocation at a time on one warm container.
    Sequential,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::Cold => "cold",
            RunType::Warm => "warm",
            RunType::Burst => "burst",
            RunType::Sequential => "sequential",
        }
    }
}

impl fmt::Display for RunType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cold" => Ok(RunType::Cold),
            "warm" => Ok(RunType::Warm),
            "burst" => Ok(RunType::Burst),
            "sequential" => Ok(RunType::Sequential),
            other => Err(format!(
                "unknown perf-cost experiment {other:?}: expected cold, warm, burst or sequential"
            )),
        }
    }
}

/// What perf-cost runs.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfCostSettings {
    pub benchmark: String,
    pub experiments: Vec<RunType>,
    pub input_size: Size,
    /// Valid samples wanted per configuration.
    pub repetitions: usize,
    /// Invocations per batch.
    pub concurrent_invocations: usize,
    /// Memory sizes in MB; empty means the benchmark's own.
    pub memory_sizes: Vec<u64>,
    /// A pause between batches; SeBS waits 10 s, we wait only when asked.
    pub pause_between_batches: Duration,
    pub language: Language,
    pub language_version: String,
    /// The functions' sandbox: the default, loosened by `tmp-size`, `pids-limit` and `user`.
    pub sandbox: Sandbox,
    /// The block as it was read, written back into result files as SeBS does.
    pub raw: serde_json::Value,
    /// What SeBS's experiment config holds besides the block, for the result files.
    pub sebs: SebsExperimentConfig,
}

/// SeBS's experiment config (its `ExperimentConfig`) as result files carry it under
/// `config.experiments`, where SeBS's `experiment process` reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct SebsExperimentConfig {
    /// Whether the code package was rebuilt (SeBS's `--update-code`, which overrides the file).
    pub update_code: bool,
    /// SeBS's `--update-storage`, which overrides the file; storage inputs are always fresh here.
    pub update_storage: bool,
    pub download_results: bool,
    pub flags: serde_json::Map<String, serde_json::Value>,
    /// The experiments' blocks SeBS knows (`perf-cost`, `network-ping-pong`,
    /// `invocation-overhead`, `eviction-model`) that the config held.
    pub experiments: serde_json::Map<String, serde_json::Value>,
}

/// The experiments whose blocks SeBS's experiment config keeps.
const SEBS_EXPERIMENTS: [&str; 4] = [
    "perf-cost",
    "network-ping-pong",
    "invocation-overhead",
    "eviction-model",
];

impl PerfCostSettings {
    /// `config.experiments` of a result file: SeBS's `ExperimentConfig.serialize()` for this
    /// run (`architecture`: the machine's, which functions ran on), and the perf-cost block
    /// also at the top, where SeBS's `ExperimentConfig.deserialize` looks for it.
    pub fn sebs_experiment_config(&self, architecture: &str) -> serde_json::Value {
        serde_json::json!({
            "update_code": self.sebs.update_code,
            "update_storage": self.sebs.update_storage,
            "download_results": self.sebs.download_results,
            "runtime": {
                "language": self.language.as_str(),
                "version": self.language_version,
                "language-variant": "default",
            },
            "flags": self.sebs.flags,
            "experiments": self.sebs.experiments,
            "architecture": architecture,
            "system_variant": "package",
            "perf-cost": self.raw,
        })
    }
}

/// Settings that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read experiment config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse experiment config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("experiment config {path}: field {field}: {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PerfCostBlock {
    benchmark: String,
    experiments: Vec<String>,
    input_size: String,
    repetitions: usize,
    concurrent_invocations: usize,
    #[serde(default)]
    memory_sizes: Vec<u64>,
    /// Ours: milliseconds to wait between batches.
    #[serde(default)]
    pause_between_batches_ms: u64,
    /// Ours: size of the functions' /tmp in MiB; 0 is no limit.
    #[serde(default)]
    tmp_size: Option<u64>,
    /// Ours: what backs the functions' /tmp, `memory` (the tmpfs) or `disk`.
    #[serde(default)]
    tmp_on: Option<String>,
    /// Ours: the most tasks in a function's container; 0 is no limit.
    #[serde(default)]
    pids_limit: Option<u64>,
    /// Ours: whom functions run as (`auto`, `root`, `UID[:GID]`).
    #[serde(default)]
    user: Option<String>,
}

/// The longest pause between batches: an hour.
const MAX_PAUSE_MS: u64 = 60 * 60 * 1000;

impl PerfCostSettings {
    pub fn load(path: &Path) -> Result<PerfCostSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        PerfCostSettings::parse(&text, yaml, path)
    }

    /// Parses `text` (JSON, or YAML when `yaml`); `path` only names the source in errors.
    pub fn parse(text: &str, yaml: bool, path: &Path) -> Result<PerfCostSettings, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let doc: serde_json::Value = if yaml {
            serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?
        } else {
            serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?
        };
        let experiments = doc
            .get("experiments")
            .filter(|e| e.is_object())
            .unwrap_or(&doc);
        let block = experiments.get("perf-cost").unwrap_or(experiments);
        if block.get("benchmark").is_none() {
            return Err(parse_err(
                "no perf-cost settings: expected `experiments.perf-cost`, `perf-cost`, or its fields".into(),
            ));
        }
        let field_err = |field: &str, message: String| ConfigError::Field {
            path: path.to_path_buf(),
            field: format!("perf-cost.{field}"),
            message,
        };
        let parsed: PerfCostBlock =
            serde_json::from_value(block.clone()).map_err(|e| field_err("*", e.to_string()))?;
        let run_types = parsed
            .experiments
            .iter()
            .map(|e| e.parse::<RunType>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| field_err("experiments", m))?;
        let input_size = parsed
            .input_size
            .parse::<Size>()
            .map_err(|e| field_err("input-size", e.to_string()))?;
        if parsed.repetitions == 0 {
            return Err(field_err("repetitions", "must be at least 1".into()));
        }
        if !(1..=MAX_CONTAINERS).contains(&parsed.concurrent_invocations) {
            return Err(field_err(
                "concurrent-invocations",
                format!("must be from 1 to {MAX_CONTAINERS} (each has its own container)"),
            ));
        }
        let mut sandbox = Sandbox::default();
        if let Some(mb) = parsed.tmp_size {
            if mb > MAX_TMP_SIZE_MB {
                return Err(field_err(
                    "tmp-size",
                    format!(
                        "{mb} MiB is more than the engine can be asked for ({MAX_TMP_SIZE_MB})"
                    ),
                ));
            }
            sandbox.tmp_size_mb = Sandbox::limit(mb);
        }
        if let Some(tmp_on) = &parsed.tmp_on {
            sandbox.tmp_on = tmp_on
                .parse::<TmpOn>()
                .map_err(|e| field_err("tmp-on", e.to_string()))?;
        }
        if sandbox.tmp_on == TmpOn::Disk && parsed.tmp_size.is_some_and(|mb| mb > 0) {
            return Err(field_err(
                "tmp-size",
                "cannot apply with `tmp-on: disk`: the /tmp on disk, a volume of the \
                 container's own, has no size limit; drop tmp-size or use `tmp-on: memory`"
                    .into(),
            ));
        }
        if let Some(n) = parsed.pids_limit {
            if n > i64::MAX as u64 {
                return Err(field_err("pids-limit", format!("{n} is too large")));
            }
            if n != 0 && n < MIN_PIDS_LIMIT {
                return Err(field_err(
                    "pids-limit",
                    format!(
                        "{n} is too few: at least {MIN_PIDS_LIMIT} tasks (the agent's own \
                         included), or 0 for no limit"
                    ),
                ));
            }
            sandbox.pids_limit = Sandbox::limit(n);
        }
        if let Some(user) = &parsed.user {
            sandbox.user = user
                .parse::<FunctionUser>()
                .map_err(|e| field_err("user", e.to_string()))?;
        }
        let runtime = experiments.get("runtime");
        let language = match runtime
            .and_then(|r| r.get("language"))
            .and_then(|l| l.as_str())
        {
            Some(l) => l
                .parse::<Language>()
                .map_err(|e| field_err("runtime.language", e.to_string()))?,
            None => Language::Python,
        };
        let language_version = runtime
            .and_then(|r| r.get("version"))
            .and_then(|v| v.as_str())
            .unwrap_or(language.default_version())
            .to_string();
        language
            .check_version(&language_version)
            .map_err(|e| field_err("runtime.version", e.to_string()))?;
        if parsed.pause_between_batches_ms > MAX_PAUSE_MS {
            return Err(field_err(
                "pause-between-batches-ms",
                format!("must be at most {MAX_PAUSE_MS} (an hour)"),
            ));
        }
        let mut known = serde_json::Map::new();
        known.insert("perf-cost".into(), block.clone());
        for name in &SEBS_EXPERIMENTS[1..] {
            if let Some(other) = experiments.get(*name) {
                known.insert((*name).to_string(), other.clone());
            }
        }
        let flag = |name: &str| experiments[name].as_bool().unwrap_or(false);
        let sebs = SebsExperimentConfig {
            update_code: false,
            update_storage: false,
            download_results: flag("download_results"),
            flags: experiments["flags"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
            experiments: known,
        };
        Ok(PerfCostSettings {
            benchmark: parsed.benchmark,
            experiments: run_types,
            input_size,
            repetitions: parsed.repetitions,
            concurrent_invocations: parsed.concurrent_invocations,
            memory_sizes: parsed.memory_sizes,
            pause_between_batches: Duration::from_millis(parsed.pause_between_batches_ms),
            language,
            language_version,
            sandbox,
            raw: block.clone(),
            sebs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, yaml: bool, expect: Result<(&str, Vec<RunType>, usize, Vec<u64>), &str>) {
        let got = PerfCostSettings::parse(text, yaml, Path::new("exp.json"));
        match (got, expect) {
            (Ok(s), Ok((bench, types, conc, mem))) => {
                assert_eq!(s.benchmark, bench);
                assert_eq!(s.experiments, types);
                assert_eq!(s.concurrent_invocations, conc);
                assert_eq!(s.memory_sizes, mem);
            }
            (Err(e), Err(fragment)) => {
                let msg = e.to_string();
                assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
                assert!(msg.contains("exp.json"), "{msg:?} names no file");
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn reads_sebs_configs() {
        // SeBS's own example, abridged: the whole config file.
        let sebs = r#"{"experiments": {"deployment": "aws", "runtime": {"language": "python", "version": "3.11"},
            "perf-cost": {"benchmark": "110.dynamic-html", "experiments": ["cold", "warm", "burst", "sequential"],
              "input-size": "test", "repetitions": 50, "concurrent-invocations": 50, "memory-sizes": [128, 256]}}}"#;
        use RunType::*;
        check(
            sebs,
            false,
            Ok((
                "110.dynamic-html",
                vec![Cold, Warm, Burst, Sequential],
                50,
                vec![128, 256],
            )),
        );
        let block = r#"{"benchmark": "010.sleep", "experiments": ["warm"], "input-size": "test",
            "repetitions": 5, "concurrent-invocations": 2, "memory-sizes": []}"#;
        check(block, false, Ok(("010.sleep", vec![Warm], 2, vec![])));
        let yaml =
            "perf-cost:\n  benchmark: 000.noop\n  experiments: [burst]\n  input-size: small\n  \
                    repetitions: 3\n  concurrent-invocations: 8\n  memory-sizes: [256]\n";
        check(yaml, true, Ok(("000.noop", vec![Burst], 8, vec![256])));
    }

    #[test]
    fn the_sandbox_is_strict_unless_loosened() {
        let parse = |extra: &str| {
            let text = format!(
                r#"{{"benchmark": "b", "experiments": ["cold"], "input-size": "test",
                    "repetitions": 5, "concurrent-invocations": 2{extra}}}"#
            );
            PerfCostSettings::parse(&text, false, Path::new("exp.json"))
        };
        assert_eq!(parse("").unwrap().sandbox, Sandbox::default());
        let loose = parse(r#", "tmp-size": 0, "pids-limit": 4096, "user": "root""#).unwrap();
        assert_eq!(
            loose.sandbox,
            Sandbox {
                tmp_size_mb: None,
                tmp_on: TmpOn::Memory,
                pids_limit: Some(4096),
                user: FunctionUser::Root
            }
        );
        let disk = parse(r#", "tmp-on": "disk""#).unwrap();
        assert_eq!(disk.sandbox.tmp_on, TmpOn::Disk);
        let err = parse(r#", "tmp-on": "ram""#).unwrap_err().to_string();
        assert!(
            err.contains("perf-cost.tmp-on") && err.contains("ram"),
            "{err}"
        );
        let err = parse(r#", "user": "alice""#).unwrap_err().to_string();
        assert!(
            err.contains("perf-cost.user") && err.contains("alice"),
            "{err}"
        );
        let err = parse(r#", "tmp-size": 18446744073709551615"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("perf-cost.tmp-size"), "{err}");
        let err = parse(r#", "tmp-on": "disk", "tmp-size": 64"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("perf-cost.tmp-size") && err.contains("no size limit"),
            "{err}"
        );
        let err = parse(r#", "pids-limit": 3"#).unwrap_err().to_string();
        assert!(
            err.contains("perf-cost.pids-limit") && err.contains("at least 16"),
            "{err}"
        );
        assert_eq!(
            parse(r#", "pids-limit": 0"#).unwrap().sandbox.pids_limit,
            None
        );
        let err = parse(r#", "pids-limit": -1"#).unwrap_err().to_string();
        assert!(err.contains("invalid value"), "{err}");
    }

    #[test]
    fn sebs_experiment_config_around_the_block() {
        // SeBS's own config/example.json, abridged: what it holds besides perf-cost is kept.
        let whole = r#"{"experiments": {"deployment": "local", "update_code": true, "update_storage": false,
            "download_results": true, "architecture": "arm64", "flags": {"docker_volumes": false},
            "runtime": {"language": "nodejs", "version": "18"},
            "perf-cost": {"benchmark": "010.sleep", "experiments": ["warm"], "input-size": "test",
              "repetitions": 5, "concurrent-invocations": 2, "memory-sizes": []},
            "network-ping-pong": {"invocations": 50}, "unknown": {"x": 1}}}"#;
        let mut settings = PerfCostSettings::parse(whole, false, Path::new("exp.json")).unwrap();
        settings.sebs.update_code = false;
        let block = serde_json::json!({"benchmark": "010.sleep", "experiments": ["warm"],
            "input-size": "test", "repetitions": 5, "concurrent-invocations": 2, "memory-sizes": []});
        assert_eq!(
            settings.sebs_experiment_config("x64"),
            serde_json::json!({
                "update_code": false, "update_storage": false, "download_results": true,
                "runtime": {"language": "nodejs", "version": "18", "language-variant": "default"},
                "flags": {"docker_volumes": false},
                "experiments": {"perf-cost": block, "network-ping-pong": {"invocations": 50}},
                "architecture": "x64", "system_variant": "package", "perf-cost": block,
            })
        );
        // The block alone: SeBS's defaults around it.
        let alone = block.to_string();
        let settings = PerfCostSettings::parse(&alone, false, Path::new("exp.json")).unwrap();
        let config = settings.sebs_experiment_config("x64");
        assert_eq!(config["download_results"], false);
        assert_eq!(config["flags"], serde_json::json!({}));
        assert_eq!(config["runtime"]["language"], "python");
        assert_eq!(config["runtime"]["version"], "3.11");
        assert_eq!(
            config["experiments"],
            serde_json::json!({"perf-cost": block})
        );
    }

    #[test]
    fn errors_name_the_file_and_field() {
        check("{", false, Err("parse experiment config"));
        check("{\"x\": 1}", false, Err("no perf-cost settings"));
        let bad = |field: &str, value: &str| {
            let mut v = serde_json::json!({"benchmark": "b", "experiments": ["cold"], "input-size": "test",
                "repetitions": 5, "concurrent-invocations": 2});
            v[field] = serde_json::from_str(value).unwrap();
            v.to_string()
        };
        check(
            &bad("experiments", "[\"lukewarm\"]"),
            false,
            Err("perf-cost.experiments"),
        );
        check(
            &bad("input-size", "\"huge\""),
            false,
            Err("perf-cost.input-size"),
        );
        check(
            &bad("repetitions", "0"),
            false,
            Err("perf-cost.repetitions"),
        );
        check(
            &bad("concurrent-invocations", "0"),
            false,
            Err("concurrent-invocations"),
        );
        check(&bad("repetitions", "\"many\""), false, Err("invalid type"));
        check(
            &bad("concurrent-invocations", "18446744073709551615"),
            false,
            Err("perf-cost.concurrent-invocations: must be from 1 to 65534"),
        );
        check(
            &bad("pause-between-batches-ms", "18446744073709551615"),
            false,
            Err("perf-cost.pause-between-batches-ms: must be at most 3600000"),
        );
        let future = r#"{"experiments": {"runtime": {"language": "python", "version": "9.99"},
            "perf-cost": {"benchmark": "b", "experiments": ["cold"], "input-size": "test",
            "repetitions": 5, "concurrent-invocations": 2}}}"#;
        check(future, false, Err("the supported ones are 3.7"));
        check(
            &bad("surprise", "1"),
            false,
            Err("unknown field `surprise`"),
        );
    }
}

//! The files written at `stop`: SeBS's `memory_stats.json`, byte for byte as SeBS writes it, and
//! our richer report with timestamps, percentiles and how well the sampler kept time.
//!
//! Both are deliberate serde types built from [`Measurements`], never the core types
//! themselves, so that changing the sampler cannot change a file format by accident.

use std::path::{Path, PathBuf};

use sebs_stats::percentile_nearest_rank as percentile;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::cgroup::Version;
use crate::measurements::{End, Measurements, Source};

/// Why an output file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encode {path} as JSON")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn write_file(path: &Path, text: &str) -> Result<(), OutputError> {
    std::fs::write(path, text).map_err(|source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// SeBS's `memory_stats.json`: one entry per container with at least one sample, in the order
/// given, then `precision_errors` (the sum over containers) when it is not zero, as SeBS does.
#[derive(Debug, Clone, PartialEq)]
pub struct SebsMemoryStats {
    pub containers: Vec<SebsContainerStats>,
    pub precision_errors: u64,
}

/// One container's entry in [`SebsMemoryStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct SebsContainerStats {
    pub container: String,
    /// `"mean mem. usage"`, e.g. `"12.9024005 MB"` (bytes / 10^6, printed as Python prints floats).
    pub mean: String,
    /// `"max mem. usage"`.
    pub max: String,
    /// `"full profile (in bytes)"`; its length is `"number of measurements"`.
    pub profile: Vec<u64>,
}

impl SebsMemoryStats {
    /// Summarises as SeBS's `local stop` does. Containers without samples are left out, as
    /// SeBS only knows containers from their sample lines.
    pub fn from_measurements(all: &[Measurements]) -> SebsMemoryStats {
        let containers = all
            .iter()
            .filter(|m| !m.samples.is_empty())
            .map(|m| {
                let profile: Vec<u64> = m.samples.iter().map(|s| s.bytes).collect();
                let sum: u128 = profile.iter().map(|&b| u128::from(b)).sum();
                let max = profile.iter().copied().max().unwrap_or(0);
                SebsContainerStats {
                    container: m.container.clone(),
                    mean: format!(
                        "{} MB",
                        python_float_repr(mean_as_python(sum, profile.len() as u64) / 1e6)
                    ),
                    max: format!("{} MB", python_float_repr(max as f64 / 1e6)),
                    profile,
                }
            })
            .collect();
        SebsMemoryStats {
            containers,
            precision_errors: all.iter().map(|m| m.precision_errors).sum(),
        }
    }

    /// The file's text, as Python's `json.dump(…, indent=6)` writes it.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"      ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        // Writing strings and integers into a Vec cannot fail.
        let _ = self.serialize(&mut ser);
        String::from_utf8(out).unwrap_or_default()
    }

    pub fn write(&self, path: &Path) -> Result<(), OutputError> {
        write_file(path, &self.to_json())
    }
}

impl Serialize for SebsMemoryStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for c in &self.containers {
            map.serialize_entry(&c.container, c)?;
        }
        if self.precision_errors > 0 {
            map.serialize_entry("precision_errors", &self.precision_errors)?;
        }
        map.end()
    }
}

impl Serialize for SebsContainerStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("mean mem. usage", &self.mean)?;
        map.serialize_entry("max mem. usage", &self.max)?;
        map.serialize_entry("number of measurements", &self.profile.len())?;
        map.serialize_entry("full profile (in bytes)", &self.profile)?;
        map.end()
    }
}

/// `statistics.mean` of integers as Python computes it: the exact fraction `sum / n`,
/// rounded once to the nearest float (ties to even).
pub fn mean_as_python(sum: u128, n: u64) -> f64 {
    if n == 0 || sum == 0 {
        return 0.0;
    }
    // Scale so that the integer quotient has 54 to 56 bits: two more than a float keeps,
    // so a non-zero remainder can be folded into the lowest bit as a "sticky" bit and the
    // one rounding of `as f64` is then the correct rounding of the exact fraction.
    let la = 128 - sum.leading_zeros() as i32;
    let lb = 64 - n.leading_zeros() as i32;
    let shift = 55 - (la - lb);
    let n = u128::from(n);
    let (q, inexact) = if shift >= 0 {
        // la + shift = 55 + lb <= 119 bits: no overflow.
        let a = sum << shift;
        let remainder = a % n;
        (a / n, remainder != 0)
    } else {
        let dropped = sum & ((1u128 << -shift) - 1);
        let a = sum >> -shift;
        let remainder = a % n;
        (a / n, remainder != 0 || dropped != 0)
    };
    let q = if inexact { q | 1 } else { q };
    q as f64 * 2f64.powi(-shift)
}

/// A float as Python's `repr` prints it: the shortest digits that read back the same, in
/// positional notation from 1e-4 up to 1e16 (with `.0` when whole), else like `1e-05`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, e.g. "1.29024e1".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    // Python's `decpt`: the value is 0.<digits> * 10^decpt.
    let decpt = exp + 1;
    let n = digits.len() as i32;
    let body = if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}e{esign}{:02}", exp.abs())
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt < n {
        let (int, frac) = digits.split_at(decpt as usize);
        format!("{int}.{frac}")
    } else {
        format!("{digits}{}.0", "0".repeat((decpt - n) as usize))
    };
    format!("{sign}{body}")
}

/// Our richer memory file: every container's samples with times, percentiles, and how
/// well the sampler kept its deadlines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Bumped when the shape changes.
    pub format: u32,
    /// Sum over containers, as in SeBS's file.
    pub precision_errors: u64,
    pub containers: Vec<ContainerReport>,
}

/// Where a container's samples came from, as named in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceName {
    #[serde(rename = "cgroup-v1")]
    CgroupV1,
    #[serde(rename = "cgroup-v2")]
    CgroupV2,
    /// Sampled by the container's agent from inside (see [`Source::Agent`]).
    #[serde(rename = "agent-cgroup-v1")]
    AgentCgroupV1,
    #[serde(rename = "agent-cgroup-v2")]
    AgentCgroupV2,
    #[serde(rename = "engine-stats")]
    EngineStats,
}

/// Why sampling a container ended, as named in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndName {
    Stopped,
    ContainerGone,
    Failed,
}

impl From<Source> for SourceName {
    fn from(source: Source) -> SourceName {
        match source {
            Source::Cgroup(Version::V1) => SourceName::CgroupV1,
            Source::Cgroup(Version::V2) => SourceName::CgroupV2,
            Source::Agent(Version::V1) => SourceName::AgentCgroupV1,
            Source::Agent(Version::V2) => SourceName::AgentCgroupV2,
            Source::EngineStats => SourceName::EngineStats,
        }
    }
}

impl From<SourceName> for Source {
    fn from(name: SourceName) -> Source {
        match name {
            SourceName::CgroupV1 => Source::Cgroup(Version::V1),
            SourceName::CgroupV2 => Source::Cgroup(Version::V2),
            SourceName::AgentCgroupV1 => Source::Agent(Version::V1),
            SourceName::AgentCgroupV2 => Source::Agent(Version::V2),
            SourceName::EngineStats => Source::EngineStats,
        }
    }
}

impl EndName {
    /// The name of `end`, and what failed when it failed.
    pub fn of(end: &End) -> (EndName, Option<String>) {
        match end {
            End::Stopped => (EndName::Stopped, None),
            End::ContainerGone => (EndName::ContainerGone, None),
            End::Failed(why) => (EndName::Failed, Some(why.clone())),
        }
    }

    /// The [`End`] this name stands for, with `error` as what failed.
    pub fn to_end(self, error: Option<String>) -> End {
        match self {
            EndName::Stopped => End::Stopped,
            EndName::ContainerGone => End::ContainerGone,
            EndName::Failed => End::Failed(error.unwrap_or_default()),
        }
    }
}

/// A distribution's summary; every field is a value from the data (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    /// `None` for no values.
    pub fn of(values: impl IntoIterator<Item = u64>) -> Option<Summary> {
        let mut sorted: Vec<u64> = values.into_iter().collect();
        sorted.sort_unstable();
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        Some(Summary {
            mean: mean_as_python(sum, sorted.len() as u64),
            min: *sorted.first()?,
            p50: percentile(&sorted, 50.0)?,
            p90: percentile(&sorted, 90.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// One container in [`MemoryReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub container: String,
    pub source: SourceName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    pub interval_us: u64,
    /// Wall-clock time of the first deadline, as SeBS prints times: `"1700000000.123456"`.
    pub started_at: String,
    pub samples_asked: u64,
    pub samples_taken: u64,
    pub precision_errors: u64,
    pub end: EndName,
    /// What failed, when `end` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kernel's peak read at stop; it also sees spikes between samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_peak_bytes: Option<u64>,
    /// Sampled bytes; absent without samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Summary>,
    /// How long after its deadline each sample was taken, in µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness_us: Option<Summary>,
    /// Each sample's time: microseconds after `started_at`.
    pub offsets_us: Vec<u64>,
    /// Each sample's value, in the order of `offsets_us`.
    pub samples_bytes: Vec<u64>,
    /// The invocations the container served while it was measured, where they are known
    /// (absent in files written before they were recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invocations: Vec<InvocationSpan>,
}

/// One invocation in a [`ContainerReport`]: when its handler ran, in microseconds after
/// `started_at` (negative when it began before the measurement did).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationSpan {
    pub begin_us: i64,
    pub end_us: i64,
    #[serde(default)]
    pub is_cold: bool,
    /// Whether the handler returned (rather than raised, timed out or died).
    #[serde(default = "returned")]
    pub ok: bool,
}

fn returned() -> bool {
    true
}

impl MemoryReport {
    pub const FORMAT: u32 = 1;

    pub fn from_measurements(all: &[Measurements]) -> MemoryReport {
        MemoryReport {
            format: Self::FORMAT,
            precision_errors: all.iter().map(|m| m.precision_errors).sum(),
            containers: all.iter().map(ContainerReport::from_measurements).collect(),
        }
    }

    /// The file's text: pretty JSON.
    pub fn to_json(&self, path: &Path) -> Result<String, OutputError> {
        serde_json::to_string_pretty(self).map_err(|source| OutputError::Encode {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), OutputError> {
        write_file(path, &self.to_json(path)?)
    }
}

impl ContainerReport {
    /// Puts an agent's invocation log (handler spans in microseconds since the epoch) on
    /// this container's time axis. Calls outside the measurement are kept: they tell a
    /// reader what the profile missed.
    pub fn add_invocations(&mut self, log: &[sebs_wire::InvocationRecord]) {
        let Ok(start) = self.started_at.parse::<sebs_wire::EpochMicros>() else {
            return;
        };
        self.invocations.extend(log.iter().map(|r| InvocationSpan {
            begin_us: r.begin_us - start.0,
            end_us: r.end_us - start.0,
            is_cold: r.is_cold,
            ok: r.ok,
        }));
    }

    pub fn from_measurements(m: &Measurements) -> ContainerReport {
        let (end, error) = EndName::of(&m.end);
        ContainerReport {
            container: m.container.clone(),
            source: m.source.into(),
            cgroup: m.cgroup.clone(),
            interval_us: m.interval.as_micros() as u64,
            started_at: m.started_at.to_string(),
            samples_asked: m.samples_asked,
            samples_taken: m.samples.len() as u64,
            precision_errors: m.precision_errors,
            end,
            error,
            kernel_peak_bytes: m.kernel_peak,
            bytes: Summary::of(m.samples.iter().map(|s| s.bytes)),
            lateness_us: Summary::of(m.samples.iter().map(|s| u64::from(s.late_us))),
            offsets_us: m.samples.iter().map(|s| s.offset_us).collect(),
            samples_bytes: m.samples.iter().map(|s| s.bytes).collect(),
            invocations: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurements::Sample;
    use sebs_wire::EpochMicros;
    use std::time::Duration;

    /// Expected strings come from Python 3.11: `repr(mean(values)/1e6)`, `repr(max(values)/1e6)`.
    fn check(values: &[u64], mean: &str, max: &str) {
        let m = measurements("c", values, 0);
        let stats = SebsMemoryStats::from_measurements(&[m]);
        let c = &stats.containers[0];
        assert_eq!(
            (c.mean.as_str(), c.max.as_str()),
            (format!("{mean} MB").as_str(), format!("{max} MB").as_str()),
            "{values:?}"
        );
    }

    fn measurements(container: &str, values: &[u64], precision_errors: u64) -> Measurements {
        Measurements {
            container: container.to_string(),
            source: Source::Cgroup(Version::V1),
            cgroup: Some(PathBuf::from("/sys/fs/cgroup/memory/docker").join(container)),
            interval: Duration::from_millis(10),
            started_at: EpochMicros(1_700_000_000_000_000),
            samples: values
                .iter()
                .enumerate()
                .map(|(i, &bytes)| Sample {
                    offset_us: i as u64 * 10_000,
                    bytes,
                    late_us: 40 + i as u32,
                })
                .collect(),
            samples_asked: values.len() as u64 + precision_errors,
            precision_errors,
            end: End::ContainerGone,
            kernel_peak: None,
        }
    }

    #[test]
    fn numbers_are_printed_as_sebs_prints_them() {
        check(&[12_902_400], "12.9024", "12.9024");
        check(&[12_902_400, 12_902_401], "12.9024005", "12.902401");
        check(&[1, 2], "1.5e-06", "2e-06");
        check(&[0], "0.0", "0.0");
        check(&[50], "5e-05", "5e-05");
        check(&[1, 1, 2], "1.3333333333333332e-06", "2e-06");
        check(
            &[10_000_000_000_000_000_000],
            "10000000000000.0",
            "10000000000000.0",
        );
        check(
            &[123_456_789_012, 987_654_321_098, 555_555_555_555],
            "555555.5552216666",
            "987654.321098",
        );
        check(
            &[
                3_000_000_000_000_000,
                3_000_000_000_000_001,
                3_000_000_000_000_001,
            ],
            "3000000000.0000005",
            "3000000000.000001",
        );
        check(
            &[u64::MAX, u64::MAX, u64::MAX - 1],
            "18446744073709.55",
            "18446744073709.55",
        );
        check(&[7, 7, 8], "7.333333333333333e-06", "8e-06");
    }

    #[test]
    fn python_reprs() {
        for (x, s) in [
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (1e-100, "1e-100"),
        ] {
            assert_eq!(python_float_repr(x), s);
        }
    }

    #[test]
    fn sebs_file_is_byte_for_byte_what_python_writes() {
        let all = [
            measurements("aaa", &[1_000_000, 3_000_000], 2),
            measurements("empty", &[], 0),
            measurements("bbb", &[5], 1),
        ];
        let stats = SebsMemoryStats::from_measurements(&all);
        // json.dump({...}, out, indent=6) in Python 3.11 writes exactly this.
        let expect = r#"{
      "aaa": {
            "mean mem. usage": "2.0 MB",
            "max mem. usage": "3.0 MB",
            "number of measurements": 2,
            "full profile (in bytes)": [
                  1000000,
                  3000000
            ]
      },
      "bbb": {
            "mean mem. usage": "5e-06 MB",
            "max mem. usage": "5e-06 MB",
            "number of measurements": 1,
            "full profile (in bytes)": [
                  5
            ]
      },
      "precision_errors": 3
}"#;
        assert_eq!(stats.to_json(), expect);
        // Without precision errors SeBS leaves the key out.
        let quiet = SebsMemoryStats::from_measurements(&[measurements("aaa", &[1], 0)]);
        assert!(!quiet.to_json().contains("precision_errors"));
        assert_eq!(SebsMemoryStats::from_measurements(&[]).to_json(), "{}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory_stats.json");
        stats.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expect);
        let err = stats
            .write(&dir.path().join("no/such/dir.json"))
            .unwrap_err();
        assert!(err.to_string().contains("no/such/dir.json"), "{err}");
    }

    #[test]
    fn our_report_keeps_partial_data_and_reads_back() {
        let mut failed = measurements("ccc", &[], 0);
        failed.end = End::Failed("read /x/memory.current: boom".into());
        let all = [measurements("aaa", &[10, 40, 20, 30], 1), failed];
        let report = MemoryReport::from_measurements(&all);
        let a = &report.containers[0];
        assert_eq!(
            (a.samples_asked, a.samples_taken, a.precision_errors),
            (5, 4, 1)
        );
        assert_eq!(a.end, EndName::ContainerGone);
        assert_eq!(
            a.bytes,
            Some(Summary {
                mean: 25.0,
                min: 10,
                p50: 20,
                p90: 40,
                p99: 40,
                max: 40
            })
        );
        assert_eq!(a.lateness_us.map(|l| l.max), Some(43));
        assert_eq!(a.offsets_us, [0, 10_000, 20_000, 30_000]);
        assert_eq!(a.started_at, "1700000000.000000");
        assert_eq!(
            report.containers[1].error.as_deref(),
            Some("read /x/memory.current: boom")
        );
        assert_eq!(report.containers[1].bytes, None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory_report.json");
        report.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["containers"][0]["source"], "cgroup-v1");
        assert_eq!(value["containers"][1]["end"], "failed");
        let back: MemoryReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        assert!(!text.contains("invocations"), "an empty list is left out");

        // An agent's log lands on the container's own time axis.
        let mut with_calls = report.clone();
        with_calls.containers[0].add_invocations(&[sebs_wire::InvocationRecord {
            begin_us: 1_700_000_000_250_000,
            end_us: 1_700_000_000_400_000,
            is_cold: true,
            ok: false,
        }]);
        assert_eq!(
            with_calls.containers[0].invocations,
            [InvocationSpan {
                begin_us: 250_000,
                end_us: 400_000,
                is_cold: true,
                ok: false
            }]
        );
        let text = with_calls.to_json(&path).unwrap();
        let back: MemoryReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, with_calls);
    }
}

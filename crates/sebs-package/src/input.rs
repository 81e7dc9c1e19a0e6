//! Benchmark inputs and output validation, by running the benchmark's `input.py` with the
//! host's `python3`.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use sebs_wire::Language;

use crate::benchmark::BenchmarkDir;

/// The input size a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    Test,
    Small,
    Large,
}

impl Size {
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Test => "test",
            Size::Small => "small",
            Size::Large => "large",
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A size name other than `test`, `small` or `large`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown input size {name:?}: expected \"test\", \"small\" or \"large\"")]
pub struct UnknownSize {
    pub name: String,
}

impl FromStr for Size {
    type Err = UnknownSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(Size::Test),
            "small" => Ok(Size::Small),
            "large" => Ok(Size::Large),
            _ => Err(UnknownSize {
                name: s.to_string(),
            }),
        }
    }
}

/// What a benchmark's `validate_output` said about an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    Passed,
    /// The validator's message.
    Failed(String),
    /// The benchmark has no `validate_output` (or no `input.py`).
    NoValidator,
}

/// An input that could not be made, or an output that could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("start python3 for {benchmark}'s input.py: {source}")]
    Spawn {
        benchmark: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{stage} of {benchmark}: input.py failed ({status}):\n{stderr}")]
    Script {
        benchmark: String,
        stage: &'static str,
        status: String,
        stderr: String,
    },
    #[error(
        "{stage} of {benchmark}: the benchmark uses {service}, which is not supported for \
         this benchmark yet"
    )]
    Unsupported {
        benchmark: String,
        stage: &'static str,
        service: String,
    },
    #[error(
        "{stage} of {benchmark}: input.py printed something that is not JSON: {source}\n{stdout}"
    )]
    BadJson {
        benchmark: String,
        stage: &'static str,
        stdout: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("generate input of {benchmark}: it has neither input.py nor input.json")]
    NoInput { benchmark: String },
}

/// Runs in the host's `python3`: imports `input.py` from its path and prints one JSON
/// value on the real stdout (the benchmark's own prints go to stderr).
const DRIVER: &str = r#"
import importlib.util, json, os, sys

real_stdout = sys.stdout
sys.stdout = sys.stderr

class Unsupported(Exception):
    pass

def upload_func(*args, **kwargs):
    raise Unsupported("object storage (upload_func)")

def nosql_func(*args, **kwargs):
    raise Unsupported("a NoSQL table (nosql_func)")

mode, path, name, data_dir = sys.argv[1:5]
sys.path.insert(0, os.path.dirname(path))
spec = importlib.util.spec_from_file_location("sebs_benchmark_input", path)
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
    if mode == "generate":
        size = sys.argv[5]
        if hasattr(module, "buckets_count"):
            n_in, n_out = module.buckets_count()
            bucket = "sebs-benchmarks"
        else:
            n_in, n_out, bucket = 0, 0, None
        inputs = ["{}-{}-input".format(name, i) for i in range(n_in)]
        outputs = ["{}-{}-output".format(name, i) for i in range(n_out)]
        result = module.generate_input(
            data_dir, size, bucket, inputs, outputs, upload_func, nosql_func)
    else:
        request = json.load(sys.stdin)
        if not hasattr(module, "validate_output"):
            result = {"status": "none"}
        else:
            message = module.validate_output(
                data_dir, request["input"], request["output"], request["language"])
            if message is None:
                result = {"status": "passed"}
            else:
                result = {"status": "failed", "message": str(message)}
    text = json.dumps(result)
except Unsupported as e:
    sys.stderr.write("SEBS-UNSUPPORTED:{}\n".format(e))
    sys.exit(3)
real_stdout.write(text)
real_stdout.flush()
"#;

/// Exit status of the driver when the benchmark called a storage function.
const UNSUPPORTED_EXIT: i32 = 3;

/// The input for `bench` at `size`: what `input.py`'s `generate_input` returns, or, for a
/// benchmark without `input.py`, the contents of its `input.json` (one input for all sizes).
///
/// `data_dir` is the benchmark's folder in SeBS's `benchmarks-data`, passed through as is.
/// Storage and NoSQL benchmarks fail with [`InputError::Unsupported`] when they upload.
pub fn generate_input(
    bench: &BenchmarkDir,
    size: Size,
    data_dir: &Path,
) -> Result<serde_json::Value, InputError> {
    let input_py = bench.path.join("input.py");
    if !input_py.is_file() {
        let path = bench.path.join("input.json");
        if !path.is_file() {
            return Err(InputError::NoInput {
                benchmark: bench.name.clone(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| InputError::Read {
            path: path.clone(),
            source,
        })?;
        return serde_json::from_str(&text).map_err(|source| InputError::Parse { path, source });
    }
    run_driver(
        bench,
        "generate input",
        &input_py,
        data_dir,
        &[size.as_str()],
        None,
    )
}

/// Checks `output` (the handler's return value) for `input` with the benchmark's
/// `validate_output(data_dir, input, output, language)`.
pub fn validate_output(
    bench: &BenchmarkDir,
    data_dir: &Path,
    input: &serde_json::Value,
    output: &serde_json::Value,
    language: Language,
) -> Result<Validation, InputError> {
    let input_py = bench.path.join("input.py");
    if !input_py.is_file() {
        return Ok(Validation::NoValidator);
    }
    let request =
        serde_json::json!({"input": input, "output": output, "language": language.as_str()});
    let answer = run_driver(
        bench,
        "validate output",
        &input_py,
        data_dir,
        &[],
        Some(request.to_string()),
    )?;
    let status = answer.get("status").and_then(|s| s.as_str()).unwrap_or("");
    Ok(match status {
        "passed" => Validation::Passed,
        "none" => Validation::NoValidator,
        _ => Validation::Failed(
            answer
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        ),
    })
}

fn run_driver(
    bench: &BenchmarkDir,
    stage: &'static str,
    input_py: &Path,
    data_dir: &Path,
    extra: &[&str],
    stdin: Option<String>,
) -> Result<serde_json::Value, InputError> {
    let mut child = Command::new("python3")
        .arg("-B")
        .arg("-c")
        .arg(DRIVER)
        .arg(if stdin.is_some() {
            "validate"
        } else {
            "generate"
        })
        .arg(input_py)
        .arg(&bench.name)
        .arg(data_dir)
        .args(extra)
        .current_dir(&bench.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| InputError::Spawn {
            benchmark: bench.name.clone(),
            source,
        })?;
    let mut child_stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let (Some(pipe), Some(text)) = (child_stdin.as_mut(), stdin) {
            // A script that exits without reading its input is reported by its status.
            let _ = pipe.write_all(text.as_bytes());
        }
    });
    let mut child_stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = child_stderr.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let mut out = Vec::new();
    if let Some(o) = child.stdout.as_mut() {
        let _ = o.read_to_end(&mut out);
    }
    let status = child.wait().map_err(|source| InputError::Spawn {
        benchmark: bench.name.clone(),
        source,
    })?;
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if !status.success() {
        if status.code() == Some(UNSUPPORTED_EXIT) {
            if let Some(service) = stderr
                .lines()
                .find_map(|l| l.strip_prefix("SEBS-UNSUPPORTED:"))
            {
                return Err(InputError::Unsupported {
                    benchmark: bench.name.clone(),
                    stage,
                    service: service.to_string(),
                });
            }
        }
        let status = match status.code() {
            Some(c) => format!("status {c}"),
            None => status.to_string(),
        };
        return Err(InputError::Script {
            benchmark: bench.name.clone(),
            stage,
            status,
            stderr,
        });
    }
    let stdout = String::from_utf8_lossy(&out).into_owned();
    serde_json::from_str(&stdout).map_err(|source| InputError::BadJson {
        benchmark: bench.name.clone(),
        stage,
        stdout,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for s in [Size::Test, Size::Small, Size::Large] {
            assert_eq!(s.as_str().parse::<Size>(), Ok(s));
        }
        assert_eq!(
            "medium".parse::<Size>().unwrap_err().to_string(),
            "unknown input size \"medium\": expected \"test\", \"small\" or \"large\""
        );
    }
}

//! Code packages as a user meets them: `sebs-local package` and `invoke --validate` on
//! benchmarks with pure-Python and compiled dependencies, the hash cache, validation
//! failures and a failed pip install, and Node.js benchmarks with npm dependencies, all
//! through the real binary.
//!
//! Tests that start containers need a Docker engine and the static agent
//! (`SEBS_AGENT_BIN`, or `cargo xtask agent`). Dependencies come from PyPI through the
//! host's network.

use std::path::{Path, PathBuf};
use std::process::Command;

use sebs_testkit::{trial, Trial, ENGINE, PYTHON3};
use serde_json::Value;

use crate::{write_benchmark, AGENT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            benchmarks_with_dependencies_package_run_and_validate,
            ENGINE,
            AGENT,
            PYTHON3
        ),
        trial!(a_changed_byte_rebuilds_and_nothing_changed_reuses),
        trial!(validation_verdicts_and_exit_codes, ENGINE, AGENT, PYTHON3),
        trial!(
            a_missing_requirement_fails_with_pips_output,
            ENGINE,
            AGENT,
            PYTHON3
        ),
        trial!(
            nodejs_benchmarks_package_run_and_validate,
            ENGINE,
            AGENT,
            PYTHON3
        ),
    ]
}

/// The repository's fixtures, the benchmarks root of most tests.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// What one run of `sebs-local` left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON lines printed on stdout.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", self.stderr))
            })
            .collect()
    }
}

fn sebs_local(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sebs-local"))
        .args(args)
        // Plain text logs, to search in.
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .expect("run sebs-local");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: strip_ansi(&String::from_utf8_lossy(&out.stderr)),
    }
}

/// `text` without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `sebs-local package` of `bench`, expected to succeed; its JSON report.
fn package(root: &Path, cache: &Path, bench: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "package",
        bench,
        "--benchmarks-dir",
        root.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = sebs_local(&args);
    assert_eq!(run.code, Some(0), "package {bench}: {}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 1, "{}", run.stdout);
    lines.into_iter().next().unwrap()
}

fn site_packages(report: &Value) -> PathBuf {
    Path::new(report["dir"].as_str().unwrap()).join(".python_packages/lib/site-packages")
}

async fn benchmarks_with_dependencies_package_run_and_validate() {
    let cache = tempfile::tempdir().unwrap();
    let root = fixtures();

    // What each fixture must have installed, and what its handler must have answered.
    let check = |bench: &str, installed: &str, answered: &dyn Fn(&Value)| {
        let report = package(&root, cache.path(), bench, &[]);
        assert_eq!(report["reused"], false, "{report}");
        let site = site_packages(&report);
        assert!(
            site.join(installed).is_dir(),
            "{bench}: no {installed} in {}",
            site.display()
        );

        let run = sebs_local(&[
            "invoke",
            bench,
            "test",
            "--validate",
            "--benchmarks-dir",
            root.to_str().unwrap(),
            "--cache",
            cache.path().to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{bench}: {}", run.stderr);
        assert!(
            run.stderr.contains("reused=true"),
            "{bench} was packaged again: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("validation passed"),
            "{bench}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("1 passed, 0 failed"),
            "{bench}: {}",
            run.stderr
        );
        let lines = run.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["stats"]["failure"], false, "{}", lines[0]);
        answered(&lines[0]["output"]["result"]["output"]);
    };

    check("110.template", "jinja2", &|out| {
        let html = out["result"].as_str().unwrap();
        assert!(html.contains("<h1>Welcome testname!</h1>"), "{html}");
        assert_eq!(html.matches("<li>").count(), 10, "{html}");
    });
    check("120.compiled", "msgpack", &|out| {
        assert_eq!(out["c_extension"], true, "{out}");
        assert_eq!(out["packer"], "msgpack._cmsgpack", "{out}");
        assert_eq!(out["roundtrip"], true, "{out}");
    });
    // requirements.txt.3.11 asks for six 1.16.0, requirements.txt for 1.15.0.
    check("130.versioned", "six-1.16.0.dist-info", &|out| {
        assert_eq!(out["six"], "1.16.0", "{out}");
        assert_eq!(out["requirements"], "requirements.txt.3.11", "{out}");
    });

    // Files the build container wrote belong to the invoking user.
    let report = package(&root, cache.path(), "110.template", &[]);
    let meta = std::fs::metadata(site_packages(&report).join("jinja2")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), current_uid(), "owner of the installed files");
}

/// The uid this test runs as, which is also the binary's: the owner of a new file.
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid()
}

/// The cache at work: an untouched benchmark is reused, one changed byte rebuilds it.
/// No Docker needed: this benchmark has no dependencies.
fn a_changed_byte_rebuilds_and_nothing_changed_reuses() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let function = "def handler(event):\n    return {}\n";
    write_benchmark(root.path(), "901.cached", function, "{}", None);
    let bench = "901.cached";

    let first = package(root.path(), cache.path(), bench, &[]);
    assert_eq!(first["reused"], false, "{first}");
    assert!(first["size_bytes"].as_u64().unwrap() > 0, "{first}");
    let again = package(root.path(), cache.path(), bench, &[]);
    assert_eq!(again["reused"], true, "{again}");
    assert_eq!(again["hash"], first["hash"]);
    assert_eq!(again["dir"], first["dir"]);

    // One byte more in the function's source.
    let path = root
        .path()
        .join("900.tests")
        .join(bench)
        .join("python/function.py");
    std::fs::write(&path, format!("{function} ")).unwrap();
    let changed = package(root.path(), cache.path(), bench, &[]);
    assert_eq!(changed["reused"], false, "{changed}");
    assert_ne!(changed["hash"], first["hash"]);
    let unchanged = package(root.path(), cache.path(), bench, &[]);
    assert_eq!(unchanged["reused"], true, "{unchanged}");
    assert_eq!(unchanged["hash"], changed["hash"]);

    // --update-code rebuilds the same hash.
    let forced = package(root.path(), cache.path(), bench, &["--update-code"]);
    assert_eq!(forced["reused"], false, "{forced}");
    assert_eq!(forced["hash"], changed["hash"]);

    // Both versions are in the cache, each in its own folder named by its hash.
    let versions = root_listing(&cache.path().join(bench).join("python-3.11"));
    let mut expect = vec![
        first["hash"].as_str().unwrap().to_string(),
        changed["hash"].as_str().unwrap().to_string(),
    ];
    expect.sort();
    assert_eq!(versions, expect);
}

fn root_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const WRONG_ANSWER: &str = "def handler(event):\n    return {\"answer\": 41}\n";

const WANTS_42: &str = r#"
def generate_input(data_dir, size, benchmarks_bucket, input_paths, output_paths, upload_func, nosql_func):
    return {"question": "everything"}

def validate_output(data_dir, input_config, output, language, storage=None):
    if output.get("answer") != 42:
        return "expected the answer 42, got {}".format(output.get("answer"))
    return None
"#;

/// `--validate` turns a wrong output into exit code 4, says what was wrong, and does not
/// pass a benchmark that has no validator.
async fn validation_verdicts_and_exit_codes() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write_benchmark(root.path(), "910.wrong", WRONG_ANSWER, WANTS_42, None);
    write_benchmark(root.path(), "911.unchecked", WRONG_ANSWER, "{}", None);
    std::fs::create_dir_all(root.path().join("000.microbenchmarks")).unwrap();
    let raise = fixtures().join("000.microbenchmarks/020.raise");
    copy_dir(&raise, &root.path().join("000.microbenchmarks/020.raise"));

    let check = |bench: &str, repetitions: &str, code: i32, says: &[&str]| {
        let run = sebs_local(&[
            "invoke",
            bench,
            "test",
            "--validate",
            "--repetitions",
            repetitions,
            "--benchmarks-dir",
            root.path().to_str().unwrap(),
            "--cache",
            cache.path().to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(code), "{bench}: {}", run.stderr);
        for text in says {
            assert!(
                run.stderr.contains(text),
                "{bench}: expected {text:?} in:\n{}",
                run.stderr
            );
        }
        // Validation is logged, never mixed into the printed ExecutionResults.
        let lines = run.lines();
        assert_eq!(
            lines.len(),
            repetitions.parse::<usize>().unwrap(),
            "{}",
            run.stdout
        );
        assert!(
            lines.iter().all(|l| l.get("request_id").is_some()),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains("validation"), "{}", run.stdout);
    };
    check(
        "910.wrong",
        "2",
        4,
        &[
            "validation failed: expected the answer 42, got 41",
            "0 passed, 2 failed",
        ],
    );
    check(
        "911.unchecked",
        "1",
        0,
        &["911.unchecked has no validate_output", "not checked"],
    );
    // A handler that raises is a failed invocation (exit 1), not a wrong output.
    check("020.raise", "1", 1, &["invocation failed"]);
}

/// A requirement pip cannot find fails the build with pip's own words and exit code 2, and
/// leaves no build container behind.
async fn a_missing_requirement_fails_with_pips_output() {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let bench = "920.missing-dependency";
    write_benchmark(
        root.path(),
        bench,
        "def handler(event):\n    return {}\n",
        "{}",
        Some("sebs-local-no-such-package-4f1c==1.0\n"),
    );
    for command in ["package", "invoke"] {
        let mut args = vec![command, bench];
        if command == "invoke" {
            args.push("test");
        }
        args.extend([
            "--benchmarks-dir",
            root.path().to_str().unwrap(),
            "--cache",
            cache.path().to_str().unwrap(),
        ]);
        let run = sebs_local(&args);
        assert_eq!(run.code, Some(2), "{command}: {}", run.stderr);
        for text in [
            "failed to build the code package",
            "pip install in image",
            "No matching distribution found for sebs-local-no-such-package-4f1c==1.0",
        ] {
            assert!(
                run.stderr.contains(text),
                "{command}: expected {text:?} in:\n{}",
                run.stderr
            );
        }
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    // Nothing half-built in the cache, no build container left.
    assert!(!cache.path().join(bench).exists());
    let docker = sebs_container::connect().await.unwrap();
    let left = sebs_container::list_labelled(&docker, &[("sebs-local.build", "1")])
        .await
        .unwrap();
    let ours: Vec<_> = left
        .iter()
        .flat_map(|c| c.names.clone().unwrap_or_default())
        .filter(|n| n.contains(bench))
        .collect();
    assert!(ours.is_empty(), "build containers left behind: {ours:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// SeBS Node.js benchmarks through the binary: `--language nodejs` picks Node.js 18 by
/// default, npm installs `mustache` in a build container, and every fixture validates.
async fn nodejs_benchmarks_package_run_and_validate() {
    let cache = tempfile::tempdir().unwrap();
    let root = fixtures();

    let report = package(
        &root,
        cache.path(),
        "110.template",
        &["--language", "nodejs"],
    );
    assert_eq!(
        (&report["language"], &report["version"]),
        (&serde_json::json!("nodejs"), &serde_json::json!("18")),
        "{report}"
    );
    let dir = Path::new(report["dir"].as_str().unwrap());
    assert!(
        dir.join("node_modules/mustache/package.json").is_file(),
        "no mustache in {}",
        dir.display()
    );
    assert!(dir.join("handler.js").is_file() && dir.join("function/templates/page.html").is_file());

    for bench in ["110.template", "010.sleep", "040.data-file"] {
        let run = sebs_local(&[
            "invoke",
            bench,
            "test",
            "--language",
            "nodejs",
            "--validate",
            "--repetitions",
            "2",
            "--benchmarks-dir",
            root.to_str().unwrap(),
            "--cache",
            cache.path().to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{bench}: {}", run.stderr);
        assert!(
            run.stderr.contains("2 passed, 0 failed"),
            "{bench}: {}",
            run.stderr
        );
        let lines = run.lines();
        assert_eq!(lines.len(), 2, "{}", run.stdout);
        assert_eq!(lines[0]["stats"]["cold_start"], true, "{}", lines[0]);
        assert_eq!(lines[1]["stats"]["cold_start"], false, "{}", lines[1]);
        if bench == "110.template" {
            assert!(
                run.stderr.contains("reused=true"),
                "packaged again: {}",
                run.stderr
            );
            let html = lines[0]["output"]["result"]["output"]["result"]
                .as_str()
                .unwrap();
            assert!(html.contains("<h1>Welcome testname!</h1>"), "{html}");
            assert_eq!(html.matches("<li>").count(), 10, "{html}");
        }
    }

    // A thrown error is a failed invocation with the JavaScript error's type.
    let run = sebs_local(&[
        "invoke",
        "020.raise",
        "test",
        "--language",
        "nodejs",
        "--benchmarks-dir",
        root.to_str().unwrap(),
        "--cache",
        cache.path().to_str().unwrap(),
    ]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("RangeError") || run.stderr.contains("RangeError"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

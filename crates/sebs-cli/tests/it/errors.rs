//! What `sebs-local` prints when it fails, pinned: bad flags exit 2 at once with the bounds
//! they missed (never a panic), and each cause of a printed error chain appears once.

use std::path::Path;
use std::process::Command;

use sebs_testkit::{trial, Trial, ENGINE};

use crate::AGENT;

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(bad_flags_exit_2_with_their_bounds_before_anything_starts),
        trial!(an_unknown_language_version_names_the_supported_ones),
        trial!(broken_files_print_each_cause_once),
        trial!(limits_the_engine_refuses_are_bad_input, ENGINE, AGENT),
    ]
}

/// The embedded stores a `start` here may start (it writes SeBS's object storage block),
/// named for this process and removed by [`remove_stores`].
fn store_prefix() -> String {
    format!("sebs-test-errors-{}", std::process::id())
}

fn remove_stores(prefix: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_sebs-local"))
        .args(["storage", "stop", "--embedded", "--remove-data"])
        .env("SEBS_STORE_PREFIX", prefix)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        other => eprintln!("could not remove the stores {prefix}: {other:?}"),
    }
}

/// `sebs-local args` in `dir` without logs: its exit code and its stderr, the temporary
/// directory shown as `[TMP]`.
fn fail(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sebs-local"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .env("XDG_RUNTIME_DIR", dir.join("runtime"))
        .env("SEBS_STORE_PREFIX", store_prefix())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir.display().to_string(), "[TMP]");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    (out.status.code(), stderr)
}

/// Checks `sebs-local args` exits 2 printing `expect`, and that no part of its error chain
/// (the texts between ": ") is printed twice.
fn check(dir: &Path, args: &[&str], expect: &str) {
    let (code, stderr) = fail(dir, args);
    assert_eq!(stderr, expect, "{args:?}");
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert_each_cause_once(&stderr);
}

fn assert_each_cause_once(stderr: &str) {
    let parts: Vec<&str> = stderr.trim_end().split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} is printed twice in {stderr}"
        );
    }
}

fn bad_flags_exit_2_with_their_bounds_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = |flags: &[&str]| {
        let mut args = vec!["start", "000.noop", "test", "out.json"];
        args.extend_from_slice(flags);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["--timeout", "18446744073709551615"],
            "error: bad function configuration: use a timeout of 18446744073709551615 s: it must \
             be from 1 s to 86400 s (a day)\n",
        ),
        (
            &["--timeout", "0"],
            "error: bad function configuration: use a timeout of 0 s: it must be from 1 s to \
             86400 s (a day)\n",
        ),
        (
            &["--memory", "18446744073709551615"],
            "error: bad function configuration: use a memory limit of 18446744073709551615 MB: it \
             must be from 6 MB to 8796093022207 MB\n",
        ),
        (
            &["--memory", "4"],
            "error: bad function configuration: use a memory limit of 4 MB: it must be from 6 MB \
             to 8796093022207 MB\n",
        ),
        (
            &["--cpus", "1e300"],
            "error: bad function configuration: use a CPU limit of 1e300: it must be more than 0 \
             and at most 1000000000.0\n",
        ),
        (
            &["--cpus", "nan"],
            "error: bad function configuration: use a CPU limit of NaN: it must be more than 0 \
             and at most 1000000000.0\n",
        ),
    ];
    for (flags, expect) in cases {
        let args = start(flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        check(d, &args, expect);
    }
    // Flags clap bounds: its own message, the same exit code.
    for flag in [
        ["--measure-interval", "18446744073709551615"],
        ["--measure-interval", "0"],
        ["--deployments", "0"],
        ["--deployments", "4294967295"],
    ] {
        let args = start(&flag);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = fail(d, &args);
        assert_eq!(code, Some(2), "{flag:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: invalid value '{}' for '{}",
                flag[1], flag[0]
            )),
            "{stderr}"
        );
    }
    assert!(!d.join("out.json").exists());
}

fn an_unknown_language_version_names_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let python = "error: bad --language-version: use python \"9.99\": unknown version; the \
                  supported ones are 3.7, 3.8, 3.9, 3.10, 3.11, 3.12\n";
    for args in [
        &["invoke", "010.sleep", "test", "--language-version", "9.99"][..],
        &["package", "010.sleep", "--language-version", "9.99"],
        &["images", "prepare", "--language-version", "9.99"],
    ] {
        check(dir.path(), args, python);
    }
    check(
        dir.path(),
        &[
            "package",
            "010.sleep",
            "--language",
            "nodejs",
            "--language-version",
            "../../etc",
        ],
        "error: bad --language-version: use nodejs \"../../etc\": unknown version; the \
         supported ones are 14, 16, 18, 20\n",
    );
    // Nothing was built or cached.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn broken_files_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("broken.json"), "{\"functions\": [").unwrap();
    check(
        d,
        &["stop", "broken.json"],
        "error: cannot stop this deployment: parse deployment file broken.json: it is not \
         JSON: EOF while parsing a list at line 1 column 15\n",
    );
    // A benchmark whose config.json is not JSON: the file, then the parser's reason.
    let bench = d.join("benchmarks/900.tests/901.broken");
    std::fs::create_dir_all(bench.join("python")).unwrap();
    std::fs::write(bench.join("config.json"), "{\"timeout\": ").unwrap();
    let (code, stderr) = fail(
        d,
        &[
            "package",
            "901.broken",
            "--benchmarks-dir",
            "benchmarks",
            "--cache",
            "cache",
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("901.broken/config.json") && stderr.contains("EOF while parsing"),
        "{stderr}"
    );
    assert_each_cause_once(&stderr);
}

/// The engine refuses a CPU limit beyond the host's: the user's value is wrong (exit 2),
/// and the engine's reason is printed once.
fn limits_the_engine_refuses_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let label = format!("sebs-local.testrun={}", uuid::Uuid::new_v4().simple());
    let (code, stderr) = fail(
        dir.path(),
        &[
            "start",
            "000.noop",
            "test",
            "out.json",
            "--cpus",
            "100000",
            "--cache",
            "cache",
            "--label",
            "sebs-local.test=1",
            "--label",
            &label,
        ],
    );
    remove_stores(&store_prefix());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("the engine refused its configuration: Range of CPUs is from 0.01 to"),
        "{stderr}"
    );
    assert_each_cause_once(&stderr);
    assert!(!dir.path().join("out.json").exists());
}

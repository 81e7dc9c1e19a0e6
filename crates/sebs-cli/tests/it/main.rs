//! The `sebs-local` binary driven as a user drives it: start, curl, logs, stop, cleanup.
//!
//! Needs a Docker engine, the static agent (`SEBS_AGENT_BIN` or `cargo xtask agent`) and a
//! Python image. Every container carries `sebs-local.test=1` and a label unique to the test,
//! by which the test removes them at the end, also when it fails.

mod engines;
mod errors;
mod memory;
mod packages;
mod sebs_readers;
mod storage;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sebs_testkit::{trial, Trial, AGENT, ENGINE, PYTHON3};
use serde_json::Value;

sebs_testkit::main!(
    trials(),
    memory::trials(),
    packages::trials(),
    sebs_readers::trials(),
    storage::trials(),
    errors::trials(),
    engines::trials()
);

/// The tests of this module, each with what it needs from the machine.
fn trials() -> Vec<Trial> {
    vec![
        trial!(start_20_deployments_curl_each_and_stop, ENGINE, AGENT),
        trial!(
            two_parallel_publishing_starts_get_disjoint_ports_on_127_0_0_1,
            ENGINE,
            AGENT
        ),
        trial!(
            stop_after_an_external_kill_reports_it_and_cleans_up_the_rest,
            ENGINE,
            AGENT
        ),
        trial!(
            broken_and_foreign_deployment_files_are_clear_errors,
            ENGINE,
            AGENT
        ),
        trial!(cleanup_removes_every_labelled_container, ENGINE, AGENT),
        trial!(ctrl_c_during_start_leaves_no_container, ENGINE, AGENT),
        trial!(
            a_failing_input_py_fails_start_and_leaves_no_container,
            ENGINE,
            AGENT,
            PYTHON3
        ),
        trial!(
            input_py_is_answered_from_memory_only_for_its_own_text,
            ENGINE,
            AGENT,
            PYTHON3
        ),
        trial!(report_writes_the_page_of_a_results_directory),
        trial!(
            the_sandbox_is_strict_by_default_and_loosened_by_flags,
            ENGINE,
            AGENT
        ),
    ]
}

const BIN: &str = env!("CARGO_BIN_EXE_sebs-local");
/// A label only this test's containers carry.
const RUN_KEY: &str = "sebs-local.testrun";

/// One test's world: temp cache and runtime dir (port locks), a unique label, its own
/// embedded stores (`start` of any benchmark writes SeBS's object storage block, starting the
/// embedded object store when there is none), cleanup on drop.
struct Cli {
    dir: tempfile::TempDir,
    run: String,
    store_prefix: String,
    runtime: &'static tokio::runtime::Runtime,
    docker: sebs_container::Docker,
}

impl Cli {
    fn new() -> Cli {
        let runtime = sebs_testkit::runtime();
        let docker = runtime.block_on(sebs_testkit::docker());
        let run = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        Cli {
            dir: tempfile::tempdir().unwrap(),
            store_prefix: format!("sebs-test-{run}"),
            run,
            runtime,
            docker,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sebs-local <args>` with this test's cache, port-lock dir and labels where they apply.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        if args.first() == Some(&"start") {
            let cache = self.path("cache");
            cmd.arg("--cache").arg(cache);
            cmd.args([
                "--label",
                "sebs-local.test=1",
                "--label",
                &format!("{RUN_KEY}={}", self.run),
            ]);
        }
        cmd.env("XDG_RUNTIME_DIR", self.path("runtime"));
        cmd.env("RUST_LOG", "info");
        cmd.env("SEBS_STORE_PREFIX", &self.store_prefix);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        eprintln!(
            "$ sebs-local {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn start(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "start failed");
        let file = args.iter().find(|a| a.ends_with(".json")).unwrap();
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    /// Ids of this test's containers, running or not.
    fn containers(&self) -> Vec<String> {
        self.runtime
            .block_on(sebs_container::list_labelled(
                &self.docker,
                &[(RUN_KEY, self.run.as_str())],
            ))
            .unwrap()
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let removed = self.runtime.block_on(sebs_container::remove_labelled(
            &self.docker,
            (RUN_KEY, &self.run),
        ));
        if let Err(e) = removed {
            eprintln!("could not remove this test's containers: {e}");
        }
        let stores = Command::new(BIN)
            .args(["storage", "stop", "--embedded", "--remove-data"])
            .env("SEBS_STORE_PREFIX", &self.store_prefix)
            .output();
        match stores {
            Ok(o) if o.status.success() => {}
            other => eprintln!("could not remove this test's stores: {other:?}"),
        }
    }
}

/// What `curl <url> -X POST -d '{}' -H 'Content-Type: application/json'` does: the status and body.
fn curl_post(url: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(url).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {url}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Writes a benchmark `<root>/900.tests/<name>/` in SeBS's format: `input` is input.json
/// when it is a JSON object, else input.py; returns its directory.
fn write_benchmark(
    root: &Path,
    name: &str,
    function: &str,
    input: &str,
    requirements: Option<&str>,
) -> PathBuf {
    let dir = root.join("900.tests").join(name);
    std::fs::create_dir_all(dir.join("python")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"timeout": 30, "memory": 128, "languages": ["python"], "modules": []}"#,
    )
    .unwrap();
    std::fs::write(dir.join("python/function.py"), function).unwrap();
    if input.trim_start().starts_with('{') {
        std::fs::write(dir.join("input.json"), input).unwrap();
    } else {
        std::fs::write(dir.join("input.py"), input).unwrap();
    }
    if let Some(req) = requirements {
        std::fs::write(dir.join("python/requirements.txt"), req).unwrap();
    }
    dir
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key} in {v}"))
}

fn start_20_deployments_curl_each_and_stop() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let started = Instant::now();
    let file = cli.start(&[
        "start",
        "000.noop",
        "test",
        out,
        "--deployments",
        "20",
        "--remove-containers",
    ]);
    eprintln!("20 deployments answered after {:?}", started.elapsed());

    let functions = file["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 20);
    assert_eq!(file["inputs"], serde_json::json!([{}]));
    let mut ids = std::collections::BTreeSet::new();
    for f in functions {
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "benchmark",
                "config",
                "hash",
                "instance_id",
                "name",
                "port",
                "triggers",
                "url"
            ]
        );
        assert_eq!(str_of(f, "benchmark"), "000.noop");
        assert_eq!(str_of(f, "name"), "000.noop-python-128");
        assert!(
            str_of(f, "url").ends_with(&format!(":{}", f["port"])),
            "{f}"
        );
        ids.insert(str_of(f, "instance_id").to_string());
        let (status, body) = curl_post(str_of(f, "url"), "{}");
        assert_eq!(status, 200, "{body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["is_cold"], true);
        assert_eq!(answer["result"], serde_json::json!({"output": {}}));
    }
    assert_eq!(ids.len(), 20, "each function has its own container");
    assert_eq!(cli.containers().len(), 20);

    let logs = cli.run(&["logs", out]);
    assert_eq!(logs.status.code(), Some(0));
    let text = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(text.matches("sebs-agent: listening").count(), 20, "{text}");

    // A second start over the same file would orphan these 20: it is refused, naming them.
    let again = cli.run(&["start", "000.noop", "test", out]);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("sebs-local stop"), "{err}");
    assert!(ids.iter().all(|id| err.contains(id.as_str())), "{err}");
    assert_eq!(cli.containers().len(), 20);

    let stop = cli.run(&["stop", out]);
    assert_eq!(stop.status.code(), Some(0));
    assert_eq!(
        cli.containers(),
        Vec::<String>::new(),
        "--remove-containers: stop removes them"
    );
}

fn two_parallel_publishing_starts_get_disjoint_ports_on_127_0_0_1() {
    let cli = Cli::new();
    let (a, b) = (cli.path("a.json"), cli.path("b.json"));
    let spawn = |out: &Path| {
        // a's containers are kept at stop, b's removed (the default).
        let keep = if out == a.as_path() {
            "--no-remove-containers"
        } else {
            "--remove-containers"
        };
        cli.command(&[
            "start",
            "000.noop",
            "test",
            out.to_str().unwrap(),
            "--deployments",
            "4",
            "--publish",
            "--port-range",
            "19700-19799",
            keep,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
    };
    let (mut pa, mut pb) = (spawn(&a), spawn(&b));
    assert!(
        pa.wait().unwrap().success() && pb.wait().unwrap().success(),
        "a start failed"
    );
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let mut ports = Vec::new();
    for file in [read(&a), read(&b)] {
        for f in file["functions"].as_array().unwrap() {
            let url = str_of(f, "url");
            assert!(url.starts_with("127.0.0.1:"), "{url}");
            ports.push(f["port"].as_u64().unwrap());
            assert_eq!(curl_post(url, "{}").0, 200);
        }
        let instances = file["sebs_local"]["instances"].as_array().unwrap();
        assert!(
            instances.iter().all(|i| i["published_port"].is_u64()),
            "{file}"
        );
    }
    let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 8, "two starts shared ports: {ports:?}");
    assert!(
        ports.iter().all(|p| (19700..=19799).contains(p)),
        "{ports:?}"
    );

    for f in [&a, &b] {
        assert_eq!(
            cli.run(&["stop", f.to_str().unwrap()]).status.code(),
            Some(0)
        );
    }
    // a's kept, b's removed; the ports of both are free again.
    assert_eq!(cli.containers().len(), 4);
    let locks = cli.path("runtime/sebs-local/ports");
    let left: Vec<_> = std::fs::read_dir(&locks)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "port leases left after stop: {left:?}");
}

fn stop_after_an_external_kill_reports_it_and_cleans_up_the_rest() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = cli.start(&[
        "start",
        "000.noop",
        "test",
        out,
        "--deployments",
        "3",
        "--remove-containers",
    ]);
    let ids: Vec<String> = file["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| str_of(f, "instance_id").to_string())
        .collect();
    cli.runtime.block_on(async {
        sebs_container::kill(&cli.docker, &ids[0]).await.unwrap();
        sebs_container::remove(&cli.docker, &ids[1], true)
            .await
            .unwrap();
    });
    let stop = cli.run(&["stop", out]);
    assert_eq!(
        stop.status.code(),
        Some(5),
        "a lost function is exit code 5"
    );
    let log = String::from_utf8_lossy(&stop.stderr);
    assert!(
        log.contains(&format!("container {} of function", ids[0]))
            && log.contains("had already exited (code 137"),
        "{log}"
    );
    assert!(
        log.contains(&format!("container {} of function", ids[1]))
            && log.contains("removed behind our back"),
        "{log}"
    );
    assert_eq!(
        cli.containers(),
        Vec::<String>::new(),
        "everything is removed anyway"
    );
}

fn broken_and_foreign_deployment_files_are_clear_errors() {
    let cli = Cli::new();
    let check = |name: &str, text: &str, needle: &str| {
        let path = cli.path(name);
        std::fs::write(&path, text).unwrap();
        for command in ["stop", "logs"] {
            let out = cli.run(&[command, path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{command} {name}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(needle) && err.contains(name),
                "{command} {name}: {err}"
            );
        }
    };
    check("broken.json", "{\"functions\": [", "it is not JSON");
    check(
        "sebs.json",
        r#"{"functions": [], "inputs": [], "storage": null}"#,
        "not written by `sebs-local start`",
    );
    check(
        "future.json",
        r#"{"sebs_local": {"format": 99}}"#,
        "has format 99",
    );
    let missing = cli.run(&["stop", cli.path("missing.json").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
}

fn cleanup_removes_every_labelled_container() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    cli.start(&[
        "start",
        "000.noop",
        "test",
        out.to_str().unwrap(),
        "--deployments",
        "2",
        "--publish",
        "--port-range",
        "19800-19899",
    ]);
    assert_eq!(cli.containers().len(), 2);
    // Narrowed to this test's label: other tests' containers must survive.
    let label = format!("{RUN_KEY}={}", cli.run);
    let clean = cli.run(&["cleanup", "--label", &label]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&clean.stderr).contains("removed 2 containers, freed 2 host ports")
    );
    assert_eq!(cli.containers(), Vec::<String>::new());
}

fn ctrl_c_during_start_leaves_no_container() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let mut child = cli
        .command(&[
            "start",
            "000.noop",
            "test",
            out.to_str().unwrap(),
            "--deployments",
            "12",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt once the first containers exist, while others are still starting.
    let deadline = Instant::now() + Duration::from_secs(60);
    while cli.containers().is_empty() {
        assert!(Instant::now() < deadline, "no container appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        cli.containers(),
        Vec::<String>::new(),
        "containers left after Ctrl-C"
    );
    assert!(!out.exists(), "no out.json for an interrupted start");
}

/// `start` runs input.py while its containers start; an input.py that fails (here after the
/// containers had time to be created) still fails the start as bad input (exit 2), naming
/// its error, with no container left and no out.json.
fn a_failing_input_py_fails_start_and_leaves_no_container() {
    let cli = Cli::new();
    write_benchmark(
        &cli.path("benchmarks"),
        "930.bad-input",
        "def handler(event):\n    return {}\n",
        "import time\n\n\
         def generate_input(data_dir, size, benchmarks_bucket, input_paths, output_paths, upload_func, nosql_func):\n\
         \x20   time.sleep(3)\n\
         \x20   raise ValueError('no input today')\n",
        None,
    );
    let out = cli.path("out.json");
    let root = cli.path("benchmarks");
    let run = cli.run(&[
        "start",
        "930.bad-input",
        "test",
        out.to_str().unwrap(),
        "--benchmarks-dir",
        root.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no input today"), "{stderr}");
    assert!(
        stderr.contains("failed to make the input of 930.bad-input"),
        "{stderr}"
    );
    assert_eq!(
        cli.containers(),
        Vec::<String>::new(),
        "containers left after a failed input.py"
    );
    assert!(!out.exists(), "no out.json for a failed start");
}

/// `start` remembers what `input.py` needs by its text and deploys on that answer at once
/// (the debug phase log says which): an unchanged `input.py` is answered from memory, a
/// changed one is inspected first, and a remembered answer the inspection contradicts (here
/// planted) has the start's containers removed and the start made again on the new answer.
fn input_py_is_answered_from_memory_only_for_its_own_text() {
    let cli = Cli::new();
    let bench = write_benchmark(
        &cli.path("benchmarks"),
        "931.remembered",
        "def handler(event):\n    return event\n",
        "",
        None,
    );
    let input_py = |size: u32| {
        let text = format!(
            "def buckets_count():\n    return (0, 0)\n\n\
             def generate_input(data_dir, size, benchmarks_bucket, input_paths, output_paths, upload_func, nosql_func):\n\
             \x20   return {{'n': {size}}}\n"
        );
        std::fs::write(bench.join("input.py"), text).unwrap();
    };
    let out = cli.path("out.json");
    let root = cli.path("benchmarks");
    let start = |expect_phase: &str| {
        let args = [
            "start",
            "931.remembered",
            "test",
            out.to_str().unwrap(),
            "--benchmarks-dir",
            root.to_str().unwrap(),
        ];
        let run = cli
            .command(&args)
            .env("RUST_LOG", "info,sebs_cli=debug")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        eprintln!("$ sebs-local {}\n{stderr}", args.join(" "));
        assert_eq!(run.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(expect_phase),
            "{expect_phase:?} not in {stderr}"
        );
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(cli.containers().len(), 1, "one deployment, one container");
        let stop = cli.run(&["stop", out.to_str().unwrap()]);
        assert_eq!(stop.status.code(), Some(0));
        (file["inputs"].clone(), stderr)
    };
    let inspected = "input.py inspected, image found";
    let remembered = "input.py's needs remembered";
    input_py(1);
    assert_eq!(start(inspected).0, serde_json::json!([{"n": 1}]));
    assert_eq!(start(remembered).0, serde_json::json!([{"n": 1}]));
    input_py(2);
    let (inputs, stderr) = start(inspected);
    assert_eq!(inputs, serde_json::json!([{"n": 2}]));
    assert!(!stderr.contains(remembered), "{stderr}");

    // An answer the inspection contradicts: the memo's answers (one per text of input.py),
    // planted with no buckets_count() where input.py has one.
    let memo = cli.path("cache/.needs");
    let files: Vec<_> = std::fs::read_dir(&memo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("931.remembered"))
        .collect();
    assert_eq!(files.len(), 2, "one answer per text: {files:?}");
    for file in &files {
        std::fs::write(file, r#"{"buckets": null, "tables": {}}"#).unwrap();
    }
    let (inputs, stderr) = start(remembered);
    assert_eq!(inputs, serde_json::json!([{"n": 2}]));
    assert!(
        stderr.contains("starting again on the new answer"),
        "{stderr}"
    );
    assert!(
        stderr.contains(inspected),
        "the second attempt inspects: {stderr}"
    );
}

/// `report DIR`: the page of a results directory (found in DIR/perf-cost), its path on
/// stdout; a directory without results, or none at all, is bad input. Needs no engine.
fn report_writes_the_page_of_a_results_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sebs-report/tests/data/010.sleep/perf-cost");
    let results = dir.path().join("perf-cost");
    std::fs::create_dir(&results).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), results.join(entry.file_name())).unwrap();
    }
    let out = Command::new(BIN)
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let page = results.join("report.html");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        page.display().to_string()
    );
    for file in ["report.html", "client_time.svg", "time_breakdown.svg"] {
        assert!(results.join(file).is_file(), "{file}: {err}");
    }

    let empty = tempfile::tempdir().unwrap();
    for (path, needle) in [
        (empty.path().to_path_buf(), "no perf-cost results"),
        (empty.path().join("nope"), "nope"),
    ] {
        let out = Command::new(BIN).arg("report").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert!(
            err.contains("failed to write the report") && err.contains(needle),
            "{err}"
        );
    }
}

/// The sandbox as a user meets it: the probe under `invoke` with the defaults (as root on a
/// CI machine: an unprivileged user, no capabilities, EROFS outside /tmp, ENOSPC at 512 MiB,
/// fewer than 1024 tasks), and `start` with every limit loosened, recorded in out.json.
fn the_sandbox_is_strict_by_default_and_loosened_by_flags() {
    let cli = Cli::new();
    let cache = cli.path("cache");
    let invoke = cli.run(&[
        "invoke",
        "060.sandbox-probe",
        "test",
        "--validate",
        "--cache",
        cache.to_str().unwrap(),
    ]);
    assert_eq!(invoke.status.code(), Some(0));
    let record: Value = serde_json::from_slice(&invoke.stdout).unwrap();
    let probe = &record["output"]["result"]["output"];
    let host_user = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    let (uid, _) = sebs_platform::FunctionUser::Auto.resolve(host_user);
    assert_eq!(probe["uid"], uid, "{probe:#}");
    assert_ne!(probe["uid"], 0, "{probe:#}");
    assert_eq!(probe["cap_eff"], "0000000000000000", "{probe:#}");
    assert_eq!(
        probe["writes"],
        serde_json::json!({"/": "EROFS", "/function": "EROFS", "/tmp": "ok"})
    );
    assert_eq!(
        (&probe["tmp_fill_error"], &probe["tmp_filled_bytes"]),
        (&serde_json::json!("ENOSPC"), &serde_json::json!(512 << 20)),
        "{probe:#}"
    );
    assert!(probe["tasks_started"].as_u64().unwrap() < 1024, "{probe:#}");

    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    #[rustfmt::skip]
    let file = cli.start(&[
        "start", "060.sandbox-probe", "test", out, "--remove-containers",
        "--tmp-size", "32", "--pids-limit", "0", "--user", "1234:4321",
    ]);
    assert_eq!(
        file["sebs_local"]["sandbox"],
        serde_json::json!({
            "uid": 1234, "gid": 4321, "tmp_size_mb": 32, "tmp_on": "memory",
            "pids_limit": null, "read_only_root": true, "privileged": false,
            "agent_capabilities": ["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"],
        })
    );
    let url = str_of(&file["functions"][0], "url");
    let (status, body) = curl_post(url, r#"{"fill_tmp_mb": 64, "tasks": 1100}"#);
    assert_eq!(status, 200, "{body}");
    let probe = &serde_json::from_str::<Value>(&body).unwrap()["result"]["output"];
    assert_eq!(
        (&probe["uid"], &probe["gid"]),
        (&serde_json::json!(1234), &serde_json::json!(4321))
    );
    assert_eq!(probe["tmp_filled_bytes"], 32 << 20, "{probe:#}");
    assert_eq!(probe["tasks_started"], 1100, "{probe:#}");
    assert_eq!(cli.run(&["stop", out]).status.code(), Some(0));

    // A /tmp on disk is not memory: a 128 MB function writes 600 MiB into it (the tmpfs
    // stops it at 512 MiB, and its memory limit would kill it first); the volume goes with
    // the container.
    #[rustfmt::skip]
    let file = cli.start(&[
        "start", "060.sandbox-probe", "test", out, "--memory", "128", "--tmp-on", "disk",
    ]);
    assert_eq!(file["sebs_local"]["sandbox"]["tmp_on"], "disk");
    assert_eq!(file["sebs_local"]["sandbox"]["tmp_size_mb"], Value::Null);
    let url = str_of(&file["functions"][0], "url");
    let (status, body) = curl_post(url, r#"{"fill_tmp_mb": 600}"#);
    assert_eq!(status, 200, "{body}");
    let probe = &serde_json::from_str::<Value>(&body).unwrap()["result"]["output"];
    assert_eq!(
        (&probe["tmp_fill_error"], &probe["tmp_filled_bytes"]),
        (&Value::Null, &serde_json::json!(600 << 20)),
        "{probe:#}"
    );
    assert_eq!(probe["writes"]["/"], "EROFS", "{probe:#}");
    let volumes = |cli: &Cli| {
        cli.runtime
            .block_on(sebs_container::list_labelled_volumes(
                &cli.docker,
                &[(RUN_KEY, cli.run.as_str())],
            ))
            .unwrap()
    };
    assert_eq!(volumes(&cli).len(), 1, "one /tmp volume for the container");
    assert_eq!(cli.run(&["stop", out]).status.code(), Some(0));
    assert_eq!(
        volumes(&cli),
        Vec::<String>::new(),
        "the /tmp volume outlived stop"
    );

    // Values the sandbox cannot take are bad input, refused before anything starts.
    for bad in [
        &["--user", "0:5"][..],
        &["--user", "alice"],
        &["--tmp-size", "-1"],
        &["--pids-limit", "x"],
        &["--pids-limit", "3"],
        &["--tmp-on", "ram"],
        &["--tmp-on", "disk", "--tmp-size", "32"],
    ] {
        let args = [&["invoke", "060.sandbox-probe", "test"][..], bad].concat();
        let refused = cli.run(&args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
    }
    let refused = cli.run(&[
        "invoke",
        "060.sandbox-probe",
        "test",
        "--tmp-on",
        "disk",
        "--tmp-size",
        "32",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no size limit"), "{stderr}");
}

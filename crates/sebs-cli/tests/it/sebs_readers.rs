//! SeBS's `local stop` reading an out.json of `sebs-local start`, written down as rules (CI
//! has no SeBS), and start, stop and start again on one file as SeBS users do.
//!
//! The rules, as SeBS's code has them (serverless-benchmarks, 2026), `Deployment.deserialize`
//! then `Deployment.shutdown`:
//! - `inputs` is a list; `functions` a list, each read by `LocalFunction.deserialize`:
//!   `instance_id` must name an existing container (else "Cached container ... not available
//!   anymore"); `config` by `FunctionConfig.deserialize`, which keeps `timeout`, `memory`,
//!   `runtime`, `architecture`, needs the first three, and reads `runtime` with
//!   `Runtime.deserialize`: `language` one of `python`, `nodejs`, `cpp`, `java`, `version`,
//!   `language-variant` (default `default`) a variant of that language; `port`, `name`,
//!   `benchmark`, `hash`. On Linux the container must have an address on the network named
//!   `bridge`, else "Incorrect detection of IP address".
//! - `memory_measurements`, when there: `pids` (each killed with SIGKILL) and `file`, read
//!   line by line: `precision not met` counts a precision error, `<id> <integer>` is a sample
//!   of that container, any other line is skipped; then the file is removed.
//! - `storage` is read by `MinioConfig.deserialize`, which iterates its items (`null` fails:
//!   "'NoneType' object has no attribute 'items'") and keeps MinioConfig's fields; a non-empty
//!   `instance_id` must name an existing container; without `address` that container's
//!   bridge address is used.
//! - Then each function's container is stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{str_of, Cli, AGENT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<sebs_testkit::Trial> {
    use sebs_testkit::{trial, ENGINE};
    vec![
        trial!(the_rules_catch_what_sebs_would_fail_on),
        trial!(
            start_stop_start_on_one_file_which_sebs_reads,
            ENGINE,
            AGENT,
            crate::storage::STORE
        ),
    ]
}

/// What SeBS's `local stop` reads from out.json without asking the engine; returns the
/// container ids of the functions, in order.
pub fn sebs_reads_deployment(doc: &Value) -> Result<Vec<String>, String> {
    let key = |v: &Value, at: &str, name: &str| -> Result<Value, String> {
        v.get(name)
            .cloned()
            .ok_or_else(|| format!("KeyError: {at}.{name} is missing"))
    };
    key(doc, "", "inputs")?
        .as_array()
        .ok_or("inputs is not a list")?;
    let mut ids = Vec::new();
    for (i, f) in key(doc, "", "functions")?
        .as_array()
        .ok_or("functions is not a list")?
        .iter()
        .enumerate()
    {
        let at = format!("functions[{i}]");
        for name in ["port", "name", "benchmark", "hash"] {
            key(f, &at, name)?;
        }
        let config = key(f, &at, "config")?;
        let at_config = format!("{at}.config");
        for name in ["timeout", "memory"] {
            key(&config, &at_config, name)?;
        }
        let runtime = key(&config, &at_config, "runtime")?;
        let language = key(&runtime, &at_config, "language")?;
        key(&runtime, &at_config, "version")?;
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
            return Err(format!("unknown variant {variant:?} for {language}"));
        }
        let id = key(f, &at, "instance_id")?;
        ids.push(
            id.as_str()
                .ok_or("instance_id is not a string")?
                .to_string(),
        );
    }
    if let Some(m) = doc.get("memory_measurements") {
        let pids = key(m, "memory_measurements", "pids")?;
        let pids = pids
            .as_array()
            .ok_or("memory_measurements.pids is not a list")?;
        if !pids.iter().all(|p| p.as_i64().is_some_and(|p| p > 0)) {
            return Err(format!(
                "memory_measurements.pids are not process ids: {pids:?}"
            ));
        }
        key(m, "memory_measurements", "file")?
            .as_str()
            .ok_or("memory_measurements.file is not a path")?;
    }
    read_storage(&key(doc, "", "storage")?)?;
    Ok(ids)
}

/// `MinioConfig.deserialize` of the `storage` block, without the engine.
pub fn read_storage(storage: &Value) -> Result<(), String> {
    let storage = storage
        .as_object()
        .ok_or("AttributeError: storage has no items (SeBS needs its object storage block)")?;
    let id = storage.get("instance_id").and_then(Value::as_str);
    let address = storage.get("address").and_then(Value::as_str);
    if id.unwrap_or_default().is_empty() && address.unwrap_or_default().is_empty() {
        return Err("storage has neither address nor instance_id".into());
    }
    Ok(())
}

/// SeBS's summary of a measurement file: samples per container, and precision errors.
pub fn sebs_reads_measurements(text: &str) -> (BTreeMap<String, Vec<i64>>, usize) {
    let mut samples: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut precision_errors = 0;
    for line in text.split_inclusive('\n') {
        if line == "precision not met\n" {
            precision_errors += 1;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [id, bytes, ..] = words[..] {
            if let Ok(bytes) = bytes.parse::<i64>() {
                samples.entry(id.to_string()).or_default().push(bytes);
            }
        }
    }
    (samples, precision_errors)
}

/// Whether `id` exists and, as `LocalFunction` needs on Linux, has an address on `bridge`.
fn has_bridge_address(cli: &Cli, id: &str) -> Result<(), String> {
    let address = cli
        .runtime
        .block_on(sebs_container::network_address(&cli.docker, id, "bridge"))
        .map_err(|e| format!("Cached container {id} not available anymore! ({e})"))?;
    if address.is_none() {
        return Err(format!(
            "Incorrect detection of IP address for container with id {id}"
        ));
    }
    Ok(())
}

fn the_rules_catch_what_sebs_would_fail_on() {
    let good = json!({
        "functions": [{"benchmark": "000.noop", "hash": "h", "instance_id": "c1", "name": "f",
            "port": 9000, "triggers": [], "url": "172.17.0.2:9000",
            "config": {"architecture": "x64", "memory": 128, "timeout": 10,
                "runtime": {"language": "python", "language-variant": "default", "version": "3.11"}}}],
        "inputs": [{}],
        "memory_measurements": {"file": "/tmp/x", "pids": [42]},
        "storage": {"address": "127.0.0.1:9011", "type": "minio"},
    });
    assert_eq!(sebs_reads_deployment(&good), Ok(vec!["c1".to_string()]));
    let check = |change: &dyn Fn(&mut Value), needle: &str| {
        let mut doc = good.clone();
        change(&mut doc);
        let err = sebs_reads_deployment(&doc).unwrap_err();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    check(&|d| d["storage"] = Value::Null, "no items");
    check(
        &|d| d["functions"][0]["config"]["runtime"]["language"] = json!("ruby"),
        "unknown language",
    );
    check(
        &|d| {
            d["functions"][0].as_object_mut().unwrap().remove("hash");
        },
        "functions[0].hash",
    );
    check(
        &|d| d["memory_measurements"] = json!({"file": "/tmp/x"}),
        "pids",
    );
    let (samples, errors) =
        sebs_reads_measurements("a 10\nb 7\nprecision not met\na 12\n{\"kind\": 1}\n");
    assert_eq!(samples["a"], [10, 12]);
    assert_eq!(samples["b"], [7]);
    assert_eq!(errors, 1);
}

fn start_stop_start_on_one_file_which_sebs_reads() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let memory = cli.path("memory_stats.json");
    let memory = memory.to_str().unwrap();
    let start = [
        "start",
        "000.noop",
        "test",
        out,
        "--deployments",
        "2",
        "--measure-interval",
        "20",
    ];
    let file = cli.start(&start);
    // A benchmark without storage still gets the object storage block SeBS's stop reads
    // (the embedded store's); its address must answer as a MinIO would.
    let file_for_sebs = file.clone();
    let address = str_of(&file["storage"], "address");
    assert!(
        minio_health_answers(address),
        "{address} does not answer as a MinIO: {file}"
    );
    let ids = sebs_reads_deployment(&file_for_sebs).unwrap_or_else(|e| panic!("{e}: {file}"));
    assert_eq!(ids.len(), 2);
    for id in &ids {
        has_bridge_address(&cli, id).unwrap();
    }
    // The measurement file SeBS's stop would read holds every container's samples.
    std::thread::sleep(Duration::from_millis(1500));
    let measurements = &file["memory_measurements"];
    assert_eq!(
        measurements["pids"],
        json!([file["sebs_local"]["memory"]["pid"]])
    );
    let text = std::fs::read_to_string(str_of(measurements, "file")).unwrap();
    let (samples, _) = sebs_reads_measurements(&text);
    for id in &ids {
        let of_id = samples.get(id).map_or(&[][..], Vec::as_slice);
        assert!(
            !of_id.is_empty() && of_id.iter().all(|&b| b > 0),
            "{id}: {of_id:?}"
        );
    }

    // A SeBS file naming a running container of ours is not written over either.
    let foreign = cli.path("sebs.json");
    std::fs::write(
        &foreign,
        json!({"functions": [{"instance_id": ids[0], "name": "f"}], "inputs": [], "storage": null})
            .to_string(),
    )
    .unwrap();
    let refused = cli.run(&["start", "000.noop", "test", foreign.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(&ids[0]) && err.contains("sebs local stop"),
        "{err}"
    );

    // Kept on stop; start again on the file replaces it and names what was left.
    let stop = cli.run(&["stop", out, memory, "--keep-containers"]);
    assert_eq!(stop.status.code(), Some(0));
    assert_eq!(cli.containers().len(), 2, "--keep-containers keeps them");
    let again = cli.run(&start);
    assert_eq!(again.status.code(), Some(0), "start after stop was refused");
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(
        log.contains("no longer runs") && log.contains(&ids[1]),
        "{log}"
    );
    assert!(
        !log.contains("\u{1b}["),
        "colour codes in a piped log: {log}"
    );
    let second: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let second_ids = sebs_reads_deployment(&{
        let mut f = second.clone();
        f["storage"] = file_for_sebs["storage"].clone();
        f
    })
    .unwrap();
    assert!(second_ids.iter().all(|id| !ids.contains(id)));

    // Removed on stop by default, as SeBS; then a third start on the same file.
    let stop = cli.run(&["stop", out, memory]);
    assert_eq!(stop.status.code(), Some(0));
    let left = cli.containers();
    assert!(
        left.len() == 2 && second_ids.iter().all(|id| !left.contains(id)),
        "stop removes the containers by default: {left:?}"
    );
    assert_eq!(cli.run(&start[..4]).status.code(), Some(0));
    assert_eq!(cli.run(&["stop", out, memory]).status.code(), Some(0));
}

/// Whether `GET /minio/health/live` at `address` (host:port) answers 200, as MinIO's does.
fn minio_health_answers(address: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request =
        format!("GET /minio/health/live HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

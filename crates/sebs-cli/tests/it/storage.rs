//! Object storage and NoSQL as a user meets them: the storage fixtures (Python and Node.js)
//! on the embedded stores and on stores of `storage start`, out.json's storage block, a
//! failed download in a function, and every storage fault a clear message and exit code.
//!
//! Each test names its own embedded stores (`SEBS_STORE_PREFIX`) and removes them, with their
//! data, at the end; packages are shared through one cache of this test binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sebs_testkit::{trial, Need, Trial, ENGINE, NODE, PYTHON3};
use serde_json::Value;

use crate::{curl_post, Cli, AGENT};

/// The static store binary the embedded stores run.
pub static STORE: Need = Need::new("the static store binary (`cargo xtask agent`)", || {
    sebs_container::find_static_binary("sebs-store", "SEBS_STORE_BIN", None)
        .map(drop)
        .map_err(|e| format!("failed to {e}"))
});

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            storage_fixtures_run_and_validate_on_the_embedded_stores,
            ENGINE,
            AGENT,
            STORE,
            PYTHON3,
            NODE
        ),
        trial!(
            storage_start_writes_sebs_file_and_commands_use_it,
            ENGINE,
            AGENT,
            STORE,
            PYTHON3
        ),
        trial!(
            storage_faults_are_clear_errors_with_exit_codes,
            ENGINE,
            AGENT,
            STORE,
            PYTHON3
        ),
        trial!(
            a_function_whose_download_fails_answers_with_the_s3_error,
            ENGINE,
            AGENT,
            STORE,
            PYTHON3
        ),
    ]
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// One package cache for all tests of this binary (it is safe to share).
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("storage-package-cache")
}

/// A test's own embedded stores: a name prefix no other test uses, stopped with their data
/// when dropped.
struct Stores {
    prefix: String,
}

impl Stores {
    fn new() -> Stores {
        Stores {
            prefix: sebs_container::testing::unique_name("sebs-test-stores"),
        }
    }

    fn command(&self, cli: &Cli, args: &[&str]) -> Command {
        let mut cmd = cli.command(args);
        cmd.env("SEBS_STORE_PREFIX", &self.prefix);
        cmd
    }

    fn run(&self, cli: &Cli, args: &[&str]) -> Output {
        let out = self.command(cli, args).output().unwrap();
        eprintln!(
            "$ sebs-local {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `invoke <bench> test --validate` of the fixtures, in `language`.
    fn invoke(&self, cli: &Cli, bench: &str, language: &str, extra: &[&str]) -> Output {
        let cache = shared_cache();
        let mut args = vec![
            "invoke",
            bench,
            "test",
            "--validate",
            "--language",
            language,
            "--cache",
            cache.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(cli, &args)
    }

    fn container_exists(&self, cli: &Cli, name: &str) -> bool {
        cli.runtime
            .block_on(sebs_container::inspect_service(&cli.docker, name))
            .unwrap()
            .is_some()
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        let out = Command::new(crate::BIN)
            .args(["storage", "stop", "--embedded", "--remove-data"])
            .env("SEBS_STORE_PREFIX", &self.prefix)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            other => eprintln!("could not stop the stores {}: {other:?}", self.prefix),
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn storage_fixtures_run_and_validate_on_the_embedded_stores() {
    let cli = Cli::new();
    let stores = Stores::new();
    for language in ["python", "nodejs"] {
        for bench in ["210.transform", "220.prefix", "230.cart"] {
            let out = stores.invoke(&cli, bench, language, &[]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{bench} {language}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(&format!("validation of {bench}: 1 passed, 0 failed")),
                "{bench} {language}"
            );
        }
    }
    // The stores were started once, by the first command, and are reused, as are the
    // inputs already in the bucket.
    let again = stores.invoke(&cli, "210.transform", "python", &[]);
    assert_eq!(again.status.code(), Some(0));
    let text = stderr(&again);
    assert!(text.contains("embedded object storage in use at"), "{text}");
    assert!(text.contains("0 uploaded, 1 already there"), "{text}");
    assert!(stores.container_exists(&cli, &format!("{}-object", stores.prefix)));
    assert!(stores.container_exists(&cli, &format!("{}-nosql", stores.prefix)));
    // `storage stop --embedded` removes them (and here their data).
    let out = stores.run(&cli, &["storage", "stop", "--embedded", "--remove-data"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stores.container_exists(&cli, &format!("{}-object", stores.prefix)));
}

fn storage_start_writes_sebs_file_and_commands_use_it() {
    let cli = Cli::new();
    let stores = Stores::new();
    let file = cli.path("storage.json");
    let out = stores.run(
        &cli,
        &[
            "storage",
            "start",
            "all",
            "--output-json",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // SeBS's nesting, every field SeBS reads filled.
    assert_eq!(json["object"]["type"], "minio");
    let minio = &json["object"]["minio"];
    for key in [
        "address",
        "access_key",
        "secret_key",
        "instance_id",
        "data_volume",
    ] {
        assert!(
            minio[key].as_str().is_some_and(|s| !s.is_empty()),
            "object.minio.{key}: {json}"
        );
    }
    assert!(
        minio["mapped_port"].as_i64().is_some_and(|p| p > 0),
        "{json}"
    );
    assert_eq!(json["nosql"]["type"], "scylladb");
    assert_eq!(json["nosql"]["scylladb"]["alternator_port"], 8000);
    assert_eq!(json["nosql"]["scylladb"]["region"], "None");

    let storage = file.to_str().unwrap();
    let out = stores.invoke(&cli, "230.cart", "python", &["--storage", storage]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = stores.invoke(&cli, "210.transform", "python", &["--storage", storage]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // No embedded store was started: the file's stores served.
    assert!(!stores.container_exists(&cli, &format!("{}-object", stores.prefix)));

    // A deployment's out.json carries SeBS's object storage block.
    let out_json = cli.path("out.json");
    let deployment = cli.start(&[
        "start",
        "210.transform",
        "test",
        out_json.to_str().unwrap(),
        "--storage",
        storage,
        "--benchmarks-dir",
        fixtures().to_str().unwrap(),
    ]);
    assert_eq!(deployment["storage"]["address"], minio["address"]);
    assert_eq!(deployment["storage"]["instance_id"], minio["instance_id"]);
    assert_eq!(deployment["storage"]["access_key"], minio["access_key"]);
    let out = cli.run(&["stop", out_json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));

    // `storage stop FILE` removes what the file lists.
    let out = stores.run(&cli, &["storage", "stop", "all", storage, "--remove-data"]);
    assert_eq!(out.status.code(), Some(0));
    let id = minio["instance_id"].as_str().unwrap();
    assert!(!stores.container_exists(&cli, id));
    let id = json["nosql"]["scylladb"]["instance_id"].as_str().unwrap();
    assert!(!stores.container_exists(&cli, id));
}

fn storage_faults_are_clear_errors_with_exit_codes() {
    let cli = Cli::new();
    let stores = Stores::new();
    let check = |args: &[&str], code: i32, expect: &[&str]| {
        let out = stores.invoke(&cli, args[0], "python", &args[1..]);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {text}");
        for e in expect {
            assert!(text.contains(e), "{args:?} should say {e:?}: {text}");
        }
        assert!(!text.contains("panicked"), "{text}");
    };
    let write = |name: &str, text: &str| {
        let path = cli.path(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };

    let not_json = write("bad.json", "{ not json");
    check(
        &["210.transform", "--storage", &not_json],
        2,
        &["invalid --storage file", "bad.json"],
    );
    // A loopback address: the host would reach it, the functions in containers never.
    let loopback = write(
        "loopback.json",
        r#"{"object": {"type": "minio", "minio": {"address": "127.0.0.1:1",
            "access_key": "a", "secret_key": "b"}}}"#,
    );
    check(
        &["210.transform", "--storage", &loopback],
        2,
        &["127.0.0.1:1", "loopback"],
    );
    // A file with only NoSQL for a benchmark that needs object storage.
    let only_nosql = write(
        "nosql-only.json",
        r#"{"nosql": {"type": "scylladb", "scylladb": {"address": "nosql.invalid:8000"}}}"#,
    );
    check(
        &["210.transform", "--storage", &only_nosql],
        2,
        &["210.transform needs object storage", "no `object` section"],
    );
    // A type we do not speak.
    let azure = write("azure.json", r#"{"object": {"type": "azure-blob"}}"#);
    check(&["210.transform", "--storage", &azure], 2, &["azure-blob"]);
    // Missing data: stops before anything starts, naming the folder and SeBS's data.
    check(
        &["210.transform", "--data-dir", "/nonexistent/data"],
        2,
        &[
            "/nonexistent/data/200.storage/210.transform",
            "serverless-benchmarks-data",
        ],
    );
    assert!(!stores.container_exists(&cli, &format!("{}-object", stores.prefix)));

    // A store that cannot start (its port is taken) takes down the one started before it:
    // without the file, nothing would find that one.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write(
        "busy.json",
        &format!(r#"{{"nosql": {{"type": "scylladb", "scylladb": {{"mapped_port": {port}}}}}}}"#),
    );
    let busy_out = cli.path("busy-out.json");
    let out = stores.run(
        &cli,
        &[
            "storage",
            "start",
            "all",
            &config,
            "--output-json",
            busy_out.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!busy_out.exists());
    let left = cli
        .runtime
        .block_on(sebs_container::list_labelled(
            &cli.docker,
            &[(sebs_storage::embedded::STORE_LABEL, "object")],
        ))
        .unwrap();
    assert!(
        left.iter().all(|c| c
            .names
            .iter()
            .flatten()
            .all(|n| !n.contains(&stores.prefix))),
        "the object store started first was left: {left:?}"
    );
    for kind in ["object", "nosql"] {
        let volumes = cli
            .runtime
            .block_on(sebs_container::list_labelled_volumes(
                &cli.docker,
                &[(sebs_storage::embedded::STORE_LABEL, kind)],
            ))
            .unwrap();
        assert!(
            volumes.iter().all(|v| !v.contains(&stores.prefix)),
            "a {kind} volume was left: {volumes:?}"
        );
    }
    drop(taken);

    // Wrong keys for a real store: refused by SigV4, the user's to fix.
    let file = cli.path("storage.json");
    let out = stores.run(
        &cli,
        &[
            "storage",
            "start",
            "object",
            "--output-json",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let id = json["object"]["minio"]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Nothing listens on port 1 of the store's container: the environment's fault,
    // naming the endpoint.
    let mut nowhere = json.clone();
    let address = json["object"]["minio"]["address"].as_str().unwrap();
    let host = address.rsplit_once(':').unwrap().0;
    nowhere["object"]["minio"]["address"] = Value::from(format!("{host}:1"));
    nowhere["object"]["minio"]["mapped_port"] = Value::from(-1);
    let nowhere = write("nowhere.json", &nowhere.to_string());
    check(
        &["210.transform", "--storage", &nowhere],
        3,
        &[&format!("{host}:1")],
    );
    json["object"]["minio"]["secret_key"] = Value::from("wrong");
    let wrong = write("wrong.json", &json.to_string());
    check(
        &["210.transform", "--storage", &wrong],
        2,
        &["SignatureDoesNotMatch"],
    );
    let out = stores.run(
        &cli,
        &["storage", "stop", file.to_str().unwrap(), "--remove-data"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!stores.container_exists(&cli, &id));
}

fn a_function_whose_download_fails_answers_with_the_s3_error() {
    let cli = Cli::new();
    let stores = Stores::new();
    let out_json = cli.path("out.json");
    let out = stores.run(
        &cli,
        &[
            "start",
            "210.transform",
            "test",
            out_json.to_str().unwrap(),
            "--benchmarks-dir",
            fixtures().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deployment: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    let url = deployment["functions"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let mut input = deployment["inputs"][0].clone();
    input["object"]["key"] = Value::from("not-there.txt");
    let (status, body) = curl_post(&url, &input.to_string());
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("NoSuchKey"), "{body}");
    assert!(body.contains("not-there.txt"), "{body}");
    // The function keeps serving: the real input works.
    let (status, body) = curl_post(&url, &deployment["inputs"][0].to_string());
    assert_eq!(status, 200, "{body}");
    let out = cli.run(&["stop", out_json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
}

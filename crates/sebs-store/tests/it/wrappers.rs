//! The function-side `storage` and `nosql` modules (sebs-wire's, as packages get them),
//! Python and Node.js, against the running stores: every method, called as SeBS's
//! benchmarks call it.

use std::path::Path;

use sebs_wire::storage::{self as wire, Wrapper};
use serde_json::{json, Value};

use crate::support::{self, Kind, Server, ACCESS_KEY, NODE_CLIENTS, PYTHON_CLIENTS, SECRET_KEY};
use crate::{expect_fields, is_unique_name};
use sebs_testkit::{trial, Trial};

/// The tests of this module, each with what it needs from the machine (the table is
/// created with boto3 in both).
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(python_wrappers_as_benchmarks_call_them, PYTHON_CLIENTS),
        trial!(
            nodejs_wrappers_as_benchmarks_call_them,
            PYTHON_CLIENTS,
            NODE_CLIENTS
        ),
    ]
}
/// Both stores, with the cart table created as the host side creates it.
struct Stores {
    s3: Server,
    dynamodb: Server,
    table: &'static str,
    _data: tempfile::TempDir,
}

impl Stores {
    fn start() -> Stores {
        let data = tempfile::tempdir().unwrap();
        let s3 = Server::start(Kind::S3, data.path());
        let dynamodb = Server::start(Kind::DynamoDb, data.path());
        let table = "sebs-benchmarks-local-1a2b3c4d-130.crud-api-shopping_cart";
        support::python(
            include_str!("clients/dynamodb.py"),
            &[&dynamodb.address, table, "create"],
            &[],
        )
        .json();
        Stores {
            s3,
            dynamodb,
            table,
            _data: data,
        }
    }

    /// The function's environment, as the platform sets it.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            (wire::MINIO_ADDRESS.into(), self.s3.address.clone()),
            (wire::MINIO_ACCESS_KEY.into(), ACCESS_KEY.into()),
            (wire::MINIO_SECRET_KEY.into(), SECRET_KEY.into()),
            (
                wire::NOSQL_STORAGE_TYPE.into(),
                wire::NOSQL_TYPE_SCYLLADB.into(),
            ),
            (
                wire::NOSQL_STORAGE_ENDPOINT.into(),
                self.dynamodb.address.clone(),
            ),
            (
                format!("{}shopping_cart", wire::NOSQL_STORAGE_TABLE_PREFIX),
                self.table.into(),
            ),
        ]
    }
}

/// A package's `function/` folder: the wrappers plus `function_source` as the benchmark.
fn package(dir: &Path, wrappers: &[Wrapper], function_file: &str, function_source: &str) {
    let function = dir.join("function");
    std::fs::create_dir_all(&function).unwrap();
    for wrapper in wrappers {
        std::fs::write(function.join(wrapper.file), wrapper.source).unwrap();
    }
    std::fs::write(function.join(function_file), function_source).unwrap();
}

/// A number as both languages' modules return it: whole numbers as integers, others as
/// floats (never Python's Decimal).
fn number(n: f64) -> Value {
    if n.fract() == 0.0 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// What both languages' functions report the same way.
fn expect_common(what: &str, out: &Value, bucket: &str, cart: &str) {
    let item = |product: &str, name: &str, price: f64, quantity: f64| {
        json!({"cart_id": cart, "product_id": product, "name": name,
               "price": number(price), "quantity": number(quantity)})
    };
    let mut cheap = item("a-first", "Cheap", 1.5, 1.0);
    cheap["tags"] = json!(["x", 2]);
    let mut updated = item("game-gothic", "Gothic Game", 41.5, 5.0);
    updated["status"] = json!("paid");
    expect_fields(
        what,
        out,
        json!({
            "same_instance": true,
            // SeBS's download_directory: every key under the prefix, at its full key.
            "files": [
                ["in/acmart-other/not-this", 20],
                ["in/acmart/acmart.cls", 2200],
                ["in/acmart/doc/deep/x+y.bib", 7],
                ["in/acmart/doc/guide one.tex", 5],
            ],
            "archive_stored_size": out["archive_size"],
            "downloaded": ">seq\nACGT\n",
            "missing_kept_old_file": true,
            "get": item("game-gothic", "Gothic Game", 42.0, 2.0),
            "updated": updated,
            "query": [cheap, updated, item("game-gothic-2", "Gothic 2", 142.0, 3.0)],
            "after_delete": ["a-first", "game-gothic"],
            "get_deleted": null,
        }),
    );
    let missing = out["missing"].as_str().unwrap_or_default();
    assert!(
        missing.contains(&format!("failed to download {bucket}/in/missing.jpg"))
            && missing.contains("no such key"),
        "{what}: a failed download must name the bucket, the key and S3's error: {missing:?}"
    );
    let unknown = out["unknown_table"].as_str().unwrap_or_default();
    assert!(
        unknown.contains("NOSQL_STORAGE_TABLE_no_such_table"),
        "{what}: {unknown:?}"
    );
    assert!(
        out["storage_unconfigured"]
            .as_str()
            .is_some_and(|m| m.contains("MINIO_ADDRESS")),
        "{what}: {}",
        out["storage_unconfigured"]
    );
    assert!(
        out["nosql_unconfigured"]
            .as_str()
            .is_some_and(|m| m.contains("NOSQL_STORAGE_TYPE")),
        "{what}: {}",
        out["nosql_unconfigured"]
    );
    let archive = out["archive_key"].as_str().unwrap();
    assert!(
        is_unique_name(archive, "out/acmart", ".zip"),
        "{what}: {archive}"
    );
    let stream = out["stream_key"].as_str().unwrap();
    assert_eq!(out["outputs"], json!([archive, stream]), "{what}");
}

fn python_wrappers_as_benchmarks_call_them() {
    let stores = Stores::start();
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    package(
        dir.path(),
        &wire::PYTHON_STORAGE_WRAPPERS,
        "function.py",
        include_str!("clients/wrappers/function.py"),
    );
    let run = dir.path().join("run.py");
    std::fs::write(&run, include_str!("clients/wrappers/run.py")).unwrap();
    let mut cmd = std::process::Command::new(support::python_bin());
    cmd.arg(&run)
        .args([
            "sebs-wrapped-py",
            "cart-py",
            scratch.path().to_str().unwrap(),
        ])
        .envs(stores.env());
    let out = support::run(&mut cmd).json();
    expect_common("Python wrappers", &out, "sebs-wrapped-py", "cart-py");
    expect_fields(
        "Python wrappers",
        &out,
        json!({"stream_roundtrip": true, "photo_size": 300 * 1024}),
    );
    let stream = out["stream_key"].as_str().unwrap();
    assert!(is_unique_name(stream, "out/photo", ".jpg"), "{stream}");
    assert!(
        out["missing"]
            .as_str()
            .unwrap()
            .starts_with("StorageError: "),
        "{}",
        out["missing"]
    );
}

fn nodejs_wrappers_as_benchmarks_call_them() {
    let stores = Stores::start();
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    package(
        dir.path(),
        &wire::NODEJS_STORAGE_WRAPPERS,
        "function.js",
        include_str!("clients/wrappers/function.js"),
    );
    let run = dir.path().join("run.js");
    std::fs::write(&run, include_str!("clients/wrappers/run.js")).unwrap();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(&run)
        .args([
            "sebs-wrapped-js",
            "cart-js",
            scratch.path().to_str().unwrap(),
        ])
        .env("NODE_PATH", support::node_modules())
        .envs(stores.env());
    let out = support::run(&mut cmd).json();
    expect_common("Node.js wrappers", &out, "sebs-wrapped-js", "cart-js");
    expect_fields(
        "Node.js wrappers",
        &out,
        json!({"stream_back": "A PHOTO, IN LOWER CASE"}),
    );
    let stream = out["stream_key"].as_str().unwrap();
    assert!(is_unique_name(stream, "out/photo", ".txt"), "{stream}");
}

//! The binary's life: data that survives a restart, SIGTERM finishing requests in flight,
//! refusals at start with their exit codes, and a full disk answered as an S3 error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::expect_fields;
use crate::support::{self, Kind, Running, Server, ACCESS_KEY, PYTHON_CLIENTS, SECRET_KEY};
use sebs_testkit::{trial, Need, Trial, ROOT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(data_survives_a_restart, PYTHON_CLIENTS),
        trial!(sigterm_lets_requests_in_flight_finish, PYTHON_CLIENTS),
        trial!(bad_starts_are_refused_with_a_reason_and_an_exit_code),
        trial!(health_checks_answer_without_a_signature),
        trial!(
            a_full_disk_is_an_s3_error_naming_bucket_and_key,
            PYTHON_CLIENTS,
            ROOT,
            MOUNT_NAMESPACE
        ),
    ]
}

/// A mount namespace of the test's own (`unshare --mount`), to mount a small tmpfs that only
/// the server under test sees.
static MOUNT_NAMESPACE: Need = Need::new("a mount namespace (unshare(1) --mount, as root)", || {
    let probe = support::run(Command::new("unshare").args(["--mount", "true"]));
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`unshare --mount true` failed ({}): {}",
            probe.status,
            probe.stderr.trim()
        ))
    }
});
const KEYS: [(&str, &str); 2] = [("ACCESS_KEY", ACCESS_KEY), ("SECRET_KEY", SECRET_KEY)];

fn data_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let s3 = Server::start(Kind::S3, data.path());
    support::python(
        include_str!("clients/persist.py"),
        &[&s3.address, "write"],
        &KEYS,
    )
    .json();
    assert!(s3.stop().success(), "s3 stopped by SIGTERM exits 0");
    // What a run killed mid-upload leaves behind: a half-received body, and an object
    // file whose commit never happened.
    let root = data.path().join("s3");
    std::fs::write(root.join("tmp").join("half-received"), b"partial").unwrap();
    std::fs::write(root.join("objects").join("never-committed"), b"orphan").unwrap();
    let objects_before = files_in(&root.join("objects"));

    let s3 = Server::start(Kind::S3, data.path());
    let out = support::python(
        include_str!("clients/persist.py"),
        &[&s3.address, "read"],
        &KEYS,
    )
    .json();
    expect_fields(
        "after a restart",
        &out,
        json!({
            "buckets": ["persist"],
            "objects": [["a", 6], ["a/b", 8]],
            "a": "second",
            "a/b": "under a/",
            "uploads": ["unfinished"],
            "parts": [[1, 4]],
        }),
    );
    assert!(
        files_in(&root.join("tmp")).is_empty(),
        "tmp/ is swept at start"
    );
    assert_eq!(
        files_in(&root.join("objects")).len(),
        objects_before.len() - 1,
        "the uncommitted object file is swept, the two objects' files stay"
    );
    drop(s3);

    let table = "persisted-table";
    let dynamodb = Server::start(Kind::DynamoDb, data.path());
    support::python(
        include_str!("clients/dynamodb.py"),
        &[&dynamodb.address, table, "write"],
        &[],
    )
    .json();
    assert!(
        dynamodb.stop().success(),
        "dynamodb stopped by SIGTERM exits 0"
    );
    let dynamodb = Server::start(Kind::DynamoDb, data.path());
    let out = support::python(
        include_str!("clients/dynamodb.py"),
        &[&dynamodb.address, table, "read"],
        &[],
    )
    .json();
    expect_fields(
        "DynamoDB after a restart",
        &out,
        json!({"query": [["p1", "42"], ["p2", "1.5"]], "tables": [table]}),
    );
    let out = support::python(
        include_str!("clients/dynamodb.py"),
        &[&dynamodb.address, table, "drop"],
        &[],
    )
    .json();
    expect_fields(
        "DeleteTable",
        &out,
        json!({"describe_dropped": "ResourceNotFoundException"}),
    );
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn sigterm_lets_requests_in_flight_finish() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::S3, data.path());
    let mut client = Running::python(
        include_str!("clients/slow_get.py"),
        &[&server.address],
        &KEYS,
    );
    assert_eq!(client.next_line(), "READING");
    support::signal(server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    // The listener is closed at once; the download in flight goes on.
    assert!(
        std::net::TcpStream::connect(&server.address).is_err(),
        "a stopping server still accepts connections"
    );
    let out = client.finish();
    expect_fields(
        "a GET in flight at SIGTERM",
        &out,
        json!({"bytes": 64 * 1024 * 1024, "complete": true}),
    );
    let status = server.wait();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

fn health_checks_answer_without_a_signature() {
    let data = tempfile::tempdir().unwrap();
    let s3 = Server::start(Kind::S3, data.path());
    let dynamodb = Server::start(Kind::DynamoDb, data.path());
    let checks = [
        // What whoever started the store polls.
        (&s3, "/minio/health/live", 200, "ok"),
        (&dynamodb, "/", 200, "healthy"),
        // Anything else on S3 must be signed.
        (&s3, "/", 403, "AccessDenied"),
        (&s3, "/some-bucket/some-key", 403, "AccessDenied"),
    ];
    for (server, path, status, says) in checks {
        let (got, body) = support::unsigned_get(&server.address, path);
        assert_eq!(got, status, "GET {path} on {:?}: {body}", server.kind);
        assert!(
            body.contains(says),
            "GET {path} on {:?}: {body}",
            server.kind
        );
    }
}

/// One way to start the binary that must be refused.
struct Refusal {
    what: &'static str,
    args: Vec<String>,
    /// Whether the S3 keys are in the environment.
    keys: bool,
    code: i32,
    /// What stderr must say.
    says: String,
}

fn bad_starts_are_refused_with_a_reason_and_an_exit_code() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().to_str().unwrap().to_string();
    let file = data.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under_file = file.join("data").to_str().unwrap().to_string();
    // A port that is taken for as long as this test runs.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let args = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let cases = vec![
        Refusal {
            what: "an unknown flag",
            args: args(&["s3", "--listen", "127.0.0.1:0", "--data", &d, "--bogus"]),
            keys: true,
            code: 2,
            says: "--bogus".into(),
        },
        Refusal {
            what: "a host name where an address belongs (no DNS in a scratch image)",
            args: args(&["dynamodb", "--listen", "localhost:8000", "--data", &d]),
            keys: true,
            code: 2,
            says: "localhost:8000".into(),
        },
        Refusal {
            what: "no store named",
            args: args(&["--listen", "127.0.0.1:0"]),
            keys: true,
            code: 2,
            says: "Usage".into(),
        },
        Refusal {
            what: "S3 without keys",
            args: args(&["s3", "--listen", "127.0.0.1:0", "--data", &d]),
            keys: false,
            code: 2,
            says: "set SEBS_STORE_ACCESS_KEY and SEBS_STORE_SECRET_KEY".into(),
        },
        Refusal {
            what: "S3 data under a file",
            args: args(&["s3", "--listen", "127.0.0.1:0", "--data", &under_file]),
            keys: true,
            code: 1,
            says: format!("failed to use the data directory {under_file}"),
        },
        Refusal {
            what: "DynamoDB data under a file",
            args: args(&["dynamodb", "--listen", "127.0.0.1:0", "--data", &under_file]),
            keys: true,
            code: 1,
            says: format!("failed to use the data directory {under_file}"),
        },
        Refusal {
            what: "S3 on a port in use",
            args: args(&["s3", "--listen", &taken, "--data", &d]),
            keys: true,
            code: 1,
            says: format!("failed to listen on {taken}"),
        },
        Refusal {
            what: "DynamoDB on a port in use",
            args: args(&["dynamodb", "--listen", &taken, "--data", &d]),
            keys: true,
            code: 1,
            says: format!("failed to listen on {taken}"),
        },
    ];
    for case in cases {
        let mut cmd = Command::new(support::binary());
        cmd.args(&case.args)
            .env_remove("SEBS_STORE_ACCESS_KEY")
            .env_remove("SEBS_STORE_SECRET_KEY");
        if case.keys {
            cmd.env("SEBS_STORE_ACCESS_KEY", ACCESS_KEY)
                .env("SEBS_STORE_SECRET_KEY", SECRET_KEY);
        }
        let out = support::run(&mut cmd);
        assert_eq!(
            out.status.code(),
            Some(case.code),
            "{}: {:?}\n{}",
            case.what,
            case.args,
            out.stderr
        );
        assert!(
            out.stderr.contains(&case.says),
            "{}: stderr does not say {:?}:\n{}",
            case.what,
            case.says,
            out.stderr
        );
    }
}

/// The binary serving `kind` with its data directory `dir` on a tmpfs of `size` mounted
/// (with `options`) in a mount namespace of its own, so that the test can fill a real disk.
fn on_small_tmpfs(kind: &str, dir: &Path, size: &str, options: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "sh",
        "-c",
        r#"mount -t tmpfs -o "size=$1$2" sebs-store-test "$3" && exec "$4" "$5" --listen 127.0.0.1:0 --data "$3""#,
        "sh",
        size,
        options,
    ])
    .arg(dir)
    .arg(support::binary())
    .arg(kind);
    cmd
}

fn a_full_disk_is_an_s3_error_naming_bucket_and_key() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::spawn(Kind::S3, on_small_tmpfs("s3", data.path(), "4m", ""));
    let out = support::python(include_str!("clients/full.py"), &[&server.address], &KEYS).json();
    let boto3 = &out["boto3"];
    assert_eq!(boto3["code"], "XMinioStorageFull", "{out:#}");
    assert_eq!(boto3["status"], 507, "{out:#}");
    let message = boto3["message"].as_str().unwrap();
    assert!(
        message.contains("big/too-big.bin") && message.contains("sebs-full"),
        "the message names the key and the bucket: {message}"
    );
    assert_eq!(out["minio"]["code"], "XMinioStorageFull", "{out:#}");
    // The server goes on, and a failed upload leaves nothing behind that fills the disk.
    expect_fields(
        "after a full disk",
        &out,
        json!({"keys": ["small-after-full"], "small": "fits"}),
    );
    drop(server);

    // A data directory that cannot be written is refused at start, with its path.
    let mut cmd = on_small_tmpfs("s3", data.path(), "1m", ",ro");
    cmd.env("SEBS_STORE_ACCESS_KEY", ACCESS_KEY)
        .env("SEBS_STORE_SECRET_KEY", SECRET_KEY);
    let out = support::run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let says = format!("failed to use the data directory {}", data.path().display());
    assert!(
        out.stderr.contains(&says) && out.stderr.contains("Read-only file system"),
        "stderr does not say {says:?} and why:\n{}",
        out.stderr
    );
}

//! The agent binary on the host with `node`: the Node.js worker speaks the same protocol as
//! the Python one, with the same timings, failures and memory figures.

use std::os::unix::fs::PermissionsExt;

use sebs_testkit::{trial, Trial, NODE, ROOT};
use serde_json::json;

use crate::support::Agent;

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(cold_then_warm_and_prints_stay_out_of_the_protocol, NODE),
        trial!(begin_and_end_are_taken_around_the_handler, NODE),
        trial!(failures_are_answered_and_the_next_call_succeeds, NODE),
        trial!(require_errors_are_init_errors, NODE),
        trial!(sync_handlers_and_large_requests, NODE),
        trial!(per_call_peak, NODE),
        trial!(
            a_worker_as_nobody_keeps_console_output_out_of_the_protocol,
            NODE,
            ROOT
        ),
    ]
}

/// One handler for most tests, steered by its event.
const STEERED: &str = r#"
const fs = require('fs');

exports.handler = async function (event) {
  console.log('console.log from the handler', { ok: true });
  process.stdout.write('{"ok": true, "begin_us": 1, "end_us": 2, "output": "forged"}\n');
  if (event.fd1) {
    fs.writeSync(1, 'written to fd 1\n');
  }
  if (event.sleep) {
    await new Promise((resolve) => setTimeout(resolve, event.sleep * 1000));
  }
  if (event.raise) {
    throw new RangeError(event.raise);
  }
  if (event.reject) {
    return Promise.reject('a plain string');
  }
  if (event.exit) {
    process.exit(event.exit);
  }
  if (event.bigint) {
    return { n: 10n };
  }
  if (event.circular) {
    const a = {};
    a.self = a;
    return a;
  }
  if (event.nothing) {
    return;
  }
  if (event.alloc_mb) {
    const hog = Buffer.alloc(event.alloc_mb * 1024 * 1024, 1);
    return { allocated: hog.length, pid: process.pid };
  }
  if (event.collect && typeof gc === 'function') {
    // Tests that look at memory across calls free garbage deterministically.
    gc();
  }
  return { echo: event, pid: process.pid, uid: process.getuid(), gid: process.getgid() };
};
"#;

/// A Node.js package: our worker as `handler.js` and `function/function.js` with `source`,
/// readable by everyone (some tests run the worker as nobody).
fn code_dir(source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join(sebs_wire::worker::NODEJS_WRAPPER_FILE),
        sebs_wire::worker::NODEJS_WRAPPER,
    )
    .unwrap();
    std::fs::create_dir(root.join("function")).unwrap();
    std::fs::write(root.join("function/function.js"), source).unwrap();
    for path in [root.to_path_buf(), root.join("function")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for file in ["handler.js", "function/function.js"] {
        std::fs::set_permissions(root.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}

fn start(code: &tempfile::TempDir, env: &[(&str, &str)]) -> Agent {
    let mut all = vec![("SEBS_LANGUAGE", "nodejs")];
    all.extend_from_slice(env);
    Agent::start(code.path(), &all)
}

async fn cold_then_warm_and_prints_stay_out_of_the_protocol() {
    let code = code_dir(STEERED);
    let agent = start(&code, &[]);
    let first = agent
        .post_with(r#"{"n": 1, "fd1": true}"#, Some("my-id"))
        .await;
    let body = first.ok();
    assert_eq!(body["is_cold"], true);
    assert_eq!(body["request_id"], "my-id");
    assert_eq!(
        body["result"]["output"]["echo"],
        json!({"n": 1, "fd1": true})
    );
    assert!(body["init_time_us"].as_u64().unwrap() > 0, "{body:#}");
    assert_eq!(body["memory_source"], "process", "{body:#}");
    assert!(
        body["memory_peak_bytes"].as_u64().unwrap() > 10_000_000,
        "{body:#}"
    );

    let second = agent.post(r#"{"n": 2}"#).await;
    let body = second.ok();
    assert_eq!(body["is_cold"], false);
    assert_eq!(body["init_time_us"], 0);
    assert_eq!(
        body["result"]["output"]["pid"],
        first.body["result"]["output"]["pid"]
    );

    // Nothing, or a bare `undefined`, is null as Python's None is.
    let nothing = agent.post(r#"{"nothing": true}"#).await;
    assert_eq!(nothing.ok()["result"]["output"], json!(null));
}

/// Sleeps as long as its event says and answers how long that took by its own clock.
const SLEEPER: &str = r#"
exports.handler = async function (event) {
  const start = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, event.sleep * 1000));
  return { slept_us: Number((process.hrtime.bigint() - start) / 1000n) };
};
"#;

async fn begin_and_end_are_taken_around_the_handler() {
    let code = code_dir(SLEEPER);
    let agent = start(&code, &[]);
    agent.post(r#"{"sleep": 0}"#).await.ok();
    // setTimeout may fire up to a millisecond early by the monotonic clock's rounding.
    agent.assert_sleep_is_measured(99_000).await;
}

async fn failures_are_answered_and_the_next_call_succeeds() {
    let code = code_dir(STEERED);
    let agent = start(&code, &[("SEBS_TIMEOUT_MS", "700")]);

    // Each case: the event, the expected status, kind and type, a fragment of the message.
    let cases = [
        (
            r#"{"raise": "boom"}"#,
            500,
            "handler_error",
            Some("RangeError"),
            "RangeError: boom",
        ),
        (
            r#"{"reject": true}"#,
            500,
            "handler_error",
            Some("string"),
            "a plain string",
        ),
        (
            r#"{"bigint": true}"#,
            500,
            "bad_output",
            Some("TypeError"),
            "BigInt",
        ),
        (
            r#"{"circular": true}"#,
            500,
            "bad_output",
            Some("TypeError"),
            "circular",
        ),
        (
            r#"{"exit": 3}"#,
            500,
            "worker_died",
            None,
            "exited with status 3",
        ),
        (r#"{"sleep": 5}"#, 504, "timeout", None, "700 ms"),
    ];
    for (event, status, kind, exception_type, fragment) in cases {
        let failed = agent.post(event).await;
        assert_eq!(failed.status, status, "{event}: {:#}", failed.body);
        assert_eq!(failed.body["kind"], kind, "{event}: {:#}", failed.body);
        let error = failed.body["error"].as_str().unwrap();
        assert!(
            error.contains(fragment),
            "{event}: {error:?} lacks {fragment:?}"
        );
        if let Some(t) = exception_type {
            assert_eq!(failed.body["type"], t, "{event}: {:#}", failed.body);
        }
        if event.contains("raise") {
            let traceback = failed.body["traceback"].as_str().unwrap();
            assert!(traceback.contains("function/function.js:"), "{traceback}");
        }
        let next = agent.post(r#"{"after": 1}"#).await;
        assert_eq!(
            next.ok()["result"]["output"]["echo"],
            json!({"after": 1}),
            "after {event}"
        );
    }
}

async fn require_errors_are_init_errors() {
    // Each case: the function's source, the expected type, a fragment of the message.
    let cases = [
        (
            "const x = require('no_such_module_anywhere');\nexports.handler = () => ({});\n",
            "Error",
            "no_such_module_anywhere",
        ),
        (
            "exports.not_the_handler = () => ({});\n",
            "TypeError",
            "does not export a function `handler`",
        ),
        ("exports.handler = (;\n", "SyntaxError", "Unexpected token"),
    ];
    for (source, exception_type, fragment) in cases {
        let code = code_dir(source);
        let agent = start(&code, &[]);
        for is_cold in [true, false] {
            let failed = agent.post("{}").await;
            assert_eq!(failed.status, 500, "{:#}", failed.body);
            assert_eq!(failed.body["kind"], "init_error", "{:#}", failed.body);
            assert_eq!(failed.body["type"], exception_type, "{:#}", failed.body);
            assert_eq!(failed.body["is_cold"], is_cold);
            let error = failed.body["error"].as_str().unwrap();
            assert!(error.contains(fragment), "{error:?} lacks {fragment:?}");
        }
    }
}

/// A synchronous handler works as an async one does; a request of a few megabytes arrives
/// whole (the worker reads lines of any length).
async fn sync_handlers_and_large_requests() {
    let code = code_dir(
        "exports.handler = function (event) {\n  return { length: event.text.length, last: event.text.slice(-3) };\n};\n",
    );
    let agent = start(&code, &[]);
    let text = "é".repeat(2_000_000) + "end";
    let body = json!({ "text": text }).to_string();
    let answer = agent.post(&body).await;
    assert_eq!(
        answer.ok()["result"]["output"],
        json!({"length": 2_000_003, "last": "end"})
    );
}

/// Each call's peak is the worker's own, reset before the call.
async fn per_call_peak() {
    const MIB: f64 = 1024.0 * 1024.0;
    let code = code_dir(STEERED);
    // V8 frees the allocation only when it collects garbage; the handler collects on
    // request, so the next call's peak does not depend on the collector's timing.
    let agent = start(&code, &[("NODE_OPTIONS", "--expose-gc")]);
    let peak = |body: &serde_json::Value| {
        assert_eq!(body["memory_source"], "process", "{body:#}");
        body["memory_peak_bytes"].as_u64().unwrap() as f64
    };
    agent.post("{}").await.ok();
    let baseline = peak(agent.post("{}").await.ok());
    let big = peak(agent.post(r#"{"alloc_mb": 100}"#).await.ok());
    let added = (big - baseline) / MIB;
    assert!(
        (90.0..=115.0).contains(&added),
        "the call added {added:.1} MiB"
    );
    // The next call does not report the previous one's peak.
    agent.post(r#"{"collect": true}"#).await.ok();
    let after = peak(agent.post("{}").await.ok());
    assert!(
        after < big - 50.0 * MIB,
        "after the allocation: {:.1} MiB, during it {:.1} MiB",
        after / MIB,
        big / MIB
    );
}

/// A worker running as another user than the agent reopens the pipes the agent made its
/// own; what it writes to fd 1, even below JavaScript, stays out of the protocol.
async fn a_worker_as_nobody_keeps_console_output_out_of_the_protocol() {
    let code = code_dir(STEERED);
    let agent = start(
        &code,
        &[("CONTAINER_UID", "65534"), ("CONTAINER_GID", "65534")],
    );
    for n in 0..2 {
        let answer = agent
            .post(&json!({ "n": n, "fd1": true }).to_string())
            .await;
        let output = &answer.ok()["result"]["output"];
        assert_eq!(output["echo"], json!({ "n": n, "fd1": true }));
        assert_eq!(
            (output["uid"].as_u64(), output["gid"].as_u64()),
            (Some(65534), Some(65534))
        );
    }
}

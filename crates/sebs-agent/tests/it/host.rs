//! The agent binary on the host with `python3`: the protocol, failures, concurrency and stopping.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sebs_testkit::{trial, Trial, PYTHON3};
use serde_json::json;

use crate::support::{code_dir, Agent, FAILURES, SLEEPER, STEERED};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(cold_then_warm, PYTHON3),
        trial!(begin_and_end_are_taken_around_the_handler, PYTHON3),
        trial!(failures_are_answered_and_the_next_call_succeeds, PYTHON3),
        trial!(
            the_invocation_log_lists_every_call_with_its_handler_span,
            PYTHON3
        ),
        trial!(import_errors_are_init_errors_every_time, PYTHON3),
        trial!(two_workers_serve_in_parallel, PYTHON3),
        trial!(per_call_peak_of_a_worker_in_a_pool_of_two, PYTHON3),
        trial!(one_worker_serves_in_arrival_order, PYTHON3),
        trial!(bad_requests, PYTHON3),
        trial!(large_bodies_pass_through, PYTHON3),
        trial!(stops_cleanly_on_sigterm_and_sigint, PYTHON3),
        trial!(
            a_thousand_warm_round_trips_are_served_by_one_worker,
            PYTHON3
        ),
        trial!(
            a_worker_that_dies_leaving_a_child_is_reported_dead_and_the_child_killed,
            PYTHON3
        ),
    ]
}

async fn cold_then_warm() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[]);
    assert_eq!(agent.get("/alive").await.ok(), &json!({"status": "ok"}));

    let first = agent.post_with(r#"{"n": 1}"#, Some("my-id")).await;
    // Every answer names the instance (the host name) that served it.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(first.instance.as_deref(), Some(host.trim()));
    let body = first.ok();
    assert_eq!(body["is_cold"], true);
    assert_eq!(body["request_id"], "my-id");
    assert_eq!(body["result"]["output"]["echo"], json!({"n": 1}));
    assert!(body["init_time_us"].as_u64().unwrap() > 0, "{body:#}");
    assert!(body["agent_time_us"].as_u64().is_some(), "{body:#}");
    assert!(
        body["memory_peak_bytes"].as_u64().unwrap() > 1_000_000,
        "{body:#}"
    );

    let second = agent.post(r#"{"n": 2}"#).await;
    let body = second.ok();
    assert_eq!(body["is_cold"], false);
    assert_eq!(body["init_time_us"], 0);
    assert_eq!(body["result"]["output"]["echo"], json!({"n": 2}));
    // Same worker, and a generated uuid as request id.
    assert_eq!(
        body["result"]["output"]["pid"],
        first.body["result"]["output"]["pid"]
    );
    assert_eq!(body["request_id"].as_str().unwrap().len(), 36, "{body:#}");
}

async fn begin_and_end_are_taken_around_the_handler() {
    let code = code_dir(SLEEPER);
    let agent = Agent::start(code.path(), &[]);
    agent.post(r#"{"sleep": 0}"#).await.ok();
    agent.assert_sleep_is_measured(100_000).await;
}

async fn failures_are_answered_and_the_next_call_succeeds() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[("SEBS_TIMEOUT_MS", "700")]);

    for (event, status, kind, fragment) in FAILURES {
        let failed = agent.post(event).await;
        assert_eq!(failed.status, status, "{event}: {:#}", failed.body);
        assert_eq!(failed.body["kind"], kind, "{event}: {:#}", failed.body);
        let error = failed.body["error"].as_str().unwrap();
        assert!(
            error.contains(fragment),
            "{event}: {error:?} lacks {fragment:?}"
        );
        if kind == "handler_error" {
            assert_eq!(failed.body["type"], "ValueError");
            let traceback = failed.body["traceback"].as_str().unwrap();
            assert!(traceback.contains("function.py"), "{traceback}");
            // The first call: the times it measured are kept although it failed.
            assert_eq!(failed.body["is_cold"], true);
            assert!(
                failed.body["init_time_us"].as_u64().unwrap() > 0,
                "{:#}",
                failed.body
            );
            let t = |k: &str| {
                failed.body[k]
                    .as_str()
                    .unwrap()
                    .parse::<sebs_wire::EpochMicros>()
                    .unwrap()
            };
            assert!(t("end") >= t("begin"), "{:#}", failed.body);
        }
        let next = agent.post(r#"{"after": 1}"#).await;
        assert_eq!(
            next.ok()["result"]["output"]["echo"],
            json!({"after": 1}),
            "after {event}"
        );
    }
}

async fn the_invocation_log_lists_every_call_with_its_handler_span() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[]);
    assert_eq!(
        agent.get("/invocations").await.ok(),
        &json!({"invocations": [], "dropped": 0, "relayed": 0, "by_worker": 0})
    );
    let first = agent.post(r#"{"n": 1}"#).await;
    let failed = agent.post(r#"{"raise": "boom"}"#).await;
    let second = agent.post(r#"{"n": 2}"#).await;
    let log = agent.get("/invocations").await;
    let calls = log.ok()["invocations"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{:#}", log.body);
    // A handler that raised still ran from its begin to its end.
    let t = |k: &str| {
        failed.body[k]
            .as_str()
            .unwrap()
            .parse::<sebs_wire::EpochMicros>()
            .unwrap()
            .0
    };
    let spans = [first.span(), (t("begin"), t("end")), second.span()];
    for ((call, span), (cold, ok)) in
        calls
            .iter()
            .zip(spans)
            .zip([(true, true), (false, false), (false, true)])
    {
        assert_eq!(
            (
                call["begin_us"].as_i64().unwrap(),
                call["end_us"].as_i64().unwrap()
            ),
            span,
            "{call}"
        );
        assert_eq!(
            (call["is_cold"].as_bool(), call["ok"].as_bool()),
            (Some(cold), Some(ok))
        );
    }
}

async fn import_errors_are_init_errors_every_time() {
    let code = code_dir("import no_such_module_anywhere\n\ndef handler(event):\n    return {}\n");
    let agent = Agent::start(code.path(), &[]);
    for is_cold in [true, false] {
        let failed = agent.post("{}").await;
        assert_eq!(failed.status, 500, "{:#}", failed.body);
        assert_eq!(failed.body["kind"], "init_error");
        assert_eq!(failed.body["type"], "ModuleNotFoundError");
        assert_eq!(failed.body["is_cold"], is_cold);
        assert!(failed.body["traceback"]
            .as_str()
            .unwrap()
            .contains("no_such_module_anywhere"));
    }

    let code = code_dir("def not_the_handler(event):\n    return {}\n");
    let agent = Agent::start(code.path(), &[]);
    let failed = agent.post("{}").await;
    assert_eq!(
        (failed.status, &failed.body["type"]),
        (500, &json!("AttributeError"))
    );
}

async fn two_workers_serve_in_parallel() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[("SEBS_WORKERS", "2")]);
    // Each worker starts with its first call: two calls at once start both, so that the
    // next two overlap whatever a loaded machine takes to start a worker.
    let (a, b) = tokio::join!(agent.post("{}"), agent.post("{}"));
    assert_ne!(
        a.ok()["result"]["output"]["pid"],
        b.ok()["result"]["output"]["pid"]
    );
    let (a, b) = tokio::join!(
        agent.post(r#"{"sleep": 0.3}"#),
        agent.post(r#"{"sleep": 0.3}"#)
    );
    let ((a_begin, a_end), (b_begin, b_end)) = (a.span(), b.span());
    assert!(
        a_begin < b_end && b_begin < a_end,
        "a {a_begin}..{a_end}, b {b_begin}..{b_end}"
    );
    assert_ne!(
        a.body["result"]["output"]["pid"],
        b.body["result"]["output"]["pid"]
    );
}

/// Each call's peak is the worker's own, reset before the call: a call that allocates shows
/// its allocation, and the worker's next call is back near the worker's baseline.
async fn per_call_peak_of_a_worker_in_a_pool_of_two() {
    const MIB: f64 = 1024.0 * 1024.0;
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[("SEBS_WORKERS", "2")]);
    // Both workers serve a no-op first (in parallel, so each gets one), to fix their baselines.
    let (a, b) = tokio::join!(
        agent.post(r#"{"sleep": 0.2}"#),
        agent.post(r#"{"sleep": 0.2}"#)
    );
    let mut baselines = std::collections::HashMap::new();
    for answer in [&a, &b] {
        let body = answer.ok();
        assert_eq!(body["memory_source"], "process", "{body:#}");
        let pid = body["result"]["output"]["pid"].as_i64().unwrap();
        baselines.insert(pid, body["memory_peak_bytes"].as_u64().unwrap() as f64);
    }
    assert_eq!(baselines.len(), 2, "one worker served both: {baselines:?}");

    let peak = |body: &serde_json::Value| {
        assert_eq!(body["memory_source"], "process", "{body:#}");
        let pid = body["result"]["output"]["pid"].as_i64().unwrap();
        (pid, body["memory_peak_bytes"].as_u64().unwrap() as f64)
    };
    let (pid, big) = peak(agent.post(r#"{"alloc_mb": 100}"#).await.ok());
    let added = (big - baselines[&pid]) / MIB;
    eprintln!(
        "worker {pid}: baseline {:.1} MiB, peak with 100 MiB allocated {:.1} MiB",
        baselines[&pid] / MIB,
        big / MIB
    );
    assert!(
        (90.0..=110.0).contains(&added),
        "the call added {added:.1} MiB"
    );

    // The next calls, on either worker, are back near their worker's baseline.
    for _ in 0..2 {
        let (pid, small) = peak(agent.post("{}").await.ok());
        let above = (small - baselines[&pid]) / MIB;
        assert!(
            above.abs() < 5.0,
            "worker {pid}: {above:.1} MiB above its baseline"
        );
    }
}

async fn one_worker_serves_in_arrival_order() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[("SEBS_WORKERS", "1")]);
    agent.post("{}").await.ok();
    let first = agent.post(r#"{"sleep": 0.3, "i": 1}"#);
    let second = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        agent.post(r#"{"sleep": 0.3, "i": 2}"#).await
    };
    let third = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        agent.post(r#"{"sleep": 0.0, "i": 3}"#).await
    };
    let (a, b, c) = tokio::join!(first, second, third);
    let (spans, ends): (Vec<_>, Vec<_>) = [a.span(), b.span(), c.span()].into_iter().unzip();
    assert!(
        ends[0] <= spans[1] && ends[1] <= spans[2],
        "begins {spans:?}, ends {ends:?}"
    );
}

async fn bad_requests() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[]);
    let not_json = agent.post("this is not json").await;
    assert_eq!(
        (not_json.status, &not_json.body["kind"]),
        (400, &json!("bad_request"))
    );
    let empty = agent.post("").await;
    assert_eq!(empty.status, 400, "{:#}", empty.body);
    let nowhere = agent.get("/nowhere").await;
    assert_eq!(
        (nowhere.status, &nowhere.body["kind"]),
        (404, &json!("bad_request"))
    );
    // A body declared too large is refused before it is sent (as curl would, with
    // `Expect: 100-continue`), so speak raw HTTP: reqwest insists on sending it.
    let head = "POST / HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\n\
                content-length: 70000000\r\nexpect: 100-continue\r\n\r\n";
    let reply = raw_exchange(&agent.url, head).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("larger than 67108864 bytes"), "{reply}");
    // None of these was an invocation: the first real one is still cold.
    assert_eq!(agent.post("{}").await.ok()["is_cold"], true);
}

/// Sends `head` on a fresh connection and reads what comes back until the agent closes it.
async fn raw_exchange(url: &str, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let read = stream.read_to_end(&mut reply);
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

async fn large_bodies_pass_through() {
    let code = code_dir("def handler(event):\n    return {'n': len(event['data'])}\n");
    let agent = Agent::start(code.path(), &[]);
    let data = "y".repeat(8 * 1024 * 1024);
    let answer = agent.post(&json!({ "data": data }).to_string()).await;
    assert_eq!(answer.ok()["result"]["output"]["n"], 8 * 1024 * 1024);
}

async fn stops_cleanly_on_sigterm_and_sigint() {
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let code = code_dir(STEERED);
        let agent = Agent::start(code.path(), &[]);
        let pid = agent.post("{}").await.ok()["result"]["output"]["pid"]
            .as_i64()
            .unwrap();
        assert_eq!(
            agent.stop(signal, Duration::from_secs(10)),
            Some(0),
            "{signal}"
        );
        // The worker went with it.
        let worker = nix::unistd::Pid::from_raw(pid as i32);
        let deadline = Instant::now() + Duration::from_secs(10);
        while nix::sys::signal::kill(worker, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            nix::sys::signal::kill(worker, None).is_err(),
            "worker {pid} outlived the agent"
        );
    }
}

/// A thousand calls in a row over one kept-alive connection are all answered, warm, by the
/// same worker, each with the agent's own time. (How fast they are is a figure of
/// `cargo xtask bench`: "warm no-op client time", against the floor.)
async fn a_thousand_warm_round_trips_are_served_by_one_worker() {
    let code = code_dir("import os\n\ndef handler(event):\n    return {'pid': os.getpid()}\n");
    let agent = Agent::start(code.path(), &[]);
    let first = agent.post("{}").await;
    let pid = &first.ok()["result"]["output"]["pid"];
    for i in 0..1000 {
        let answer = agent.post(r#"{"x": 1}"#).await;
        let body = answer.ok();
        assert_eq!(body["is_cold"], false, "call {i}: {body:#}");
        assert_eq!(&body["result"]["output"]["pid"], pid, "call {i}: {body:#}");
        assert!(body["agent_time_us"].is_u64(), "call {i}: {body:#}");
    }
}

async fn a_worker_that_dies_leaving_a_child_is_reported_dead_and_the_child_killed() {
    let code = code_dir(STEERED);
    let agent = Agent::start(code.path(), &[("SEBS_TIMEOUT_MS", "10000")]);
    agent.post("{}").await.ok();
    let pid_file = code.path().join("forked.pid");
    let died = agent
        .post(&json!({"fork_then_exit": pid_file}).to_string())
        .await;
    // Not a timeout after 10 s: the worker's exit is noticed although its child holds the pipe.
    assert_eq!(died.status, 500, "{:#}", died.body);
    assert_eq!(died.body["kind"], "worker_died", "{:#}", died.body);
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The worker's process group went with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{child}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        if state
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the forked child {child} still runs"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // And the next call is served by a new worker.
    agent.post("{}").await.ok();
}

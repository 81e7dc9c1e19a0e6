//! The warm path on the host with `python3`: connections passed to an idle worker, answered by it as the agent answers, failures, give-back and the log.

use std::time::Duration;

use sebs_testkit::{trial, Trial, PYTHON3};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{code_dir, Agent, FAILURES};

pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            a_connection_to_an_idle_worker_is_answered_as_the_agent_answers,
            PYTHON3
        ),
        trial!(
            failures_on_a_held_connection_are_answered_and_it_keeps_serving,
            PYTHON3
        ),
        trial!(held_connections_are_given_back_when_a_call_waits, PYTHON3),
        trial!(a_worker_serves_several_connections, PYTHON3),
        trial!(requests_the_worker_leaves_are_served_by_the_agent, PYTHON3),
        trial!(
            a_relayed_connection_goes_to_the_worker_between_requests,
            PYTHON3
        ),
        trial!(the_python_worker_writes_the_agents_bytes, PYTHON3),
    ]
}

/// Says how many sockets the worker holds: one (the hand-off socket) when the agent relays
/// the call, two when the worker holds the caller's connection.
const HANDLER: &str = r#"
import os, sys, time

def sockets():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n

def handler(event):
    print("print from the handler")
    os.write(1, b"written to fd 1\n")
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "raise" in event:
        raise ValueError(event["raise"])
    if "exit" in event:
        os._exit(event["exit"])
    if "set" in event:
        return {1, 2}
    return {"sockets": sockets(), "pid": os.getpid(), "echo": event, "b": 1, "a": "é"}
"#;

/// One kept-alive connection spoken raw.
struct Conn {
    stream: TcpStream,
    read: Vec<u8>,
}

/// An answer read raw: status, header lines (names lowercase, in order) and body.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Raw {
    fn names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn sockets(&self) -> u64 {
        assert_eq!(self.status, 200, "{:#}", self.body);
        self.body["result"]["output"]["sockets"].as_u64().unwrap()
    }
}

impl Conn {
    async fn open(agent: &Agent) -> Conn {
        let stream = TcpStream::connect(agent.url.trim_start_matches("http://"))
            .await
            .unwrap();
        Conn {
            stream,
            read: Vec::new(),
        }
    }

    async fn post(&mut self, body: &str, request_id: Option<&str>) -> Raw {
        let id = request_id.map_or(String::new(), |id| format!("x-request-id: {id}\r\n"));
        let head = format!(
            "POST / HTTP/1.1\r\nhost: agent\r\ncontent-type: application/json\r\n{id}content-length: {}\r\n\r\n",
            body.len()
        );
        self.send(&format!("{head}{body}")).await
    }

    /// A `POST /` the agent relays whoever holds the connection: behind a `GET` in the
    /// same write, which a worker gives back with everything after it.
    async fn relayed_post(&mut self, body: &str, request_id: Option<&str>) -> Raw {
        let id = request_id.map_or(String::new(), |id| format!("x-request-id: {id}\r\n"));
        let alive = self
            .send(&format!(
                "GET /alive HTTP/1.1\r\nhost: agent\r\n\r\nPOST / HTTP/1.1\r\nhost: agent\r\n\
                 content-type: application/json\r\n{id}content-length: {}\r\n\r\n{body}",
                body.len()
            ))
            .await;
        assert_eq!((alive.status, &alive.body), (200, &json!({"status": "ok"})));
        let answer = tokio::time::timeout(Duration::from_secs(10), self.answer())
            .await
            .expect("no answer within 10 s");
        if answer.status == 200 {
            assert_eq!(answer.sockets(), 1, "{:#}", answer.body);
        }
        answer
    }

    async fn send(&mut self, request: &str) -> Raw {
        self.stream.write_all(request.as_bytes()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.answer())
            .await
            .expect("no answer within 10 s")
    }

    async fn answer(&mut self) -> Raw {
        let end = loop {
            if let Some(at) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            self.fill().await;
        };
        let head = String::from_utf8(self.read[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_ascii_lowercase(), v.to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        while self.read.len() < end + 4 + length {
            self.fill().await;
        }
        let body = serde_json::from_slice(&self.read[end + 4..end + 4 + length]).unwrap();
        self.read.drain(..end + 4 + length);
        Raw {
            status,
            headers,
            body,
        }
    }

    /// Whether the agent closed the connection (within 10 s) without another byte.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut buf));
        matches!(read.await, Ok(Ok(0)) | Ok(Err(_)))
    }

    async fn fill(&mut self) {
        let mut buf = [0u8; 65536];
        let n = self.stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the agent closed the connection");
        self.read.extend_from_slice(&buf[..n]);
    }
}

/// A connection the worker holds, after a call on it. A connection goes to the idle
/// worker (or one holding others) between two requests, so a second call finds it there
/// even when the first was relayed (a call waited, which made the worker give its
/// connections back).
async fn held_conn(agent: &Agent) -> Conn {
    let mut conn = Conn::open(agent).await;
    for _ in 0..50 {
        if conn.post("{}", None).await.sockets() >= 2 {
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the connection was not passed to the idle worker within 50 calls");
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn a_connection_to_an_idle_worker_is_answered_as_the_agent_answers() {
    let code = code_dir(HANDLER);
    let agent = Agent::start(code.path(), &[]);
    // The cold call starts the worker; the agent relays it.
    let cold = agent.post(r#"{"n": 0}"#).await;
    assert_eq!(cold.ok()["is_cold"], true);

    // Requests after one the worker gives back (it does not serve GET) are the agent's.
    let mut relayed = Conn::open(&agent).await;
    let by_agent = relayed.relayed_post(r#"{"n": 1}"#, Some("id-1")).await;
    drop(relayed);

    // A connection with the idle worker: the worker answers it, call after call.
    let mut held = held_conn(&agent).await;
    let mut pid = None;
    for n in 2..5 {
        let by_worker = held.post(&format!(r#"{{"n": {n}}}"#), None).await;
        assert!(by_worker.sockets() >= 2, "{:#}", by_worker.body);
        let body = &by_worker.body;
        // The same answer as the agent's: status line, headers in order, fields.
        assert_eq!(by_worker.names(), by_agent.names());
        assert_eq!(by_worker.headers[0], by_agent.headers[0]);
        assert_eq!(by_worker.headers[1], by_agent.headers[1], "x-sebs-instance");
        assert_eq!(keys(body), keys(&by_agent.body));
        assert_eq!(body["is_cold"], false);
        assert_eq!(body["init_time_us"], 0);
        assert_eq!(body["memory_source"], by_agent.body["memory_source"]);
        assert!(
            body["memory_peak_bytes"].as_u64().unwrap() > 1_000_000,
            "{body:#}"
        );
        assert!(body["agent_time_us"].as_u64().is_some(), "{body:#}");
        assert_eq!(body["result"]["output"]["echo"], json!({"n": n}));
        assert_eq!(body["result"]["output"]["a"], "é");
        assert_eq!(body["request_id"].as_str().unwrap().len(), 36, "{body:#}");
        let this = body["result"]["output"]["pid"].clone();
        assert_eq!(this, by_agent.body["result"]["output"]["pid"]);
        assert!(pid.is_none_or(|p| p == this));
        pid = Some(this);
        let (b, e) = (
            body["begin"]
                .as_str()
                .unwrap()
                .parse::<sebs_wire::EpochMicros>()
                .unwrap(),
            body["end"]
                .as_str()
                .unwrap()
                .parse::<sebs_wire::EpochMicros>()
                .unwrap(),
        );
        assert!(e >= b, "{body:#}");
    }
    let given = held.post("{}", Some("my-id")).await;
    assert_eq!(given.body["request_id"], "my-id");

    // Every call, relayed or not, is in the invocation log, counted by its path: the
    // cold one and n = 1 relayed, the four on `held` the worker's, and held_conn's (one
    // or more, until the worker held it) either way.
    let log = agent.get("/invocations").await;
    let calls = log.ok()["invocations"].as_array().unwrap();
    assert!(calls.len() >= 7, "{:#}", log.body);
    assert_eq!(calls[calls.len() - 1]["is_cold"], false);
    let relayed = log.body["relayed"].as_u64().unwrap();
    let by_worker = log.body["by_worker"].as_u64().unwrap();
    assert_eq!(relayed + by_worker, calls.len() as u64, "{:#}", log.body);
    assert!(relayed >= 2 && by_worker >= 5, "{:#}", log.body);
}

async fn failures_on_a_held_connection_are_answered_and_it_keeps_serving() {
    let code = code_dir(HANDLER);
    let agent = Agent::start(code.path(), &[("SEBS_TIMEOUT_MS", "700")]);
    for (event, status, kind, fragment) in FAILURES {
        // A relayed call first, so that a worker is up and idle.
        agent.post("{}").await.ok();
        let relayed = Conn::open(&agent).await.relayed_post(event, None).await;
        let mut held = held_conn(&agent).await;
        let failed = held.post(event, Some("failing")).await;
        assert_eq!(failed.status, status, "{event}: {:#}", failed.body);
        assert_eq!(failed.body["kind"], kind, "{event}: {:#}", failed.body);
        assert_eq!(failed.body["request_id"], "failing", "{:#}", failed.body);
        let error = failed.body["error"].as_str().unwrap();
        assert!(
            error.contains(fragment),
            "{event}: {error:?} lacks {fragment:?}"
        );
        assert!(failed.names().contains(&"x-sebs-instance"), "{failed:?}");
        // The same fields as the relayed call's answer, but for the import it waited for.
        let mut expected = keys(&relayed.body);
        expected.retain(|k| k != "init_time_us");
        let mut got = keys(&failed.body);
        got.retain(|k| k != "init_time_us");
        assert_eq!(
            got, expected,
            "{event}: {:#} vs {:#}",
            failed.body, relayed.body
        );
        if kind == "handler_error" {
            assert_eq!(failed.body["type"], "ValueError");
            assert!(failed.body["traceback"]
                .as_str()
                .unwrap()
                .contains("function.py"));
        }
        // The connection keeps serving.
        let next = held.post(r#"{"after": 1}"#, None).await;
        assert_eq!(next.status, 200, "after {event}: {:#}", next.body);
        assert_eq!(next.body["result"]["output"]["echo"], json!({"after": 1}));
    }
}

async fn held_connections_are_given_back_when_a_call_waits() {
    let code = code_dir(HANDLER);
    let agent = Agent::start(code.path(), &[]);
    agent.post("{}").await.ok();
    let mut held = held_conn(&agent).await;
    // One worker: a second connection joins the first.
    let mut other = held_conn(&agent).await;
    let both = other.post(r#"{"n": 1}"#, None).await;
    assert!(both.sockets() >= 3, "{:#}", both.body);
    // A call the worker leaves to the agent (a chunked body) waits for the worker, which
    // gives both connections back.
    let mut third = Conn::open(&agent).await;
    let chunked = "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n7\r\n{\"n\":2}\r\n0\r\n\r\n";
    let answer = third.send(chunked).await;
    assert_eq!(answer.body["result"]["output"]["echo"], json!({"n": 2}));
    assert_eq!(answer.sockets(), 1, "{:#}", answer.body);
    // A connection given back is served by the agent once, then goes to the worker again.
    for conn in [&mut held, &mut other] {
        let after = conn.post(r#"{"n": 3}"#, None).await;
        assert_eq!(after.body["result"]["output"]["echo"], json!({"n": 3}));
        let again = conn.post(r#"{"n": 4}"#, None).await;
        assert!(again.sockets() >= 2, "{:#}", again.body);
    }
    drop((other, third));
    let mut held = held_conn(&agent).await;
    let one = r#"{"n": 3}"#;
    let pipelined = format!(
        "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{one}GET /alive HTTP/1.1\r\nhost: a\r\n\r\n",
        one.len()
    );
    let first = held.send(&pipelined).await;
    assert!(first.sockets() >= 2, "{:#}", first.body);
    let alive = held.answer().await;
    assert_eq!(alive.body, json!({"status": "ok"}));
}

/// One worker holds several connections and answers whichever sends; a call past the
/// timeout gets its 504 on its own connection, the worker's other connections close, and
/// the next call is a new worker's.
async fn a_worker_serves_several_connections() {
    let code = code_dir(HANDLER);
    let agent = Agent::start(code.path(), &[("SEBS_TIMEOUT_MS", "700")]);
    agent.post("{}").await.ok();
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(held_conn(&agent).await);
    }
    let mut pid = None;
    for round in 0..3 {
        for (i, conn) in conns.iter_mut().enumerate() {
            let n = round * 10 + i;
            let answer = conn.post(&format!(r#"{{"n": {n}}}"#), None).await;
            assert!(answer.sockets() >= 4, "{:#}", answer.body);
            let output = &answer.body["result"]["output"];
            assert_eq!(output["echo"], json!({ "n": n }));
            assert!(pid.is_none_or(|p| p == output["pid"]), "{:#}", answer.body);
            pid = Some(output["pid"].clone());
        }
    }
    let slow = conns[1].post(r#"{"sleep": 5}"#, Some("slow")).await;
    assert_eq!(slow.status, 504, "{:#}", slow.body);
    assert_eq!(slow.body["request_id"], "slow", "{:#}", slow.body);
    assert!(conns[0].closed().await && conns[2].closed().await);
    let next = conns[1].post(r#"{"n": 99}"#, None).await;
    assert_eq!(next.body["result"]["output"]["echo"], json!({"n": 99}));
    assert_ne!(Some(next.body["result"]["output"]["pid"].clone()), pid);
}

async fn a_relayed_connection_goes_to_the_worker_between_requests() {
    let code = code_dir(HANDLER);
    let agent = Agent::start(code.path(), &[]);
    // The cold call is relayed (no worker is up when it arrives); the next call on the same
    // connection is the worker's.
    let mut conn = Conn::open(&agent).await;
    let cold = conn.post("{}", None).await;
    assert_eq!(
        (cold.body["is_cold"].as_bool(), cold.sockets()),
        (Some(true), 1)
    );
    let warm = conn.post(r#"{"n": 1}"#, None).await;
    assert_eq!(warm.sockets(), 2, "{:#}", warm.body);
    assert_eq!(warm.body["result"]["output"]["echo"], json!({"n": 1}));
    // A request the worker leaves, then one it serves: after the agent's answer the
    // connection goes back to the idle worker.
    let alive = conn
        .send("GET /alive HTTP/1.1\r\nhost: agent\r\n\r\n")
        .await;
    assert_eq!(alive.body, json!({"status": "ok"}));
    let again = conn.post(r#"{"n": 2}"#, None).await;
    assert_eq!(again.sockets(), 2, "{:#}", again.body);
    let log = agent.get("/invocations").await;
    assert_eq!(
        (log.ok()["relayed"].as_u64(), log.body["by_worker"].as_u64()),
        (Some(1), Some(2)),
        "{:#}",
        log.body
    );
}

async fn requests_the_worker_leaves_are_served_by_the_agent() {
    let code = code_dir(HANDLER);
    let agent = Agent::start(code.path(), &[]);
    agent.post("{}").await.ok();
    let cases: [(&str, u16, &str); 4] = [
        (
            "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 8\r\n\r\nnot json",
            400,
            "the request body is not JSON",
        ),
        ("GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n", 404, "no route"),
        (
            "POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n7\r\n{\"n\":7}\r\n0\r\n\r\n",
            200,
            "",
        ),
        (
            "POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nNaN",
            400,
            "the request body is not JSON",
        ),
    ];
    for (request, status, fragment) in cases {
        let mut conn = held_conn(&agent).await;
        let answer = conn.send(request).await;
        assert_eq!(answer.status, status, "{request}: {:#}", answer.body);
        if status == 200 {
            assert_eq!(answer.body["result"]["output"]["echo"], json!({"n": 7}));
        } else {
            let error = answer.body["error"].as_str().unwrap();
            assert!(error.contains(fragment), "{request}: {error}");
        }
        // The worker is back in the pool: a new connection is its again.
        drop(conn);
        held_conn(&agent).await;
    }
}

/// The Python worker's answers against `answers.json`, whose bytes the agent's own
/// encoding is checked against in sebs-wire.
async fn the_python_worker_writes_the_agents_bytes() {
    let code = code_dir("def handler(event):\n    return event\n");
    let cases_file = code.path().join("answers.json");
    std::fs::write(&cases_file, sebs_wire::handoff::ANSWER_CASES).unwrap();
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import handler as h
out = []
for c in json.load(open(sys.argv[2], encoding="utf-8")):
    f = c.get("failure")
    if f:
        fields = {"type": f["type"], "error": f["error"], "traceback": f["traceback"]}
        body = h._failure_body(f["kind"], c["begin_us"], c["end_us"], c["request_id"], fields)
        status = 500
    else:
        output = h._encode_output(c.get("output"))
        body = h._success_body(c["begin_us"], c["end_us"], c["request_id"], output, c["agent_time_us"], c["rss"])
        status = 200
    out.append(h._http_answer(status, c["instance"], c["date"], body).hex())
print(json.dumps(out))
"#;
    let run = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(code.path())
        .arg(&cases_file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Vec<String> = serde_json::from_slice(&run.stdout).unwrap();
    let cases = sebs_wire::handoff::answer_cases();
    assert_eq!(got.len(), cases.len());
    for (hex, case) in got.iter().zip(&cases) {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            case.expect,
            "{}",
            case.name
        );
    }
}

//! Test support: a code package laid out in a temp dir and the agent binary running on the host.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A function package: the Python worker wrapper plus `function/function.py` with `source`.
pub fn code_dir(source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("handler.py"),
        sebs_wire::worker::PYTHON_WRAPPER,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("function")).unwrap();
    std::fs::write(dir.path().join("function/function.py"), source).unwrap();
    dir
}

/// Sleeps as long as its event says and answers how long that took by its own clock.
pub const SLEEPER: &str = r#"
import time

def handler(event):
    start = time.perf_counter_ns()
    time.sleep(event["sleep"])
    return {"slept_us": (time.perf_counter_ns() - start) // 1000}
"#;

/// A Python handler's failures, for a handler that raises `ValueError` on `raise`, returns a
/// set on `set`, exits on `exit` and sleeps on `sleep`, in an agent started with
/// `SEBS_TIMEOUT_MS` 700: the event, the expected status and kind, a fragment of the message.
pub const FAILURES: [(&str, u16, &str, &str); 4] = [
    (
        r#"{"raise": "boom"}"#,
        500,
        "handler_error",
        "ValueError: boom",
    ),
    (r#"{"set": 1}"#, 500, "bad_output", "not JSON serializable"),
    (r#"{"exit": 3}"#, 500, "worker_died", "exited with status 3"),
    (r#"{"sleep": 5}"#, 504, "timeout", "700 ms"),
];

/// One handler for most tests, steered by its event.
pub const STEERED: &str = r#"
import os, sys, time

def handler(event):
    print("print from the handler", {"ok": True})
    sys.stdout.write('{"ok": true, "begin_us": 1, "end_us": 2, "output": "forged"}\n')
    os.write(1, b"written to fd 1\n")
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "raise" in event:
        raise ValueError(event["raise"])
    if "fork_then_exit" in event:
        # A child that outlives the worker and holds its pipes, then the worker dies.
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        with open(event["fork_then_exit"], "w") as f:
            f.write(str(child))
        os._exit(3)
    if "exit" in event:
        os._exit(event["exit"])
    if "alloc_mb" in event:
        hog = b"x" * (event["alloc_mb"] * 1024 * 1024)
        return {"allocated": len(hog), "pid": os.getpid()}
    if "orphans" in event:
        import subprocess
        for _ in range(event["orphans"]):
            subprocess.run(["sh", "-c", "sleep 0.05 & exit 0"], check=True)
        time.sleep(0.5)
        zombies = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        zombies.append(int(pid))
            except OSError:
                pass
        return {"zombies": zombies}
    if "set" in event:
        return {1, 2}
    return {"echo": event, "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
            "groups": os.getgroups()}
"#;

/// The agent binary running on the host; killed on drop.
pub struct Agent {
    child: Child,
    pub url: String,
    client: reqwest::Client,
}

/// An answer: its HTTP status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// The agent's `x-sebs-instance` header.
    pub instance: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{:#}", self.body);
        &self.body
    }

    /// Begin and end in microseconds since the epoch.
    pub fn span(&self) -> (i64, i64) {
        let body = self.ok();
        let t = |k: &str| {
            body[k]
                .as_str()
                .unwrap()
                .parse::<sebs_wire::EpochMicros>()
                .unwrap()
                .0
        };
        (t("begin"), t("end"))
    }
}

impl Agent {
    /// Starts the agent on a free port for the package in `code`, with extra environment.
    pub fn start(code: &Path, env: &[(&str, &str)]) -> Agent {
        // `cargo xtask test` hands us the static release build it ships; plain `cargo test`
        // tests the binary it just built.
        let bin = std::env::var_os("SEBS_AGENT_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sebs-agent").into());
        let mut cmd = Command::new(bin);
        cmd.env("SEBS_AGENT_PORT", "0")
            .env("SEBS_CODE_DIR", code)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        eprint!("{first}");
        let addr = first
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in the agent's first line {first:?}"));
        let port = addr.rsplit(':').next().unwrap();
        // Keep forwarding the agent's log (and the handler's prints) to the test output.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        Agent {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: client(),
        }
    }

    /// The spec's tolerance, for a [`SLEEPER`] handler: a 100 ms sleep is measured as
    /// 100 ± 2 ms. Each call's begin..end must span at least `at_least_us` and hold the
    /// handler's own measure of its sleep, and at best add no more than 2 ms to it. What a
    /// loaded machine adds by waking the handler late is in both, so it cannot fail this.
    pub async fn assert_sleep_is_measured(&self, at_least_us: i64) {
        let mut spans = Vec::new();
        for _ in 0..5 {
            let answer = self.post(r#"{"sleep": 0.1}"#).await;
            let (begin, end) = answer.span();
            let slept = answer.ok()["result"]["output"]["slept_us"]
                .as_i64()
                .unwrap();
            assert!(
                slept >= at_least_us && end - begin + 1 >= slept,
                "a 100 ms sleep of {slept} µs by the handler's clock spans {} µs",
                end - begin
            );
            spans.push((end - begin, slept));
        }
        let added = spans.iter().map(|(span, slept)| span - slept).min();
        assert!(
            added.is_some_and(|us| us <= 2_000),
            "begin..end add more than 2 ms to the handler's sleep: (span, slept) µs {spans:?}"
        );
    }

    pub async fn post(&self, body: &str) -> Answer {
        self.post_with(body, None).await
    }

    pub async fn post_with(&self, body: &str, request_id: Option<&str>) -> Answer {
        let mut req = self
            .client
            .post(format!("{}/", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        answer(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(
            self.client
                .get(format!("{}{path}", self.url))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends `signal` and waits at most `limit` for the agent to exit.
    pub fn stop(mut self, signal: nix::sys::signal::Signal, limit: Duration) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let instance = response
        .headers()
        .get(sebs_wire::INSTANCE_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    Answer {
        status,
        body,
        instance,
    }
}

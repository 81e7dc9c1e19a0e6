//! The protocol between the agent and its language workers: JSON lines over a worker's stdin/stdout.
//!
//! A worker is a long-lived process (`python3 -u <code_dir>/handler.py`, see
//! [`PYTHON_WRAPPER`], or `node <code_dir>/handler.js`, see [`NODEJS_WRAPPER`]) that imports
//! the function once and then serves one call at a time.
//! Every message is one JSON object on one line, ended by `\n`:
//!
//! 1. worker → agent, once: [`Ready`], `{"ready": true, "init_time_us": N}` after the import,
//!    or `{"ready": false, "error", "type", "traceback"}` when it failed (the worker then exits).
//! 2. agent → worker, per call: [`Request`], `{"request_id": "...", "event": <json>}`.
//! 3. worker → agent, per call: [`Reply`], `{"ok": true, "begin_us", "end_us", "output",
//!    "max_rss_kb", "max_rss_reset"}` or `{"ok": false, "kind": "handler_error" | "bad_output", "error", "type",
//!    "traceback", "begin_us", "end_us"}`. `begin_us`/`end_us` are microseconds since the epoch
//!    taken immediately around the handler call.
//!
//! End of input tells the worker to exit. Workers keep the protocol off fd 0/1 so that a
//! handler's prints go to the container log and cannot corrupt it.

use serde::{Deserialize, Serialize};

use crate::ErrorKind;

/// The Python worker, written as `handler.py` into a Python code package.
pub const PYTHON_WRAPPER: &str = include_str!("../wrappers/python/handler.py");
/// The file name the Python worker has in a code package.
pub const PYTHON_WRAPPER_FILE: &str = "handler.py";
/// The Node.js worker, written as `handler.js` into a Node.js code package.
pub const NODEJS_WRAPPER: &str = include_str!("../wrappers/nodejs/handler.js");
/// The file name the Node.js worker has in a code package.
pub const NODEJS_WRAPPER_FILE: &str = "handler.js";

/// An exception raised in the worker, as the language reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// The exception's message (its type name when the message is empty).
    pub error: String,
    /// The exception's type name, e.g. `ZeroDivisionError`.
    #[serde(rename = "type")]
    pub exception_type: String,
    /// The formatted traceback.
    #[serde(default)]
    pub traceback: String,
}

/// The worker's first line: whether the function could be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReadyWire", into = "ReadyWire")]
pub enum Ready {
    /// The function is imported; importing it took `init_time_us` microseconds.
    Imported { init_time_us: u64 },
    /// The import failed; the worker exits after saying so.
    Failed(Exception),
}

/// One call, from the agent to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub request_id: String,
    /// The invocation's input: the body of `POST /`.
    pub event: serde_json::Value,
}

/// A worker's answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ReplyWire", into = "ReplyWire")]
pub enum Reply {
    Ok(Success),
    Err(Failure),
}

/// The handler returned a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// Microseconds since the epoch just before the handler was called.
    pub begin_us: i64,
    /// Microseconds since the epoch just after the handler returned.
    pub end_us: i64,
    /// The handler's return value.
    pub output: serde_json::Value,
    /// The worker process's peak resident set in KiB, when the worker knows it: during
    /// the call if `max_rss_reset`, else over the worker's whole life.
    pub max_rss_kb: Option<u64>,
    /// Whether the worker reset its peak just before the call (Python: `VmHWM` after
    /// writing `5` to `/proc/self/clear_refs`), so that `max_rss_kb` is the call's peak.
    /// Absent on the wire means false: the lifetime peak (`ru_maxrss`).
    pub max_rss_reset: bool,
}

/// The handler raised, or returned something that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub exception: Exception,
    pub begin_us: i64,
    pub end_us: i64,
}

/// Why a call failed inside a worker that is still alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The handler raised.
    HandlerError,
    /// The handler's return value could not be encoded as JSON.
    BadOutput,
}

impl FailureKind {
    /// The error kind the agent answers with.
    pub fn error_kind(self) -> ErrorKind {
        match self {
            FailureKind::HandlerError => ErrorKind::HandlerError,
            FailureKind::BadOutput => ErrorKind::BadOutput,
        }
    }
}

/// A worker line that is not a message of this protocol.
#[derive(Debug, thiserror::Error)]
#[error("parse worker message {line:?}")]
pub struct ProtocolError {
    /// The start of the offending line, lossily decoded.
    pub line: String,
    #[source]
    pub source: serde_json::Error,
}

/// Longest part of a bad line kept in a [`ProtocolError`].
const ERROR_LINE_CHARS: usize = 200;

fn protocol_error(line: &[u8], source: serde_json::Error) -> ProtocolError {
    let text = String::from_utf8_lossy(line);
    ProtocolError {
        line: text.chars().take(ERROR_LINE_CHARS).collect(),
        source,
    }
}

impl Ready {
    /// Parses a worker's first line (with or without its `\n`).
    pub fn parse(line: &[u8]) -> Result<Ready, ProtocolError> {
        serde_json::from_slice(line).map_err(|e| protocol_error(line, e))
    }
}

impl Reply {
    /// Parses a worker's answer line (with or without its `\n`).
    pub fn parse(line: &[u8]) -> Result<Reply, ProtocolError> {
        serde_json::from_slice(line).map_err(|e| protocol_error(line, e))
    }
}

impl Request {
    /// Writes the request as one line, `\n` included, ready for a worker's stdin.
    pub fn encode(request_id: &str, event: &serde_json::Value) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            request_id: &'a str,
            event: &'a serde_json::Value,
        }
        let mut line = Vec::with_capacity(64);
        // Serialising a `Value` into a Vec cannot fail: its map keys are strings.
        if serde_json::to_writer(&mut line, &Borrowed { request_id, event }).is_err() {
            line.clear();
            line.extend_from_slice(br#"{"request_id":"","event":null}"#);
        }
        line.push(b'\n');
        line
    }
}

/// The flat shape of [`Ready`] on the wire.
#[derive(Serialize, Deserialize)]
struct ReadyWire {
    ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init_time_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    exception_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceback: Option<String>,
}

/// The flat shape of [`Reply`] on the wire.
#[derive(Serialize, Deserialize)]
struct ReplyWire {
    ok: bool,
    begin_us: i64,
    end_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_rss_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    max_rss_reset: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    exception_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceback: Option<String>,
}

fn exception(
    error: Option<String>,
    exception_type: Option<String>,
    traceback: Option<String>,
) -> Exception {
    let exception_type = exception_type.unwrap_or_else(|| "Exception".to_string());
    Exception {
        error: error.unwrap_or_else(|| exception_type.clone()),
        exception_type,
        traceback: traceback.unwrap_or_default(),
    }
}

impl TryFrom<ReadyWire> for Ready {
    type Error = String;

    fn try_from(w: ReadyWire) -> Result<Ready, String> {
        if w.ready {
            let init_time_us = w
                .init_time_us
                .ok_or("a ready worker must say `init_time_us`")?;
            Ok(Ready::Imported { init_time_us })
        } else {
            Ok(Ready::Failed(exception(
                w.error,
                w.exception_type,
                w.traceback,
            )))
        }
    }
}

impl From<Ready> for ReadyWire {
    fn from(r: Ready) -> ReadyWire {
        match r {
            Ready::Imported { init_time_us } => ReadyWire {
                ready: true,
                init_time_us: Some(init_time_us),
                error: None,
                exception_type: None,
                traceback: None,
            },
            Ready::Failed(e) => ReadyWire {
                ready: false,
                init_time_us: None,
                error: Some(e.error),
                exception_type: Some(e.exception_type),
                traceback: Some(e.traceback),
            },
        }
    }
}

impl TryFrom<ReplyWire> for Reply {
    type Error = String;

    fn try_from(w: ReplyWire) -> Result<Reply, String> {
        if w.ok {
            // `"output": null` deserialises as `None`: a handler returning None is fine.
            Ok(Reply::Ok(Success {
                begin_us: w.begin_us,
                end_us: w.end_us,
                output: w.output.unwrap_or(serde_json::Value::Null),
                max_rss_kb: w.max_rss_kb,
                max_rss_reset: w.max_rss_reset,
            }))
        } else {
            let kind = w.kind.ok_or("a failed call must say its `kind`")?;
            Ok(Reply::Err(Failure {
                kind,
                exception: exception(w.error, w.exception_type, w.traceback),
                begin_us: w.begin_us,
                end_us: w.end_us,
            }))
        }
    }
}

impl From<Reply> for ReplyWire {
    fn from(r: Reply) -> ReplyWire {
        match r {
            Reply::Ok(s) => ReplyWire {
                ok: true,
                begin_us: s.begin_us,
                end_us: s.end_us,
                max_rss_kb: s.max_rss_kb,
                max_rss_reset: s.max_rss_reset,
                output: Some(s.output),
                kind: None,
                error: None,
                exception_type: None,
                traceback: None,
            },
            Reply::Err(f) => ReplyWire {
                ok: false,
                begin_us: f.begin_us,
                end_us: f.end_us,
                max_rss_kb: None,
                max_rss_reset: false,
                output: None,
                kind: Some(f.kind),
                error: Some(f.exception.error),
                exception_type: Some(f.exception.exception_type),
                traceback: Some(f.exception.traceback),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_reply(line: &str, expect: Result<Reply, &str>) {
        let got = Reply::parse(line.as_bytes());
        match (got, expect) {
            (Ok(got), Ok(expect)) => {
                assert_eq!(got, expect, "{line}");
                // What we parse, we write back to the same message.
                let again = Reply::parse(&serde_json::to_vec(&got).unwrap()).unwrap();
                assert_eq!(again, got);
            }
            (Err(e), Err(fragment)) => {
                let e = crate::ErrorChain(&e).to_string();
                assert!(e.contains(fragment), "{line}: {e}");
            }
            (got, expect) => panic!("{line}: got {got:?}, expected {expect:?}"),
        }
    }

    fn ex(error: &str, ty: &str, tb: &str) -> Exception {
        Exception {
            error: error.into(),
            exception_type: ty.into(),
            traceback: tb.into(),
        }
    }

    #[test]
    fn replies() {
        check_reply(
            r#"{"ok": true, "begin_us": 10, "end_us": 20, "max_rss_kb": 9000, "output": {"a": [1]}}"#,
            Ok(Reply::Ok(Success {
                begin_us: 10,
                end_us: 20,
                output: json!({"a": [1]}),
                max_rss_kb: Some(9000),
                max_rss_reset: false,
            })),
        );
        check_reply(
            r#"{"ok": true, "begin_us": 10, "end_us": 20, "max_rss_kb": 12, "max_rss_reset": true, "output": 1}"#,
            Ok(Reply::Ok(Success {
                begin_us: 10,
                end_us: 20,
                output: json!(1),
                max_rss_kb: Some(12),
                max_rss_reset: true,
            })),
        );
        check_reply(
            "{\"ok\": true, \"begin_us\": 1, \"end_us\": 2, \"output\": null}\n",
            Ok(Reply::Ok(Success {
                begin_us: 1,
                end_us: 2,
                output: json!(null),
                max_rss_kb: None,
                max_rss_reset: false,
            })),
        );
        check_reply(
            r#"{"ok": false, "kind": "handler_error", "error": "boom", "type": "ValueError",
                "traceback": "Traceback ...", "begin_us": 5, "end_us": 6}"#,
            Ok(Reply::Err(Failure {
                kind: FailureKind::HandlerError,
                exception: ex("boom", "ValueError", "Traceback ..."),
                begin_us: 5,
                end_us: 6,
            })),
        );
        check_reply(
            r#"{"ok": false, "kind": "bad_output", "type": "TypeError", "begin_us": 5, "end_us": 6}"#,
            Ok(Reply::Err(Failure {
                kind: FailureKind::BadOutput,
                exception: ex("TypeError", "TypeError", ""),
                begin_us: 5,
                end_us: 6,
            })),
        );
        check_reply(r#"{"ok": false, "begin_us": 5, "end_us": 6}"#, Err("kind"));
        check_reply(
            r#"{"ok": false, "kind": "segfault", "begin_us": 5, "end_us": 6}"#,
            Err("segfault"),
        );
        check_reply(r#"{"ok": true}"#, Err("begin_us"));
        check_reply("hello from print()", Err("hello from print()"));
        check_reply("", Err("parse worker message"));
    }

    #[test]
    fn ready_lines() {
        let ok = Ready::parse(br#"{"ready": true, "init_time_us": 1234}"#).unwrap();
        assert_eq!(ok, Ready::Imported { init_time_us: 1234 });
        let failed = Ready::parse(
            br#"{"ready": false, "error": "No module named 'numpy'", "type": "ModuleNotFoundError", "traceback": "tb"}"#,
        )
        .unwrap();
        assert_eq!(
            failed,
            Ready::Failed(ex("No module named 'numpy'", "ModuleNotFoundError", "tb"))
        );
        for r in [ok, failed] {
            assert_eq!(Ready::parse(&serde_json::to_vec(&r).unwrap()).unwrap(), r);
        }
        let err = Ready::parse(br#"{"ready": true}"#).unwrap_err();
        let err = crate::ErrorChain(&err).to_string();
        assert!(err.contains("init_time_us"), "{err}");
    }

    #[test]
    fn requests_are_single_lines() {
        let event = json!({"text": "two\nlines", "n": 1});
        let line = Request::encode("id-1", &event);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let back: Request = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            back,
            Request {
                request_id: "id-1".into(),
                event
            }
        );
    }

    #[test]
    fn failure_kinds_map_to_answers() {
        assert_eq!(
            FailureKind::HandlerError.error_kind(),
            ErrorKind::HandlerError
        );
        assert_eq!(FailureKind::BadOutput.error_kind().status(), 500);
    }
}

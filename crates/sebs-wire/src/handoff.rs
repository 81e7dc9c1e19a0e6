//! The warm path's hand-off: a worker that answers HTTP on a connection the agent passed it, and what both sides share about it.
//!
//! On a warm call the agent does not relay the request: it passes the connection (accepted,
//! or between two requests) to a worker (the descriptor over a unix socket, `SCM_RIGHTS`), which reads
//! `POST /` requests with a `Content-Length` body, runs the handler and writes the answer
//! itself, then reads the next request on the same connection. A worker holds several
//! connections and serves whichever is readable, one call at a time. A warm call then wakes one
//! process, as a server written in the function's language would. Anything else (another
//! method or path, a chunked body, `Expect`, `Connection: close`, a body that is not JSON
//! or too large) the worker gives back with the bytes it read, and the agent serves it as
//! on a connection it never passed. Only the Python worker takes connections.
//!
//! Messages, besides [`crate::worker`]'s lines (the worker's descriptors are named by
//! [`HANDOFF_FDS_ENV`], `SOCKET,STATE`):
//! - agent → worker on stdin: `{"connection": N, "instance": "..."}`, sent after the
//!   descriptor went over the socket; `{"give_back": N}`: return connection `N` between
//!   requests (the agent needs the worker for another caller).
//! - worker → agent on stdout: `{"released": N, "closed": bool, "leftover": "<hex>"}`: the
//!   worker no longer holds connection `N`; `closed` when the client hung up, else
//!   `leftover` holds what it read of a request it did not serve.
//!
//! The worker publishes its state in the shared file [`State`] describes, without a system
//! call, and the agent reads it on its own timer: which call is running since when, on
//! which connection (for the timeout, and the request id of a 504 or 500 the agent then
//! writes on its own copy of that connection), and a ring of the calls' handler spans for the invocation log.

use serde::{Deserialize, Serialize};

use crate::{ErrorAnswer, InvocationAnswer};

/// `SOCKET,STATE`: the worker's ends of the hand-off socket and the shared state file.
pub const HANDOFF_FDS_ENV: &str = "SEBS_HANDOFF_FDS";

/// The layout of the shared state file (little-endian).
///
/// A seqlock guards the call fields: the worker makes `seq` odd, writes, and makes it even
/// again; a reader that sees the same even `seq` before and after its read has a
/// consistent copy.
pub mod state {
    /// u64: the seqlock counter.
    pub const SEQ: usize = 0;
    /// i64: microseconds since the epoch when the running call was read; 0 between calls.
    pub const BUSY_SINCE_US: usize = 8;
    /// u64: the length of `REQUEST_ID`.
    pub const ID_LEN: usize = 16;
    /// The running call's request id, at most [`ID_MAX`] bytes.
    pub const REQUEST_ID: usize = 24;
    pub const ID_MAX: usize = 88;
    /// u64: the number of the connection the running call came on (a worker holds several).
    pub const CONNECTION: usize = 112;
    /// u64: how many records the worker has written to the ring, ever.
    pub const LOG_WRITTEN: usize = 120;
    /// The ring of records: `begin_us` i64, `end_us` i64, `ok` u64.
    pub const RING: usize = 128;
    pub const RECORD: usize = 24;
    pub const RING_SLOTS: usize = 8192;
    /// The whole file.
    pub const SIZE: usize = RING + RECORD * RING_SLOTS;
}

/// One message of the agent to a worker about connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToWorker {
    Connection { connection: u64, instance: String },
    GiveBack { give_back: u64 },
}

impl ToWorker {
    /// The message as one line, `\n` included.
    pub fn encode(&self) -> Vec<u8> {
        // Strings and integers always encode.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// A worker's line saying it gave a connection back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub released: u64,
    #[serde(default)]
    pub closed: bool,
    /// Hex of the bytes read and not served.
    #[serde(default)]
    pub leftover: String,
}

impl Released {
    /// Parses a worker line; `None` when it is not a [`Released`] message.
    pub fn parse(line: &[u8]) -> Option<Released> {
        serde_json::from_slice(line).ok()
    }

    /// The leftover bytes; `None` when they are not hex.
    pub fn leftover_bytes(&self) -> Option<Vec<u8>> {
        let s = self.leftover.as_bytes();
        if s.len() % 2 != 0 {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        s.chunks(2)
            .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
            .collect()
    }
}

/// The reason phrase hyper and the worker write for the statuses the agent answers with.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// An answer as it goes on the wire: the head the agent's HTTP server writes, then `body`.
///
/// `date` is an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); the worker writes the same
/// bytes (`handler.py`'s `_http_answer`), and `answers.json` holds the cases both are
/// checked against.
pub fn http_answer(status: u16, instance: Option<&str>, date: &str, body: &[u8]) -> Vec<u8> {
    typed_http_answer(status, "application/json", instance, date, body)
}

/// [`http_answer`] with another content type (the agent's `GET /memory` is NDJSON).
pub fn typed_http_answer(
    status: u16,
    content_type: &str,
    instance: Option<&str>,
    date: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    out.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
    if let Some(instance) = instance {
        out.extend_from_slice(format!("{}: {instance}\r\n", crate::INSTANCE_HEADER).as_bytes());
    }
    out.extend_from_slice(
        format!("content-length: {}\r\ndate: {date}\r\n\r\n", body.len()).as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// The body of a successful call, as the agent encodes it.
pub fn success_body(answer: &InvocationAnswer) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(answer)
}

/// The body of a failed call, as the agent encodes it.
pub fn error_body(answer: &ErrorAnswer) -> Vec<u8> {
    serde_json::to_vec(answer)
        .unwrap_or_else(|_| br#"{"error":"internal","kind":"internal"}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let c = ToWorker::Connection {
            connection: 3,
            instance: "abc".into(),
        };
        assert_eq!(c.encode(), b"{\"connection\":3,\"instance\":\"abc\"}\n");
        assert_eq!(
            ToWorker::GiveBack { give_back: 4 }.encode(),
            b"{\"give_back\":4}\n"
        );
        let r =
            Released::parse(br#"{"released": 3, "closed": false, "leftover": "474554"}"#).unwrap();
        assert_eq!(r.leftover_bytes().unwrap(), b"GET");
        assert!(Released::parse(br#"{"ok": true, "begin_us": 1, "end_us": 2}"#).is_none());
        let bad = Released {
            leftover: "4g".into(),
            ..r
        };
        assert_eq!(bad.leftover_bytes(), None);
    }

    #[test]
    fn state_layout_fits() {
        assert!(state::REQUEST_ID + state::ID_MAX <= state::CONNECTION);
        assert!(state::CONNECTION + 8 <= state::LOG_WRITTEN);
        assert_eq!(state::SIZE, 128 + 24 * 8192);
    }
}

/// The cases of `wrappers/answers.json`: answers of the warm path, and the exact bytes the
/// agent writes for them, which the worker must write too.
pub const ANSWER_CASES: &str = include_str!("../wrappers/answers.json");

/// One case of [`ANSWER_CASES`].
#[derive(Debug, Clone, Deserialize)]
pub struct AnswerCase {
    pub name: String,
    pub instance: Option<String>,
    pub date: String,
    pub begin_us: i64,
    pub end_us: i64,
    pub request_id: String,
    #[serde(default)]
    pub agent_time_us: u64,
    /// `[kB, reset]`: the worker's peak resident set.
    #[serde(default)]
    pub rss: Option<(u64, bool)>,
    #[serde(default)]
    pub output: serde_json::Value,
    #[serde(default)]
    pub failure: Option<CaseFailure>,
    pub expect: String,
}

/// A call that failed in the worker.
#[derive(Debug, Clone, Deserialize)]
pub struct CaseFailure {
    pub kind: crate::worker::FailureKind,
    #[serde(rename = "type")]
    pub exception_type: String,
    pub error: String,
    pub traceback: String,
}

impl AnswerCase {
    /// The answer the agent writes for this case, as the relayed path builds it.
    pub fn agent_answer(&self) -> Vec<u8> {
        let (status, body) = match &self.failure {
            None => {
                let answer = InvocationAnswer {
                    begin: crate::EpochMicros(self.begin_us).to_string(),
                    end: crate::EpochMicros(self.end_us).to_string(),
                    request_id: self.request_id.clone(),
                    is_cold: false,
                    result: crate::HandlerResult {
                        output: self.output.clone(),
                    },
                    init_time_us: 0,
                    agent_time_us: Some(self.agent_time_us),
                    memory_peak_bytes: self.rss.map(|(kb, _)| kb * 1024),
                    memory_source: self.rss.map(|(_, reset)| {
                        if reset {
                            crate::MemorySource::Process
                        } else {
                            crate::MemorySource::ProcessLifetime
                        }
                    }),
                };
                (200, success_body(&answer).unwrap_or_default())
            }
            Some(f) => {
                let kind = f.kind.error_kind();
                let mut answer =
                    ErrorAnswer::new(kind, format!("{}: {}", f.exception_type, f.error));
                answer.exception_type = Some(f.exception_type.clone());
                answer.traceback = Some(f.traceback.clone());
                answer.request_id = Some(self.request_id.clone());
                answer.begin = Some(crate::EpochMicros(self.begin_us).to_string());
                answer.end = Some(crate::EpochMicros(self.end_us).to_string());
                (kind.status(), error_body(&answer))
            }
        };
        http_answer(status, self.instance.as_deref(), &self.date, &body)
    }
}

/// The cases of [`ANSWER_CASES`].
pub fn answer_cases() -> Vec<AnswerCase> {
    serde_json::from_str(ANSWER_CASES).unwrap_or_default()
}

#[cfg(test)]
mod answer_tests {
    #[test]
    fn the_agent_writes_the_expected_bytes() {
        let cases = super::answer_cases();
        assert_eq!(cases.len(), 5, "wrappers/answers.json parses");
        for case in cases {
            let got = String::from_utf8(case.agent_answer()).unwrap();
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }
}

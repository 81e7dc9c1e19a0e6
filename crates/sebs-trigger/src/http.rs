//! The HTTP trigger: POSTs an input to a function's agent and times every phase.
//!
//! Each call is one HTTP/1.1 exchange written and read by the calling task itself
//! ([`crate::client`]), so the figures have the phase boundaries curl reports: when a
//! connection was ready (PRETRANSFER) and when the answer's first bytes arrived
//! (STARTTRANSFER). Connections are kept alive and reused, so warm invocations measure the
//! function and not TCP set-up; [`TriggerConfig::keep_alive`] turns that off to reproduce
//! SeBS's one-connection-per-call behaviour.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sebs_wire::{EpochMicros, ErrorAnswer, InvocationAnswer};

use crate::client::{Connection, ExchangeError, Request};
use crate::result::{
    python_datetime, ExecutionBilling, ExecutionResult, ExecutionStats, ExecutionTimes,
    ProviderTimes,
};

/// How a [`Trigger`] behaves.
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// Reuse connections between invocations (the default).
    pub keep_alive: bool,
    /// An invocation that has no complete answer after this long fails with
    /// [`InvokeError::Timeout`]; the function's own timeout should come first.
    pub timeout: Duration,
    /// How long a new connection may take, and how long bytes sent may stay unacknowledged
    /// by the function's host (`TCP_USER_TIMEOUT`), before the call fails: a host that went
    /// away is told within this, not after `timeout`. The host's TCP acknowledges at once
    /// whatever the function does, so this does not bound the function.
    pub connect_timeout: Duration,
    /// The instance (container host name) that must answer, checked against the agent's
    /// [`sebs_wire::INSTANCE_HEADER`] when it sends one: an address can be handed to a new
    /// container as soon as the old one is gone.
    pub expect_instance: Option<String>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            keep_alive: true,
            timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            expect_instance: None,
        }
    }
}

/// Client-side times of one request, kept also when the invocation failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestTimes {
    pub begin: EpochMicros,
    pub end: EpochMicros,
    /// Microseconds from `begin` to the end of the answer, on the monotonic clock.
    pub client_us: i64,
    /// Seconds until the request could be sent.
    pub http_startup: f64,
    /// Seconds until the first byte of the answer; 0 when none came.
    pub http_first_byte_return: f64,
}

/// Why an invocation produced no [`ExecutionResult`].
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("connect to function at {url}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connect to function at {url} within {}s: its host does not answer", timeout.as_secs_f64())]
    ConnectTimeout { url: String, timeout: Duration },
    /// The connection failed, or what came back is not HTTP.
    #[error("exchange HTTP with function at {url}")]
    Http {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("get an answer from function at {url} within {}s", timeout.as_secs_f64())]
    Timeout {
        url: String,
        timeout: Duration,
        times: RequestTimes,
    },
    /// The function answered with an error of its own: it raised, timed out, or died.
    #[error("invoke function at {url}: {} (HTTP {status}){}", answer.error,
        answer.exception_type.as_deref().map(|t| format!(", {t}")).unwrap_or_default())]
    Function {
        url: String,
        status: u16,
        answer: Box<ErrorAnswer>,
        times: RequestTimes,
    },
    /// Another instance than the expected one answered: the function's container is gone
    /// and its address now belongs to someone else. The answer is not the function's.
    #[error("invoke function at {url}: the answer came from instance {found}, not {expected}; the function's container is gone")]
    WrongInstance {
        url: String,
        expected: String,
        found: String,
        times: RequestTimes,
    },
    /// Something answered that does not speak the protocol.
    #[error("read the answer of function at {url} (HTTP {status}): {reason}; body: {body}")]
    BadAnswer {
        url: String,
        status: u16,
        reason: String,
        body: String,
        times: RequestTimes,
    },
}

impl InvokeError {
    /// The client-side times, when the request got as far as being sent.
    pub fn times(&self) -> Option<&RequestTimes> {
        match self {
            InvokeError::Timeout { times, .. }
            | InvokeError::WrongInstance { times, .. }
            | InvokeError::Function { times, .. }
            | InvokeError::BadAnswer { times, .. } => Some(times),
            InvokeError::Connect { .. }
            | InvokeError::ConnectTimeout { .. }
            | InvokeError::Http { .. } => None,
        }
    }
}

/// A URL that is not `host:port` or `http://host:port[/path]`.
#[derive(Debug, thiserror::Error)]
#[error("parse function url {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

/// Invokes one function endpoint. Cheap to share behind an `Arc`; concurrent invocations
/// each get their own connection.
#[derive(Debug)]
pub struct Trigger {
    pub(crate) host: String,
    pub(crate) port: u16,
    url: String,
    config: TriggerConfig,
    /// The request's path and `Host` header.
    path: String,
    host_header: String,
    idle: Mutex<Vec<Connection>>,
}

impl Trigger {
    /// A trigger for `url`: SeBS's `"172.17.0.3:9000"` or `"http://127.0.0.1:9000/"`.
    pub fn new(url: &str, config: TriggerConfig) -> Result<Trigger, UrlError> {
        let err = |reason| UrlError {
            url: url.to_string(),
            reason,
        };
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(_) => return Err(err("only http:// is supported")),
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| err("no port"))?;
        let port: u16 = port.parse().map_err(|_| err("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(err("no host"));
        }
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("the path is not a valid URI path"));
        }
        if !host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err("the host is not a valid header value"));
        }
        let host_header = authority.to_string();
        Ok(Trigger {
            host: host.to_string(),
            port,
            url: format!("http://{authority}{path}"),
            config,
            path: path.to_string(),
            host_header,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `input` as JSON and reads the function's answer into SeBS's result record.
    pub async fn invoke(&self, input: &serde_json::Value) -> Result<ExecutionResult, InvokeError> {
        let body = Bytes::from(serde_json::to_vec(input).unwrap_or_else(|_| b"null".to_vec()));
        self.invoke_raw(body).await
    }

    /// Like [`Trigger::invoke`] with a body that is already serialised.
    ///
    /// The client time runs from just before a connection is taken to the answer's last
    /// byte; SeBS's record is built after the clock stops.
    pub async fn invoke_raw(&self, body: Bytes) -> Result<ExecutionResult, InvokeError> {
        let begin = EpochMicros::now();
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.config.timeout, self.exchange(body, start)).await;
        let elapsed = start.elapsed();
        let times = |startup: Duration, first_byte: Option<Duration>| RequestTimes {
            begin,
            end: EpochMicros(begin.0 + elapsed.as_micros() as i64),
            client_us: elapsed.as_micros() as i64,
            http_startup: startup.as_secs_f64(),
            http_first_byte_return: first_byte.map_or(0.0, |d| d.as_secs_f64()),
        };
        let exchange = match outcome {
            Ok(result) => result?,
            Err(_) => {
                return Err(InvokeError::Timeout {
                    url: self.url.clone(),
                    timeout: self.config.timeout,
                    times: times(Duration::ZERO, None),
                })
            }
        };
        let times = times(exchange.startup, Some(exchange.first_byte));
        if let (Some(expected), Some(found)) = (&self.config.expect_instance, &exchange.instance) {
            if expected != found {
                return Err(InvokeError::WrongInstance {
                    url: self.url.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                    times,
                });
            }
        }
        read_answer(&self.url, exchange.status, &exchange.body, times)
    }

    /// Sends one request and reads the whole answer, retrying once on a fresh connection
    /// when a kept-alive one turns out closed before the request reached the function.
    async fn exchange(&self, body: Bytes, start: Instant) -> Result<Exchange, InvokeError> {
        let request = Request {
            method: "POST",
            path: &self.path,
            host: &self.host_header,
            headers: "content-type: application/json\r\n",
            close: !self.config.keep_alive,
            body: &body,
        };
        loop {
            let (mut connection, reused) = self.connection().await?;
            let startup = start.elapsed();
            match connection.exchange(&request, start).await {
                Ok(answer) => {
                    if answer.reusable && self.config.keep_alive {
                        self.idle
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(connection);
                    }
                    return Ok(Exchange {
                        status: answer.status,
                        instance: answer.instance,
                        body: answer.body,
                        startup,
                        first_byte: answer.first_byte,
                    });
                }
                // Nothing ran: send it again on another connection.
                Err(ExchangeError::Ended(_)) if reused => continue,
                Err(e) => {
                    return Err(InvokeError::Http {
                        url: self.url.clone(),
                        source: e.into_io(),
                    })
                }
            }
        }
    }

    /// An idle kept-alive connection when there is one, else a new one; says which.
    async fn connection(&self) -> Result<(Connection, bool), InvokeError> {
        if self.config.keep_alive {
            loop {
                let candidate = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let Some(connection) = candidate else { break };
                if connection.is_open() {
                    return Ok((connection, true));
                }
            }
        }
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(self.config.connect_timeout, connect)
            .await
            .map_err(|_| InvokeError::ConnectTimeout {
                url: self.url.clone(),
                timeout: self.config.connect_timeout,
            })?
            .map_err(|source| InvokeError::Connect {
                url: self.url.clone(),
                source,
            })?;
        // Requests are small: send them now rather than waiting for more bytes (Nagle).
        let _ = stream.set_nodelay(true);
        // A kept-alive connection to a host that went away would otherwise wait for the
        // answer until `timeout`. Best effort: without it, `timeout` still ends the call.
        let millis = u32::try_from(self.config.connect_timeout.as_millis()).unwrap_or(u32::MAX);
        let _ = nix::sys::socket::setsockopt(
            &stream,
            nix::sys::socket::sockopt::TcpUserTimeout,
            &millis,
        );
        Ok((Connection::new(stream), false))
    }
}

struct Exchange {
    status: u16,
    instance: Option<String>,
    body: Vec<u8>,
    startup: Duration,
    first_byte: Duration,
}

impl ExecutionResult {
    /// A failed invocation in SeBS's shape: `stats.failure` set, the agent's error answer (or
    /// our description) as `output`, and every time that was measured: the client's, and the
    /// handler's and the import's when the agent reports them.
    pub fn failed(error: &InvokeError) -> ExecutionResult {
        let answer = match error {
            InvokeError::Function { answer, .. } => Some(answer.as_ref()),
            _ => None,
        };
        let output = match answer {
            Some(a) => serde_json::to_value(a).unwrap_or(serde_json::Value::Null),
            None => serde_json::json!({ "error": error.to_string() }),
        };
        let benchmark = answer
            .and_then(|a| {
                let begin: EpochMicros = a.begin.as_deref()?.parse().ok()?;
                let end: EpochMicros = a.end.as_deref()?.parse().ok()?;
                Some(end.micros_since(begin))
            })
            .unwrap_or(0);
        let times = error.times();
        ExecutionResult {
            request_id: answer
                .and_then(|a| a.request_id.clone())
                .unwrap_or_default(),
            times: ExecutionTimes {
                client: times.map_or(0, |t| t.client_us),
                client_begin: times
                    .map(|t| python_datetime(t.begin.0))
                    .unwrap_or_default(),
                client_end: times.map(|t| python_datetime(t.end.0)).unwrap_or_default(),
                benchmark,
                initialization: answer.map_or(0, |a| a.init_time_us as i64),
                http_startup: times.map_or(0.0, |t| t.http_startup),
                http_first_byte_return: times.map_or(0.0, |t| t.http_first_byte_return),
            },
            provider_times: ProviderTimes::default(),
            stats: ExecutionStats {
                memory_used: None,
                cold_start: answer.is_some_and(|a| a.is_cold),
                failure: true,
            },
            billing: ExecutionBilling::default(),
            output,
        }
    }
}

/// Turns an agent's answer into SeBS's record, or into the error it reports.
pub fn read_answer(
    url: &str,
    status: u16,
    body: &[u8],
    times: RequestTimes,
) -> Result<ExecutionResult, InvokeError> {
    let bad = |reason: String| InvokeError::BadAnswer {
        url: url.to_string(),
        status,
        reason,
        body: String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned(),
        times,
    };
    if status != 200 {
        return match serde_json::from_slice::<ErrorAnswer>(body) {
            Ok(answer) => Err(InvokeError::Function {
                url: url.to_string(),
                status,
                answer: Box::new(answer),
                times,
            }),
            Err(e) => Err(bad(format!("error answer is not the agent's JSON ({e})"))),
        };
    }
    let output: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("answer is not JSON ({e})")))?;
    let answer: InvocationAnswer = serde_json::from_value(output.clone())
        .map_err(|e| bad(format!("answer lacks SeBS's fields ({e})")))?;
    let begin: EpochMicros = answer.begin.parse().map_err(|e| bad(format!("{e}")))?;
    let end: EpochMicros = answer.end.parse().map_err(|e| bad(format!("{e}")))?;
    Ok(ExecutionResult {
        request_id: answer.request_id.clone(),
        times: ExecutionTimes {
            client: times.client_us,
            client_begin: python_datetime(times.begin.0),
            client_end: python_datetime(times.end.0),
            benchmark: end.micros_since(begin),
            initialization: answer.init_time_us as i64,
            http_startup: times.http_startup,
            http_first_byte_return: times.http_first_byte_return,
        },
        provider_times: ProviderTimes::default(),
        stats: ExecutionStats {
            memory_used: answer
                .memory_peak_bytes
                .map(|b| b as f64 / (1024.0 * 1024.0)),
            cold_start: answer.is_cold,
            failure: false,
        },
        billing: ExecutionBilling::default(),
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_url(url: &str, expect: Result<(&str, u16, &str), &str>) {
        match (Trigger::new(url, TriggerConfig::default()), expect) {
            (Ok(t), Ok((host, port, path))) => {
                assert_eq!(
                    (t.host.as_str(), t.port, t.path.as_str()),
                    (host, port, path),
                    "{url}"
                )
            }
            (Err(e), Err(reason)) => assert_eq!(e.reason, reason, "{url}"),
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn urls() {
        check_url("172.17.0.3:9000", Ok(("172.17.0.3", 9000, "/")));
        check_url("http://127.0.0.1:9001/", Ok(("127.0.0.1", 9001, "/")));
        check_url("http://localhost:80/fn", Ok(("localhost", 80, "/fn")));
        check_url("http://[::1]:9000", Ok(("::1", 9000, "/")));
        check_url("https://x:1", Err("only http:// is supported"));
        check_url("172.17.0.3", Err("no port"));
        check_url(":9000", Err("no host"));
        check_url("h:99999", Err("the port is not a number"));
        check_url("http://h:1/a b", Err("the path is not a valid URI path"));
        check_url("h\r\nx:1", Err("the host is not a valid header value"));
    }

    fn times() -> RequestTimes {
        RequestTimes {
            begin: EpochMicros(1_700_000_000_000_000),
            end: EpochMicros(1_700_000_000_001_520),
            client_us: 1520,
            http_startup: 0.0002,
            http_first_byte_return: 0.0014,
        }
    }

    #[test]
    fn reads_answers() {
        let ok = br#"{"begin": "1700000000.100000", "end": "1700000000.200042",
            "request_id": "id1", "is_cold": true, "init_time_us": 5000,
            "result": {"output": {"result": 1}}}"#;
        let r = read_answer("u", 200, ok, times()).unwrap();
        assert_eq!(r.times.benchmark, 100_042);
        assert_eq!(r.times.initialization, 5000);
        assert_eq!(r.times.client, 1520);
        assert!(r.stats.cold_start);
        assert_eq!(r.request_id, "id1");
        assert_eq!(r.handler_output(), Some(&serde_json::json!({"result": 1})));

        let raised =
            br#"{"error": "ValueError: boom", "kind": "handler_error", "type": "ValueError",
            "traceback": "Traceback..."}"#;
        match read_answer("u", 500, raised, times()) {
            Err(InvokeError::Function {
                status: 500,
                answer,
                ..
            }) => {
                assert_eq!(answer.exception_type.as_deref(), Some("ValueError"))
            }
            other => panic!("{other:?}"),
        }
        let raised_late = br#"{"error": "ValueError: boom", "kind": "handler_error", "type": "ValueError",
            "is_cold": true, "begin": "1700000000.100000", "end": "1700000000.100250", "init_time_us": 700}"#;
        let failed =
            ExecutionResult::failed(&read_answer("u", 500, raised_late, times()).unwrap_err());
        assert!(failed.stats.failure && failed.stats.cold_start);
        assert_eq!(
            (
                failed.times.benchmark,
                failed.times.initialization,
                failed.times.client
            ),
            (250, 700, 1520)
        );
        assert_eq!(failed.output["type"], "ValueError");
        let e = read_answer("u", 502, b"<html>bad gateway</html>", times()).unwrap_err();
        assert!(
            matches!(e, InvokeError::BadAnswer { status: 502, .. }),
            "{e}"
        );
        let e = read_answer("u", 200, b"{\"begin\": 1}", times()).unwrap_err();
        assert!(e.to_string().contains("lacks SeBS's fields"), "{e}");
        let e = read_answer("u", 200, b"nope", times()).unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
        assert_eq!(e.times().map(|t| t.client_us), Some(1520));
    }
}

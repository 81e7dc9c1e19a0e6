//! The trigger against a real HTTP server on loopback that answers like an agent.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sebs_testkit::{trial, Trial};
use sebs_trigger::{InvokeError, Trigger, TriggerConfig};

sebs_testkit::main!(trials());

/// The tests of this binary, each with what it needs from the machine.
fn trials() -> Vec<Trial> {
    vec![
        trial!(keeps_connections_alive_and_times_phases),
        trial!(without_keep_alive_each_call_connects),
        trial!(a_server_that_closes_connections_is_reconnected),
        trial!(function_errors_and_timeouts_are_values),
        trial!(a_host_that_does_not_answer_fails_the_call_at_the_connect_timeout),
        trial!(an_answer_from_another_instance_is_refused),
        trial!(an_invocation_log_is_believed_only_from_its_own_container),
        trial!(answers_framed_every_way_http_allows_are_read),
        trial!(answers_that_are_not_http_fail_the_call_clearly),
        trial!(a_kept_alive_connection_the_server_closed_is_replaced),
    ]
}

/// Serves agent-like answers; counts accepted connections. `close_after_each` makes the
/// server drop every connection after one answer without saying so, as a restarting agent
/// would.
async fn server(
    delay: Duration,
    status: u16,
    close_after_each: bool,
) -> (String, Arc<AtomicUsize>) {
    server_named(delay, status, close_after_each, None).await
}

async fn server_named(
    delay: Duration,
    status: u16,
    close_after_each: bool,
    instance: Option<&'static str>,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |_req: Request<hyper::body::Incoming>| async move {
                        tokio::time::sleep(delay).await;
                        let body = if status == 200 {
                            r#"{"begin": "1700000000.000000", "end": "1700000000.000500", "request_id": "x",
                            "is_cold": false, "result": {"output": {}}}"#
                        } else {
                            r#"{"error": "boom", "kind": "handler_error", "type": "ValueError"}"#
                        };
                        let mut response = Response::builder().status(status);
                        if let Some(name) = instance {
                            response = response.header(sebs_wire::INSTANCE_HEADER, name);
                        }
                        Ok::<_, Infallible>(response.body(Full::new(Bytes::from(body))).unwrap())
                    },
                );
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(!close_after_each)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    });
    (format!("{addr}"), connections)
}

async fn keeps_connections_alive_and_times_phases() {
    let (url, connections) = server(Duration::from_millis(5), 200, false).await;
    let trigger = Trigger::new(&url, TriggerConfig::default()).unwrap();
    for _ in 0..5 {
        let r = trigger.invoke(&serde_json::json!({"a": 1})).await.unwrap();
        assert_eq!(r.times.benchmark, 500);
        let client_s = r.times.client as f64 / 1e6;
        assert!(r.times.http_startup <= r.times.http_first_byte_return);
        assert!(
            r.times.http_first_byte_return <= client_s + 1e-6,
            "{:?}",
            r.times
        );
        // The server waits 5 ms before answering.
        assert!(r.times.http_first_byte_return >= 0.005, "{:?}", r.times);
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one kept-alive connection for 5 calls"
    );
}

async fn without_keep_alive_each_call_connects() {
    let (url, connections) = server(Duration::ZERO, 200, false).await;
    let config = TriggerConfig {
        keep_alive: false,
        ..TriggerConfig::default()
    };
    let trigger = Trigger::new(&url, config).unwrap();
    for _ in 0..3 {
        trigger.invoke(&serde_json::json!({})).await.unwrap();
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

async fn a_server_that_closes_connections_is_reconnected() {
    let (url, connections) = server(Duration::ZERO, 200, true).await;
    let trigger = Trigger::new(&url, TriggerConfig::default()).unwrap();
    for _ in 0..3 {
        trigger.invoke(&serde_json::json!({})).await.unwrap();
        // Give the server's close time to arrive, so the next call finds it closed.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

async fn function_errors_and_timeouts_are_values() {
    let (url, _) = server(Duration::ZERO, 500, false).await;
    let trigger = Trigger::new(&url, TriggerConfig::default()).unwrap();
    let err = trigger.invoke(&serde_json::json!({})).await.unwrap_err();
    assert!(
        matches!(&err, InvokeError::Function { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(err.times().is_some());

    let (url, _) = server(Duration::from_secs(5), 200, false).await;
    let config = TriggerConfig {
        timeout: Duration::from_millis(100),
        ..TriggerConfig::default()
    };
    let trigger = Trigger::new(&url, config).unwrap();
    let err = trigger.invoke(&serde_json::json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err}");

    // Nothing listens on this port once the listener is dropped.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let trigger = Trigger::new(&format!("127.0.0.1:{port}"), TriggerConfig::default()).unwrap();
    let err = trigger.invoke(&serde_json::json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Connect { .. }), "{err}");
}

/// A listener whose queue is full drops further connection requests unanswered, as a host
/// that went away does (on loopback: Linux drops a SYN to a full queue).
async fn a_host_that_does_not_answer_fails_the_call_at_the_connect_timeout() {
    use nix::sys::socket::{
        bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
    };
    let listener = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&listener),
        &SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let address: SockaddrIn =
        nix::sys::socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(&listener)).unwrap();
    let port = address.port();
    // Fill the queue (never accepted): later connection requests get no answer.
    let mut held = Vec::new();
    for _ in 0..4 {
        let stream = std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_millis(200),
        );
        match stream {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    let config = TriggerConfig {
        timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_millis(300),
        ..TriggerConfig::default()
    };
    let trigger = Trigger::new(&format!("127.0.0.1:{port}"), config).unwrap();
    let err = trigger.invoke(&serde_json::json!({})).await.unwrap_err();
    assert!(matches!(err, InvokeError::ConnectTimeout { .. }), "{err}");
    assert!(err.to_string().contains("does not answer"), "{err}");
    drop(held);
}

async fn an_answer_from_another_instance_is_refused() {
    let expecting = |name: &str| TriggerConfig {
        expect_instance: Some(name.into()),
        ..TriggerConfig::default()
    };
    let (url, _) = server_named(Duration::ZERO, 200, false, Some("abc123")).await;
    Trigger::new(&url, expecting("abc123"))
        .unwrap()
        .invoke(&serde_json::json!({}))
        .await
        .unwrap();
    let err = Trigger::new(&url, expecting("def456"))
        .unwrap()
        .invoke(&serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, InvokeError::WrongInstance { found, .. } if found == "abc123"),
        "{err}"
    );
    assert!(err.to_string().contains("container is gone"), "{err}");
    // A server that names no instance (SeBS's own) is taken at its word.
    let (url, _) = server(Duration::ZERO, 200, false).await;
    Trigger::new(&url, expecting("def456"))
        .unwrap()
        .invoke(&serde_json::json!({}))
        .await
        .unwrap();
}

async fn an_invocation_log_is_believed_only_from_its_own_container() {
    let (url, _) = server_named(Duration::ZERO, 200, false, Some("abc123def456")).await;
    let timeout = Duration::from_secs(5);
    let err = sebs_trigger::invocation_log(&url, "0123456789ab0000", timeout)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, sebs_trigger::LogError::WrongInstance { found: Some(f), .. } if f == "abc123def456"),
        "{err}"
    );
    // Its own container's answer is read; this one is no log.
    let err = sebs_trigger::invocation_log(&url, "abc123def4567777", timeout)
        .await
        .unwrap_err();
    assert!(matches!(err, sebs_trigger::LogError::Parse { .. }), "{err}");
    // An agent that names no instance cannot vouch for its log.
    let (unnamed, _) = server(Duration::ZERO, 200, false).await;
    let err = sebs_trigger::invocation_log(&unnamed, "abc123def456", timeout)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("(unnamed) answered"), "{err}");
}

/// A valid agent answer's body.
const OK_BODY: &str = r#"{"begin": "1700000000.000000", "end": "1700000000.000500", "request_id": "x", "is_cold": false, "result": {"output": {"n": 1}}}"#;

/// A server that writes `answer` verbatim for every request it reads (a head, then a
/// `Content-Length` body), and closes the connection after each answer when
/// `close_after_each`; counts accepted connections. Unlike hyper's server it writes any
/// framing, or bytes that are not HTTP at all.
async fn raw_server(answer: Vec<u8>, close_after_each: bool) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: its head, then as many body bytes as it announces.
                    let request_len = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let body: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            if buf.len() >= end + 4 + body {
                                break end + 4 + body;
                            }
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    buf.drain(..request_len);
                    if stream.write_all(&answer).await.is_err() {
                        return;
                    }
                    if close_after_each {
                        return;
                    }
                }
            });
        }
    });
    (format!("{addr}"), connections)
}

/// What a framing of [`OK_BODY`] must give: the output, read whole, over one kept-alive
/// connection for two calls, or over one each when the server closes after every answer
/// (as an answer delimited by the connection's end needs).
async fn check_framing(what: &str, answer: String, server_closes: bool) {
    let (url, connections) = raw_server(answer.into_bytes(), server_closes).await;
    let trigger = Trigger::new(&url, TriggerConfig::default()).unwrap();
    for _ in 0..2 {
        let r = trigger
            .invoke(&serde_json::json!({}))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            r.handler_output(),
            Some(&serde_json::json!({"n": 1})),
            "{what}"
        );
        assert_eq!(r.times.benchmark, 500, "{what}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        if server_closes { 2 } else { 1 },
        "{what}: connections for two calls"
    );
}

async fn answers_framed_every_way_http_allows_are_read() {
    let len = OK_BODY.len();
    let (first, second) = OK_BODY.split_at(40);
    let cases = [
        (
            "Content-Length",
            format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n{OK_BODY}"),
            false,
        ),
        (
            "chunked, with a chunk extension and a trailer",
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:X};ext=1\r\n{second}\r\n0\r\nx-trailer: 1\r\n\r\n",
                first.len(),
                second.len()
            ),
            false,
        ),
        (
            "100 Continue first",
            format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n{OK_BODY}"),
            false,
        ),
        (
            "Connection: close (answers on a connection each)",
            format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n{OK_BODY}"),
            true,
        ),
        (
            "HTTP/1.0 delimited by the connection's end",
            format!("HTTP/1.0 200 OK\r\n\r\n{OK_BODY}"),
            true,
        ),
    ];
    for (what, answer, server_closes) in cases {
        check_framing(what, answer, server_closes).await;
    }
}

async fn answers_that_are_not_http_fail_the_call_clearly() {
    let cases = [
        (
            "not HTTP",
            "SSH-2.0-OpenSSH_9.2\r\n\r\n".to_string(),
            "not HTTP/1.x",
        ),
        (
            "a body cut short",
            "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"begin\"".to_string(),
            "ended inside the answer's body",
        ),
        (
            "a head cut short",
            "HTTP/1.1 200 OK\r\nContent-Le".to_string(),
            "ended before the answer's head was complete",
        ),
        (
            "a Content-Length that is not a number",
            "HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n".to_string(),
            "Content-Length is not a number",
        ),
        (
            "a malformed chunk",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_string(),
            "chunk size is malformed",
        ),
        (
            "an endless head",
            format!("HTTP/1.1 200 OK\r\nx-long: {}\r\n", "a".repeat(70 * 1024)),
            "longer than 65536 bytes",
        ),
    ];
    for (what, answer, says) in cases {
        let (url, _) = raw_server(answer.into_bytes(), true).await;
        let trigger = Trigger::new(&url, TriggerConfig::default()).unwrap();
        let err = trigger.invoke(&serde_json::json!({})).await.unwrap_err();
        assert!(matches!(err, InvokeError::Http { .. }), "{what}: {err}");
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains(says), "{what}: {chain}");
        assert!(chain.contains(&url), "{what}: {chain}");
    }
}

async fn a_kept_alive_connection_the_server_closed_is_replaced() {
    // The server answers as if keeping the connection, then closes it: the trigger finds
    // it closed before the next call (after a pause) or when the call finds no answer on it
    // (at once); either way the call is made again on a new connection and succeeds.
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{OK_BODY}",
        OK_BODY.len()
    );
    for pause in [Duration::from_millis(20), Duration::ZERO] {
        let (url, connections) = raw_server(answer.clone().into_bytes(), true).await;
        let trigger = Trigger::new(&url, TriggerConfig::default()).unwrap();
        for _ in 0..3 {
            trigger
                .invoke(&serde_json::json!({}))
                .await
                .unwrap_or_else(|e| panic!("pause {pause:?}: {e}"));
            tokio::time::sleep(pause).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3, "pause {pause:?}");
    }
}

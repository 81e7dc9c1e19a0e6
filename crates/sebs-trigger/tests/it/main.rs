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

//! A connection from accept to close: the agent's own HTTP/1.1 loop, which passes the connection to a worker whenever no request is pending on it.
//!
//! hyper cannot give a socket back between two requests, so the agent reads requests
//! itself (httparse) and answers them with the bytes hyper writes. Between two requests
//! (an answer written, nothing of the next one read) a worker that takes connections (an
//! idle one, or one holding others) gets it ([`crate::handoff`]), exactly as a connection
//! just accepted: so a connection the agent served once (the cold call, or a call that
//! waited for a worker) goes on by the warm path. A request this loop does not parse simply (HTTP/1.0,
//! chunked bodies, `Expect`, `Upgrade`, `Connection: close`, a query string, a body past
//! [`MAX_BODY_BYTES`], a malformed head) hands the rest of the connection to hyper, with what
//! was read of it.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{raw_answer, route, serve_hyper, Head, RequestBody, State, MAX_BODY_BYTES};
use crate::{handoff, http::REQUEST_ID_HEADER};

/// The longest request head this loop reads before leaving the connection to hyper (whose
/// own limit answers it).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers a request may have here; more go to hyper.
const MAX_HEADERS: usize = 64;

/// A request head this loop serves.
#[derive(Debug, PartialEq, Eq)]
struct Simple {
    method: Method,
    path: String,
    request_id: Option<String>,
    length: usize,
    /// Bytes of the head, the blank line included.
    head_len: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Simple(Simple),
    /// More bytes are needed.
    Partial,
    /// A request hyper serves.
    Other,
}

/// Serves a connection until it closes; `read` holds what was read of it already.
pub async fn serve(state: Arc<State>, mut stream: TcpStream, read: Vec<u8>) {
    let mut buf = read;
    // A connection a worker just gave back is served here at least once: it came back
    // because a call waits for that worker, or the worker could not take it.
    let mut given_back = false;
    loop {
        if buf.is_empty() && !given_back {
            stream = match handoff::pass(&state, stream).await {
                handoff::Passed::Held(Some((back, read))) => {
                    stream = back;
                    buf = read;
                    given_back = true;
                    continue;
                }
                handoff::Passed::Held(None) => return,
                handoff::Passed::Kept(stream) => stream,
            };
        }
        given_back = false;
        let simple = loop {
            match parse(&buf) {
                Parsed::Simple(simple) => break simple,
                Parsed::Other => return serve_hyper(state, stream, buf).await,
                Parsed::Partial if buf.len() > MAX_HEAD_BYTES => {
                    return serve_hyper(state, stream, buf).await
                }
                Parsed::Partial => {}
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let need = simple.head_len + simple.length;
        if buf.len() < need {
            buf.reserve(need - buf.len());
        }
        while buf.len() < need {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let body = Bytes::copy_from_slice(&buf[simple.head_len..need]);
        buf.drain(..need);
        let head = Head {
            method: &simple.method,
            path: &simple.path,
            request_id: simple.request_id.as_deref(),
            declared: Some(simple.length as u64),
        };
        let answer = route(&state, &head, RequestBody::Read(body)).await;
        if stream
            .write_all(&raw_answer(&state, &answer))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Reads a request head from `buf`: one this loop serves, one it leaves to hyper, or not
/// yet whole.
fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Parsed::Other;
    }
    let mut length = None;
    let mut request_id = None;
    for h in req.headers.iter() {
        let value = h.value;
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let digits = trim(value);
            let Some(n) = std::str::from_utf8(digits)
                .ok()
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<usize>().ok())
            else {
                return Parsed::Other;
            };
            if length.is_some() || n > MAX_BODY_BYTES {
                return Parsed::Other;
            }
            length = Some(n);
        } else if ["transfer-encoding", "expect", "upgrade"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return Parsed::Other;
        } else if name.eq_ignore_ascii_case("connection") {
            if !trim(value).eq_ignore_ascii_case(b"keep-alive") {
                return Parsed::Other;
            }
        } else if name.eq_ignore_ascii_case(REQUEST_ID_HEADER) && request_id.is_none() {
            // hyper's `HeaderValue::to_str`: visible ASCII and tabs, else no id.
            let value = trim(value);
            let visible = value.iter().all(|&b| b == b'\t' || (32..127).contains(&b));
            request_id = Some(
                std::str::from_utf8(value)
                    .ok()
                    .filter(|v| visible && !v.is_empty())
                    .map(str::to_string),
            );
        }
    }
    Parsed::Simple(Simple {
        method,
        path: path.to_string(),
        request_id: request_id.flatten(),
        length: length.unwrap_or(0),
        head_len,
    })
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &value[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: &str, expect: Parsed) {
        assert_eq!(parse(request.as_bytes()), expect, "{request:?}");
    }

    fn simple(method: Method, path: &str, id: Option<&str>, length: usize, head: &str) -> Parsed {
        Parsed::Simple(Simple {
            method,
            path: path.to_string(),
            request_id: id.map(str::to_string),
            length,
            head_len: head.len(),
        })
    }

    #[test]
    fn heads_served_here_and_left_to_hyper() {
        let post = "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n";
        check(post, simple(Method::POST, "/", None, 2, post));
        check(
            &format!("{post}{{}}"),
            simple(Method::POST, "/", None, 2, post),
        );
        let alive = "GET /alive HTTP/1.1\r\n\r\n";
        check(alive, simple(Method::GET, "/alive", None, 0, alive));
        let id = "POST / HTTP/1.1\r\nX-Request-Id:  abc \r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        check(id, simple(Method::POST, "/", Some("abc"), 0, id));
        let empty_id = "POST / HTTP/1.1\r\nx-request-id:\r\ncontent-length: 0\r\n\r\n";
        check(empty_id, simple(Method::POST, "/", None, 0, empty_id));
        let other = "DELETE /nowhere HTTP/1.1\r\n\r\n";
        check(other, simple(Method::DELETE, "/nowhere", None, 0, other));

        check("", Parsed::Partial);
        check("POST / HTTP/1.1\r\ncontent-length: 2\r\n", Parsed::Partial);
        for other in [
            "POST / HTTP/1.0\r\ncontent-length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nconnection: close\r\ncontent-length: 2\r\n\r\n",
            "GET / HTTP/1.1\r\nupgrade: h2c\r\n\r\n",
            "POST /?a=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\n",
            "POST http://x/ HTTP/1.1\r\ncontent-length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: -2\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            check(other, Parsed::Other);
        }
    }
}

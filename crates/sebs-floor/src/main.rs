//! The physical floor of `cargo xtask bench`: a static HTTP/1.1 responder that answers every
//! request with 200 and a fixed JSON body, as fast as a thread per connection allows; and, for
//! the storage figures, `GET /bytes/<n>` with `n` zero bytes (the reference for moving bytes),
//! while any request body (a PUT of the same bytes) is read and dropped as it arrives.
//!
//! It runs as the only file of a FROM-scratch image, so its cold start is what the engine
//! alone costs, and its keep-alive round trip is what the network path alone costs. The body
//! parses as SeBS's invocation answer so that the same trigger can time it. It knows nothing
//! else: no routes, no request bodies beyond skipping them.
//!
//! Usage: `sebs-floor [PORT]` (else `$FLOOR_PORT`, else 8080). Exits 0 on SIGTERM or SIGINT.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

/// The answer's body: a valid SeBS invocation answer with an empty output.
pub const BODY: &str =
    r#"{"begin":"0","end":"0","request_id":"floor","is_cold":false,"result":{"output":{}}}"#;

/// Where the floor listens unless told otherwise.
const DEFAULT_PORT: u16 = 8080;

/// Requests whose head is larger than this are refused by closing the connection.
const MAX_HEAD: usize = 64 * 1024;

/// The largest `GET /bytes/<n>` answered.
const MAX_BYTES: usize = 1 << 30;

/// Zeros that `GET /bytes/<n>` answers with, written as often as needed.
static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

fn main() -> ExitCode {
    let port = match port(std::env::args().nth(1), std::env::var("FLOOR_PORT").ok()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sebs-floor: {e}");
            return ExitCode::from(2);
        }
    };
    // Block the stop signals before any thread exists, so that every thread inherits the
    // mask and only the waiting thread below receives them. As PID 1 in a container a
    // process without a handler would ignore SIGTERM altogether.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    if let Err(e) = stop.thread_block() {
        eprintln!("sebs-floor: failed to block SIGTERM: {e}");
        return ExitCode::FAILURE;
    }
    std::thread::spawn(move || {
        if stop.wait().is_ok() {
            std::process::exit(0);
        }
    });
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sebs-floor: failed to listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    serve(&listener);
    ExitCode::SUCCESS
}

/// The port from the first argument, else the environment, else [`DEFAULT_PORT`].
fn port(arg: Option<String>, env: Option<String>) -> Result<u16, String> {
    match arg.or(env).filter(|s| !s.trim().is_empty()) {
        None => Ok(DEFAULT_PORT),
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("port {s:?} is not a number from 0 to 65535")),
    }
}

/// Accepts connections forever, one thread each.
fn serve(listener: &TcpListener) {
    for stream in listener.incoming() {
        // A failed accept (e.g. the peer reset first) concerns that connection only.
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || connection(stream));
    }
}

/// Answers requests on one connection until the peer closes it or asks to.
fn connection(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let closing = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 256 * 1024];
    // The request whose body is still arriving, and how much of it is left to drop.
    let mut pending: Option<(Request, usize)> = None;
    loop {
        // Drop body bytes as they come, then answer every complete request in the buffer
        // (pipelining), then read more.
        loop {
            if let Some((request, left)) = pending.take() {
                let dropped = left.min(buf.len());
                buf.drain(..dropped);
                if dropped < left {
                    pending = Some((request, left - dropped));
                    break;
                }
                if answer_request(&mut stream, &request, &answer, &closing).is_err()
                    || request.close
                {
                    return;
                }
            }
            let Some(request) = parse(&buf) else { break };
            buf.drain(..request.head_len);
            pending = Some((request, request.body_len));
        }
        if buf.len() > MAX_HEAD {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes the answer to `request`: `n` zero bytes for `GET /bytes/<n>`, else the body.
fn answer_request(
    stream: &mut TcpStream,
    request: &Request,
    answer: &str,
    closing: &str,
) -> std::io::Result<()> {
    let Some(n) = request.bytes else {
        return stream.write_all(if request.close { closing } else { answer }.as_bytes());
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n{}\r\n",
        if request.close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes())?;
    let mut left = n;
    while left > 0 {
        let part = left.min(ZEROS.len());
        stream.write_all(&ZEROS[..part])?;
        left -= part;
    }
    Ok(())
}

/// What the floor needs to know of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Request {
    /// Bytes up to and including the blank line.
    head_len: usize,
    /// `Content-Length`, 0 when absent.
    body_len: usize,
    /// Whether the connection ends after the answer.
    close: bool,
    /// `GET /bytes/<n>`: answer `n` zero bytes.
    bytes: Option<usize>,
}

/// The request whose head is complete at the start of `buf`, or `None` when more is needed.
fn parse(buf: &[u8]) -> Option<Request> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    // HTTP/1.0 closes unless asked to keep alive; 1.1 keeps alive unless asked to close.
    let mut close = request_line.ends_with("HTTP/1.0");
    let bytes = request_line
        .strip_prefix("GET /bytes/")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n <= MAX_BYTES);
    let mut body_len = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                close = true;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                close = false;
            }
        }
    }
    Some(Request {
        head_len: end + 4,
        body_len,
        close,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Option<(usize, usize, bool)>) {
        let got = parse(input.as_bytes()).map(|r| (r.head_len, r.body_len, r.close));
        assert_eq!(got, expect, "{input:?}");
    }

    #[test]
    fn parses_request_heads() {
        check("GET / HTTP/1.1\r\nHost: x\r\n\r\n", Some((27, 0, false)));
        check(
            "POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
            Some((38, 2, false)),
        );
        check(
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            Some((37, 0, true)),
        );
        check("GET / HTTP/1.0\r\n\r\n", Some((18, 0, true)));
        check(
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            Some((42, 0, false)),
        );
        check("GET / HTTP/1.1\r\nHost: x\r\n", None);
        check("", None);
        let bytes = |head: &str| parse(head.as_bytes()).and_then(|r| r.bytes);
        assert_eq!(bytes("GET /bytes/65536 HTTP/1.1\r\n\r\n"), Some(65536));
        assert_eq!(bytes("GET /bytes/x HTTP/1.1\r\n\r\n"), None);
        assert_eq!(bytes("GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(bytes("GET /bytes/99999999999 HTTP/1.1\r\n\r\n"), None);
    }

    #[test]
    fn moves_large_bodies_both_ways() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(&listener));
        let mut s = TcpStream::connect(addr).unwrap();
        // A 3 MiB PUT (far beyond a head's size) is read and dropped, then answered...
        let body = vec![7u8; 3 << 20];
        s.write_all(
            format!("PUT /x HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        )
        .unwrap();
        s.write_all(&body).unwrap();
        // ...and a GET of 1 MiB on the same connection answers exactly that many zeros.
        s.write_all(b"GET /bytes/1048576 HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all[..200.min(all.len())]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        let second = all
            .windows(15)
            .rposition(|w| w == b"HTTP/1.1 200 OK")
            .unwrap();
        let rest = &all[second..];
        let body_at = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(rest.len() - body_at, 1 << 20);
        assert!(rest[body_at..].iter().all(|b| *b == 0));
    }

    #[test]
    fn ports() {
        assert_eq!(port(None, None), Ok(8080));
        assert_eq!(port(Some("9000".into()), Some("1".into())), Ok(9000));
        assert_eq!(port(None, Some("9001".into())), Ok(9001));
        assert!(port(Some("x".into()), None).unwrap_err().contains("\"x\""));
    }

    #[test]
    fn answers_kept_alive_and_pipelined_requests() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(&listener));
        let mut s = TcpStream::connect(addr).unwrap();
        // Two requests in one write, the first with a body; then a closing one.
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n{}\nGET /alive HTTP/1.1\r\n\r\n")
            .unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
        assert_eq!(all.matches(BODY).count(), 3, "{all}");
        assert!(all.ends_with(BODY), "{all}");
    }
}

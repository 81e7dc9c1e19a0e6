//! A C-speed HTTP/1.1 client, the reference our trigger is measured against: blocking
//! `std::net`, one kept-alive connection, the request bytes made once, a preallocated
//! answer buffer, `Content-Length` only; nothing is allocated and no runtime is crossed
//! between a call's start and its end. What it measures is the server's round trip and
//! the kernel's, as close as a client in C would.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The answer buffer; answers of the no-op function and the floors are far smaller.
const BUFFER: usize = 64 * 1024;

/// One kept-alive connection posting one fixed request.
pub struct Client {
    address: SocketAddr,
    stream: TcpStream,
    request: Vec<u8>,
    buf: Box<[u8]>,
}

/// Where an answer's head ends and what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes up to and including the blank line.
    pub len: usize,
    pub content_length: usize,
}

impl Client {
    /// Connects to `address` to `POST /` `body` as JSON.
    pub fn connect(address: SocketAddr, body: &[u8]) -> Result<Client> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .with_context(|| format!("failed to connect to {address}"))?;
        stream
            .set_nodelay(true)
            .with_context(|| format!("failed to set TCP_NODELAY on the connection to {address}"))?;
        // A server that stops answering fails the figure instead of hanging the bench.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .with_context(|| format!("failed to set a read timeout to {address}"))?;
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        Ok(Client {
            address,
            stream,
            request,
            buf: vec![0u8; BUFFER].into_boxed_slice(),
        })
    }

    /// One round trip: the request written, the whole answer read. Fails unless it is a 200.
    pub fn call(&mut self) -> Result<()> {
        let head = self
            .exchange()
            .with_context(|| format!("failed to exchange a request with {}", self.address))?;
        if head.status != 200 {
            bail!("{} answered HTTP {}", self.address, head.status);
        }
        Ok(())
    }

    fn exchange(&mut self) -> io::Result<Head> {
        self.stream.write_all(&self.request)?;
        let mut filled = 0;
        let head = loop {
            if filled == self.buf.len() {
                return Err(io::Error::other(
                    "the answer's head does not fit the buffer",
                ));
            }
            let n = self.stream.read(&mut self.buf[filled..])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            match parse_head(&self.buf[..filled]) {
                Ok(Some(head)) => break head,
                Ok(None) => continue,
                Err(reason) => return Err(io::Error::other(reason)),
            }
        };
        // The body: read what has not arrived with the head, reusing the buffer.
        let mut left = (head.len + head.content_length).saturating_sub(filled);
        if filled > head.len + head.content_length {
            return Err(io::Error::other("more bytes than one answer (pipelining?)"));
        }
        while left > 0 {
            let n = self.stream.read(&mut self.buf[..left.min(BUFFER)])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
        }
        Ok(head)
    }

    /// `n` round trips after `warm_up` uncounted ones; each one's time in µs.
    pub fn round_trips(&mut self, warm_up: usize, n: usize) -> Result<Vec<f64>> {
        for _ in 0..warm_up {
            self.call()?;
        }
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let begin = Instant::now();
            self.call()?;
            times.push(begin.elapsed().as_secs_f64() * 1e6);
        }
        Ok(times)
    }
}

/// The answer's head at the start of `buf`: `None` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, &'static str> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().unwrap_or_default();
    // "HTTP/1.1 200 OK"
    let status = status_line
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .ok_or("the answer's status line is not HTTP/1.x")?;
    let mut content_length = None;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if line[..colon].eq_ignore_ascii_case(b"content-length") {
            let value = std::str::from_utf8(&line[colon + 1..])
                .map_err(|_| "Content-Length is not text")?;
            content_length = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| "Content-Length is not a number")?,
            );
        } else if line[..colon].eq_ignore_ascii_case(b"transfer-encoding") {
            return Err("the answer is chunked; this client reads Content-Length only");
        }
    }
    Ok(Some(Head {
        status,
        len: end + 4,
        content_length: content_length.ok_or("the answer has no Content-Length")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<Option<(u16, usize, usize)>, &str>) {
        let got =
            parse_head(text.as_bytes()).map(|h| h.map(|h| (h.status, h.len, h.content_length)));
        assert_eq!(got, expect, "{text:?}");
    }

    #[test]
    fn answer_heads() {
        check(
            "HTTP/1.1 200 OK\r\ncontent-length: 26\r\n\r\n{}",
            Ok(Some((200, 39, 26))),
        );
        check(
            "HTTP/1.1 504 Gateway Timeout\r\nX-A: b\r\nContent-Length:3\r\n\r\n",
            Ok(Some((504, 58, 3))),
        );
        check("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", Ok(None));
        check("", Ok(None));
        check(
            "HTTP/1.1 200 OK\r\n\r\n",
            Err("the answer has no Content-Length"),
        );
        check(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err("the answer is chunked; this client reads Content-Length only"),
        );
        check(
            "garbage\r\n\r\n",
            Err("the answer's status line is not HTTP/1.x"),
        );
        check(
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            Err("Content-Length is not a number"),
        );
    }

    #[test]
    fn round_trips_over_one_connection() {
        // A server that answers every request on one connection and counts them.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut answered = 0;
            let mut pending = Vec::new();
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    return answered;
                }
                pending.extend_from_slice(&buf[..n]);
                // Each request is the head plus a 2-byte body.
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    if pending.len() < end + 6 {
                        break;
                    }
                    pending.drain(..end + 6);
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                        .unwrap();
                    answered += 1;
                }
            }
        });
        let mut client = Client::connect(address, b"{}").unwrap();
        let times = client.round_trips(3, 20).unwrap();
        assert_eq!(times.len(), 20);
        assert!(times.iter().all(|t| *t > 0.0));
        drop(client);
        assert_eq!(server.join().unwrap(), 23);
    }
}

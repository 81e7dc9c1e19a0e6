//! One HTTP/1.1 exchange on a TCP connection, written and read by the calling task itself.
//!
//! This is the trigger's timed section, so it does nothing a C client would not: one write
//! of the whole request, reads into one buffer until the answer is complete, httparse for the
//! head. A general client (hyper's connection-level one was here before) hands the answer
//! between its connection driver and the caller through channels: on a multi-threaded
//! runtime each of those wake-ups can wake another worker thread, and `sebs-local invoke`
//! measured ~18 µs more per call than a plain read/write loop on loopback (and ~30 µs on the
//! multi-threaded runtime; see the trigger's figure in `cargo xtask bench`).
//!
//! Answers may be length-delimited, chunked, or delimited by the connection's end; informational
//! (1xx) heads before the answer are skipped. Requests have a `Content-Length` body.

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer head we read; a server sending more is not speaking to us.
const MAX_HEAD: usize = 64 * 1024;

/// Headers beyond this many make an answer malformed (the agent sends four).
const MAX_HEADERS: usize = 64;

/// What a read at a time asks for.
const READ_CHUNK: usize = 8 * 1024;

/// A request, apart from its connection.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The `Host` header's value.
    pub host: &'a str,
    /// Extra header lines, each ending in `\r\n`.
    pub headers: &'a str,
    /// Ask the server to close the connection after its answer.
    pub close: bool,
    pub body: &'a [u8],
}

/// An answer, with the times of its phases since the caller's `start`.
pub(crate) struct Answer {
    pub status: u16,
    /// The agent's [`sebs_wire::INSTANCE_HEADER`], when sent.
    pub instance: Option<String>,
    pub body: Vec<u8>,
    /// When the answer's first bytes arrived.
    pub first_byte: Duration,
    /// Whether another request may follow on this connection.
    pub reusable: bool,
}

/// Why an exchange gave no answer.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// The connection ended before a single byte of an answer came: on a kept-alive
    /// connection, the server closed it before our request arrived, and nothing ran.
    Ended(io::Error),
    /// Anything else: the request may have run.
    Failed(io::Error),
}

impl ExchangeError {
    pub fn into_io(self) -> io::Error {
        match self {
            ExchangeError::Ended(e) | ExchangeError::Failed(e) => e,
        }
    }
}

fn invalid(what: impl Into<String>) -> ExchangeError {
    ExchangeError::Failed(io::Error::new(io::ErrorKind::InvalidData, what.into()))
}

/// One TCP connection and the bytes read from it but not used yet.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// How the answer's body ends.
enum Framing {
    Length(usize),
    Chunked,
    /// At the connection's end (an HTTP/1.0-style answer).
    Close,
}

/// What the head of an answer says.
struct Head {
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
    instance: Option<String>,
}

impl Connection {
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
        }
    }

    /// Whether the connection, idle since its last answer, can still carry a request: the
    /// server has not closed it and has sent nothing unasked. One non-blocking read.
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends `request` and reads its whole answer.
    pub async fn exchange(
        &mut self,
        request: &Request<'_>,
        start: Instant,
    ) -> Result<Answer, ExchangeError> {
        let mut out = Vec::with_capacity(160 + request.headers.len() + request.body.len());
        out.extend_from_slice(request.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(request.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(request.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(request.headers.as_bytes());
        if request.close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        if !request.body.is_empty() || request.method == "POST" {
            out.extend_from_slice(format!("content-length: {}\r\n", request.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(request.body);
        self.buf.clear();
        // A server that closed a kept-alive connection shows it here (a reset) or at the first
        // read (its end); either way no answer began.
        self.stream
            .write_all(&out)
            .await
            .map_err(ExchangeError::Ended)?;
        let mut first_byte = None;
        let head = loop {
            if let Some(head) = self.parse_head()? {
                if (100..200).contains(&head.status) && head.status != 101 {
                    // An informational head (e.g. 100 Continue): the answer follows it.
                    self.buf.drain(..head.len);
                    continue;
                }
                break head;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid(format!(
                    "the answer's head is longer than {MAX_HEAD} bytes"
                )));
            }
            let read = match self.read_more().await {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection ended before the answer's head was complete",
                )),
                other => other,
            };
            if let Err(e) = read {
                return Err(if first_byte.is_none() {
                    ExchangeError::Ended(e)
                } else {
                    ExchangeError::Failed(e)
                });
            }
            first_byte.get_or_insert_with(|| start.elapsed());
        };
        let first_byte = first_byte.unwrap_or_else(|| start.elapsed());
        self.buf.drain(..head.len);
        let (body, delimited) = match head.framing {
            Framing::Length(len) => {
                while self.buf.len() < len {
                    self.read_body_more().await?;
                }
                let rest = self.buf.split_off(len);
                (std::mem::replace(&mut self.buf, rest), true)
            }
            Framing::Chunked => (self.read_chunked().await?, true),
            Framing::Close => {
                while self.read_more().await.map_err(ExchangeError::Failed)? > 0 {}
                (std::mem::take(&mut self.buf), false)
            }
        };
        // Bytes beyond the answer were not asked for: the connection is out of step.
        let reusable = delimited && !head.close && self.buf.is_empty();
        Ok(Answer {
            status: head.status,
            instance: head.instance,
            body,
            first_byte,
            reusable,
        })
    }

    /// The answer's head at the start of the buffer, once it is complete.
    fn parse_head(&self) -> Result<Option<Head>, ExchangeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(format!("the answer is not HTTP/1.x ({e})"))),
        };
        let status = response.code.unwrap_or_default();
        // HTTP/1.0 closes after each answer unless it says otherwise; we do not ask it to.
        let mut close = response.version != Some(1);
        let mut length = None;
        let mut chunked = false;
        let mut instance = None;
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| invalid("the answer's Content-Length is not a number"))?;
                if length.is_some_and(|l| l != value) {
                    return Err(invalid("the answer has two different Content-Lengths"));
                }
                length = Some(value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                close = h
                    .value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
            } else if h.name.eq_ignore_ascii_case(sebs_wire::INSTANCE_HEADER) {
                instance = std::str::from_utf8(h.value).ok().map(str::to_string);
            }
        }
        let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked
        } else if let Some(len) = length {
            Framing::Length(len)
        } else {
            Framing::Close
        };
        Ok(Some(Head {
            len,
            status,
            framing,
            close,
            instance,
        }))
    }

    /// Reads what the socket has into the buffer; 0 at the connection's end.
    async fn read_more(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Like [`Connection::read_more`] inside a body, whose end must come before the
    /// connection's.
    async fn read_body_more(&mut self) -> Result<(), ExchangeError> {
        match self.read_more().await.map_err(ExchangeError::Failed)? {
            0 => Err(ExchangeError::Failed(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection ended inside the answer's body",
            ))),
            _ => Ok(()),
        }
    }

    /// A chunked body from the start of the buffer, decoded; the trailer is read and dropped.
    async fn read_chunked(&mut self) -> Result<Vec<u8>, ExchangeError> {
        let mut body = Vec::new();
        loop {
            let (start, size) = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((start, size))) => break (start, size),
                    Ok(httparse::Status::Partial) => self.read_body_more().await?,
                    Err(_) => return Err(invalid("the answer's chunk size is malformed")),
                }
            };
            let size =
                usize::try_from(size).map_err(|_| invalid("the answer's chunk is too large"))?;
            if size == 0 {
                self.buf.drain(..start);
                break;
            }
            let end = start
                .checked_add(size)
                .and_then(|e| e.checked_add(2))
                .ok_or_else(|| invalid("the answer's chunk is too large"))?;
            while self.buf.len() < end {
                self.read_body_more().await?;
            }
            if &self.buf[end - 2..end] != b"\r\n" {
                return Err(invalid("the answer's chunk does not end in CRLF"));
            }
            body.extend_from_slice(&self.buf[start..end - 2]);
            self.buf.drain(..end);
        }
        // Trailer lines, up to an empty one.
        loop {
            match self.buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.buf.drain(..2);
                    return Ok(body);
                }
                Some(line) => {
                    self.buf.drain(..line + 2);
                }
                None if self.buf.len() > MAX_HEAD => {
                    return Err(invalid(format!(
                        "the answer's trailer is longer than {MAX_HEAD} bytes"
                    )))
                }
                None => self.read_body_more().await?,
            }
        }
    }
}

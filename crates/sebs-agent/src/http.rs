//! The HTTP side: SeBS's local protocol (`GET /alive`, `POST /`) served with hyper over HTTP/1.1 keep-alive, and `GET /invocations`, when each call's handler ran.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sebs_wire::{
    EpochMicros, ErrorAnswer, ErrorKind, HandlerResult, InvocationAnswer, InvocationLog,
    InvocationRecord, ALIVE_PATH, INSTANCE_HEADER, INVOCATIONS_PATH, INVOCATION_LOG_CAPACITY,
    MEMORY_PATH,
};

use crate::memory::Meter;
use crate::pool::Pool;
use crate::series::MemorySeries;
use crate::worker::SharedState;

/// The largest request body accepted; larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// A request header that sets the invocation's request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What every connection shares.
pub struct State {
    pub pool: Pool,
    /// Counts requests in flight, so a call's cgroup peak is used only when it ran alone.
    pub meter: Arc<Meter>,
    /// Whether no invocation has been served yet.
    cold: AtomicBool,
    /// Sent as [`INSTANCE_HEADER`] with every answer.
    instance: Option<HeaderValue>,
    /// When each call's handler ran, for `GET` [`INVOCATIONS_PATH`].
    log: Mutex<Log>,
    /// Ids for requests that bring none.
    ids: RequestIds,
    /// The shared state of every worker holding a connection: their calls join the log.
    held: Mutex<Vec<Arc<SharedState>>>,
    /// The workers holding connections, which take more.
    pub(crate) holders: crate::handoff::Holders,
    /// Numbers connections passed to workers.
    connections: AtomicU64,
    /// Calls relayed to a worker, and calls workers answered themselves, for the log.
    relayed: AtomicU64,
    by_worker: AtomicU64,
    /// The container's memory series, for `GET` [`MEMORY_PATH`], when asked to sample it.
    series: Option<Arc<MemorySeries>>,
}

/// Random-looking version 4 UUIDs without a system call per id.
///
/// `uuid::Uuid::new_v4` asks the kernel for 16 random bytes on every call (the static agent
/// reads `/dev/urandom`), a system call on the warm path for an id that needs to be unique,
/// not secret. Here one random seed is drawn at start: each id holds 64 bits of it and a
/// SplitMix64 mix of a counter (a bijection of the counter, so no two ids of one agent
/// collide), and different agents differ by their seeds.
struct RequestIds {
    seed: u64,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let seed = uuid::Uuid::new_v4().as_u128();
        RequestIds {
            seed: (seed >> 64) as u64,
            counter: AtomicU64::new(seed as u64),
        }
    }

    fn next(&self) -> uuid::Uuid {
        const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self
            .counter
            .fetch_add(GOLDEN, Ordering::Relaxed)
            .wrapping_add(GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The mixed counter fills the bytes the version and variant leave alone, so that
        // setting those cannot make two ids equal.
        let (z, seed) = (z.to_be_bytes(), self.seed.to_be_bytes());
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&z[..6]);
        bytes[6..9].copy_from_slice(&seed[..3]);
        bytes[9..11].copy_from_slice(&z[6..]);
        bytes[11..].copy_from_slice(&seed[3..]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

/// The invocation log: the latest [`INVOCATION_LOG_CAPACITY`] calls.
#[derive(Default)]
struct Log {
    records: VecDeque<InvocationRecord>,
    dropped: u64,
}

impl State {
    pub fn new(pool: Pool, meter: Arc<Meter>) -> State {
        State {
            pool,
            meter,
            cold: AtomicBool::new(true),
            instance: None,
            log: Mutex::new(Log::default()),
            ids: RequestIds::new(),
            held: Mutex::new(Vec::new()),
            holders: Default::default(),
            connections: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
            by_worker: AtomicU64::new(0),
            series: None,
        }
    }

    /// Serves `series` on `GET` [`MEMORY_PATH`].
    pub fn with_series(mut self, series: Arc<MemorySeries>) -> State {
        self.series = Some(series);
        self
    }

    /// Remembers a call whose handler ran from `begin` to `end`.
    pub(crate) fn record(&self, span: (EpochMicros, EpochMicros), is_cold: bool, ok: bool) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        Self::push(&mut log, span, is_cold, ok);
    }

    fn push(log: &mut Log, (begin, end): (EpochMicros, EpochMicros), is_cold: bool, ok: bool) {
        if log.records.len() == INVOCATION_LOG_CAPACITY {
            log.records.pop_front();
            log.dropped += 1;
        }
        log.records.push_back(InvocationRecord {
            begin_us: begin.0,
            end_us: end.0,
            is_cold,
            ok,
        });
    }

    /// Moves the calls a worker served on a connection it holds into the log (all warm).
    pub(crate) fn take_worker_log(&self, shared: &SharedState) {
        let (records, lost) = shared.take_log();
        let served = records.len() as u64 + lost;
        self.by_worker.fetch_add(served, Ordering::Relaxed);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.dropped += lost;
        for (begin, end, ok) in records {
            Self::push(&mut log, (begin, end), false, ok);
        }
    }

    /// Registers (`true`) or forgets a worker holding a connection.
    pub(crate) fn holding(&self, shared: &Arc<SharedState>, holds: bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|s| !Arc::ptr_eq(s, shared));
        if holds {
            held.push(shared.clone());
        }
    }

    /// A number for the next connection passed to a worker.
    pub(crate) fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The value of [`INSTANCE_HEADER`], empty when there is none.
    pub(crate) fn instance(&self) -> &str {
        self.instance
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn invocation_log(&self) -> InvocationLog {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for shared in &held {
            self.take_worker_log(shared);
        }
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        InvocationLog {
            invocations: log.records.iter().copied().collect(),
            dropped: log.dropped,
            relayed: self.relayed.load(Ordering::Relaxed),
            by_worker: self.by_worker.load(Ordering::Relaxed),
        }
    }

    /// Names this instance in every answer (see [`INSTANCE_HEADER`]).
    pub fn with_instance(mut self, instance: &str) -> State {
        self.instance = HeaderValue::from_str(instance.trim()).ok();
        self
    }
}

/// What a route answers, before either HTTP server writes it.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// A request's body: read already (by the agent's own loop, [`crate::connection`]), or
/// still on hyper's connection, read only by the route that needs it.
pub(crate) enum RequestBody {
    Read(Bytes),
    Hyper(Incoming),
}

impl RequestBody {
    /// The whole body, or the status and message to answer.
    async fn read(self, declared: Option<u64>) -> Result<Bytes, (StatusCode, String)> {
        let incoming = match self {
            RequestBody::Read(bytes) => return Ok(bytes),
            RequestBody::Hyper(incoming) => incoming,
        };
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err((StatusCode::PAYLOAD_TOO_LARGE, too_large()));
        }
        match Limited::new(incoming, MAX_BODY_BYTES).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                Err((StatusCode::PAYLOAD_TOO_LARGE, too_large()))
            }
            Err(e) => Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "failed to read the request body: {}",
                    sebs_wire::ErrorChain(&*e)
                ),
            )),
        }
    }
}

/// The request line and the headers the routes read.
pub(crate) struct Head<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    /// [`REQUEST_ID_HEADER`], when given and not empty.
    pub request_id: Option<&'a str>,
    /// `content-length`, when given.
    pub declared: Option<u64>,
}

/// Answers one request served by hyper.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let head = Head {
        method: &parts.method,
        path: parts.uri.path(),
        request_id: header(REQUEST_ID_HEADER).filter(|v| !v.is_empty()),
        declared: header(CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok()),
    };
    let answer = route(&state, &head, RequestBody::Hyper(body)).await;
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if let Some(instance) = state.instance.clone() {
        response.headers_mut().insert(INSTANCE_HEADER, instance);
    }
    Ok(response)
}

/// An answer as the agent's own loop writes it: the bytes hyper writes for it.
pub(crate) fn raw_answer(state: &State, answer: &Answer) -> Vec<u8> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let instance = Some(state.instance()).filter(|i| !i.is_empty());
    sebs_wire::handoff::typed_http_answer(
        answer.status.as_u16(),
        answer.content_type,
        instance,
        &date,
        &answer.body,
    )
}

/// Answers one request, whichever server read it.
pub(crate) async fn route(state: &Arc<State>, head: &Head<'_>, body: RequestBody) -> Answer {
    let route = (head.method, head.path);
    if route == (&Method::GET, ALIVE_PATH) {
        return json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#));
    }
    if route == (&Method::POST, "/") {
        return invoke(state, head, body).await;
    }
    if route == (&Method::GET, INVOCATIONS_PATH) {
        // A log of integers and flags always encodes.
        let body = serde_json::to_vec(&state.invocation_log()).unwrap_or_default();
        return json(StatusCode::OK, body.into());
    }
    if route == (&Method::GET, MEMORY_PATH) {
        if let Some(series) = &state.series {
            return Answer {
                status: StatusCode::OK,
                content_type: "application/x-ndjson",
                body: series.take().into(),
            };
        }
    }
    let message = format!(
        "no route for {} {}: use POST /, GET {ALIVE_PATH} or GET {INVOCATIONS_PATH} (GET \
         {MEMORY_PATH} when the agent samples its memory)",
        route.0, route.1
    );
    error(
        StatusCode::NOT_FOUND,
        ErrorAnswer::new(ErrorKind::BadRequest, message),
    )
}

async fn invoke(state: &Arc<State>, head: &Head<'_>, body: RequestBody) -> Answer {
    let received = Instant::now();
    let _in_flight = state.meter.request();
    let request_id = head
        .request_id
        .map_or_else(|| state.ids.next().to_string(), str::to_string);
    let bad = |status: StatusCode, message: String| {
        let mut answer = ErrorAnswer::new(ErrorKind::BadRequest, message);
        answer.request_id = Some(request_id.clone());
        error(status, answer)
    };
    let body = match body.read(head.declared).await {
        Ok(body) => body,
        Err((status, message)) => return bad(status, message),
    };
    let event: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body is not JSON: {}",
                    sebs_wire::ErrorChain(&e)
                ),
            );
        }
    };

    let is_cold = state.cold.swap(false, Ordering::AcqRel);
    state.relayed.fetch_add(1, Ordering::Relaxed);
    // The call runs in its own task so that a client hanging up cannot abandon a worker
    // in the middle of a call.
    let pool = state.pool.clone();
    let id = request_id.clone();
    let outcome = tokio::spawn(async move { pool.invoke(&id, &event).await }).await;
    let agent_time_us = received.elapsed().as_micros() as u64;
    match outcome {
        Ok(Ok(inv)) => {
            state.record((inv.begin, inv.end), is_cold, true);
            let answer = InvocationAnswer {
                begin: inv.begin.to_string(),
                end: inv.end.to_string(),
                request_id,
                is_cold,
                result: HandlerResult { output: inv.output },
                init_time_us: inv.init_time_us,
                agent_time_us: Some(agent_time_us),
                memory_peak_bytes: inv.memory_peak.map(|p| p.bytes),
                memory_source: inv.memory_peak.map(|p| p.source),
            };
            match sebs_wire::handoff::success_body(&answer) {
                Ok(body) => json(StatusCode::OK, body.into()),
                Err(e) => {
                    // Only a handler output serde cannot write back (it parsed it) gets here.
                    let mut failed = ErrorAnswer::new(
                        ErrorKind::Internal,
                        format!("failed to encode the answer: {}", sebs_wire::ErrorChain(&e)),
                    );
                    failed.request_id = Some(answer.request_id);
                    failed.is_cold = is_cold;
                    error(StatusCode::INTERNAL_SERVER_ERROR, failed)
                }
            }
        }
        Ok(Err(failure)) => {
            if let Some(span) = failure.span {
                state.record(span, is_cold, false);
            }
            let mut answer = failure.into_answer();
            answer.request_id = Some(request_id);
            answer.is_cold = is_cold;
            let status = StatusCode::from_u16(answer.kind.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, answer)
        }
        Err(e) => {
            let mut answer = ErrorAnswer::new(
                ErrorKind::Internal,
                format!("the invocation task failed: {}", sebs_wire::ErrorChain(&e)),
            );
            answer.request_id = Some(request_id);
            answer.is_cold = is_cold;
            error(StatusCode::INTERNAL_SERVER_ERROR, answer)
        }
    }
}

/// An error answer as raw bytes, for a connection the agent writes to directly (a worker
/// that held it was stopped mid-call).
pub(crate) fn raw_error(state: &State, answer: &ErrorAnswer) -> Vec<u8> {
    let status =
        StatusCode::from_u16(answer.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    raw_answer(state, &error(status, answer.clone()))
}

/// Serves a connection with hyper over HTTP/1.1 keep-alive until it closes: the requests
/// the agent's own loop ([`crate::connection`]) leaves to it; `read` holds what was read of
/// the connection already.
pub async fn serve_hyper(state: Arc<State>, stream: tokio::net::TcpStream, read: Vec<u8>) {
    let service = service_fn(move |req| handle(state.clone(), req));
    let io = Prefixed {
        read: Bytes::from(read),
        stream,
    };
    // A client hanging up mid-request is its business, not an agent error.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A connection whose first bytes were already read.
struct Prefixed {
    read: Bytes,
    stream: tokio::net::TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            let first = self.read.split_to(n);
            buf.put_slice(&first);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

fn too_large() -> String {
    format!("the request body is larger than {MAX_BODY_BYTES} bytes")
}

fn json(status: StatusCode, body: Bytes) -> Answer {
    Answer {
        status,
        content_type: "application/json",
        body,
    }
}

fn error(status: StatusCode, answer: ErrorAnswer) -> Answer {
    json(status, sebs_wire::handoff::error_body(&answer).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids = RequestIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next();
            assert_eq!(id.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert!(seen.insert(id), "{id} twice");
        }
        // Another agent draws another seed.
        assert!(!seen.contains(&RequestIds::new().next()));
    }
}

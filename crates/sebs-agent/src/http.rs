//! The HTTP side: SeBS's local protocol (`GET /alive`, `POST /`) served with hyper over HTTP/1.1 keep-alive, and `GET /invocations`, when each call's handler ran.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use sebs_wire::{
    EpochMicros, ErrorAnswer, ErrorKind, HandlerResult, InvocationAnswer, InvocationLog,
    InvocationRecord, ALIVE_PATH, INSTANCE_HEADER, INVOCATIONS_PATH, INVOCATION_LOG_CAPACITY,
};

use crate::memory::Meter;
use crate::pool::Pool;

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
        }
    }

    /// Remembers a call whose handler ran from `begin` to `end`.
    fn record(&self, (begin, end): (EpochMicros, EpochMicros), is_cold: bool, ok: bool) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
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

    fn invocation_log(&self) -> InvocationLog {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        InvocationLog {
            invocations: log.records.iter().copied().collect(),
            dropped: log.dropped,
        }
    }

    /// Names this instance in every answer (see [`INSTANCE_HEADER`]).
    pub fn with_instance(mut self, instance: &str) -> State {
        self.instance = HeaderValue::from_str(instance.trim()).ok();
        self
    }
}

/// Answers one request.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let instance = state.instance.clone();
    let mut response = route(state, req).await;
    if let Some(instance) = instance {
        response.headers_mut().insert(INSTANCE_HEADER, instance);
    }
    Ok(response)
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let route = (req.method(), req.uri().path());
    if route == (&Method::GET, ALIVE_PATH) {
        return json(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#));
    }
    if route == (&Method::POST, "/") {
        return invoke(state, req).await;
    }
    if route == (&Method::GET, INVOCATIONS_PATH) {
        // A log of integers and flags always encodes.
        let body = serde_json::to_vec(&state.invocation_log()).unwrap_or_default();
        return json(StatusCode::OK, body.into());
    }
    let message = format!(
        "no route for {} {}: use POST /, GET {ALIVE_PATH} or GET {INVOCATIONS_PATH}",
        route.0, route.1
    );
    error(
        StatusCode::NOT_FOUND,
        ErrorAnswer::new(ErrorKind::BadRequest, message),
    )
}

async fn invoke(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let received = Instant::now();
    let _in_flight = state.meter.request();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    let bad = |status: StatusCode, message: String| {
        let mut answer = ErrorAnswer::new(ErrorKind::BadRequest, message);
        answer.request_id = Some(request_id.clone());
        error(status, answer)
    };

    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return bad(StatusCode::PAYLOAD_TOO_LARGE, too_large());
    }
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return bad(StatusCode::PAYLOAD_TOO_LARGE, too_large());
        }
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!(
                    "failed to read the request body: {}",
                    sebs_wire::ErrorChain(&*e)
                ),
            )
        }
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
            match serde_json::to_vec(&answer) {
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

fn too_large() -> String {
    format!("the request body is larger than {MAX_BODY_BYTES} bytes")
}

fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, answer: ErrorAnswer) -> Response<Full<Bytes>> {
    // An ErrorAnswer holds only strings and flags; encoding it cannot fail.
    let body = serde_json::to_vec(&answer)
        .unwrap_or_else(|_| br#"{"error":"internal","kind":"internal"}"#.to_vec());
    json(status, body.into())
}

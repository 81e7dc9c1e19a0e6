//! The warm path: a connection passed to an idle worker, which answers its requests itself, while the agent keeps the timeout, deaths and the pool.
//!
//! The agent passes a connection with no request pending ([`crate::connection`]: just
//! accepted, or between two requests) to a worker that has served a call before
//! (see [`sebs_wire::handoff`]) and keeps its own descriptor of it. While the worker holds
//! the connection the agent wakes only on its timer, on the worker's lines (a connection
//! given back) or death, and when a call waits for a worker (then it asks for the
//! connection back). On its timer it reads the worker's shared state: the handler spans go
//! to the invocation log, and a call running past the timeout gets its worker killed and a
//! 504 written on the agent's descriptor; a worker that dies mid-call gets the 500 (an OOM
//! kill said as such, `/tmp` emptied) the relayed path answers. Either way the connection
//! then goes back to the agent's loop ([`crate::connection`]), as does one given back, with
//! the bytes the worker read of it.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use sebs_wire::handoff::Released;
use sebs_wire::EpochMicros;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::http::{raw_error, State};
use crate::pool::Held;
use crate::worker::WorkerError;

/// The longest the agent sleeps between two looks at a holding worker's state: the log
/// it drains holds [`sebs_wire::handoff::state::RING_SLOTS`] calls.
const MAX_TICK: Duration = Duration::from_millis(100);

/// How a holding ended.
enum End {
    Released(Released),
    Died(Option<crate::children::ExitStatus>),
    Timeout(crate::worker::Busy),
    Broken(WorkerError),
}

/// A connection back with the agent, and what was read of it.
pub type Back = (TcpStream, Vec<u8>);

/// Passes `stream` to the held worker and watches it until the worker gives the connection
/// back, dies or times out; then returns the connection for the agent to serve, unless it
/// closed (or where the worker was in it is unknown).
pub async fn serve(state: Arc<State>, mut held: Held, stream: TcpStream) -> Option<Back> {
    let pool = state.pool.clone();
    let Some(shared) = held.worker.shared_state() else {
        pool.release(held, true);
        return Some((stream, Vec::new()));
    };
    let Ok(stream) = stream.into_std() else {
        pool.release(held, true);
        return None;
    };
    let number = state.next_connection();
    if let Err(e) = held
        .worker
        .hand_off(stream.as_fd(), number, state.instance())
        .await
    {
        eprintln!(
            "sebs-agent: failed to pass a connection to worker {}: {}",
            held.worker.pid(),
            sebs_wire::ErrorChain(&e)
        );
        held.worker.kill();
        pool.release(held, false);
        return resume(stream, Vec::new());
    }
    state.holding(&shared, true);
    let mut wanted = pool.wanted();
    wanted.borrow_and_update();
    let timeout = pool.timeout();
    let tick = (timeout / 4).clamp(Duration::from_millis(1), MAX_TICK);
    let mut asked = false;
    let mut next_look = tokio::time::Instant::now() + tick;
    let end = loop {
        tokio::select! {
            line = held.worker.next_line() => match line {
                Ok(line) => match Released::parse(&line) {
                    Some(r) if r.released == number => break End::Released(r),
                    _ => break End::Broken(WorkerError::Unexpected {
                        pid: held.worker.pid(),
                        line: String::from_utf8_lossy(&line).chars().take(200).collect(),
                    }),
                },
                Err(WorkerError::Died { status }) => break End::Died(status),
                Err(e) => break End::Broken(e),
            },
            changed = wanted.changed(), if !asked => {
                if changed.is_err() {
                    asked = true;
                    continue;
                }
                asked = true;
                if let Err(e) = held.worker.give_back(number).await {
                    match e {
                        WorkerError::Died { status } => break End::Died(status),
                        e => break End::Broken(e),
                    }
                }
            },
            () = tokio::time::sleep_until(next_look) => {
                state.take_worker_log(&shared);
                next_look = tokio::time::Instant::now() + tick;
                if let Some(busy) = shared.busy() {
                    let ran = EpochMicros::now().micros_since(busy.since).max(0) as u64;
                    let left = timeout.saturating_sub(Duration::from_micros(ran));
                    if left.is_zero() {
                        break End::Timeout(busy);
                    }
                    next_look = next_look.min(tokio::time::Instant::now() + left);
                }
            },
        }
    };
    state.take_worker_log(&shared);
    state.holding(&shared, false);
    let pid = held.worker.pid();
    match end {
        End::Released(r) => {
            pool.release(held, true);
            if r.closed {
                return None;
            }
            resume(stream, r.leftover_bytes().unwrap_or_default())
        }
        End::Timeout(busy) => {
            held.worker.kill_and_wait().await;
            let finished = shared.seq() != Some(busy.seq);
            state.take_worker_log(&shared);
            pool.release(held, false);
            if finished {
                // The call ended as the worker was killed: its answer may be half written.
                return None;
            }
            let failure = pool.timed_out(pid);
            answer(state, stream, failure, busy.request_id).await
        }
        End::Died(status) => {
            let busy = shared.busy();
            let failure = pool.death(status, pid).await;
            pool.release(held, false);
            match busy {
                Some(busy) => answer(state, stream, failure, busy.request_id).await,
                None => resume(stream, Vec::new()),
            }
        }
        End::Broken(e) => {
            eprintln!(
                "sebs-agent: worker {pid} failed to serve a connection: {}",
                sebs_wire::ErrorChain(&e)
            );
            held.worker.kill_and_wait().await;
            pool.release(held, false);
            // Where the worker was in the connection is unknown: close it.
            None
        }
    }
}

/// Writes the answer to a call whose worker was stopped; the connection goes on.
async fn answer(
    state: Arc<State>,
    stream: std::net::TcpStream,
    failure: crate::pool::CallFailure,
    request_id: String,
) -> Option<Back> {
    let mut answer = failure.into_answer();
    answer.request_id = Some(request_id);
    let bytes = raw_error(&state, &answer);
    let mut stream = into_tokio(stream)?;
    stream.write_all(&bytes).await.ok()?;
    Some((stream, Vec::new()))
}

/// A connection a worker no longer holds, with what it read.
fn resume(stream: std::net::TcpStream, read: Vec<u8>) -> Option<Back> {
    Some((into_tokio(stream)?, read))
}

fn into_tokio(stream: std::net::TcpStream) -> Option<TcpStream> {
    // The worker made the shared socket blocking.
    stream.set_nonblocking(true).ok()?;
    TcpStream::from_std(stream).ok()
}

//! The warm path: connections passed to workers, which answer their requests themselves, while the agent keeps the timeout, deaths and the pool.
//!
//! The agent passes a connection with no request pending ([`crate::connection`]: just
//! accepted, or between two requests) to a worker that has served a call before
//! (see [`sebs_wire::handoff`]) and keeps its own descriptor of it: to an idle worker
//! first, else to the holding worker with the fewest connections (at most [`MAX_HELD`]).
//! A worker holds several connections and serves whichever sends, one call at a time: it
//! is out of the pool while it holds any ("holds connections" is not "busy": a connection
//! never waits for a worker to be free), and one task per holding worker (`hold`) wakes
//! only on its timer, on the worker's lines (a connection given back) or death, on a
//! connection passed, and when a call waits for a worker (then it asks for every
//! connection back). On its timer it reads the worker's shared state: the handler spans
//! go to the invocation log, and a call running past the timeout gets its worker killed
//! and a 504 written on the agent's descriptor of that call's connection; a worker that
//! dies mid-call gets the 500 (an OOM kill said as such, `/tmp` emptied) the relayed path
//! answers. Either way that connection then goes back to the agent's loop
//! ([`crate::connection`]), as does one given back, with the bytes the worker read of it;
//! the worker's other connections close, since what it had read of them died with it.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sebs_wire::handoff::Released;
use sebs_wire::EpochMicros;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::http::{raw_error, State};
use crate::pool::Held;
use crate::worker::WorkerError;

/// The longest the agent sleeps between two looks at a holding worker's state: the log
/// it drains holds [`sebs_wire::handoff::state::RING_SLOTS`] calls.
const MAX_TICK: Duration = Duration::from_millis(100);

/// The most connections one worker holds at once; past that, connections stay with the
/// agent (and their calls wait for a worker).
pub const MAX_HELD: usize = 64;

/// How a holding ended.
enum End {
    /// The worker holds no connection any more.
    Empty,
    Died(Option<crate::children::ExitStatus>),
    Timeout(crate::worker::Busy),
    Broken(WorkerError),
}

/// A connection back with the agent, and what was read of it.
pub type Back = (TcpStream, Vec<u8>);

/// The workers holding connections, which take more.
#[derive(Default)]
pub struct Holders {
    list: Mutex<Vec<Arc<Holder>>>,
}

impl Holders {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Holder>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The holder with room and the fewest connections.
    fn with_room(&self) -> Option<Arc<Holder>> {
        self.lock()
            .iter()
            .filter(|h| h.count.load(Ordering::Relaxed) < MAX_HELD)
            .min_by_key(|h| h.count.load(Ordering::Relaxed))
            .cloned()
    }

    fn forget(&self, holder: &Arc<Holder>) {
        self.lock().retain(|h| !Arc::ptr_eq(h, holder));
    }
}

/// A worker holding connections, as the connections' tasks reach it.
struct Holder {
    passes: mpsc::UnboundedSender<Pass>,
    /// The connections it holds or was sent.
    count: AtomicUsize,
}

/// A connection on its way to a holder, and where its end goes.
struct Pass {
    stream: TcpStream,
    back: oneshot::Sender<Option<Back>>,
}

/// What became of a connection offered to the workers.
pub enum Passed {
    /// A worker held it; the agent has it back (with what was read of it), or it closed.
    Held(Option<Back>),
    /// No worker takes it now.
    Kept(TcpStream),
}

/// Passes `stream` to a worker: to an idle one first (connections spread over the workers),
/// else to the holding worker with the fewest connections, and waits until the worker
/// gives it back, dies or times out.
pub async fn pass(state: &Arc<State>, stream: TcpStream) -> Passed {
    let (back, end) = oneshot::channel();
    let pass = Pass { stream, back };
    if let Some(held) = state.pool.try_hold() {
        let (passes, received) = mpsc::unbounded_channel();
        let holder = Arc::new(Holder {
            passes,
            count: AtomicUsize::new(1),
        });
        state.holders.lock().push(holder.clone());
        // The receiver lives in the task spawned next: this send cannot fail.
        let _ = holder.passes.send(pass);
        tokio::spawn(hold(state.clone(), held, holder, received));
    } else {
        let Some(holder) = state.holders.with_room() else {
            return Passed::Kept(pass.stream);
        };
        holder.count.fetch_add(1, Ordering::Relaxed);
        if let Err(returned) = holder.passes.send(pass) {
            holder.count.fetch_sub(1, Ordering::Relaxed);
            return Passed::Kept(returned.0.stream);
        }
    }
    // A holder that went away without an answer closed the connection.
    Passed::Held(end.await.unwrap_or(None))
}

/// A connection a worker holds: the agent's own descriptor of it, and where its end goes.
struct Hold {
    stream: std::net::TcpStream,
    back: oneshot::Sender<Option<Back>>,
}

/// Runs a worker holding connections until it holds none, dies or times out; then the
/// worker goes back to the pool (or its slot empty), and each connection back to its task.
async fn hold(
    state: Arc<State>,
    mut held: Held,
    holder: Arc<Holder>,
    mut received: mpsc::UnboundedReceiver<Pass>,
) {
    let pool = state.pool.clone();
    let Some(shared) = held.worker.shared_state() else {
        holder.count.store(MAX_HELD, Ordering::Relaxed);
        state.holders.forget(&holder);
        received.close();
        while let Ok(pass) = received.try_recv() {
            let _ = pass.back.send(Some((pass.stream, Vec::new())));
        }
        pool.release(held, true);
        return;
    };
    state.holding(&shared, true);
    let mut conns: HashMap<u64, Hold> = HashMap::new();
    let mut wanted = pool.wanted();
    wanted.borrow_and_update();
    let timeout = pool.timeout();
    let tick = (timeout / 4).clamp(Duration::from_millis(1), MAX_TICK);
    let mut asked = false;
    let mut next_look = tokio::time::Instant::now() + tick;
    let end = loop {
        tokio::select! {
            pass = received.recv(), if !asked => {
                let Some(pass) = pass else { continue };
                match take(&state, &mut held, pass).await {
                    Ok(Some((number, hold))) => {
                        conns.insert(number, hold);
                    }
                    Ok(None) => {
                        holder.count.fetch_sub(1, Ordering::Relaxed);
                        if conns.is_empty() && received.is_empty() {
                            break End::Empty;
                        }
                    }
                    Err(e) => break end_of(e),
                }
            },
            line = held.worker.next_line() => match line {
                Ok(line) => match Released::parse(&line).and_then(|r| Some((conns.remove(&r.released)?, r))) {
                    Some((hold, r)) => {
                        holder.count.fetch_sub(1, Ordering::Relaxed);
                        let back = if r.closed {
                            None
                        } else {
                            resume(hold.stream, r.leftover_bytes().unwrap_or_default())
                        };
                        let _ = hold.back.send(back);
                        if conns.is_empty() && (asked || received.is_empty()) {
                            break End::Empty;
                        }
                    }
                    None => break End::Broken(WorkerError::Unexpected {
                        pid: held.worker.pid(),
                        line: String::from_utf8_lossy(&line).chars().take(200).collect(),
                    }),
                },
                Err(e) => break end_of(e),
            },
            changed = wanted.changed(), if !asked => {
                // A call waits for a worker: every connection goes back, and no new one comes.
                asked = true;
                state.holders.forget(&holder);
                if changed.is_err() {
                    continue;
                }
                let numbers: Vec<u64> = conns.keys().copied().collect();
                let mut failed = None;
                for number in numbers {
                    if let Err(e) = held.worker.give_back(number).await {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break end_of(e);
                }
                if conns.is_empty() {
                    break End::Empty;
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
    // No connection reaches this holder any more; those on their way go back.
    state.holders.forget(&holder);
    received.close();
    while let Ok(pass) = received.try_recv() {
        let _ = pass.back.send(Some((pass.stream, Vec::new())));
    }
    state.take_worker_log(&shared);
    state.holding(&shared, false);
    let pid = held.worker.pid();
    // The call that was running, and on which connection: it gets the answer; the other
    // connections close (what the worker had read of them is lost with it).
    let (running, failure) = match end {
        End::Empty => {
            pool.release(held, true);
            return;
        }
        End::Timeout(busy) => {
            held.worker.kill_and_wait().await;
            let finished = shared.seq() != Some(busy.seq);
            state.take_worker_log(&shared);
            pool.release(held, false);
            // A call that ended as the worker was killed may have its answer half written.
            let failure = (!finished).then(|| pool.timed_out(pid));
            (Some(busy), failure)
        }
        End::Died(status) => {
            let busy = shared.busy();
            let failure = pool.death(status, pid).await;
            pool.release(held, false);
            (busy, Some(failure))
        }
        End::Broken(e) => {
            eprintln!(
                "sebs-agent: worker {pid} failed to serve connections: {}",
                sebs_wire::ErrorChain(&e)
            );
            held.worker.kill_and_wait().await;
            pool.release(held, false);
            (None, None)
        }
    };
    for (number, hold) in conns {
        let back = match (&running, &failure) {
            (Some(busy), Some(failure)) if busy.connection == number => {
                answer(
                    &state,
                    hold.stream,
                    failure.clone(),
                    busy.request_id.clone(),
                )
                .await
            }
            _ => None,
        };
        let _ = hold.back.send(back);
    }
}

/// A worker's error as the end of its holding.
fn end_of(e: WorkerError) -> End {
    match e {
        WorkerError::Died { status } => End::Died(status),
        e => End::Broken(e),
    }
}

/// Passes a connection to the held worker: its number and the agent's descriptor, `None`
/// when the connection went back to its task instead.
async fn take(
    state: &Arc<State>,
    held: &mut Held,
    pass: Pass,
) -> Result<Option<(u64, Hold)>, WorkerError> {
    let Ok(stream) = pass.stream.into_std() else {
        let _ = pass.back.send(None);
        return Ok(None);
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
        let _ = pass.back.send(resume(stream, Vec::new()));
        return Err(e);
    }
    Ok(Some((
        number,
        Hold {
            stream,
            back: pass.back,
        },
    )))
}

/// Writes the answer to a call whose worker was stopped; the connection goes on.
async fn answer(
    state: &State,
    stream: std::net::TcpStream,
    failure: crate::pool::CallFailure,
    request_id: String,
) -> Option<Back> {
    let mut answer = failure.into_answer();
    answer.request_id = Some(request_id);
    let bytes = raw_error(state, &answer);
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

//! Closed-loop load: `connections` callers invoke one trigger back to back for a while, and
//! what the machine's CPUs did meanwhile, per process, as the profile of where time goes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sebs_trigger::Trigger;

/// Completions are counted in buckets this long, to compare windows of the run.
const BUCKET: Duration = Duration::from_millis(100);

/// What a load run measured.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub elapsed: Duration,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Completions per [`BUCKET`] since the start.
    pub buckets: Vec<u64>,
    /// Per successful call: client time, the agent's own time, the handler's time (µs).
    pub client_us: Vec<f64>,
    pub agent_us: Vec<f64>,
    pub handler_us: Vec<f64>,
}

impl LoadReport {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Successful calls per second in the first and in the last `window` of the run.
    pub fn first_and_last(&self, window: Duration) -> (f64, f64) {
        window_rates(&self.buckets, window)
    }
}

/// Rates in the first and last `window` of `buckets` (completions per [`BUCKET`]).
pub fn window_rates(buckets: &[u64], window: Duration) -> (f64, f64) {
    let n = ((window.as_millis() / BUCKET.as_millis()) as usize).clamp(1, buckets.len().max(1));
    let secs = n as f64 * BUCKET.as_secs_f64();
    let first: u64 = buckets.iter().take(n).sum();
    let last: u64 = buckets.iter().rev().take(n).sum();
    (first as f64 / secs, last as f64 / secs)
}

/// Runs `connections` callers against `trigger` for `duration`.
pub async fn run(
    trigger: Arc<Trigger>,
    input: serde_json::Value,
    connections: usize,
    duration: Duration,
) -> LoadReport {
    let begin = Instant::now();
    let end = begin + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let trigger = trigger.clone();
            let body = bytes::Bytes::from(serde_json::to_vec(&input).unwrap_or_default());
            tokio::spawn(async move {
                let mut r = LoadReport::default();
                while Instant::now() < end {
                    match trigger.invoke_raw(body.clone()).await {
                        Ok(result) => {
                            let bucket =
                                (begin.elapsed().as_millis() / BUCKET.as_millis()) as usize;
                            if r.buckets.len() <= bucket {
                                r.buckets.resize(bucket + 1, 0);
                            }
                            r.buckets[bucket] += 1;
                            r.ok += 1;
                            r.client_us.push(result.times.client as f64);
                            r.handler_us.push(result.times.benchmark as f64);
                            if let Some(a) =
                                result.output.get("agent_time_us").and_then(|v| v.as_f64())
                            {
                                r.agent_us.push(a);
                            }
                        }
                        Err(e) => {
                            r.errors += 1;
                            r.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                r
            })
        })
        .collect();
    let mut total = LoadReport::default();
    for t in tasks {
        let r = match t.await {
            Ok(r) => r,
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("a caller task failed: {e}"));
                continue;
            }
        };
        total.ok += r.ok;
        total.errors += r.errors;
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
        if total.buckets.len() < r.buckets.len() {
            total.buckets.resize(r.buckets.len(), 0);
        }
        for (t, b) in total.buckets.iter_mut().zip(&r.buckets) {
            *t += b;
        }
        total.client_us.extend(r.client_us);
        total.agent_us.extend(r.agent_us);
        total.handler_us.extend(r.handler_us);
    }
    // The last bucket may be partial (callers finish their call after `end`): drop it so it
    // does not look like a collapse.
    let whole = (duration.as_millis() / BUCKET.as_millis()) as usize;
    total.buckets.truncate(whole);
    total.elapsed = begin.elapsed();
    total
}

/// CPU time per process name (clock ticks of 10 ms, USER_HZ) and of the whole host.
#[derive(Debug, Clone, Default)]
pub struct CpuSnapshot {
    pub taken: Option<Instant>,
    /// `comm` → ticks, for the processes asked about.
    pub processes: BTreeMap<String, u64>,
    /// Busy ticks of all CPUs together.
    pub host_busy: u64,
}

/// Reads the CPU time of `pids` (grouped by process name; ours is called `client`) and of
/// the host from `/proc`.
pub fn cpu_snapshot(pids: &[u32]) -> CpuSnapshot {
    let mut s = CpuSnapshot {
        taken: Some(Instant::now()),
        ..CpuSnapshot::default()
    };
    let mut add = |name: String, path: String| {
        if let Some(ticks) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| stat_ticks(&t))
        {
            *s.processes.entry(name).or_default() += ticks;
        }
    };
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        add(comm.trim().to_string(), format!("/proc/{pid}/stat"));
    }
    add("client (xtask)".to_string(), "/proc/self/stat".to_string());
    s.host_busy = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| host_busy(&t))
        .unwrap_or(0);
    s
}

/// `utime + stime` of a `/proc/<pid>/stat` line (its command may hold spaces and parens).
pub fn stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// All CPUs' busy ticks from `/proc/stat`'s `cpu` line: everything but idle and iowait.
pub fn host_busy(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    Some(total - v.get(3)? - v.get(4)?)
}

/// Per process name, the share of one CPU it used between `a` and `b`, plus the host's,
/// as `name 61%` items, largest first.
pub fn cpu_profile(a: &CpuSnapshot, b: &CpuSnapshot) -> String {
    let secs = match (a.taken, b.taken) {
        (Some(x), Some(y)) => y.duration_since(x).as_secs_f64().max(1e-9),
        _ => return String::new(),
    };
    // USER_HZ is 100 on Linux: a tick is 10 ms.
    let pct = |ticks: u64| ticks as f64 / secs;
    let mut items: Vec<(String, f64)> = b
        .processes
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                pct(t.saturating_sub(a.processes.get(name).copied().unwrap_or(0))),
            )
        })
        .collect();
    items.sort_by(|x, y| y.1.total_cmp(&x.1));
    let known: f64 = items.iter().map(|i| i.1).sum();
    let host = pct(b.host_busy.saturating_sub(a.host_busy));
    let mut out: Vec<String> = items.iter().map(|(n, p)| format!("{n} {p:.0}%")).collect();
    out.push(format!(
        "everything else (kernel networking, engine, other processes) {:.0}%",
        (host - known).max(0.0)
    ));
    format!(
        "host CPU busy {host:.0}% of {}%: {}",
        cpus() * 100,
        out.join(", ")
    )
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat() {
        let line = "1234 (python3 (x)) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 1 0";
        assert_eq!(stat_ticks(line), Some(175));
        assert_eq!(stat_ticks("garbage"), None);
        let stat = "cpu  100 5 50 1000 7 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(host_busy(stat), Some(100 + 5 + 50 + 3 + 2));
    }

    #[test]
    fn windows() {
        // 10 buckets of 100 ms: first 0.5 s has 50 calls, last 0.5 s has 10.
        let b = [10, 10, 10, 10, 10, 2, 2, 2, 2, 2];
        let (first, last) = window_rates(&b, Duration::from_millis(500));
        assert!(
            (first - 100.0).abs() < 1e-9 && (last - 20.0).abs() < 1e-9,
            "{first} {last}"
        );
        assert_eq!(window_rates(&[], Duration::from_secs(1)), (0.0, 0.0));
    }
}

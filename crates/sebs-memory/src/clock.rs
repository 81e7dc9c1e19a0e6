//! The clocks the sampler needs: monotonic time, sleeping to an absolute deadline, a thread's CPU time.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, clock_nanosleep, ClockId, ClockNanosleepFlags};

/// `CLOCK_MONOTONIC` now, as time since an arbitrary fixed point (boot).
pub(crate) fn monotonic() -> Duration {
    // CLOCK_MONOTONIC cannot fail on Linux; a zero keeps the sampler going if it ever did.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline`.
///
/// An absolute deadline makes errors not accumulate: a late wake-up does not push the next
/// one later, unlike `thread::sleep(interval - elapsed)`.
pub(crate) fn sleep_until(deadline: Duration) {
    let spec = TimeSpec::from(deadline);
    // With TIMER_ABSTIME an interrupted sleep is simply restarted with the same deadline.
    while let Err(nix::errno::Errno::EINTR) = clock_nanosleep(
        ClockId::CLOCK_MONOTONIC,
        ClockNanosleepFlags::TIMER_ABSTIME,
        &spec,
    ) {}
}

/// Asks the kernel to wake this thread as close to its deadlines as it can.
///
/// Normal threads get 50 µs of timer slack, which is where most of the overshoot of
/// `thread::sleep` comes from; 1 ns turns it off for the calling thread only.
pub(crate) fn tighten_timer_slack() -> bool {
    nix::sys::prctl::set_timerslack(1).is_ok()
}

/// The calling thread's kernel id.
pub(crate) fn current_tid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// Why a thread's CPU time could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuTimeError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {text:?} has no CPU time")]
    Parse { path: PathBuf, text: String },
}

/// The CPU time used so far by thread `tid` of this process.
///
/// Reads `/proc/self/task/<tid>/schedstat` (nanoseconds on CPU), falling back to `stat`'s
/// `utime + stime` (in USER_HZ ticks, 10 ms, coarse) when schedstats are off.
pub fn thread_cpu_time(tid: i32) -> Result<Duration, CpuTimeError> {
    let dir = PathBuf::from(format!("/proc/self/task/{tid}"));
    let schedstat = dir.join("schedstat");
    if let Ok(text) = std::fs::read_to_string(&schedstat) {
        if let Some(ns) = parse_schedstat(&text) {
            return Ok(Duration::from_nanos(ns));
        }
    }
    let path = dir.join("stat");
    let text = std::fs::read_to_string(&path).map_err(|source| CpuTimeError::Read {
        path: path.clone(),
        source,
    })?;
    let ticks = parse_stat_ticks(&text).ok_or(CpuTimeError::Parse { path, text })?;
    // USER_HZ is 100 on every Linux architecture's /proc ABI.
    Ok(Duration::from_millis(ticks * 10))
}

/// The first field of `schedstat`: nanoseconds spent on a CPU.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `utime + stime` from a `stat` line; the command name in parentheses may hold spaces.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cpu_time_formats() {
        assert_eq!(parse_schedstat("123456789 2000 30\n"), Some(123_456_789));
        assert_eq!(parse_schedstat(""), None);
        let stat = "4242 (sebs memory) S 1 2 3 0 -1 4194368 10 0 0 0 7 5 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(12));
        assert_eq!(parse_stat_ticks("4242 (x) S"), None);
    }

    #[test]
    fn sleeping_to_a_deadline_wakes_after_it() {
        let deadline = monotonic() + Duration::from_millis(3);
        sleep_until(deadline);
        assert!(monotonic() >= deadline);
        // A deadline in the past returns at once.
        sleep_until(Duration::ZERO);
        let cpu = thread_cpu_time(current_tid()).unwrap();
        assert!(cpu > Duration::ZERO);
    }
}

//! Prints how well the sampler keeps time on one container: `cargo run --release -p sebs-memory
//! --example precision -- <container id> [seconds]` (what `cargo xtask bench` will report).

use std::path::Path;
use std::time::{Duration, Instant};

use sebs_memory::{find_container_cgroup, measure_precision, DEFAULT_CGROUP_ROOT};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(container) = args.next() else {
        eprintln!("usage: precision <container id> [seconds]");
        std::process::exit(2);
    };
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let cgroup = match find_container_cgroup(Path::new(DEFAULT_CGROUP_ROOT), &container) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            eprintln!("error: failed to {e}");
            std::process::exit(1);
        }
    };
    println!("file: {}", cgroup.current_path().display());
    println!(
        "interval  taken/asked        on time  errors  late p50/p99/max (µs)  thread CPU  share"
    );
    for ms in [1, 10, 100] {
        let interval = Duration::from_millis(ms);
        match measure_precision(
            &cgroup.current_path(),
            interval,
            Duration::from_secs(seconds),
        ) {
            Ok(r) => println!(
                "{:>5} ms  {:>6}/{:<6}  {:>8.2}%  {:>6}  {:>6}/{:>6}/{:>6}  {:>8.1} ms  {:.3}%",
                ms,
                r.samples_taken,
                r.samples_asked,
                r.on_time_share() * 100.0,
                r.precision_errors,
                r.late_p50.as_micros(),
                r.late_p99.as_micros(),
                r.late_max.as_micros(),
                r.thread_cpu.as_secs_f64() * 1e3,
                r.cpu_share() * 100.0
            ),
            Err(e) => eprintln!("error: failed to {e}"),
        }
    }
    // For comparison: how late plain `thread::sleep` wakes from 1 ms naps.
    let mut late: Vec<u128> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            std::thread::sleep(Duration::from_millis(1));
            (t.elapsed() - Duration::from_millis(1)).as_micros()
        })
        .collect();
    late.sort_unstable();
    println!(
        "thread::sleep(1 ms) overshoot p50/p99/max: {}/{}/{} µs",
        late[late.len() / 2],
        late[late.len() * 99 / 100],
        late[late.len() - 1]
    );
}

//! Tests against a real container: the sampled peak of a process that touches 200 MiB.
//!
//! They need an engine and the `docker` command (see `sebs_testkit`). Containers are named
//! uniquely, labelled `sebs-local.test=1`, and removed even when a test fails.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sebs_memory::{
    find_container_cgroup, find_pid_cgroup, End, MemoryCgroup, MemoryReport, Sampler,
    SebsMemoryStats, DEFAULT_CGROUP_ROOT,
};
use sebs_testkit::{trial, Trial, DOCKER_CLI, ENGINE};

sebs_testkit::main!(trials());

/// The tests of this binary, each with what it needs from the machine.
fn trials() -> Vec<Trial> {
    vec![trial!(
        sampled_peak_of_200_mib_is_within_ten_percent,
        ENGINE,
        DOCKER_CLI
    )]
}

const MIB: u64 = 1024 * 1024;

/// Runs `docker args…` and returns its trimmed stdout, or why it failed.
fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("run docker {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A test container, removed on drop.
struct Container {
    name: String,
    id: String,
}

impl Container {
    fn run(script: &str) -> Container {
        let image = sebs_testkit::runtime()
            .block_on(async { sebs_testkit::python_image(&sebs_testkit::docker().await).await });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("sebs-memory-it-{}-{nanos}", std::process::id());
        let id = docker(&[
            "run",
            "-d",
            "--rm",
            "--label",
            "sebs-local.test=1",
            "--name",
            &name,
            &image,
            "python3",
            "-c",
            script,
        ])
        .unwrap();
        Container { name, id }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Already gone after a clean run (--rm); the error then is expected and ignored.
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let give_up = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sampled_peak_of_200_mib_is_within_ten_percent() {
    // Idle, then 200 MiB written byte by byte (so every page is touched), held, freed, idle.
    let script = "import time; time.sleep(1.5); b = b'\\x01' * (200 * 1024 * 1024); \
                  time.sleep(1.5); del b; time.sleep(2)";
    let c = Container::run(script);
    let root = Path::new(DEFAULT_CGROUP_ROOT);
    let mut cgroup: Option<MemoryCgroup> = None;
    wait_until("the container's cgroup", Duration::from_secs(10), || {
        cgroup = find_container_cgroup(root, &c.id).ok();
        cgroup.is_some()
    });
    let cgroup = cgroup.unwrap();

    // The PID route finds the same directory.
    let pid: u32 = docker(&["inspect", "--format", "{{.State.Pid}}", &c.id])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        find_pid_cgroup(root, Path::new("/proc"), pid).unwrap(),
        cgroup
    );

    let sampler = Sampler::start().unwrap();
    let h = sampler
        .add(&c.id, &cgroup, Duration::from_millis(5))
        .unwrap();
    wait_until("a baseline sample", Duration::from_secs(5), || {
        h.latest().is_some()
    });
    let baseline = h.latest().unwrap().bytes;
    wait_until("the allocation", Duration::from_secs(20), || {
        h.latest().is_some_and(|s| s.bytes > baseline + 150 * MIB)
    });
    wait_until("the release", Duration::from_secs(20), || {
        h.latest().is_some_and(|s| s.bytes < baseline + 50 * MIB)
    });

    // The kernel's peak saw the allocation too; a reset (allowed to root on v1 and on
    // v2 from Linux 6.12) brings the peak through this tracker back near the baseline.
    let mut tracker = cgroup.peak_tracker().unwrap().expect("a peak file");
    let kernel_peak = tracker.read().unwrap();
    assert!(
        kernel_peak > baseline + 190 * MIB,
        "kernel peak {kernel_peak}, baseline {baseline}"
    );
    if tracker.reset().unwrap() {
        let after = tracker.read().unwrap();
        assert!(
            after < baseline + 100 * MIB,
            "peak after reset {after}, baseline {baseline}"
        );
    } else {
        eprintln!("the kernel refused to reset {}", tracker.path().display());
    }

    wait_until("the container to go", Duration::from_secs(30), || {
        h.ended().is_some()
    });
    let m = h.stop();
    assert_eq!(m.end, End::ContainerGone);
    let peak = m.max_bytes().unwrap();
    let grown = peak - baseline;
    let truth = 200 * MIB;
    assert!(
        grown.abs_diff(truth) * 10 <= truth,
        "grew by {grown} bytes over a baseline of {baseline}, expected {truth} ± 10%"
    );
    assert_eq!(m.samples_asked, m.samples.len() as u64 + m.precision_errors);

    // Both files are written from the partial data of a container that went away.
    let dir = tempfile::tempdir().unwrap();
    let stats = SebsMemoryStats::from_measurements(std::slice::from_ref(&m));
    stats.write(&dir.path().join("memory_stats.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("memory_stats.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json[&c.id]["number of measurements"], m.samples.len());
    let report = MemoryReport::from_measurements(&[m]);
    report
        .write(&dir.path().join("memory_report.json"))
        .unwrap();
    assert_eq!(report.containers[0].bytes.unwrap().max, peak);
    eprintln!(
        "baseline {baseline} B, sampled peak {peak} B (+{:.1} MiB), kernel peak {kernel_peak} B, {} samples, {} precision errors",
        grown as f64 / MIB as f64,
        report.containers[0].samples_taken,
        report.precision_errors
    );
}

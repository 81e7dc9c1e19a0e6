//! The static agent in a real container of the Python 3.11 image, dropping to an unprivileged
//! user, driven with the `docker` command as a user would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sebs_testkit::{trial, Trial, AGENT, DOCKER_CLI, ENGINE};

use crate::support::{answer, client, code_dir, STEERED};

const NOBODY: u32 = 65534;

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            static_agent_serves_in_a_container_as_nobody,
            ENGINE,
            DOCKER_CLI,
            AGENT
        ),
        trial!(
            each_call_reports_its_own_memory_peak,
            ENGINE,
            DOCKER_CLI,
            AGENT
        ),
    ]
}

fn docker(args: &[&str]) -> std::io::Result<Output> {
    Command::new("docker").args(args).output()
}

/// The static agent `cargo xtask agent` builds (or `SEBS_AGENT_BIN`), found as `sebs-local`
/// finds it; the trials that call this need [`AGENT`].
fn static_agent() -> PathBuf {
    sebs_testkit::agent_binary().unwrap_or_else(|e| panic!("{e}"))
}

/// Whether an ELF file asks for a dynamic loader (has a `PT_INTERP` program header).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "not a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (entry_size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * entry_size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

/// A container removed when dropped, also when the test fails.
struct Container {
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = docker(&["logs", &self.name]) {
                eprintln!(
                    "container log:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = docker(&["rm", "--force", &self.name]);
    }
}

/// Runs the agent at `agent` in a labelled container of the Python image serving the
/// package in `code`, with `extra` arguments for `docker run`; returns once it is alive,
/// with its URL.
async fn start(agent: &Path, code: &Path, extra: &[&str]) -> (Container, String) {
    let image = sebs_testkit::python_image(&sebs_testkit::docker().await).await;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let container = Container {
        name: format!("sebs-agent-it-{}-{nanos}", std::process::id()),
    };
    let agent_mount = format!("{}:{}:ro", agent.display(), sebs_wire::AGENT_PATH);
    let code_mount = format!("{}:{}:ro", code.display(), sebs_wire::CODE_DIR);
    #[rustfmt::skip]
    let mut args = vec![
        "run", "--detach", "--name", &container.name, "--label", "sebs-local.test=1",
        "--volume", &agent_mount, "--volume", &code_mount,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&image, sebs_wire::AGENT_PATH]);
    let run = docker(&args).unwrap();
    assert!(
        run.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.IPAddress}}",
        &container.name,
    ])
    .unwrap();
    let ip = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    assert!(
        !ip.is_empty(),
        "container {} has no bridge address",
        container.name
    );
    let url = format!("http://{ip}:{}", sebs_wire::DEFAULT_PORT);

    let client = client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive = client
            .get(format!("{url}{}", sebs_wire::ALIVE_PATH))
            .send()
            .await;
        if alive.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent at {url} never became alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    (container, url)
}

async fn static_agent_serves_in_a_container_as_nobody() {
    let agent = static_agent();
    let elf = std::fs::read(&agent).unwrap();
    assert!(
        !has_interpreter(&elf),
        "{} is dynamically linked",
        agent.display()
    );

    // The function runs as nobody, who must be able to read the package.
    let code = code_dir(STEERED);
    for path in [code.path(), &code.path().join("function")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for file in ["handler.py", "function/function.py"] {
        let path = code.path().join(file);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let uid = format!("CONTAINER_UID={NOBODY}");
    let gid = format!("CONTAINER_GID={NOBODY}");
    #[rustfmt::skip]
    let (container, url) = start(&agent, code.path(), &[
        "--env", &uid, "--env", &gid, "--memory", "128m", "--memory-swap", "128m",
    ]).await;

    let client = client();
    for is_cold in [true, false] {
        let sent = client
            .post(format!("{url}/"))
            .body(r#"{"in": "container"}"#)
            .send()
            .await;
        let got = answer(sent.unwrap()).await;
        let body = got.ok();
        assert_eq!(body["is_cold"], is_cold, "{body:#}");
        let output = &body["result"]["output"];
        assert_eq!(output["echo"], serde_json::json!({"in": "container"}));
        assert_eq!(
            (output["uid"].as_u64(), output["gid"].as_u64()),
            (Some(NOBODY.into()), Some(NOBODY.into())),
            "{body:#}"
        );
        assert_eq!(output["groups"], serde_json::json!([]), "{body:#}");
        // Docker mounts the container's cgroup read-only: the worker's own peak it is.
        assert_eq!(body["memory_source"], "process", "{body:#}");
    }
    // Orphans of the handler are adopted by the agent (PID 1), which reaps them.
    let sent = client
        .post(format!("{url}/"))
        .body(r#"{"orphans": 3}"#)
        .send()
        .await;
    let reaped = answer(sent.unwrap()).await;
    assert_eq!(
        reaped.ok()["result"]["output"],
        serde_json::json!({"zombies": []})
    );

    // A handler beyond the memory limit is OOM-killed; the kernel's count says so.
    let sent = client
        .post(format!("{url}/"))
        .body(r#"{"alloc_mb": 400}"#)
        .send()
        .await;
    let oom = answer(sent.unwrap()).await;
    assert_eq!(
        (oom.status, &oom.body["kind"]),
        (500, &serde_json::json!("out_of_memory")),
        "{:#}",
        oom.body
    );
    let sent = client.post(format!("{url}/")).body("{}").send().await;
    assert_eq!(answer(sent.unwrap()).await.ok()["is_cold"], false);

    // PID 1 stops cleanly on SIGTERM: `docker stop` does not have to kill it.
    let stop = docker(&["stop", "--time", "5", &container.name]).unwrap();
    assert!(
        stop.status.success(),
        "docker stop: {}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let code = docker(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &container.name,
    ])
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&code.stdout).trim(), "0");
}

/// Where the memory cgroups of Docker's containers live on this host, when the container
/// test can mount them writable into a container: cgroup v1 with the cgroupfs driver.
fn docker_memory_cgroups() -> Option<String> {
    let info = docker(&["info", "--format", "{{.CgroupVersion}} {{.CgroupDriver}}"]).ok()?;
    let dir = "/sys/fs/cgroup/memory/docker";
    let v1_cgroupfs = String::from_utf8_lossy(&info.stdout).trim() == "1 cgroupfs";
    (v1_cgroupfs && Path::new(dir).is_dir()).then(|| dir.to_string())
}

/// A call that touches 200 MiB reports a peak 200 MiB above a no-op call's (the baseline),
/// and the next no-op call is back at the baseline: the peak is reset for each call.
///
/// Docker mounts a container's cgroup read-only, so the agent could only use the worker's
/// own peak; on a cgroup v1 host the test mounts the parent of all containers' cgroups
/// writable over it, so that the agent measures the container's cgroup.
async fn each_call_reports_its_own_memory_peak() {
    const MIB: f64 = 1024.0 * 1024.0;
    let agent = static_agent();
    let code = code_dir(STEERED);
    let cgroups = docker_memory_cgroups();
    let cgroup_mount = cgroups
        .as_ref()
        .map(|dir| format!("{dir}:/sys/fs/cgroup/memory:rw"));
    let mut extra = vec!["--memory", "512m", "--memory-swap", "512m"];
    if let Some(mount) = &cgroup_mount {
        extra.extend_from_slice(&["--volume", mount]);
    } else {
        eprintln!("not cgroup v1 with cgroupfs: the worker's own peak is tested");
    }
    let (container, url) = start(&agent, code.path(), &extra).await;
    let expect_source = if cgroups.is_some() {
        "cgroup"
    } else {
        "process"
    };

    let client = client();
    let call = |body: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let sent = client.post(format!("{url}/")).body(body).send().await;
            let got = answer(sent.unwrap()).await;
            let body = got.ok();
            assert_eq!(body["memory_source"], expect_source, "{body:#}");
            body["memory_peak_bytes"].as_u64().unwrap() as f64
        }
    };
    // The cold call imports the function; the baseline is a warm no-op.
    call("{}").await;
    let baseline = call("{}").await;
    let big = call(r#"{"alloc_mb": 200}"#).await;
    let after = call("{}").await;
    let log = docker(&["logs", &container.name]).unwrap();
    let log = String::from_utf8_lossy(&log.stderr);
    let source_line = log.lines().find(|l| l.contains("peak memory from"));
    eprintln!(
        "{expect_source}: baseline {:.1} MiB, with 200 MiB touched {:.1} MiB (+{:.1}), \
         next no-op {:.1} MiB; agent: {source_line:?}",
        baseline / MIB,
        big / MIB,
        (big - baseline) / MIB,
        after / MIB
    );
    let added = (big - baseline) / MIB;
    assert!(
        (180.0..=220.0).contains(&added),
        "the call added {added:.1} MiB, not 200 MiB within 10%"
    );
    let above = (after - baseline) / MIB;
    assert!(
        above.abs() < 10.0,
        "the no-op after it is {above:.1} MiB off the baseline: the peak was not reset"
    );
}

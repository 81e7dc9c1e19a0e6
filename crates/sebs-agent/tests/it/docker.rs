//! The static agent in a real container of `sebs-local/base:python-3.11`, dropping to an unprivileged user.
//!
//! Gated at run time: without a Docker engine (or without the image) the test prints why
//! and passes, unless `CI` is set.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{answer, client, code_dir, STEERED};

const IMAGE: &str = "sebs-local/base:python-3.11";
const NOBODY: u32 = 65534;

fn docker(args: &[&str]) -> std::io::Result<Output> {
    Command::new("docker").args(args).output()
}

/// Why the Docker test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    match docker(&["version", "--format", "{{.Server.Version}}"]) {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Some(format!(
                "no Docker engine answers: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Err(e) => return Some(format!("the docker CLI cannot run: {e}")),
    }
    match docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]) {
        Ok(out) if out.status.success() => None,
        _ => Some(format!(
            "image {IMAGE} is missing (cargo xtask test builds it)"
        )),
    }
}

/// The static agent: `SEBS_AGENT_BIN`, else built as `cargo xtask agent` builds it.
fn static_agent() -> PathBuf {
    if let Some(bin) = std::env::var_os("SEBS_AGENT_BIN") {
        return bin.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir = root.join("target/agent");
    let triple = "x86_64-unknown-linux-gnu";
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "sebs-agent",
            "--target",
            triple,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building the static agent failed: {status}"
    );
    target_dir.join(triple).join("release/sebs-agent")
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

#[tokio::test]
async fn static_agent_serves_in_a_container_as_nobody() {
    if let Some(reason) = unavailable() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {reason}");
        eprintln!("skipping the container test: {reason}");
        return;
    }
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

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let container = Container {
        name: format!("sebs-agent-it-{}-{nanos}", std::process::id()),
    };
    let agent_mount = format!("{}:{}:ro", agent.display(), sebs_wire::AGENT_PATH);
    let code_mount = format!("{}:{}:ro", code.path().display(), sebs_wire::CODE_DIR);
    let uid = format!("CONTAINER_UID={NOBODY}");
    let gid = format!("CONTAINER_GID={NOBODY}");
    #[rustfmt::skip]
    let run = docker(&[
        "run", "--detach", "--name", &container.name, "--label", "sebs-local.test=1",
        "--volume", &agent_mount, "--volume", &code_mount, "--env", &uid, "--env", &gid,
        "--memory", "128m", "--memory-swap", "128m",
        IMAGE, sebs_wire::AGENT_PATH,
    ])
    .unwrap();
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

//! Limits are enforced, not advisory: memory (OOM kill), CPU quota, timeout; and a function
//! can be changed while it runs: live limits, forced cold starts, new code.

use sebs_platform::{Function, FunctionConfig, FunctionState};
use sebs_testkit::{trial, Trial, ENGINE};
use sebs_trigger::InvokeError;
use sebs_wire::{ErrorKind, Language};
use serde_json::json;

use crate::{fixtures, with_harness, write_benchmark, Harness, AGENT, PROGRAMMABLE};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            over_its_memory_limit_a_call_gets_out_of_memory_and_the_next_works,
            ENGINE,
            AGENT
        ),
        trial!(
            the_cpu_quota_and_memory_limit_are_visible_in_the_container_and_change_live,
            ENGINE,
            AGENT
        ),
        trial!(
            a_forced_cold_start_makes_the_next_call_cold_and_new_code_replaces_the_container,
            ENGINE,
            AGENT
        ),
        trial!(
            a_container_killed_behind_our_back_is_reported,
            ENGINE,
            AGENT
        ),
        trial!(quota_files),
    ]
}

/// Files where a container sees its CPU quota: cgroup v1, then v2.
const CPU_QUOTA_FILES: [&str; 2] = [
    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    "/sys/fs/cgroup/cpu.max",
];
const MEMORY_LIMIT_FILES: [&str; 2] = [
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/memory.max",
];

impl Harness {
    /// The first of `paths` that exists in the function's container, and its content.
    async fn read_file(&self, f: &Function, paths: &[&str]) -> (String, String) {
        let r = self
            .platform
            .invoke(f, &json!({"mode": "read", "paths": paths}))
            .await
            .unwrap();
        let out = r.handler_output().unwrap().clone();
        let path = out["path"]
            .as_str()
            .unwrap_or_else(|| panic!("none of {paths:?} exists"))
            .to_string();
        (path, out["text"].as_str().unwrap().to_string())
    }
}

async fn gone(h: &Harness, id: &str) -> bool {
    matches!(
        sebs_container::inspect_state(h.platform.docker(), id).await,
        Err(sebs_container::ContainerError::NotFound { .. })
    )
}

/// The CPU quota as a fraction of a CPU, from either cgroup version's file.
fn cpus_from_quota(path: &str, text: &str) -> Option<f64> {
    if path.ends_with("cpu.max") {
        let (quota, period) = text.split_once(' ')?;
        return Some(quota.parse::<f64>().ok()? / period.parse::<f64>().ok()?);
    }
    // v1 keeps the period in a file beside it; Docker's default period is 100 ms.
    let quota: f64 = text.parse().ok()?;
    (quota > 0.0).then_some(quota / 100_000.0)
}

async fn over_its_memory_limit_a_call_gets_out_of_memory_and_the_next_works() {
    with_harness(|h| async move {
        let root = fixtures();
        let (bench, package, config) = h.package(&root, "050.allocate");
        let mut config = FunctionConfig::from_benchmark(&config, Language::Python, "3.11");
        config.memory_mb = 96;
        let f = h
            .platform
            .create_function("test-allocate", &bench, &package, &h.image, &config)
            .await
            .unwrap();
        h.platform
            .invoke(&f, &json!({"size_mb": 16}))
            .await
            .unwrap();
        match h.platform.invoke(&f, &json!({"size_mb": 300})).await {
            Err(InvokeError::Function { answer, .. }) => {
                assert_eq!(answer.kind, ErrorKind::OutOfMemory, "{answer:?}");
                assert!(answer.kind.to_string().contains("out of memory"));
            }
            other => panic!("expected out of memory, got {other:?}"),
        }
        // The agent (PID 1) survived the kill; a new worker serves the next call.
        assert_eq!(
            h.platform.function_state(&f).await.unwrap(),
            FunctionState::Running
        );
        let ok = h
            .platform
            .invoke(&f, &json!({"size_mb": 16}))
            .await
            .unwrap();
        assert_eq!(
            ok.handler_output(),
            Some(&json!({"allocated_mb": 16, "pages": 4096}))
        );
    })
    .await;
}

async fn the_cpu_quota_and_memory_limit_are_visible_in_the_container_and_change_live() {
    with_harness(|h| async move {
        let mut f = h
            .programmable_with(|c| {
                c.cpus = Some(0.5);
                c.memory_mb = 200;
            })
            .await;
        let (path, text) = h.read_file(&f, &CPU_QUOTA_FILES).await;
        assert_eq!(cpus_from_quota(&path, &text), Some(0.5), "{path}: {text}");
        let (_, limit) = h.read_file(&f, &MEMORY_LIMIT_FILES).await;
        assert_eq!(limit, (200u64 << 20).to_string());

        // Memory and CPU change on the running container: same container, still warm.
        let before = f.container.id.clone();
        let mut config = f.config.clone();
        config.cpus = Some(1.5);
        config.memory_mb = 300;
        h.platform
            .update_function_configuration(&mut f, &config)
            .await
            .unwrap();
        assert_eq!(
            f.container.id, before,
            "a live change must not replace the container"
        );
        assert_eq!(f.config, config);
        let (path, text) = h.read_file(&f, &CPU_QUOTA_FILES).await;
        assert_eq!(cpus_from_quota(&path, &text), Some(1.5), "{path}: {text}");
        let (_, limit) = h.read_file(&f, &MEMORY_LIMIT_FILES).await;
        assert_eq!(limit, (300u64 << 20).to_string());

        // A new timeout lives in the agent's environment: a new container, answering cold.
        config.timeout_s = 1;
        h.platform
            .update_function_configuration(&mut f, &config)
            .await
            .unwrap();
        assert_ne!(f.container.id, before);
        assert!(gone(&h, &before).await, "the old container is removed");
        match h
            .platform
            .invoke(&f, &json!({"mode": "sleep", "seconds": 5}))
            .await
        {
            Err(InvokeError::Function {
                status: 504,
                answer,
                ..
            }) => {
                assert_eq!(answer.kind, ErrorKind::Timeout);
                assert!(
                    answer.is_cold,
                    "the first call of the new container is cold"
                );
            }
            other => panic!("expected the new 1 s timeout, got {other:?}"),
        }
    })
    .await;
}

async fn a_forced_cold_start_makes_the_next_call_cold_and_new_code_replaces_the_container() {
    with_harness(|h| async move {
        let mut f = h.programmable_with(|_| {}).await;
        assert!(
            h.platform
                .invoke(&f, &json!({}))
                .await
                .unwrap()
                .stats
                .cold_start
        );
        assert!(
            !h.platform
                .invoke(&f, &json!({}))
                .await
                .unwrap()
                .stats
                .cold_start
        );
        let old = f.container.id.clone();
        h.platform.enforce_cold_start(&mut f).await.unwrap();
        assert_ne!(f.container.id, old);
        assert!(gone(&h, &old).await, "the old container is removed");
        let cold = h.platform.invoke(&f, &json!({})).await.unwrap();
        assert!(
            cold.stats.cold_start,
            "after enforce_cold_start the call must be cold"
        );
        assert!(
            !h.platform
                .invoke(&f, &json!({}))
                .await
                .unwrap()
                .stats
                .cold_start
        );

        // Several at once.
        let mut many = vec![f, h.programmable_with(|_| {}).await];
        for g in &many {
            h.platform.invoke(g, &json!({})).await.unwrap();
        }
        h.platform.enforce_cold_starts(&mut many).await.unwrap();
        for g in &many {
            assert!(
                h.platform
                    .invoke(g, &json!({}))
                    .await
                    .unwrap()
                    .stats
                    .cold_start
            );
        }

        // New code: another package hash, another container, the new handler answers.
        let root = h.benchmarks.path().join("new-code");
        write_benchmark(
            &root,
            "900.programmable",
            &PROGRAMMABLE.replace("{\"mode\": mode}", "{\"v\": 2}"),
            2,
        );
        let (_, package, _) = h.package(&root, "900.programmable");
        let mut f = many.remove(0);
        let before = f.container.id.clone();
        h.platform
            .update_function_code(&mut f, &package)
            .await
            .unwrap();
        assert_ne!(f.container.id, before);
        assert_eq!(f.hash, package.hash);
        let r = h.platform.invoke(&f, &json!({})).await.unwrap();
        assert_eq!(r.handler_output(), Some(&json!({"v": 2})));
        // The same package again changes nothing.
        h.platform
            .update_function_code(&mut f, &package)
            .await
            .unwrap();
        assert!(
            !h.platform
                .invoke(&f, &json!({}))
                .await
                .unwrap()
                .stats
                .cold_start
        );
    })
    .await;
}

async fn a_container_killed_behind_our_back_is_reported() {
    with_harness(|h| async move {
        let f = h.programmable_with(|_| {}).await;
        assert_eq!(
            h.platform.function_state(&f).await.unwrap(),
            FunctionState::Running
        );
        sebs_container::kill(h.platform.docker(), &f.container.id)
            .await
            .unwrap();
        let state = h.platform.function_state(&f).await.unwrap();
        assert!(
            matches!(
                state,
                FunctionState::Exited {
                    code: 137,
                    oom_killed: false
                }
            ),
            "{state:?}"
        );
        // (No call here: other tests' new containers may reuse the freed bridge IP at once.)
        sebs_container::remove(h.platform.docker(), &f.container.id, true)
            .await
            .unwrap();
        assert_eq!(
            h.platform.function_state(&f).await.unwrap(),
            FunctionState::Gone
        );
        // Stopping a function that is gone is not an error: the goal is met.
        h.platform.stop(&f).await.unwrap();
    })
    .await;
}

fn quota_files() {
    let check = |path: &str, text: &str, expect: Option<f64>| {
        assert_eq!(cpus_from_quota(path, text), expect, "{path}: {text}");
    };
    check(CPU_QUOTA_FILES[0], "50000", Some(0.5));
    check(CPU_QUOTA_FILES[0], "-1", None);
    check(CPU_QUOTA_FILES[1], "150000 100000", Some(1.5));
    check(CPU_QUOTA_FILES[1], "max 100000", None);
}

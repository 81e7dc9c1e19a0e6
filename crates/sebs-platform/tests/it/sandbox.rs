//! The function sandbox, probed from inside by the `060.sandbox-probe` fixture in Python and
//! Node.js: the strict defaults (no capabilities, an unprivileged user, a read-only root, a
//! 512 MiB `/tmp`, 1024 tasks), each of them loosened, and a container that keeps serving
//! after the function crossed a limit.

use std::time::{Duration, Instant};

use sebs_package::{find_benchmark, NoDeps, PackageCache};
use sebs_platform::{
    Function, FunctionConfig, FunctionState, FunctionUser, Platform, DEFAULT_PIDS_LIMIT,
    DEFAULT_TMP_SIZE_MB,
};
use sebs_testkit::{trial, Trial, ENGINE};
use sebs_trigger::InvokeError;
use sebs_wire::{ErrorKind, Language};
use serde_json::{json, Value};

use crate::{fixtures, with_harness, Harness, AGENT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(the_default_sandbox_is_strict_python, ENGINE, AGENT),
        trial!(the_default_sandbox_is_strict_nodejs, ENGINE, AGENT),
        trial!(
            each_limit_of_the_sandbox_can_be_loosened_python,
            ENGINE,
            AGENT
        ),
        trial!(
            each_limit_of_the_sandbox_can_be_loosened_nodejs,
            ENGINE,
            AGENT
        ),
        trial!(
            a_tmp_filled_past_the_memory_limit_is_out_of_memory_and_then_emptied,
            ENGINE,
            AGENT
        ),
        trial!(
            a_function_holding_every_task_gets_a_clear_error_and_the_agent_survives,
            ENGINE,
            AGENT
        ),
    ]
}

const MIB: u64 = 1 << 20;
const NO_CAPABILITIES: &str = "0000000000000000";

impl Harness {
    /// Starts the sandbox probe in `language` on `platform`, its config changed by `change`.
    async fn probe_on(
        &self,
        platform: &Platform,
        language: Language,
        change: impl FnOnce(&mut FunctionConfig),
    ) -> Function {
        let bench = find_benchmark(&fixtures(), "060.sandbox-probe").unwrap();
        let version = language.default_version();
        let image = match language {
            Language::Python => self.image.clone(),
            Language::Nodejs => self.nodejs_image().await,
        };
        // The probe has no dependencies to install.
        let package = PackageCache::new(self.cache.path())
            .get_or_build(&bench, language, version, &NoDeps, false)
            .unwrap();
        let mut config = FunctionConfig::from_benchmark(&bench.config, language, version);
        change(&mut config);
        platform
            .create_function(
                &format!("test-probe-{language}"),
                &bench.name,
                &package,
                &image,
                &config,
            )
            .await
            .unwrap()
    }

    async fn probe(
        &self,
        language: Language,
        change: impl FnOnce(&mut FunctionConfig),
    ) -> Function {
        self.probe_on(&self.platform, language, change).await
    }
}

/// Runs the probe once with `event` and returns its report.
async fn report(platform: &Platform, f: &Function, event: Value) -> Value {
    let r = platform.invoke(f, &event).await.unwrap();
    r.handler_output().cloned().unwrap()
}

/// A call that pushes against no limit succeeds, on the same (warm) container: the function
/// crossed a limit without taking its container down.
async fn assert_still_serving(platform: &Platform, f: &Function) {
    let r = platform
        .invoke(f, &json!({"fill_tmp_mb": 0, "tasks": 0}))
        .await
        .unwrap();
    assert!(!r.stats.cold_start, "the container was replaced");
    assert_eq!(
        platform.function_state(f).await.unwrap(),
        FunctionState::Running
    );
}

/// What the strict default sandbox looks like from inside, in `language`.
async fn assert_default_sandbox(h: &Harness, language: Language) {
    let f = h.probe(language, |_| {}).await;
    let (uid, gid) = FunctionUser::Auto.resolve(h.platform.config().host_user);
    let r = report(&h.platform, &f, json!({"fill_tmp_mb": 600, "tasks": 1100})).await;
    assert_eq!(
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(uid.into()), Some(gid.into())),
        "{r:#}"
    );
    assert_ne!(r["uid"], 0, "the function runs as root: {r:#}");
    assert_eq!(r["cap_eff"], NO_CAPABILITIES, "{r:#}");
    assert_eq!(r["cap_prm"], NO_CAPABILITIES, "{r:#}");
    assert_eq!(
        r["writes"],
        json!({"/": "EROFS", "/function": "EROFS", "/tmp": "ok"}),
        "{r:#}"
    );
    assert_eq!(
        (&r["home"], &r["home_write"]),
        (&json!("/tmp"), &json!("ok"))
    );
    assert_eq!(r["tmp_exec"], "ok", "a program in /tmp must run: {r:#}");
    // /tmp takes exactly its size, then says ENOSPC.
    assert_eq!(r["tmp_fill_error"], "ENOSPC", "{r:#}");
    assert_eq!(r["tmp_filled_bytes"], DEFAULT_TMP_SIZE_MB * MIB, "{r:#}");
    // The limit counts every task of the container: the agent's and the worker's own too.
    let tasks = r["tasks_started"].as_u64().unwrap();
    assert!(
        (900..DEFAULT_PIDS_LIMIT).contains(&tasks),
        "started {tasks} tasks under a limit of {DEFAULT_PIDS_LIMIT}: {r:#}"
    );
    assert!(!r["tasks_error"].is_null(), "{r:#}");
    if language == Language::Python {
        assert_eq!(r["dont_write_bytecode"], true, "{r:#}");
    }
    assert_still_serving(&h.platform, &f).await;
    // What out.json and experiment results record.
    let record = &f.sandbox;
    assert_eq!((record.uid, record.gid), (uid, gid));
    assert_eq!(
        (record.tmp_size_mb, record.pids_limit, record.read_only_root),
        (Some(DEFAULT_TMP_SIZE_MB), Some(DEFAULT_PIDS_LIMIT), true)
    );
    assert_eq!(
        record.agent_capabilities,
        ["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"]
    );
    h.platform.stop(&f).await.unwrap();
}

/// Each limit loosened: a smaller /tmp, a higher pids limit, root (still without
/// capabilities); then no limits at all.
async fn assert_loosened_sandbox(h: &Harness, language: Language) {
    let f = h
        .probe(language, |c| {
            c.sandbox.tmp_size_mb = Some(64);
            c.sandbox.pids_limit = Some(1500);
            c.sandbox.user = FunctionUser::Root;
        })
        .await;
    let r = report(&h.platform, &f, json!({"fill_tmp_mb": 100, "tasks": 1200})).await;
    assert_eq!(
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(0), Some(0)),
        "{r:#}"
    );
    assert_eq!(r["cap_eff"], NO_CAPABILITIES, "{r:#}");
    // Root cannot write the read-only root file system either.
    assert_eq!(
        r["writes"],
        json!({"/": "EROFS", "/function": "EROFS", "/tmp": "ok"}),
        "{r:#}"
    );
    assert_eq!(r["tmp_fill_error"], "ENOSPC", "{r:#}");
    assert_eq!(r["tmp_filled_bytes"], 64 * MIB, "{r:#}");
    assert_eq!(
        (&r["tasks_started"], &r["tasks_error"]),
        (&json!(1200), &Value::Null),
        "more tasks than the default limit: {r:#}"
    );
    assert_still_serving(&h.platform, &f).await;
    assert_eq!((f.sandbox.uid, f.sandbox.gid), (0, 0));
    assert!(f.sandbox.agent_capabilities.is_empty());
    h.platform.stop(&f).await.unwrap();

    // No size: /tmp is bounded by memory only (the probe stops at its own bound).
    let f = h
        .probe(language, |c| {
            c.sandbox.tmp_size_mb = None;
            c.sandbox.pids_limit = None;
        })
        .await;
    let r = report(&h.platform, &f, json!({"fill_tmp_mb": 600, "tasks": 0})).await;
    assert_eq!(
        (&r["tmp_filled_bytes"], &r["tmp_fill_error"]),
        (&json!(600 * MIB), &Value::Null),
        "{r:#}"
    );
    h.platform.stop(&f).await.unwrap();
}

async fn the_default_sandbox_is_strict_python() {
    with_harness(|h| async move { assert_default_sandbox(&h, Language::Python).await }).await;
}

async fn the_default_sandbox_is_strict_nodejs() {
    with_harness(|h| async move { assert_default_sandbox(&h, Language::Nodejs).await }).await;
}

async fn each_limit_of_the_sandbox_can_be_loosened_python() {
    with_harness(|h| async move { assert_loosened_sandbox(&h, Language::Python).await }).await;
}

async fn each_limit_of_the_sandbox_can_be_loosened_nodejs() {
    with_harness(|h| async move { assert_loosened_sandbox(&h, Language::Nodejs).await }).await;
}

/// /tmp is memory: filling it past the memory limit is an OOM kill, after which the agent
/// empties it (else no later worker could start) and the function goes on.
async fn a_tmp_filled_past_the_memory_limit_is_out_of_memory_and_then_emptied() {
    with_harness(|h| async move {
        let f = h.probe(Language::Python, |c| c.memory_mb = 192).await;
        let r = report(&h.platform, &f, json!({"fill_tmp_mb": 64})).await;
        assert_eq!(r["tmp_filled_bytes"], 64 * MIB, "{r:#}");
        match h.platform.invoke(&f, &json!({"fill_tmp_mb": 400})).await {
            Err(InvokeError::Function { answer, .. }) => {
                assert_eq!(answer.kind, ErrorKind::OutOfMemory, "{answer:?}");
                assert!(
                    answer.error.contains("/tmp held") && answer.error.contains("was emptied"),
                    "{}",
                    answer.error
                );
            }
            other => panic!("expected out of memory, got {other:?}"),
        }
        // A new worker starts, and /tmp has room again.
        let r = report(&h.platform, &f, json!({"fill_tmp_mb": 64})).await;
        assert_eq!(r["tmp_filled_bytes"], 64 * MIB, "{r:#}");
    })
    .await;
}

/// A function that holds every task of its pids limit, from a process that outlives its dead
/// worker: the agent cannot start a new worker and says why, stays up, and starts one as
/// soon as the tasks are free again.
async fn a_function_holding_every_task_gets_a_clear_error_and_the_agent_survives() {
    with_harness(|h| async move {
        let f = h
            .programmable_with(|c| c.sandbox.pids_limit = Some(64))
            .await;
        let held = Instant::now();
        let hold = Duration::from_secs(4);
        match h
            .platform
            .invoke(&f, &json!({"mode": "hog_tasks", "seconds": hold.as_secs()}))
            .await
        {
            Err(InvokeError::Function { answer, .. }) => {
                assert_eq!(answer.kind, ErrorKind::WorkerDied, "{answer:?}")
            }
            other => panic!("expected the worker to exit, got {other:?}"),
        }
        // Let the holder take the task the dead worker left (it retries every 10 ms).
        tokio::time::sleep(Duration::from_millis(300)).await;
        match h.platform.invoke(&f, &json!({})).await {
            Err(InvokeError::Function { answer, .. }) => {
                assert_eq!(answer.kind, ErrorKind::InitError, "{answer:?}");
                assert!(answer.error.contains("pids limit"), "{}", answer.error);
            }
            other => panic!("expected no worker to start, got {other:?}"),
        }
        assert_eq!(
            h.platform.function_state(&f).await.unwrap(),
            FunctionState::Running
        );
        // Once the holder is gone, a worker starts again.
        tokio::time::sleep(hold.saturating_sub(held.elapsed())).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match h.platform.invoke(&f, &json!({"mode": "noop"})).await {
                Ok(ok) => {
                    assert_eq!(ok.handler_output(), Some(&json!({"mode": "noop"})));
                    break;
                }
                Err(InvokeError::Function { answer, .. })
                    if answer.error.contains("pids limit") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the function did not recover: {e:?}"),
            }
        }
    })
    .await;
}

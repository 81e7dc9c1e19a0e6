//! perf-cost on real containers: every mode gives the temperature it promises, burst runs
//! invocations at once across containers, and the result files are SeBS's.

mod engines;
mod sebs_readers;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use sebs_container::testing::TEST_LABEL;
use sebs_experiments::run::{run_perf_cost, Experiment};
use sebs_experiments::{PerfCostSettings, RunType};
use sebs_package::{find_benchmark, NoDeps, PackageCache};
use sebs_platform::{Platform, PlatformConfig};
use sebs_testkit::{trial, Trial, AGENT, ENGINE};
use sebs_wire::{EpochMicros, Language};
use serde_json::json;

sebs_testkit::main!(trials(), sebs_readers::trials(), engines::trials());

/// The tests of this binary, each with what it needs from the machine.
fn trials() -> Vec<Trial> {
    vec![
        trial!(all_four_modes_on_real_containers, ENGINE, AGENT),
        trial!(
            a_replaced_container_is_removed_after_the_cold_batch,
            ENGINE,
            AGENT
        ),
    ]
}

/// perf-cost settings written inline in a test (SeBS's experiment JSON, or its perf-cost
/// block alone), named `inline.json` in errors.
pub(crate) fn inline_settings(json: &str) -> PerfCostSettings {
    PerfCostSettings::parse(json, false, Path::new("inline.json")).unwrap()
}

/// `900.tests/901.nap`: sleeps for the input's `seconds` and says how long it slept.
pub(crate) fn write_benchmark(root: &Path) {
    let dir = root.join("900.tests/901.nap");
    std::fs::create_dir_all(dir.join("python")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        json!({"timeout": 10, "memory": 128, "languages": ["python"], "modules": []}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("input.json"), r#"{"seconds": 0.4}"#).unwrap();
    std::fs::write(
        dir.join("python/function.py"),
        "import time\n\ndef handler(event):\n    time.sleep(event['seconds'])\n    return {'slept': event['seconds']}\n",
    )
    .unwrap();
}

/// The largest number of handler executions running at one instant.
fn max_overlap(results: &[sebs_trigger::ExecutionResult]) -> usize {
    let mut events: Vec<(i64, i32)> = Vec::new();
    for r in results {
        let begin: EpochMicros = r.output["begin"].as_str().unwrap().parse().unwrap();
        let end: EpochMicros = r.output["end"].as_str().unwrap().parse().unwrap();
        events.push((begin.0, 1));
        events.push((end.0, -1));
    }
    // Ends sort before begins at the same instant, so touching intervals do not overlap.
    events.sort();
    let (mut now, mut best) = (0, 0);
    for (_, delta) in events {
        now += delta;
        best = best.max(now);
    }
    best as usize
}

/// 901.nap packaged, and a platform on this host's engine whose containers carry the
/// tests' label; the directories live as long as the value.
struct Nap {
    docker: sebs_container::Docker,
    platform: Platform,
    bench: sebs_package::BenchmarkDir,
    package: sebs_package::Package,
    image: String,
    _dirs: [tempfile::TempDir; 2],
}

async fn nap() -> Nap {
    let docker = sebs_testkit::docker().await;
    let agent = sebs_platform::find_agent_binary(None).unwrap();
    let image = sebs_testkit::python_image(&docker).await;
    let mut config = PlatformConfig::new(agent);
    config
        .labels
        .insert(TEST_LABEL.0.into(), TEST_LABEL.1.into());
    let platform = Platform::new(docker.clone(), config);
    let root = tempfile::tempdir().unwrap();
    write_benchmark(root.path());
    let bench = find_benchmark(root.path(), "901.nap").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let package = PackageCache::new(cache.path())
        .get_or_build(&bench, Language::Python, "3.11", &NoDeps, false)
        .unwrap();
    Nap {
        docker,
        platform,
        bench,
        package,
        image,
        _dirs: [root, cache],
    }
}

async fn all_four_modes_on_real_containers() {
    let Nap {
        platform,
        bench,
        package,
        image,
        _dirs,
        ..
    } = nap().await;
    let input = sebs_package::generate_input(
        &bench,
        sebs_package::Size::Test,
        &Default::default(),
        &sebs_package::NoStorage,
    )
    .await
    .unwrap();
    let experiment = Experiment {
        platform: platform.clone(),
        bench,
        package,
        image,
        input,
        env: Default::default(),
    };

    let settings = inline_settings(
        r#"{"benchmark": "901.nap", "experiments": ["cold", "warm", "burst", "sequential"],
            "input-size": "test", "repetitions": 8, "concurrent-invocations": 8, "memory-sizes": [192],
            "tmp-size": 128, "pids-limit": 512}"#,
    );
    let out = tempfile::tempdir().unwrap();
    let report = run_perf_cost(
        &experiment,
        &settings,
        out.path(),
        &AtomicBool::new(false),
        &|_| {},
    )
    .await;
    platform.shutdown().await;
    let report = report.unwrap();

    assert_eq!(report.configurations.len(), 4);
    for r in &report.configurations {
        assert!(
            r.stopped_early.is_none(),
            "{} stopped: {:?}",
            r.run_type,
            r.stopped_early
        );
        assert!(r.failures.is_empty(), "{}: {:?}", r.run_type, r.failures);
        assert!(
            r.valid.len() >= 8,
            "{}: {} samples",
            r.run_type,
            r.valid.len()
        );
        match r.run_type {
            RunType::Cold => assert!(
                r.valid.iter().all(|v| v.stats.cold_start),
                "cold gave a warm result"
            ),
            RunType::Warm | RunType::Sequential => {
                assert!(
                    r.valid.iter().all(|v| !v.stats.cold_start),
                    "{} gave a cold result",
                    r.run_type
                )
            }
            RunType::Burst => {
                let overlap = max_overlap(&r.valid[..8]);
                assert!(
                    overlap >= 4,
                    "a burst of 8 had at most {overlap} handlers running at once"
                );
            }
        }
    }
    let dir = out.path().join("perf-cost");
    for name in [
        "cold_results_192.json",
        "warm_results_192.json",
        "burst_results_192.json",
        "sequential_results_192.json",
        "result.csv",
    ] {
        assert!(dir.join(name).is_file(), "{name} was not written");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cold_results_192.json")).unwrap())
            .unwrap();
    let invocations = doc["_invocations"]["901.nap-python-192"]
        .as_object()
        .unwrap();
    assert!(invocations.len() >= 8);
    assert_eq!(
        doc["statistics"]["cold_count"].as_u64(),
        Some(invocations.len() as u64)
    );
    // The figures name the sandbox they were measured in: the config's limits, and the user
    // the functions ran as.
    let sandbox = &doc["sebs_local"]["sandbox"];
    let (uid, gid) = sebs_platform::FunctionUser::Auto.resolve(platform.config().host_user);
    assert_eq!(
        (&sandbox["tmp_size_mb"], &sandbox["pids_limit"]),
        (&serde_json::json!(128), &serde_json::json!(512)),
        "{sandbox}"
    );
    assert_eq!(
        (&sandbox["uid"], &sandbox["gid"], &sandbox["read_only_root"]),
        (
            &serde_json::json!(uid),
            &serde_json::json!(gid),
            &serde_json::json!(true)
        ),
        "{sandbox}"
    );
    let csv = std::fs::read_to_string(dir.join("result.csv")).unwrap();
    assert!(csv.lines().count() > 32, "{csv}");

    // The report reads what a real run wrote, limits included.
    let written = sebs_report::write_report(out.path()).unwrap();
    assert_eq!(written.dir, dir);
    assert!(written.notes.is_empty(), "{:?}", written.notes);
    let model = sebs_report::read::load(&dir).unwrap();
    assert_eq!(model.configurations.len(), 4);
    for c in &model.configurations {
        assert_eq!(
            (c.limits.memory_mb, c.limits.timeout_s, c.limits.cpus_known),
            (Some(192), Some(10), true),
            "{}",
            c.file
        );
        assert!(c.stats.as_ref().is_some_and(|s| s.n >= 8), "{}", c.file);
    }
    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(html.contains("cold · 192 MB"), "{html}");
    sebs_readers::check_results_dir(&report.files);
}

async fn a_replaced_container_is_removed_after_the_cold_batch() {
    // A forced cold start's batch runs beside the container it replaced, which is removed
    // only once the batch is answered: its removal does not share the CPU with the cold
    // invocations being measured.
    let Nap {
        docker,
        platform,
        bench,
        package,
        image,
        _dirs,
    } = nap().await;
    let mut pool = sebs_experiments::FunctionPool::new(
        platform.clone(),
        "pool-replaced".into(),
        bench.name.clone(),
        package,
        image,
        sebs_platform::FunctionConfig::from_benchmark(&bench.config, Language::Python, "3.11"),
    );
    let input = json!({"seconds": 1.0});
    let outcome = async {
        pool.invoke_batch(&input, 1).await?;
        let old = pool.containers()[0].container.id.clone();
        pool.force_cold(1).await?;
        let new = pool.containers()[0].container.id.clone();
        assert_ne!(old, new);
        let (calls, during) = tokio::join!(pool.invoke_batch(&input, 1), async {
            // Halfway through the 1 s handler.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            sebs_container::inspect_state(&docker, &old).await
        });
        let calls = calls?;
        Ok::<_, sebs_platform::PlatformError>((old, calls, during))
    }
    .await;
    pool.shutdown().await;
    platform.shutdown().await;
    let (old, calls, during) = outcome.unwrap();
    let r = calls[0].result.as_ref().unwrap();
    assert!(r.stats.cold_start, "the batch after force_cold was warm");
    let during = during
        .unwrap_or_else(|e| panic!("the replaced container {old} was gone during the batch: {e}"));
    assert!(
        during.running,
        "the replaced container {old} was {} during the batch",
        during.status
    );
    // shutdown waited for every removal.
    assert!(
        sebs_container::inspect_state(&docker, &old).await.is_err(),
        "the replaced container {old} is still there after the pool's shutdown"
    );
}

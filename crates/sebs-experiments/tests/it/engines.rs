//! perf-cost across two engines: this host's and the second engine, which sees none of this
//! host's files and is reached over TCP (see `cargo xtask test`).

use std::sync::atomic::AtomicBool;

use sebs_container::testing::TEST_LABEL;
use sebs_container::EngineAddress;
use sebs_experiments::run::{run_perf_cost, Experiment};
use sebs_experiments::RunType;
use sebs_package::{find_benchmark, NoDeps, PackageCache};
use sebs_platform::{Platform, PlatformConfig, HASH_LABEL};
use sebs_testkit::{trial, Trial, AGENT, ENGINE, ENGINE2, ROOT};
use sebs_wire::Language;

use crate::sebs_readers;

/// A label only one test's containers carry.
const RUN_KEY: &str = "sebs-local.testrun";

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(a_burst_runs_on_both_engines, ENGINE, ENGINE2, AGENT),
        trial!(
            an_engine_that_goes_away_mid_run_fails_its_calls_and_the_run_goes_on,
            ENGINE,
            ENGINE2,
            AGENT,
            ROOT
        ),
        trial!(
            a_burst_places_past_an_engine_gone_before_it,
            ENGINE,
            ENGINE2,
            AGENT,
            ROOT
        ),
    ]
}

/// Removes what a test left on an engine: its containers (by its run label) and the
/// per-package images built there for it, also when the test fails.
struct Leftovers {
    engines: Vec<(String, sebs_container::Docker)>,
    run: String,
    hash: String,
}

impl Leftovers {
    /// Asserts that none of the test's containers, running or not, is on either engine.
    async fn assert_none(&self) {
        for (url, docker) in &self.engines {
            let left: Vec<String> =
                sebs_container::list_labelled(docker, &[(RUN_KEY, self.run.as_str())])
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|c| c.id)
                    .collect();
            assert_eq!(left, Vec::<String>::new(), "{url}");
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        // Dropped inside the async test, whose thread cannot block on the runtime: the
        // removal runs on a thread of its own.
        std::thread::scope(|scope| {
            scope.spawn(|| self.remove());
        });
    }
}

impl Leftovers {
    fn remove(&self) {
        let runtime = sebs_testkit::runtime();
        for (url, docker) in &self.engines {
            let removed = runtime.block_on(sebs_container::remove_labelled(
                docker,
                (RUN_KEY, &self.run),
            ));
            if let Err(e) = removed {
                eprintln!("could not remove this test's containers on {url}: {e}");
            }
            // The per-package images on a remote engine (the home engine's are the cache).
            if url.starts_with("tcp://") {
                let images = runtime.block_on(sebs_container::transfer::labelled_images(
                    docker,
                    url,
                    (HASH_LABEL, &self.hash),
                ));
                for image in images.unwrap_or_default() {
                    let removed = runtime
                        .block_on(sebs_container::transfer::remove_image(docker, url, &image));
                    if let Err(e) = removed {
                        eprintln!("could not remove image {image} on {url}: {e}");
                    }
                }
            }
        }
    }
}

/// A platform placing 901.nap's functions on this host's engine and the one at
/// `second_url` in turn, and what to remove when the test ends.
struct TwoEngines {
    platform: Platform,
    experiment: Experiment,
    local_url: EngineAddress,
    leftovers: Leftovers,
    /// The benchmark's and the package's directories.
    _dirs: [tempfile::TempDir; 2],
}

async fn two_engines(second_url: EngineAddress) -> TwoEngines {
    let docker = sebs_testkit::docker().await;
    let agent = sebs_platform::find_agent_binary(None).unwrap();
    let image = sebs_testkit::python_image(&docker).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut config = PlatformConfig::new(agent);
    config
        .labels
        .insert(TEST_LABEL.0.into(), TEST_LABEL.1.into());
    config.labels.insert(RUN_KEY.into(), run.clone());
    let local_url = EngineAddress::Unix(sebs_container::engine::DEFAULT_SOCKET.into());
    let connect = |address: EngineAddress| async move {
        sebs_container::connect_engine(&address)
            .await
            .unwrap_or_else(|e| panic!("failed to {}", sebs_wire::ErrorChain(&e)))
    };
    let engines = vec![connect(local_url.clone()).await, connect(second_url).await];
    assert!(!engines[1].local, "the second engine counts as remote");
    let root = tempfile::tempdir().unwrap();
    crate::write_benchmark(root.path());
    let bench = find_benchmark(root.path(), "901.nap").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let package = PackageCache::new(cache.path())
        .get_or_build(&bench, Language::Python, "3.11", &NoDeps, false)
        .unwrap();
    let leftovers = Leftovers {
        engines: engines
            .iter()
            .map(|e| (e.address.to_string(), e.docker.clone()))
            .collect(),
        run,
        hash: package.hash.clone(),
    };
    let platform = Platform::new(docker, config).with_engines(engines);
    let experiment = Experiment {
        platform: platform.clone(),
        bench,
        package,
        image,
        input: serde_json::json!({"seconds": 0.1}),
        env: Default::default(),
    };
    TwoEngines {
        platform,
        experiment,
        local_url,
        leftovers,
        _dirs: [root, cache],
    }
}

/// Warm calls on both engines; after the warm-up the second engine goes away (for this
/// test: its address is taken away, so that what is sent there goes unanswered). Each call
/// there fails within seconds with an error naming the engine, the calls on this host's
/// engine go on, and the results are written.
async fn an_engine_that_goes_away_mid_run_fails_its_calls_and_the_run_goes_on() {
    let mut alias = sebs_testkit::Engine2Alias::new().unwrap();
    let second_url = sebs_container::EngineAddress::parse_recorded(&alias.url).unwrap();
    let TwoEngines {
        platform,
        experiment,
        local_url,
        leftovers,
        _dirs,
    } = two_engines(second_url.clone()).await;
    let settings = crate::inline_settings(
        r#"{"benchmark": "901.nap", "experiments": ["warm"], "input-size": "test",
            "repetitions": 3, "concurrent-invocations": 2}"#,
    );
    let out = tempfile::tempdir().unwrap();
    let alias_cell = std::sync::Mutex::new(&mut alias);
    let report = run_perf_cost(
        &experiment,
        &settings,
        out.path(),
        &AtomicBool::new(false),
        &|p| {
            if p.warm_up {
                alias_cell.lock().unwrap().go_away();
            }
        },
    )
    .await;
    // Back before the containers there are removed.
    alias.come_back();
    platform.shutdown().await;
    let report = report.unwrap();

    let [r] = &report.configurations[..] else {
        panic!("{} configurations", report.configurations.len())
    };
    assert!(r.stopped_early.is_none(), "{:?}", r.stopped_early);
    assert!(r.valid.len() >= 3, "{} samples", r.valid.len());
    let (local, second) = (local_url.to_string(), second_url.to_string());
    assert!(r.engines.values().all(|e| *e == local), "{:?}", r.engines);
    eprintln!("the run's failures: {:#?}", r.failures);
    assert!(!r.failures.is_empty());
    for failure in &r.failures {
        assert!(
            failure.starts_with(&format!("on engine {second}: ")),
            "{failure}"
        );
    }
    let file = out.path().join("perf-cost/warm_results.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        doc["sebs_local"]["engines"].as_object().unwrap().len(),
        r.valid.len()
    );
    sebs_readers::check_results_dir(&report.files);
    leftovers.assert_none().await;
}

async fn a_burst_runs_on_both_engines() {
    let second_url = sebs_testkit::engine2_address().unwrap();
    let TwoEngines {
        platform,
        experiment,
        local_url,
        leftovers,
        _dirs,
    } = two_engines(second_url.clone()).await;
    let settings = crate::inline_settings(
        r#"{"benchmark": "901.nap", "experiments": ["burst"], "input-size": "test",
            "repetitions": 4, "concurrent-invocations": 4}"#,
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

    let [r] = &report.configurations[..] else {
        panic!("{} configurations", report.configurations.len())
    };
    assert_eq!(r.run_type, RunType::Burst);
    assert!(r.stopped_early.is_none(), "{:?}", r.stopped_early);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.valid.len() >= 4, "{} samples", r.valid.len());
    // Round robin over a batch of four: two invocations on each engine, every sample says
    // where it ran, and the file keeps that beside SeBS's fields.
    let (local, second) = (local_url.to_string(), second_url.to_string());
    for v in &r.valid {
        assert!(v.stats.cold_start, "a burst sample was warm");
        let engine = &r.engines[&v.request_id];
        assert!(*engine == local || *engine == second, "{engine}");
    }
    let served = |url: &str| r.engines.values().filter(|e| *e == url).count();
    assert!(
        served(&local) >= 2 && served(&second) >= 2,
        "{:?}",
        r.engines
    );
    let file = out.path().join("perf-cost/burst_results.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let invocations = doc["_invocations"]["901.nap-python-128"]
        .as_object()
        .unwrap();
    let recorded = doc["sebs_local"]["engines"].as_object().unwrap();
    assert_eq!(
        invocations.keys().collect::<Vec<_>>(),
        recorded.keys().collect::<Vec<_>>()
    );
    for url in [&local, &second] {
        assert!(recorded.values().any(|e| e == url), "{recorded:?}");
    }
    sebs_readers::check_results_dir(&report.files);
    // Nothing of the run is left on either engine.
    leftovers.assert_none().await;
}

/// A burst across both engines whose second went away before it (for this test: this
/// host's route to its alias became a blackhole): every container goes to this host's
/// engine, every sample is valid, and the results name the gone engine once, with why.
async fn a_burst_places_past_an_engine_gone_before_it() {
    let mut alias = sebs_testkit::Engine2Alias::new().unwrap();
    let second_url = sebs_container::EngineAddress::parse_recorded(&alias.url).unwrap();
    let TwoEngines {
        platform,
        experiment,
        local_url,
        leftovers,
        _dirs,
    } = two_engines(second_url.clone()).await;
    let settings = crate::inline_settings(
        r#"{"benchmark": "901.nap", "experiments": ["burst"], "input-size": "test",
            "repetitions": 4, "concurrent-invocations": 4}"#,
    );
    let out = tempfile::tempdir().unwrap();
    alias.go_away();
    let report = run_perf_cost(
        &experiment,
        &settings,
        out.path(),
        &AtomicBool::new(false),
        &|_| {},
    )
    .await;
    alias.come_back();
    platform.shutdown().await;
    let report = report.unwrap();

    let [r] = &report.configurations[..] else {
        panic!("{} configurations", report.configurations.len())
    };
    assert!(r.stopped_early.is_none(), "{:?}", r.stopped_early);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.valid.len() >= 4, "{} samples", r.valid.len());
    let (local, second) = (local_url.to_string(), second_url.to_string());
    assert!(r.valid.iter().all(|v| v.stats.cold_start));
    assert!(r.engines.values().all(|e| *e == local), "{:?}", r.engines);
    assert_eq!(r.engines.len(), r.valid.len());
    let file = out.path().join("perf-cost/burst_results.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let failed = doc["sebs_local"]["engine_failures"].as_object().unwrap();
    assert_eq!(failed.keys().collect::<Vec<_>>(), [&second], "{failed:?}");
    let why = failed[&second].as_str().unwrap();
    assert!(why.contains(&second), "{why}");
    sebs_readers::check_results_dir(&report.files);
    leftovers.assert_none().await;
}

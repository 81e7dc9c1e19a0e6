//! Functions spread over two engines: this host's and the second engine, which sees none
//! of this host's files and is reached over TCP, TLS or ssh (see `cargo xtask test`).

use serde_json::Value;

use sebs_testkit::{trial, Trial, AGENT, ENGINE, ENGINE2, PYTHON3, ROOT};

use crate::{curl_post, str_of, Cli, RUN_KEY};

/// This host's engine, as the tests name it.
const LOCAL: &str = "unix:///var/run/docker.sock";

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            start_places_functions_on_both_engines_and_stop_and_cleanup_leave_nothing,
            ENGINE,
            ENGINE2,
            AGENT
        ),
        trial!(
            a_remote_function_s_memory_is_sampled_by_its_agent_and_written_at_stop,
            ENGINE,
            ENGINE2,
            AGENT
        ),
        trial!(
            functions_on_both_engines_read_and_write_the_stores_of_this_host,
            ENGINE,
            ENGINE2,
            AGENT,
            PYTHON3
        ),
        trial!(
            a_tls_engine_runs_functions_and_refuses_clients_it_does_not_trust,
            ENGINE,
            ENGINE2,
            AGENT
        ),
        trial!(
            a_home_engine_that_is_not_this_host_s_gets_per_package_images_and_no_build,
            ENGINE,
            ENGINE2,
            AGENT
        ),
        trial!(
            stop_names_an_engine_that_went_away_and_stops_the_rest,
            ENGINE,
            ENGINE2,
            AGENT,
            ROOT
        ),
        trial!(
            an_ssh_engine_runs_functions_through_ssh_and_leaves_nothing,
            ENGINE,
            ENGINE2,
            AGENT
        ),
        trial!(
            an_ssh_engine_that_refuses_the_key_is_named_with_ssh_s_reason,
            ENGINE,
            ENGINE2,
            AGENT
        ),
    ]
}

/// One test at a time uses the second engine: two of them deploy 000.noop, whose image there
/// one test's end removes while the other may still create containers from it.
static ENGINE2_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This test's containers on the second engine, removed with it also when it fails, and
/// the per-package images built there for it (by their hash, or their benchmark).
struct Second {
    docker: sebs_container::Docker,
    url: String,
    run: String,
    hashes: std::cell::RefCell<Vec<String>>,
    benchmarks: Vec<&'static str>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Second {
    /// The second engine, seen by `cli`'s test run.
    fn new(cli: &Cli) -> Second {
        Second::at(cli, sebs_testkit::engine2_address().unwrap().to_string())
    }

    /// The second engine reached at `url` (the test's own client reaches it over plain TCP).
    fn at(cli: &Cli, url: String) -> Second {
        // A test that failed while holding the turn leaves nothing behind (its Drop ran).
        let turn = ENGINE2_TURN.lock().unwrap_or_else(|e| e.into_inner());
        Second {
            docker: sebs_testkit::runtime().block_on(sebs_testkit::docker2()),
            url,
            run: cli.run.clone(),
            hashes: Default::default(),
            benchmarks: Vec::new(),
            _turn: turn,
        }
    }

    /// `cli.start(args)`; the package of out.json's first function, whose image the second
    /// engine built, is recorded for removal when the test ends.
    fn start(&self, cli: &Cli, args: &[&str]) -> Value {
        let file = cli.start(args);
        let hash = str_of(&file["functions"][0], "hash").to_string();
        self.hashes.borrow_mut().push(hash);
        file
    }

    /// `start BENCHMARK test OUT --deployments N`, placed on this host's engine and this one
    /// in turn, with `extra` arguments after them.
    fn start_on_both(
        &self,
        cli: &Cli,
        benchmark: &str,
        out: &str,
        deployments: &str,
        extra: &[&str],
    ) -> Value {
        let mut args = vec![
            "start",
            benchmark,
            "test",
            out,
            "--deployments",
            deployments,
            "--engine",
            LOCAL,
            "--engine",
            &self.url,
        ];
        args.extend_from_slice(extra);
        self.start(cli, &args)
    }

    fn containers(&self) -> Vec<String> {
        sebs_testkit::runtime()
            .block_on(sebs_container::list_labelled(
                &self.docker,
                &[(RUN_KEY, self.run.as_str())],
            ))
            .unwrap()
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    }
}

impl Drop for Second {
    fn drop(&mut self) {
        let runtime = sebs_testkit::runtime();
        if let Err(e) = runtime.block_on(sebs_container::remove_labelled(
            &self.docker,
            (RUN_KEY, &self.run),
        )) {
            eprintln!(
                "could not remove this test's containers on {}: {e}",
                self.url
            );
        }
        let hashes = self.hashes.borrow();
        let labels = (hashes
            .iter()
            .map(|h| (sebs_platform::HASH_LABEL, h.as_str())))
        .chain(
            self.benchmarks
                .iter()
                .map(|b| (sebs_platform::BENCHMARK_LABEL, *b)),
        );
        for label in labels {
            let images = runtime.block_on(sebs_container::transfer::labelled_images(
                &self.docker,
                &self.url,
                label,
            ));
            for image in images.unwrap_or_default() {
                let removed = runtime.block_on(sebs_container::transfer::remove_image(
                    &self.docker,
                    &self.url,
                    &image,
                ));
                if let Err(e) = removed {
                    eprintln!("could not remove image {image} on {}: {e}", self.url);
                }
            }
        }
    }
}

fn start_places_functions_on_both_engines_and_stop_and_cleanup_leave_nothing() {
    let cli = Cli::new();
    let second = Second::new(&cli);
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = second.start_on_both(&cli, "000.noop", out, "4", &[]);
    let functions = file["functions"].as_array().unwrap();
    let instances = file["sebs_local"]["instances"].as_array().unwrap();
    let engines: Vec<&str> = instances.iter().map(|i| str_of(i, "engine")).collect();
    // In turn.
    assert_eq!(engines, [LOCAL, &second.url, LOCAL, &second.url], "{file}");
    let engine_host = second
        .url
        .trim_start_matches("tcp://")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    for (f, engine) in functions.iter().zip(&engines) {
        let url = str_of(f, "url");
        if *engine == second.url {
            assert!(url.starts_with(&format!("{engine_host}:")), "{url}");
        }
        let (status, body) = curl_post(url, "{}");
        assert_eq!(status, 200, "{url}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["result"], serde_json::json!({"output": {}}));
    }
    assert_eq!(cli.containers().len(), 2);
    assert_eq!(second.containers().len(), 2);

    let logs = cli.run(&["logs", out]);
    assert_eq!(logs.status.code(), Some(0));
    let text = String::from_utf8_lossy(&logs.stdout);
    assert_eq!(text.matches("sebs-agent: listening").count(), 4, "{text}");

    let stop = cli.run(&["stop", out]);
    assert_eq!(stop.status.code(), Some(0));
    assert_eq!(cli.containers(), Vec::<String>::new());
    assert_eq!(second.containers(), Vec::<String>::new());

    // SEBS_ENGINES, and a cleanup on the second engine alone.
    let again = cli.path("again.json");
    let mut start = cli.command(&["start", "000.noop", "test", again.to_str().unwrap()]);
    start.env(sebs_container::ENGINES_ENV, &second.url);
    let started = start.output().unwrap();
    assert_eq!(
        started.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert_eq!(second.containers().len(), 1);
    assert_eq!(cli.containers().len(), 0);
    let label = format!("{RUN_KEY}={}", cli.run);
    let clean = cli.run(&["cleanup", "--label", &label, "--engine", &second.url]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&clean.stderr).contains("removed 1 containers"),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(second.containers(), Vec::<String>::new());
}

fn a_remote_function_s_memory_is_sampled_by_its_agent_and_written_at_stop() {
    let cli = Cli::new();
    let second = Second::new(&cli);
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = second.start_on_both(&cli, "000.noop", out, "2", &["--measure-interval", "10"]);
    let functions = file["functions"].as_array().unwrap();
    let instances = file["sebs_local"]["instances"].as_array().unwrap();
    let remote = instances
        .iter()
        .find(|i| str_of(i, "engine") == second.url)
        .map(|i| str_of(i, "instance_id").to_string())
        .unwrap();
    let local = instances
        .iter()
        .find(|i| str_of(i, "engine") != second.url)
        .map(|i| str_of(i, "instance_id").to_string())
        .unwrap();
    let memory = &file["sebs_local"]["memory"];
    let agents = memory["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{memory}");
    assert_eq!(str_of(&agents[0], "container"), remote);
    // Calls on both for half a second at least, so that there are samples of each.
    let began = std::time::Instant::now();
    while began.elapsed() < std::time::Duration::from_millis(500) {
        for f in functions {
            let (status, body) = curl_post(str_of(f, "url"), "{}");
            assert_eq!(status, 200, "{body}");
        }
    }

    let stats = cli.path("memory_stats.json");
    let stop = cli.run(&["stop", out, stats.to_str().unwrap()]);
    assert_eq!(stop.status.code(), Some(0));
    assert_eq!(cli.containers(), Vec::<String>::new());
    assert_eq!(second.containers(), Vec::<String>::new());
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(cli.path("memory_report.json")).unwrap())
            .unwrap();
    let of = |id: &str| {
        report["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["container"] == id)
            .unwrap_or_else(|| panic!("no profile of {id} in {report}"))
            .clone()
    };
    let (r, l) = (of(&remote), of(&local));
    assert!(
        str_of(&r, "source").starts_with("agent-cgroup-v"),
        "{}",
        r["source"]
    );
    assert!(
        str_of(&l, "source").starts_with("cgroup-v"),
        "{}",
        l["source"]
    );
    assert_eq!(r["interval_us"], 10_000);
    assert_eq!(str_of(&r, "end"), "stopped");
    let offsets: Vec<i64> = r["offsets_us"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_i64().unwrap())
        .collect();
    let bytes: Vec<u64> = r["samples_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert!(offsets.len() >= 10, "{r}");
    assert!(bytes.iter().all(|&b| b > 0), "{r}");
    // About the asked interval, not the engine's stats' second: samples sit on a 10 ms grid
    // and are taken a little late, so single gaps vary; their median is about 10 ms (a
    // loaded machine may miss a deadline now and then).
    let mut gaps: Vec<i64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    assert!((5_000..=20_000).contains(&median), "{gaps:?}");
    // SeBS's file has both containers.
    assert!(
        stats.get(&remote).is_some() && stats.get(&local).is_some(),
        "{stats}"
    );
    // The remote container's calls are marked on its profile.
    assert!(!r["invocations"].as_array().unwrap().is_empty(), "{r}");
}

/// The relays of this host to the store named `store`.
fn relays(cli: &Cli, store: &str) -> Vec<String> {
    cli.runtime
        .block_on(sebs_container::list_labelled(
            &cli.docker,
            &[(sebs_storage::relay::RELAY_LABEL, store)],
        ))
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

fn functions_on_both_engines_read_and_write_the_stores_of_this_host() {
    let cli = Cli::new();
    let mut second = Second::new(&cli);
    // `invoke` builds 220.prefix there; its out.json is gone when the test ends.
    second.benchmarks.push("220.prefix");
    let nosql = format!("{}-nosql", cli.store_prefix);
    let object = format!("{}-object", cli.store_prefix);

    // NoSQL: a cart on each engine, each call writing, reading, querying and deleting items
    // of the table input.py filled.
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = second.start_on_both(&cli, "230.cart", out, "2", &[]);
    let functions = file["functions"].as_array().unwrap();
    let instances = file["sebs_local"]["instances"].as_array().unwrap();
    let engines: Vec<&str> = instances.iter().map(|i| str_of(i, "engine")).collect();
    assert_eq!(engines, [LOCAL, &second.url], "{file}");
    let input = file["inputs"][0].clone();
    let cart = input["cart"].as_str().unwrap().to_string();
    for (f, engine) in functions.iter().zip(&engines) {
        let url = str_of(f, "url");
        let (status, body) = curl_post(url, &input.to_string());
        assert_eq!(status, 200, "{engine} {url}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        // SeBS's answer: the handler's return value is `output`.
        let result = &answer["result"]["output"]["result"];
        // What 230.cart's validate_output expects.
        assert_eq!(
            result["get"],
            serde_json::json!({"cart_id": cart, "product_id": "pen", "name": "Pen", "price": 2, "quantity": 3}),
            "{engine}: {body}"
        );
        assert_eq!(
            result["query"],
            serde_json::json!(["Book", "Lamp", "Pen"]),
            "{engine}: {body}"
        );
        assert_eq!(
            result["after_delete"],
            serde_json::json!(["Book", "Pen"]),
            "{engine}: {body}"
        );
    }
    // One relay, for the remote engine; it outlives the start.
    assert_eq!(relays(&cli, &nosql).len(), 1);

    // Object storage: a function on the second engine alone downloads the prefix input.py
    // uploaded, and its output is validated.
    let invoke = cli.run(&[
        "invoke",
        "220.prefix",
        "test",
        "--validate",
        "--cache",
        cli.path("cache").to_str().unwrap(),
        "--engine",
        &second.url,
    ]);
    assert_eq!(
        invoke.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&invoke.stderr)
    );
    assert_eq!(relays(&cli, &object).len(), 1);

    let stop = cli.run(&["stop", out]);
    assert_eq!(stop.status.code(), Some(0));
    assert_eq!(cli.containers(), Vec::<String>::new());
    assert_eq!(second.containers(), Vec::<String>::new());
    // The relays are no stores: cleanup removes them (the next command makes them again),
    // and so does `storage stop` with their store.
    let label = format!("{}={nosql}", sebs_storage::relay::RELAY_LABEL);
    let clean = cli.run(&["cleanup", "--label", &label]);
    assert_eq!(clean.status.code(), Some(0));
    assert_eq!(relays(&cli, &nosql), Vec::<String>::new());
    let stores = cli.run(&["storage", "stop", "--embedded", "--remove-data"]);
    assert_eq!(stores.status.code(), Some(0));
    assert_eq!(relays(&cli, &object), Vec::<String>::new());
}

/// The second engine's TLS port (`SEBS_ENGINE2_TLS`: its address with the directory of a
/// client the engine trusts; `stranger` beside it is of a CA the engine does not know).
fn tls_engine() -> (String, std::path::PathBuf) {
    let url = std::env::var("SEBS_ENGINE2_TLS").expect(
        "SEBS_ENGINE2_TLS is set with SEBS_ENGINE2 (cargo xtask test, cargo xtask engine2)",
    );
    let (host, certs) = url.split_once("?cert-path=").unwrap();
    (host.to_string(), certs.into())
}

fn a_tls_engine_runs_functions_and_refuses_clients_it_does_not_trust() {
    let cli = Cli::new();
    let (host, certs) = tls_engine();
    let url = format!("{host}?cert-path={}", certs.display());
    let second = Second::at(&cli, url.clone());

    // The engine's own directory, in the URL.
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = second.start(&cli, &["start", "000.noop", "test", out, "--engine", &url]);
    let instance = &file["sebs_local"]["instances"][0];
    assert_eq!(str_of(instance, "engine"), url, "{file}");
    let (status, body) = curl_post(str_of(&file["functions"][0], "url"), "{}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(second.containers().len(), 1);

    // As the docker CLI reads it: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for a tcp://
    // address; out.json records the directory, so stop finds the engine without them.
    let again = cli.path("again.json");
    let again = again.to_str().unwrap();
    let mut start = cli.command(&["start", "000.noop", "test", again, "--engine", &host]);
    start
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs);
    let started = start.output().unwrap();
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(0), "{stderr}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(again).unwrap()).unwrap();
    assert_eq!(str_of(&file["sebs_local"]["instances"][0], "engine"), url);
    assert_eq!(second.containers().len(), 2);
    for f in [out, again] {
        let stop = cli.run(&["stop", f]);
        assert_eq!(stop.status.code(), Some(0));
    }
    assert_eq!(second.containers(), Vec::<String>::new());

    // Clients the engine does not take, each told what is wrong with which file: a client
    // certificate that is not there (the user's input, exit 2), a CA that did not sign the
    // engine's certificate and a client certificate of a CA the engine does not know (the
    // engine's refusal, exit 3). Nothing is started.
    let stranger = certs.parent().unwrap().join("stranger");
    let dir = |name: &str, files: [&std::path::Path; 3]| {
        let d = cli.path(name);
        std::fs::create_dir(&d).unwrap();
        for (from, to) in files.iter().zip(["ca.pem", "cert.pem", "key.pem"]) {
            if from.exists() {
                std::fs::copy(from, d.join(to)).unwrap();
            }
        }
        d
    };
    let missing = dir(
        "no-cert",
        [
            &certs.join("ca.pem"),
            std::path::Path::new("/nonexistent"),
            &certs.join("key.pem"),
        ],
    );
    let wrong_ca = dir(
        "wrong-ca",
        [
            &stranger.join("ca.pem"),
            &certs.join("cert.pem"),
            &certs.join("key.pem"),
        ],
    );
    let untrusted = dir(
        "untrusted",
        [
            &certs.join("ca.pem"),
            &stranger.join("cert.pem"),
            &stranger.join("key.pem"),
        ],
    );
    let cases: [(&std::path::Path, i32, &[String]); 3] = [
        (
            &missing,
            2,
            &[format!(
                "read the client certificate {}",
                missing.join("cert.pem").display()
            )],
        ),
        (
            &wrong_ca,
            3,
            &[
                "UnknownIssuer".to_string(),
                wrong_ca.join("ca.pem").display().to_string(),
            ],
        ),
        (
            &untrusted,
            3,
            &[
                "BadCertificate".to_string(),
                untrusted.join("cert.pem").display().to_string(),
            ],
        ),
    ];
    for (certs, code, says) in cases {
        let engine = format!("{host}?cert-path={}", certs.display());
        let refused = cli.run(&["start", "000.noop", "test", again, "--engine", &engine]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains(&format!("docker engine at {engine}")),
            "{stderr}"
        );
        for s in says {
            assert!(stderr.contains(s.as_str()), "{s}: {stderr}");
        }
    }
    assert_eq!(second.containers(), Vec::<String>::new());
}

/// `stop` of a deployment on both engines after the second went away (for this test: this
/// host's route to its alias became a blackhole): the engine is named with the container
/// left there, the exit code is 3, long before one wait of bollard's 120 s, this host's
/// container is removed and its memory written; once the engine is back, `cleanup
/// --engine` removes what was left there.
fn stop_names_an_engine_that_went_away_and_stops_the_rest() {
    let cli = Cli::new();
    let mut alias = sebs_testkit::Engine2Alias::new().unwrap();
    let second = Second::at(&cli, alias.url.clone());
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = second.start_on_both(&cli, "000.noop", out, "2", &["--measure-interval", "10"]);
    let instances = file["sebs_local"]["instances"].as_array().unwrap();
    let id_on = |url: &str| {
        instances
            .iter()
            .find(|i| str_of(i, "engine") == url)
            .map(|i| str_of(i, "instance_id").to_string())
            .unwrap()
    };
    let (local, remote) = (id_on(LOCAL), id_on(&alias.url));

    alias.go_away();
    let stats = cli.path("memory_stats.json");
    let began = std::time::Instant::now();
    let stop = cli.run(&["stop", out, stats.to_str().unwrap()]);
    let took = began.elapsed();
    alias.come_back();
    let stderr = String::from_utf8_lossy(&stop.stderr);
    assert_eq!(stop.status.code(), Some(3), "{stderr}");
    assert!(
        took < std::time::Duration::from_secs(60),
        "took {took:?}: {stderr}"
    );
    let named = format!(
        "left containers {remote} as they are on the docker engine at {}",
        alias.url
    );
    assert_eq!(stderr.matches(&named).count(), 1, "{stderr}");
    assert_eq!(cli.containers(), Vec::<String>::new());
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(stats.get(&local).is_some(), "{stats}");

    // Back: what was left there is still there, and cleanup removes it.
    assert_eq!(second.containers(), [remote]);
    let label = format!("{RUN_KEY}={}", cli.run);
    let clean = cli.run(&["cleanup", "--label", &label, "--engine", &alias.url]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert_eq!(second.containers(), Vec::<String>::new());
}

/// `DOCKER_HOST` naming the second engine, which is not this host's: it is found out as
/// `--engine`'s are, so the function gets a per-package image there and is published on
/// the engine's address; a package build with dependencies, whose build container would
/// mount this host's package directory there, is refused (exit 2) naming DOCKER_HOST.
fn a_home_engine_that_is_not_this_host_s_gets_per_package_images_and_no_build() {
    let cli = Cli::new();
    let second = Second::new(&cli);
    // The run image is there, as on a host that runs these images (no registry here).
    cli.runtime.block_on(async {
        let image = sebs_testkit::python_image(&cli.docker).await;
        let there = sebs_container::transfer::image_present(&second.docker, &second.url, &image);
        if !there.await.unwrap() {
            sebs_container::transfer::copy_image(
                &cli.docker,
                &second.docker,
                &second.url,
                &image,
                &|_| {},
            )
            .await
            .unwrap();
        }
    });
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let mut start = cli.command(&["start", "000.noop", "test", out]);
    start.env("DOCKER_HOST", &second.url);
    start.env_remove(sebs_container::ENGINES_ENV);
    let started = start.output().unwrap();
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(0), "{stderr}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    second
        .hashes
        .borrow_mut()
        .push(str_of(&file["functions"][0], "hash").to_string());
    assert_eq!(
        str_of(&file["sebs_local"]["instances"][0], "engine"),
        second.url
    );
    let engine_host = second
        .url
        .trim_start_matches("tcp://")
        .rsplit_once(':')
        .unwrap()
        .0;
    let url = str_of(&file["functions"][0], "url");
    assert!(url.starts_with(&format!("{engine_host}:")), "{url}");
    let (status, body) = curl_post(url, "{}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(second.containers().len(), 1);
    assert_eq!(cli.containers(), Vec::<String>::new());
    let mut stop = cli.command(&["stop", out]);
    stop.env("DOCKER_HOST", &second.url);
    assert_eq!(stop.output().unwrap().status.code(), Some(0));
    assert_eq!(second.containers(), Vec::<String>::new());

    let root = cli.path("benchmarks");
    crate::write_benchmark(
        &root,
        "903.deps",
        "def handler(event):\n    return {}\n",
        "{}",
        Some("six\n"),
    );
    let again = cli.path("again.json");
    let mut start = cli.command(&[
        "start",
        "903.deps",
        "test",
        again.to_str().unwrap(),
        "--benchmarks-dir",
        root.to_str().unwrap(),
    ]);
    start.env("DOCKER_HOST", &second.url);
    start.env_remove(sebs_container::ENGINES_ENV);
    let refused = start.output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    let says = format!(
        "mounts the package directory of this host, which the docker engine at {} \
         (DOCKER_HOST) does not see",
        second.url
    );
    assert!(stderr.contains(&says), "{stderr}");
    assert_eq!(second.containers(), Vec::<String>::new());
    assert_eq!(cli.containers(), Vec::<String>::new());
}

/// The second engine's sshd (`SEBS_ENGINE2_SSH`: `ssh://root@HOST:PORT?ssh-config=` a client
/// configuration of its own, beside its key and known hosts; `stranger` beside that
/// directory holds a key sshd does not know).
fn ssh_engine() -> (String, std::path::PathBuf) {
    let url = std::env::var("SEBS_ENGINE2_SSH").expect(
        "SEBS_ENGINE2_SSH is set with SEBS_ENGINE2 (cargo xtask test, cargo xtask engine2)",
    );
    let config = url.split_once("?ssh-config=").unwrap().1.into();
    (url, config)
}

/// The processes whose command line names `text` (the ssh processes of an engine's
/// connections name its configuration).
fn processes_naming(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(text) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// Whether `~/.ssh` exists (no test may write there).
fn home_ssh_exists() -> bool {
    std::env::var_os("HOME").is_some_and(|h| std::path::Path::new(&h).join(".ssh").exists())
}

fn an_ssh_engine_runs_functions_through_ssh_and_leaves_nothing() {
    let cli = Cli::new();
    let (url, config) = ssh_engine();
    let had_home_ssh = home_ssh_exists();
    let second = Second::at(&cli, url.clone());
    let engine_host = url
        .trim_start_matches("ssh://")
        .split_once('@')
        .unwrap()
        .1
        .split_once(':')
        .unwrap()
        .0
        .to_string();

    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = second.start(&cli, &["start", "000.noop", "test", out, "--engine", &url]);
    // out.json names the engine with its configuration: stop and logs need no environment.
    assert_eq!(str_of(&file["sebs_local"]["instances"][0], "engine"), url);
    // Published on the ssh host's address, reached from here.
    let function_url = str_of(&file["functions"][0], "url");
    assert!(
        function_url.starts_with(&format!("{engine_host}:")),
        "{function_url}"
    );
    let (status, body) = curl_post(function_url, "{}");
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["result"], serde_json::json!({"output": {}}));
    assert_eq!(second.containers().len(), 1);
    assert_eq!(cli.containers(), Vec::<String>::new());

    let logs = cli.run(&["logs", out]);
    assert_eq!(logs.status.code(), Some(0));
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("sebs-agent: listening"), "{text}");

    let stop = cli.run(&["stop", out]);
    assert_eq!(stop.status.code(), Some(0));
    assert_eq!(second.containers(), Vec::<String>::new());

    // SEBS_ENGINES takes it too; cleanup on it alone removes what is there.
    let again = cli.path("again.json");
    let mut start = cli.command(&["start", "000.noop", "test", again.to_str().unwrap()]);
    start.env(sebs_container::ENGINES_ENV, &url);
    let started = start.output().unwrap();
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(0), "{stderr}");
    assert_eq!(second.containers().len(), 1);
    let label = format!("{RUN_KEY}={}", cli.run);
    let clean = cli.run(&["cleanup", "--label", &label, "--engine", &url]);
    assert_eq!(clean.status.code(), Some(0));
    assert_eq!(second.containers(), Vec::<String>::new());

    // Each connection was an ssh process of the command's own: none outlives it.
    let config = config.display().to_string();
    let began = std::time::Instant::now();
    while !processes_naming(&config).is_empty()
        && began.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(processes_naming(&config), Vec::<String>::new());
    assert_eq!(home_ssh_exists(), had_home_ssh, "~/.ssh was written");
}

fn an_ssh_engine_that_refuses_the_key_is_named_with_ssh_s_reason() {
    let cli = Cli::new();
    let (url, config) = ssh_engine();
    let had_home_ssh = home_ssh_exists();
    let second = Second::new(&cli);
    let text = std::fs::read_to_string(&config).unwrap();
    let client = config.parent().unwrap();
    let stranger = client.parent().unwrap().join("stranger");
    // Configurations of the test's own, each one thing wrong with it.
    let variant = |name: &str, from: &std::path::Path, to: &std::path::Path| {
        let path = cli.path(name);
        let changed = text.replace(&from.display().to_string(), &to.display().to_string());
        assert_ne!(changed, text);
        std::fs::write(&path, changed).unwrap();
        path
    };
    let wrong_key = variant(
        "wrong-key",
        &client.join("id_ed25519"),
        &stranger.join("id_ed25519"),
    );
    let empty_known_hosts = cli.path("empty_known_hosts");
    std::fs::write(&empty_known_hosts, "").unwrap();
    let unknown_host = variant(
        "unknown-host",
        &client.join("known_hosts"),
        &empty_known_hosts,
    );
    let missing = cli.path("no-such-config");
    let (base, _) = url.split_once("?ssh-config=").unwrap();
    let with = |config: &std::path::Path| format!("{base}?ssh-config={}", config.display());
    let closed_port = format!(
        "{}:1?ssh-config={}",
        base.rsplit_once(':').unwrap().0,
        config.display()
    );
    let cases: [(String, i32, &[&str]); 4] = [
        // ssh's own words, after the command that failed.
        (
            with(&wrong_key),
            3,
            &["Permission denied (publickey)", "docker system dial-stdio"],
        ),
        (with(&unknown_host), 3, &["Host key verification failed"]),
        (closed_port, 3, &["Connection refused"]),
        (
            with(&missing),
            2,
            &["read the ssh configuration", &missing.display().to_string()],
        ),
    ];
    let out = cli.path("out.json");
    for (engine, code, says) in cases {
        let refused = cli.run(&[
            "start",
            "000.noop",
            "test",
            out.to_str().unwrap(),
            "--engine",
            &engine,
        ]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(code), "{engine}: {stderr}");
        assert!(
            stderr.contains(&format!("docker engine at {engine}")),
            "{stderr}"
        );
        for s in says {
            assert!(stderr.contains(s), "{s}: {stderr}");
        }
    }
    assert!(!out.exists());
    assert_eq!(second.containers(), Vec::<String>::new());
    assert_eq!(home_ssh_exists(), had_home_ssh, "~/.ssh was written");
}

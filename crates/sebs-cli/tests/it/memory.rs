//! `start --measure-interval` … `stop`: SeBS's memory_stats.json and our report, from the cgroup or the engine's stats, also when a container or the measurer dies.

use std::path::Path;
use std::time::{Duration, Instant};

use sebs_testkit::{trial, Trial, ENGINE};
use serde_json::Value;

use super::{str_of, Cli, AGENT};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(
            a_200_mib_allocation_is_measured_and_a_killed_container_keeps_its_data,
            ENGINE,
            AGENT
        ),
        trial!(
            without_visible_cgroups_memory_comes_from_the_engine_stats,
            ENGINE,
            AGENT
        ),
        trial!(
            a_killed_measurer_loses_at_most_its_last_second,
            ENGINE,
            AGENT
        ),
    ]
}

/// What 050.allocate's `small` input allocates and touches: 200 MiB.
const TRUTH: f64 = 200.0 * 1024.0 * 1024.0;

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `"215.908352 MB"` → bytes.
fn mb(text: &Value) -> f64 {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {text}"));
    text.strip_suffix(" MB")
        .unwrap_or_else(|| panic!("no MB in {text:?}"))
        .parse::<f64>()
        .unwrap()
        * 1e6
}

fn within_10_percent(got: f64, truth: f64, what: &str) {
    assert!(
        (got - truth).abs() <= 0.1 * truth,
        "{what}: {got:.0} bytes, truth {truth:.0}"
    );
}

/// The measurer of a deployment file, and whether it still runs.
fn measurer(file: &Value) -> (nix::unistd::Pid, std::path::PathBuf) {
    let memory = &file["sebs_local"]["memory"];
    let pid = memory["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no measurer pid in {file}"));
    (
        nix::unistd::Pid::from_raw(pid as i32),
        str_of(memory, "dir").into(),
    )
}

/// Whether `pid` runs (a zombie no longer does: its parent, `start`, is gone and whoever
/// inherited it may reap it late).
fn runs(pid: nix::unistd::Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// What the measurer has flushed to container `id`'s journal in `dir` so far: stretches of
/// samples (journal lines) and the samples they hold. A torn last line is not counted.
fn flushed(dir: &Path, id: &str) -> (usize, u64, bool) {
    let text = std::fs::read_to_string(dir.join(format!("{id}.jsonl"))).unwrap_or_default();
    let (mut stretches, mut samples, mut ended) = (0, 0, false);
    for line in text.lines() {
        let Ok(line) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match line["kind"].as_str() {
            Some("samples") => {
                stretches += 1;
                samples += line["samples"].as_array().map_or(0, |s| s.len() as u64);
            }
            Some("end") => ended = true,
            _ => {}
        }
    }
    (stretches, samples, ended)
}

/// Waits (a minute at most, however loaded the machine) until `done` holds for what the
/// measurer flushed for `id`; returns the samples flushed by then.
fn wait_for_journal(
    dir: &Path,
    id: &str,
    what: &str,
    done: impl Fn(usize, u64, bool) -> bool,
) -> u64 {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let (stretches, samples, ended) = flushed(dir, id);
        if done(stretches, samples, ended) {
            return samples;
        }
        assert!(
            Instant::now() < give_up,
            "no {what} in the journal of {id} after a minute: {stretches} stretches, {samples} samples"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Precision errors as SeBS writes them: the key only when there were some, the sum over containers.
fn check_precision_errors(stats: &Value, report: &Value) {
    let total: u64 = report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["precision_errors"].as_u64().unwrap())
        .sum();
    assert_eq!(report["precision_errors"].as_u64(), Some(total));
    match stats.get("precision_errors") {
        Some(n) => assert_eq!(n.as_u64(), Some(total), "{stats}"),
        None => assert_eq!(total, 0, "SeBS writes precision_errors when there are any"),
    }
}

fn a_200_mib_allocation_is_measured_and_a_killed_container_keeps_its_data() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = cli.start(&[
        "start",
        "050.allocate",
        "small",
        out,
        "--deployments",
        "2",
        "--remove-containers",
        "--measure-interval",
        "10",
    ]);
    let (pid, dir) = measurer(&file);
    assert!(
        dir.join("ready").exists(),
        "start returned before sampling began"
    );
    let functions = file["functions"].as_array().unwrap();
    let ids: Vec<&str> = functions.iter().map(|f| str_of(f, "instance_id")).collect();

    // The ExecutionResult's memory_used is the invocation's peak, in MiB as SeBS has it.
    let trigger = sebs_trigger::Trigger::new(
        &format!("http://{}/", str_of(&functions[0], "url")),
        sebs_trigger::TriggerConfig::default(),
    )
    .unwrap();
    let (idle, busy) = cli.runtime.block_on(async {
        let idle = trigger
            .invoke(&serde_json::json!({"size_mb": 0}))
            .await
            .unwrap();
        let busy = trigger
            .invoke(&serde_json::json!({"size_mb": 200}))
            .await
            .unwrap();
        (idle, busy)
    });
    assert_eq!(busy.output["result"]["output"]["pages"], 51_200);
    let (idle_mib, busy_mib) = (
        idle.stats.memory_used.unwrap(),
        busy.stats.memory_used.unwrap(),
    );
    eprintln!("memory_used: {idle_mib:.1} MiB idle, {busy_mib:.1} MiB with 200 MiB touched");
    within_10_percent(
        (busy_mib - idle_mib) * 1024.0 * 1024.0,
        TRUTH,
        "memory_used above an idle call's",
    );

    // The second container is killed behind our back while it is sampled, once some of its
    // samples are in its journal.
    let kept = wait_for_journal(&dir, ids[1], "samples", |_, samples, _| samples > 0);
    cli.runtime.block_on(async {
        sebs_container::kill(&cli.docker, ids[1]).await.unwrap();
    });
    wait_for_journal(&dir, ids[1], "end", |_, _, ended| ended);

    // SeBS's default: memory_stats.json in the working directory.
    let stop = cli
        .command(&["stop", out])
        .current_dir(cli.dir.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&stop.stderr);
    eprintln!("$ sebs-local stop {out}\n{log}");
    assert_eq!(
        stop.status.code(),
        Some(5),
        "a killed container is exit code 5"
    );
    assert!(
        log.contains(&format!(
            "container {} went away during the measurement",
            ids[1]
        )),
        "{log}"
    );
    assert_eq!(cli.containers(), Vec::<String>::new());
    assert!(!runs(pid), "the measurer still runs");
    assert!(!dir.exists(), "the journals are removed once summarised");

    let stats = read_json(&cli.path("memory_stats.json"));
    let report = read_json(&cli.path("memory_report.json"));
    // SeBS's order and layout (json.dump(indent=6)): containers, then precision_errors.
    let text = std::fs::read_to_string(cli.path("memory_stats.json")).unwrap();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle} in {text}"))
    };
    let mut order = vec![at(&format!("\n      \"{}\": {{", ids[0]))];
    order.extend(
        [
            "\"mean mem. usage\"",
            "\"max mem. usage\"",
            "\"number of measurements\"",
            "\"full profile (in bytes)\"",
        ]
        .map(at),
    );
    order.push(at(&format!("\n      \"{}\": {{", ids[1])));
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "SeBS's order of containers and keys: {text}"
    );
    assert_eq!(
        stats.as_object().unwrap().len(),
        2 + usize::from(stats.get("precision_errors").is_some())
    );
    if stats.get("precision_errors").is_some() {
        assert!(
            text.trim_end().ends_with(&format!(
                "\"precision_errors\": {}\n}}",
                stats["precision_errors"]
            )),
            "{text}"
        );
    }
    check_precision_errors(&stats, &report);
    for (i, id) in ids.iter().enumerate() {
        let entry = &stats[*id];
        assert_eq!(entry.as_object().unwrap().len(), 4, "{entry}");
        let profile: Vec<u64> = entry["full profile (in bytes)"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(
            entry["number of measurements"].as_u64(),
            Some(profile.len() as u64)
        );
        let c = &report["containers"][i];
        assert_eq!(str_of(c, "container"), *id);
        assert!(str_of(c, "source").starts_with("cgroup-v"), "{c}");
        let (asked, taken, errors) = (
            c["samples_asked"].as_u64().unwrap(),
            c["samples_taken"].as_u64().unwrap(),
            c["precision_errors"].as_u64().unwrap(),
        );
        assert_eq!((taken, asked), (profile.len() as u64, taken + errors));
        eprintln!("container {i}: {taken} samples taken of {asked} asked at 10 ms, {errors} precision errors, end {}", c["end"]);
        assert!(taken > 0, "container {i}: no samples");
        if i == 1 {
            assert!(
                taken >= kept,
                "the killed container lost samples: {kept} flushed, {taken} kept"
            );
        }
    }

    // Container 0: the sampled peak is 200 MiB above its baseline.
    let profile0: Vec<u64> = stats[ids[0]]["full profile (in bytes)"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let baseline = *profile0.iter().min().unwrap() as f64;
    let max = mb(&stats[ids[0]]["max mem. usage"]);
    assert_eq!(max, *profile0.iter().max().unwrap() as f64);
    eprintln!(
        "container 0: baseline {:.1} MB, max {:.1} MB, +{:.1} MB for 200 MiB = {:.1} MB",
        baseline / 1e6,
        max / 1e6,
        (max - baseline) / 1e6,
        TRUTH / 1e6
    );
    within_10_percent(max - baseline, TRUTH, "the sampled peak above the baseline");
    assert_eq!(report["containers"][0]["end"], "stopped");
    // Container 1: killed mid-way, its samples are kept.
    assert_eq!(report["containers"][1]["end"], "container_gone");

    // The agent's log marks container 0's two calls on its profile, at their handlers' times;
    // the killed container's agent could not say.
    let calls = report["containers"][0]["invocations"].as_array().unwrap();
    let started: sebs_wire::EpochMicros = str_of(&report["containers"][0], "started_at")
        .parse()
        .unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (call, result) in calls.iter().zip([&idle, &busy]) {
        let at = |k: &str| {
            str_of(&result.output, k)
                .parse::<sebs_wire::EpochMicros>()
                .unwrap()
                .0
                - started.0
        };
        assert_eq!(call["begin_us"].as_i64(), Some(at("begin")), "{call}");
        assert_eq!(call["end_us"].as_i64(), Some(at("end")), "{call}");
    }
    assert_eq!(report["containers"][1].get("invocations"), None);
    assert!(log.contains("marks no invocations"), "{log}");
    // And the page beside them shows both containers.
    let page = std::fs::read_to_string(cli.path("report.html")).unwrap();
    for id in &ids {
        assert!(
            page.contains(&format!("memory_{}.svg", &id[..12])),
            "{page}"
        );
    }
}

fn without_visible_cgroups_memory_comes_from_the_engine_stats() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let empty = cli.path("no-cgroups");
    std::fs::create_dir(&empty).unwrap();
    let file = cli.start(&[
        "start",
        "000.noop",
        "test",
        out,
        "--remove-containers",
        "--measure-interval",
        "100",
        "--cgroup-root",
        empty.to_str().unwrap(),
    ]);
    let (_, dir) = measurer(&file);
    let log = std::fs::read_to_string(dir.join("measure.log")).unwrap();
    assert!(log.contains("engine-stats"), "{log}");
    let id = str_of(&file["functions"][0], "instance_id").to_string();
    assert_eq!(
        super::curl_post(str_of(&file["functions"][0], "url"), "{}").0,
        200
    );
    std::thread::sleep(Duration::from_millis(3500));

    let (stats_path, report_path) = (cli.path("noop.json"), cli.path("noop_report.json"));
    let stop = cli.run(&["stop", out, "--memory-output", stats_path.to_str().unwrap()]);
    assert_eq!(stop.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&stop.stderr).contains("source engine-stats"));
    let stats = read_json(&stats_path);
    let report = read_json(&report_path);
    let c = &report["containers"][0];
    assert_eq!(c["source"], "engine-stats", "{c}");
    assert_eq!(c.get("cgroup"), None);
    let taken = c["samples_taken"].as_u64().unwrap();
    eprintln!(
        "engine stats: {taken} samples taken of {} asked at 100 ms",
        c["samples_asked"]
    );
    // About one a second (the engine's pace), so at least one over 3.5 s.
    assert!(taken > 0, "{c}");
    assert_eq!(stats[&id]["number of measurements"].as_u64(), Some(taken));
    assert!(mb(&stats[&id]["max mem. usage"]) > 1e6, "{stats}");
    check_precision_errors(&stats, &report);
    assert!(
        c["precision_errors"].as_u64().unwrap() > 0,
        "1 s samples miss most 100 ms deadlines: {c}"
    );
}

fn a_killed_measurer_loses_at_most_its_last_second() {
    let cli = Cli::new();
    let out = cli.path("out.json");
    let out = out.to_str().unwrap();
    let file = cli.start(&[
        "start",
        "000.noop",
        "test",
        out,
        "--remove-containers",
        "--measure-interval",
        "10",
    ]);
    let (pid, dir) = measurer(&file);
    assert!(runs(pid));
    let id = str_of(&file["functions"][0], "instance_id").to_string();
    // Killed once it has flushed twice (each second).
    let flushed = wait_for_journal(&dir, &id, "second flush", |stretches, _, _| stretches >= 2);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let give_up = Instant::now() + Duration::from_secs(60);
    while runs(pid) {
        assert!(
            Instant::now() < give_up,
            "the killed measurer {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // A report of any name is drawn in the page beside it.
    let (stats_path, report_path) = (cli.path("m.json"), cli.path("profile.json"));
    let stop = cli.run(&[
        "stop",
        out,
        stats_path.to_str().unwrap(),
        "--memory-report",
        report_path.to_str().unwrap(),
    ]);
    assert_eq!(
        stop.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let page = std::fs::read_to_string(cli.path("report.html")).unwrap();
    assert!(page.contains("profile.json"), "the page omits the report");
    let stats = read_json(&stats_path);
    let report = read_json(&report_path);
    let taken = stats[&id]["number of measurements"].as_u64().unwrap();
    eprintln!("killed after two flushes ({flushed} samples) at 10 ms: {taken} samples kept");
    // Only what was not flushed yet, at most the last second's, is lost.
    assert!(taken >= flushed, "{flushed} samples flushed, {taken} kept");
    let c = &report["containers"][0];
    assert_eq!(c["end"], "failed");
    assert!(
        str_of(c, "error").contains("before closing its journal"),
        "{c}"
    );
}

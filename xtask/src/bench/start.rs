//! One-deployment `sebs-local start` as a user runs it: the release CLI binary, a whole
//! process from spawn to exit 0 (`start 000.noop test out.json` in a directory of its own),
//! against the engine's own create → first 200 of the static floor, measured in turns.
//!
//! The CLI's embedded object store (which `start` names in out.json) gets a prefix of the
//! bench's own, started by an uncounted first run, as a user's stays running between starts,
//! and is removed at the end with its data volume.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sebs_storage::embedded::{self, Kind};

use super::summary::{median, percentile, Entry, Target};
use super::{floor, ms, Ctx, BENCH_LABEL, NOOP};
use crate::root;

/// The release `sebs-local` that `cargo xtask bench` builds.
pub fn cli_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root::dir().join("target"));
    target.join("release").join("sebs-local")
}

/// Runs `sebs-local args` in `dir` with the bench's environment; its stderr goes to
/// `dir/<log>`. Fails unless it exits 0.
fn sebs_local(cli: &Path, dir: &Path, store_prefix: &str, log: &str, args: &[&str]) -> Result<()> {
    let log_path = dir.join(log);
    let log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("failed to create {}", log_path.display()))?;
    let status = Command::new(cli)
        .args(args)
        .current_dir(dir)
        .env(embedded::PREFIX_ENV, store_prefix)
        .env(
            sebs_package::BENCHMARKS_DIR_ENV,
            root::dir().join("fixtures"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .status()
        .with_context(|| format!("failed to run {}", cli.display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!(
            "sebs-local {} in {} exited with {status}: {}",
            args.join(" "),
            dir.display(),
            text.trim_end().lines().last().unwrap_or("(no output)")
        );
    }
    Ok(())
}

pub async fn figure(cx: &Ctx, out: &mut Vec<Entry>) -> Result<()> {
    let cli = cli_binary();
    if !cli.is_file() {
        bail!(
            "no release CLI at {} (cargo xtask bench builds it)",
            cli.display()
        );
    }
    let prefix = format!("sebs-bench-start-{}", std::process::id());
    let outcome = turns(cx, &cli, &prefix).await;
    let store = format!("{prefix}-{}", Kind::Object);
    if let Err(e) = embedded::remove(&cx.docker, Kind::Object, &store, true).await {
        eprintln!("xtask: could not remove the bench's store {store}: {e:#}");
    }
    let (floor_ms, cli_ms) = outcome?;
    let (f, c) = (median(&floor_ms), median(&cli_ms));
    let mut e = Entry::plain("start one deployment (whole CLI process)", "ms", c, cli_ms.len())
        .versus(f, Target::AtMost(1.1))
        .note(format!(
            "release `sebs-local start {NOOP} test out.json`, spawn -> exit 0, package cached, store running; \
             against the engine's create -> first 200 of the static floor ({f:.0} ms), in turns; max {:.0} ms",
            percentile(&cli_ms, 100.0)
        ));
    if e.met == Some(false) {
        e = e.note(format!(
            "misses 1.1x by {:.0} ms ({:.2}x): the process adds {:.0} ms to the engine's start of a static \
             server (our container's mounts and limits, the agent's start, the CLI's own work)",
            c - 1.1 * f,
            c / f,
            c - f
        ));
    }
    out.push(e);
    Ok(())
}

/// An uncounted start (package built, store started), then floor and CLI in turns; each
/// start's time in ms.
async fn turns(cx: &Ctx, cli: &Path, prefix: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let base = cx.out_dir.join("start");
    let cache = base.join("cache");
    let cache_arg = cache.to_string_lossy().into_owned();
    let label = format!("{}={}", BENCH_LABEL.0, BENCH_LABEL.1);
    let (mut floor_ms, mut cli_ms) = (Vec::new(), Vec::new());
    for i in 0..=cx.settings.cold_runs {
        let name = format!("sebs-bench-floor-{}-start-{i}", std::process::id());
        let f = floor::start(&cx.docker, &name, &[BENCH_LABEL]).await?;
        floor::remove(&cx.docker, &f.id).await;

        let dir = base.join(format!("run-{i}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let out_json = dir.join("out.json");
        let _ = std::fs::remove_file(&out_json);
        let (cli2, dir2, prefix2) = (cli.to_path_buf(), dir.clone(), prefix.to_string());
        let args = [
            "start", NOOP, "test", "out.json", "--cache", &cache_arg, "--label", &label,
        ]
        .map(String::from);
        let took = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let begin = Instant::now();
            sebs_local(&cli2, &dir2, &prefix2, "start.log", &args)?;
            Ok::<_, anyhow::Error>(begin.elapsed())
        })
        .await
        .context("the CLI thread failed")?;
        // Stopped whatever the start's outcome: a partial out.json still lists containers.
        let (cli2, dir2, prefix2) = (cli.to_path_buf(), dir.clone(), prefix.to_string());
        let stopped = tokio::task::spawn_blocking(move || {
            if dir2.join("out.json").is_file() {
                sebs_local(&cli2, &dir2, &prefix2, "stop.log", &["stop", "out.json"])
            } else {
                Ok(())
            }
        })
        .await
        .context("the CLI thread failed")?;
        let took = took?;
        stopped?;
        if i > 0 {
            floor_ms.push(ms(f.total));
            cli_ms.push(ms(took));
        }
    }
    Ok((floor_ms, cli_ms))
}

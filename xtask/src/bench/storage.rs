//! The storage figures: how long the embedded store takes to start (from nothing, and when it
//! already runs), and PUT/GET of objects from inside a function container next to a plain
//! HTTP server (the floor's `/bytes/<n>`) moving the same bytes over the same path.

use std::time::Instant;

use anyhow::{Context, Result};
use sebs_container::Docker;
use sebs_package::{PackageCache, Size};
use sebs_platform::{DockerBuildEnv, FunctionConfig, Platform};
use sebs_storage::embedded::{self, Kind, StoreOptions};
use sebs_storage::{InputCalls, Storage, StorageFile};
use sebs_wire::Language;

use super::summary::{median, Entry, Target};
use super::{floor, ms, BENCH_LABEL};
use crate::root;

/// The fixture that moves the bytes.
const IO_BENCH: &str = "290.io";
/// 64 KiB and 16 MiB, as the issue asks.
const SIZES: [usize; 2] = [64 * 1024, 16 * 1024 * 1024];

/// What the storage figures need of the bench's context.
pub struct StorageCx<'a> {
    pub docker: &'a Docker,
    pub platform: &'a Platform,
    pub image: &'a str,
    pub out_dir: &'a std::path::Path,
    pub repetitions: usize,
}

/// A store of the bench, removed with its data by [`remove`].
async fn start_store(docker: &Docker, name: &str) -> Result<sebs_storage::RunningStore> {
    let binary =
        sebs_container::find_static_binary(embedded::STORE_BINARY, embedded::STORE_BIN_ENV, None)
            .context("failed to find the store binary")?;
    let image = embedded::ensure_image(docker, &binary)
        .await
        .context("failed to make the store image")?;
    let mut options = StoreOptions::embedded(Kind::Object);
    options.name = name.to_string();
    options.data = sebs_container::DataSource::Volume(data_volume(name));
    options
        .labels
        .insert(BENCH_LABEL.0.to_string(), BENCH_LABEL.1.to_string());
    embedded::start(docker, &image, &options)
        .await
        .context("failed to start the store")
}

/// The data volume of the bench's store `name`.
fn data_volume(name: &str) -> String {
    format!("{name}-data")
}

/// Removes the store and its data volume, also what a start that failed partway left: a
/// volume without a container, which `embedded::remove` (finding no store) leaves alone.
async fn remove(docker: &Docker, name: &str) {
    if let Err(e) = embedded::remove(docker, Kind::Object, name, true).await {
        eprintln!("xtask: could not remove the bench's store {name}: {e:#}");
    }
    let volume = data_volume(name);
    if let Err(e) = sebs_container::remove_volume(docker, &volume).await {
        eprintln!(
            "xtask: could not remove the bench's store volume {volume}: {}",
            sebs_wire::ErrorChain(&e)
        );
    }
}

pub async fn figures(cx: &StorageCx<'_>, out: &mut Vec<Entry>) -> Result<()> {
    let name = format!("sebs-bench-store-{}", std::process::id());
    // From nothing: no image, no container, no volume; then the same store found running.
    let binary =
        sebs_container::find_static_binary(embedded::STORE_BINARY, embedded::STORE_BIN_ENV, None)
            .context("failed to find the store binary")?;
    let image = embedded::ensure_image(cx.docker, &binary).await?;
    // Untag only: containers of a store already running keep their image.
    let _ = cx
        .docker
        .remove_image(
            &image,
            Some(
                bollard::query_parameters::RemoveImageOptionsBuilder::default()
                    .force(true)
                    .build(),
            ),
            None,
        )
        .await;
    let begin = Instant::now();
    let store = match start_store(cx.docker, &name).await {
        Ok(store) => store,
        Err(e) => {
            // A start that failed partway may have made the container or the volume.
            remove(cx.docker, &name).await;
            return Err(e);
        }
    };
    let fresh = begin.elapsed();
    let outcome = async {
        let begin = Instant::now();
        embedded::find(cx.docker, Kind::Object, &name)
            .await?
            .context("the store just started is gone")?;
        let running = begin.elapsed();
        out.push(
            Entry::plain("storage start (no image, no store yet)", "ms", ms(fresh), 1)
                .note("import of the store image, create, first answer"),
        );
        out.push(Entry::plain(
            "storage start (already running)",
            "ms",
            ms(running),
            1,
        ));
        transfers(cx, &store, out).await
    }
    .await;
    remove(cx.docker, &name).await;
    outcome
}

/// PUT and GET from inside a function, next to the floor moving the same bytes.
async fn transfers(
    cx: &StorageCx<'_>,
    store: &sebs_storage::RunningStore,
    out: &mut Vec<Entry>,
) -> Result<()> {
    let fixtures = root::dir().join("fixtures");
    let mut bench = sebs_package::find_benchmark(&fixtures, IO_BENCH)
        .with_context(|| format!("failed to find {IO_BENCH}"))?;
    let needs = sebs_package::inspect_needs(&bench).await?;
    let file = StorageFile {
        object: Some(store.minio_config()),
        ..Default::default()
    };
    let storage = Storage::from_file(&file, "the bench's store").await?;
    let resources = sebs_storage::prepare_resources(&storage, &bench.name, &needs).await?;
    let calls = InputCalls::new(storage.clone(), resources.clone());
    let context = sebs_package::InputContext {
        data_dir: None,
        buckets: resources.buckets.clone(),
    };
    let mut input = sebs_package::generate_input(&bench, Size::Small, &context, &calls).await?;
    if !bench
        .config
        .modules
        .contains(&sebs_package::Module::Storage)
    {
        bench.config.modules.push(sebs_package::Module::Storage);
    }
    // Its client library is installed in a build container, as for any benchmark.
    let package = {
        let cache = PackageCache::new(cx.out_dir.join("packages"));
        let env = DockerBuildEnv::new(
            cx.docker.clone(),
            cx.image,
            tokio::runtime::Handle::current(),
        );
        let bench = bench.clone();
        tokio::task::spawn_blocking(move || {
            cache.get_or_build(&bench, Language::Python, "3.11", &env, false)
        })
        .await
        .context("the packaging task failed")?
        .with_context(|| format!("failed to package {IO_BENCH}"))?
    };
    let floor_name = format!("sebs-bench-floor-{}-bytes", std::process::id());
    let fl = floor::start(cx.docker, &floor_name, &[BENCH_LABEL]).await?;
    let mut config = FunctionConfig::from_benchmark(&bench.config, Language::Python, "3.11");
    config.env = sebs_storage::function_env(&storage, &resources);
    let outcome = async {
        let function = cx
            .platform
            .create_function("bench-io", &bench.name, &package, cx.image, &config)
            .await
            .context("failed to start the storage bench function")?;
        input["reference"] = serde_json::Value::from(fl.address.to_string());
        input["sizes"] = serde_json::json!(SIZES);
        input["repetitions"] = serde_json::Value::from(cx.repetitions);
        let result = cx.platform.invoke(&function, &input).await;
        cx.platform.stop(&function).await.ok();
        let result = result.context("the storage bench function failed")?;
        let output = result
            .handler_output()
            .cloned()
            .context("the storage bench function answered no output")?;
        for size in SIZES {
            let times = &output["result"][size.to_string()];
            let get = |op: &str| -> Vec<f64> {
                times[op]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_f64())
                            .map(|us| us / 1e3)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let label = if size >= 1 << 20 {
                format!("{} MiB", size >> 20)
            } else {
                format!("{} KiB", size >> 10)
            };
            for (op, reference) in [("get", "reference_get"), ("put", "reference_put")] {
                let ours = get(op);
                let floor_times = get(reference);
                if ours.is_empty() || floor_times.is_empty() {
                    anyhow::bail!("the function answered no {op} times for {label}: {output}");
                }
                let (m, r) = (median(&ours), median(&floor_times));
                let mb_per_s = |ms: f64| size as f64 / 1e6 / (ms / 1e3);
                out.push(
                    Entry::plain(
                        &format!("floor HTTP {} {label} from a function", op.to_uppercase()),
                        "ms",
                        r,
                        floor_times.len(),
                    )
                    .note(format!("{:.0} MB/s", mb_per_s(r))),
                );
                let mut entry = Entry::plain(
                    &format!("store {} {label} from a function", op.to_uppercase()),
                    "ms",
                    m,
                    ours.len(),
                )
                .note(format!("{:.0} MB/s", mb_per_s(m)));
                entry = if op == "get" && size >= 1 << 20 {
                    entry.versus(r, Target::AtMost(2.0))
                } else {
                    entry.relative_to(r)
                };
                out.push(entry);
            }
        }
        Ok(())
    }
    .await;
    floor::remove(cx.docker, &fl.id).await;
    outcome
}

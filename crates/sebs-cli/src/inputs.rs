//! A benchmark's input, made as SeBS makes it: its data folder, its storage (the embedded
//! stores, or `--storage FILE`), its bucket and tables, and `input.py`'s uploads.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sebs_package::{
    BenchmarkDir, InputContext, InputError, InputSession, Module, Needs, NoStorage, Size,
    ValidateContext,
};
use sebs_platform::Platform;
use sebs_storage::embedded::{self, Kind, StoreOptions};
use sebs_storage::{relay, EmbeddedError, InputCalls, Storage, StorageError, StorageFile};

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

/// Where SeBS's benchmark data is looked up without `--data-dir`.
pub const DATA_DIR_ENV: &str = "SEBS_DATA_DIR";
/// SeBS's data repository, for messages.
const DATA_REPOSITORY: &str = "https://github.com/spcl/serverless-benchmarks-data";

/// The options of every command that makes a benchmark's input.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// SeBS's benchmark data (a clone of serverless-benchmarks-data): else SEBS_DATA_DIR,
    /// ./benchmarks-data, or benchmarks-data beside or inside the benchmarks directory.
    /// input.py gets <DIR>/<group>/<benchmark>.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Object storage and NoSQL to use: a storage file of `sebs-local storage start`, of
    /// SeBS's `sebs storage start`, or one naming any S3/DynamoDB endpoint. Without it, a
    /// benchmark that needs storage uses the embedded stores (started on first use).
    #[arg(long, value_name = "FILE")]
    pub storage: Option<PathBuf>,
}

/// The storage a deployment uses.
pub struct InUse {
    pub storage: Storage,
    /// Answers the validators' downloads too.
    pub calls: Arc<InputCalls>,
}

/// A benchmark's input and what its functions need to find their storage.
pub struct PreparedInput {
    pub input: serde_json::Value,
    /// SeBS's storage variables for the function containers.
    pub env: BTreeMap<String, String>,
    pub storage: Option<InUse>,
    pub validate: ValidateContext,
}

/// The data root: `--data-dir`, `SEBS_DATA_DIR`, `./benchmarks-data`, then
/// `benchmarks-data` beside the benchmarks root (a SeBS checkout has `benchmarks/` and
/// `benchmarks-data/` side by side) or inside it (this repository's fixtures). Made
/// absolute: `input.py` runs in its benchmark's folder.
pub fn data_root(cli: Option<&Path>, bench: &BenchmarkDir) -> Option<PathBuf> {
    let env = std::env::var_os(DATA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let chosen = match cli.map(Path::to_path_buf).or(env) {
        Some(dir) => dir,
        None => {
            let benchmarks_root = bench.path.parent().and_then(Path::parent);
            let candidates = [
                Some(PathBuf::from("benchmarks-data")),
                benchmarks_root
                    .and_then(Path::parent)
                    .map(|p| p.join("benchmarks-data")),
                benchmarks_root.map(|p| p.join("benchmarks-data")),
            ];
            candidates.into_iter().flatten().find(|p| p.is_dir())?
        }
    };
    Some(std::path::absolute(&chosen).unwrap_or(chosen))
}

/// Adds to `bench`'s `modules` the storage its `input.py` asks for (`buckets_count`,
/// `allocate_nosql`), so that every command packages it with our modules for them (and so
/// with one hash); returns what it asks for. `session` is `bench`'s `input.py`, which goes on
/// to generate the input ([`prepare_with`]).
pub async fn add_storage_modules(
    bench: &mut BenchmarkDir,
    session: &mut InputSession,
) -> Result<Needs, Failure> {
    let needs = session
        .inspect()
        .await
        .map_err(|e| input_failure(e, bench))?;
    add_modules(bench, &needs);
    Ok(needs)
}

/// Adds to `bench`'s `modules` the storage `needs` (its `input.py`'s answer) asks for.
pub fn add_modules(bench: &mut BenchmarkDir, needs: &Needs) {
    let want_object = needs.object_storage() || bench.config.modules.contains(&Module::Storage);
    let want_nosql = needs.nosql() || bench.config.modules.contains(&Module::Nosql);
    for (wanted, module) in [(want_object, Module::Storage), (want_nosql, Module::Nosql)] {
        if wanted && !bench.config.modules.contains(&module) {
            bench.config.modules.push(module);
        }
    }
}

/// Makes `bench`'s input at `size`: starts or finds its storage, makes its bucket and
/// tables, and runs `generate_input` with uploads going there. What storage the benchmark
/// uses (its `input.py` and its `config.json`'s `modules`) joins its `modules`, so that its
/// package ships our modules for them.
pub async fn prepare(
    bench: &mut BenchmarkDir,
    size: Size,
    args: &InputArgs,
) -> Result<PreparedInput, Failure> {
    let mut session = InputSession::start(bench);
    let needs = add_storage_modules(bench, &mut session).await?;
    prepare_with(bench, session, &needs, size, args).await
}

/// Whether `bench` (its `modules` completed by [`add_storage_modules`]) uses no storage: its
/// input is then made without any store, and its functions need no storage variables.
pub fn storage_free(bench: &BenchmarkDir) -> bool {
    !bench.config.modules.contains(&Module::Storage)
        && !bench.config.modules.contains(&Module::Nosql)
}

/// [`prepare`] once [`add_storage_modules`] has completed `bench`'s modules and said what
/// its `input.py` (`session`) needs.
pub async fn prepare_with(
    bench: &BenchmarkDir,
    session: InputSession,
    needs: &Needs,
    size: Size,
    args: &InputArgs,
) -> Result<PreparedInput, Failure> {
    let want_object = bench.config.modules.contains(&Module::Storage);
    let want_nosql = bench.config.modules.contains(&Module::Nosql);
    let root = data_root(args.data_dir.as_deref(), bench);
    let data_dir = root
        .as_ref()
        .map(|r| r.join(&bench.group).join(&bench.name))
        .filter(|d| d.is_dir());
    // A benchmark with input prefixes uploads its data folder: without it, stop before any
    // container starts.
    if matches!(needs.buckets, Some((inputs, _)) if inputs > 0) && data_dir.is_none() {
        let expected = root
            .as_ref()
            .map(|r| r.join(&bench.group).join(&bench.name).display().to_string())
            .unwrap_or_else(|| format!("./benchmarks-data/{}/{}", bench.group, bench.name));
        return Err(Failure {
            exit: Exit::BadInput,
            error: anyhow::anyhow!(
                "{} uploads its input data from {expected}, which does not exist; SeBS's data \
                 lives in {DATA_REPOSITORY}: clone it and pass --data-dir (or set {DATA_DIR_ENV})",
                bench.name
            ),
        });
    }
    let validate = ValidateContext {
        data_dir: data_dir.clone(),
        data_root: root.clone(),
    };
    if !want_object && !want_nosql {
        let context = InputContext {
            data_dir,
            buckets: None,
        };
        let input = session
            .generate(size, &context, &NoStorage)
            .await
            .map_err(|e| input_failure(e, bench))?;
        return Ok(PreparedInput {
            input,
            env: BTreeMap::new(),
            storage: None,
            validate,
        });
    }

    let storage = match &args.storage {
        Some(path) => {
            let file = StorageFile::read(path).exit(Exit::BadInput, "invalid --storage file")?;
            let name = path.display().to_string();
            let mut storage = Storage::from_file(&file, &name)
                .await
                .map_err(|e| storage_failure(e, "failed to use the storage file"))?;
            storage
                .keep_only(&bench.name, want_object, want_nosql, &name)
                .map_err(|e| storage_failure(e, "wrong storage for this benchmark"))?;
            storage
        }
        None => embedded_storage(want_object, want_nosql).await?,
    };
    let resources = sebs_storage::prepare_resources(&storage, &bench.name, needs)
        .await
        .map_err(|e| {
            storage_failure(
                e,
                format!("failed to prepare the storage of {}", bench.name),
            )
        })?;
    let calls = Arc::new(with_progress_bar(InputCalls::new(
        storage.clone(),
        resources.clone(),
    )));
    let context = InputContext {
        data_dir,
        buckets: resources.buckets.clone(),
    };
    let generated = session.generate(size, &context, calls.as_ref()).await;
    let input = match generated {
        Ok(input) => input,
        Err(e) => {
            // The typed cause of a storage call's failure decides the exit code.
            if let Some(cause) = calls.take_failure() {
                return Err(storage_failure(
                    cause,
                    format!("failed to generate the input of {}", bench.name),
                ));
            }
            return Err(input_failure(e, bench));
        }
    };
    let progress = calls.progress();
    if progress.files_total > 0 {
        tracing::info!(
            "inputs of {} in bucket {}: {} uploaded, {} already there ({:.1} MB)",
            bench.name,
            resources
                .buckets
                .as_ref()
                .map(|b| b.bucket.as_str())
                .unwrap_or("-"),
            progress.files_total - progress.files_skipped,
            progress.files_skipped,
            progress.bytes_total as f64 / 1e6
        );
    }
    let env = sebs_storage::function_env(&storage, &resources);
    Ok(PreparedInput {
        input,
        env,
        storage: Some(InUse { storage, calls }),
        validate,
    })
}

/// SeBS's object storage block for `out.json`: SeBS's local platform always has one (its
/// `local stop` refuses a file without it), so a deployment that uses none gets the
/// `--storage` file's, else the embedded store's (started if need be).
pub async fn object_block(
    args: &InputArgs,
    prepared: &PreparedInput,
) -> Result<serde_json::Value, Failure> {
    if let Some(object) = prepared
        .storage
        .as_ref()
        .and_then(|s| s.storage.object.as_ref())
    {
        return Ok(serde_json::to_value(&object.config).unwrap_or_default());
    }
    let config = match &args.storage {
        Some(path) => {
            let file = StorageFile::read(path).exit(Exit::BadInput, "invalid --storage file")?;
            file.object
        }
        None => None,
    };
    let config = match config {
        Some(config) => config,
        // The benchmark itself needs no store: one that cannot start is no reason to fail.
        None => match embedded_storage(true, false).await {
            Ok(Storage {
                object: Some(o), ..
            }) => o.config,
            Ok(_) => return Ok(serde_json::Value::Null),
            Err(failure) => {
                tracing::warn!(
                    "{:#}; out.json gets no storage block, without which SeBS's own `sebs local \
                     stop` refuses it (`sebs-local stop` does not need it)",
                    failure.error
                );
                return Ok(serde_json::Value::Null);
            }
        },
    };
    Ok(serde_json::to_value(&config).unwrap_or_default())
}

/// The embedded stores `needs` asks for, found running or started, each announced in one
/// line that says where it is and how to stop it.
async fn embedded_storage(object: bool, nosql: bool) -> Result<Storage, Failure> {
    // The stores run on the home engine, and this host and its functions reach them on its
    // bridge or on this host's loopback.
    let home = setup::home().await?;
    setup::needs_local_home(&home, "an embedded store")?;
    let docker = home.docker;
    let mut file = StorageFile::default();
    let mut image = None;
    for (kind, wanted) in [(Kind::Object, object), (Kind::Nosql, nosql)] {
        if !wanted {
            continue;
        }
        let name = embedded::default_name(kind);
        let found = embedded::find(&docker, kind, &name)
            .await
            .map_err(|e| crate::storage::store_failure(e, kind))?;
        let (store, what) = match found {
            Some(store) => (store, "in use"),
            None => {
                let tag = match &image {
                    Some(tag) => tag,
                    None => image.insert(setup::store_image(&docker).await?),
                };
                let store = embedded::start(&docker, tag, &StoreOptions::embedded(kind))
                    .await
                    .map_err(|e| crate::storage::store_failure(e, kind))?;
                (store, "started")
            }
        };
        tracing::info!(
            "embedded {} {what} at {} (container {}, data in {}); stop it with \
             `sebs-local storage stop --embedded`",
            kind.describe(),
            store.address,
            store.container.name,
            store.data,
        );
        match kind {
            Kind::Object => file.object = Some(store.minio_config()),
            Kind::Nosql => file.nosql = Some(store.scylladb_config()),
        }
    }
    Storage::from_file(&file, "the embedded stores")
        .await
        .map_err(|e| storage_failure(e, "failed to use the embedded stores"))
}

/// Where the functions on `platform`'s remote engines reach the stores of `storage` that are
/// ours: a relay on this host's address toward each engine's host (see
/// [`sebs_storage::relay`]), given to the platform as those engines' variables. Functions on
/// local engines keep the container network's address; a store that is not ours (a
/// `--storage` file naming any endpoint) is given as it is.
pub async fn relay_to_remote_engines(
    platform: &Platform,
    storage: Option<&InUse>,
) -> Result<(), Failure> {
    let Some(storage) = storage.map(|s| &s.storage) else {
        return Ok(());
    };
    let remote: Vec<(usize, std::net::IpAddr)> = platform
        .engines()
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.local)
        .filter_map(|(i, e)| Some((i, e.host_ip?)))
        .collect();
    if remote.is_empty() {
        return Ok(());
    }
    let docker = platform.docker();
    let wanted = [
        (
            Kind::Object,
            sebs_wire::storage::MINIO_ADDRESS,
            storage.object.as_ref().map(|o| &o.config.instance_id),
        ),
        (
            Kind::Nosql,
            sebs_wire::storage::NOSQL_STORAGE_ENDPOINT,
            storage.nosql.as_ref().map(|n| &n.config.instance_id),
        ),
    ];
    let mut stores = Vec::new();
    for (kind, variable, id) in wanted {
        let Some(id) = id else { continue };
        let found = match id.as_str() {
            "" => Ok(None),
            id => embedded::find(docker, kind, id).await,
        };
        match found {
            Ok(Some(store)) => stores.push((variable, store)),
            Ok(None) | Err(EmbeddedError::Foreign { .. }) => tracing::warn!(
                "the {} store is not one of ours: functions on remote engines get its address \
                 as the storage file gives it",
                kind.describe()
            ),
            Err(e) => return Err(crate::storage::store_failure(e, kind)),
        }
    }
    if stores.is_empty() {
        return Ok(());
    }
    let image = setup::store_image(docker).await?;
    for (index, host) in remote {
        let relay_failure = |e: relay::RelayError| Failure {
            exit: Exit::Environment,
            error: anyhow::Error::new(e).context(format!(
                "failed to make the stores reachable from the engine at {}",
                platform.engines()[index].address
            )),
        };
        let ip = relay::route_source(host).map_err(relay_failure)?;
        let mut env = BTreeMap::new();
        for (variable, store) in &stores {
            let at = relay::ensure(docker, &image, store, ip)
                .await
                .map_err(relay_failure)?;
            env.insert(variable.to_string(), at.to_string());
        }
        platform.set_engine_env(index, env);
    }
    Ok(())
}

/// On a terminal, a progress bar over the bytes `input.py` uploads.
fn with_progress_bar(calls: InputCalls) -> InputCalls {
    if !std::io::stderr().is_terminal() {
        return calls;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "uploading inputs [{bar:30}] {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    calls.with_progress(move |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} files", p.files_done, p.files_total));
        if p.files_done == p.files_total {
            bar.finish_and_clear();
        }
    })
}

/// A storage failure with the exit code of its cause.
pub fn storage_failure(
    e: StorageError,
    context: impl std::fmt::Display + Send + Sync + 'static,
) -> Failure {
    let exit = if e.is_bad_input() {
        Exit::BadInput
    } else {
        Exit::Environment
    };
    Failure {
        exit,
        error: anyhow::Error::new(e).context(context),
    }
}

/// A failure of `input.py`: a host without `python3` is the environment's fault, anything
/// else the benchmark's.
pub fn input_failure(e: InputError, bench: &BenchmarkDir) -> Failure {
    Failure {
        exit: match e {
            InputError::Spawn { .. } | InputError::Pipe { .. } => Exit::Environment,
            _ => Exit::BadInput,
        },
        error: anyhow::Error::new(e).context(format!("failed to make the input of {}", bench.name)),
    }
}

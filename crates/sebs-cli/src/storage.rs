//! `sebs-local storage start|stop`: SeBS's storage commands, on our embedded stores.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use sebs_storage::embedded::{self, Kind, Removed, StoreOptions};
use sebs_storage::{RunningStore, StorageFile};

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start object storage (S3 API), NoSQL (DynamoDB API) or both, and write SeBS's storage
    /// file for `--storage` (and for SeBS's own `--storage-configuration`).
    Start {
        /// Which stores: object, nosql or all.
        which: Which,
        /// SeBS's storage configuration (its `configs/storage.json`): `mapped_port` and
        /// `data_volume` are used; without it, ports are picked and data goes to volumes.
        config: Option<PathBuf>,
        /// Where to write the storage file.
        #[arg(long)]
        output_json: PathBuf,
        /// Write SeBS's `remove_containers: true` into the file (SeBS's tools then remove
        /// the containers at stop instead of only stopping them); `storage stop` always
        /// removes them, and their data only with `--remove-data`.
        #[arg(long)]
        remove_containers: bool,
    },
    /// Stop and remove the stores a storage file lists (their data is kept unless
    /// `--remove-data`), or the embedded default ones with `--embedded`.
    Stop {
        /// `[object|nosql|all] FILE`, as SeBS takes them; `FILE` alone stops all.
        #[arg(num_args = 0..=2, value_name = "[WHICH] FILE")]
        args: Vec<String>,
        /// Stop the embedded stores that commands start on their own.
        #[arg(long, conflicts_with = "args")]
        embedded: bool,
        /// Remove the stores' data volumes too.
        #[arg(long)]
        remove_data: bool,
    },
}

/// Which stores a storage command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Object,
    Nosql,
    All,
}

impl Which {
    fn kinds(self) -> Vec<Kind> {
        match self {
            Which::Object => vec![Kind::Object],
            Which::Nosql => vec![Kind::Nosql],
            Which::All => vec![Kind::Object, Kind::Nosql],
        }
    }
}

pub async fn run(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Start {
            which,
            config,
            output_json,
            remove_containers,
        } => start(which, config.as_deref(), &output_json, remove_containers).await,
        Command::Stop {
            args,
            embedded,
            remove_data,
        } => stop(&args, embedded, remove_data).await,
    }
}

async fn start(
    which: Which,
    config: Option<&Path>,
    output: &Path,
    remove_containers: bool,
) -> Result<Exit, Failure> {
    let wanted = match config {
        Some(path) => {
            StorageFile::read(path).exit(Exit::BadInput, "invalid storage configuration")?
        }
        None => StorageFile::default(),
    };
    let cwd =
        std::env::current_dir().exit(Exit::Environment, "failed to read the current directory")?;
    let docker = setup::docker().await?;
    let image = setup::store_image(&docker).await?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    // What this command started, removed again if it fails (with the volume, when it is
    // one this command named; a volume the configuration names may hold the user's data):
    // without the file, nothing would find them.
    let mut started: Vec<(Kind, String, bool)> = Vec::new();
    let outcome = start_each(
        &docker,
        &image,
        &suffix,
        which,
        &wanted,
        &cwd,
        remove_containers,
        &mut started,
    )
    .await
    .and_then(|written| {
        written
            .write(output)
            .exit(Exit::Environment, "failed to write the storage file")
    });
    if let Err(failure) = outcome {
        for (kind, name, ours) in started.iter().rev() {
            if let Err(e) = embedded::remove(&docker, *kind, name, *ours).await {
                tracing::warn!(
                    "could not remove the {} store {name} again: {}",
                    kind.describe(),
                    sebs_wire::ErrorChain(&e)
                );
            }
        }
        return Err(failure);
    }
    tracing::info!(
        "wrote {}; use it with `--storage {}`, stop with `sebs-local storage stop {}`",
        output.display(),
        output.display(),
        output.display()
    );
    Ok(Exit::Ok)
}

/// Starts the stores `which` names (as `wanted` configures them) and returns the file that
/// lists them; each one started is pushed to `started` as soon as it runs, with whether its
/// data volume is one this command named.
#[allow(clippy::too_many_arguments)]
async fn start_each(
    docker: &sebs_container::Docker,
    image: &str,
    suffix: &str,
    which: Which,
    wanted: &StorageFile,
    cwd: &Path,
    remove_containers: bool,
    started: &mut Vec<(Kind, String, bool)>,
) -> Result<StorageFile, Failure> {
    let mut written = StorageFile {
        other: wanted.other.clone(),
        ..StorageFile::default()
    };
    for kind in which.kinds() {
        let name = format!("{}-{}", embedded::default_name(kind), &suffix[..8]);
        let (data_volume, mapped_port) = match kind {
            Kind::Object => wanted
                .object
                .as_ref()
                .map(|c| (c.data_volume.clone(), c.mapped_port))
                .unwrap_or_default(),
            Kind::Nosql => wanted
                .nosql
                .as_ref()
                .map(|c| (c.data_volume.clone(), c.mapped_port))
                .unwrap_or_default(),
        };
        let data = if data_volume.is_empty() {
            sebs_container::DataSource::Volume(format!("{name}-data"))
        } else {
            embedded::data_source(&data_volume, cwd)
                .exit(Exit::Environment, "failed to prepare the data directory")?
        };
        let options = StoreOptions {
            kind,
            name: name.clone(),
            data,
            publish_port: u16::try_from(mapped_port)
                .ok()
                .filter(|p| *p > 0)
                .unwrap_or(0),
            network: sebs_container::function::DEFAULT_NETWORK.to_string(),
            labels: Default::default(),
        };
        let store = embedded::start(docker, image, &options)
            .await
            .map_err(|e| store_failure(e, kind))?;
        started.push((kind, store.container.name.clone(), data_volume.is_empty()));
        log_store(&store, "started");
        match kind {
            Kind::Object => {
                let mut config = store.minio_config();
                config.remove_containers = remove_containers;
                if let Some(wanted) = &wanted.object {
                    config.other = wanted.other.clone();
                }
                written.object = Some(config);
            }
            Kind::Nosql => {
                let mut config = store.scylladb_config();
                config.remove_containers = remove_containers;
                if let Some(wanted) = &wanted.nosql {
                    config.other = wanted.other.clone();
                    config.cpus = wanted.cpus.clone();
                    config.memory = wanted.memory.clone();
                }
                written.nosql = Some(config);
            }
        }
    }
    Ok(written)
}

async fn stop(args: &[String], embedded: bool, remove_data: bool) -> Result<Exit, Failure> {
    let docker = setup::docker().await?;
    let targets: Vec<(Kind, String)> = if embedded {
        [Kind::Object, Kind::Nosql]
            .into_iter()
            .map(|k| (k, embedded::default_name(k)))
            .collect()
    } else {
        let (which, file) = match args {
            [file] => (Which::All, file),
            [which, file] => (
                <Which as clap::ValueEnum>::from_str(which, true)
                    .map_err(|_| anyhow::anyhow!("expected object, nosql or all, got {which:?}"))
                    .exit(Exit::BadInput, "invalid arguments")?,
                file,
            ),
            _ => {
                return Err(Failure {
                    exit: Exit::BadInput,
                    error: anyhow::anyhow!(
                        "name the storage file to stop (`storage stop [object|nosql|all] FILE`), \
                         or pass --embedded"
                    ),
                })
            }
        };
        let file =
            StorageFile::read(Path::new(file)).exit(Exit::BadInput, "invalid storage file")?;
        let mut targets = Vec::new();
        for kind in which.kinds() {
            let id = match kind {
                Kind::Object => file.object.as_ref().map(|c| c.instance_id.clone()),
                Kind::Nosql => file.nosql.as_ref().map(|c| c.instance_id.clone()),
            };
            match id {
                Some(id) if !id.is_empty() => targets.push((kind, id)),
                Some(_) => tracing::info!(
                    "the {} in the file is not a container of ours (no instance_id); nothing to stop",
                    kind.describe()
                ),
                None => {}
            }
        }
        targets
    };
    let mut stopped = 0;
    for (kind, name) in targets {
        match embedded::remove(&docker, kind, &name, remove_data)
            .await
            .map_err(|e| store_failure(e, kind))?
        {
            Removed::DataKept(data) => {
                stopped += 1;
                tracing::info!(
                    "stopped the {} store {name}; its data stays in {data}",
                    kind.describe()
                );
            }
            Removed::DataRemoved => {
                stopped += 1;
                tracing::info!(
                    "stopped the {} store {name} and removed its data",
                    kind.describe()
                );
            }
            Removed::Absent => tracing::info!("no {} store {name} runs", kind.describe()),
        }
    }
    if stopped == 0 {
        tracing::info!("nothing to stop");
    }
    Ok(Exit::Ok)
}

/// One line saying where a store is and how to stop it.
pub fn log_store(store: &RunningStore, what: &str) {
    tracing::info!(
        "{} {what}: {} at {} (container {}, data in {})",
        store.kind.describe(),
        store.version,
        store.address,
        store.container.name,
        store.data,
    );
}

/// An embedded store's failure with its exit code: a foreign container in the way is the
/// user's to move, anything else is the environment's.
pub fn store_failure(e: sebs_storage::EmbeddedError, kind: Kind) -> Failure {
    let exit = match &e {
        sebs_storage::EmbeddedError::Foreign { .. } => Exit::BadInput,
        _ => Exit::Environment,
    };
    Failure {
        exit,
        error: anyhow::Error::new(e)
            .context(format!("failed to run the {} store", kind.describe())),
    }
}

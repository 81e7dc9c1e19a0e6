//! The storage one command works with: which endpoints, the bucket and tables of a
//! benchmark, the functions' environment, and the storage calls of `input.py`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sebs_package::{BucketLayout, Needs, StorageCall, StorageCalls};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{MinioConfig, ScyllaDbConfig, StorageFile, NOSQL_TYPE};
use crate::dynamodb::{DynamoClient, DynamoError};
use crate::embedded::{host_reachable, Kind};
use crate::s3::{S3Client, S3Error};

/// Uploads of input files running at once.
const UPLOAD_CONCURRENCY: usize = 4;
/// SeBS's bucket names: `sebs-benchmarks-<resources id>`.
const BUCKET_PREFIX: &str = "sebs-benchmarks-";
/// SeBS's local resources ids: `local-` and 8 hex digits.
const RESOURCES_PREFIX: &str = "local-";

/// Storage that is not there or not usable.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(
        "{benchmark} needs {} but {source_name} has no `{section}` section{hint}",
        kind.describe()
    )]
    Missing {
        benchmark: String,
        kind: Kind,
        source_name: String,
        section: &'static str,
        hint: &'static str,
    },
    #[error("use {} at {address:?} from {source_name}: it is not host:port", kind.describe())]
    BadAddress {
        kind: Kind,
        source_name: String,
        address: String,
    },
    #[error(
        "use {} at {address} from {source_name}: functions run in containers, where a \
         loopback address is the container itself; give an address they reach (e.g. the \
         host's address on the Docker bridge, with the store listening there)",
        kind.describe()
    )]
    Loopback {
        kind: Kind,
        source_name: String,
        address: String,
    },
    /// input.py handed `upload_func` a file that is not there or cannot be read: its
    /// data (SeBS's benchmarks-data) is incomplete.
    #[error("read the input file {path} that input.py uploads")]
    InputFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hash the input file {path}")]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upload {key}: input.py asked for input prefix {index}, but {benchmark} has {count}")]
    NoPrefix {
        benchmark: String,
        key: String,
        index: usize,
        count: usize,
    },
    #[error(
        "write an item: {benchmark} allocated no table {table:?} (allocate_nosql() has {known})"
    )]
    NoTable {
        benchmark: String,
        table: String,
        known: String,
    },
}

impl StorageError {
    /// Whether the user's configuration is at fault (wrong keys, missing bucket or section)
    /// rather than the environment (a store that does not answer).
    pub fn is_bad_input(&self) -> bool {
        match self {
            StorageError::S3(e) => e.is_auth() || matches!(e.code(), Some("NoSuchBucket")),
            StorageError::Dynamo(e) => matches!(
                e.kind(),
                Some("UnrecognizedClientException" | "AccessDeniedException")
            ),
            StorageError::Missing { .. }
            | StorageError::BadAddress { .. }
            | StorageError::Loopback { .. }
            | StorageError::NoPrefix { .. }
            | StorageError::NoTable { .. }
            | StorageError::InputFile { .. } => true,
            StorageError::Hash { .. } => false,
        }
    }
}

/// An object store in use: SeBS's block (what functions and out.json get) and a client at
/// an address this host reaches.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    pub config: MinioConfig,
    pub client: S3Client,
}

/// A NoSQL store in use.
#[derive(Debug, Clone)]
pub struct NosqlStorage {
    pub config: ScyllaDbConfig,
    pub client: DynamoClient,
}

/// The storage of one command.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub object: Option<ObjectStorage>,
    pub nosql: Option<NosqlStorage>,
}

impl Storage {
    /// Clients for the endpoints a storage file names (ours, SeBS's `storage start`
    /// output, or one a user wrote for any S3/DynamoDB endpoint).
    pub async fn from_file(file: &StorageFile, source_name: &str) -> Result<Storage, StorageError> {
        let object = match &file.object {
            Some(config) => {
                reachable_by_functions(Kind::Object, &config.address, source_name)?;
                let address = host_address(
                    Kind::Object,
                    &config.address,
                    config.mapped_port,
                    source_name,
                )
                .await?;
                let client = S3Client::new(&address, &config.access_key, &config.secret_key);
                Some(ObjectStorage {
                    config: config.clone(),
                    client,
                })
            }
            None => None,
        };
        let nosql = match &file.nosql {
            Some(config) => {
                reachable_by_functions(Kind::Nosql, &config.address, source_name)?;
                let address = host_address(
                    Kind::Nosql,
                    &config.address,
                    config.mapped_port,
                    source_name,
                )
                .await?;
                let region = if config.region.is_empty() {
                    "None"
                } else {
                    &config.region
                };
                let client =
                    DynamoClient::new(&address, &config.access_key, &config.secret_key, region);
                Some(NosqlStorage {
                    config: config.clone(),
                    client,
                })
            }
            None => None,
        };
        Ok(Storage { object, nosql })
    }

    /// SeBS's storage file of what is in use.
    pub fn to_file(&self) -> StorageFile {
        StorageFile {
            object: self.object.as_ref().map(|o| o.config.clone()),
            nosql: self.nosql.as_ref().map(|n| n.config.clone()),
            other: Default::default(),
        }
    }

    /// Checks that what a benchmark needs is here, and drops what it does not use (its
    /// functions get no variables for it).
    pub fn keep_only(
        &mut self,
        benchmark: &str,
        object: bool,
        nosql: bool,
        source_name: &str,
    ) -> Result<(), StorageError> {
        if object && self.object.is_none() {
            return Err(StorageError::Missing {
                benchmark: benchmark.to_string(),
                kind: Kind::Object,
                source_name: source_name.to_string(),
                section: "object",
                hint: "; `sebs-local storage start object` makes one",
            });
        }
        if nosql && self.nosql.is_none() {
            return Err(StorageError::Missing {
                benchmark: benchmark.to_string(),
                kind: Kind::Nosql,
                source_name: source_name.to_string(),
                section: "nosql",
                hint: "; `sebs-local storage start nosql` makes one",
            });
        }
        if !object {
            self.object = None;
        }
        if !nosql {
            self.nosql = None;
        }
        Ok(())
    }
}

/// Refuses an address functions cannot reach from their containers: a loopback one.
fn reachable_by_functions(
    kind: Kind,
    address: &str,
    source_name: &str,
) -> Result<(), StorageError> {
    let host = match address.parse::<std::net::SocketAddr>() {
        Ok(addr) => {
            return if addr.ip().is_loopback() {
                Err(StorageError::Loopback {
                    kind,
                    source_name: source_name.to_string(),
                    address: address.to_string(),
                })
            } else {
                Ok(())
            }
        }
        Err(_) => address.rsplit_once(':').map_or(address, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Err(StorageError::Loopback {
            kind,
            source_name: source_name.to_string(),
            address: address.to_string(),
        });
    }
    Ok(())
}

/// Where this host reaches an endpoint given as SeBS's `address` and `mapped_port`.
async fn host_address(
    kind: Kind,
    address: &str,
    mapped_port: i64,
    source_name: &str,
) -> Result<String, StorageError> {
    let published = u16::try_from(mapped_port)
        .ok()
        .filter(|p| *p > 0)
        .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)));
    match address.parse::<std::net::SocketAddr>() {
        Ok(addr) => Ok(host_reachable(addr, published).await.to_string()),
        // A name (e.g. `minio.lab:9000`) is used as it is.
        Err(_)
            if address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            Ok(address.to_string())
        }
        Err(_) => match published {
            Some(p) if address.is_empty() => Ok(p.to_string()),
            _ => Err(StorageError::BadAddress {
                kind,
                source_name: source_name.to_string(),
                address: address.to_string(),
            }),
        },
    }
}

/// What one deployment of a benchmark uses in storage: SeBS's resources id, its bucket and
/// prefixes, and its tables (logical name → real name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub resources_id: String,
    pub benchmark: String,
    pub buckets: Option<BucketLayout>,
    pub tables: BTreeMap<String, String>,
}

/// SeBS's table name for a benchmark's table.
pub fn table_name(resources_id: &str, benchmark: &str, table: &str) -> String {
    format!("{BUCKET_PREFIX}{resources_id}-{benchmark}-{table}")
}

/// A new resources id, as SeBS makes them.
fn new_resources_id() -> String {
    format!(
        "{RESOURCES_PREFIX}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The resources id in a bucket name of ours (`sebs-benchmarks-local-1a2b3c4d`).
fn resources_id_of_bucket(bucket: &str) -> Option<&str> {
    let id = bucket.strip_prefix(BUCKET_PREFIX)?;
    let hex = id.strip_prefix(RESOURCES_PREFIX)?;
    (hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// The resources id in a table name of ours.
fn resources_id_of_table(table: &str) -> Option<&str> {
    let rest = table.strip_prefix(BUCKET_PREFIX)?;
    let id = rest.get(..RESOURCES_PREFIX.len() + 8)?;
    resources_id_of_bucket(&format!("{BUCKET_PREFIX}{id}")).map(|_| id)
}

/// Makes (or finds) what `benchmark` needs in `storage`: SeBS's one bucket per deployment,
/// reused when one of ours exists, and its tables, created before any function starts.
pub async fn prepare_resources(
    storage: &Storage,
    benchmark: &str,
    needs: &Needs,
) -> Result<Resources, StorageError> {
    let mut resources_id = None;
    if let Some(object) = &storage.object {
        let buckets = object.client.list_buckets().await?;
        resources_id = buckets
            .iter()
            .filter_map(|b| resources_id_of_bucket(b))
            .min()
            .map(str::to_string);
    }
    if resources_id.is_none() {
        if let (Some(nosql), true) = (&storage.nosql, needs.nosql()) {
            let tables = nosql.client.list_tables().await?;
            resources_id = tables
                .iter()
                .filter_map(|t| resources_id_of_table(t))
                .min()
                .map(str::to_string);
        }
    }
    let resources_id = resources_id.unwrap_or_else(new_resources_id);
    let buckets = match (&storage.object, needs.buckets) {
        (Some(object), Some(counts)) => {
            let bucket = format!("{BUCKET_PREFIX}{resources_id}");
            object.client.create_bucket(&bucket).await?;
            Some(BucketLayout::new(&bucket, benchmark, counts))
        }
        _ => None,
    };
    let mut tables = BTreeMap::new();
    if let Some(nosql) = &storage.nosql {
        for (table, keys) in &needs.tables {
            let name = table_name(&resources_id, benchmark, table);
            nosql
                .client
                .ensure_table(&name, &keys.primary_key, &keys.secondary_key)
                .await?;
            tables.insert(table.clone(), name);
        }
    }
    Ok(Resources {
        resources_id,
        benchmark: benchmark.to_string(),
        buckets,
        tables,
    })
}

/// The environment of a function container: SeBS's variables for the stores in `storage`
/// (see [`Storage::keep_only`]) and the benchmark's tables.
pub fn function_env(storage: &Storage, resources: &Resources) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let Some(object) = &storage.object {
        env.insert("MINIO_ADDRESS".into(), object.config.address.clone());
        env.insert("MINIO_ACCESS_KEY".into(), object.config.access_key.clone());
        env.insert("MINIO_SECRET_KEY".into(), object.config.secret_key.clone());
    }
    if let Some(nosql) = &storage.nosql {
        env.insert("NOSQL_STORAGE_TYPE".into(), NOSQL_TYPE.into());
        env.insert(
            "NOSQL_STORAGE_ENDPOINT".into(),
            nosql.config.address.clone(),
        );
        // A real DynamoDB endpoint needs real keys and region; SeBS's wrapper uses "None".
        for (name, value) in [
            ("NOSQL_STORAGE_ACCESS_KEY", &nosql.config.access_key),
            ("NOSQL_STORAGE_SECRET_KEY", &nosql.config.secret_key),
            ("NOSQL_STORAGE_REGION", &nosql.config.region),
        ] {
            env.insert(name.into(), value.clone());
        }
        for (logical, actual) in &resources.tables {
            env.insert(format!("NOSQL_STORAGE_TABLE_{logical}"), actual.clone());
        }
    }
    env
}

/// Progress of the uploads of one input, for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadProgress {
    pub files_total: usize,
    pub files_done: usize,
    /// Already in the bucket with the same content.
    pub files_skipped: usize,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

type ProgressFn = Arc<dyn Fn(UploadProgress) + Send + Sync>;

/// Answers `input.py`'s storage calls for one benchmark: uploads (concurrent, skipped when
/// the bucket holds the same bytes), NoSQL items, and the validators' downloads.
pub struct InputCalls {
    storage: Storage,
    resources: Resources,
    listed: tokio::sync::Mutex<HashMap<String, HashMap<String, (String, u64)>>>,
    uploads: Mutex<JoinSet<Result<(), StorageError>>>,
    limit: Arc<Semaphore>,
    progress: Arc<Mutex<UploadProgress>>,
    on_progress: Option<ProgressFn>,
    /// The first failure, kept typed for the caller's exit code.
    failure: Mutex<Option<StorageError>>,
}

impl InputCalls {
    pub fn new(storage: Storage, resources: Resources) -> InputCalls {
        InputCalls {
            storage,
            resources,
            listed: Default::default(),
            uploads: Mutex::new(JoinSet::new()),
            limit: Arc::new(Semaphore::new(UPLOAD_CONCURRENCY)),
            progress: Default::default(),
            on_progress: None,
            failure: Mutex::new(None),
        }
    }

    /// Calls `f` whenever an upload is queued, done or skipped.
    pub fn with_progress(mut self, f: impl Fn(UploadProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Arc::new(f));
        self
    }

    /// The first storage failure, typed (its message already reached `input.py`).
    pub fn take_failure(&self) -> Option<StorageError> {
        self.failure.lock().ok()?.take()
    }

    /// What was uploaded and skipped.
    pub fn progress(&self) -> UploadProgress {
        self.progress.lock().map(|p| *p).unwrap_or_default()
    }

    fn fail(&self, e: StorageError) -> String {
        let message = error_chain(&e);
        if let Ok(mut slot) = self.failure.lock() {
            slot.get_or_insert(e);
        }
        message
    }

    fn report(&self, change: impl FnOnce(&mut UploadProgress)) {
        report(&self.progress, self.on_progress.as_ref(), change);
    }

    async fn upload(&self, index: usize, key: &str, path: &Path) -> Result<(), StorageError> {
        let benchmark = &self.resources.benchmark;
        let (object, layout) = match (&self.storage.object, &self.resources.buckets) {
            (Some(o), Some(l)) => (o, l),
            _ => {
                return Err(StorageError::Missing {
                    benchmark: benchmark.clone(),
                    kind: Kind::Object,
                    source_name: "this command".into(),
                    section: "object",
                    hint: " (input.py called upload_func)",
                })
            }
        };
        let prefix = layout
            .input_prefixes
            .get(index)
            .ok_or_else(|| StorageError::NoPrefix {
                benchmark: benchmark.clone(),
                key: key.to_string(),
                index,
                count: layout.input_prefixes.len(),
            })?;
        let full_key = format!("{prefix}/{key}");
        let existing = {
            let mut listed = self.listed.lock().await;
            if !listed.contains_key(prefix) {
                let objects = object
                    .client
                    .list_objects(&layout.bucket, &format!("{prefix}/"))
                    .await?;
                listed.insert(
                    prefix.clone(),
                    objects
                        .into_iter()
                        .map(|o| (o.key, (o.etag, o.size)))
                        .collect(),
                );
            }
            listed.get(prefix).and_then(|m| m.get(&full_key)).cloned()
        };
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|source| StorageError::InputFile {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        self.report(|p| {
            p.files_total += 1;
            p.bytes_total += size;
        });
        let client = object.client.clone();
        let bucket = layout.bucket.clone();
        let path = path.to_path_buf();
        let limit = self.limit.clone();
        let progress = self.progress.clone();
        let on_progress = self.on_progress.clone();
        let task = async move {
            let _permit = limit.acquire_owned().await;
            let same = match existing {
                Some((etag, existing_size)) if existing_size == size => {
                    md5_of(&path).await? == etag
                }
                _ => false,
            };
            if !same {
                client.put_file(&bucket, &full_key, &path).await?;
            }
            report(&progress, on_progress.as_ref(), |p| {
                p.files_done += 1;
                p.bytes_done += size;
                if same {
                    p.files_skipped += 1;
                }
            });
            Ok(())
        };
        if let Ok(mut set) = self.uploads.lock() {
            set.spawn(task);
        }
        Ok(())
    }

    async fn nosql_put(
        &self,
        table: &str,
        item: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StorageError> {
        let benchmark = &self.resources.benchmark;
        let nosql = self
            .storage
            .nosql
            .as_ref()
            .ok_or_else(|| StorageError::Missing {
                benchmark: benchmark.clone(),
                kind: Kind::Nosql,
                source_name: "this command".into(),
                section: "nosql",
                hint: " (input.py called nosql_func)",
            })?;
        let actual = self
            .resources
            .tables
            .get(table)
            .ok_or_else(|| StorageError::NoTable {
                benchmark: benchmark.clone(),
                table: table.to_string(),
                known: format!("{:?}", self.resources.tables.keys().collect::<Vec<_>>()),
            })?;
        nosql.client.put_item(actual, item).await?;
        Ok(())
    }

    async fn download(&self, bucket: &str, key: &str, path: &Path) -> Result<(), StorageError> {
        let object = self
            .storage
            .object
            .as_ref()
            .ok_or_else(|| StorageError::Missing {
                benchmark: self.resources.benchmark.clone(),
                kind: Kind::Object,
                source_name: "this command".into(),
                section: "object",
                hint: " (validate_output called storage.download)",
            })?;
        object.client.get_file(bucket, key, path).await?;
        Ok(())
    }
}

fn report(
    progress: &Mutex<UploadProgress>,
    on_progress: Option<&ProgressFn>,
    change: impl FnOnce(&mut UploadProgress),
) {
    let now = match progress.lock() {
        Ok(mut p) => {
            change(&mut p);
            *p
        }
        Err(_) => return,
    };
    if let Some(f) = on_progress {
        f(now);
    }
}

impl StorageCalls for InputCalls {
    async fn call(&self, call: StorageCall) -> Result<(), String> {
        let result = match &call {
            StorageCall::Upload { index, key, path } => self.upload(*index, key, path).await,
            StorageCall::NosqlPut { table, item, .. } => self.nosql_put(table, item).await,
            StorageCall::Download { bucket, key, path } => self.download(bucket, key, path).await,
        };
        result.map_err(|e| self.fail(e))
    }

    async fn finish(&self) -> Result<(), String> {
        let mut set = match self.uploads.lock() {
            Ok(mut set) => std::mem::take(&mut *set),
            Err(_) => return Ok(()),
        };
        let mut first = None;
        while let Some(done) = set.join_next().await {
            if let Ok(Err(e)) = done {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(self.fail(e)),
            None => Ok(()),
        }
    }
}

/// The MD5 (hex) of a file, read on a blocking thread.
async fn md5_of(path: &Path) -> Result<String, StorageError> {
    let owned = path.to_path_buf();
    let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use md5::{Digest, Md5};
        use std::io::Read;
        let mut file = std::fs::File::open(&owned)?;
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
        }
        Ok(hex::encode(md5.finalize()))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r);
    hashed.map_err(|source| StorageError::Hash {
        path: path.to_path_buf(),
        source,
    })
}

/// An error and its causes on one line, as `input.py` sees them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_cannot_reach_a_loopback_store() {
        for address in [
            "127.0.0.1:9000",
            "[::1]:9000",
            "localhost:9000",
            "LOCALHOST:1",
        ] {
            let err = reachable_by_functions(Kind::Object, address, "s.json").unwrap_err();
            assert!(
                err.is_bad_input() && err.to_string().contains(address),
                "{err}"
            );
        }
        for address in ["172.17.0.1:9000", "minio.lab:9000", "10.0.0.5:8000"] {
            assert!(
                reachable_by_functions(Kind::Nosql, address, "s.json").is_ok(),
                "{address}"
            );
        }
    }

    #[test]
    fn resources_ids_come_back_from_names() {
        let check = |name: &str, expect: Option<&str>| {
            assert_eq!(resources_id_of_bucket(name), expect, "{name}");
        };
        check("sebs-benchmarks-local-1a2b3c4d", Some("local-1a2b3c4d"));
        check("sebs-benchmarks-local-1a2b3c4", None);
        check("sebs-benchmarks-aws-1a2b3c4d", None);
        check("other", None);
        let table = table_name("local-1a2b3c4d", "130.crud-api", "shopping_cart");
        assert_eq!(
            table,
            "sebs-benchmarks-local-1a2b3c4d-130.crud-api-shopping_cart"
        );
        assert_eq!(resources_id_of_table(&table), Some("local-1a2b3c4d"));
        assert_eq!(resources_id_of_table("sebs-benchmarks-local-zz"), None);
        let id = new_resources_id();
        assert_eq!(
            resources_id_of_bucket(&format!("{BUCKET_PREFIX}{id}")),
            Some(id.as_str())
        );
    }

    #[test]
    fn functions_get_sebs_variables_for_what_they_use() {
        let storage = Storage {
            object: Some(ObjectStorage {
                config: MinioConfig {
                    address: "172.17.0.2:9000".into(),
                    access_key: "ak".into(),
                    secret_key: "sk".into(),
                    ..MinioConfig::default()
                },
                client: S3Client::new("172.17.0.2:9000", "ak", "sk"),
            }),
            nosql: Some(NosqlStorage {
                config: ScyllaDbConfig {
                    address: "172.17.0.3:8000".into(),
                    ..ScyllaDbConfig::default()
                },
                client: DynamoClient::new("172.17.0.3:8000", "None", "None", "None"),
            }),
        };
        let mut resources = Resources {
            resources_id: "local-1a2b3c4d".into(),
            benchmark: "130.crud-api".into(),
            buckets: None,
            tables: BTreeMap::from([(
                "shopping_cart".to_string(),
                "sebs-benchmarks-local-1a2b3c4d-130.crud-api-shopping_cart".to_string(),
            )]),
        };
        let env = function_env(&storage, &resources);
        assert_eq!(env["NOSQL_STORAGE_TYPE"], "scylladb");
        assert_eq!(env["NOSQL_STORAGE_ENDPOINT"], "172.17.0.3:8000");
        assert_eq!(
            env["NOSQL_STORAGE_TABLE_shopping_cart"],
            "sebs-benchmarks-local-1a2b3c4d-130.crud-api-shopping_cart"
        );
        assert_eq!(env["MINIO_ADDRESS"], "172.17.0.2:9000");
        // What a benchmark does not use is dropped before its functions start.
        let mut storage = storage;
        storage.nosql = None;
        resources.tables.clear();
        resources.buckets = Some(BucketLayout::new("b", "210.thumbnailer", (1, 1)));
        let env = function_env(&storage, &resources);
        assert_eq!(env["MINIO_ADDRESS"], "172.17.0.2:9000");
        assert_eq!(env["MINIO_ACCESS_KEY"], "ak");
        assert_eq!(env["MINIO_SECRET_KEY"], "sk");
        assert!(!env.contains_key("NOSQL_STORAGE_TYPE"));
    }

    #[test]
    fn missing_sections_are_named() {
        let err = Storage::default()
            .keep_only("210.thumbnailer", true, false, "storage.json")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "210.thumbnailer needs object storage but storage.json has no `object` section; \
             `sebs-local storage start object` makes one"
        );
        assert!(err.is_bad_input());
    }
}

//! The object store behind the S3 API: object bytes in files named by random ids, metadata
//! (bucket, key, size, ETag, last-modified, content type, user metadata, file id) in SQLite.
//!
//! Layout of the data directory's `s3/`:
//! - `meta.sqlite`: buckets, objects, multipart uploads and their parts;
//! - `objects/<id>`: one file per object version that a row names;
//! - `uploads/<upload id>/<part number>`: parts of uploads in progress;
//! - `tmp/`: bodies being received; whatever is there at start is garbage.
//!
//! Keys never become paths, so `a` and `a/b` coexist and listings are ordered queries.
//! A write streams to a file in `tmp/` (hashed on the way), is renamed into `objects/`,
//! then committed with one metadata transaction; an overwritten object's file is removed
//! after that commit. Readers look a row up and open its file under the same lock the
//! writers commit under, so a reader keeps the version it found even when it is replaced
//! while it streams. Files are not fsynced: the store survives a restart of its process,
//! not a power cut.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::digest::{self, Hasher, InvalidDigest};
use super::list::{self, Entry, Page, Query};
use super::multipart::{self, CompletionError, NamedPart, StoredPart};
use super::names::{self, KeyError};

/// An error from a request body's stream (the client's side of an upload).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Bodies are written to disk in pieces of this size.
const WRITE_BUFFER: usize = 1 << 20;

/// Why a store operation failed. Messages read after "failed to" and name the bucket and
/// key involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("find bucket {bucket}: it does not exist")]
    NoSuchBucket { bucket: String },
    #[error("create bucket {bucket}: it exists already and is yours")]
    BucketExists { bucket: String },
    #[error("delete bucket {bucket}: it is not empty")]
    BucketNotEmpty { bucket: String },
    #[error("find {key} in bucket {bucket}: no such key")]
    NoSuchKey { bucket: String, key: String },
    #[error("find upload {upload_id} of {key} in bucket {bucket}: no such upload")]
    NoSuchUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    #[error("store an object in bucket {bucket}")]
    InvalidKey {
        bucket: String,
        #[source]
        source: KeyError,
    },
    #[error("complete the upload of {key} in bucket {bucket}")]
    Completion {
        bucket: String,
        key: String,
        #[source]
        source: CompletionError,
    },
    #[error(
        "store {key} in bucket {bucket}: received {received} bytes of the {expected} announced"
    )]
    IncompleteBody {
        bucket: String,
        key: String,
        received: u64,
        expected: u64,
    },
    #[error("store {key} in bucket {bucket}: the body's MD5 is not its Content-MD5")]
    BadDigest { bucket: String, key: String },
    #[error("store {key} in bucket {bucket}")]
    InvalidDigest {
        bucket: String,
        key: String,
        #[source]
        source: InvalidDigest,
    },
    #[error("receive {key} for bucket {bucket}")]
    Body {
        bucket: String,
        key: String,
        #[source]
        source: BodyError,
    },
    #[error("store {key} in bucket {bucket}: no space left on the device of {}", path.display())]
    Full {
        bucket: String,
        key: String,
        path: PathBuf,
    },
    #[error("{op} {key} of bucket {bucket} at {}", path.display())]
    Io {
        op: &'static str,
        bucket: String,
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("use the metadata database {}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("prepare the object store directory {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("run a blocking store task")]
    Task(#[source] tokio::task::JoinError),
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Unquoted.
    pub etag: String,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: i64,
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// What a client sets on an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub content_type: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// An upload's body: its stream, the length it announced and its `Content-MD5`.
pub struct Body<S> {
    pub stream: S,
    pub length: Option<u64>,
    pub content_md5: Option<String>,
}

/// A bucket as ListBuckets shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: i64,
}

/// An object opened for reading.
pub struct Opened {
    pub meta: ObjectMeta,
    pub file: std::fs::File,
    /// Where the file is, for error messages.
    pub path: PathBuf,
}

/// A stored part with its time, for ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub part: StoredPart,
    pub modified_ms: i64,
}

/// A multipart upload in progress, for ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub created_ms: i64,
}

/// The object store of one data directory.
pub struct Store {
    root: PathBuf,
    db_path: PathBuf,
    db: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    content_type TEXT,
    metadata TEXT NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    content_type TEXT,
    metadata TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
    upload TEXT NOT NULL,
    number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload, number)
) WITHOUT ROWID;
";

impl Store {
    /// Opens (creating when needed) the store under `data_dir/s3`, checks that it can
    /// write there, and removes what an earlier run left half-done.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let root = data_dir.join("s3");
        for dir in ["objects", "uploads", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        }
        // A directory we can create but not write (a read-only mount, a full disk) fails
        // here, at start, instead of at the first upload.
        let probe = root
            .join("tmp")
            .join(format!("probe-{}", std::process::id()));
        std::fs::write(&probe, b"probe")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|source| StoreError::Open {
                path: probe.clone(),
                source,
            })?;
        let db_path = root.join("meta.sqlite");
        let db_err = |source| StoreError::Db {
            path: db_path.clone(),
            source,
        };
        let conn = Connection::open(&db_path).map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        // WAL with NORMAL sync: a commit survives the process being killed; a power cut
        // may lose the last ones, as it may lose unsynced object files.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        let store = Store {
            root,
            db_path,
            db: Mutex::new(conn),
        };
        store.sweep()?;
        Ok(store)
    }

    /// Removes files no row names: bodies being received when the last run stopped, an
    /// object renamed into place whose commit never happened, an overwritten object's
    /// file, parts of uploads that are gone.
    fn sweep(&self) -> Result<(), StoreError> {
        let (files, uploads) = {
            let db = self.lock();
            let files = collect(&db, "SELECT file FROM objects").map_err(|e| self.db_err(e))?;
            let uploads = collect(&db, "SELECT id FROM uploads").map_err(|e| self.db_err(e))?;
            (files, uploads)
        };
        let mut removed = 0;
        for (dir, keep) in [
            ("tmp", HashSet::new()),
            ("objects", files),
            ("uploads", uploads),
        ] {
            let path = self.root.join(dir);
            let entries = std::fs::read_dir(&path).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let stale = entry.path();
                let result = if stale.is_dir() {
                    std::fs::remove_dir_all(&stale)
                } else {
                    std::fs::remove_file(&stale)
                };
                match result {
                    Ok(()) => removed += 1,
                    Err(e) => tracing::warn!("failed to remove {}: {e}", stale.display()),
                }
            }
        }
        if removed > 0 {
            tracing::info!("removed {removed} files an earlier run left unfinished");
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (SQLite
        // rolls it back), so the connection is still good.
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn db_err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.db_path.clone(),
            source,
        }
    }

    /// A database error met while storing `bucket/key`: a full disk is said so.
    fn db_write_err(&self, bucket: &str, key: &str, source: rusqlite::Error) -> StoreError {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full {
                bucket: bucket.into(),
                key: key.into(),
                path: self.db_path.clone(),
            };
        }
        self.db_err(source)
    }

    /// Runs `f` on the database on a blocking thread.
    async fn with_db<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store, &mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut db = store.lock();
            f(&store, &mut db)
        })
        .await
        .map_err(StoreError::Task)?
    }

    pub async fn create_bucket(self: &Arc<Self>, bucket: &str) -> Result<(), StoreError> {
        let bucket = bucket.to_string();
        self.with_db(move |store, db| {
            let inserted = db
                .execute(
                    "INSERT OR IGNORE INTO buckets (name, created_ms) VALUES (?1, ?2)",
                    params![bucket, now_ms()],
                )
                .map_err(|e| store.db_write_err(&bucket, "", e))?;
            if inserted == 0 {
                return Err(StoreError::BucketExists { bucket });
            }
            Ok(())
        })
        .await
    }

    pub async fn head_bucket(self: &Arc<Self>, bucket: &str) -> Result<(), StoreError> {
        let bucket = bucket.to_string();
        self.with_db(move |store, db| bucket_must_exist(store, db, &bucket))
            .await
    }

    pub async fn list_buckets(self: &Arc<Self>) -> Result<Vec<BucketInfo>, StoreError> {
        self.with_db(|store, db| {
            let mut stmt = db
                .prepare("SELECT name, created_ms FROM buckets ORDER BY name")
                .map_err(|e| store.db_err(e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(BucketInfo {
                        name: r.get(0)?,
                        created_ms: r.get(1)?,
                    })
                })
                .map_err(|e| store.db_err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| store.db_err(e))
        })
        .await
    }

    /// Deletes an empty bucket and any uploads still in progress in it.
    pub async fn delete_bucket(self: &Arc<Self>, bucket: &str) -> Result<(), StoreError> {
        let bucket = bucket.to_string();
        let uploads = self
            .with_db(move |store, db| {
                let tx = db.transaction().map_err(|e| store.db_err(e))?;
                bucket_must_exist(store, &tx, &bucket)?;
                let has_objects: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?1)",
                        [&bucket],
                        |r| r.get(0),
                    )
                    .map_err(|e| store.db_err(e))?;
                if has_objects {
                    return Err(StoreError::BucketNotEmpty { bucket });
                }
                let uploads: Vec<String> = {
                    let mut stmt = tx
                        .prepare("SELECT id FROM uploads WHERE bucket = ?1")
                        .map_err(|e| store.db_err(e))?;
                    let rows = stmt
                        .query_map([&bucket], |r| r.get(0))
                        .map_err(|e| store.db_err(e))?;
                    rows.collect::<Result<_, _>>()
                        .map_err(|e| store.db_err(e))?
                };
                for id in &uploads {
                    tx.execute("DELETE FROM parts WHERE upload = ?1", [id])
                        .map_err(|e| store.db_err(e))?;
                }
                tx.execute("DELETE FROM uploads WHERE bucket = ?1", [&bucket])
                    .map_err(|e| store.db_err(e))?;
                tx.execute("DELETE FROM buckets WHERE name = ?1", [&bucket])
                    .map_err(|e| store.db_err(e))?;
                tx.commit().map_err(|e| store.db_err(e))?;
                Ok(uploads)
            })
            .await?;
        for id in uploads {
            self.remove_upload_dir(&id).await;
        }
        Ok(())
    }

    /// Stores `body` as `bucket/key`, replacing any object of that key.
    pub async fn put<S, E>(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        body: Body<S>,
        attributes: Attributes,
    ) -> Result<ObjectMeta, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BodyError>,
    {
        let checked = async {
            names::check_key(key).map_err(|source| StoreError::InvalidKey {
                bucket: bucket.into(),
                source,
            })?;
            self.head_bucket(bucket).await
        }
        .await;
        if let Err(e) = checked {
            drain(body.stream).await;
            return Err(e);
        }
        let (id, received) = self.receive(bucket, key, body).await?;
        let meta = ObjectMeta {
            key: key.to_string(),
            size: received.length,
            etag: digest::etag(&received.md5),
            modified_ms: now_ms(),
            content_type: attributes.content_type,
            metadata: attributes.metadata,
        };
        self.commit(bucket, &id, meta, None).await
    }

    /// Receives a body into a new file in `tmp/`, checks its length and `Content-MD5`,
    /// and returns the file's id.
    async fn receive<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: Body<S>,
    ) -> Result<(String, Received), StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BodyError>,
    {
        let id = new_id();
        let path = self.root.join("tmp").join(&id);
        let outcome = receive_to(body.stream, &path).await;
        let fail = |e: StoreError| {
            let _ = std::fs::remove_file(&path);
            e
        };
        let received = match outcome {
            Ok(r) => r,
            Err(Receive::Body(source)) => {
                return Err(fail(StoreError::Body {
                    bucket: bucket.into(),
                    key: key.into(),
                    source,
                }))
            }
            Err(Receive::Write(source)) => {
                return Err(fail(io_err("write", bucket, key, &path, source)))
            }
        };
        if let Some(expected) = body.length {
            if received.length != expected {
                return Err(fail(StoreError::IncompleteBody {
                    bucket: bucket.into(),
                    key: key.into(),
                    received: received.length,
                    expected,
                }));
            }
        }
        if let Some(claimed) = &body.content_md5 {
            match digest::content_md5_matches(claimed, &received.md5) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(fail(StoreError::BadDigest {
                        bucket: bucket.into(),
                        key: key.into(),
                    }))
                }
                Err(source) => {
                    return Err(fail(StoreError::InvalidDigest {
                        bucket: bucket.into(),
                        key: key.into(),
                        source,
                    }))
                }
            }
        }
        Ok((id, received))
    }

    /// Moves the received file `id` into `objects/` and commits `meta` as the object of
    /// its key (ending the multipart upload `upload`, if any); then removes the file of the
    /// object it replaced.
    async fn commit(
        self: &Arc<Self>,
        bucket: &str,
        id: &str,
        meta: ObjectMeta,
        upload: Option<String>,
    ) -> Result<ObjectMeta, StoreError> {
        let tmp = self.root.join("tmp").join(id);
        let dest = self.root.join("objects").join(id);
        if let Err(source) = tokio::fs::rename(&tmp, &dest).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err("move into place", bucket, &meta.key, &dest, source));
        }
        let bucket_owned = bucket.to_string();
        let file = id.to_string();
        let committed = meta.clone();
        let upload_done = upload.clone();
        let result = self
            .with_db(move |store, db| {
                let bucket = bucket_owned;
                let werr = |e| store.db_write_err(&bucket, &committed.key, e);
                let tx = db.transaction().map_err(werr)?;
                bucket_must_exist(store, &tx, &bucket)?;
                let old: Option<String> = tx
                    .query_row(
                        "SELECT file FROM objects WHERE bucket = ?1 AND key = ?2",
                        params![bucket, committed.key],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(werr)?;
                tx.execute(
                    "INSERT OR REPLACE INTO objects
                     (bucket, key, size, etag, modified_ms, content_type, metadata, file)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        bucket,
                        committed.key,
                        committed.size as i64,
                        committed.etag,
                        committed.modified_ms,
                        committed.content_type,
                        metadata_json(&committed.metadata),
                        file
                    ],
                )
                .map_err(werr)?;
                if let Some(upload) = &upload_done {
                    tx.execute("DELETE FROM parts WHERE upload = ?1", [upload])
                        .map_err(werr)?;
                    tx.execute("DELETE FROM uploads WHERE id = ?1", [upload])
                        .map_err(werr)?;
                }
                tx.commit().map_err(werr)?;
                Ok(old)
            })
            .await;
        match result {
            Ok(old) => {
                if let Some(old) = old {
                    let old = self.root.join("objects").join(old);
                    if let Err(e) = tokio::fs::remove_file(&old).await {
                        tracing::warn!(
                            "failed to remove {} (replaced by a new version of {bucket}/{}): {e}",
                            old.display(),
                            meta.key
                        );
                    }
                }
                if let Some(upload) = upload {
                    self.remove_upload_dir(&upload).await;
                }
                Ok(meta)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&dest).await;
                Err(e)
            }
        }
    }

    pub async fn head(self: &Arc<Self>, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with_db(move |store, db| find_object(store, db, &bucket, &key).map(|(meta, _)| meta))
            .await
    }

    /// The object's metadata and its file, opened: the version found stays readable even
    /// when it is replaced or deleted while the caller reads it.
    pub async fn open_object(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
    ) -> Result<Opened, StoreError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.with_db(move |store, db| {
            let (meta, file) = find_object(store, db, &bucket, &key)?;
            // Opened under the lock writers commit under: the file cannot be removed
            // between the lookup and the open.
            let path = store.root.join("objects").join(file);
            let file = std::fs::File::open(&path)
                .map_err(|source| io_err("open", &bucket, &key, &path, source))?;
            Ok(Opened { meta, file, path })
        })
        .await
    }

    /// Deletes `bucket/key`; deleting a key that is not there succeeds, as in S3.
    pub async fn delete(self: &Arc<Self>, bucket: &str, key: &str) -> Result<(), StoreError> {
        let (bucket_owned, key_owned) = (bucket.to_string(), key.to_string());
        let old = self
            .with_db(move |store, db| {
                let (bucket, key) = (bucket_owned, key_owned);
                let werr = |e| store.db_write_err(&bucket, &key, e);
                let tx = db.transaction().map_err(werr)?;
                bucket_must_exist(store, &tx, &bucket)?;
                let old: Option<String> = tx
                    .query_row(
                        "DELETE FROM objects WHERE bucket = ?1 AND key = ?2 RETURNING file",
                        params![bucket, key],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(werr)?;
                tx.commit().map_err(werr)?;
                Ok(old)
            })
            .await?;
        if let Some(old) = old {
            let path = self.root.join("objects").join(old);
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(
                    "failed to remove {} (of deleted {bucket}/{key}): {e}",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// One page of a listing of `bucket`.
    pub async fn list(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: usize,
    ) -> Result<Page, StoreError> {
        let bucket = bucket.to_string();
        let prefix = prefix.to_string();
        let delimiter = delimiter.map(str::to_string);
        let after = after.map(str::to_string);
        self.with_db(move |store, db| {
            bucket_must_exist(store, db, &bucket)?;
            let query = Query {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                after: after.as_deref(),
                max_keys,
            };
            // Rows are fetched as the page needs them: the range starts at the prefix or
            // after the resume point, and `list::page` stops at the end of the prefix.
            let mut stmt = db
                .prepare(
                    "SELECT key, size, etag, modified_ms FROM objects
                     WHERE bucket = ?1 AND key >= ?2 AND key > ?3 ORDER BY key",
                )
                .map_err(|e| store.db_err(e))?;
            let rows = stmt
                .query_map(
                    params![bucket, prefix, after.as_deref().unwrap_or("")],
                    |r| {
                        Ok(Entry {
                            key: r.get(0)?,
                            size: r.get::<_, i64>(1)? as u64,
                            etag: r.get(2)?,
                            modified_ms: r.get(3)?,
                        })
                    },
                )
                .map_err(|e| store.db_err(e))?;
            let mut failed = None;
            let entries = rows.map_while(|row| match row {
                Ok(entry) => Some(entry),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            });
            let page = list::page(&query, entries);
            match failed {
                Some(e) => Err(store.db_err(e)),
                None => Ok(page),
            }
        })
        .await
    }

    /// Starts a multipart upload of `bucket/key` and returns its id.
    pub async fn create_upload(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        attributes: Attributes,
    ) -> Result<String, StoreError> {
        names::check_key(key).map_err(|source| StoreError::InvalidKey {
            bucket: bucket.into(),
            source,
        })?;
        let id = new_id();
        let dir = self.root.join("uploads").join(&id);
        tokio::fs::create_dir(&dir)
            .await
            .map_err(|source| io_err("prepare the upload of", bucket, key, &dir, source))?;
        let (bucket_owned, key_owned, upload) = (bucket.to_string(), key.to_string(), id.clone());
        let created = self
            .with_db(move |store, db| {
                let (bucket, key) = (bucket_owned, key_owned);
                bucket_must_exist(store, db, &bucket)?;
                db.execute(
                    "INSERT INTO uploads (id, bucket, key, content_type, metadata, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        upload,
                        bucket,
                        key,
                        attributes.content_type,
                        metadata_json(&attributes.metadata),
                        now_ms()
                    ],
                )
                .map_err(|e| store.db_write_err(&bucket, &key, e))?;
                Ok(())
            })
            .await;
        if let Err(e) = created {
            let _ = tokio::fs::remove_dir(&dir).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Stores part `number` of an upload (replacing an earlier upload of that part) and
    /// returns its ETag.
    pub async fn upload_part<S, E>(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Body<S>,
    ) -> Result<String, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BodyError>,
    {
        if let Err(e) = self.find_upload(bucket, key, upload_id).await {
            drain(body.stream).await;
            return Err(e);
        }
        let (id, received) = self.receive(bucket, key, body).await?;
        let tmp = self.root.join("tmp").join(&id);
        let dest = self
            .root
            .join("uploads")
            .join(upload_id)
            .join(number.to_string());
        if let Err(source) = tokio::fs::rename(&tmp, &dest).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            // The upload was aborted (its directory removed) while this part arrived.
            if source.kind() == io::ErrorKind::NotFound {
                return Err(StoreError::NoSuchUpload {
                    bucket: bucket.into(),
                    key: key.into(),
                    upload_id: upload_id.into(),
                });
            }
            return Err(io_err(
                "move into place a part of",
                bucket,
                key,
                &dest,
                source,
            ));
        }
        let etag = digest::etag(&received.md5);
        let (bucket_owned, key_owned, upload, part_etag) = (
            bucket.to_string(),
            key.to_string(),
            upload_id.to_string(),
            etag.clone(),
        );
        self.with_db(move |store, db| {
            let (bucket, key) = (bucket_owned, key_owned);
            let werr = |e| store.db_write_err(&bucket, &key, e);
            let tx = db.transaction().map_err(werr)?;
            upload_must_exist(store, &tx, &bucket, &key, &upload)?;
            tx.execute(
                "INSERT OR REPLACE INTO parts (upload, number, size, etag, modified_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![upload, number, received.length as i64, part_etag, now_ms()],
            )
            .map_err(werr)?;
            tx.commit().map_err(werr)
        })
        .await?;
        Ok(etag)
    }

    /// The upload's attributes and parts, or `NoSuchUpload`.
    async fn find_upload(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(Attributes, Vec<PartInfo>), StoreError> {
        let (bucket, key, upload) = (bucket.to_string(), key.to_string(), upload_id.to_string());
        self.with_db(move |store, db| {
            let attributes = upload_must_exist(store, db, &bucket, &key, &upload)?;
            let mut stmt = db
                .prepare(
                    "SELECT number, size, etag, modified_ms FROM parts
                     WHERE upload = ?1 ORDER BY number",
                )
                .map_err(|e| store.db_err(e))?;
            let rows = stmt
                .query_map([&upload], |r| {
                    Ok(PartInfo {
                        part: StoredPart {
                            number: r.get(0)?,
                            size: r.get::<_, i64>(1)? as u64,
                            etag: r.get(2)?,
                        },
                        modified_ms: r.get(3)?,
                    })
                })
                .map_err(|e| store.db_err(e))?;
            let parts = rows
                .collect::<Result<_, _>>()
                .map_err(|e| store.db_err(e))?;
            Ok((attributes, parts))
        })
        .await
    }

    /// The parts uploaded so far, in ascending order.
    pub async fn list_parts(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartInfo>, StoreError> {
        Ok(self.find_upload(bucket, key, upload_id).await?.1)
    }

    /// Uploads in progress in `bucket` whose key starts with `prefix`, by key then upload
    /// id, after the markers; at most `max`, and whether more follow.
    pub async fn list_uploads(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<(Vec<UploadInfo>, bool), StoreError> {
        let bucket = bucket.to_string();
        let prefix = prefix.to_string();
        let key_marker = key_marker.unwrap_or("").to_string();
        let upload_id_marker = upload_id_marker.unwrap_or("").to_string();
        self.with_db(move |store, db| {
            bucket_must_exist(store, db, &bucket)?;
            // Uploads of the marker's key come after the marker's upload id only when one
            // is given; otherwise the whole key is passed, as in S3.
            let mut stmt = db
                .prepare(
                    "SELECT key, id, created_ms FROM uploads
                     WHERE bucket = ?1 AND substr(key, 1, length(?2)) = ?2
                       AND (key > ?3 OR (key = ?3 AND ?4 != '' AND id > ?4))
                     ORDER BY key, id LIMIT ?5",
                )
                .map_err(|e| store.db_err(e))?;
            let rows = stmt
                .query_map(
                    params![bucket, prefix, key_marker, upload_id_marker, max as i64 + 1],
                    |r| {
                        Ok(UploadInfo {
                            key: r.get(0)?,
                            upload_id: r.get(1)?,
                            created_ms: r.get(2)?,
                        })
                    },
                )
                .map_err(|e| store.db_err(e))?;
            let mut uploads: Vec<UploadInfo> = rows
                .collect::<Result<_, _>>()
                .map_err(|e| store.db_err(e))?;
            let truncated = uploads.len() > max;
            uploads.truncate(max);
            Ok((uploads, truncated))
        })
        .await
    }

    /// Assembles the named parts into the object of the upload's key and ends the upload.
    pub async fn complete(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        upload_id: &str,
        named: &[NamedPart],
    ) -> Result<ObjectMeta, StoreError> {
        let (attributes, parts) = self.find_upload(bucket, key, upload_id).await?;
        let stored: Vec<StoredPart> = parts.into_iter().map(|p| p.part).collect();
        let chosen =
            multipart::select(named, &stored).map_err(|source| StoreError::Completion {
                bucket: bucket.into(),
                key: key.into(),
                source,
            })?;
        let etag =
            digest::multipart_etag(chosen.iter().map(|p| p.etag.as_str())).ok_or_else(|| {
                StoreError::Completion {
                    bucket: bucket.into(),
                    key: key.into(),
                    source: CompletionError::NoParts,
                }
            })?;
        let id = new_id();
        let tmp = self.root.join("tmp").join(&id);
        let part_dir = self.root.join("uploads").join(upload_id);
        let size = chosen.iter().map(|p| p.size).sum();
        let numbers: Vec<i32> = chosen.iter().map(|p| p.number).collect();
        let (b, k) = (bucket.to_string(), key.to_string());
        let assembled = tokio::task::spawn_blocking(move || {
            assemble(&part_dir, &numbers, &tmp).map_err(|(path, source)| {
                let _ = std::fs::remove_file(&tmp);
                io_err("assemble", &b, &k, &path, source)
            })
        })
        .await
        .map_err(StoreError::Task)?;
        assembled?;
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            etag,
            modified_ms: now_ms(),
            content_type: attributes.content_type,
            metadata: attributes.metadata,
        };
        self.commit(bucket, &id, meta, Some(upload_id.to_string()))
            .await
    }

    /// Ends an upload without an object.
    pub async fn abort(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        let (bucket_owned, key_owned, upload) =
            (bucket.to_string(), key.to_string(), upload_id.to_string());
        self.with_db(move |store, db| {
            let (bucket, key) = (bucket_owned, key_owned);
            let werr = |e| store.db_write_err(&bucket, &key, e);
            let tx = db.transaction().map_err(werr)?;
            upload_must_exist(store, &tx, &bucket, &key, &upload)?;
            tx.execute("DELETE FROM parts WHERE upload = ?1", [&upload])
                .map_err(werr)?;
            tx.execute("DELETE FROM uploads WHERE id = ?1", [&upload])
                .map_err(werr)?;
            tx.commit().map_err(werr)
        })
        .await?;
        self.remove_upload_dir(upload_id).await;
        Ok(())
    }

    async fn remove_upload_dir(&self, upload_id: &str) {
        let dir = self.root.join("uploads").join(upload_id);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("failed to remove {}: {e}", dir.display());
            }
        }
    }
}

/// A body received in full.
struct Received {
    length: u64,
    md5: [u8; 16],
}

enum Receive {
    Body(BodyError),
    Write(io::Error),
}

/// Streams `body` into a new file at `path`, hashing it on the way.
///
/// When a write fails (a full disk) the rest of the body is still read and dropped, so
/// that the client finishes sending and reads the error answer instead of finding its
/// connection reset mid-upload.
async fn receive_to<S, E>(mut body: S, path: &Path) -> Result<Received, Receive>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BodyError>,
{
    let file = match tokio::fs::File::create(path).await {
        Ok(f) => f,
        Err(e) => {
            drain(body).await;
            return Err(Receive::Write(e));
        }
    };
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Hasher::default();
    let mut length = 0u64;
    let mut write_error = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Receive::Body(e.into()))?;
        if write_error.is_some() {
            continue;
        }
        hasher.update(&chunk);
        length += chunk.len() as u64;
        if let Err(e) = out.write_all(&chunk).await {
            write_error = Some(e);
        }
    }
    if write_error.is_none() {
        if let Err(e) = out.flush().await {
            write_error = Some(e);
        }
    }
    match write_error {
        Some(e) => Err(Receive::Write(e)),
        None => Ok(Received {
            length,
            md5: hasher.finish(),
        }),
    }
}

/// Reads a body to its end, dropping it.
async fn drain<S, E>(mut body: S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    while let Some(Ok(_)) = body.next().await {}
}

/// Concatenates the part files `numbers` of `dir` into a new file `dest`; on failure, the
/// path that failed.
fn assemble(dir: &Path, numbers: &[i32], dest: &Path) -> Result<(), (PathBuf, io::Error)> {
    let mut out = std::fs::File::create(dest).map_err(|e| (dest.to_path_buf(), e))?;
    for number in numbers {
        let path = dir.join(number.to_string());
        let mut part = std::fs::File::open(&path).map_err(|e| (path.clone(), e))?;
        // Linux copies file to file in the kernel (copy_file_range).
        io::copy(&mut part, &mut out).map_err(|e| (dest.to_path_buf(), e))?;
    }
    Ok(())
}

/// An IO error on `bucket/key`; a full disk is said so.
fn io_err(op: &'static str, bucket: &str, key: &str, path: &Path, source: io::Error) -> StoreError {
    if matches!(
        source.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) {
        return StoreError::Full {
            bucket: bucket.into(),
            key: key.into(),
            path: path.to_path_buf(),
        };
    }
    StoreError::Io {
        op,
        bucket: bucket.into(),
        key: key.into(),
        path: path.to_path_buf(),
        source,
    }
}

fn bucket_must_exist(store: &Store, db: &Connection, bucket: &str) -> Result<(), StoreError> {
    let exists: bool = db
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM buckets WHERE name = ?1)",
            [bucket],
            |r| r.get(0),
        )
        .map_err(|e| store.db_err(e))?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NoSuchBucket {
            bucket: bucket.into(),
        })
    }
}

/// The upload's attributes, when it exists for this bucket and key.
fn upload_must_exist(
    store: &Store,
    db: &Connection,
    bucket: &str,
    key: &str,
    upload: &str,
) -> Result<Attributes, StoreError> {
    bucket_must_exist(store, db, bucket)?;
    let found: Option<(Option<String>, String)> = db
        .query_row(
            "SELECT content_type, metadata FROM uploads WHERE id = ?1 AND bucket = ?2 AND key = ?3",
            params![upload, bucket, key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| store.db_err(e))?;
    match found {
        Some((content_type, metadata)) => Ok(Attributes {
            content_type,
            metadata: parse_metadata(&metadata),
        }),
        None => Err(StoreError::NoSuchUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload.into(),
        }),
    }
}

/// The object's metadata and file id.
fn find_object(
    store: &Store,
    db: &Connection,
    bucket: &str,
    key: &str,
) -> Result<(ObjectMeta, String), StoreError> {
    let found = db
        .query_row(
            "SELECT size, etag, modified_ms, content_type, metadata, file FROM objects
             WHERE bucket = ?1 AND key = ?2",
            params![bucket, key],
            |r| {
                Ok((
                    ObjectMeta {
                        key: key.to_string(),
                        size: r.get::<_, i64>(0)? as u64,
                        etag: r.get(1)?,
                        modified_ms: r.get(2)?,
                        content_type: r.get(3)?,
                        metadata: parse_metadata(&r.get::<_, String>(4)?),
                    },
                    r.get(5)?,
                ))
            },
        )
        .optional()
        .map_err(|e| store.db_err(e))?;
    match found {
        Some(found) => Ok(found),
        None => {
            bucket_must_exist(store, db, bucket)?;
            Err(StoreError::NoSuchKey {
                bucket: bucket.into(),
                key: key.into(),
            })
        }
    }
}

fn collect(db: &Connection, sql: &str) -> Result<HashSet<String>, rusqlite::Error> {
    let mut stmt = db.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

fn metadata_json(metadata: &HashMap<String, String>) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".into())
}

fn parse_metadata(text: &str) -> HashMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time stored as milliseconds since the epoch.
pub fn time_of(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

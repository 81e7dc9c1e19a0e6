//! SeBS's storage configuration files, as `sebs storage start` reads and writes them and as
//! a deployment's `out.json` carries them: deliberate on-disk types of their own.
//!
//! The input (`configs/storage.json` of SeBS) and the output share one nesting:
//! `{"object": {"type": "minio", "minio": {...}}, "nosql": {"type": "scylladb", "scylladb":
//! {...}}}`; the output has every field filled. Keys we do not know are kept, so that a
//! file read and written again loses nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The object storage type SeBS's local platform speaks (any S3 API endpoint).
pub const OBJECT_TYPE: &str = "minio";
/// The NoSQL type SeBS's wrappers accept (any DynamoDB API endpoint).
pub const NOSQL_TYPE: &str = "scylladb";
/// The DynamoDB API port of SeBS's ScyllaDB (its Alternator), which ours keeps.
pub const ALTERNATOR_PORT: u16 = 8000;

/// A storage configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read storage configuration {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write storage configuration {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse storage configuration {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "use storage configuration {path}: {section}.type is {found:?}; sebs-local speaks \
         {expected:?} (the S3 API for object storage, the DynamoDB API for NoSQL)"
    )]
    UnknownType {
        path: PathBuf,
        section: &'static str,
        found: String,
        expected: &'static str,
    },
}

/// SeBS's `MinioConfig`: an S3 API endpoint and its keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinioConfig {
    /// `host:port` without scheme, where functions reach the store.
    #[serde(default)]
    pub address: String,
    /// The store's port published on the host (ours: on 127.0.0.1 only), or -1.
    #[serde(default = "minus_one")]
    pub mapped_port: i64,
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub secret_key: String,
    /// The container serving it, or "" for an endpoint we do not manage.
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub output_buckets: Vec<String>,
    #[serde(default)]
    pub input_buckets: Vec<String>,
    #[serde(default)]
    pub version: String,
    /// Where its data lives: a volume name or a host directory.
    #[serde(default)]
    pub data_volume: String,
    #[serde(default = "object_type", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub remove_containers: bool,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// SeBS's `ScyllaDBConfig`: a DynamoDB API endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScyllaDbConfig {
    #[serde(default)]
    pub address: String,
    #[serde(default = "minus_one")]
    pub mapped_port: i64,
    #[serde(default = "alternator_port")]
    pub alternator_port: i64,
    #[serde(default = "none_string")]
    pub access_key: String,
    #[serde(default = "none_string")]
    pub secret_key: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default = "none_string")]
    pub region: String,
    /// SeBS writes `cpus` and `memory` as given (`"750"` in its sample), so any JSON value.
    #[serde(default = "minus_one_value")]
    pub cpus: Value,
    #[serde(default = "minus_one_value")]
    pub memory: Value,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub data_volume: String,
    #[serde(default)]
    pub remove_containers: bool,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn minus_one() -> i64 {
    -1
}
fn minus_one_value() -> Value {
    Value::from(-1)
}
fn alternator_port() -> i64 {
    i64::from(ALTERNATOR_PORT)
}
fn none_string() -> String {
    "None".to_string()
}
fn object_type() -> String {
    OBJECT_TYPE.to_string()
}

impl Default for MinioConfig {
    fn default() -> Self {
        MinioConfig {
            address: String::new(),
            mapped_port: -1,
            access_key: String::new(),
            secret_key: String::new(),
            instance_id: String::new(),
            output_buckets: Vec::new(),
            input_buckets: Vec::new(),
            version: String::new(),
            data_volume: String::new(),
            kind: object_type(),
            remove_containers: false,
            other: Map::new(),
        }
    }
}

impl Default for ScyllaDbConfig {
    fn default() -> Self {
        ScyllaDbConfig {
            address: String::new(),
            mapped_port: -1,
            alternator_port: alternator_port(),
            access_key: none_string(),
            secret_key: none_string(),
            instance_id: String::new(),
            region: none_string(),
            cpus: minus_one_value(),
            memory: minus_one_value(),
            version: String::new(),
            data_volume: String::new(),
            remove_containers: false,
            other: Map::new(),
        }
    }
}

/// A whole storage file: either section may be missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageFile {
    pub object: Option<MinioConfig>,
    pub nosql: Option<ScyllaDbConfig>,
    /// Keys besides `object` and `nosql`, kept as they were.
    pub other: Map<String, Value>,
}

impl StorageFile {
    /// Reads a file in SeBS's nesting; a section of a type we do not speak is refused.
    pub fn read(path: &Path) -> Result<StorageFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        StorageFile::parse(&text, path)
    }

    /// Parses `text`, read from `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<StorageFile, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let Value::Object(mut top) = value else {
            return Err(parse_err("expected a JSON object".to_string()));
        };
        let object = match top.remove("object") {
            None | Some(Value::Null) => None,
            Some(section) => Some(section_of::<MinioConfig>(
                section,
                path,
                "object",
                OBJECT_TYPE,
            )?),
        };
        let nosql = match top.remove("nosql") {
            None | Some(Value::Null) => None,
            Some(section) => Some(section_of::<ScyllaDbConfig>(
                section, path, "nosql", NOSQL_TYPE,
            )?),
        };
        Ok(StorageFile {
            object,
            nosql,
            other: top,
        })
    }

    /// SeBS's nesting, as JSON.
    pub fn to_json(&self) -> Value {
        let mut top = self.other.clone();
        if let Some(object) = &self.object {
            top.insert(
                "object".into(),
                serde_json::json!({"type": OBJECT_TYPE, OBJECT_TYPE: object}),
            );
        }
        if let Some(nosql) = &self.nosql {
            top.insert(
                "nosql".into(),
                serde_json::json!({"type": NOSQL_TYPE, NOSQL_TYPE: nosql}),
            );
        }
        Value::Object(top)
    }

    /// Writes the file (pretty JSON, as SeBS does), replacing it atomically.
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        let write_err = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        text.push('\n');
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
        std::io::Write::write_all(&mut tmp, text.as_bytes()).map_err(write_err)?;
        tmp.persist(path).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

/// One section `{"type": T, T: {...}}`; its inner object may be missing (all defaults).
fn section_of<T: serde::de::DeserializeOwned + Default>(
    section: Value,
    path: &Path,
    name: &'static str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let Value::Object(mut section) = section else {
        return Err(parse_err(format!("`{name}` must be an object")));
    };
    let found = match section.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(parse_err(format!(
                "`{name}.type` must be a string, not {other}"
            )))
        }
        None => expected.to_string(),
    };
    if found != expected {
        return Err(ConfigError::UnknownType {
            path: path.to_path_buf(),
            section: name,
            found,
            expected,
        });
    }
    match section.remove(expected) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(inner) => serde_path_to_error::deserialize(inner)
            .map_err(|e| parse_err(format!("`{name}.{expected}.{}`: {}", e.path(), e.inner()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StorageFile, ConfigError> {
        StorageFile::parse(text, Path::new("storage.json"))
    }

    #[test]
    fn sebs_sample_config_parses_with_defaults() {
        // SeBS's configs/storage.json, as shipped.
        let file = parse(
            r#"{"object": {"type": "minio", "minio": {"mapped_port": 9011,
                 "version": "RELEASE.2024-07-16T23-46-41Z", "data_volume": "minio-volume"}},
                "nosql": {"type": "scylladb", "scylladb": {"mapped_port": 9012, "version": "6.0",
                 "cpus": 1, "memory": "750", "data_volume": "scylladb-volume"}}}"#,
        )
        .unwrap();
        let object = file.object.unwrap();
        assert_eq!(object.mapped_port, 9011);
        assert_eq!(object.data_volume, "minio-volume");
        assert_eq!(object.address, "");
        assert_eq!(object.kind, "minio");
        let nosql = file.nosql.unwrap();
        assert_eq!(nosql.alternator_port, 8000);
        assert_eq!(nosql.memory, Value::from("750"));
        assert_eq!(nosql.region, "None");
        assert_eq!(nosql.access_key, "None");
    }

    #[test]
    fn output_has_every_field_sebs_reads_and_round_trips() {
        let file = StorageFile {
            object: Some(MinioConfig {
                address: "172.17.0.2:9000".into(),
                mapped_port: 40001,
                access_key: "ak".into(),
                secret_key: "sk".into(),
                instance_id: "abc".into(),
                version: "sebs-store 0.1.0".into(),
                data_volume: "vol".into(),
                ..MinioConfig::default()
            }),
            nosql: Some(ScyllaDbConfig {
                address: "172.17.0.3:8000".into(),
                ..ScyllaDbConfig::default()
            }),
            other: Map::new(),
        };
        let json = file.to_json();
        let minio = &json["object"]["minio"];
        for key in [
            "address",
            "mapped_port",
            "access_key",
            "secret_key",
            "instance_id",
            "input_buckets",
            "output_buckets",
            "version",
            "data_volume",
            "type",
            "remove_containers",
        ] {
            assert!(
                minio.get(key).is_some(),
                "object.minio.{key} missing: {json}"
            );
        }
        let scylla = &json["nosql"]["scylladb"];
        for key in [
            "address",
            "mapped_port",
            "alternator_port",
            "access_key",
            "secret_key",
            "instance_id",
            "region",
            "cpus",
            "memory",
            "version",
            "data_volume",
            "remove_containers",
        ] {
            assert!(
                scylla.get(key).is_some(),
                "nosql.scylladb.{key} missing: {json}"
            );
        }
        assert_eq!(json["object"]["type"], "minio");
        assert_eq!(json["nosql"]["type"], "scylladb");
        let again = parse(&json.to_string()).unwrap();
        assert_eq!(again, file);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let check = |text: &str, expect: &str| {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{text}: {err}");
        };
        check("not json", "parse storage configuration storage.json");
        check("[]", "expected a JSON object");
        check(
            r#"{"object": {"type": "azure-blob"}}"#,
            r#"object.type is "azure-blob""#,
        );
        check(
            r#"{"object": {"type": "minio", "minio": {"mapped_port": "x"}}}"#,
            "`object.minio.mapped_port`",
        );
        // Sections may be missing; unknown top-level keys are kept.
        let file = parse(r#"{"nosql": {"type": "scylladb"}, "note": 1}"#).unwrap();
        assert!(file.object.is_none());
        assert_eq!(file.nosql.unwrap().address, "");
        assert_eq!(file.other["note"], 1);
    }
}

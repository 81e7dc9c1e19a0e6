//! What a function that uses SeBS's storage APIs is given: the environment that names the
//! stores (SeBS's variable names), and our `storage` and `nosql` modules with the client
//! libraries they import.
//!
//! The modules keep SeBS's API (`storage.storage.get_instance()`, `nosql.nosql.get_instance()`
//! and their methods) so that benchmarks run unchanged; they are written into the code
//! package's `function/` folder beside the benchmark's code (`from . import storage` in
//! Python, `require('./storage')` in Node.js), and their [`Package`]s installed with the
//! benchmark's own dependencies.

/// Object storage: `host:port` of the S3 endpoint (no scheme).
pub const MINIO_ADDRESS: &str = "MINIO_ADDRESS";
/// Object storage: the access key requests are signed with.
pub const MINIO_ACCESS_KEY: &str = "MINIO_ACCESS_KEY";
/// Object storage: the secret key requests are signed with.
pub const MINIO_SECRET_KEY: &str = "MINIO_SECRET_KEY";
/// NoSQL: the kind of store; SeBS's wrappers accept only [`NOSQL_TYPE_SCYLLADB`], ours also
/// `dynamodb`.
pub const NOSQL_STORAGE_TYPE: &str = "NOSQL_STORAGE_TYPE";
/// The [`NOSQL_STORAGE_TYPE`] SeBS's local platform sets (its store speaks DynamoDB's API).
pub const NOSQL_TYPE_SCYLLADB: &str = "scylladb";
/// NoSQL: `host:port` of the DynamoDB endpoint (the modules add `http://`).
pub const NOSQL_STORAGE_ENDPOINT: &str = "NOSQL_STORAGE_ENDPOINT";
/// NoSQL: `NOSQL_STORAGE_TABLE_<name>` holds the actual name of the benchmark's table
/// `<name>` (a key of its `allocate_nosql()`).
pub const NOSQL_STORAGE_TABLE_PREFIX: &str = "NOSQL_STORAGE_TABLE_";
/// NoSQL: the access key, for a real DynamoDB ("None" when unset, as SeBS sends).
pub const NOSQL_STORAGE_ACCESS_KEY: &str = "NOSQL_STORAGE_ACCESS_KEY";
/// NoSQL: the secret key, for a real DynamoDB ("None" when unset).
pub const NOSQL_STORAGE_SECRET_KEY: &str = "NOSQL_STORAGE_SECRET_KEY";
/// NoSQL: the region, for a real DynamoDB ("None" when unset).
pub const NOSQL_STORAGE_REGION: &str = "NOSQL_STORAGE_REGION";

/// A client library at the exact version the modules are tested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
}

impl Package {
    /// As a line of `requirements.txt`: `name==version`.
    pub fn pip_requirement(&self) -> String {
        format!("{}=={}", self.name, self.version)
    }

    /// As an argument of `npm install`: `name@version`.
    pub fn npm_spec(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One module of a code package and the libraries it imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wrapper {
    /// Its file name in the package's `function/` folder.
    pub file: &'static str,
    pub source: &'static str,
    pub packages: &'static [Package],
    /// The oldest language version its packages install and run on (boto3 1.44 needs
    /// Python 3.10, minio-py 7.2.20 Python 3.9, the AWS SDK 3.966 Node.js 18, the `minio`
    /// npm package and `stream.promises` Node.js 16).
    pub min_version: &'static str,
}

/// Whether language version `version` (e.g. `3.9`, `18`) is older than `min`, comparing
/// their dot-separated numbers; a part that is not a number counts as 0.
pub fn older_than(version: &str, min: &str) -> bool {
    let parts = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parts(version) < parts(min)
}

/// minio-py 7 (7.2.x): SeBS's Python wrapper's client; 7 removed `list_objects_v2`, ours
/// lists with `list_objects(..., recursive=True)`.
const MINIO_PY: Package = Package {
    name: "minio",
    version: "7.2.20",
};
/// boto3, for DynamoDB's API, as SeBS's Python wrapper.
const BOTO3: Package = Package {
    name: "boto3",
    version: "1.44.8",
};
/// The `minio` npm package, 8.x (Node.js 16 and later).
const MINIO_JS: Package = Package {
    name: "minio",
    version: "8.0.7",
};
/// The AWS SDK v3's DynamoDB client and document client: 3.966 is the last release that
/// supports Node.js 18 (later ones need 20), the version of our offline base image.
const AWS_SDK_DYNAMODB: Package = Package {
    name: "@aws-sdk/client-dynamodb",
    version: "3.966.0",
};
const AWS_SDK_LIB_DYNAMODB: Package = Package {
    name: "@aws-sdk/lib-dynamodb",
    version: "3.966.0",
};

/// Python's `storage` module.
pub const PYTHON_STORAGE: Wrapper = Wrapper {
    file: "storage.py",
    source: include_str!("../wrappers/python/storage.py"),
    packages: &[MINIO_PY],
    min_version: "3.9",
};
/// Python's `nosql` module.
pub const PYTHON_NOSQL: Wrapper = Wrapper {
    file: "nosql.py",
    source: include_str!("../wrappers/python/nosql.py"),
    packages: &[BOTO3],
    min_version: "3.10",
};
/// Node.js's `storage` module.
pub const NODEJS_STORAGE: Wrapper = Wrapper {
    file: "storage.js",
    source: include_str!("../wrappers/nodejs/storage.js"),
    packages: &[MINIO_JS],
    min_version: "16",
};
/// Node.js's `nosql` module.
pub const NODEJS_NOSQL: Wrapper = Wrapper {
    file: "nosql.js",
    source: include_str!("../wrappers/nodejs/nosql.js"),
    packages: &[AWS_SDK_DYNAMODB, AWS_SDK_LIB_DYNAMODB],
    min_version: "18",
};

/// The Python modules: object storage, then NoSQL.
pub const PYTHON_STORAGE_WRAPPERS: [Wrapper; 2] = [PYTHON_STORAGE, PYTHON_NOSQL];
/// The Node.js modules: object storage, then NoSQL.
pub const NODEJS_STORAGE_WRAPPERS: [Wrapper; 2] = [NODEJS_STORAGE, NODEJS_NOSQL];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(older_than("3.9", "3.10"));
        assert!(older_than("3.7", "3.9"));
        assert!(!older_than("3.10", "3.10"));
        assert!(!older_than("3.12", "3.9"));
        assert!(older_than("16", "18"));
        assert!(!older_than("20", "18"));
        // Every version a language offers has a wrapper that runs on the newest.
        for (language, wrappers) in [
            (crate::Language::Python, PYTHON_STORAGE_WRAPPERS),
            (crate::Language::Nodejs, NODEJS_STORAGE_WRAPPERS),
        ] {
            let newest = language.versions().last().unwrap();
            assert!(wrappers.iter().all(|w| !older_than(newest, w.min_version)));
            assert!(wrappers
                .iter()
                .all(|w| language.versions().contains(&w.min_version)));
        }
    }

    #[test]
    fn packages_are_pinned_exactly() {
        for wrapper in PYTHON_STORAGE_WRAPPERS
            .iter()
            .chain(&NODEJS_STORAGE_WRAPPERS)
        {
            assert!(!wrapper.packages.is_empty(), "{}", wrapper.file);
            for p in wrapper.packages {
                assert!(
                    p.version.split('.').count() == 3
                        && p.version.split('.').all(|n| n.parse::<u32>().is_ok()),
                    "{} pins {} loosely: {:?}",
                    wrapper.file,
                    p.name,
                    p.version
                );
                // The module imports what it declares.
                assert!(
                    wrapper.source.contains(p.name),
                    "{} does not use {}",
                    wrapper.file,
                    p.name
                );
            }
        }
        assert_eq!(MINIO_PY.pip_requirement(), "minio==7.2.20");
        assert_eq!(
            AWS_SDK_DYNAMODB.npm_spec(),
            "@aws-sdk/client-dynamodb@3.966.0"
        );
    }

    #[test]
    fn modules_read_the_variables_named_here() {
        for name in [MINIO_ADDRESS, MINIO_ACCESS_KEY, MINIO_SECRET_KEY] {
            assert!(PYTHON_STORAGE.source.contains(name), "{name}");
            assert!(NODEJS_STORAGE.source.contains(name), "{name}");
        }
        for name in [
            NOSQL_STORAGE_TYPE,
            NOSQL_TYPE_SCYLLADB,
            NOSQL_STORAGE_ENDPOINT,
            NOSQL_STORAGE_TABLE_PREFIX,
            NOSQL_STORAGE_ACCESS_KEY,
            NOSQL_STORAGE_SECRET_KEY,
            NOSQL_STORAGE_REGION,
        ] {
            assert!(PYTHON_NOSQL.source.contains(name), "{name}");
            assert!(NODEJS_NOSQL.source.contains(name), "{name}");
        }
    }
}

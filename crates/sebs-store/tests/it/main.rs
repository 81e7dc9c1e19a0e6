//! Integration tests of the `sebs-store` binary on 127.0.0.1, driven by the real client
//! libraries: boto3 and minio-py in a venv, the `minio` npm package and the AWS SDK v3,
//! installed once under the workspace's `target/` at the versions the function-side
//! wrappers pin. Those need `python3` (with venv), `node` and `npm`, and PyPI and npm the
//! first time ([`support::PYTHON_CLIENTS`], [`support::NODE_CLIENTS`]); the full-disk test
//! needs root and a mount namespace of its own.

mod dynamodb;
mod lifecycle;
mod s3;
mod support;
mod wrappers;

sebs_testkit::main!(
    s3::trials(),
    dynamodb::trials(),
    wrappers::trials(),
    lifecycle::trials(),
);

use serde_json::Value;

/// Checks every field of `expect` (a JSON object) against the same field of `got`.
pub fn expect_fields(what: &str, got: &Value, expect: Value) {
    let Value::Object(fields) = expect else {
        panic!("expectations are an object");
    };
    let mut wrong = Vec::new();
    for (name, want) in fields {
        if got[&name] != want {
            wrong.push(format!("  {name}: got {}, expected {want}", got[&name]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}:\n{}\nall it observed: {got:#}",
        wrong.join("\n")
    );
}

/// S3's ETag of `bytes` (the MD5, in hex, unquoted).
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

/// Whether `etag` is a multipart ETag of `parts` parts: 32 hex digits, `-`, the count.
pub fn is_multipart_etag(etag: &str, parts: usize) -> bool {
    let etag = etag.trim_matches('"');
    match etag.split_once('-') {
        Some((hash, count)) => {
            hash.len() == 32
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && count == parts.to_string()
        }
        None => false,
    }
}

/// Whether `key` is `<stem>.<8 hex digits><ext>`, as the wrappers' unique names are.
pub fn is_unique_name(key: &str, stem: &str, ext: &str) -> bool {
    key.strip_prefix(stem)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(ext))
        .is_some_and(|hex8| hex8.len() == 8 && hex8.bytes().all(|b| b.is_ascii_hexdigit()))
}

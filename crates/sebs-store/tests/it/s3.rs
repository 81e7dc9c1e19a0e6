//! The S3 server against boto3, minio-py and the `minio` npm package: buckets, put and get,
//! ranges, multipart uploads above 5 MiB, listings of a prefix, deletes, signatures.

use serde_json::json;

use crate::support::{self, Kind, Server, ACCESS_KEY, NODE_CLIENTS, PYTHON_CLIENTS, SECRET_KEY};
use crate::{expect_fields, is_multipart_etag, md5_hex};
use sebs_testkit::{trial, Trial};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(python_clients_speak_s3, PYTHON_CLIENTS),
        trial!(nodejs_minio_speaks_s3, NODE_CLIENTS),
    ]
}
/// The objects both scripts lay under `tree/` and beside it.
fn tree_listing(quoted: bool) -> serde_json::Value {
    let etag = |b: &[u8]| {
        if quoted {
            format!("\"{}\"", md5_hex(b))
        } else {
            md5_hex(b)
        }
    };
    json!([
        ["tree/a.txt", 1, etag(b"a")],
        ["tree/sub/b c+d.txt", 2, etag(b"bb")],
        ["tree/sub/deeper/e%f.txt", 3, etag(b"eee")],
    ])
}

fn python_clients_speak_s3() {
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::S3, data.path());
    let bucket = "sebs-python";
    let out = support::python(
        include_str!("clients/s3.py"),
        &[&server.address, bucket, scratch.path().to_str().unwrap()],
        &[("ACCESS_KEY", ACCESS_KEY), ("SECRET_KEY", SECRET_KEY)],
    )
    .json();
    let quoted = |b: &[u8]| format!("\"{}\"", md5_hex(b));
    let listing = tree_listing(true);
    let with_class: Vec<serde_json::Value> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|o| json!([o[0], o[1], o[2], "STANDARD"]))
        .collect();
    expect_fields(
        "boto3 and minio-py",
        &out,
        json!({
            "exists_before": false,
            "exists_after": true,
            "second_create": ["BucketAlreadyOwnedByYou", "BucketAlreadyOwnedByYou"],
            "location": null,
            "head_missing_bucket": "404",
            "put_missing_bucket": "NoSuchBucket",
            "get": {
                "body": "hello, sebs",
                "etag": quoted(b"hello, sebs"),
                "type": "text/plain",
                "metadata": {"origin": "boto3"},
                "length": 11,
            },
            "range": "sebs",
            "minio_range": "b",
            "minio_stat": [3, md5_hex(b"abc")],
            "empty": "",
            "missing_key": ["NoSuchKey", "NoSuchKey"],
            "overwritten": "second",
            "fget_md5": out["big_md5"],
            "small_parts": "EntityTooSmall",
            "wrong_part_etag": "InvalidPart",
            "after_abort": ["NoSuchUpload", "404"],
            // minio-py 7's recursive listing: complete names, sizes, ETags.
            "minio_recursive": tree_listing(false),
            "minio_top": [["tree/a.txt", false], ["tree/sub/", true]],
            "boto3_v2": {"pages": 2, "objects": with_class},
            "boto3_v1": {"keys": ["tree/a.txt"], "prefixes": ["tree/sub/"]},
            "boto3_v1_paged": ["tree", "tree-sibling/x", "tree/a.txt", "tree/sub/b c+d.txt", "tree/sub/deeper/e%f.txt"],
            "remove_objects_errors": [],
            "delete_objects": ["small/minio.bin"],
            "keys_after_deletes": [
                "big/boto3.bin", "big/low level.bin", "big/minio-py.bin", "small/empty",
                "small/hello.txt", "small/over", "tree/a.txt", "tree/sub/b c+d.txt",
                "tree/sub/deeper/e%f.txt",
            ],
            "delete_nonempty_bucket": "BucketNotEmpty",
            "buckets": [bucket],
            "wrong_secret": ["SignatureDoesNotMatch", "SignatureDoesNotMatch", "SignatureDoesNotMatch"],
            "unknown_access_key": "InvalidAccessKeyId",
            "forged_absent": "404",
        }),
    );
    // boto3 uploads 12 MiB in 8 MiB parts, minio-py in 5 MiB parts.
    for (key, parts) in [("big/boto3.bin", 2), ("big/minio-py.bin", 3)] {
        let got = &out["multipart"][key];
        assert_eq!(got["md5"], out["big_md5"], "{key} came back changed");
        assert_eq!(got["size"], 12 * 1024 * 1024 + 123, "{key}");
        let etag = got["etag"].as_str().unwrap();
        assert!(is_multipart_etag(etag, parts), "{key}: ETag {etag}");
    }
    let complete = &out["complete"];
    expect_fields(
        "CompleteMultipartUpload",
        complete,
        json!({
            "location": format!("http://{}/{bucket}/big/low%20level.bin", server.address),
            "bucket": bucket,
            "key": "big/low level.bin",
            "etag": complete["expected_etag"],
            "parts": [
                [1, 5 * 1024 * 1024, complete["part_etags"][0]],
                [2, 1000, complete["part_etags"][1]],
            ],
            "uploads": ["big/low level.bin"],
            "size": 5 * 1024 * 1024 + 1000,
            "after": "NoSuchUpload",
        }),
    );
}

fn nodejs_minio_speaks_s3() {
    let data = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::S3, data.path());
    let out = support::node(
        include_str!("clients/s3.js"),
        &[
            &server.address,
            "sebs-node",
            scratch.path().to_str().unwrap(),
        ],
        &[("ACCESS_KEY", ACCESS_KEY), ("SECRET_KEY", SECRET_KEY)],
    )
    .json();
    expect_fields(
        "minio-js",
        &out,
        json!({
            "exists_before": false,
            "exists_after": true,
            "second_create": "BucketAlreadyOwnedByYou",
            "get": "hello from node",
            "partial": "from",
            "missing_key": "NotFound",
            "fget_md5": out["big_md5"],
            "streamed": "streamed",
            "v2_recursive": tree_listing(false),
            "v1_recursive": tree_listing(false),
            "top": ["tree/a.txt", "tree/sub/"],
            "after_deletes": [
                "big/minio-js.bin", "small/hello.txt", "tree", "tree-sibling/x",
                "tree/sub/b c+d.txt", "tree/sub/deeper/e%f.txt",
            ],
            "wrong_secret": "SignatureDoesNotMatch",
        }),
    );
    assert_eq!(out["big"]["size"], 12 * 1024 * 1024 + 7);
    let etag = out["big"]["etag"].as_str().unwrap();
    assert!(is_multipart_etag(etag, 3), "5 MiB parts: ETag {etag}");
}

"""Drives the S3 server with boto3 and minio-py as SeBS's code and benchmarks use them, and
prints what it observed as one JSON line. Usage: s3.py ENDPOINT BUCKET SCRATCH_DIR."""

import hashlib
import io
import json
import os
import sys

import boto3
import botocore
import minio
from botocore.config import Config
from minio.deleteobjects import DeleteObject

endpoint, bucket, scratch = sys.argv[1:4]
ak, sk = os.environ["ACCESS_KEY"], os.environ["SECRET_KEY"]


def boto3_client(secret=sk, access=ak):
    return boto3.client(
        "s3",
        endpoint_url="http://" + endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


s3 = boto3_client()
mc = minio.Minio(endpoint, access_key=ak, secret_key=sk, secure=False)
out = {}


def code(call):
    """The S3 error code of `call`, or None when it succeeds."""
    try:
        call()
        return None
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    except minio.error.S3Error as e:
        return e.code


# Buckets.
out["exists_before"] = mc.bucket_exists(bucket)
s3.create_bucket(Bucket=bucket)
out["exists_after"] = mc.bucket_exists(bucket)
out["second_create"] = [
    code(lambda: s3.create_bucket(Bucket=bucket)),
    code(lambda: mc.make_bucket(bucket)),
]
out["location"] = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
out["head_missing_bucket"] = code(lambda: s3.head_bucket(Bucket="no-such-bucket"))
out["put_missing_bucket"] = code(
    lambda: s3.put_object(Bucket="no-such-bucket", Key="k", Body=b"x" * 100000)
)

# Put and get, with both clients.
s3.put_object(
    Bucket=bucket,
    Key="small/hello.txt",
    Body=b"hello, sebs",
    ContentType="text/plain",
    Metadata={"origin": "boto3"},
)
got = s3.get_object(Bucket=bucket, Key="small/hello.txt")
out["get"] = {
    "body": got["Body"].read().decode(),
    "etag": got["ETag"],
    "type": got["ContentType"],
    "metadata": got["Metadata"],
    "length": got["ContentLength"],
}
out["range"] = s3.get_object(Bucket=bucket, Key="small/hello.txt", Range="bytes=7-10")[
    "Body"
].read().decode()
mc.put_object(bucket, "small/minio.bin", io.BytesIO(b"abc"), 3)
r = mc.get_object(bucket, "small/minio.bin", offset=1, length=1)
out["minio_range"] = r.read().decode()
r.close()
r.release_conn()
stat = mc.stat_object(bucket, "small/minio.bin")
out["minio_stat"] = [stat.size, stat.etag]
mc.put_object(bucket, "small/empty", io.BytesIO(b""), 0)
out["empty"] = s3.get_object(Bucket=bucket, Key="small/empty")["Body"].read().decode()
out["missing_key"] = [
    code(lambda: s3.get_object(Bucket=bucket, Key="small/none")),
    code(lambda: mc.stat_object(bucket, "small/none")),
]
# Overwriting a key serves the new bytes.
s3.put_object(Bucket=bucket, Key="small/over", Body=b"first")
s3.put_object(Bucket=bucket, Key="small/over", Body=b"second")
out["overwritten"] = s3.get_object(Bucket=bucket, Key="small/over")["Body"].read().decode()

# Multipart: a file above 5 MiB with each client (boto3 splits above 8 MiB in 8 MiB parts,
# minio-py above 5 MiB in 5 MiB parts).
data = os.urandom(12 * 1024 * 1024 + 123)
path = os.path.join(scratch, "big.bin")
with open(path, "wb") as f:
    f.write(data)
out["big_md5"] = hashlib.md5(data).hexdigest()
s3.upload_file(path, bucket, "big/boto3.bin")
mc.fput_object(bucket, "big/minio-py.bin", path)
out["multipart"] = {}
for key in ["big/boto3.bin", "big/minio-py.bin"]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    head = s3.head_object(Bucket=bucket, Key=key)
    out["multipart"][key] = {
        "md5": hashlib.md5(body).hexdigest(),
        "etag": head["ETag"],
        "size": head["ContentLength"],
    }
mc.fget_object(bucket, "big/minio-py.bin", os.path.join(scratch, "down", "big.bin"))
with open(os.path.join(scratch, "down", "big.bin"), "rb") as f:
    out["fget_md5"] = hashlib.md5(f.read()).hexdigest()

# The calls behind a multipart upload, one by one.
key = "big/low level.bin"
five = 5 * 1024 * 1024
up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
p1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=data[:five])
p2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=data[five : five + 1000])
listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=up)["Parts"]
uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="big/")["Uploads"]
done = s3.complete_multipart_upload(
    Bucket=bucket,
    Key=key,
    UploadId=up,
    MultipartUpload={
        "Parts": [
            {"PartNumber": 1, "ETag": p1["ETag"]},
            {"PartNumber": 2, "ETag": p2["ETag"]},
        ]
    },
)
part_md5s = hashlib.md5(data[:five]).digest() + hashlib.md5(data[five : five + 1000]).digest()
out["complete"] = {
    "location": done.get("Location"),
    "bucket": done.get("Bucket"),
    "key": done.get("Key"),
    "etag": done.get("ETag"),
    "expected_etag": '"{}-2"'.format(hashlib.md5(part_md5s).hexdigest()),
    "parts": [[p["PartNumber"], p["Size"], p["ETag"]] for p in listed],
    "part_etags": [p1["ETag"], p2["ETag"]],
    "uploads": [u["Key"] for u in uploads],
    "size": s3.head_object(Bucket=bucket, Key=key)["ContentLength"],
    "after": code(lambda: s3.list_parts(Bucket=bucket, Key=key, UploadId=up)),
}
up = s3.create_multipart_upload(Bucket=bucket, Key="big/aborted.bin")["UploadId"]
s3.upload_part(Bucket=bucket, Key="big/aborted.bin", UploadId=up, PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket=bucket, Key="big/aborted.bin", UploadId=up)
out["after_abort"] = [
    code(lambda: s3.upload_part(Bucket=bucket, Key="big/aborted.bin", UploadId=up, PartNumber=2, Body=b"y")),
    code(lambda: s3.head_object(Bucket=bucket, Key="big/aborted.bin")),
]
up = s3.create_multipart_upload(Bucket=bucket, Key="big/small-parts.bin")["UploadId"]
small = [
    s3.upload_part(Bucket=bucket, Key="big/small-parts.bin", UploadId=up, PartNumber=n, Body=b"z")["ETag"]
    for n in (1, 2)
]
out["small_parts"] = code(
    lambda: s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big/small-parts.bin",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), small)]},
    )
)
out["wrong_part_etag"] = code(
    lambda: s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big/small-parts.bin",
        UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]},
    )
)
s3.abort_multipart_upload(Bucket=bucket, Key="big/small-parts.bin", UploadId=up)

# Listings of a prefix, recursive and by delimiter, paged.
tree = {
    "tree/a.txt": b"a",
    "tree/sub/b c+d.txt": b"bb",
    "tree/sub/deeper/e%f.txt": b"eee",
    "tree-sibling/x": b"x",
    "tree": b"a key that is not under tree/",
}
for k, v in tree.items():
    s3.put_object(Bucket=bucket, Key=k, Body=v)
out["minio_recursive"] = [
    [o.object_name, o.size, o.etag]
    for o in mc.list_objects(bucket, prefix="tree/", recursive=True)
]
out["minio_top"] = [[o.object_name, o.is_dir] for o in mc.list_objects(bucket, prefix="tree/")]
pages = s3.get_paginator("list_objects_v2").paginate(
    Bucket=bucket, Prefix="tree/", PaginationConfig={"PageSize": 2}
)
pages = list(pages)
out["boto3_v2"] = {
    "pages": len(pages),
    "objects": [
        [o["Key"], o["Size"], o["ETag"], o["StorageClass"]]
        for p in pages
        for o in p.get("Contents", [])
    ],
}
v1 = s3.list_objects(Bucket=bucket, Prefix="tree/", Delimiter="/")
out["boto3_v1"] = {
    "keys": [o["Key"] for o in v1.get("Contents", [])],
    "prefixes": [p["Prefix"] for p in v1.get("CommonPrefixes", [])],
}
v1_pages = list(
    s3.get_paginator("list_objects").paginate(
        Bucket=bucket, Prefix="tree", PaginationConfig={"PageSize": 1}
    )
)
out["boto3_v1_paged"] = [o["Key"] for p in v1_pages for o in p.get("Contents", [])]

# Deletes.
mc.remove_object(bucket, "tree-sibling/x")
out["remove_objects_errors"] = [
    str(e) for e in mc.remove_objects(bucket, [DeleteObject("tree"), DeleteObject("never-was")])
]
deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "small/minio.bin"}]})
out["delete_objects"] = [d["Key"] for d in deleted.get("Deleted", [])]
out["keys_after_deletes"] = [o.object_name for o in mc.list_objects(bucket, recursive=True)]
out["delete_nonempty_bucket"] = code(lambda: s3.delete_bucket(Bucket=bucket))
s3.create_bucket(Bucket=bucket + "-gone")
s3.delete_bucket(Bucket=bucket + "-gone")
out["buckets"] = [b.name for b in mc.list_buckets()]

# Signatures are checked.
out["wrong_secret"] = [
    code(lambda: boto3_client(secret=sk + "x").list_objects_v2(Bucket=bucket)),
    code(lambda: list(minio.Minio(endpoint, access_key=ak, secret_key=sk + "x", secure=False).list_objects(bucket))),
    code(lambda: boto3_client(secret=sk + "x").put_object(Bucket=bucket, Key="forged", Body=b"x")),
]
out["unknown_access_key"] = code(lambda: boto3_client(access="nobody").list_buckets())
out["forged_absent"] = code(lambda: s3.head_object(Bucket=bucket, Key="forged"))
print(json.dumps(out))

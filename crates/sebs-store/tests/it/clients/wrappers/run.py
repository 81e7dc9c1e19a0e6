"""Lays the inputs into the bucket with minio-py, calls the function in `function/` as the
worker would, checks what it uploaded with minio-py, and prints the result as one JSON
line. Usage: run.py BUCKET CART SCRATCH_DIR."""

import io
import json
import os
import sys

import minio

bucket, cart, scratch = sys.argv[1:4]
raw = minio.Minio(
    os.environ["MINIO_ADDRESS"],
    access_key=os.environ["MINIO_ACCESS_KEY"],
    secret_key=os.environ["MINIO_SECRET_KEY"],
    secure=False,
)
raw.make_bucket(bucket)
inputs = {
    "in/photo.jpg": os.urandom(300 * 1024),
    "in/acmart/acmart.cls": b"\\ProvidesClass{acmart}" * 100,
    "in/acmart/doc/guide one.tex": b"guide",
    "in/acmart/doc/deep/x+y.bib": b"@misc{}",
    "in/acmart-other/not-this": b"not under in/acmart/",
    "in/dna.fasta": b">seq\nACGT\n",
}
for key, data in inputs.items():
    raw.put_object(bucket, key, io.BytesIO(data), len(data))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from function import function  # noqa: E402

result = function.handler(
    {"bucket": bucket, "input": "in", "output": "out", "scratch": scratch, "cart": cart}
)
result["archive_stored_size"] = raw.stat_object(bucket, result["archive_key"]).size
result["outputs"] = sorted(o.object_name for o in raw.list_objects(bucket, prefix="out/", recursive=True))

# Without configuration: storage fails at first use, nosql when made, each saying why.
from function import nosql, storage  # noqa: E402

for name in ("MINIO_ADDRESS", "NOSQL_STORAGE_TYPE"):
    del os.environ[name]
unconfigured = storage.storage()
try:
    unconfigured.download_stream(bucket, "in/dna.fasta")
except Exception as e:
    result["storage_unconfigured"] = "{}: {}".format(type(e).__name__, e)
try:
    nosql.nosql()
except Exception as e:
    result["nosql_unconfigured"] = "{}: {}".format(type(e).__name__, e)
print(json.dumps(result))

"""Writes objects and an unfinished upload (write), or reads them back (read), with boto3;
prints what it observed as one JSON line. Usage: persist.py ENDPOINT write|read."""

import json
import os
import sys

import boto3
from botocore.config import Config

endpoint, mode = sys.argv[1:3]
s3 = boto3.client(
    "s3",
    endpoint_url="http://" + endpoint,
    aws_access_key_id=os.environ["ACCESS_KEY"],
    aws_secret_access_key=os.environ["SECRET_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),
)
bucket = "persist"
out = {}
if mode == "write":
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a", Body=b"first")
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"under a/")
    # An overwrite, so that the first version's file is gone from the data directory.
    s3.put_object(Bucket=bucket, Key="a", Body=b"second")
    up = s3.create_multipart_upload(Bucket=bucket, Key="unfinished")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="unfinished", UploadId=up, PartNumber=1, Body=b"part")
else:
    out["buckets"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    out["objects"] = [
        [o["Key"], o["Size"]] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    ]
    out["a"] = s3.get_object(Bucket=bucket, Key="a")["Body"].read().decode()
    out["a/b"] = s3.get_object(Bucket=bucket, Key="a/b")["Body"].read().decode()
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    out["uploads"] = [u["Key"] for u in uploads]
    out["parts"] = [
        [p["PartNumber"], p["Size"]]
        for u in uploads
        for p in s3.list_parts(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])["Parts"]
    ]
print(json.dumps(out))

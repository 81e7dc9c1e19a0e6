"""Uploads more than the disk holds, with boto3 (one PUT) and minio-py (multipart), then a
small object; prints the errors and what the bucket holds as one JSON line.
Usage: full.py ENDPOINT."""

import io
import json
import os
import sys

import boto3
import botocore
import minio
from botocore.config import Config

endpoint = sys.argv[1]
ak, sk = os.environ["ACCESS_KEY"], os.environ["SECRET_KEY"]
s3 = boto3.client(
    "s3",
    endpoint_url="http://" + endpoint,
    aws_access_key_id=ak,
    aws_secret_access_key=sk,
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
mc = minio.Minio(endpoint, access_key=ak, secret_key=sk, secure=False)
bucket = "sebs-full"
s3.create_bucket(Bucket=bucket)
big = os.urandom(6 * 1024 * 1024)
out = {}
try:
    s3.put_object(Bucket=bucket, Key="big/too-big.bin", Body=big)
    out["boto3"] = None
except botocore.exceptions.ClientError as e:
    out["boto3"] = {
        "code": e.response["Error"]["Code"],
        "message": e.response["Error"]["Message"],
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
    }
try:
    mc.put_object(bucket, "big/too-big-multipart.bin", io.BytesIO(big * 2), 2 * len(big))
    out["minio"] = None
except minio.error.S3Error as e:
    out["minio"] = {"code": e.code, "message": e.message}
s3.put_object(Bucket=bucket, Key="small-after-full", Body=b"fits")
out["keys"] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
out["small"] = s3.get_object(Bucket=bucket, Key="small-after-full")["Body"].read().decode()
print(json.dumps(out))

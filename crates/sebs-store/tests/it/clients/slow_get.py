"""Starts a GET of a 64 MiB object, says READING after its first MiB, then reads the rest
slowly (about 1.3 s) and prints whether every byte came. Usage: slow_get.py ENDPOINT."""

import hashlib
import json
import os
import sys
import time

import boto3
from botocore.config import Config

endpoint = sys.argv[1]
s3 = boto3.client(
    "s3",
    endpoint_url="http://" + endpoint,
    aws_access_key_id=os.environ["ACCESS_KEY"],
    aws_secret_access_key=os.environ["SECRET_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),
)
data = os.urandom(64 * 1024 * 1024)
s3.create_bucket(Bucket="slow")
s3.put_object(Bucket="slow", Key="big", Body=data)
body = s3.get_object(Bucket="slow", Key="big")["Body"]
received = hashlib.md5()
n = 0
chunk = body.read(1024 * 1024)
print("READING", flush=True)
while chunk:
    received.update(chunk)
    n += len(chunk)
    time.sleep(0.02)
    chunk = body.read(1024 * 1024)
print(json.dumps({"bytes": n, "complete": received.hexdigest() == hashlib.md5(data).hexdigest()}))

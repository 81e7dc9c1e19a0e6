"""A function that calls the storage and nosql modules as SeBS's benchmarks do: 210's
streams, 311's directory download and archive upload, 411/504's download to a new path,
120's upload, 130's cart."""

import io
import os
import shutil
import uuid

from . import nosql, storage

# At import, as the benchmarks do.
client = storage.storage.get_instance()
nosql_client = nosql.nosql.get_instance()


def handler(event):
    bucket = event["bucket"]
    inp = event["input"]
    out = event["output"]
    scratch = event["scratch"]
    r = {"same_instance": client is storage.storage.get_instance()}

    # 210.thumbnailer: bytes in, a BytesIO out.
    img = client.download_stream(bucket, os.path.join(inp, "photo.jpg"))
    resized = io.BytesIO(img[::-1])
    resized.seek(0)
    r["stream_key"] = client.upload_stream(bucket, os.path.join(out, "photo.jpg"), resized)
    r["stream_roundtrip"] = client.download_stream(bucket, r["stream_key"]) == img[::-1]
    r["photo_size"] = len(img)

    # 311.compression: a whole prefix down, an archive up.
    download_path = os.path.join(scratch, "acmart-{}".format(uuid.uuid4()))
    os.makedirs(download_path)
    client.download_directory(bucket, os.path.join(inp, "acmart"), download_path)
    r["files"] = sorted(
        [os.path.relpath(os.path.join(root, f), download_path), os.path.getsize(os.path.join(root, f))]
        for root, _, files in os.walk(download_path)
        for f in files
    )
    archive = shutil.make_archive(os.path.join(download_path, "acmart"), "zip", root_dir=download_path)
    r["archive_size"] = os.path.getsize(archive)
    r["archive_key"] = client.upload(bucket, os.path.join(out, "acmart.zip"), archive)

    # 411/504: one object to a path whose directory does not exist yet.
    target = os.path.join(scratch, "new", "dir", "dna.fasta")
    client.download(bucket, os.path.join(inp, "dna.fasta"), target)
    with open(target) as f:
        r["downloaded"] = f.read()

    # A download that fails names the bucket and the key, and leaves what was at the
    # path alone.
    missing = os.path.join(scratch, "missing.jpg")
    with open(missing, "w") as f:
        f.write("old")
    try:
        client.download(bucket, os.path.join(inp, "missing.jpg"), missing)
        r["missing"] = None
    except Exception as e:
        r["missing"] = "{}: {}".format(type(e).__name__, e)
    with open(missing) as f:
        r["missing_kept_old_file"] = f.read() == "old"

    # 130.crud-api.
    cart = event["cart"]
    table = "shopping_cart"
    nosql_client.insert(table, ("cart_id", cart), ("product_id", "game-gothic"),
                        {"name": "Gothic Game", "price": 42, "quantity": 2})
    nosql_client.insert(table, ("cart_id", cart), ("product_id", "game-gothic-2"),
                        {"name": "Gothic 2", "price": 142, "quantity": 3})
    nosql_client.insert(table, ("cart_id", cart), ("product_id", "a-first"),
                        {"name": "Cheap", "price": 1.5, "quantity": 1, "tags": ["x", 2]})
    r["get"] = nosql_client.get(table, ("cart_id", cart), ("product_id", "game-gothic"))
    nosql_client.update(table, ("cart_id", cart), ("product_id", "game-gothic"),
                        {"status": "paid", "quantity": 5, "price": 41.5})
    r["updated"] = nosql_client.get(table, ("cart_id", cart), ("product_id", "game-gothic"))
    r["query"] = nosql_client.query(table, ("cart_id", cart), "product_id")
    nosql_client.delete(table, ("cart_id", cart), ("product_id", "game-gothic-2"))
    r["after_delete"] = [p["product_id"] for p in nosql_client.query(table, ("cart_id", cart), "product_id")]
    r["get_deleted"] = nosql_client.get(table, ("cart_id", cart), ("product_id", "game-gothic-2"))
    try:
        nosql_client.get("no_such_table", ("cart_id", cart), ("product_id", "x"))
        r["unknown_table"] = None
    except Exception as e:
        r["unknown_table"] = "{}: {}".format(type(e).__name__, e)
    return r

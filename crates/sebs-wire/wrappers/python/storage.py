"""sebs-local's object storage module for functions: SeBS's `storage` API over S3.

Benchmarks call `storage.storage.get_instance()` and then `upload`, `download`,
`download_directory`, `upload_stream` and `download_stream`, as with SeBS's own module.
The endpoint and keys come from MINIO_ADDRESS (host:port), MINIO_ACCESS_KEY and
MINIO_SECRET_KEY; the client is minio-py 7. Every failure raises StorageError naming the
bucket and key, with the client's error (S3's code and message) as its cause.
"""

import io
import os
import uuid

import minio

# Pieces in which downloads are written to disk.
_CHUNK = 1024 * 1024


class StorageError(RuntimeError):
    """An object storage call failed; the message names the bucket and key."""


class storage:
    instance = None

    def __init__(self):
        self._client = None

    @property
    def client(self):
        # Made on first use, so that a function that imports this module but never
        # touches storage runs without storage configured (as with SeBS).
        if self._client is None:
            missing = [
                name
                for name in ("MINIO_ADDRESS", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY")
                if not os.environ.get(name)
            ]
            if missing:
                raise StorageError(
                    "failed to connect to object storage: {} not set in the function's "
                    "environment (does the benchmark's input.py declare buckets_count()?)".format(
                        ", ".join(missing)
                    )
                )
            self._client = minio.Minio(
                os.environ["MINIO_ADDRESS"],
                access_key=os.environ["MINIO_ACCESS_KEY"],
                secret_key=os.environ["MINIO_SECRET_KEY"],
                secure=False,
            )
        return self._client

    @staticmethod
    def unique_name(name):
        """`name` with `.<8 hex>` before its extension, so that calls do not collide."""
        name, extension = os.path.splitext(name)
        return "{name}.{random}{extension}".format(
            name=name, extension=extension, random=str(uuid.uuid4()).split("-")[0]
        )

    def upload(self, bucket, file, filepath):
        """Uploads the file at `filepath` under a unique name made from `file`; returns the key."""
        key = storage.unique_name(file)
        try:
            self.client.fput_object(bucket, key, filepath)
        except Exception as e:
            raise StorageError(
                "failed to upload {} to {}/{}: {}".format(filepath, bucket, key, e)
            ) from e
        return key

    def download(self, bucket, file, filepath):
        """Writes the object `file` to `filepath`, creating its directories."""
        directory = os.path.dirname(filepath)
        if directory:
            os.makedirs(directory, exist_ok=True)
        response = None
        opened = False
        try:
            # One GET streamed to the file (minio's fget_object asks for the object's
            # metadata first, a second round trip).
            response = self.client.get_object(bucket, file)
            with open(filepath, "wb") as out:
                opened = True
                for data in response.stream(_CHUNK):
                    out.write(data)
        except Exception as e:
            if opened:
                # Not half a file where the benchmark expects the object.
                try:
                    os.remove(filepath)
                except OSError:
                    pass
            raise StorageError(
                "failed to download {}/{} to {}: {}".format(bucket, file, filepath, e)
            ) from e
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def download_directory(self, bucket, prefix, path):
        """Downloads every object under `prefix` to `path/<key>`."""
        try:
            objects = list(self.client.list_objects(bucket, prefix=prefix, recursive=True))
        except Exception as e:
            raise StorageError(
                "failed to list {}/{}: {}".format(bucket, prefix, e)
            ) from e
        for obj in objects:
            name = obj.object_name
            target = os.path.join(path, name)
            if name.endswith("/"):
                # A "directory" object: there is nothing to write but the directory.
                os.makedirs(target, exist_ok=True)
                continue
            self.download(bucket, name, target)

    def upload_stream(self, bucket, file, bytes_data):
        """Uploads what `bytes_data` (a BytesIO, bytes or a readable) holds from its current
        position under a unique name made from `file`; returns the key."""
        key = storage.unique_name(file)
        if isinstance(bytes_data, (bytes, bytearray, memoryview)):
            bytes_data = io.BytesIO(bytes_data)
        try:
            if hasattr(bytes_data, "getbuffer"):
                length = bytes_data.getbuffer().nbytes - bytes_data.tell()
                self.client.put_object(bucket, key, bytes_data, length)
            else:
                self.client.put_object(
                    bucket, key, bytes_data, -1, part_size=10 * 1024 * 1024
                )
        except Exception as e:
            raise StorageError(
                "failed to upload a stream to {}/{}: {}".format(bucket, key, e)
            ) from e
        return key

    def download_stream(self, bucket, file):
        """The object's bytes."""
        response = None
        try:
            response = self.client.get_object(bucket, file)
            return response.read()
        except Exception as e:
            raise StorageError(
                "failed to download {}/{}: {}".format(bucket, file, e)
            ) from e
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    @staticmethod
    def get_instance():
        if storage.instance is None:
            storage.instance = storage()
        return storage.instance

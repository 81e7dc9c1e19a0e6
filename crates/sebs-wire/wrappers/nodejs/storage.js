// sebs-local's object storage module for functions: SeBS's `storage` API over S3.
//
// Benchmarks do `new storage.storage()` (or `storage.storage.get_instance()`) and call
// `upload`, `download`, `downloadDirectory`, `uploadStream` and `downloadStream`, as with
// SeBS's own module. The endpoint and keys come from MINIO_ADDRESS (host:port),
// MINIO_ACCESS_KEY and MINIO_SECRET_KEY; the client is the `minio` package (8.x). Every
// failure rejects with an Error naming the bucket and key, the client's error as its cause.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const stream = require('stream');
const minio = require('minio');

// Downloads of a directory run this many at a time.
const PARALLEL_DOWNLOADS = 8;

function failure(message, cause) {
  return new Error(`${message}: ${cause && cause.message ? cause.message : cause}`, { cause });
}

class storage {
  constructor() {
    this._client = null;
  }

  // Made on first use, so that a function that loads this module but never touches
  // storage runs without storage configured (as with SeBS).
  get client() {
    if (this._client === null) {
      const missing = ['MINIO_ADDRESS', 'MINIO_ACCESS_KEY', 'MINIO_SECRET_KEY'].filter(
        (name) => !process.env[name]
      );
      if (missing.length > 0) {
        throw new Error(
          `failed to connect to object storage: ${missing.join(', ')} not set in the ` +
            "function's environment (does the benchmark's input.py declare buckets_count()?)"
        );
      }
      const address = process.env.MINIO_ADDRESS;
      const colon = address.lastIndexOf(':');
      this._client = new minio.Client({
        endPoint: colon < 0 ? address : address.slice(0, colon),
        port: colon < 0 ? 80 : parseInt(address.slice(colon + 1), 10),
        accessKey: process.env.MINIO_ACCESS_KEY,
        secretKey: process.env.MINIO_SECRET_KEY,
        useSSL: false,
      });
    }
    return this._client;
  }

  // `file` with `.<8 hex>` before its extension, so that calls do not collide.
  unique_name(file) {
    const name = path.parse(file);
    const random = crypto.randomUUID().split('-')[0];
    return path.join(name.dir, `${name.name}.${random}${name.ext}`);
  }

  // Uploads the file at `filepath` under a unique name made from `file`:
  // [key, promise of the upload].
  upload(bucket, file, filepath) {
    const key = this.unique_name(file);
    const promise = Promise.resolve()
      .then(() => this.client.fPutObject(bucket, key, filepath))
      .catch((e) => {
        throw failure(`failed to upload ${filepath} to ${bucket}/${key}`, e);
      });
    return [key, promise];
  }

  // Writes the object `file` to `filepath`, creating its directories: a promise.
  download(bucket, file, filepath) {
    return (async () => {
      let opened = false;
      try {
        await fs.promises.mkdir(path.dirname(filepath), { recursive: true });
        // One GET streamed to the file (fGetObject asks for the object's metadata first,
        // a second round trip).
        const body = await this.client.getObject(bucket, file);
        opened = true;
        await stream.promises.pipeline(body, fs.createWriteStream(filepath));
      } catch (e) {
        if (opened) {
          // Not half a file where the benchmark expects the object.
          await fs.promises.rm(filepath, { force: true }).catch(() => {});
        }
        throw failure(`failed to download ${bucket}/${file} to ${filepath}`, e);
      }
    })();
  }

  // Downloads every object under `prefix` to `downloadPath/<key>`.
  async downloadDirectory(bucket, prefix, downloadPath) {
    const names = [];
    try {
      for await (const obj of this.client.listObjectsV2(bucket, prefix, true)) {
        if (obj.name !== undefined) {
          names.push(obj.name);
        }
      }
    } catch (e) {
      throw failure(`failed to list ${bucket}/${prefix}`, e);
    }
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++];
        const target = path.join(downloadPath, name);
        if (name.endsWith('/')) {
          // A "directory" object: there is nothing to write but the directory.
          await fs.promises.mkdir(target, { recursive: true });
        } else {
          await this.download(bucket, name, target);
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL_DOWNLOADS }, worker));
  }

  // A stream to write an object to, under a unique name made from `file`:
  // [writable stream, promise of the upload (settles once the stream ends), key].
  uploadStream(bucket, file) {
    const writeStream = new stream.PassThrough();
    const key = this.unique_name(file);
    const promise = Promise.resolve()
      .then(() => this.client.putObject(bucket, key, writeStream))
      .catch((e) => {
        throw failure(`failed to upload a stream to ${bucket}/${key}`, e);
      });
    return [writeStream, promise, key];
  }

  // A promise of a readable stream of the object.
  downloadStream(bucket, file) {
    return Promise.resolve()
      .then(() => this.client.getObject(bucket, file))
      .catch((e) => {
        throw failure(`failed to download ${bucket}/${file}`, e);
      });
  }

  static get_instance() {
    if (!storage.instance) {
      storage.instance = new storage();
    }
    return storage.instance;
  }
}

exports.storage = storage;

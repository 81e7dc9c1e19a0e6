// Drives the S3 server with the `minio` npm package as SeBS's Node.js code uses it, and
// prints what it observed as one JSON line. Usage: node s3.js ENDPOINT BUCKET SCRATCH_DIR.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { PassThrough } = require('stream');
const minio = require('minio');

const [endpoint, bucket, scratch] = process.argv.slice(2);
const colon = endpoint.lastIndexOf(':');

function client(secretKey = process.env.SECRET_KEY) {
  return new minio.Client({
    endPoint: endpoint.slice(0, colon),
    port: parseInt(endpoint.slice(colon + 1), 10),
    useSSL: false,
    accessKey: process.env.ACCESS_KEY,
    secretKey,
    // The smallest part S3 allows, so that a 12 MiB file is a multipart upload.
    partSize: 5 * 1024 * 1024,
  });
}

// The S3 error code of `call`, or null when it succeeds.
async function code(call) {
  try {
    await call();
    return null;
  } catch (e) {
    return e.code || String(e);
  }
}

async function text(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks).toString();
}

async function collect(stream) {
  const items = [];
  for await (const item of stream) items.push(item);
  return items;
}

const md5 = (bytes) => crypto.createHash('md5').update(bytes).digest('hex');

(async () => {
  const c = client();
  const out = {};
  out.exists_before = await c.bucketExists(bucket);
  await c.makeBucket(bucket);
  out.exists_after = await c.bucketExists(bucket);
  out.second_create = await code(() => c.makeBucket(bucket));

  await c.putObject(bucket, 'small/hello.txt', Buffer.from('hello from node'));
  out.get = await text(await c.getObject(bucket, 'small/hello.txt'));
  out.partial = await text(await c.getPartialObject(bucket, 'small/hello.txt', 6, 4));
  out.missing_key = await code(() => c.statObject(bucket, 'small/none'));

  const data = crypto.randomBytes(12 * 1024 * 1024 + 7);
  fs.writeFileSync(path.join(scratch, 'big.bin'), data);
  out.big_md5 = md5(data);
  await c.fPutObject(bucket, 'big/minio-js.bin', path.join(scratch, 'big.bin'));
  const stat = await c.statObject(bucket, 'big/minio-js.bin');
  out.big = { size: stat.size, etag: stat.etag };
  await c.fGetObject(bucket, 'big/minio-js.bin', path.join(scratch, 'big-down.bin'));
  out.fget_md5 = md5(fs.readFileSync(path.join(scratch, 'big-down.bin')));

  // A stream of unknown length, as the storage wrapper's uploadStream sends it.
  const pass = new PassThrough();
  const put = c.putObject(bucket, 'stream/s.bin', pass);
  pass.end(Buffer.from('streamed'));
  await put;
  out.streamed = await text(await c.getObject(bucket, 'stream/s.bin'));

  const tree = {
    'tree/a.txt': 'a',
    'tree/sub/b c+d.txt': 'bb',
    'tree/sub/deeper/e%f.txt': 'eee',
    'tree-sibling/x': 'x',
    tree: 'a key that is not under tree/',
  };
  for (const [k, v] of Object.entries(tree)) {
    await c.putObject(bucket, k, Buffer.from(v));
  }
  out.v2_recursive = (await collect(c.listObjectsV2(bucket, 'tree/', true))).map((o) => [o.name, o.size, o.etag]);
  out.v1_recursive = (await collect(c.listObjects(bucket, 'tree/', true))).map((o) => [o.name, o.size, o.etag]);
  out.top = (await collect(c.listObjectsV2(bucket, 'tree/', false))).map((o) => o.name || o.prefix);

  await c.removeObjects(bucket, ['tree/a.txt', 'never-was']);
  await c.removeObject(bucket, 'stream/s.bin');
  out.after_deletes = (await collect(c.listObjectsV2(bucket, '', true))).map((o) => o.name);
  out.wrong_secret = await code(() => collect(client('wrong').listObjectsV2(bucket, '', true)));
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

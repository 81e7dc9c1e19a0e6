// Lays the inputs into the bucket with the minio package, calls the function in
// `function/` as the worker would, checks what it uploaded, and prints the result as one
// JSON line. Usage: node run.js BUCKET CART SCRATCH_DIR.

const path = require('path');
const minio = require('minio');

const [bucket, cart, scratch] = process.argv.slice(2);
const address = process.env.MINIO_ADDRESS;
const raw = new minio.Client({
  endPoint: address.split(':')[0],
  port: parseInt(address.split(':')[1], 10),
  useSSL: false,
  accessKey: process.env.MINIO_ACCESS_KEY,
  secretKey: process.env.MINIO_SECRET_KEY,
});

(async () => {
  await raw.makeBucket(bucket);
  const inputs = {
    'in/photo.txt': 'a photo, in lower case',
    'in/acmart/acmart.cls': '\\ProvidesClass{acmart}'.repeat(100),
    'in/acmart/doc/guide one.tex': 'guide',
    'in/acmart/doc/deep/x+y.bib': '@misc{}',
    'in/acmart-other/not-this': 'not under in/acmart/',
    'in/dna.fasta': '>seq\nACGT\n',
  };
  for (const [key, data] of Object.entries(inputs)) {
    await raw.putObject(bucket, key, Buffer.from(data));
  }
  const fn = require(path.join(__dirname, 'function', 'function'));
  const result = await fn.handler({ bucket, input: 'in', output: 'out', scratch, cart });
  result.archive_stored_size = (await raw.statObject(bucket, result.archive_key)).size;
  const outputs = [];
  for await (const o of raw.listObjectsV2(bucket, 'out/', true)) outputs.push(o.name);
  result.outputs = outputs.sort();

  // Without configuration: storage fails at first use, nosql when made, each saying why.
  delete process.env.MINIO_ADDRESS;
  delete process.env.NOSQL_STORAGE_TYPE;
  const storage = require(path.join(__dirname, 'function', 'storage'));
  const nosql = require(path.join(__dirname, 'function', 'nosql'));
  try {
    await new storage.storage().download('b', 'k', path.join(scratch, 'x'));
  } catch (e) {
    result.storage_unconfigured = `${e.name}: ${e.message}`;
  }
  try {
    new nosql.nosql();
  } catch (e) {
    result.nosql_unconfigured = `${e.name}: ${e.message}`;
  }
  console.log(JSON.stringify(result));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});

// A function that calls the storage and nosql modules as SeBS's benchmarks do: 210's
// streams, 311's directory download and archive upload, 411/504's download to a new path,
// 120's upload, 130's cart.

const fs = require('fs');
const path = require('path');
const { Transform } = require('stream');
const storage = require('./storage');
const nosql = require('./nosql');

// At load, as the benchmarks do.
const storage_handler = new storage.storage();
const nosqlClient = nosql.nosql.get_instance();

exports.handler = async function (event) {
  const { bucket, input, output, scratch, cart } = event;
  const r = { same_instance: storage.storage.get_instance() === storage.storage.get_instance() };

  // 210.thumbnailer: a read stream piped through a transform into an upload stream.
  const upper = new Transform({
    transform(chunk, _encoding, done) {
      done(null, Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1'));
    },
  });
  const read_promise = storage_handler.downloadStream(bucket, path.join(input, 'photo.txt'));
  const [writeStream, promise, uploadName] = storage_handler.uploadStream(bucket, path.join(output, 'photo.txt'));
  read_promise.then((input_stream) => {
    input_stream.pipe(upper).pipe(writeStream);
  });
  await promise;
  r.stream_key = uploadName;
  const back = [];
  for await (const chunk of await storage_handler.downloadStream(bucket, uploadName)) back.push(chunk);
  r.stream_back = Buffer.concat(back).toString();

  // 311.compression: a whole prefix down, a file up.
  const download_path = path.join(scratch, 'acmart-dir');
  fs.mkdirSync(download_path, { recursive: true });
  await storage_handler.downloadDirectory(bucket, path.join(input, 'acmart'), download_path);
  const files = [];
  const walk = (dir) => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      if (fs.statSync(p).isDirectory()) walk(p);
      else files.push([path.relative(download_path, p), fs.statSync(p).size]);
    }
  };
  walk(download_path);
  r.files = files.sort();
  const archive = path.join(scratch, 'acmart.zip');
  fs.writeFileSync(archive, JSON.stringify(r.files));
  const [key_name, uploadPromise] = storage_handler.upload(bucket, path.join(output, 'acmart.zip'), archive);
  await uploadPromise;
  r.archive_key = key_name;
  r.archive_size = fs.statSync(archive).size;

  // 411/504: one object to a path whose directory does not exist yet.
  const target = path.join(scratch, 'new', 'dir', 'dna.fasta');
  await storage_handler.download(bucket, path.join(input, 'dna.fasta'), target);
  r.downloaded = fs.readFileSync(target, 'utf8');

  // A download that fails names the bucket and the key, and leaves what was at the path
  // alone.
  const missing = path.join(scratch, 'missing.jpg');
  fs.writeFileSync(missing, 'old');
  try {
    await storage_handler.download(bucket, path.join(input, 'missing.jpg'), missing);
    r.missing = null;
  } catch (e) {
    r.missing = `${e.name}: ${e.message}`;
  }
  r.missing_kept_old_file = fs.readFileSync(missing, 'utf8') === 'old';

  // 130.crud-api.
  const table = 'shopping_cart';
  await nosqlClient.insert(table, ['cart_id', cart], ['product_id', 'game-gothic'], { name: 'Gothic Game', price: 42, quantity: 2 });
  await nosqlClient.insert(table, ['cart_id', cart], ['product_id', 'game-gothic-2'], { name: 'Gothic 2', price: 142, quantity: 3 });
  await nosqlClient.insert(table, ['cart_id', cart], ['product_id', 'a-first'], { name: 'Cheap', price: 1.5, quantity: 1, tags: ['x', 2] });
  r.get = await nosqlClient.get(table, ['cart_id', cart], ['product_id', 'game-gothic']);
  await nosqlClient.update(table, ['cart_id', cart], ['product_id', 'game-gothic'], { status: 'paid', quantity: 5, price: 41.5 });
  r.updated = await nosqlClient.get(table, ['cart_id', cart], ['product_id', 'game-gothic']);
  r.query = await nosqlClient.query(table, ['cart_id', cart], 'product_id');
  await nosqlClient.delete(table, ['cart_id', cart], ['product_id', 'game-gothic-2']);
  r.after_delete = (await nosqlClient.query(table, ['cart_id', cart], 'product_id')).map((p) => p.product_id);
  r.get_deleted = (await nosqlClient.get(table, ['cart_id', cart], ['product_id', 'game-gothic-2'])) ?? null;
  try {
    await nosqlClient.get('no_such_table', ['cart_id', cart], ['product_id', 'x']);
    r.unknown_table = null;
  } catch (e) {
    r.unknown_table = `${e.name}: ${e.message}`;
  }
  return r;
};

//! sebs-storage against the real embedded stores in containers: the host clients, a
//! benchmark's resources, `input.py`'s uploads (once) and downloads, and a killed store.
//!
//! Every store a test starts has a name of its own and is removed with its data at the end.

use std::path::{Path, PathBuf};

use sebs_container::Docker;
use sebs_package::{Language, ValidateContext, Validation};
use sebs_storage::embedded::{self, Kind, StoreOptions};
use sebs_storage::s3::S3Client;
use sebs_storage::{InputCalls, RunningStore, Storage, StorageFile};
use sebs_testkit::{trial, Need, Trial, ENGINE, PYTHON3};

static STORE: Need = Need::new("the static store binary (cargo xtask agent)", || {
    sebs_container::find_static_binary(embedded::STORE_BINARY, embedded::STORE_BIN_ENV, None)
        .map(drop)
        .map_err(|e| format!("failed to {e}"))
});

fn trials() -> Vec<Trial> {
    vec![
        trial!(the_s3_client_speaks_to_the_store, ENGINE, STORE),
        trial!(the_dynamodb_client_speaks_to_the_store, ENGINE, STORE),
        trial!(
            inputs_upload_once_and_validators_download,
            ENGINE,
            STORE,
            PYTHON3
        ),
        trial!(
            nosql_inputs_land_in_the_benchmarks_table,
            ENGINE,
            STORE,
            PYTHON3
        ),
        trial!(a_killed_store_comes_back_with_its_data, ENGINE, STORE),
    ]
}

sebs_testkit::main!(trials());

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A store of this test: started under a name of its own, removed with its data by
/// [`TestStore::remove`] (or, if the test fails first, on drop).
struct TestStore {
    docker: Docker,
    store: RunningStore,
    removed: bool,
}

impl TestStore {
    async fn start(kind: Kind) -> TestStore {
        let docker = sebs_container::connect().await.unwrap();
        let binary = sebs_container::find_static_binary(
            embedded::STORE_BINARY,
            embedded::STORE_BIN_ENV,
            None,
        )
        .unwrap();
        let image = embedded::ensure_image(&docker, &binary).await.unwrap();
        let name = sebs_container::testing::unique_name(&format!("sebs-test-store-{kind}"));
        let mut options = StoreOptions::embedded(kind);
        options.data = sebs_container::DataSource::Volume(format!("{name}-data"));
        options.name = name;
        options
            .labels
            .insert("sebs-local.test".to_string(), "1".to_string());
        let store = embedded::start(&docker, &image, &options).await.unwrap();
        TestStore {
            docker,
            store,
            removed: false,
        }
    }

    fn name(&self) -> &str {
        &self.store.container.name
    }

    async fn remove(mut self) {
        embedded::remove(&self.docker, self.store.kind, self.name(), true)
            .await
            .unwrap();
        self.removed = true;
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // A failed test: remove from a thread of its own, as this may run inside the
        // runtime.
        let (docker, kind, name) = (
            self.docker.clone(),
            self.store.kind,
            self.name().to_string(),
        );
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rt.block_on(embedded::remove(&docker, kind, &name, true));
        })
        .join();
    }
}

fn storage_file(object: Option<&TestStore>, nosql: Option<&TestStore>) -> StorageFile {
    StorageFile {
        object: object.map(|s| s.store.minio_config()),
        nosql: nosql.map(|s| s.store.scylladb_config()),
        other: Default::default(),
    }
}

async fn the_s3_client_speaks_to_the_store() {
    let store = TestStore::start(Kind::Object).await;
    let s = &store.store;
    let client = S3Client::new(&s.host_address.to_string(), &s.access_key, &s.secret_key);
    client.create_bucket("bkt").await.unwrap();
    // A second create of one's own bucket is fine.
    client.create_bucket("bkt").await.unwrap();
    assert!(client
        .list_buckets()
        .await
        .unwrap()
        .contains(&"bkt".to_string()));

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("in.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &bytes).unwrap();
    let key = "in/a dir/b+c.bin";
    assert_eq!(client.put_file("bkt", key, &local).await.unwrap(), 300_000);
    let listed = client.list_objects("bkt", "in/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key);
    assert_eq!(listed[0].size, 300_000);
    use md5::Digest;
    assert_eq!(listed[0].etag, hex::encode(md5::Md5::digest(&bytes)));

    let back = dir.path().join("out/deeper/back.bin");
    client.get_file("bkt", key, &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);

    let err = client.get_file("bkt", "missing", &back).await.unwrap_err();
    assert_eq!(err.code(), Some("NoSuchKey"), "{err}");
    let err = client.list_objects("no-such-bucket", "").await.unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"), "{err}");
    // SigV4 is checked: a wrong secret is refused, and says so.
    let wrong = S3Client::new(&s.host_address.to_string(), &s.access_key, "not-the-secret");
    let err = wrong.list_buckets().await.unwrap_err();
    assert!(err.is_auth(), "{err}");
    store.remove().await;
}

async fn the_dynamodb_client_speaks_to_the_store() {
    let store = TestStore::start(Kind::Nosql).await;
    let storage = Storage::from_file(&storage_file(None, Some(&store)), "test")
        .await
        .unwrap();
    let client = &storage.nosql.as_ref().unwrap().client;
    client.ensure_table("table-1", "pk", "sk").await.unwrap();
    // Making a table that exists is fine.
    client.ensure_table("table-1", "pk", "sk").await.unwrap();
    let item = serde_json::json!({"pk": "a", "sk": "b", "n": 42, "nested": {"x": [1, "y"]}});
    client
        .put_item("table-1", item.as_object().unwrap())
        .await
        .unwrap();
    assert!(client
        .list_tables()
        .await
        .unwrap()
        .contains(&"table-1".to_string()));
    let err = client
        .put_item("no-such-table", item.as_object().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some("ResourceNotFoundException"), "{err}");
    client.delete_table("table-1").await.unwrap();
    client.delete_table("table-1").await.unwrap();
    store.remove().await;
}

async fn inputs_upload_once_and_validators_download() {
    let store = TestStore::start(Kind::Object).await;
    let storage = Storage::from_file(&storage_file(Some(&store), None), "test")
        .await
        .unwrap();
    let bench = sebs_package::find_benchmark(&fixtures(), "210.transform").unwrap();
    let needs = sebs_package::inspect_needs(&bench).await.unwrap();
    assert_eq!(needs.buckets, Some((1, 1)));
    let data_dir = fixtures().join("benchmarks-data/200.storage/210.transform");

    let resources = sebs_storage::prepare_resources(&storage, &bench.name, &needs)
        .await
        .unwrap();
    let layout = resources.buckets.clone().unwrap();
    assert!(
        layout.bucket.starts_with("sebs-benchmarks-local-"),
        "{layout:?}"
    );
    let first = InputCalls::new(storage.clone(), resources.clone());
    let input = generate(&bench, &data_dir, &layout, &first).await;
    assert_eq!(first.progress().files_total, 1);
    assert_eq!(first.progress().files_skipped, 0);

    // The next command finds the same bucket and uploads nothing again.
    let again = sebs_storage::prepare_resources(&storage, &bench.name, &needs)
        .await
        .unwrap();
    assert_eq!(again.resources_id, resources.resources_id);
    let second = InputCalls::new(storage.clone(), again);
    assert_eq!(generate(&bench, &data_dir, &layout, &second).await, input);
    assert_eq!(second.progress().files_total, 1);
    assert_eq!(second.progress().files_skipped, 1);

    // What a function would have stored, checked by the benchmark's validator through
    // `storage.download`.
    let client = &storage.object.as_ref().unwrap().client;
    let text = std::fs::read_to_string(data_dir.join("words.txt")).unwrap();
    let transformed: Vec<String> = text
        .to_uppercase()
        .split('\n')
        .rev()
        .map(str::to_string)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let result = dir.path().join("result.txt");
    std::fs::write(&result, transformed.join("\n")).unwrap();
    let key = format!("{}/words.1a2b3c4d.txt", layout.output_prefixes[0]);
    client
        .put_file(&layout.bucket, &key, &result)
        .await
        .unwrap();
    let output = serde_json::json!({"result": {"bucket": layout.bucket, "key": key},
        "measurement": {"download_size": text.len()}});
    let context = ValidateContext {
        data_dir: Some(data_dir.clone()),
        data_root: None,
    };
    let verdict =
        sebs_package::validate_output(&bench, &context, &input, &output, Language::Python, &second)
            .await
            .unwrap();
    assert_eq!(verdict, Validation::Passed);
    // A key that is not there fails the validation with S3's error, named.
    let output = serde_json::json!({"result": {"bucket": layout.bucket,
        "key": format!("{}/missing.txt", layout.output_prefixes[0])}});
    let err =
        sebs_package::validate_output(&bench, &context, &input, &output, Language::Python, &second)
            .await
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("NoSuchKey") && err.contains("missing.txt"),
        "{err}"
    );
    store.remove().await;
}

async fn generate(
    bench: &sebs_package::BenchmarkDir,
    data_dir: &Path,
    layout: &sebs_package::BucketLayout,
    calls: &InputCalls,
) -> serde_json::Value {
    let context = sebs_package::InputContext {
        data_dir: Some(data_dir.to_path_buf()),
        buckets: Some(layout.clone()),
    };
    sebs_package::generate_input(bench, sebs_package::Size::Test, &context, calls)
        .await
        .unwrap()
}

async fn nosql_inputs_land_in_the_benchmarks_table() {
    let store = TestStore::start(Kind::Nosql).await;
    let storage = Storage::from_file(&storage_file(None, Some(&store)), "test")
        .await
        .unwrap();
    let bench = sebs_package::find_benchmark(&fixtures(), "230.cart").unwrap();
    let needs = sebs_package::inspect_needs(&bench).await.unwrap();
    assert!(needs.nosql());
    let resources = sebs_storage::prepare_resources(&storage, &bench.name, &needs)
        .await
        .unwrap();
    let table = &resources.tables["cart"];
    assert_eq!(
        table,
        &format!("sebs-benchmarks-{}-230.cart-cart", resources.resources_id)
    );
    let calls = InputCalls::new(storage.clone(), resources.clone());
    let input = sebs_package::generate_input(
        &bench,
        sebs_package::Size::Test,
        &Default::default(),
        &calls,
    )
    .await
    .unwrap();
    assert!(input["cart"].is_string(), "{input}");
    let env = sebs_storage::function_env(&storage, &resources);
    assert_eq!(env["NOSQL_STORAGE_TABLE_cart"], *table);
    assert_eq!(
        env["NOSQL_STORAGE_ENDPOINT"],
        store.store.address.to_string()
    );
    // The next deployment finds the same resources id through the table.
    let again = sebs_storage::prepare_resources(&storage, &bench.name, &needs)
        .await
        .unwrap();
    assert_eq!(again.resources_id, resources.resources_id);
    store.remove().await;
}

async fn a_killed_store_comes_back_with_its_data() {
    let store = TestStore::start(Kind::Object).await;
    let s = store.store.clone();
    let client = S3Client::new(&s.host_address.to_string(), &s.access_key, &s.secret_key);
    client.create_bucket("kept").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("f");
    std::fs::write(&local, b"survives").unwrap();
    client.put_file("kept", "f", &local).await.unwrap();

    // Killed at once (no grace), and marked stopped, so the engine's restart policy leaves
    // it down: the next command must notice and start it again, with its keys and data.
    sebs_container::stop(&store.docker, &s.container.id, std::time::Duration::ZERO)
        .await
        .unwrap();
    let state = sebs_container::inspect_state(&store.docker, &s.container.id)
        .await
        .unwrap();
    assert!(!state.running, "{state:?}");
    let found = embedded::find(&store.docker, Kind::Object, store.name())
        .await
        .unwrap()
        .unwrap();
    assert!(found.container.running);
    assert_eq!(found.access_key, s.access_key);
    let client = S3Client::new(
        &found.host_address.to_string(),
        &found.access_key,
        &found.secret_key,
    );
    let back = dir.path().join("back");
    client.get_file("kept", "f", &back).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), b"survives");
    store.remove().await;
}

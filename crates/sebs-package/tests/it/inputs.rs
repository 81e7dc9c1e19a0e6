//! Inputs from `input.py` / `input.json` and output validation, with the host's python3.

use serde_json::json;

use std::path::PathBuf;
use std::sync::Mutex;

use sebs_package::{
    BenchmarkDir, BucketLayout, InputContext, InputError, InputSession, Language, Needs, NeedsMemo,
    NoStorage, Size, StorageCall, StorageCalls, TableKeys, ValidateContext, Validation,
};

use sebs_testkit::{trial, Trial, PYTHON3};

use crate::{fixture, write_files};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(fixture_inputs, PYTHON3),
        trial!(fixture_validations, PYTHON3),
        trial!(input_py_arguments_prints_and_failures, PYTHON3),
        trial!(storage_calls_reach_the_host_in_order, PYTHON3),
        trial!(
            a_refused_call_fails_the_input_even_when_the_script_hides_it,
            PYTHON3
        ),
        trial!(validators_get_storage_and_the_project_root, PYTHON3),
        trial!(inspections_are_remembered_by_the_text_of_input_py, PYTHON3),
    ]
}

fn data_dir() -> PathBuf {
    PathBuf::from("/nonexistent/benchmarks-data")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn generate_input(
    bench: &BenchmarkDir,
    size: Size,
    context: &InputContext,
    storage: &impl StorageCalls,
) -> Result<serde_json::Value, InputError> {
    block_on(sebs_package::generate_input(bench, size, context, storage))
}

fn plain_context() -> InputContext {
    InputContext {
        data_dir: Some(data_dir()),
        buckets: None,
    }
}

fn validate_output(
    bench: &BenchmarkDir,
    input: &serde_json::Value,
    output: &serde_json::Value,
    storage: &impl StorageCalls,
) -> Result<Validation, InputError> {
    let context = ValidateContext {
        data_dir: Some(data_dir()),
        data_root: None,
    };
    block_on(sebs_package::validate_output(
        bench,
        &context,
        input,
        output,
        Language::Python,
        storage,
    ))
}

fn fixture_inputs() {
    let check = |name: &str, size: Size, expect: serde_json::Value| {
        let got = generate_input(&fixture(name), size, &plain_context(), &NoStorage).unwrap();
        assert_eq!(got, expect, "{name} {size}");
    };
    check("000.noop", Size::Test, json!({}));
    check("010.sleep", Size::Test, json!({"sleep": 0.1}));
    check("010.sleep", Size::Small, json!({"sleep": 1}));
    check("010.sleep", Size::Large, json!({"sleep": 5}));
    check("020.raise", Size::Large, json!({}));
    check("030.timeout", Size::Test, json!({"sleep": 5}));
    check("040.data-file", Size::Test, json!({}));
    check("050.allocate", Size::Test, json!({"size_mb": 50}));
    check("050.allocate", Size::Small, json!({"size_mb": 200}));
    check("050.allocate", Size::Large, json!({"size_mb": 1000}));
    check(
        "110.template",
        Size::Test,
        json!({"username": "testname", "random_len": 10}),
    );
    check("120.compiled", Size::Test, json!({"count": 10}));
    check("130.versioned", Size::Test, json!({}));
}

fn fixture_validations() {
    let check =
        |name: &str, input: serde_json::Value, output: serde_json::Value, expect: Validation| {
            let got = validate_output(&fixture(name), &input, &output, &NoStorage).unwrap();
            assert_eq!(got, expect, "{name} {output}");
        };
    check("000.noop", json!({}), json!({}), Validation::Passed);
    check(
        "010.sleep",
        json!({"sleep": 0.1}),
        json!({"result": 0.1}),
        Validation::Passed,
    );
    check(
        "010.sleep",
        json!({"sleep": 1}),
        json!({"result": 2}),
        Validation::Failed("expected to sleep 1 s but the function says 2".into()),
    );
    check("020.raise", json!({}), json!({}), Validation::NoValidator);
    check(
        "030.timeout",
        json!({"sleep": 5}),
        json!({}),
        Validation::NoValidator,
    );
    check(
        "040.data-file",
        json!({}),
        json!({"greeting": "hello from a data file\n"}),
        Validation::Passed,
    );
    check(
        "050.allocate",
        json!({"size_mb": 50}),
        json!({"allocated_mb": 50}),
        Validation::Passed,
    );
    check(
        "110.template",
        json!({"username": "testname", "random_len": 2}),
        json!({"result": "<h1>Welcome testname!</h1><li>1</li><li>2</li>"}),
        Validation::Passed,
    );
    check(
        "110.template",
        json!({"username": "testname", "random_len": 3}),
        json!({"result": "<h1>Welcome testname!</h1><li>1</li>"}),
        Validation::Failed("expected 3 list items, found 1".into()),
    );
    check(
        "120.compiled",
        json!({"count": 10}),
        json!({"c_extension": false, "packer": "msgpack.fallback", "roundtrip": true}),
        Validation::Failed(
            "msgpack runs without its C extension (Packer from msgpack.fallback)".into(),
        ),
    );
    check(
        "130.versioned",
        json!({}),
        json!({"python": "3.11", "requirements": "requirements.txt.3.11"}),
        Validation::Passed,
    );
    check(
        "130.versioned",
        json!({}),
        json!({"python": "3.11", "requirements": "requirements.txt"}),
        Validation::Failed(
            "on Python 3.11 expected requirements.txt.3.11 to be installed, got requirements.txt"
                .into(),
        ),
    );
}

fn made(input_py: &str) -> (tempfile::TempDir, BenchmarkDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("900.tests/920.input");
    write_files(
        &dir,
        &[
            (
                "config.json",
                r#"{"timeout": 5, "memory": 128, "languages": ["python"], "modules": ["storage"]}"#,
            ),
            ("input.py", input_py),
            ("python/function.py", "def handler(event):\n    return {}\n"),
        ],
    );
    let bench = sebs_package::find_benchmark(tmp.path(), "920.input").unwrap();
    (tmp, bench)
}

/// Storage that records every call and refuses those whose key or table says "refuse".
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<StorageCall>>,
    finished: Mutex<bool>,
}

impl StorageCalls for Recorder {
    async fn call(&self, call: StorageCall) -> Result<(), String> {
        let refuse = match &call {
            StorageCall::Upload { key, .. } | StorageCall::Download { key, .. } => {
                key.contains("refuse")
            }
            StorageCall::NosqlPut { table, .. } => table.contains("refuse"),
        };
        self.calls.lock().unwrap().push(call);
        if refuse {
            Err("the store said no".to_string())
        } else {
            Ok(())
        }
    }

    async fn finish(&self) -> Result<(), String> {
        *self.finished.lock().unwrap() = true;
        Ok(())
    }
}

fn input_py_arguments_prints_and_failures() {
    // SeBS's arguments arrive as SeBS passes them, and prints do not spoil the JSON.
    let (_tmp, bench) = made(
        "def buckets_count():\n    return (2, 1)\n\
         def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             print('chatty')\n    \
             return {'data_dir': data_dir, 'size': size, 'bucket': bucket, 'in': inputs, 'out': outputs}\n",
    );
    let needs = block_on(sebs_package::inspect_needs(&bench)).unwrap();
    assert_eq!(needs.buckets, Some((2, 1)));
    assert!(needs.tables.is_empty());
    let context = InputContext {
        data_dir: Some(data_dir()),
        buckets: Some(BucketLayout::new(
            "sebs-benchmarks-local-1",
            &bench.name,
            (2, 1),
        )),
    };
    let got = generate_input(&bench, Size::Small, &context, &NoStorage).unwrap();
    assert_eq!(
        got,
        json!({"data_dir": "/nonexistent/benchmarks-data", "size": "small", "bucket": "sebs-benchmarks-local-1",
               "in": ["920.input-0-input", "920.input-1-input"], "out": ["920.input-0-output"]})
    );
    // Without data and storage, SeBS passes None for both.
    let got = generate_input(&bench, Size::Test, &InputContext::default(), &NoStorage).unwrap();
    assert_eq!(got["data_dir"], json!(null));
    assert_eq!(got["bucket"], json!(null));

    let (_tmp, bench) = made(
        "def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             upload(0, 'key', '/tmp/file')\n",
    );
    let err = generate_input(&bench, Size::Test, &plain_context(), &NoStorage).unwrap_err();
    assert_eq!(
        err.to_string(),
        "generate input of 920.input: a storage call of input.py failed: no object storage is \
         configured for this benchmark"
    );

    let (_tmp, bench) = made(
        "def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             raise KeyError('no such size')\n\
         def validate_output(data_dir, input_config, output, language, storage=None):\n    \
             return 42 if output else None\n",
    );
    let err = generate_input(&bench, Size::Test, &plain_context(), &NoStorage).unwrap_err();
    match &err {
        InputError::Script { status, stderr, .. } => {
            assert_eq!(status, "status 1");
            assert!(stderr.contains("KeyError: 'no such size'"), "{stderr}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A validator answering something other than None or a string fails with its text.
    let v = validate_output(&bench, &json!({}), &json!({"a": 1}), &NoStorage).unwrap();
    assert_eq!(v, Validation::Failed("42".into()));
    let v = validate_output(&bench, &json!({}), &json!({}), &NoStorage).unwrap();
    assert_eq!(v, Validation::Passed);

    let (_tmp, bench) = made("def generate_input(*args):\n    return {'not json': object()}\n");
    let err = generate_input(&bench, Size::Test, &plain_context(), &NoStorage).unwrap_err();
    assert!(
        matches!(err, InputError::Script { ref stderr, .. } if stderr.contains("not JSON serializable")),
        "{err:?}"
    );

    let (_tmp, bench) = made("syntax error here\n");
    let err = generate_input(&bench, Size::Test, &plain_context(), &NoStorage).unwrap_err();
    assert!(
        matches!(err, InputError::Script { ref stderr, .. } if stderr.contains("SyntaxError")),
        "{err:?}"
    );
}

fn storage_calls_reach_the_host_in_order() {
    let (_tmp, bench) = made(
        "def buckets_count():\n    return (1, 1)\n\
         def allocate_nosql():\n    \
             return {'cart': {'primary_key': 'cart_id', 'secondary_key': 'product_id'}}\n\
         def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             upload(0, 'a/b.jpg', 'rel/file.jpg')\n    \
             nosql('920.input', 'cart', {'price': 42, 'name': 'x'}, ('cart_id', 'c1'), ('product_id', 'p1'))\n    \
             return {'ok': True}\n",
    );
    let needs = block_on(sebs_package::inspect_needs(&bench)).unwrap();
    assert_eq!(needs.buckets, Some((1, 1)));
    assert_eq!(
        needs.tables.get("cart"),
        Some(&TableKeys {
            primary_key: "cart_id".into(),
            secondary_key: "product_id".into()
        })
    );
    let recorder = Recorder::default();
    let got = generate_input(&bench, Size::Test, &plain_context(), &recorder).unwrap();
    assert_eq!(got, json!({"ok": true}));
    assert!(*recorder.finished.lock().unwrap());
    let calls = recorder.calls.lock().unwrap().clone();
    let item = json!({"price": 42, "name": "x", "cart_id": "c1", "product_id": "p1"});
    assert_eq!(
        calls,
        vec![
            StorageCall::Upload {
                index: 0,
                key: "a/b.jpg".into(),
                // Relative paths are the script's, made absolute from its folder.
                path: bench.path.join("rel/file.jpg"),
            },
            StorageCall::NosqlPut {
                benchmark: "920.input".into(),
                table: "cart".into(),
                item: item.as_object().unwrap().clone(),
            },
        ]
    );
}

fn a_refused_call_fails_the_input_even_when_the_script_hides_it() {
    let (_tmp, bench) = made(
        "def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             try:\n        upload(0, 'refuse', '/tmp/x')\n    \
             except Exception:\n        raise ValueError('something else')\n",
    );
    let err =
        generate_input(&bench, Size::Test, &plain_context(), &Recorder::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "generate input of 920.input: a storage call of input.py failed: the store said no"
    );
}

fn validators_get_storage_and_the_project_root() {
    // A validator with `storage` downloads through it; one with four parameters still works;
    // `sebs.utils.get_project_root()` leads to the data root in use.
    let (_tmp, bench) = made(
        "def generate_input(*a):\n    return {}\n\
         def validate_output(data_dir, input_config, output, language, storage=None):\n    \
             from sebs.utils import get_project_root\n    \
             marker = get_project_root() / 'benchmarks-data' / 'marker'\n    \
             if marker.read_text() != 'here':\n        return 'wrong root'\n    \
             storage.download('bkt', output['key'], 'out/file')\n    \
             return None\n",
    );
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("marker"), "here").unwrap();
    let context = ValidateContext {
        data_dir: None,
        data_root: Some(root.path().to_path_buf()),
    };
    let recorder = Recorder::default();
    let v = block_on(sebs_package::validate_output(
        &bench,
        &context,
        &json!({}),
        &json!({"key": "k.png"}),
        Language::Python,
        &recorder,
    ))
    .unwrap();
    assert_eq!(v, Validation::Passed);
    assert_eq!(
        recorder.calls.lock().unwrap().clone(),
        vec![StorageCall::Download {
            bucket: "bkt".into(),
            key: "k.png".into(),
            path: bench.path.join("out/file"),
        }]
    );
    let v = block_on(sebs_package::validate_output(
        &bench,
        &context,
        &json!({}),
        &json!({"key": "refuse"}),
        Language::Python,
        &recorder,
    ));
    assert_eq!(
        v.unwrap_err().to_string(),
        "validate output of 920.input: a storage call of input.py failed: the store said no"
    );

    let (_tmp, bench) = made(
        "def generate_input(*a):\n    return {}\n\
         def validate_output(data_dir, input_config, output, language):\n    \
             return None if data_dir is None else 'data_dir should be None'\n",
    );
    let v = block_on(sebs_package::validate_output(
        &bench,
        &context,
        &json!({}),
        &json!({}),
        Language::Python,
        &recorder,
    ))
    .unwrap();
    assert_eq!(v, Validation::Passed);
}

/// An inspection kept in a memo is recalled by a later session of the same `input.py`, and
/// by no session of a changed one; a benchmark without `input.py` needs nothing, memo or not.
async fn inspections_are_remembered_by_the_text_of_input_py() {
    let (tmp, mut bench) = made(
        "def buckets_count():\n    return (1, 2)\n\
         def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
         return {}\n",
    );
    let memo = NeedsMemo {
        dir: tmp.path().join("cache/.needs"),
    };
    let session = || InputSession::start(&bench);
    let mut first = session();
    assert_eq!(
        first.recall_needs(&memo),
        None,
        "an empty memo answers nothing"
    );
    let needs = first.inspect().await.unwrap();
    assert_eq!(needs.buckets, Some((1, 2)));
    first.keep_needs(&memo, &needs).unwrap();
    assert_eq!(session().recall_needs(&memo), Some(needs.clone()));

    // One character more: another text, so no answer (and the old one stays for its text).
    let input_py = bench.path.join("input.py");
    let text = std::fs::read_to_string(&input_py).unwrap();
    std::fs::write(&input_py, format!("{text}\n")).unwrap();
    let changed = session();
    assert_eq!(
        changed.recall_needs(&memo),
        None,
        "a changed input.py was answered"
    );
    let other = Needs {
        buckets: Some((0, 0)),
        tables: Default::default(),
    };
    changed.keep_needs(&memo, &other).unwrap();
    assert_eq!(session().recall_needs(&memo), Some(other));
    std::fs::write(&input_py, &text).unwrap();
    assert_eq!(session().recall_needs(&memo), Some(needs));
    drop(changed);

    std::fs::remove_file(&input_py).unwrap();
    bench = sebs_package::find_benchmark(tmp.path(), "920.input").unwrap();
    assert_eq!(
        InputSession::start(&bench).recall_needs(&memo),
        Some(Needs::default())
    );
}

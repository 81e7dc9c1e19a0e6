//! Inputs from `input.py` / `input.json` and output validation, with the host's python3.

use serde_json::json;

use sebs_package::{generate_input, validate_output, InputError, Language, Size, Validation};
use sebs_testkit::{trial, Trial, PYTHON3};

use crate::{fixture, write_files};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(fixture_inputs, PYTHON3),
        trial!(fixture_validations, PYTHON3),
        trial!(input_py_arguments_prints_and_failures, PYTHON3),
    ]
}

fn data_dir() -> std::path::PathBuf {
    std::path::PathBuf::from("/nonexistent/benchmarks-data")
}

fn fixture_inputs() {
    let check = |name: &str, size: Size, expect: serde_json::Value| {
        let got = generate_input(&fixture(name), size, &data_dir()).unwrap();
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
            let got = validate_output(
                &fixture(name),
                &data_dir(),
                &input,
                &output,
                Language::Python,
            )
            .unwrap();
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

fn made(input_py: &str) -> (tempfile::TempDir, sebs_package::BenchmarkDir) {
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

fn input_py_arguments_prints_and_failures() {
    // SeBS's arguments arrive as SeBS passes them, and prints do not spoil the JSON.
    let (_tmp, bench) = made(
        "def buckets_count():\n    return (2, 1)\n\
         def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             print('chatty')\n    \
             return {'data_dir': data_dir, 'size': size, 'bucket': bucket, 'in': inputs, 'out': outputs}\n",
    );
    let got = generate_input(&bench, Size::Small, &data_dir()).unwrap();
    assert_eq!(
        got,
        json!({"data_dir": "/nonexistent/benchmarks-data", "size": "small", "bucket": "sebs-benchmarks",
               "in": ["920.input-0-input", "920.input-1-input"], "out": ["920.input-0-output"]})
    );

    let (_tmp, bench) = made(
        "def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             upload(0, 'key', '/tmp/file')\n",
    );
    let err = generate_input(&bench, Size::Test, &data_dir()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "generate input of 920.input: the benchmark uses object storage (upload_func), which is \
         not supported for this benchmark yet"
    );

    let (_tmp, bench) = made(
        "def generate_input(data_dir, size, bucket, inputs, outputs, upload, nosql):\n    \
             raise KeyError('no such size')\n\
         def validate_output(data_dir, input_config, output, language, storage=None):\n    \
             return 42 if output else None\n",
    );
    let err = generate_input(&bench, Size::Test, &data_dir()).unwrap_err();
    match &err {
        InputError::Script { status, stderr, .. } => {
            assert_eq!(status, "status 1");
            assert!(stderr.contains("KeyError: 'no such size'"), "{stderr}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A validator answering something other than None or a string fails with its text.
    let v = validate_output(
        &bench,
        &data_dir(),
        &json!({}),
        &json!({"a": 1}),
        Language::Python,
    )
    .unwrap();
    assert_eq!(v, Validation::Failed("42".into()));
    let v = validate_output(
        &bench,
        &data_dir(),
        &json!({}),
        &json!({}),
        Language::Python,
    )
    .unwrap();
    assert_eq!(v, Validation::Passed);

    let (_tmp, bench) = made("def generate_input(*args):\n    return {'not json': object()}\n");
    let err = generate_input(&bench, Size::Test, &data_dir()).unwrap_err();
    assert!(
        matches!(err, InputError::Script { ref stderr, .. } if stderr.contains("not JSON serializable")),
        "{err:?}"
    );

    let (_tmp, bench) = made("syntax error here\n");
    let err = generate_input(&bench, Size::Test, &data_dir()).unwrap_err();
    assert!(
        matches!(err, InputError::Script { ref stderr, .. } if stderr.contains("SyntaxError")),
        "{err:?}"
    );
}

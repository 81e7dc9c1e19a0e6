//! Package layouts of every fixture (snapshots), requirement overrides, init.sh, symlinks
//! and the content hash.

use std::path::Path;

use sebs_package::cache::MARKER_FILE;
use sebs_package::layout::{collect_sources, content_hash, LayoutError};
use sebs_package::{list_benchmarks, Language, PackageCache, PackageError};
use sebs_testkit::{trial, Trial};

use crate::{copy_benchmark, fixture, fixtures, write_files, FakeEnv};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(every_fixture_layout),
        trial!(versioned_requirements_replace_the_plain_file),
        trial!(init_sh_runs_like_sebs_and_its_failure_carries_output),
        trial!(symlinks_stay_inside_the_benchmark),
        trial!(hash_changes_with_any_shipped_byte_and_only_then),
        trial!(storage_modules_refuse_versions_their_libraries_do_not_run_on),
    ]
}

fn every_fixture_layout() {
    let benches = list_benchmarks(&fixtures()).unwrap();
    assert!(benches.len() >= 9, "fixtures: {benches:?}");
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    let mut nodejs = Vec::new();
    for entry in benches {
        let bench = sebs_package::BenchmarkDir::load(entry).unwrap();
        // Python snapshots keep their names from before Node.js; Node.js ones say so.
        let languages = [
            (Language::Python, "3.11", "handler.py", ""),
            (Language::Nodejs, "18", "handler.js", "nodejs-"),
        ];
        for (language, version, wrapper, prefix) in languages {
            if !bench.config.languages.contains(&language) {
                continue;
            }
            if language == Language::Nodejs {
                nodejs.push(bench.name.clone());
            }
            let env = FakeEnv::default();
            let package = cache
                .get_or_build(&bench, language, version, &env, false)
                .unwrap();
            let installs = env.requests.lock().unwrap().len();
            let listing = format!(
                "dependencies installed: {}\n{}",
                installs,
                crate::tree_listing(&package.dir, &[wrapper, MARKER_FILE])
            );
            insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
                insta::assert_snapshot!(format!("layout-{prefix}{}", bench.name), listing);
            });
        }
    }
    assert_eq!(
        nodejs,
        [
            "000.noop",
            "010.sleep",
            "020.raise",
            "030.timeout",
            "040.data-file",
            "060.sandbox-probe",
            "110.template",
            "210.transform",
            "220.prefix",
            "230.cart"
        ]
    );
}

fn versioned_requirements_replace_the_plain_file() {
    let bench = fixture("130.versioned");
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    let check = |version: &str, expect_from: &str| {
        let env = FakeEnv::default();
        let package = cache
            .get_or_build(&bench, Language::Python, version, &env, false)
            .unwrap();
        let shipped = std::fs::read_to_string(package.dir.join("requirements.txt")).unwrap();
        let source = std::fs::read_to_string(bench.path.join("python").join(expect_from)).unwrap();
        assert_eq!(shipped, source, "python {version}");
        // Versioned files are not shipped, not even under function/.
        assert!(!package.dir.join("function/requirements.txt.3.11").exists());
        assert!(!package.dir.join("function/requirements.txt").exists());
        let requests = env.requests.lock().unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].version, version);
        assert!(requests[0]
            .command()
            .join(" ")
            .contains("-r requirements.txt"));
    };
    check("3.11", "requirements.txt.3.11");
    check("3.10", "requirements.txt");
}

/// A benchmark folder in a temporary root; returns (root guard, loaded benchmark).
fn temp_benchmark(files: &[(&str, &str)]) -> (tempfile::TempDir, sebs_package::BenchmarkDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("900.tests/910.made");
    write_files(
        &dir,
        &[(
            "config.json",
            r#"{"timeout": 5, "memory": 128, "languages": ["python"], "modules": []}"#,
        )],
    );
    write_files(&dir, files);
    let bench = sebs_package::find_benchmark(tmp.path(), "910.made").unwrap();
    (tmp, bench)
}

fn init_sh_runs_like_sebs_and_its_failure_carries_output() {
    // SeBS's 110.dynamic-html does `cp -r "${SCRIPT_DIR}/templates" "${DIR}"` from python/init.sh.
    let (_tmp, bench) = temp_benchmark(&[
        ("python/function.py", "def handler(event):\n    return {}\n"),
        ("python/templates/t.html", "<p>{{ x }}</p>\n"),
        (
            "python/init.sh",
            "DIR=$1\nSCRIPT_DIR=\"$(cd \"$(dirname \"${BASH_SOURCE[0]}\")\" && pwd)\"\n\
             cp -r \"${SCRIPT_DIR}/templates\" \"${DIR}\"\n",
        ),
        (
            "init.sh",
            "echo \"args: $(basename \"$1\") $2 $3\" > \"$1/init-args.txt\"\necho ran\n",
        ),
    ]);
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(cache_dir.path());
    let package = cache
        .get_or_build(
            &bench,
            Language::Python,
            "3.11",
            &sebs_package::NoDeps,
            false,
        )
        .unwrap();
    let listing = crate::tree_listing(&package.dir, &["handler.py", MARKER_FILE]);
    assert_eq!(
        listing,
        "\
.sebs-package.json [size]
function/
function/function.py 34
function/init-args.txt 25
function/templates/
function/templates/t.html 15
handler.py [size]
"
    );
    let args = std::fs::read_to_string(package.dir.join("function/init-args.txt")).unwrap();
    let arch = sebs_package::layout::host_architecture();
    assert_eq!(args, format!("args: function false {arch}\n"));

    let (_tmp, bench) = temp_benchmark(&[
        ("python/function.py", "def handler(event):\n    return {}\n"),
        (
            "init.sh",
            "echo downloading; echo 'no network' >&2; exit 7\n",
        ),
    ]);
    let err = cache
        .get_or_build(
            &bench,
            Language::Python,
            "3.11",
            &sebs_package::NoDeps,
            false,
        )
        .unwrap_err();
    match &err {
        PackageError::Layout(LayoutError::InitFailed { status, output, .. }) => {
            assert_eq!(status, "status 7");
            assert_eq!(output, "downloading\nno network\n");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains("init.sh: it exited with status 7"),
        "{err}"
    );
    // The failed build left nothing behind in the cache.
    assert_eq!(leftovers(cache_dir.path()), Vec::<String>::new());
}

/// Entries of the cache root other than benchmark folders (failed or abandoned builds).
pub fn leftovers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn symlinks_stay_inside_the_benchmark() {
    let (tmp, bench) = temp_benchmark(&[
        ("python/function.py", "def handler(event):\n    return {}\n"),
        ("shared/common.txt", "shared\n"),
    ]);
    std::os::unix::fs::symlink("../shared/common.txt", bench.path.join("python/common.txt"))
        .unwrap();
    std::os::unix::fs::symlink("../shared", bench.path.join("python/shared")).unwrap();
    let sources = collect_sources(&bench, Language::Python).unwrap();
    let rels: Vec<String> = sources
        .files
        .iter()
        .map(|f| f.rel.display().to_string())
        .collect();
    assert_eq!(rels, ["common.txt", "function.py", "shared/common.txt"]);

    std::fs::write(tmp.path().join("secret.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink(
        tmp.path().join("secret.txt"),
        bench.path.join("python/secret.txt"),
    )
    .unwrap();
    let err = collect_sources(&bench, Language::Python).unwrap_err();
    assert!(matches!(err, LayoutError::SymlinkOutside { .. }), "{err:?}");
    assert!(
        err.to_string().contains("outside the benchmark directory"),
        "{err}"
    );
    std::fs::remove_file(bench.path.join("python/secret.txt")).unwrap();

    std::os::unix::fs::symlink("..", bench.path.join("python/shared/loop")).unwrap();
    let err = collect_sources(&bench, Language::Python).unwrap_err();
    assert!(matches!(err, LayoutError::SymlinkLoop { .. }), "{err:?}");
}

fn hash_changes_with_any_shipped_byte_and_only_then() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = copy_benchmark(&fixture("110.template"), tmp.path());
    write_files(&bench.path, &[("init.sh", "true\n")]);
    let hash = || content_hash(&collect_sources(&bench, Language::Python).unwrap()).unwrap();
    let base = hash();
    assert_eq!(base.len(), 32);
    assert_eq!(hash(), base, "hashing twice");

    // Things that do not change the package do not change the hash.
    write_files(
        &bench.path,
        &[
            ("python/__pycache__/function.cpython-311.pyc", "x"),
            ("input.py", "# other input\n"),
        ],
    );
    let f = std::fs::File::options()
        .append(true)
        .open(bench.path.join("python/function.py"))
        .unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(hash(), base, "caches, input.py and mtimes");

    // One changed byte in each shipped or hashed file changes it; restoring restores it.
    for rel in [
        "python/function.py",
        "python/requirements.txt",
        "python/templates/page.html",
        "init.sh",
    ] {
        let path = bench.path.join(rel);
        let original = std::fs::read(&path).unwrap();
        let mut changed = original.clone();
        changed[0] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert_ne!(hash(), base, "changing {rel}");
        std::fs::write(&path, &original).unwrap();
        assert_eq!(hash(), base, "restoring {rel}");
    }

    // The file names count too.
    let from = bench.path.join("python/templates/page.html");
    let to = bench.path.join("python/templates/page2.html");
    std::fs::rename(&from, &to).unwrap();
    assert_ne!(hash(), base, "renaming a template");
    std::fs::rename(&to, &from).unwrap();
    write_files(&bench.path, &[("python/requirements.txt.3.12", "jinja2\n")]);
    assert_ne!(hash(), base, "adding a versioned requirements file");
}

fn storage_modules_refuse_versions_their_libraries_do_not_run_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    let bench = sebs_package::find_benchmark(&fixtures(), "230.cart").unwrap();
    for (language, version, min) in [
        (Language::Python, "3.9", "3.10"),
        (Language::Nodejs, "16", "18"),
    ] {
        let env = FakeEnv::default();
        let err = cache
            .get_or_build(&bench, language, version, &env, false)
            .unwrap_err();
        assert!(
            matches!(
                &err,
                PackageError::Layout(LayoutError::ModuleNeedsVersion { min: m, .. }) if *m == min
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("--language-version {min}")),
            "{err}"
        );
        assert!(
            env.requests.lock().unwrap().is_empty(),
            "nothing installed first"
        );
    }
}

//! The package cache: reuse, rebuild on change or force, stale folders, concurrent builds,
//! and benchmarks with dependencies but no build environment.

use std::sync::Barrier;

use sebs_package::cache::MARKER_FILE;
use sebs_package::{
    BuildEnv, BuildError, InstallRequest, Language, NoDeps, PackageCache, PackageError,
};

use sebs_testkit::{trial, Trial};

use crate::layouts::leftovers;
use crate::{copy_benchmark, fixture, tree_listing, write_files, FakeEnv};

/// The tests of this module, each with what it needs from the machine.
pub fn trials() -> Vec<Trial> {
    vec![
        trial!(reuse_until_the_sources_change_or_force),
        trial!(an_incomplete_package_is_rebuilt),
        trial!(abandoned_builds_are_removed_by_age),
        trial!(dependencies_without_a_build_environment_fail_clearly),
        trial!(concurrent_builds_agree_on_one_package),
    ]
}

fn reuse_until_the_sources_change_or_force() {
    let tmp = tempfile::tempdir().unwrap();
    let bench = copy_benchmark(&fixture("110.template"), &tmp.path().join("benchmarks"));
    let cache = PackageCache::new(tmp.path().join("cache"));
    let env = FakeEnv::default();
    let build = |force| {
        cache
            .get_or_build(&bench, Language::Python, "3.11", &env, force)
            .unwrap()
    };

    let first = build(false);
    assert!(!first.reused);
    assert_eq!(
        first.dir,
        tmp.path()
            .join("cache/110.template/python-3.11")
            .join(&first.hash)
    );
    assert!(first.dir.join(MARKER_FILE).is_file());
    assert_eq!(
        first.size_bytes,
        sebs_package::cache::dir_size(&first.dir).unwrap()
            - std::fs::metadata(first.dir.join(MARKER_FILE))
                .unwrap()
                .len()
    );

    let second = build(false);
    assert_eq!(
        (second.reused, &second.dir, second.size_bytes),
        (true, &first.dir, first.size_bytes)
    );
    assert_eq!(
        env.requests.lock().unwrap().len(),
        1,
        "a reused package installs nothing"
    );

    let forced = build(true);
    assert_eq!((forced.reused, &forced.dir), (false, &first.dir));
    assert!(forced.dir.join(MARKER_FILE).is_file());

    // A changed template is a new package next to the old one.
    write_files(
        &bench.path,
        &[(
            "python/templates/page.html",
            "<h1>Welcome {{ username }}!</h1>\n",
        )],
    );
    let changed = build(false);
    assert!(!changed.reused);
    assert_ne!(changed.hash, first.hash);
    assert_eq!(
        std::fs::read_to_string(changed.dir.join("function/templates/page.html")).unwrap(),
        "<h1>Welcome {{ username }}!</h1>\n"
    );
    assert!(first.dir.is_dir());
    assert_eq!(leftovers(&cache.root), Vec::<String>::new());
}

fn an_incomplete_package_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    let bench = fixture("000.noop");
    let package = cache
        .get_or_build(&bench, Language::Python, "3.11", &NoDeps, false)
        .unwrap();
    // As if a build had been interrupted after the rename but the marker were lost.
    std::fs::remove_file(package.dir.join(MARKER_FILE)).unwrap();
    std::fs::remove_file(package.dir.join("handler.py")).unwrap();
    let again = cache
        .get_or_build(&bench, Language::Python, "3.11", &NoDeps, false)
        .unwrap();
    assert!(!again.reused);
    assert_eq!(again.dir, package.dir);
    assert!(again.dir.join("handler.py").is_file());
    assert!(again.dir.join(MARKER_FILE).is_file());
    assert_eq!(leftovers(&cache.root), Vec::<String>::new());
}

fn abandoned_builds_are_removed_by_age() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    write_files(
        tmp.path(),
        &[
            (".build-old/x", "x"),
            (".old-1/x", "x"),
            ("000.noop/keep", "x"),
        ],
    );
    cache.remove_abandoned(std::time::Duration::from_secs(3600));
    assert_eq!(leftovers(tmp.path()).len(), 2, "young folders stay");
    cache.remove_abandoned(std::time::Duration::ZERO);
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    assert!(tmp.path().join("000.noop/keep").is_file(), "packages stay");
}

fn dependencies_without_a_build_environment_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    let err = cache
        .get_or_build(
            &fixture("110.template"),
            Language::Python,
            "3.11",
            &NoDeps,
            false,
        )
        .unwrap_err();
    assert!(
        matches!(err, PackageError::Build(BuildError::NoEnvironment { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "install dependencies: benchmark 110.template needs dependencies; a build environment is required"
    );
    assert_eq!(leftovers(&cache.root), Vec::<String>::new());
    assert!(
        !tmp.path().join("110.template/python-3.11").exists()
            || std::fs::read_dir(tmp.path().join("110.template/python-3.11"))
                .unwrap()
                .next()
                .is_none()
    );

    // A requirements file of comments only needs no environment.
    let bench_tmp = tempfile::tempdir().unwrap();
    let bench = copy_benchmark(&fixture("110.template"), bench_tmp.path());
    write_files(&bench.path, &[("python/requirements.txt", "# nothing\n\n")]);
    let package = cache
        .get_or_build(&bench, Language::Python, "3.11", &NoDeps, false)
        .unwrap();
    assert!(!package.dir.join(".python_packages").exists());

    // A package.json with dependencies needs an environment as well.
    let err = cache
        .get_or_build(&bench, Language::Nodejs, "18", &NoDeps, false)
        .unwrap_err();
    assert!(
        matches!(err, PackageError::Build(BuildError::NoEnvironment { .. })),
        "{err:?}"
    );

    // A language the benchmark does not have.
    let err = cache
        .get_or_build(
            &fixture("120.compiled"),
            Language::Nodejs,
            "20",
            &NoDeps,
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "lay out 120.compiled for nodejs: the benchmark supports only python"
    );
}

/// Holds every install until both builds are inside one, so that both really build.
struct RacingEnv {
    barrier: Barrier,
    inner: FakeEnv,
}

impl BuildEnv for RacingEnv {
    fn install(&self, request: &InstallRequest) -> Result<(), BuildError> {
        self.barrier.wait();
        self.inner.install(request)
    }
}

fn concurrent_builds_agree_on_one_package() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = PackageCache::new(tmp.path());
    let bench = fixture("110.template");
    let env = RacingEnv {
        barrier: Barrier::new(2),
        inner: FakeEnv::default(),
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| cache.get_or_build(&bench, Language::Python, "3.11", &env, false));
        let b = s.spawn(|| cache.get_or_build(&bench, Language::Python, "3.11", &env, false));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(env.inner.requests.lock().unwrap().len(), 2, "both built");
    assert_eq!(
        (&a.dir, &a.hash, a.size_bytes),
        (&b.dir, &b.hash, b.size_bytes)
    );
    let mut reused = [a.reused, b.reused];
    reused.sort();
    assert_eq!(
        reused,
        [false, true],
        "one won the rename, the other used its package"
    );
    // The package is the one a lone build makes.
    let alone_dir = tempfile::tempdir().unwrap();
    let alone = PackageCache::new(alone_dir.path())
        .get_or_build(&bench, Language::Python, "3.11", &FakeEnv::default(), false)
        .unwrap();
    let redact = ["handler.py", MARKER_FILE];
    assert_eq!(
        tree_listing(&a.dir, &redact),
        tree_listing(&alone.dir, &redact)
    );
    assert_eq!((&alone.hash, alone.size_bytes), (&a.hash, a.size_bytes));
    assert_eq!(leftovers(&cache.root), Vec::<String>::new());
}

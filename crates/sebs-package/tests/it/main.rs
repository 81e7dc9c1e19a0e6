//! Integration tests of sebs-package on the workspace fixtures and on benchmarks made in
//! temporary folders: layouts (insta snapshots), hashing, the cache, init.sh and inputs.
//! None needs Docker: dependencies are "installed" by fake build environments.

mod cache;
mod inputs;
mod layouts;

sebs_testkit::main!(layouts::trials(), cache::trials(), inputs::trials());

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sebs_package::{BenchmarkDir, BuildEnv, BuildError, Install, InstallRequest};

/// The workspace's benchmark fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn fixture(name: &str) -> BenchmarkDir {
    sebs_package::find_benchmark(&fixtures(), name).unwrap()
}

/// Copies the benchmark folder `src` into `<dst>/<group>/<name>` and loads it from there.
pub fn copy_benchmark(bench: &BenchmarkDir, dst_root: &Path) -> BenchmarkDir {
    let dst = dst_root.join(&bench.group).join(&bench.name);
    copy_dir(&bench.path, &dst);
    sebs_package::find_benchmark(dst_root, &bench.name).unwrap()
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Writes `files` (relative path, contents) under `root`.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// A build environment that "installs" by writing the dependency file it was given into
/// `.python_packages/lib/site-packages/INSTALLED` (pip) or `node_modules/INSTALLED` (npm),
/// and remembers every request.
#[derive(Default)]
pub struct FakeEnv {
    pub requests: Mutex<Vec<InstallRequest>>,
}

impl BuildEnv for FakeEnv {
    fn install(&self, request: &InstallRequest) -> Result<(), BuildError> {
        let (deps, target) = match request.install {
            Install::Pip { .. } => ("requirements.txt", sebs_package::deps::PYTHON_PACKAGES_DIR),
            Install::Npm => ("package.json", "node_modules"),
        };
        let text = std::fs::read_to_string(request.package_dir.join(deps)).unwrap_or_default();
        let target = request.package_dir.join(target);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("INSTALLED"), text).unwrap();
        self.requests.lock().unwrap().push(request.clone());
        Ok(())
    }
}

/// Sorted `path size` lines of every file under `dir`; `redact` names files whose size is
/// replaced by `[size]` (their contents belong to other crates and change).
pub fn tree_listing(dir: &Path, redact: &[&str]) -> String {
    let mut lines = Vec::new();
    list(dir, dir, redact, &mut lines);
    lines.sort();
    lines.join("\n") + "\n"
}

fn list(root: &Path, dir: &Path, redact: &[&str], out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.push(format!("{rel}/"));
            list(root, &path, redact, out);
        } else if redact.contains(&rel.as_str()) {
            out.push(format!("{rel} [size]"));
        } else {
            out.push(format!("{rel} {}", meta.len()));
        }
    }
}

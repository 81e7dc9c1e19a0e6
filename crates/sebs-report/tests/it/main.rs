//! The report end to end: what it reads from results directories (snapshots of the model),
//! that no two labels of a plot overlap, and the page in headless Chromium: it loads
//! without a console error and every plot has drawn content.

mod chromium;
mod layout;
mod snapshot;
mod synthetic;

use std::path::{Path, PathBuf};

sebs_testkit::main!(snapshot::trials(), layout::trials(), chromium::trials());

/// Test data committed with the crate: a real perf-cost run of `010.sleep` (two memory
/// sizes, all four types, 25 repetitions) and a real memory report.
fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A copy of a data directory in a new temporary directory, as reports write into it.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&data(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

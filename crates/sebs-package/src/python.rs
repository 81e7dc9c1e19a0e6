//! Which `python3` runs `input.py`: the first on `PATH`, or, where that is a pyenv shim, the
//! interpreter the shim would choose, run directly.
//!
//! A pyenv shim is a bash script that runs `pyenv exec`, which looks the version up before it
//! starts Python: measured here, 0.15-0.3 s of a start's critical path on an idle machine and
//! ~0.3 s more under load. The lookup is redone here only where it is certain to agree with
//! pyenv's (one version named by `PYENV_VERSION`, a `.python-version` from the working
//! directory up, or `$PYENV_ROOT/version`, installed under `$PYENV_ROOT/versions`); anything
//! else (`system`, several versions, a prefix such as `3.11`) keeps the shim.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// How to start the host's `python3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPython {
    pub program: PathBuf,
    /// `PATH` for the process: as `pyenv exec` makes it, the version's `bin` first.
    pub path: Option<OsString>,
}

/// The `python3` to run in `dir`, given the process's `PATH` and `PYENV_VERSION`.
pub fn host_python(path: Option<&OsStr>, pyenv_version: Option<&OsStr>, dir: &Path) -> HostPython {
    let shim = HostPython {
        program: PathBuf::from("python3"),
        path: None,
    };
    let Some(path) = path else {
        return shim;
    };
    let Some(found) = std::env::split_paths(path)
        .map(|d| d.join("python3"))
        .find(|p| p.is_file())
    else {
        return shim;
    };
    let Some(version_bin) = pyenv_bin(&found, pyenv_version, dir) else {
        return shim;
    };
    let mut dirs = vec![version_bin.clone()];
    dirs.extend(std::env::split_paths(path));
    HostPython {
        program: version_bin.join("python3"),
        path: std::env::join_paths(dirs).ok(),
    }
}

/// The `bin` directory of the version the pyenv shim `python3` would run in `dir`, when
/// certain; `None` when `python3` is no pyenv shim.
fn pyenv_bin(python3: &Path, pyenv_version: Option<&OsStr>, dir: &Path) -> Option<PathBuf> {
    let shims = python3.parent()?;
    if shims.file_name()? != "shims" {
        return None;
    }
    // The shim names its root itself (`export PYENV_ROOT=...`); its parent is that root.
    let root = shims.parent()?;
    let script = std::fs::read(python3).ok()?;
    let script = String::from_utf8_lossy(&script[..script.len().min(4096)]);
    if !script.starts_with("#!") || !script.contains("pyenv\" exec") {
        return None;
    }
    let version = match pyenv_version.filter(|v| !v.is_empty()) {
        Some(v) => v.to_str()?.to_string(),
        None => version_file(root, dir)?,
    };
    if version.is_empty()
        || version == "system"
        || version.contains([':', '/', ' ', '\n'])
        || version.starts_with('.')
    {
        return None;
    }
    let bin = root.join("versions").join(&version).join("bin");
    bin.join("python3").is_file().then_some(bin)
}

/// The one version a `.python-version` from `dir` up, or `<root>/version`, names.
fn version_file(root: &Path, dir: &Path) -> Option<String> {
    let file = dir
        .ancestors()
        .map(|d| d.join(".python-version"))
        .find(|f| f.is_file())
        .unwrap_or_else(|| root.join("version"));
    let Ok(text) = std::fs::read_to_string(&file) else {
        // No version file at all: pyenv's `system`.
        return None;
    };
    let mut names = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = names.next()?;
    // Several versions (pyenv tries each in turn) are left to pyenv.
    match names.next() {
        None if !first.contains(char::is_whitespace) => Some(first.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIM: &str = "#!/usr/bin/env bash\nset -e\nexport PYENV_ROOT=\"/r\"\n\
                        exec \"/r/libexec/pyenv\" exec \"$program\" \"$@\"\n";

    /// A pyenv root with versions 3.11.7 and 3.12.1 and a shim, a `bench` folder in it, and
    /// `files` (path relative to the temp dir, contents) written on top.
    fn check(files: &[(&str, &str)], pyenv_version: Option<&str>, expect: Option<&str>) {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for v in ["3.11.7", "3.12.1"] {
            let bin = t.join("pyenv/versions").join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("python3"), "").unwrap();
        }
        std::fs::create_dir_all(t.join("pyenv/shims")).unwrap();
        std::fs::write(t.join("pyenv/shims/python3"), SHIM).unwrap();
        std::fs::create_dir_all(t.join("bench/000.noop")).unwrap();
        for (path, text) in files {
            let path = t.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let path = std::env::join_paths([t.join("empty"), t.join("pyenv/shims")]).unwrap();
        let got = host_python(
            Some(&path),
            pyenv_version.map(OsStr::new),
            &t.join("bench/000.noop"),
        );
        let program = got.program.strip_prefix(t).unwrap_or(&got.program);
        let context = format!("{files:?} {pyenv_version:?}");
        match expect {
            Some(v) => {
                assert_eq!(
                    program,
                    Path::new("pyenv/versions").join(v).join("bin/python3"),
                    "{context}"
                );
                let first = std::env::split_paths(got.path.as_ref().unwrap()).next();
                assert_eq!(
                    first,
                    got.program.parent().map(Path::to_path_buf),
                    "{context}"
                );
            }
            None => assert_eq!(got.program, Path::new("python3"), "{context}"),
        }
    }

    #[test]
    fn pyenv_shims_are_skipped_only_when_certain() {
        check(&[("pyenv/version", "3.11.7\n")], None, Some("3.11.7"));
        check(
            &[("pyenv/version", "# comment\n3.11.7\n")],
            None,
            Some("3.11.7"),
        );
        check(
            &[("pyenv/version", "3.11.7\n")],
            Some("3.12.1"),
            Some("3.12.1"),
        );
        check(
            &[
                ("pyenv/version", "3.11.7"),
                ("bench/.python-version", "3.12.1"),
            ],
            None,
            Some("3.12.1"),
        );
        check(
            &[("bench/000.noop/.python-version", "3.12.1")],
            None,
            Some("3.12.1"),
        );
        // pyenv's `system`, no version file, several versions, a prefix, an unknown one.
        check(&[("pyenv/version", "system")], None, None);
        check(&[], None, None);
        check(&[("pyenv/version", "3.11.7\n3.12.1\n")], None, None);
        check(&[("pyenv/version", "3.11.7")], Some("3.11.7:3.12.1"), None);
        check(&[("pyenv/version", "3.11")], None, None);
        check(&[("pyenv/version", "3.9.1")], None, None);
        check(&[("pyenv/version", "../../x")], None, None);
        // A python3 that is no shim, found first, is used as it is.
        check(
            &[("pyenv/version", "3.11.7"), ("empty/python3", "")],
            None,
            None,
        );
        // A "shims" folder whose python3 is not pyenv's.
        check(
            &[
                ("pyenv/version", "3.11.7"),
                ("pyenv/shims/python3", "#!/bin/sh\n"),
            ],
            None,
            None,
        );
    }
}

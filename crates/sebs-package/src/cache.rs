//! The package cache: one complete package per content hash, built once and reused.
//!
//! Packages live at `<root>/<benchmark>/<language>-<version>/<hash>/`. A build happens in a
//! temporary folder inside `root` and becomes visible by one `rename`, so a package folder
//! is either absent or complete; its marker file, written last, confirms that.

use std::path::{Path, PathBuf};

use sebs_wire::Language;
use serde::{Deserialize, Serialize};

use crate::benchmark::BenchmarkDir;
use crate::deps::{
    package_json_nonempty, requirements_nonempty, BuildEnv, BuildError, Install, InstallRequest,
    PYTHON_PACKAGES_DIR,
};
use crate::layout::{collect_sources, content_hash, lay_out, LayoutError};

/// Build folders older than this are taken as abandoned by a killed process.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The file written last into a package, holding [`Marker`]'s JSON.
pub const MARKER_FILE: &str = ".sebs-package.json";

/// A built package, ready to mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The package root (mounted at `/function`).
    pub dir: PathBuf,
    /// The content hash that names it (see [`crate::layout::content_hash`]).
    pub hash: String,
    /// Total size of its files in bytes, the marker excluded.
    pub size_bytes: u64,
    /// True when this call did not build it: it was in the cache, or a concurrent build of
    /// the same package finished first.
    pub reused: bool,
}

/// The cache of built packages under `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageCache {
    pub root: PathBuf,
}

/// A package that could not be built or found.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Version(#[from] sebs_wire::UnknownVersion),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write package marker {path}")]
    Marker {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The marker's on-disk format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    benchmark: String,
    language: Language,
    version: String,
    hash: String,
    size_bytes: u64,
}

/// The default cache root: `$XDG_CACHE_HOME/sebs-local/packages`, else
/// `$HOME/.cache/sebs-local/packages`. Empty or relative values count as unset, as the XDG
/// specification asks; `None` when neither gives a root.
pub fn default_cache_root(xdg_cache_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    fn usable(v: Option<&str>) -> Option<&Path> {
        v.map(Path::new).filter(|p| p.is_absolute())
    }
    let base = match usable(xdg_cache_home) {
        Some(xdg) => xdg.to_path_buf(),
        None => usable(home)?.join(".cache"),
    };
    Some(base.join("sebs-local").join("packages"))
}

impl PackageCache {
    pub fn new(root: impl Into<PathBuf>) -> PackageCache {
        PackageCache { root: root.into() }
    }

    /// Where `input.py`'s inspections are remembered: `<root>/.needs`, beside the packages
    /// whose modules they decide.
    pub fn needs_memo(&self) -> crate::input::NeedsMemo {
        crate::input::NeedsMemo {
            dir: self.root.join(".needs"),
        }
    }

    /// Where the package with `hash` lives, built or not.
    pub fn package_dir(
        &self,
        benchmark: &str,
        language: Language,
        version: &str,
        hash: &str,
    ) -> PathBuf {
        self.root
            .join(benchmark)
            .join(format!("{language}-{version}"))
            .join(hash)
    }

    /// The package of `bench` for `language` `version`: the cached one when its content
    /// hash is unchanged and `force` is false, otherwise a new build. Dependencies are
    /// installed through `env`, only when the dependency file asks for some.
    ///
    /// Safe to call from several threads or processes at once: each builds in its own
    /// temporary folder and the first to rename it into place wins; the others use the
    /// winner's package.
    pub fn get_or_build(
        &self,
        bench: &BenchmarkDir,
        language: Language,
        version: &str,
        env: &dyn BuildEnv,
        force: bool,
    ) -> Result<Package, PackageError> {
        // The version names a folder of the cache: only known ones do.
        language.check_version(version)?;
        let sources = collect_sources(bench, language)?;
        let hash = content_hash(&sources)?;
        let dir = self.package_dir(&bench.name, language, version, &hash);
        if !force {
            if let Some(found) = read_marker(&dir, &hash) {
                return Ok(Package {
                    dir,
                    hash,
                    size_bytes: found.size_bytes,
                    reused: true,
                });
            }
        }

        std::fs::create_dir_all(&self.root).map_err(io("create cache folder", &self.root))?;
        self.remove_abandoned(ABANDONED_AFTER);
        let tmp = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(&self.root)
            .map_err(io("create build folder in", &self.root))?;
        let layout = lay_out(&sources, version, tmp.path())?;
        if let Some(deps) = &layout.deps_file {
            let path = tmp.path().join(deps);
            let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
            let needed = match language {
                Language::Python => requirements_nonempty(&text),
                Language::Nodejs => package_json_nonempty(&text),
            };
            if needed {
                let install = match language {
                    Language::Python => Install::Pip {
                        requirements: deps.clone(),
                        target: PathBuf::from(PYTHON_PACKAGES_DIR),
                    },
                    Language::Nodejs => Install::Npm,
                };
                env.install(&InstallRequest {
                    benchmark: bench.name.clone(),
                    language,
                    version: version.to_string(),
                    package_dir: tmp.path().to_path_buf(),
                    install,
                })?;
            }
        }
        let size_bytes = dir_size(tmp.path())?;
        let marker = Marker {
            benchmark: bench.name.clone(),
            language,
            version: version.to_string(),
            hash: hash.clone(),
            size_bytes,
        };
        let marker_path = tmp.path().join(MARKER_FILE);
        let text =
            serde_json::to_string_pretty(&marker).map_err(|source| PackageError::Marker {
                path: marker_path.clone(),
                source,
            })?;
        std::fs::write(&marker_path, text).map_err(io("write", &marker_path))?;

        let parent = dir.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(io("create cache folder", parent))?;
        let built = tmp.keep();
        let reused = self.commit(&built, &dir, &hash, force)?;
        if reused {
            remove_quietly(&built);
        }
        Ok(Package {
            dir,
            hash,
            size_bytes,
            reused,
        })
    }

    /// Moves the finished build `built` to `dir`. Returns true when another build's package
    /// took the place first and is used instead.
    fn commit(
        &self,
        built: &Path,
        dir: &Path,
        hash: &str,
        force: bool,
    ) -> Result<bool, PackageError> {
        // A stale (incomplete) package in the way is moved aside; a forced build moves aside
        // the current one once. Up to three tries in case others keep racing.
        let mut replace = force;
        for _ in 0..3 {
            if replace || (dir.exists() && read_marker(dir, hash).is_none()) {
                self.move_aside(dir)?;
            }
            replace = false;
            match std::fs::rename(built, dir) {
                Ok(()) => return Ok(false),
                Err(_) if read_marker(dir, hash).is_some() => return Ok(true),
                Err(_) if dir.exists() => continue,
                Err(source) => {
                    return Err(PackageError::Io {
                        action: "move package to",
                        path: dir.to_path_buf(),
                        source,
                    })
                }
            }
        }
        Err(PackageError::Io {
            action: "move package to",
            path: dir.to_path_buf(),
            source: std::io::Error::other("the place stays taken by an incomplete package"),
        })
    }

    /// Removes build and moved-aside folders in the cache root older than `age`: what a
    /// killed process left behind. Younger ones may belong to builds still running.
    pub fn remove_abandoned(&self, age: std::time::Duration) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(".build-") || name.starts_with(".old-")) {
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified());
            let old = modified.is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d >= age));
            if old {
                remove_quietly(&entry.path());
            }
        }
    }

    /// Renames `dir` (when present) to a temporary name in the cache root and removes it.
    fn move_aside(&self, dir: &Path) -> Result<(), PackageError> {
        let old = self.root.join(format!(".old-{}", uuid::Uuid::new_v4()));
        match std::fs::rename(dir, &old) {
            Ok(()) => {
                remove_quietly(&old);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(PackageError::Io {
                action: "move aside old package",
                path: dir.to_path_buf(),
                source,
            }),
        }
    }
}

fn remove_quietly(path: &Path) {
    // A leftover folder in the cache root wastes space but breaks nothing.
    let _ = std::fs::remove_dir_all(path);
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PackageError {
    let path = path.to_path_buf();
    move |source| PackageError::Io {
        action,
        path,
        source,
    }
}

/// The marker of a complete package at `dir` built from `hash`, if there is one.
fn read_marker(dir: &Path, hash: &str) -> Option<Marker> {
    let text = std::fs::read_to_string(dir.join(MARKER_FILE)).ok()?;
    let marker: Marker = serde_json::from_str(&text).ok()?;
    (marker.hash == hash).then_some(marker)
}

/// Sum of the sizes of the files under `dir`, symlinks not followed.
pub fn dir_size(dir: &Path) -> Result<u64, PackageError> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io("read", &d))? {
            let entry = entry.map_err(io("read", &d))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io("read", &path))?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_roots() {
        let check = |xdg: Option<&str>, home: Option<&str>, expect: Option<&str>| {
            assert_eq!(
                default_cache_root(xdg, home),
                expect.map(PathBuf::from),
                "{xdg:?} {home:?}"
            );
        };
        check(Some("/x"), Some("/h"), Some("/x/sebs-local/packages"));
        check(None, Some("/h"), Some("/h/.cache/sebs-local/packages"));
        check(Some(""), Some("/h"), Some("/h/.cache/sebs-local/packages"));
        check(
            Some("relative"),
            Some("/h"),
            Some("/h/.cache/sebs-local/packages"),
        );
        check(None, None, None);
        check(None, Some(""), None);
    }
}

//! Finding benchmarks by name under a benchmarks root laid out as `<group>/<NNN.name>/config.json`.

use std::path::{Path, PathBuf};

use crate::config::{BenchmarkConfig, ConfigError};

/// Environment variable naming the benchmarks root when `--benchmarks-dir` is not given.
pub const BENCHMARKS_DIR_ENV: &str = "SEBS_BENCHMARKS_DIR";

/// A benchmark's folder on disk, located but not read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BenchmarkEntry {
    /// The group folder, e.g. `000.microbenchmarks`.
    pub group: String,
    /// The full name, e.g. `010.sleep`.
    pub name: String,
    /// `<root>/<group>/<name>`.
    pub path: PathBuf,
}

impl BenchmarkEntry {
    /// The name without its number: `sleep` for `010.sleep`.
    pub fn bare_name(&self) -> &str {
        bare_name(&self.name)
    }
}

/// A benchmark found by [`find_benchmark`], with its parsed `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkDir {
    /// The group folder, e.g. `000.microbenchmarks`.
    pub group: String,
    /// The full name, e.g. `010.sleep`.
    pub name: String,
    /// `<root>/<group>/<name>`.
    pub path: PathBuf,
    pub config: BenchmarkConfig,
}

impl BenchmarkDir {
    /// Reads the benchmark at `entry` (its `config.json`).
    pub fn load(entry: BenchmarkEntry) -> Result<BenchmarkDir, ConfigError> {
        let config = BenchmarkConfig::load(&entry.path.join("config.json"))?;
        Ok(BenchmarkDir {
            group: entry.group,
            name: entry.name,
            path: entry.path,
            config,
        })
    }
}

/// A benchmark that cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(
        "find a benchmarks directory: none of --benchmarks-dir, {BENCHMARKS_DIR_ENV}, \
         {cwd_benchmarks} or the workspace fixtures is there"
    )]
    NoRoot { cwd_benchmarks: PathBuf },
    #[error("list benchmarks in {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("find benchmark {name:?} in {root}: no such benchmark{}", did_you_mean(.closest))]
    NotFound {
        name: String,
        root: PathBuf,
        closest: Vec<String>,
    },
    #[error("find benchmark {name:?} in {root}: the name is ambiguous, it could be any of {}",
            .candidates.join(", "))]
    Ambiguous {
        name: String,
        root: PathBuf,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn did_you_mean(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", closest.join(", "))
    }
}

/// The benchmarks root to use, in order of preference: the `--benchmarks-dir` flag, the
/// [`BENCHMARKS_DIR_ENV`] variable (its value passed as `env`), `<cwd>/benchmarks` if that
/// is a directory, and last the workspace's own fixtures.
///
/// Pure except for the one `is_dir` check on `<cwd>/benchmarks`; an empty `env` counts as unset.
pub fn default_benchmarks_root(
    cli: Option<&Path>,
    env: Option<&str>,
    cwd: &Path,
    workspace_fixtures: Option<&Path>,
) -> Result<PathBuf, FindError> {
    if let Some(dir) = cli {
        return Ok(absolute(dir, cwd));
    }
    if let Some(dir) = env.filter(|e| !e.trim().is_empty()) {
        return Ok(absolute(Path::new(dir), cwd));
    }
    let local = cwd.join("benchmarks");
    if local.is_dir() {
        return Ok(local);
    }
    workspace_fixtures
        .map(Path::to_path_buf)
        .ok_or(FindError::NoRoot {
            cwd_benchmarks: local,
        })
}

fn absolute(dir: &Path, cwd: &Path) -> PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        cwd.join(dir)
    }
}

/// Every benchmark under `root`, sorted by group then name: the folders
/// `<root>/<group>/<name>` that hold a `config.json`. Other folders (SeBS's `wrappers/`) are
/// skipped.
pub fn list_benchmarks(root: &Path) -> Result<Vec<BenchmarkEntry>, FindError> {
    let mut out = Vec::new();
    for group in read_dir_sorted(root)? {
        if !group.is_dir() {
            continue;
        }
        for bench in read_dir_sorted(&group)? {
            if bench.join("config.json").is_file() {
                out.push(BenchmarkEntry {
                    group: file_name(&group),
                    name: file_name(&bench),
                    path: bench,
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, FindError> {
    let err = |source| FindError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        paths.push(entry.map_err(err)?.path());
    }
    paths.sort();
    Ok(paths)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn bare_name(full: &str) -> &str {
    match full.split_once('.') {
        Some((num, rest)) if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => full,
    }
}

/// Finds the benchmark called `name` under `root` and reads its config.
///
/// `name` is the full `NNN.name` (`110.dynamic-html`), the bare name (`dynamic-html`) when
/// only one benchmark has it, or `group/NNN.name`. A name that matches nothing is an error
/// listing the closest names by edit distance.
pub fn find_benchmark(root: &Path, name: &str) -> Result<BenchmarkDir, FindError> {
    let all = list_benchmarks(root)?;
    let entry = select(&all, name).map_err(|e| match e {
        Selection::NotFound(closest) => FindError::NotFound {
            name: name.to_string(),
            root: root.to_path_buf(),
            closest,
        },
        Selection::Ambiguous(candidates) => FindError::Ambiguous {
            name: name.to_string(),
            root: root.to_path_buf(),
            candidates,
        },
    })?;
    Ok(BenchmarkDir::load(entry.clone())?)
}

enum Selection {
    NotFound(Vec<String>),
    Ambiguous(Vec<String>),
}

/// The pure part of [`find_benchmark`]: picks `name` out of `all`.
fn select<'a>(all: &'a [BenchmarkEntry], name: &str) -> Result<&'a BenchmarkEntry, Selection> {
    let name = name.trim().trim_end_matches('/');
    let (group, name) = match name.rsplit_once('/') {
        Some((g, n)) => (Some(g.rsplit('/').next().unwrap_or(g)), n),
        None => (None, name),
    };
    let in_group = |e: &&BenchmarkEntry| group.is_none_or(|g| e.group == g);
    let full: Vec<&BenchmarkEntry> = all
        .iter()
        .filter(in_group)
        .filter(|e| e.name == name)
        .collect();
    let matches = if full.is_empty() {
        all.iter()
            .filter(in_group)
            .filter(|e| e.bare_name() == name)
            .collect()
    } else {
        full
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(Selection::NotFound(closest(all, name))),
        many => Err(Selection::Ambiguous(
            many.iter()
                .map(|e| format!("{}/{}", e.group, e.name))
                .collect(),
        )),
    }
}

/// Up to three names nearest to `name`, comparing with full and bare names alike.
fn closest(all: &[BenchmarkEntry], name: &str) -> Vec<String> {
    let limit = (name.chars().count() / 2).max(3);
    let mut scored: Vec<(usize, &str)> = all
        .iter()
        .map(|e| {
            let d =
                strsim::levenshtein(name, &e.name).min(strsim::levenshtein(name, e.bare_name()));
            (d, e.name.as_str())
        })
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<BenchmarkEntry> {
        [
            ("000.microbenchmarks", "010.sleep"),
            ("000.microbenchmarks", "020.raise"),
            ("100.webapps", "110.dynamic-html"),
            ("100.webapps", "120.uploader"),
            ("900.other", "910.sleep"),
        ]
        .into_iter()
        .map(|(g, n)| BenchmarkEntry {
            group: g.into(),
            name: n.into(),
            path: PathBuf::from(g).join(n),
        })
        .collect()
    }

    fn check(name: &str, expect: &str) {
        let all = entries();
        let got = match select(&all, name) {
            Ok(e) => format!("{}/{}", e.group, e.name),
            Err(Selection::NotFound(c)) => format!("not found; closest {c:?}"),
            Err(Selection::Ambiguous(c)) => format!("ambiguous {c:?}"),
        };
        assert_eq!(got, expect, "selecting {name:?}");
    }

    #[test]
    fn selection() {
        check("110.dynamic-html", "100.webapps/110.dynamic-html");
        check("dynamic-html", "100.webapps/110.dynamic-html");
        check("raise", "000.microbenchmarks/020.raise");
        check(
            "sleep",
            "ambiguous [\"000.microbenchmarks/010.sleep\", \"900.other/910.sleep\"]",
        );
        check("900.other/sleep", "900.other/910.sleep");
        check(
            "benchmarks/000.microbenchmarks/010.sleep",
            "000.microbenchmarks/010.sleep",
        );
        check("010.sleep", "000.microbenchmarks/010.sleep");
        check("dynamic-htlm", "not found; closest [\"110.dynamic-html\"]");
        check(
            "110.dynamic_html",
            "not found; closest [\"110.dynamic-html\"]",
        );
        check("slep", "not found; closest [\"010.sleep\", \"910.sleep\"]");
        check("completely-different-thing", "not found; closest []");
    }

    #[test]
    fn roots() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path();
        let fixtures = Path::new("/ws/fixtures");
        let check_root = |cli: Option<&str>, env: Option<&str>, expect: Option<PathBuf>| {
            let got = default_benchmarks_root(cli.map(Path::new), env, cwd, Some(fixtures)).ok();
            assert_eq!(got, expect, "cli {cli:?} env {env:?}");
        };
        check_root(Some("/a"), Some("/b"), Some("/a".into()));
        check_root(Some("rel"), None, Some(cwd.join("rel")));
        check_root(None, Some("/b"), Some("/b".into()));
        check_root(None, Some(""), Some(fixtures.into()));
        check_root(None, None, Some(fixtures.into()));
        std::fs::create_dir(cwd.join("benchmarks")).unwrap();
        check_root(None, None, Some(cwd.join("benchmarks")));
        check_root(None, Some("/b"), Some("/b".into()));

        let none = default_benchmarks_root(None, None, Path::new("/nonexistent"), None);
        assert!(matches!(none, Err(FindError::NoRoot { .. })), "{none:?}");
    }

    #[test]
    fn find_reads_config_and_reports_typos() {
        let tmp = tempfile::tempdir().unwrap();
        let bench = tmp.path().join("000.micro/010.sleep");
        std::fs::create_dir_all(&bench).unwrap();
        std::fs::create_dir_all(tmp.path().join("wrappers/local/python")).unwrap();
        std::fs::write(
            bench.join("config.json"),
            r#"{"timeout": 3, "memory": 128, "languages": ["python"], "modules": []}"#,
        )
        .unwrap();
        let b = find_benchmark(tmp.path(), "sleep").unwrap();
        assert_eq!(
            (b.group.as_str(), b.name.as_str(), b.config.timeout_s),
            ("000.micro", "010.sleep", 3)
        );
        assert_eq!(b.path, bench);

        let err = find_benchmark(tmp.path(), "sleeep").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "find benchmark \"sleeep\" in {}: no such benchmark; did you mean 010.sleep?",
                tmp.path().display()
            )
        );
        let err = find_benchmark(&tmp.path().join("missing"), "sleep").unwrap_err();
        assert!(matches!(err, FindError::ReadDir { .. }), "{err:?}");
    }
}

//! The local platform's code package layout (spec section 2): what goes where, and the
//! content hash that names a package.
//!
//! A package is laid out in three steps: [`collect_sources`] walks the benchmark's
//! `<language>/` folder, [`plan_layout`] (pure) decides each file's place, and [`lay_out`]
//! runs `init.sh` and writes the files. [`content_hash`] names the result before it is built.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use md5::{Digest, Md5};
use sebs_wire::storage::{Wrapper, NODEJS_STORAGE_WRAPPERS, PYTHON_STORAGE_WRAPPERS};
use sebs_wire::{worker, Language};

use crate::benchmark::BenchmarkDir;
use crate::config::Module;

/// The sub-folder holding the benchmark's own code, so that it is importable as a module.
pub const FUNCTION_DIR: &str = "function";

/// The platform's files written at a package's root: our language worker.
///
/// Python gets `handler.py`, Node.js `handler.js`.
pub fn wrapper_files(language: Language) -> Vec<(&'static str, &'static str)> {
    match language {
        Language::Python => vec![(worker::PYTHON_WRAPPER_FILE, worker::PYTHON_WRAPPER)],
        Language::Nodejs => vec![(worker::NODEJS_WRAPPER_FILE, worker::NODEJS_WRAPPER)],
    }
}

/// Our `storage` and `nosql` modules for `modules`, in that order: copied into the
/// package's `function/` folder, with the client libraries they import added to its
/// dependencies.
pub fn module_wrappers(language: Language, modules: &[Module]) -> Vec<Wrapper> {
    let [storage, nosql] = match language {
        Language::Python => PYTHON_STORAGE_WRAPPERS,
        Language::Nodejs => NODEJS_STORAGE_WRAPPERS,
    };
    let mut out = Vec::new();
    if modules.contains(&Module::Storage) {
        out.push(storage);
    }
    if modules.contains(&Module::Nosql) {
        out.push(nosql);
    }
    out
}

/// The name a requirement line installs, normalised as pip compares names
/// (`Pillow>=10; python_version>"3"` → `pillow`).
fn requirement_name(line: &str) -> Option<String> {
    let line = line
        .split_once('#')
        .map_or(line, |(before, _)| before)
        .trim();
    if line.is_empty() || line.starts_with('-') {
        return None;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(line.len());
    let name = line[..end].to_ascii_lowercase().replace(['_', '.'], "-");
    (!name.is_empty()).then_some(name)
}

/// `requirements.txt` with our modules' libraries added, each unless the benchmark names
/// that library itself (its pin wins).
pub fn merge_requirements(text: Option<&str>, wrappers: &[Wrapper]) -> String {
    let mut out = text.unwrap_or_default().to_string();
    let named: Vec<String> = out.lines().filter_map(requirement_name).collect();
    for p in wrappers.iter().flat_map(|w| w.packages) {
        let name = p.name.to_ascii_lowercase().replace(['_', '.'], "-");
        if named.contains(&name) || out.contains(&p.pip_requirement()) {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&p.pip_requirement());
        out.push('\n');
    }
    out
}

/// `package.json` with our modules' libraries added to `dependencies`, each unless the
/// benchmark declares it itself.
pub fn merge_package_json(
    text: Option<&str>,
    wrappers: &[Wrapper],
) -> Result<String, serde_json::Error> {
    let mut json: serde_json::Value = match text {
        Some(t) => serde_json::from_str(t)?,
        None => serde_json::json!({"name": "function", "version": "1.0.0"}),
    };
    let Some(top) = json.as_object_mut() else {
        return Err(serde::de::Error::custom(
            "package.json is not a JSON object",
        ));
    };
    let deps = top
        .entry("dependencies")
        .or_insert_with(|| serde_json::json!({}));
    if !deps.is_object() {
        *deps = serde_json::json!({});
    }
    if let Some(deps) = deps.as_object_mut() {
        for p in wrappers.iter().flat_map(|w| w.packages) {
            deps.entry(p.name)
                .or_insert_with(|| serde_json::Value::from(p.version));
        }
    }
    serde_json::to_string_pretty(&json)
}

/// The file names at a package's root that are not the benchmark's code (SeBS's
/// `CONFIG_FILES` of its local platform).
pub fn entry_files(language: Language) -> &'static [&'static str] {
    match language {
        Language::Python => &["handler.py", "requirements.txt", ".python_packages"],
        Language::Nodejs => &["handler.js", "package.json", "node_modules"],
    }
}

/// The file that lists a language's dependencies.
pub fn deps_file_name(language: Language) -> &'static str {
    match language {
        Language::Python => "requirements.txt",
        Language::Nodejs => "package.json",
    }
}

/// The architecture name SeBS passes to `init.sh` for this host.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x64",
    }
}

/// A package that cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("lay out {benchmark} for {language}: the benchmark supports only {supported}")]
    UnsupportedLanguage {
        benchmark: String,
        language: Language,
        supported: String,
    },
    #[error("lay out {benchmark} for {language}: {path} is not a directory")]
    NoLanguageDir {
        benchmark: String,
        language: Language,
        path: PathBuf,
    },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("follow symlink {path}: it points to {target}, outside the benchmark directory")]
    SymlinkOutside { path: PathBuf, target: PathBuf },
    #[error("follow symlink {path}: it leads back to {target}, a loop")]
    SymlinkLoop { path: PathBuf, target: PathBuf },
    #[error("copy {path}: only regular files, directories and symlinks can be packaged")]
    SpecialFile { path: PathBuf },
    #[error("copy {from} to {to}: init.sh already put a directory there")]
    Conflict { from: PathBuf, to: PathBuf },
    #[error("run {script}")]
    InitSpawn {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "package {module} for {language} {version}: its libraries need {language} {min} or \
         later (pass --language-version {min} or newer)"
    )]
    ModuleNeedsVersion {
        module: &'static str,
        language: Language,
        version: String,
        min: &'static str,
    },
    #[error("add our modules' libraries to {path}")]
    Dependencies {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("run {script}: it exited with {status}; its output:\n{output}")]
    InitFailed {
        script: PathBuf,
        status: String,
        output: String,
    },
}

/// One file of a benchmark's `<language>/` folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the `<language>/` folder, as it is shipped.
    pub rel: PathBuf,
    /// Where to read it (a symlink's resolved target).
    pub abs: PathBuf,
}

/// Everything a package is made from, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub benchmark: String,
    pub language: Language,
    /// The `<language>/` folder's files, sorted by `rel`; `init.sh` and `package.sh` at its
    /// top and caches (`__pycache__`, `*.pyc`, `node_modules`, `.python_packages`) excluded.
    pub files: Vec<SourceFile>,
    /// `init.sh` of the benchmark and of its `<language>/` folder, in the order SeBS runs them.
    pub init_scripts: Vec<PathBuf>,
    /// Services the function uses (its `config.json`'s `modules`, and what its `input.py`
    /// asks for): our module for each is shipped in `function/`.
    pub modules: Vec<Module>,
}

/// Finds the files a package of `bench` in `language` is made from.
///
/// Symlinks are followed only while they stay inside the benchmark's folder.
pub fn collect_sources(bench: &BenchmarkDir, language: Language) -> Result<Sources, LayoutError> {
    if !bench.config.languages.contains(&language) {
        let mut names: Vec<String> = bench
            .config
            .languages
            .iter()
            .map(|l| l.to_string())
            .collect();
        names.extend(bench.config.other_languages.iter().cloned());
        return Err(LayoutError::UnsupportedLanguage {
            benchmark: bench.name.clone(),
            language,
            supported: if names.is_empty() {
                "no language".into()
            } else {
                names.join(", ")
            },
        });
    }
    let lang_dir = bench.path.join(language.as_str());
    if !lang_dir.is_dir() {
        return Err(LayoutError::NoLanguageDir {
            benchmark: bench.name.clone(),
            language,
            path: lang_dir,
        });
    }
    let root = bench
        .path
        .canonicalize()
        .map_err(|source| LayoutError::Read {
            path: bench.path.clone(),
            source,
        })?;
    let mut files = Vec::new();
    let mut stack = vec![root.join(language.as_str())];
    walk(&lang_dir, Path::new(""), &root, &mut stack, &mut files)?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    let init_scripts = [bench.path.join("init.sh"), lang_dir.join("init.sh")]
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    let mut modules = bench.config.modules.clone();
    modules.sort();
    modules.dedup();
    Ok(Sources {
        benchmark: bench.name.clone(),
        language,
        files,
        init_scripts,
        modules,
    })
}

fn is_excluded(rel: &Path, is_dir: bool) -> bool {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let top = rel.components().count() == 1;
    if is_dir {
        matches!(
            name.as_ref(),
            "__pycache__" | "node_modules" | ".python_packages"
        )
    } else {
        (top && matches!(name.as_ref(), "init.sh" | "package.sh")) || name.ends_with(".pyc")
    }
}

fn walk(
    dir: &Path,
    rel: &Path,
    root: &Path,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<SourceFile>,
) -> Result<(), LayoutError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LayoutError::Read { path, source }
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        entries.push(entry.map_err(read_err(dir))?.path());
    }
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap_or_default();
        let rel = rel.join(name);
        let meta = std::fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let (real, meta) = if meta.file_type().is_symlink() {
            let target = path.canonicalize().map_err(read_err(&path))?;
            if !target.starts_with(root) {
                return Err(LayoutError::SymlinkOutside { path, target });
            }
            let meta = std::fs::metadata(&target).map_err(read_err(&target))?;
            (target, meta)
        } else {
            (path.clone(), meta)
        };
        if is_excluded(&rel, meta.is_dir()) {
            continue;
        }
        if meta.is_dir() {
            let canon = real.canonicalize().map_err(read_err(&real))?;
            if stack.contains(&canon) {
                return Err(LayoutError::SymlinkLoop {
                    path,
                    target: canon,
                });
            }
            stack.push(canon);
            walk(&real, &rel, root, stack, out)?;
            stack.pop();
        } else if meta.is_file() {
            out.push(SourceFile { rel, abs: real });
        } else {
            return Err(LayoutError::SpecialFile { path });
        }
    }
    Ok(())
}

/// Where each file of a benchmark's `<language>/` folder goes in the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `(from, to)`: `from` relative to the `<language>/` folder, `to` to the package root.
    pub entries: Vec<(PathBuf, PathBuf)>,
    /// The dependency file at the package root, when the benchmark has one.
    pub deps_file: Option<PathBuf>,
}

/// Decides the package layout from the relative paths of a `<language>/` folder.
///
/// Everything goes under `function/` except the dependency file: `requirements.txt` for
/// Python, `package.json` for Node.js, where `<file>.<version>` (e.g.
/// `requirements.txt.3.11`) replaces `<file>` for that language version. The chosen one is
/// shipped at the root under the plain name; the other versions are not shipped.
pub fn plan_layout(files: &[PathBuf], language: Language, version: &str) -> Plan {
    let deps = deps_file_name(language);
    let versioned = format!("{deps}.{version}");
    let top = |p: &Path| p.components().count() == 1;
    let name = |p: &Path| p.to_string_lossy().into_owned();
    let chosen = files
        .iter()
        .find(|p| top(p) && name(p) == versioned)
        .or_else(|| files.iter().find(|p| top(p) && name(p) == deps));
    let mut entries = Vec::new();
    for f in files {
        if top(f) && name(f).starts_with(deps) {
            if Some(f) == chosen {
                entries.push((f.clone(), PathBuf::from(deps)));
            }
            // Other versions' dependency files stay behind.
            continue;
        }
        entries.push((f.clone(), Path::new(FUNCTION_DIR).join(f)));
    }
    Plan {
        entries,
        deps_file: chosen.map(|_| PathBuf::from(deps)),
    }
}

/// The package's identity: MD5 (hex) over the sorted relative paths and contents of the
/// sources, the `init.sh` scripts and our wrapper files.
///
/// SeBS hashes only the top-level `*.py`, `requirements.txt*`, `*.sh` and `*.json` of the
/// `<language>/` folder (`*.js` and `package.json` for Node.js) plus its wrappers, without
/// the file names. We ship every file of the folder (templates, data files), so we hash every
/// one of them, with its path: a changed template or a renamed file makes a new package.
/// What `init.sh` downloads is not hashed; a change of the script itself is.
pub fn content_hash(sources: &Sources) -> Result<String, LayoutError> {
    let mut parts: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for f in &sources.files {
        parts.insert(format!("source/{}", portable(&f.rel)), read(&f.abs)?);
    }
    for script in &sources.init_scripts {
        let in_language_dir = script.parent().and_then(Path::file_name)
            == Some(std::ffi::OsStr::new(sources.language.as_str()));
        let which = if in_language_dir {
            "language"
        } else {
            "benchmark"
        };
        parts.insert(format!("init/{which}/init.sh"), read(script)?);
    }
    for (name, text) in wrapper_files(sources.language) {
        parts.insert(format!("wrapper/{name}"), text.as_bytes().to_vec());
    }
    for module in module_wrappers(sources.language, &sources.modules) {
        parts.insert(
            format!("module/{}", module.file),
            module.source.as_bytes().to_vec(),
        );
        for p in module.packages {
            parts.insert(
                format!("module-package/{}", p.name),
                p.version.as_bytes().to_vec(),
            );
        }
    }
    Ok(hash_parts(&parts))
}

/// MD5 over `(name, bytes)` pairs in order, each framed by its name and length so that no two
/// different sets hash alike by moving bytes between neighbours.
fn hash_parts(parts: &BTreeMap<String, Vec<u8>>) -> String {
    let mut md5 = Md5::new();
    for (name, bytes) in parts {
        md5.update(name.as_bytes());
        md5.update([0u8]);
        md5.update((bytes.len() as u64).to_le_bytes());
        md5.update(bytes);
    }
    hex::encode(md5.finalize())
}

fn portable(p: &Path) -> String {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn read(path: &Path) -> Result<Vec<u8>, LayoutError> {
    std::fs::read(path).map_err(|source| LayoutError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// What [`lay_out`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The dependency file at the package root, when the benchmark has one.
    pub deps_file: Option<PathBuf>,
    /// `init.sh` output, for logs.
    pub init_output: String,
}

/// Writes the package of `sources` for language `version` into `dest` (an empty directory).
///
/// `init.sh` scripts run first, into an empty `function/`, as
/// `bash init.sh <dest>/function false <architecture>` from the script's folder (SeBS passes
/// the package folder whose contents later move to `function/`). Running them first keeps
/// SeBS's `cp -r templates "$DIR"` from nesting `templates/templates` over our copy; where a
/// script and the source folder both provide a file, the script's wins, as in SeBS.
pub fn lay_out(sources: &Sources, version: &str, dest: &Path) -> Result<Layout, LayoutError> {
    let function_dir = dest.join(FUNCTION_DIR);
    create_dir_all(&function_dir)?;
    let mut init_output = String::new();
    for script in &sources.init_scripts {
        init_output.push_str(&run_init(script, &function_dir)?);
    }
    let rels: Vec<PathBuf> = sources.files.iter().map(|f| f.rel.clone()).collect();
    let plan = plan_layout(&rels, sources.language, version);
    let by_rel: BTreeMap<&Path, &Path> = sources
        .files
        .iter()
        .map(|f| (f.rel.as_path(), f.abs.as_path()))
        .collect();
    for (from, to) in &plan.entries {
        let src = by_rel
            .get(from.as_path())
            .copied()
            .unwrap_or(from.as_path());
        let dst = dest.join(to);
        if let Ok(meta) = std::fs::symlink_metadata(&dst) {
            if meta.is_dir() {
                return Err(LayoutError::Conflict {
                    from: src.to_path_buf(),
                    to: dst,
                });
            }
            continue;
        }
        if let Some(parent) = dst.parent() {
            create_dir_all(parent)?;
        }
        std::fs::copy(src, &dst).map_err(|source| LayoutError::Write {
            path: dst.clone(),
            source,
        })?;
    }
    for (name, text) in wrapper_files(sources.language) {
        let path = dest.join(name);
        std::fs::write(&path, text).map_err(|source| LayoutError::Write { path, source })?;
    }
    let modules = module_wrappers(sources.language, &sources.modules);
    if let Some(m) = modules
        .iter()
        .find(|m| sebs_wire::storage::older_than(version, m.min_version))
    {
        return Err(LayoutError::ModuleNeedsVersion {
            module: m.file,
            language: sources.language,
            version: version.to_string(),
            min: m.min_version,
        });
    }
    let mut deps_file = plan.deps_file;
    if !modules.is_empty() {
        for module in &modules {
            let path = function_dir.join(module.file);
            std::fs::write(&path, module.source)
                .map_err(|source| LayoutError::Write { path, source })?;
        }
        let name = PathBuf::from(deps_file_name(sources.language));
        let path = dest.join(&name);
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(LayoutError::Read { path, source }),
        };
        let merged = match sources.language {
            Language::Python => merge_requirements(existing.as_deref(), &modules),
            Language::Nodejs => {
                merge_package_json(existing.as_deref(), &modules).map_err(|source| {
                    LayoutError::Dependencies {
                        path: path.clone(),
                        source,
                    }
                })?
            }
        };
        std::fs::write(&path, merged).map_err(|source| LayoutError::Write {
            path: path.clone(),
            source,
        })?;
        deps_file = Some(name);
    }
    Ok(Layout {
        deps_file,
        init_output,
    })
}

fn create_dir_all(path: &Path) -> Result<(), LayoutError> {
    std::fs::create_dir_all(path).map_err(|source| LayoutError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn run_init(script: &Path, function_dir: &Path) -> Result<String, LayoutError> {
    let spawn_err = |source| LayoutError::InitSpawn {
        script: script.to_path_buf(),
        source,
    };
    let mut child = Command::new("bash")
        .arg(script)
        .arg(function_dir)
        .arg("false")
        .arg(host_architecture())
        .current_dir(script.parent().unwrap_or(Path::new(".")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    // Read stderr on a thread so that neither pipe fills up while we wait on the other.
    let mut stderr = child.stderr.take();
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut s);
        }
        s
    });
    let mut out = Vec::new();
    if let Some(o) = child.stdout.as_mut() {
        let _ = o.read_to_end(&mut out);
    }
    let status = child.wait().map_err(spawn_err)?;
    out.extend(err_reader.join().unwrap_or_default());
    let output = String::from_utf8_lossy(&out).into_owned();
    if !status.success() {
        let status = match status.code() {
            Some(c) => format!("status {c}"),
            None => status.to_string(),
        };
        return Err(LayoutError::InitFailed {
            script: script.to_path_buf(),
            status,
            output,
        });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_libraries_join_the_benchmarks_dependencies() {
        let wrappers = module_wrappers(Language::Python, &[Module::Storage, Module::Nosql]);
        assert_eq!(
            wrappers.iter().map(|w| w.file).collect::<Vec<_>>(),
            ["storage.py", "nosql.py"]
        );
        let check = |text: Option<&str>, expect: &[&str]| {
            let merged = merge_requirements(text, &wrappers);
            let lines: Vec<&str> = merged.lines().collect();
            assert_eq!(lines, expect, "{text:?}");
        };
        let minio = wrappers[0].packages[0].pip_requirement();
        let boto3 = wrappers[1].packages[0].pip_requirement();
        check(None, &[&minio, &boto3]);
        check(Some("pillow==10.3.0"), &["pillow==10.3.0", &minio, &boto3]);
        // The benchmark's own pin wins, whatever its spelling.
        check(
            Some("# c\nMinio>=7  # mine\nBoto3\n"),
            &["# c", "Minio>=7  # mine", "Boto3"],
        );
        assert_eq!(
            requirement_name("pillow_simd[x]==1 ; python_version>'3'"),
            Some("pillow-simd".into())
        );
        assert_eq!(requirement_name("-r other.txt"), None);

        let node = module_wrappers(Language::Nodejs, &[Module::Nosql]);
        let merged = merge_package_json(
            Some(r#"{"name": "x", "dependencies": {"uuid": "^10"}}"#),
            &node,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(json["dependencies"]["uuid"], "^10");
        for p in node[0].packages {
            assert_eq!(json["dependencies"][p.name], p.version);
        }
        let made: serde_json::Value =
            serde_json::from_str(&merge_package_json(None, &node).unwrap()).unwrap();
        assert!(made["dependencies"].as_object().unwrap().len() >= 1);
        assert!(merge_package_json(Some("not json"), &node).is_err());
        assert!(module_wrappers(Language::Nodejs, &[]).is_empty());
    }

    fn check(files: &[&str], language: Language, version: &str, expect: &[&str]) {
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        let plan = plan_layout(&files, language, version);
        let mut got: Vec<String> = plan
            .entries
            .iter()
            .map(|(from, to)| {
                if from == to {
                    to.display().to_string()
                } else {
                    format!("{} <- {}", to.display(), from.display())
                }
            })
            .collect();
        if let Some(d) = plan.deps_file {
            got.push(format!("deps: {}", d.display()));
        }
        assert_eq!(got, expect, "{files:?} {language} {version}");
    }

    #[test]
    fn plans() {
        use Language::*;
        check(
            &["function.py", "requirements.txt", "templates/t.html"],
            Python,
            "3.11",
            &[
                "function/function.py <- function.py",
                "requirements.txt",
                "function/templates/t.html <- templates/t.html",
                "deps: requirements.txt",
            ],
        );
        check(
            &[
                "function.py",
                "requirements.txt",
                "requirements.txt.3.11",
                "requirements.txt.3.8",
            ],
            Python,
            "3.11",
            &[
                "function/function.py <- function.py",
                "requirements.txt <- requirements.txt.3.11",
                "deps: requirements.txt",
            ],
        );
        check(
            &["function.py", "requirements.txt", "requirements.txt.3.11"],
            Python,
            "3.9",
            &[
                "function/function.py <- function.py",
                "requirements.txt",
                "deps: requirements.txt",
            ],
        );
        // Only a versioned file, for another version: no dependencies at all.
        check(
            &["function.py", "requirements.txt.3.8"],
            Python,
            "3.11",
            &["function/function.py <- function.py"],
        );
        // A nested requirements file is just data.
        check(
            &["function.py", "sub/requirements.txt"],
            Python,
            "3.11",
            &[
                "function/function.py <- function.py",
                "function/sub/requirements.txt <- sub/requirements.txt",
            ],
        );
        check(
            &[
                "function.js",
                "package.json",
                "package.json.20",
                "storage.js",
            ],
            Nodejs,
            "20",
            &[
                "function/function.js <- function.js",
                "package.json <- package.json.20",
                "function/storage.js <- storage.js",
                "deps: package.json",
            ],
        );
    }

    #[test]
    fn hash_framing_separates_names_and_contents() {
        let one: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"bc".to_vec()),
            ("d".to_string(), b"".to_vec()),
        ]
        .into();
        let two: BTreeMap<String, Vec<u8>> = [
            ("a".to_string(), b"b".to_vec()),
            ("d".to_string(), b"c".to_vec()),
        ]
        .into();
        assert_ne!(hash_parts(&one), hash_parts(&two));
        assert_eq!(hash_parts(&one), hash_parts(&one.clone()));
        assert_eq!(
            hash_parts(&BTreeMap::new()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}

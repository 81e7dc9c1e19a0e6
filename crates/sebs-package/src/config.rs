//! A benchmark's `config.json`, parsed into [`BenchmarkConfig`] with errors that name the field.

use std::fmt;
use std::path::{Path, PathBuf};

use sebs_wire::Language;
use serde::Deserialize;

/// What a benchmark declares about itself in `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchmarkConfig {
    /// Seconds an invocation may run.
    pub timeout_s: u64,
    /// Memory of the function in MB.
    pub memory_mb: u64,
    /// The languages sebs-local can run, in the file's order.
    pub languages: Vec<Language>,
    /// Languages the benchmark has that sebs-local cannot run (`java`, `cpp`), kept so that
    /// a user asking for one gets told the benchmark has it but we do not run it.
    pub other_languages: Vec<String>,
    pub modules: Vec<Module>,
}

/// A service a function needs at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    /// Object storage (MinIO / S3 API).
    Storage,
    /// A NoSQL table (DynamoDB API).
    Nosql,
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Module::Storage => "storage",
            Module::Nosql => "nosql",
        })
    }
}

/// A `config.json` that cannot be read or does not have SeBS's shape.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read benchmark config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse benchmark config {path}: field `{field}`: {message}")]
    Parse {
        path: PathBuf,
        /// Where in the document, like `languages[1]` or `timeout`; `.` for the whole file.
        field: String,
        message: String,
    },
}

/// The file as SeBS writes it. A deliberate on-disk type, separate from [`BenchmarkConfig`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    timeout: u64,
    memory: u64,
    languages: Vec<LanguageEntry>,
    #[serde(default)]
    modules: Vec<Module>,
    /// Used by SeBS's C++ benchmarks only; accepted so SeBS's own configs parse.
    #[serde(default)]
    #[allow(dead_code)]
    cpp_dependencies: serde_json::Value,
}

/// SeBS accepts `"python"` and `{"language": "nodejs", "variants": ["default", "bun"]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum LanguageEntry {
    Name(String),
    Spec(LanguageSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguageSpec {
    language: String,
    #[serde(default)]
    #[allow(dead_code)]
    variants: Vec<String>,
}

impl BenchmarkConfig {
    /// Reads and parses `path` (a benchmark's `config.json`).
    pub fn load(path: &Path) -> Result<BenchmarkConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        BenchmarkConfig::parse(&text, path)
    }

    /// Parses the text of a `config.json`; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<BenchmarkConfig, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: ConfigFile = serde_path_to_error::deserialize(de).map_err(|e| {
            // serde_path_to_error says `?` where the error is not inside any field.
            let field = match e.path().to_string() {
                p if p == "?" => ".".to_string(),
                p => p,
            };
            ConfigError::Parse {
                path: path.to_path_buf(),
                field,
                message: e.into_inner().to_string(),
            }
        })?;
        let mut languages = Vec::new();
        let mut other_languages = Vec::new();
        for (i, entry) in file.languages.into_iter().enumerate() {
            let name = match entry {
                LanguageEntry::Name(n) => n,
                LanguageEntry::Spec(s) => s.language,
            };
            match name.parse::<Language>() {
                Ok(l) if !languages.contains(&l) => languages.push(l),
                Ok(_) => {}
                Err(_) if KNOWN_OTHER_LANGUAGES.contains(&name.as_str()) => {
                    other_languages.push(name)
                }
                Err(e) => {
                    return Err(ConfigError::Parse {
                        path: path.to_path_buf(),
                        field: format!("languages[{i}]"),
                        message: e.to_string(),
                    })
                }
            }
        }
        let mut modules = file.modules;
        modules.dedup();
        Ok(BenchmarkConfig {
            timeout_s: file.timeout,
            memory_mb: file.memory,
            languages,
            other_languages,
            modules,
        })
    }
}

/// Languages of SeBS benchmarks that sebs-local does not run; any other name is a typo.
const KNOWN_OTHER_LANGUAGES: &[&str] = &["java", "cpp"];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<&str, &str>) {
        let got = BenchmarkConfig::parse(text, Path::new("b/config.json"));
        match (got, expect) {
            (Ok(c), Ok(want)) => assert_eq!(format!("{c:?}"), want, "{text}"),
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "{text}"),
            (got, _) => panic!("{text}: unexpected {got:?}"),
        }
    }

    #[test]
    fn configs() {
        check(
            r#"{"timeout": 120, "memory": 128, "languages": ["python", "nodejs"], "modules": []}"#,
            Ok(
                "BenchmarkConfig { timeout_s: 120, memory_mb: 128, languages: [Python, Nodejs], \
                other_languages: [], modules: [] }",
            ),
        );
        // SeBS's own configs: C++ dependencies, Java, language specs with variants.
        check(
            r#"{"timeout": 10, "memory": 256, "languages": ["python", "java", "cpp",
                {"language": "nodejs", "variants": ["default", "bun"]}],
                "modules": ["storage", "nosql"], "cpp_dependencies": []}"#,
            Ok(
                "BenchmarkConfig { timeout_s: 10, memory_mb: 256, languages: [Python, Nodejs], \
                other_languages: [\"java\", \"cpp\"], modules: [Storage, Nosql] }",
            ),
        );
        check(
            r#"{"timeout": 1, "memory": 128, "languages": ["python"], "modules": [], "memroy": 1}"#,
            Err(
                "parse benchmark config b/config.json: field `memroy`: unknown field `memroy`, \
                 expected one of `timeout`, `memory`, `languages`, `modules`, `cpp_dependencies` \
                 at line 1 column 78",
            ),
        );
        check(
            r#"{"timeout": "1", "memory": 128, "languages": ["python"]}"#,
            Err("parse benchmark config b/config.json: field `timeout`: invalid type: string \"1\", \
                 expected u64 at line 1 column 15"),
        );
        check(
            r#"{"timeout": 1, "memory": 128, "languages": ["python"], "modules": ["s3"]}"#,
            Err(
                "parse benchmark config b/config.json: field `modules[0]`: unknown variant `s3`, \
                 expected `storage` or `nosql` at line 1 column 71",
            ),
        );
        check(
            r#"{"timeout": 1, "memory": 128, "languages": ["python", "pyton"]}"#,
            Err(
                "parse benchmark config b/config.json: field `languages[1]`: unknown language \
                 \"pyton\": expected \"python\" or \"nodejs\"",
            ),
        );
        check(
            r#"{"timeout": 1, "languages": ["python"]}"#,
            Err(
                "parse benchmark config b/config.json: field `.`: missing field `memory` \
                 at line 1 column 39",
            ),
        );
        check(
            "{",
            Err(
                "parse benchmark config b/config.json: field `.`: EOF while parsing an object \
                 at line 1 column 1",
            ),
        );
    }

    #[test]
    fn load_names_the_missing_file() {
        let err = BenchmarkConfig::load(Path::new("/nonexistent/config.json")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { ref path, .. } if path.ends_with("config.json")));
        assert!(err
            .to_string()
            .starts_with("read benchmark config /nonexistent/config.json"));
    }
}

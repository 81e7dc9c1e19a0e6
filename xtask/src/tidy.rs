//! Tidy checks of the repository itself, run by `cargo test` (so by `cargo xtask test`).
//!
//! They check mechanically what docs/architecture.md states as invariants: which crates may
//! reach Docker, that every source file says what it is for, that every integration test
//! goes through the one gate, and that the code is formatted.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::root;

    /// Crates that must not depend on a Docker client, directly or not.
    const DOCKER_FREE: &[&str] = &[
        "sebs-wire",
        "sebs-agent",
        "sebs-package",
        "sebs-trigger",
        "sebs-memory",
        "sebs-ports",
        "sebs-stats",
        "sebs-floor",
        "sebs-report",
        "sebs-store",
    ];

    /// The workspace packages that may list bollard among their dependencies of any kind
    /// (normal, dev or build): the container runtime, which owns every engine call, and
    /// xtask, which sets the engine up for the tests and the bench.
    const MAY_LIST_BOLLARD: &[&str] = &["sebs-container", "xtask"];

    /// `cargo metadata` of the workspace.
    fn metadata() -> serde_json::Value {
        let out = root::cargo()
            .args(["metadata", "--format-version", "1", "--quiet"])
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Names of the workspace packages whose manifests list `dependency` (any kind).
    fn workspace_listers(meta: &serde_json::Value, dependency: &str) -> BTreeSet<String> {
        let members: BTreeSet<&str> = meta["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| members.contains(p["id"].as_str().unwrap()))
            .filter(|p| {
                p["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["name"] == dependency)
            })
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Package name -> names of its normal (non-dev, non-build) dependencies, from
    /// `cargo metadata`'s resolved graph.
    fn dependency_graph(meta: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
        let name_of: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
            .collect();
        let mut graph = BTreeMap::new();
        for node in meta["resolve"]["nodes"].as_array().unwrap() {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| name_of[d["pkg"].as_str().unwrap()].to_string())
                .collect();
            graph.insert(name_of[node["id"].as_str().unwrap()].to_string(), deps);
        }
        graph
    }

    fn reaches(graph: &BTreeMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(p) = todo.pop() {
            for d in graph.get(&p).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }

    #[test]
    fn only_the_container_runtime_and_xtask_list_bollard() {
        let listers = workspace_listers(&metadata(), "bollard");
        let others: Vec<&String> = listers
            .iter()
            .filter(|p| !MAY_LIST_BOLLARD.contains(&p.as_str()))
            .collect();
        assert!(
            others.is_empty(),
            "{others:?} list bollard: engine calls belong in sebs-container (a function there \
             that the others call)"
        );
        // The check can fail: it does see the runtime's own dependency.
        assert!(listers.contains("sebs-container"), "{listers:?}");
    }

    #[test]
    fn only_the_runtime_side_reaches_docker() {
        let graph = dependency_graph(&metadata());
        for krate in DOCKER_FREE {
            assert!(
                graph.contains_key(*krate),
                "{krate} is not in the workspace"
            );
            let deps = reaches(&graph, krate);
            assert!(
                !deps.contains("bollard"),
                "{krate} depends on bollard: it must know nothing about Docker"
            );
        }
        // The check can fail: the container runtime does reach Docker.
        assert!(reaches(&graph, "sebs-container").contains("bollard"));
    }

    #[test]
    fn every_source_file_says_what_it_is_for() {
        let listing = std::process::Command::new("git")
            .args(["ls-files", "*.rs"])
            .current_dir(root::dir())
            .output()
            .expect("git runs");
        let files = String::from_utf8_lossy(&listing.stdout);
        let mut missing = Vec::new();
        for file in files.lines() {
            let text = std::fs::read_to_string(root::dir().join(file)).unwrap_or_default();
            if !text.starts_with("//!") {
                missing.push(file.to_string());
            }
        }
        assert!(
            files.lines().count() > 50,
            "git ls-files found too few files: {files}"
        );
        assert!(
            missing.is_empty(),
            "files without a `//!` first line: {missing:?}"
        );
    }

    /// Every `crates/*/tests/it` binary runs on `sebs-testkit` (`harness = false`, `main!`),
    /// and every test in it is registered as a trial: a `#[test]` there would never run
    /// (without libtest's harness it is compiled out), nor would a test left out of the list.
    #[test]
    fn every_integration_test_goes_through_the_gate() {
        let crates = root::dir().join("crates");
        let mut problems = Vec::new();
        let mut binaries = 0;
        for entry in std::fs::read_dir(&crates).unwrap() {
            let krate = entry.unwrap().path();
            let it = krate.join("tests/it");
            if !it.join("main.rs").is_file() {
                continue;
            }
            binaries += 1;
            let name = krate.file_name().unwrap().to_string_lossy().into_owned();
            let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
            let declared = manifest
                .split("[[test]]")
                .skip(1)
                .any(|t| t.contains("name = \"it\"") && t.contains("harness = false"));
            if !declared {
                problems.push(format!("{name}: no [[test]] \"it\" with `harness = false`"));
            }
            let main = std::fs::read_to_string(it.join("main.rs")).unwrap();
            if !main.contains("sebs_testkit::main!") {
                problems.push(format!(
                    "{name}: tests/it/main.rs does not call sebs_testkit::main!"
                ));
            }
            let mut sources = String::new();
            for file in std::fs::read_dir(&it).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for attribute in ["#[test]", "#[tokio::test"] {
                        if text.contains(attribute) {
                            problems.push(format!(
                                "{}: {attribute} never runs here; register a trial!",
                                path.display()
                            ));
                        }
                    }
                    sources.push_str(&text);
                }
            }
            let registered: String = sources.split_whitespace().collect();
            for test in test_functions(&sources) {
                if !registered.contains(&format!("trial!({test},"))
                    && !registered.contains(&format!("trial!({test})"))
                {
                    problems.push(format!("{name}: test {test} is not registered with trial!"));
                }
            }
        }
        assert!(
            binaries >= 8,
            "found only {binaries} integration test binaries"
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// Top-level functions without arguments or result (`fn name() {`, `async fn name() {`):
    /// what a test looks like.
    fn test_functions(source: &str) -> Vec<String> {
        source
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("async ").unwrap_or(line);
                let name = rest.strip_prefix("fn ")?.strip_suffix("() {")?;
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    .then(|| name.to_string())
            })
            .collect()
    }

    #[test]
    fn test_functions_are_found_and_helpers_are_not() {
        let source = "fn plain() {\nasync fn awaited() {\n    fn nested() {\n\
                      fn helper() -> u8 {\nfn with(x: u8) {\npub fn trials() -> Vec<Trial> {\n";
        assert_eq!(test_functions(source), ["plain", "awaited"]);
    }

    /// No error variant prints its cause in its message and also returns it as `source()`:
    /// a printed chain would show the cause twice.
    #[test]
    fn each_cause_is_printed_once() {
        let listing = std::process::Command::new("git")
            .args(["ls-files", "crates/*.rs", "xtask/*.rs"])
            .current_dir(root::dir())
            .output()
            .expect("git runs");
        let mut twice = Vec::new();
        for file in String::from_utf8_lossy(&listing.stdout).lines() {
            let text = std::fs::read_to_string(root::dir().join(file)).unwrap_or_default();
            for variant in prints_its_source(&text) {
                twice.push(format!("{file}: {variant}"));
            }
        }
        assert!(
            twice.is_empty(),
            "these errors print their source and return it as source(); drop it from the \
             message:\n{}",
            twice.join("\n")
        );
    }

    /// The `#[error(...)]` messages in `text` that print a cause their variant also returns
    /// as its source (a `source` field, `#[source]` or `#[from]`).
    fn prints_its_source(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("#[error(") {
            let attribute_start = &rest[at..];
            let end = attribute_end(attribute_start);
            let (attribute, after) = attribute_start.split_at(end);
            let variant_end = [after.find("#[error("), after.find("\n}")]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(after.len());
            let variant = &after[..variant_end];
            let prints = ["{source", ".source", "{0}"]
                .iter()
                .any(|p| attribute.contains(p));
            let returns = ["#[source]", "#[from]", "source:"]
                .iter()
                .any(|p| variant.contains(p));
            if prints && returns && !attribute.contains("transparent") {
                found.push(attribute.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            rest = after;
        }
        found
    }

    /// Where the attribute starting `text` (`#[error(...)]`) ends, strings and nested
    /// parentheses included.
    fn attribute_end(text: &str) -> usize {
        let (mut depth, mut in_string, mut escaped) = (0, false, false);
        for (i, c) in text.char_indices() {
            match (in_string, c) {
                (true, _) if escaped => escaped = false,
                (true, '\\') => escaped = true,
                (true, '"') => in_string = false,
                (true, _) => {}
                (false, '"') => in_string = true,
                (false, '(') => depth += 1,
                (false, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        text.len()
    }

    #[test]
    fn a_source_printed_twice_is_found() {
        let text = r#"
pub enum E {
    #[error("read {path}: {source}")]
    Twice { path: PathBuf, source: std::io::Error },
    #[error("read {path} (\"quoted\")")]
    Once { path: PathBuf, #[source] source: std::io::Error },
    #[error("parse {line}: {error}")]
    InMessage { line: String, error: serde_json::Error },
    #[error("wrap: {0}")]
    Tuple(#[from] Inner),
    #[error(transparent)]
    Through(#[from] Other),
}
"#;
        assert_eq!(
            prints_its_source(text),
            [
                r#"#[error("read {path}: {source}")"#,
                r#"#[error("wrap: {0}")"#
            ]
        );
    }

    #[test]
    fn the_code_is_formatted() {
        let out = root::cargo()
            .args(["fmt", "--all", "--", "--check"])
            .output()
            .expect("cargo fmt runs");
        assert!(
            out.status.success(),
            "run `cargo fmt --all`; it would change:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

//! Tidy checks of the repository itself, run by `cargo test` (so by `cargo xtask test`).
//!
//! They check mechanically what docs/architecture.md states as invariants: which crates may
//! reach Docker, that every source file says what it is for, and that the code is formatted.

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
    ];

    /// Package name -> names of its normal (non-dev, non-build) dependencies, from
    /// `cargo metadata`'s resolved graph.
    fn dependency_graph() -> BTreeMap<String, Vec<String>> {
        let out = root::cargo()
            .args(["metadata", "--format-version", "1", "--quiet"])
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    fn only_the_runtime_side_reaches_docker() {
        let graph = dependency_graph();
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

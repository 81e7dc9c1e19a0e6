//! Installing a package's dependencies through a [`BuildEnv`], which this crate only calls.

use std::path::PathBuf;

use sebs_wire::Language;

/// Where pip installs a Python package's dependencies, relative to the package root; the
/// worker puts it on `sys.path`.
pub const PYTHON_PACKAGES_DIR: &str = ".python_packages/lib/site-packages";

/// One request to install a package's dependencies, made by the cache while building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRequest {
    /// The benchmark's full name, for messages.
    pub benchmark: String,
    pub language: Language,
    /// The language version the package is for, e.g. `3.11`.
    pub version: String,
    /// The package root, holding `requirements.txt` or `package.json`; writable.
    pub package_dir: PathBuf,
    pub install: Install,
}

/// What to install, decided by the language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// `pip install -r <requirements> --target <target>`, both relative to the package root.
    Pip {
        requirements: PathBuf,
        target: PathBuf,
    },
    /// `npm install` in the package root, which has `package.json`.
    Npm,
}

impl InstallRequest {
    /// The command to run with the package root as working directory, in an environment
    /// with the language's runtime of [`InstallRequest::version`].
    pub fn command(&self) -> Vec<String> {
        match &self.install {
            Install::Pip {
                requirements,
                target,
            } => vec![
                "python3".into(),
                "-m".into(),
                "pip".into(),
                "install".into(),
                "--no-cache-dir".into(),
                "--disable-pip-version-check".into(),
                "-r".into(),
                requirements.display().to_string(),
                "--target".into(),
                target.display().to_string(),
            ],
            Install::Npm => vec![
                "npm".into(),
                "install".into(),
                "--no-audit".into(),
                "--no-fund".into(),
            ],
        }
    }
}

/// Something that can install dependencies into a package directory, such as a build
/// container of the same image as the run container (so native wheels match).
pub trait BuildEnv: Sync {
    fn install(&self, request: &InstallRequest) -> Result<(), BuildError>;
}

/// Dependencies that could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "install dependencies: benchmark {benchmark} needs dependencies; a build environment \
         is required"
    )]
    NoEnvironment { benchmark: String },
    /// The environment could not be set up (missing image, engine not answering).
    #[error("prepare the build environment for {benchmark}: {reason}")]
    Environment { benchmark: String, reason: String },
    /// The engine that would run the install cannot see this host's files (the package
    /// directory is mounted into its build container): the user's choice of engine.
    #[error(
        "install dependencies of {benchmark}: their build container mounts the package \
         directory of this host, which the docker engine at {engine} (DOCKER_HOST) does not \
         see, as it is not this host's engine; unset DOCKER_HOST (or point it at this host's \
         engine) and name {engine} with --engine"
    )]
    NeedsLocalEngine { benchmark: String, engine: String },
    /// The install command ran and failed; `output` is what it printed.
    #[error("install dependencies of {benchmark} in {package_dir}: {reason}\n{output}")]
    Install {
        benchmark: String,
        package_dir: PathBuf,
        reason: String,
        output: String,
    },
}

/// A [`BuildEnv`] for benchmarks without dependencies: asked to install anything, it fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeps;

impl BuildEnv for NoDeps {
    fn install(&self, request: &InstallRequest) -> Result<(), BuildError> {
        Err(BuildError::NoEnvironment {
            benchmark: request.benchmark.clone(),
        })
    }
}

/// Whether a `requirements.txt` asks for anything: a line other than blanks and comments.
pub fn requirements_nonempty(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.split_once('#').map_or(line, |(before, _)| before);
        !line.trim().is_empty()
    })
}

/// Whether a `package.json` declares dependencies. Text that is not JSON counts as
/// declaring some, so that `npm` reports the problem.
pub fn package_json_nonempty(text: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v
            .get("dependencies")
            .and_then(|d| d.as_object())
            .is_some_and(|d| !d.is_empty()),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements() {
        let check =
            |text: &str, expect: bool| assert_eq!(requirements_nonempty(text), expect, "{text:?}");
        check("", false);
        check("\n   \n", false);
        check("# only a comment\n  # another\n", false);
        check("jinja2==3.1.4\n", true);
        check("# c\nsix  # trailing comment\n", true);

        let check =
            |text: &str, expect: bool| assert_eq!(package_json_nonempty(text), expect, "{text:?}");
        check(r#"{"name": "x"}"#, false);
        check(r#"{"dependencies": {}}"#, false);
        check(r#"{"dependencies": {"uuid": "3.4.0"}}"#, true);
        check("{", true);
    }

    #[test]
    fn commands_and_no_deps() {
        let mut req = InstallRequest {
            benchmark: "110.template".into(),
            language: Language::Python,
            version: "3.11".into(),
            package_dir: "/tmp/p".into(),
            install: Install::Pip {
                requirements: "requirements.txt".into(),
                target: PYTHON_PACKAGES_DIR.into(),
            },
        };
        assert_eq!(
            req.command().join(" "),
            "python3 -m pip install --no-cache-dir --disable-pip-version-check \
             -r requirements.txt --target .python_packages/lib/site-packages"
        );
        let err = NoDeps.install(&req).unwrap_err();
        assert_eq!(
            err.to_string(),
            "install dependencies: benchmark 110.template needs dependencies; \
             a build environment is required"
        );
        req.install = Install::Npm;
        assert_eq!(req.command()[..2], ["npm", "install"]);
    }
}

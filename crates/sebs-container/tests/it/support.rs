//! Fixtures of the integration tests: the image, agent scripts, and per-test cleanup.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sebs_container::testing::{unique_name, TEST_LABEL};
use sebs_container::{remove_labelled, ContainerSpec, Docker};
use sebs_wire::{AgentSettings, Language};

/// Each test's containers carry this label with the test's own value.
pub const CASE_LABEL: &str = "sebs-local.test.case";

/// Serves `GET /alive` with 200 on the agent's port, like the real agent's probe.
const SERVER_PY: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/alive" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

port = int(os.environ["SEBS_AGENT_PORT"])
print(f"serving on {port}", flush=True)
HTTPServer(("0.0.0.0", port), Handler).serve_forever()
"#;

/// A code directory with the server, and agent scripts to mount at the agent's path.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub case: String,
    pub image: String,
    pub code_dir: PathBuf,
    /// Starts the server.
    pub serve: PathBuf,
    /// Says why on stderr and exits 3 at once.
    pub exit3: PathBuf,
    /// Never serves anything.
    pub silent: PathBuf,
}

impl Fixture {
    pub fn new(test: &str, image: String) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let code_dir = dir.path().join("code");
        std::fs::create_dir(&code_dir).unwrap();
        std::fs::write(code_dir.join("server.py"), SERVER_PY).unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        Fixture {
            case: unique_name(test),
            image,
            serve: script("serve", "exec python3 /function/server.py"),
            exit3: script("exit3", "echo 'agent cannot start: no worker' >&2\nexit 3"),
            silent: script("silent", "echo 'sleeping instead'\nexec sleep 1000"),
            code_dir,
            _dir: dir,
        }
    }

    /// A spec with a unique name, labelled for this test, running `agent`.
    pub fn spec(&self, what: &str, agent: &Path) -> ContainerSpec {
        ContainerSpec::new(
            unique_name(&format!("sebs-it-{what}")),
            &self.image,
            &self.code_dir,
            agent,
            AgentSettings::new(Language::Python),
        )
        .label(TEST_LABEL.0, TEST_LABEL.1)
        .label(CASE_LABEL, &self.case)
    }
}

/// Runs `body` with an engine and a fixture in `python:3.11-slim` or our
/// `sebs-local/base:python-3.11`, then removes every container it labelled, whether it
/// passed or panicked.
pub async fn run<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Docker, Arc<Fixture>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let docker = sebs_testkit::docker().await;
    let image = sebs_testkit::python_image(&docker).await;
    let fixture = Arc::new(Fixture::new(test, image));
    let outcome = tokio::spawn(body(docker.clone(), fixture.clone())).await;
    let cleanup = remove_labelled(&docker, (CASE_LABEL, &fixture.case)).await;
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test task failed: {e}");
    }
    cleanup.unwrap_or_else(|e| panic!("failed to {e}"));
}

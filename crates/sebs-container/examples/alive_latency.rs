//! Measures create → first `/alive` 200 of a function container whose "agent" is a tiny
//! Python HTTP server (so Python's own start-up is included): `cargo run -p sebs-container
//! --release --example alive_latency [runs] [image]`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sebs_container::testing::{unique_name, TEST_LABEL};
use sebs_container::{create_and_start, remove, wait_alive, ContainerSpec};
use sebs_wire::{AgentSettings, Language};

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

HTTPServer(("0.0.0.0", int(os.environ["SEBS_AGENT_PORT"])), Handler).serve_forever()
"#;

/// The median of `times` (sebs-stats' median, over seconds).
fn median(times: &[Duration]) -> Duration {
    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(sebs_stats::median(&secs).unwrap_or(0.0))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let image = args
        .next()
        .unwrap_or_else(|| "sebs-local/base:python-3.11".to_string());
    let docker = sebs_container::connect().await?;
    let dir = tempfile::tempdir()?;
    let code = dir.path().join("code");
    std::fs::create_dir(&code)?;
    std::fs::write(code.join("server.py"), SERVER_PY)?;
    let agent = dir.path().join("serve");
    std::fs::write(&agent, "#!/bin/sh\nexec python3 /function/server.py\n")?;
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755))?;

    let (mut starts, mut alives, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let spec = ContainerSpec::new(
            unique_name("sebs-latency"),
            &image,
            &code,
            &agent,
            AgentSettings::new(Language::Python),
        )
        .label(TEST_LABEL.0, TEST_LABEL.1);
        let started = create_and_start(&docker, &spec).await?;
        let alive = wait_alive(
            &docker,
            &started.id,
            started.address,
            Duration::from_secs(30),
        )
        .await;
        let total = started.created_at.elapsed();
        remove(&docker, &started.id, true).await?;
        let alive = alive?;
        starts.push(started.started_at - started.created_at);
        alives.push(alive);
        totals.push(total);
        println!(
            "create+start {:>7.1?}  start->alive {:>7.1?}  total {:>7.1?}",
            started.started_at - started.created_at,
            alive,
            total
        );
    }
    println!(
        "median of {runs}: create+start {:.1?}, /alive polling {:.1?}, create -> first 200 {:.1?}",
        median(&starts),
        median(&alives),
        median(&totals)
    );
    Ok(())
}

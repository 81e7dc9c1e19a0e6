//! `sebs-local images`: make sure the image a language version runs in is present, installing
//! debootstrap on the host (as root on Debian, saying so) when our base image must be built.

use std::process::Stdio;

use clap::Subcommand;
use sebs_container::image::{
    build_fallback, ensure_image, BaseImageBuilder, ImageChoice, ImageError,
};
use sebs_wire::Language;

use crate::exit::{Exit, ExitContext, Failure};
use crate::setup;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve the image for a language version: the official one if present or pullable,
    /// else our offline base image, built with debootstrap when missing.
    Prepare {
        #[arg(long, default_value = "python")]
        language: Language,
        #[arg(
            long,
            default_value = Language::Python.default_version(),
            default_value_if("language", "nodejs", Language::Nodejs.default_version()),
            default_value_if("language", "node", Language::Nodejs.default_version())
        )]
        language_version: String,
    },
}

pub async fn run(command: Command) -> Result<Exit, Failure> {
    match command {
        Command::Prepare {
            language,
            language_version,
        } => {
            setup::check_version(language, &language_version)?;
            let docker = setup::docker().await?;
            let image = resolve(&docker, language, &language_version).await?;
            println!("{image}");
            Ok(Exit::Ok)
        }
    }
}

/// The image tag functions of `language` `version` run in. When our base image has to be
/// built and debootstrap is missing, it is installed first where we may (see
/// [`may_install_packages`]) and the build tried again; the library never installs host
/// packages itself.
pub async fn resolve(
    docker: &sebs_container::Docker,
    language: Language,
    version: &str,
) -> Result<String, Failure> {
    let choice = ImageChoice::for_language(language, version);
    let builder = BaseImageBuilder::new();
    let resolved = match ensure_image(docker, &choice, &builder).await {
        Err(ImageError::DebootstrapMissing { .. }) if may_install_packages() => {
            install_debootstrap(&choice.fallback).await?;
            build_fallback(docker, &choice, &builder).await
        }
        resolved => resolved,
    };
    let resolved = resolved.exit(
        Exit::Environment,
        format!("no image for {language} {version}"),
    )?;
    Ok(resolved.tag)
}

/// Whether this process may install host packages: as root on Debian or a derivative, where
/// apt-get needs no prompt. Anyone else gets the library's error, with its hint.
fn may_install_packages() -> bool {
    nix::unistd::geteuid().is_root() && std::path::Path::new("/etc/debian_version").exists()
}

/// Installs debootstrap with apt-get, saying so first; a fresh machine may have no package
/// lists yet, so a failed install updates them and tries once more.
async fn install_debootstrap(image: &str) -> Result<(), Failure> {
    tracing::info!(
        "debootstrap is not installed; installing it with `apt-get install -y debootstrap` \
         to build {image}"
    );
    let install = ["install", "-y", "debootstrap"];
    if apt_get(&install).await.is_err() {
        tracing::info!("apt-get could not install debootstrap; running `apt-get update` first");
        apt_get(&["update"]).await?;
        apt_get(&install).await?;
    }
    tracing::info!("installed debootstrap");
    Ok(())
}

/// Runs `apt-get args` without prompts; a failure carries the tail of its output.
async fn apt_get(args: &[&str]) -> Result<(), Failure> {
    let shown = format!("apt-get {}", args.join(" "));
    let output = tokio::process::Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .await
        .exit(Exit::Environment, format!("failed to run `{shown}`"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(Failure {
        exit: Exit::Environment,
        error: anyhow::anyhow!(
            "failed to run `{shown}`: {}; its last output:\n{}",
            output.status,
            sebs_container::last_lines(&text, APT_OUTPUT_LINES)
        ),
    })
}

/// Lines of apt-get's output put into its error.
const APT_OUTPUT_LINES: usize = 30;

//! `sebs-local images`: make sure the image a language version runs in is present.

use clap::Subcommand;
use sebs_container::image::{ensure_image, BaseImageBuilder, ImageChoice};
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

/// The image tag functions of `language` `version` run in.
pub async fn resolve(
    docker: &sebs_container::Docker,
    language: Language,
    version: &str,
) -> Result<String, Failure> {
    let choice = ImageChoice::for_language(language, version);
    let resolved = ensure_image(docker, &choice, &BaseImageBuilder::new())
        .await
        .exit(
            Exit::Environment,
            format!("no image for {language} {version}"),
        )?;
    Ok(resolved.tag)
}

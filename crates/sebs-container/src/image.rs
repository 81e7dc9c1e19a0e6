//! Base images: the official image of a language version, or our offline fallback, built
//! with debootstrap and imported when neither is present nor can be pulled.
//!
//! This module resolves an [`ImageChoice`] ([`ensure_image`]) and holds the one error of its
//! parts, one per seam:
//!
//! - [`choice`]: which image a language version runs in ([`ImageChoice`], tags and references);
//! - [`build`]: the base image's build ([`BaseImageBuilder`]: debootstrap, apt-get inside, one
//!   build at a time); it never installs anything on the host: a missing debootstrap is
//!   [`ImageError::DebootstrapMissing`], and whether to install it is the front end's call;
//! - [`apt`]: what apt and dpkg say (the host's mirror, the versions a root filesystem serves);
//! - [`import`]: the root filesystem into the engine, tagged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

pub mod apt;
pub mod build;
pub mod choice;
pub mod import;

pub use apt::{host_mirror, installed_major, mirror_from_sources, rootfs_tags, DEFAULT_MIRROR};
pub use build::{BaseImageBuilder, BuiltImage};
pub use choice::{split_reference, ImageChoice, FALLBACK_REPOSITORY};
pub use import::BASE_LABEL;

/// How long a pull of the official image may take before we build the fallback instead.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of a failed command's output put into its error.
const OUTPUT_LINES_IN_ERRORS: usize = 30;

/// A base image did not resolve or could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{action} image {image}")]
    Engine {
        image: String,
        action: &'static str,
        source: bollard::errors::Error,
    },
    #[error("build base image {image}: debootstrap is not installed; {hint}")]
    DebootstrapMissing { image: String, hint: String },
    #[error(
        "build base image {image}: debootstrap must run as root; run this as root, or build \
         it once with `sudo` and the image is reused"
    )]
    NotRoot { image: String },
    #[error("access {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run `{command}`: {status}; its last output:\n{output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("find python in the built root filesystem at {path}: no usr/bin/python3.X")]
    NoPython { path: PathBuf },
    #[error("build base image {image}: the built image serves only {served:?}")]
    NotServed { image: String, served: Vec<String> },
    #[error("import the root filesystem as image {image}: the engine gave no image id")]
    NoImageId { image: String },
    #[error("make the archive of image {image}")]
    Archive {
        image: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a resolved image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// The official image, present or pulled.
    Official,
    /// Our fallback, already present.
    Fallback,
    /// Our fallback, built just now.
    Built,
}

/// An image that is present in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub tag: String,
    pub source: ImageSource,
}

/// Whether the engine has an image of that name.
pub async fn image_exists(docker: &Docker, image: &str) -> Result<bool, ImageError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(source) => Err(ImageError::Engine {
            image: image.to_string(),
            action: "inspect",
            source,
        }),
    }
}

/// Makes `choice` present: the official image if there, else the fallback if there, else
/// the official one pulled (within [`PULL_TIMEOUT`]), else the fallback built by `builder`.
pub async fn ensure_image(
    docker: &Docker,
    choice: &ImageChoice,
    builder: &BaseImageBuilder,
) -> Result<ResolvedImage, ImageError> {
    let resolved = |tag: &str, source| ResolvedImage {
        tag: tag.to_string(),
        source,
    };
    if image_exists(docker, &choice.official).await? {
        return Ok(resolved(&choice.official, ImageSource::Official));
    }
    if image_exists(docker, &choice.fallback).await? {
        tracing::info!(
            "using {}: the official image {} is not present (`docker pull {}` to use it)",
            choice.fallback,
            choice.official,
            choice.official
        );
        return Ok(resolved(&choice.fallback, ImageSource::Fallback));
    }
    match tokio::time::timeout(PULL_TIMEOUT, pull(docker, &choice.official)).await {
        Ok(Ok(())) => return Ok(resolved(&choice.official, ImageSource::Official)),
        Ok(Err(e)) => tracing::info!(
            "could not pull {}: {}",
            choice.official,
            sebs_wire::ErrorChain(&e)
        ),
        Err(_) => tracing::info!("could not pull {} within {PULL_TIMEOUT:?}", choice.official),
    }
    build_fallback(docker, choice, builder).await
}

/// The last step of [`ensure_image`]: builds `choice`'s fallback with `builder` unless it
/// appears while waiting for another build. A front end that installed debootstrap after
/// [`ImageError::DebootstrapMissing`] calls this again, without a second pull.
pub async fn build_fallback(
    docker: &Docker,
    choice: &ImageChoice,
    builder: &BaseImageBuilder,
) -> Result<ResolvedImage, ImageError> {
    tracing::info!(
        "building {} with debootstrap instead (takes a minute or two, once)",
        choice.fallback
    );
    let source = match builder
        .build_unless_present(docker, &choice.fallback)
        .await?
    {
        Some(_) => ImageSource::Built,
        // Another process built it while we waited for the lock.
        None => ImageSource::Fallback,
    };
    Ok(ResolvedImage {
        tag: choice.fallback.clone(),
        source,
    })
}

async fn pull(docker: &Docker, image: &str) -> Result<(), ImageError> {
    let (name, tag) = split_reference(image);
    let options = CreateImageOptionsBuilder::default()
        .from_image(name)
        .tag(tag.unwrap_or("latest"))
        .build();
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        item.map_err(|source| ImageError::Engine {
            image: image.to_string(),
            action: "pull",
            source,
        })?;
    }
    Ok(())
}

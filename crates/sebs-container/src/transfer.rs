//! Getting a function onto an engine that cannot see this host's files (another machine,
//! or a namespace that hides them): an image moved between engines without a registry,
//! and a per-package image that holds the code package and the agent, so that the
//! container bind-mounts nothing (see [`Delivery`](crate::function::Delivery)).
//!
//! `docker cp` cannot help: the engine refuses to copy into a container whose root file
//! system is read-only, and every function container's is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, ImportImageOptionsBuilder, RemoveImageOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::control;
use crate::function::owned_labels;

/// The Dockerfile's name in a build context (beside `agent` and `function/`).
const DOCKERFILE: &str = "Dockerfile";

/// Moving or building an image that did not work.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{action} image {image} on the docker engine at {engine}")]
    Engine {
        image: String,
        engine: String,
        action: &'static str,
        source: bollard::errors::Error,
    },
    #[error("build image {image} on the docker engine at {engine}: {message}")]
    Build {
        image: String,
        engine: String,
        message: String,
    },
    #[error("read {path} into the build context of image {image}")]
    Context {
        image: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How far a transfer has come: bytes read from the source engine so far.
pub type Progress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// Copies `image` from the engine `from` to the engine `to` (`docker save | docker load`,
/// streamed: the image is never whole in memory), calling `progress` with the bytes moved
/// so far; returns how many. `engine` names `to` in errors. The caller decides whether `to`
/// lacks it ([`crate::image::image_exists`]), so that it is moved once.
pub async fn copy_image(
    from: &Docker,
    to: &Docker,
    engine: &str,
    image: &str,
    progress: Progress<'_>,
) -> Result<u64, TransferError> {
    let engine_err = |action, source| TransferError::Engine {
        image: image.to_string(),
        engine: engine.to_string(),
        action,
        source,
    };
    // The export is read here (its progress reported as it comes); the load takes it
    // through a channel as its request body.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let export = async move {
        let mut moved = 0u64;
        let mut stream = Box::pin(from.export_image(image));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    moved += bytes.len() as u64;
                    progress(moved);
                    if tx.send(Ok(bytes)).await.is_err() {
                        // The load ended early; its error says why.
                        break;
                    }
                }
                Err(e) => {
                    // The load then sees a cut archive; the export's error is the cause.
                    let _ = tx
                        .send(Err(std::io::Error::other("the export was cut short")))
                        .await;
                    return Err(e);
                }
            }
        }
        Ok(moved)
    };
    let load = async {
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = Box::pin(to.import_image_stream(options, body, None));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| engine_err("load", e))?;
            if let Some(detail) = info.error_detail {
                return Err(TransferError::Build {
                    image: image.to_string(),
                    engine: engine.to_string(),
                    message: detail.message.unwrap_or_default(),
                });
            }
        }
        Ok(())
    };
    let (exported, loaded) = tokio::join!(export, load);
    let moved = exported.map_err(|e| engine_err("export", e))?;
    loaded?;
    Ok(moved)
}

/// What a per-package image is made of: the code package and the agent, on top of the
/// image the function runs in.
#[derive(Debug, Clone)]
pub struct FunctionImage<'a> {
    /// The image to build, e.g. `sebs-local/function:<package hash>-<agent hash>`.
    pub tag: &'a str,
    /// The image the function runs in, present on the engine.
    pub base: &'a str,
    /// The code package, copied to [`sebs_wire::CODE_DIR`].
    pub code_dir: &'a Path,
    /// The static agent, copied to [`sebs_wire::AGENT_PATH`].
    pub agent_binary: &'a Path,
    /// Labels besides `sebs-local=1`, which every image of ours gets.
    pub labels: &'a [(&'a str, &'a str)],
}

/// Builds `spec` on the engine `docker` (named `engine` in errors) from a build context
/// sent from here: nothing of this host's file system needs to be visible to the engine.
pub async fn build_function_image(
    docker: &Docker,
    engine: &str,
    spec: &FunctionImage<'_>,
) -> Result<(), TransferError> {
    let context = {
        let (code_dir, agent) = (spec.code_dir.to_path_buf(), spec.agent_binary.to_path_buf());
        let dockerfile = dockerfile(spec.base);
        let tag = spec.tag.to_string();
        tokio::task::spawn_blocking(move || build_context(&dockerfile, &code_dir, &agent))
            .await
            .map_err(|e| TransferError::Context {
                image: tag.clone(),
                path: spec.code_dir.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            })?
            .map_err(|(path, source)| TransferError::Context {
                image: tag,
                path,
                source,
            })?
    };
    let labels = owned_labels(spec.labels.iter().copied());
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(DOCKERFILE)
        .t(spec.tag)
        // No layer shared with another package's image: removing that image (its test's
        // end, a cleanup) would remove the shared layer under this build ("unknown parent
        // image ID"). Only the agent and the code are copied, so the cache saved little.
        .nocache(true)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let mut stream =
        Box::pin(docker.build_image(options, None, Some(bollard::body_full(context.into()))));
    let build_err = |message: String| TransferError::Build {
        image: spec.tag.to_string(),
        engine: engine.to_string(),
        message,
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(build_err(detail.message.unwrap_or_default()));
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(build_err(error))
            }
            Err(source) => {
                return Err(TransferError::Engine {
                    image: spec.tag.to_string(),
                    engine: engine.to_string(),
                    action: "build",
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Whether the engine `docker` (named `engine` in errors) has `image`.
pub async fn image_present(
    docker: &Docker,
    engine: &str,
    image: &str,
) -> Result<bool, TransferError> {
    match control(Duration::ZERO, docker.inspect_image(image)).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(source) => Err(TransferError::Engine {
            image: image.to_string(),
            engine: engine.to_string(),
            action: "inspect",
            source,
        }),
    }
}

/// The tags of the images on `docker` (named `engine` in errors) that carry `label`.
pub async fn labelled_images(
    docker: &Docker,
    engine: &str,
    label: (&str, &str),
) -> Result<Vec<String>, TransferError> {
    let filter = format!("{}={}", label.0, label.1);
    let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
        .filters(&HashMap::from([("label", vec![filter.as_str()])]))
        .build();
    let images = control(Duration::ZERO, docker.list_images(Some(options)))
        .await
        .map_err(|source| TransferError::Engine {
            image: filter.clone(),
            engine: engine.to_string(),
            action: "list",
            source,
        })?;
    Ok(images.into_iter().flat_map(|i| i.repo_tags).collect())
}

/// Removes an image of ours from an engine; one that is not there counts as removed.
pub async fn remove_image(docker: &Docker, engine: &str, image: &str) -> Result<(), TransferError> {
    let options = RemoveImageOptionsBuilder::default().force(true).build();
    match control(
        Duration::ZERO,
        docker.remove_image(image, Some(options), None),
    )
    .await
    {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(source) => Err(TransferError::Engine {
            image: image.to_string(),
            engine: engine.to_string(),
            action: "remove",
            source,
        }),
    }
}

/// The Dockerfile of a per-package image: the agent and the code where the bind mounts
/// would put them, and the agent as the entry point (as [`crate::ContainerSpec`] sets it).
fn dockerfile(base: &str) -> String {
    format!(
        "FROM {base}\nCOPY agent {agent}\nCOPY function {code}\n",
        agent = sebs_wire::AGENT_PATH,
        code = sebs_wire::CODE_DIR,
    )
}

/// The build context: the Dockerfile, `agent` and `function/` (the code package's tree,
/// modes kept, owned by root as a read-only bind mount of root's files would be).
fn build_context(
    dockerfile: &str,
    code_dir: &Path,
    agent: &Path,
) -> Result<Vec<u8>, (PathBuf, std::io::Error)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(true);
    // The classic builder refuses GNU sparse entries, which tar would write for files
    // with holes (a linker's output may have some).
    tar.sparse(false);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, DOCKERFILE, dockerfile.as_bytes())
        .map_err(|e| (PathBuf::from(DOCKERFILE), e))?;
    tar.append_path_with_name(agent, "agent")
        .map_err(|e| (agent.to_path_buf(), e))?;
    tar.append_dir_all("function", code_dir)
        .map_err(|e| (code_dir.to_path_buf(), e))?;
    tar.into_inner().map_err(|e| (code_dir.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_holds_the_dockerfile_the_agent_and_the_code() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("code");
        std::fs::create_dir_all(code.join("lib")).unwrap();
        std::fs::write(code.join("handler.py"), "x").unwrap();
        std::fs::write(code.join("lib/m.py"), "y").unwrap();
        let agent = dir.path().join("sebs-agent");
        std::fs::write(&agent, "ELF").unwrap();
        let bytes = build_context(&dockerfile("base:1"), &code, &agent).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "agent",
                "function/",
                "function/handler.py",
                "function/lib",
                "function/lib/m.py"
            ]
        );
        assert_eq!(
            dockerfile("base:1"),
            format!(
                "FROM base:1\nCOPY agent {}\nCOPY function {}\n",
                sebs_wire::AGENT_PATH,
                sebs_wire::CODE_DIR
            )
        );
        let missing = build_context("", &dir.path().join("none"), &agent).unwrap_err();
        assert_eq!(missing.0, dir.path().join("none"));
    }
}

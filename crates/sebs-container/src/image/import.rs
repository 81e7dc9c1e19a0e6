//! Import: a root filesystem streamed as a tar into the engine (`docker import`) and tagged.

use std::path::Path;
use std::process::Stdio;

use bollard::query_parameters::{CreateImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::choice::split_reference;
use super::{ImageError, OUTPUT_LINES_IN_ERRORS};
use crate::text::last_lines;

/// The label every base image we build carries.
pub const BASE_LABEL: (&str, &str) = ("sebs-local.image", "base");

/// Streams `rootfs` as a tar into the engine (`docker import`), tags it, returns the id.
pub(super) async fn import(
    docker: &Docker,
    rootfs: &Path,
    tags: &[String],
) -> Result<String, ImageError> {
    let first = tags.first().cloned().unwrap_or_default();
    let (repo, tag) = split_reference(&first);
    let changes = vec![
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        "ENV LANG=C.UTF-8".to_string(),
        format!("LABEL {}={}", BASE_LABEL.0, BASE_LABEL.1),
    ];
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag.unwrap_or("latest"))
        .changes(changes)
        .build();
    let mut tar = tokio::process::Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ImageError::Command {
            command: format!("tar -C {} -c .", rootfs.display()),
            status: e.to_string(),
            output: String::new(),
        })?;
    let stdout = tar.stdout.take();
    let body = futures_util::stream::unfold(stdout, |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 256 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut stream = docker.create_image(Some(options), Some(bollard::body_try_stream(body)), None);
    let mut id = None;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = info.status.filter(|s| s.starts_with("sha256:")) {
                    id = Some(status);
                }
            }
            Err(source) => {
                failure = Some(ImageError::Engine {
                    image: first.clone(),
                    action: "import",
                    source,
                });
                break;
            }
        }
    }
    let tar_out = tar
        .wait_with_output()
        .await
        .map_err(|e| ImageError::Command {
            command: "tar".to_string(),
            status: e.to_string(),
            output: String::new(),
        })?;
    if !tar_out.status.success() {
        return Err(ImageError::Command {
            command: format!("tar -C {} -c .", rootfs.display()),
            status: tar_out.status.to_string(),
            output: last_lines(
                &String::from_utf8_lossy(&tar_out.stderr),
                OUTPUT_LINES_IN_ERRORS,
            ),
        });
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let id = id.ok_or_else(|| ImageError::NoImageId {
        image: first.clone(),
    })?;
    for other in tags.iter().skip(1) {
        let (repo, tag) = split_reference(other);
        let options = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag.unwrap_or("latest"))
            .build();
        docker
            .tag_image(&id, Some(options))
            .await
            .map_err(|source| ImageError::Engine {
                image: other.clone(),
                action: "tag",
                source,
            })?;
    }
    Ok(id)
}

//! The base-image build: debootstrap into a temporary root filesystem, more packages with
//! apt-get inside it, then its import, one build at a time on this machine.
//!
//! Nothing here installs host packages: without debootstrap the build fails with
//! [`ImageError::DebootstrapMissing`] and a hint, and the front end (`sebs-local`, as root on
//! Debian) decides whether to install it, says so, and builds again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::Docker;

use super::apt::{host_mirror, rootfs_tags};
use super::import::import;
use super::{image_exists, io_error, ImageError, OUTPUT_LINES_IN_ERRORS};
use crate::text::last_lines;

/// Builds our offline base image: a Debian minbase root filesystem with Python and Node.js
/// made by debootstrap, imported into the engine and tagged with every language version it
/// serves (e.g. `sebs-local/base:python-3.11` and `sebs-local/base:nodejs-18`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImageBuilder {
    /// Repository of the tags; [`super::FALLBACK_REPOSITORY`] unless testing.
    pub repository: String,
    pub suite: String,
    /// `None`: the first mirror of `suite` in the host's apt sources, else Debian's.
    pub mirror: Option<String>,
    /// Packages debootstrap installs besides minbase.
    pub packages: Vec<String>,
    /// Packages installed afterwards with apt-get inside the root filesystem: debootstrap
    /// cannot resolve npm's dependencies (it ignores virtual packages) and fails on it.
    pub later_packages: Vec<String>,
    /// Where the temporary root filesystem and the build lock go.
    pub work_dir: PathBuf,
    /// The host's apt configuration, read for the mirror.
    pub apt_dir: PathBuf,
}

impl Default for BaseImageBuilder {
    fn default() -> Self {
        BaseImageBuilder::new()
    }
}

/// What [`BaseImageBuilder::build`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub id: String,
    pub tags: Vec<String>,
    pub took: Duration,
}

impl BaseImageBuilder {
    pub fn new() -> BaseImageBuilder {
        BaseImageBuilder {
            repository: super::FALLBACK_REPOSITORY.to_string(),
            suite: "bookworm".to_string(),
            mirror: None,
            packages: [
                "python3",
                "python3-pip",
                "python3-venv",
                "ca-certificates",
                "nodejs",
            ]
            .map(String::from)
            .to_vec(),
            later_packages: vec!["npm".to_string()],
            work_dir: std::env::temp_dir(),
            apt_dir: PathBuf::from("/etc/apt"),
        }
    }

    /// Builds and tags the image, waiting for any other build on this machine to finish.
    pub async fn build(&self, docker: &Docker) -> Result<BuiltImage, ImageError> {
        let image = format!("{}:*", self.repository);
        let _lock = self.lock(&image).await?;
        self.build_locked(docker, &image).await
    }

    /// Builds unless `wanted` appears while waiting for the build lock (`Ok(None)`); fails
    /// when the build does not serve `wanted`.
    pub(super) async fn build_unless_present(
        &self,
        docker: &Docker,
        wanted: &str,
    ) -> Result<Option<BuiltImage>, ImageError> {
        let _lock = self.lock(wanted).await?;
        if image_exists(docker, wanted).await? {
            return Ok(None);
        }
        let built = self.build_locked(docker, wanted).await?;
        if !built.tags.iter().any(|t| t == wanted) {
            return Err(ImageError::NotServed {
                image: wanted.to_string(),
                served: built.tags,
            });
        }
        Ok(Some(built))
    }

    /// An exclusive lock on a file in the work directory, held while the guard lives, so
    /// that two processes do not both spend minutes building the same image.
    async fn lock(&self, image: &str) -> Result<nix::fcntl::Flock<File>, ImageError> {
        let path = self.work_dir.join("sebs-local-base-image.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let image = image.to_string();
        let joined = tokio::task::spawn_blocking(move || {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
                .or_else(|(file, _)| {
                    tracing::info!("waiting for another build of {image} to finish");
                    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                })
                .map_err(|(_, errno)| std::io::Error::from(errno))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()));
        joined.and_then(|r| r).map_err(io_error(&path))
    }

    async fn build_locked(&self, docker: &Docker, image: &str) -> Result<BuiltImage, ImageError> {
        let begin = Instant::now();
        if !nix::unistd::geteuid().is_root() {
            return Err(ImageError::NotRoot {
                image: image.to_string(),
            });
        }
        let debootstrap = find_debootstrap(image)?;
        let mirror = match &self.mirror {
            Some(m) => m.clone(),
            None => host_mirror(&self.apt_dir, &self.suite),
        };
        let dir = tempfile::Builder::new()
            .prefix("sebs-local-rootfs-")
            .tempdir_in(&self.work_dir)
            .map_err(io_error(&self.work_dir))?;
        let rootfs = dir.path().join("rootfs");
        tracing::info!(
            "debootstrap {} from {mirror} into {} (about a minute)",
            self.suite,
            rootfs.display()
        );
        let mut command = tokio::process::Command::new(&debootstrap);
        command
            .arg("--variant=minbase")
            .arg(format!("--include={}", self.packages.join(",")))
            .arg(&self.suite)
            .arg(&rootfs)
            .arg(&mirror);
        if let Err(e) = run(command).await {
            // debootstrap's own log says which package failed; its stdout often does not.
            let log = rootfs.join("debootstrap/debootstrap.log");
            return Err(match (e, std::fs::read_to_string(&log)) {
                (
                    ImageError::Command {
                        command, status, ..
                    },
                    Ok(text),
                ) => ImageError::Command {
                    command,
                    status,
                    output: last_lines(&text, OUTPUT_LINES_IN_ERRORS),
                },
                (e, _) => e,
            });
        }
        let debootstrapped = begin.elapsed();
        if !self.later_packages.is_empty() {
            install_later(&rootfs, &self.later_packages).await?;
        }
        let tags = rootfs_tags(&rootfs, &self.repository)?;
        let id = import(docker, &rootfs, &tags).await?;
        // Removing a few hundred megabytes takes a moment: not on the async threads.
        let removal = tokio::task::spawn_blocking(move || dir.close()).await;
        if let Ok(Err(e)) = removal {
            tracing::warn!(
                "could not remove the temporary root filesystem: {}",
                sebs_wire::ErrorChain(&e)
            );
        }
        let took = begin.elapsed();
        tracing::info!(
            "built {} ({id}) in {took:.1?} (debootstrap {debootstrapped:.1?})",
            tags.join(", ")
        );
        Ok(BuiltImage { id, tags, took })
    }
}

/// Installs packages with apt-get run inside the root filesystem, then drops the .debs.
async fn install_later(rootfs: &Path, packages: &[String]) -> Result<(), ImageError> {
    tracing::info!(
        "installing {} inside the root filesystem",
        packages.join(" ")
    );
    // apt-get inside needs to resolve the mirror's name; the engine replaces this file in
    // every container anyway.
    let resolv = rootfs.join("etc/resolv.conf");
    if let Err(e) = std::fs::copy("/etc/resolv.conf", &resolv) {
        tracing::warn!(
            "could not copy /etc/resolv.conf to {}: {e}",
            resolv.display()
        );
    }
    let chroot = |args: &[&str]| {
        let mut c = tokio::process::Command::new("chroot");
        c.arg(rootfs)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let mut install = chroot(&["apt-get", "install", "-y", "--no-install-recommends"]);
    install.args(packages);
    run(install).await?;
    run(chroot(&["apt-get", "clean"])).await
}

/// Finds debootstrap; a missing one is an error whose hint says how to install it (never
/// installed from here: see the module's documentation).
fn find_debootstrap(image: &str) -> Result<PathBuf, ImageError> {
    find_program("debootstrap").ok_or_else(|| ImageError::DebootstrapMissing {
        image: image.to_string(),
        hint: debootstrap_hint(Path::new("/etc/debian_version").exists()),
    })
}

/// How to get debootstrap on this host: apt-get on Debian and its derivatives, else the
/// distribution's own package manager; or no build at all, with the official image.
fn debootstrap_hint(on_debian: bool) -> String {
    let install = if on_debian {
        "install it with `apt-get install -y debootstrap`"
    } else {
        "install it with your distribution's package manager"
    };
    format!("{install}, or pull the official image with `docker pull`")
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // A user's PATH often lacks the sbin directories where debootstrap lives.
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs a command to completion; a failure carries the tail of its output.
async fn run(mut command: tokio::process::Command) -> Result<(), ImageError> {
    let shown = {
        let std = command.as_std();
        let mut s = std.get_program().to_string_lossy().into_owned();
        for arg in std.get_args() {
            s.push(' ');
            s.push_str(&arg.to_string_lossy());
        }
        s
    };
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ImageError::Command {
            command: shown.clone(),
            status: e.to_string(),
            output: String::new(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(ImageError::Command {
        command: shown,
        status: output.status.to_string(),
        output: last_lines(&text, OUTPUT_LINES_IN_ERRORS),
    })
}

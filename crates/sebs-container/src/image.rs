//! Base images: the official image of a language version, or our offline fallback, built
//! with debootstrap and imported when neither is present nor can be pulled.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::query_parameters::{CreateImageOptionsBuilder, TagImageOptionsBuilder};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use sebs_wire::Language;
use tokio::io::AsyncReadExt;

use crate::text::last_lines;

/// How long a pull of the official image may take before we build the fallback instead.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository our fallback images are tagged into.
pub const FALLBACK_REPOSITORY: &str = "sebs-local/base";

/// The label every base image we build carries.
pub const BASE_LABEL: (&str, &str) = ("sebs-local.image", "base");

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

/// The image to run a language version in: the official one, else our fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChoice {
    /// e.g. `python:3.11-slim`.
    pub official: String,
    /// e.g. `sebs-local/base:python-3.11`.
    pub fallback: String,
}

impl ImageChoice {
    /// `python:<v>-slim` or `node:<v>-slim`, with our `sebs-local/base:<language>-<v>`.
    pub fn for_language(language: Language, version: &str) -> ImageChoice {
        let official = match language {
            Language::Python => format!("python:{version}-slim"),
            Language::Nodejs => format!("node:{version}-slim"),
        };
        ImageChoice {
            official,
            fallback: fallback_tag(FALLBACK_REPOSITORY, language, version),
        }
    }
}

fn fallback_tag(repository: &str, language: Language, version: &str) -> String {
    format!("{repository}:{}-{version}", language.as_str())
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
    tracing::info!(
        "building {} with debootstrap instead (takes a minute or two, once)",
        choice.fallback
    );
    match builder
        .build_unless_present(docker, &choice.fallback)
        .await?
    {
        Some(_) => Ok(resolved(&choice.fallback, ImageSource::Built)),
        // Another process built it while we waited for the lock.
        None => Ok(resolved(&choice.fallback, ImageSource::Fallback)),
    }
}

/// Splits `name[:tag]` at the tag's colon, leaving a registry's `host:port/` alone.
pub fn split_reference(image: &str) -> (&str, Option<&str>) {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, None),
    }
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

/// Builds our offline base image: a Debian minbase root filesystem with Python and Node.js
/// made by debootstrap, imported into the engine and tagged with every language version it
/// serves (e.g. `sebs-local/base:python-3.11` and `sebs-local/base:nodejs-18`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImageBuilder {
    /// Repository of the tags; [`FALLBACK_REPOSITORY`] unless testing.
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

/// The mirror used when the host's apt sources name none for the suite.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

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
            repository: FALLBACK_REPOSITORY.to_string(),
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
    async fn build_unless_present(
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
        let debootstrap = ensure_debootstrap(image).await?;
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

/// Finds debootstrap, installing it with apt-get when we are root on Debian.
async fn ensure_debootstrap(image: &str) -> Result<PathBuf, ImageError> {
    if let Some(path) = find_program("debootstrap") {
        return Ok(path);
    }
    let on_debian = Path::new("/etc/debian_version").exists();
    if !on_debian {
        return Err(ImageError::DebootstrapMissing {
            image: image.to_string(),
            hint: "install it with your distribution's package manager, or pull the official \
                   image with `docker pull`"
                .to_string(),
        });
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(ImageError::DebootstrapMissing {
            image: image.to_string(),
            hint: "install it with `sudo apt-get install -y debootstrap`".to_string(),
        });
    }
    tracing::info!("installing debootstrap with apt-get");
    let install = || {
        let mut c = tokio::process::Command::new("apt-get");
        c.args(["install", "-y", "debootstrap"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    if run(install()).await.is_err() {
        // A fresh machine may have no package lists yet.
        let mut update = tokio::process::Command::new("apt-get");
        update.arg("update");
        run(update).await?;
        run(install()).await?;
    }
    find_program("debootstrap").ok_or_else(|| ImageError::DebootstrapMissing {
        image: image.to_string(),
        hint: "apt-get installed it but it is not on PATH or in /usr/sbin".to_string(),
    })
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

/// The mirror of `suite` in apt sources: `sources.list`, then `sources.list.d/*.list` and
/// `*.sources` in name order; [`DEFAULT_MIRROR`] when none names one.
pub fn host_mirror(apt_dir: &Path, suite: &str) -> String {
    let mut files = vec![apt_dir.join("sources.list")];
    if let Ok(entries) = std::fs::read_dir(apt_dir.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|ext| ext == "list" || ext == "sources")
            })
            .collect();
        more.sort();
        files.extend(more);
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|text| mirror_from_sources(&text, suite))
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

/// The first `deb` URI serving `suite` with component `main`, from a one-line style
/// (`deb [opts] uri suite comp...`) or deb822 style (`Types:`/`URIs:`/`Suites:`) file.
///
/// Requiring the suite and `main` skips third-party repositories (Docker's, NodeSource's)
/// that share the file but are no Debian mirror.
pub fn mirror_from_sources(text: &str, suite: &str) -> Option<String> {
    // One-line style.
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(opts) => opts.split_once(']').map_or("", |(_, r)| r),
            None => rest,
        };
        let mut fields = rest.split_whitespace();
        let (Some(uri), Some(s)) = (fields.next(), fields.next()) else {
            continue;
        };
        if s == suite && fields.any(|c| c == "main") {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    // deb822 style: stanzas separated by blank lines.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let words = |name: &str| field(name).unwrap_or_default();
        if !words("Types").split_whitespace().any(|t| t == "deb") {
            continue;
        }
        if field("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !words("Suites").split_whitespace().any(|s| s == suite)
            || !words("Components").split_whitespace().any(|c| c == "main")
        {
            continue;
        }
        if let Some(uri) = words("URIs").split_whitespace().next() {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// The tags a root filesystem serves, read from what is installed in it: one per
/// `usr/bin/python3.X` and one for Node.js's major version from dpkg's status file.
pub fn rootfs_tags(rootfs: &Path, repository: &str) -> Result<Vec<String>, ImageError> {
    let bin = rootfs.join("usr/bin");
    let mut pythons: Vec<(u32, String)> = std::fs::read_dir(&bin)
        .map_err(io_error(&bin))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let minor: u32 = name.strip_prefix("python3.")?.parse().ok()?;
            Some((minor, format!("3.{minor}")))
        })
        .collect();
    if pythons.is_empty() {
        return Err(ImageError::NoPython {
            path: rootfs.to_path_buf(),
        });
    }
    pythons.sort();
    let mut tags: Vec<String> = pythons
        .into_iter()
        .map(|(_, v)| fallback_tag(repository, Language::Python, &v))
        .collect();
    let status = rootfs.join("var/lib/dpkg/status");
    match std::fs::read_to_string(&status) {
        Ok(text) => {
            if let Some(major) = installed_major(&text, "nodejs") {
                tags.push(fallback_tag(repository, Language::Nodejs, &major));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&status)(e)),
    }
    Ok(tags)
}

/// The upstream major version of an installed package in a dpkg status file
/// (`18.20.4+dfsg-1~deb12u2` and `1:18.2-1` give `18`).
pub fn installed_major(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let mut name = None;
        let mut version = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if name != Some(package) || !installed {
            return None;
        }
        let version = version?;
        let upstream = version.split_once(':').map_or(version, |(_, v)| v);
        let major: String = upstream.chars().take_while(char::is_ascii_digit).collect();
        (!major.is_empty()).then_some(major)
    })
}

/// Streams `rootfs` as a tar into the engine (`docker import`), tags it, returns the id.
async fn import(docker: &Docker, rootfs: &Path, tags: &[String]) -> Result<String, ImageError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_per_language() {
        fn check(language: Language, version: &str, official: &str, fallback: &str) {
            let c = ImageChoice::for_language(language, version);
            assert_eq!(
                (c.official.as_str(), c.fallback.as_str()),
                (official, fallback)
            );
        }
        check(
            Language::Python,
            "3.11",
            "python:3.11-slim",
            "sebs-local/base:python-3.11",
        );
        check(
            Language::Nodejs,
            "18",
            "node:18-slim",
            "sebs-local/base:nodejs-18",
        );
    }

    #[test]
    fn references_split_at_the_tag() {
        fn check(image: &str, expect: (&str, Option<&str>)) {
            assert_eq!(split_reference(image), expect, "{image}");
        }
        check("python:3.11-slim", ("python", Some("3.11-slim")));
        check(
            "sebs-local/base:python-3.11",
            ("sebs-local/base", Some("python-3.11")),
        );
        check("localhost:5000/base", ("localhost:5000/base", None));
        check("localhost:5000/base:1", ("localhost:5000/base", Some("1")));
        check("ubuntu", ("ubuntu", None));
    }

    #[test]
    fn mirrors_from_apt_sources() {
        fn check(text: &str, expect: Option<&str>) {
            assert_eq!(
                mirror_from_sources(text, "bookworm").as_deref(),
                expect,
                "{text}"
            );
        }
        // deb822, as this machine has it, with the security archive second.
        check(
            "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
             URIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://deb.debian.org/debian-security\n\
             Suites: bookworm-security\nComponents: main\n",
            Some("http://deb.debian.org/debian"),
        );
        // One-line style, with options and a third-party repository first.
        check(
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] https://download.docker.com/linux/debian bookworm stable\n\
             deb-src http://ftp.de.debian.org/debian bookworm main\n\
             deb [arch=amd64] http://ftp.de.debian.org/debian/ bookworm main contrib\n",
            Some("http://ftp.de.debian.org/debian"),
        );
        check(
            "deb http://mirror.example/debian bookworm-updates main\n",
            None,
        );
        check(
            "Types: deb-src\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\n",
            None,
        );
        check(
            "Types: deb\nURIs: http://x/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
            None,
        );
        check("", None);
    }

    #[test]
    fn host_mirror_falls_back_to_debian() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(host_mirror(dir.path(), "bookworm"), DEFAULT_MIRROR);
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.local/debian/\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        assert_eq!(
            host_mirror(dir.path(), "bookworm"),
            "http://mirror.local/debian"
        );
    }

    #[test]
    fn tags_from_a_fake_rootfs() {
        fn check(files: &[&str], dpkg_status: Option<&str>, expect: Result<&[&str], &str>) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
            std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
            for f in files {
                std::fs::write(dir.path().join("usr/bin").join(f), "").unwrap();
            }
            if let Some(status) = dpkg_status {
                std::fs::write(dir.path().join("var/lib/dpkg/status"), status).unwrap();
            }
            let got = rootfs_tags(dir.path(), "sebs-local/base").map_err(|e| e.to_string());
            match (got, expect) {
                (Ok(tags), Ok(expect)) => assert_eq!(tags, expect, "{files:?}"),
                (Err(e), Err(expect)) => assert!(e.contains(expect), "{e}"),
                (got, expect) => panic!("{files:?}: got {got:?}, expected {expect:?}"),
            }
        }
        let node = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n\
                    Package: nodejs\nStatus: install ok installed\nPriority: optional\n\
                    Version: 18.20.4+dfsg-1~deb12u2\n";
        check(
            &["python3", "python3.11", "python3.11-config", "node"],
            Some(node),
            Ok(&["sebs-local/base:python-3.11", "sebs-local/base:nodejs-18"]),
        );
        check(
            &["python3", "python3.11"],
            None,
            Ok(&["sebs-local/base:python-3.11"]),
        );
        // Removed but not purged: dpkg still lists it, not as installed.
        let removed = "Package: nodejs\nStatus: deinstall ok config-files\nVersion: 18.20.4\n";
        check(
            &["python3.11"],
            Some(removed),
            Ok(&["sebs-local/base:python-3.11"]),
        );
        check(
            &["python3", "node"],
            Some(node),
            Err("no usr/bin/python3.X"),
        );
    }

    #[test]
    fn installed_major_versions() {
        let status =
            |v: &str| format!("Package: nodejs\nStatus: install ok installed\nVersion: {v}\n");
        assert_eq!(
            installed_major(&status("1:20.1.0-1"), "nodejs").as_deref(),
            Some("20")
        );
        assert_eq!(
            installed_major(&status("18.20.4+dfsg"), "nodejs").as_deref(),
            Some("18")
        );
        assert_eq!(installed_major(&status("x"), "nodejs"), None);
        assert_eq!(installed_major(&status("18"), "npm"), None);
    }
}

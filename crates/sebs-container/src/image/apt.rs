//! What apt and dpkg say: the host's Debian mirror from its apt sources, and the language
//! versions a built root filesystem serves from what dpkg installed in it.

use std::path::{Path, PathBuf};

use sebs_wire::Language;

use super::choice::fallback_tag;
use super::{io_error, ImageError};

/// The mirror used when the host's apt sources name none for the suite.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

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

#[cfg(test)]
mod tests {
    use super::*;

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

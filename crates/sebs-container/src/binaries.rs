//! Finding our static binaries (the in-container agent, the embedded store) that containers
//! run: named explicitly, by an environment variable, next to the running executable, or
//! where `cargo xtask agent` builds them in this workspace.

use std::path::{Path, PathBuf};

/// The in-container agent's binary, and the variable that names it explicitly (`cargo
/// xtask test` sets it).
pub const AGENT_BINARY: &str = "sebs-agent";
pub const AGENT_BIN_ENV: &str = "SEBS_AGENT_BIN";

/// Where [`find_static_binary`] looked, for a message when it found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error("find {name}: {path} (named by you or by ${env}) is not a file")]
    Named {
        name: String,
        env: String,
        path: PathBuf,
    },
    #[error(
        "find {name}: it is neither next to this executable nor built in this workspace; \
         build it with `cargo xtask agent` or set ${env}"
    )]
    NotFound { name: String, env: String },
}

/// The static binary `name`: `explicit` if given, else `$env`, else `name` next to the
/// running executable, else the one `cargo xtask agent` builds in this workspace
/// (`target/agent/<host triple>/release/<name>`).
pub fn find_static_binary(
    name: &str,
    env: &str,
    explicit: Option<&Path>,
) -> Result<PathBuf, BinaryError> {
    let from_env = std::env::var_os(env).map(PathBuf::from);
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(|root| {
            root.join("target/agent")
                .join(host_triple())
                .join("release")
                .join(name)
        });
    pick(
        name,
        env,
        explicit.map(Path::to_path_buf),
        from_env,
        beside_exe,
        workspace,
    )
}

/// The policy of [`find_static_binary`], over candidate paths.
fn pick(
    name: &str,
    env: &str,
    explicit: Option<PathBuf>,
    from_env: Option<PathBuf>,
    beside_exe: Option<PathBuf>,
    workspace: Option<PathBuf>,
) -> Result<PathBuf, BinaryError> {
    // A path the user named must exist; guessed ones are just skipped.
    if let Some(p) = explicit.or(from_env) {
        return if p.is_file() {
            // The engine mounts absolute paths only.
            Ok(std::path::absolute(&p).unwrap_or(p))
        } else {
            Err(BinaryError::Named {
                name: name.to_string(),
                env: env.to_string(),
                path: p,
            })
        };
    }
    // A guessed binary that needs a dynamic loader (`cargo build`'s own `target/debug/NAME`
    // beside a test or CLI executable) cannot run in a FROM-scratch container ("exec
    // /NAME: no such file or directory" in a restart loop): skip it for the static one.
    [beside_exe, workspace]
        .into_iter()
        .flatten()
        .find(|p| p.is_file() && !needs_loader(p))
        .ok_or_else(|| BinaryError::NotFound {
            name: name.to_string(),
            env: env.to_string(),
        })
}

/// Whether `path` is a 64-bit little-endian ELF file with a `PT_INTERP` program header (it
/// names a dynamic loader, which a FROM-scratch container lacks). Anything that cannot be
/// read as such counts as not needing one: the engine then says what is wrong with it.
fn needs_loader(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    const PT_INTERP: u64 = 3;
    // Little-endian bytes as a number.
    let le = |bytes: &[u8]| bytes.iter().rev().fold(0u64, |n, &b| n << 8 | u64::from(b));
    // Only the ELF header and the program header table are read: the candidate is checked on
    // every start, and a static binary is megabytes long.
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut header = [0u8; 64];
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if file.read_exact(&mut header).is_err() || header[..6] != [0x7f, b'E', b'L', b'F', 2, 1] {
        return false;
    }
    let (phoff, entry, count) = (
        le(&header[0x20..0x28]),
        le(&header[0x36..0x38]),
        le(&header[0x38..0x3a]),
    );
    // An ELF64 program header is 56 bytes and a binary has a few dozen: a table of more
    // than 1 MiB is not a real one, and is not read.
    if entry < 4 || entry * count > 1 << 20 {
        return false;
    }
    let mut table = vec![0u8; (entry * count) as usize];
    if file.seek(SeekFrom::Start(phoff)).is_err() || file.read_exact(&mut table).is_err() {
        return false;
    }
    table
        .chunks_exact(entry as usize)
        .any(|header| le(&header[..4]) == PT_INTERP)
}

/// The target triple `cargo xtask agent` builds for on this host.
pub fn host_triple() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("bin");
        std::fs::write(&present, b"").unwrap();
        let absent = dir.path().join("nope");
        let p = |explicit, env, beside, ws| pick("x", "X_BIN", explicit, env, beside, ws);

        assert_eq!(
            p(None, None, Some(absent.clone()), Some(present.clone())),
            Ok(present.clone())
        );
        let err = p(Some(absent.clone()), None, None, Some(present.clone())).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let err = p(None, Some(absent.clone()), None, Some(present.clone())).unwrap_err();
        assert!(err.to_string().contains("$X_BIN"), "{err}");
        let err = p(None, None, Some(absent), None).unwrap_err();
        assert!(err.to_string().contains("cargo xtask agent"), "{err}");
        // A relative path is made absolute: the engine mounts absolute paths only.
        let got = p(None, Some(PathBuf::from("Cargo.toml")), None, None).unwrap();
        assert!(got.is_absolute() && got.ends_with("Cargo.toml"), "{got:?}");
    }

    #[test]
    fn a_guessed_binary_that_needs_a_loader_is_passed_over() {
        // This test executable is linked dynamically, as `cargo build`'s binaries are.
        let dynamic = std::env::current_exe().unwrap();
        assert!(needs_loader(&dynamic), "{dynamic:?}");
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("static");
        std::fs::write(&other, b"not an ELF file").unwrap();
        assert!(!needs_loader(&other));
        assert_eq!(
            pick(
                "x",
                "X_BIN",
                None,
                None,
                Some(dynamic.clone()),
                Some(other.clone())
            ),
            Ok(other)
        );
        // Named explicitly, it is the user's choice.
        assert_eq!(
            pick("x", "X_BIN", Some(dynamic.clone()), None, None, None),
            Ok(dynamic)
        );
    }
}

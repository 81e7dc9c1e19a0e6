//! Reading a memory cgroup's files: current usage, peak, `memory.stat`, limit, and resetting the peak.
//!
//! Parsing is pure (`parse_*`); the methods on [`MemoryCgroup`] only add the file IO.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::cgroup::MemoryCgroup;

/// A v1 limit at or above this is "no limit": the kernel reports its page-counter maximum
/// (`0x7FFFFFFFFFFFF000` on 64-bit hosts, `u64::MAX` on old kernels) rather than a number a
/// user set, and no machine has 4 EiB of memory.
pub const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// Why a memory file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open {path} for resetting")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reset {path}")]
    Reset {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {text:?} is not a number of bytes")]
    Parse { path: PathBuf, text: String },
}

/// Parses a file that holds one number of bytes, like `memory.current`.
pub fn parse_bytes(text: &str, path: &Path) -> Result<u64, FileError> {
    text.trim().parse().map_err(|_| FileError::Parse {
        path: path.to_path_buf(),
        text: text.to_string(),
    })
}

/// Parses a limit: `max` (v2) or a value from [`V1_UNLIMITED_FROM`] up (v1) is `None`.
pub fn parse_limit(text: &str, path: &Path) -> Result<Option<u64>, FileError> {
    if text.trim() == "max" {
        return Ok(None);
    }
    let bytes = parse_bytes(text, path)?;
    Ok((bytes < V1_UNLIMITED_FROM).then_some(bytes))
}

/// Parses `memory.stat`: one `key value` pair per line. Lines that are not a key and a
/// number are skipped, so that new kernel keys never break reading.
pub fn parse_stat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (key, value, None) = (parts.next()?, parts.next()?, parts.next()) else {
                return None;
            };
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

impl MemoryCgroup {
    /// Bytes in use now (`memory.current` | `memory.usage_in_bytes`).
    pub fn current(&self) -> Result<u64, FileError> {
        let path = self.current_path();
        parse_bytes(&read(&path)?, &path)
    }

    /// The peak since the cgroup was created or last reset; `None` when the kernel has no
    /// peak file (v2 before Linux 5.19).
    pub fn peak(&self) -> Result<Option<u64>, FileError> {
        let path = self.peak_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_bytes(&text, &path).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FileError::Read { path, source }),
        }
    }

    /// The limit, `None` when there is none.
    pub fn limit(&self) -> Result<Option<u64>, FileError> {
        let path = self.limit_path();
        parse_limit(&read(&path)?, &path)
    }

    /// `memory.stat` as a map from key to value.
    pub fn stat(&self) -> Result<BTreeMap<String, u64>, FileError> {
        read(&self.stat_path()).map(|text| parse_stat(&text))
    }

    /// Opens the peak file for repeated reads and resets, `None` when there is no peak file.
    pub fn peak_tracker(&self) -> Result<Option<PeakTracker>, FileError> {
        let path = self.peak_path();
        // Writable when the kernel allows resets (v1; v2 from 6.12) and we may write;
        // read-only otherwise, so the peak can still be read.
        let (file, writable) = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(_) => match File::open(&path) {
                Ok(file) => (file, false),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(FileError::Read { path, source }),
            },
        };
        Ok(Some(PeakTracker {
            file,
            path,
            writable,
        }))
    }

    /// Opens the peak file for resetting and reading, and resets it once to find out whether
    /// the kernel and the mount allow it: an error says why the peak cannot be reset here
    /// (no peak file, a read-only mount, a kernel that refuses).
    pub fn resettable_peak(&self) -> Result<PeakTracker, FileError> {
        let path = self.peak_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| FileError::Open {
                path: path.clone(),
                source,
            })?;
        let tracker = PeakTracker {
            file,
            path,
            writable: true,
        };
        tracker.reset_strictly()?;
        tracker.read()?;
        Ok(tracker)
    }
}

/// The peak file kept open, to read it repeatedly and reset it where the kernel allows.
///
/// On cgroup v2 a reset is per open file: after [`PeakTracker::reset`], reads through this
/// tracker give the peak since the reset while other readers still see the cgroup's
/// lifetime peak. That is why resetting is a method here and not a one-shot function.
#[derive(Debug)]
pub struct PeakTracker {
    file: File,
    path: PathBuf,
    writable: bool,
}

impl PeakTracker {
    /// The file read and written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The peak in bytes (since the last reset through this tracker, on v2).
    pub fn read(&self) -> Result<u64, FileError> {
        let mut buf = [0u8; 64];
        let n = self
            .file
            .read_at(&mut buf, 0)
            .map_err(|source| FileError::Read {
                path: self.path.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&buf[..n]);
        parse_bytes(&text, &self.path)
    }

    /// Resets the peak to the current usage. `Ok(false)` when the kernel or our permissions
    /// do not allow it (v2 before Linux 6.12, an unprivileged user); other IO errors are errors.
    pub fn reset(&mut self) -> Result<bool, FileError> {
        if !self.writable {
            return Ok(false);
        }
        match self.reset_strictly() {
            Ok(()) => Ok(true),
            Err(FileError::Reset { source, .. })
                if source.raw_os_error().is_some_and(is_refusal) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Resets the peak to the current usage; a refusal is an error too (for a tracker from
    /// [`MemoryCgroup::resettable_peak`], where resetting worked once).
    pub fn reset_strictly(&self) -> Result<(), FileError> {
        // v1 takes a number (any value resets the watermark), v2 any non-empty string: "0"
        // serves both (and reads back as a number from a fake file in tests).
        self.file
            .write_at(b"0\n", 0)
            .map(drop)
            .map_err(|source| FileError::Reset {
                path: self.path.clone(),
                source,
            })
    }
}

/// Whether `errno` says the kernel refuses the reset rather than that something broke.
fn is_refusal(errno: i32) -> bool {
    use nix::errno::Errno;
    [
        Errno::EINVAL,
        Errno::EPERM,
        Errno::EACCES,
        Errno::EOPNOTSUPP,
    ]
    .contains(&Errno::from_raw(errno))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Version;
    use crate::testing::fake_cgroup as fake;
    use std::fs;

    fn check_limit(text: &str, expect: Option<Option<u64>>) {
        let got = parse_limit(text, Path::new("memory.max")).ok();
        assert_eq!(got, expect, "{text:?}");
    }

    #[test]
    fn limits() {
        check_limit("max\n", Some(None));
        check_limit("134217728\n", Some(Some(134_217_728)));
        check_limit("9223372036854771712\n", Some(None));
        check_limit("18446744073709551615\n", Some(None));
        check_limit("", None);
        check_limit("lots", None);
    }

    #[test]
    fn stat_is_parsed_into_a_map() {
        let text = "anon 4096\nfile 8192\nrss_huge 0\nweird line here\nnotanumber x\n\n";
        let stat = parse_stat(text);
        let expect: BTreeMap<String, u64> = [("anon", 4096), ("file", 8192), ("rss_huge", 0)]
            .map(|(k, v)| (k.to_string(), v))
            .into();
        assert_eq!(stat, expect);
    }

    /// Resets the peak through a tracker and checks what was written (regular files keep the
    /// tail of the old text; the kernel's file does not).
    fn check_reset(cg: &MemoryCgroup) {
        let mut tracker = cg.peak_tracker().unwrap().unwrap();
        assert!(tracker.reset().unwrap());
        assert!(fs::read_to_string(cg.peak_path())
            .unwrap()
            .starts_with("0\n"));
    }

    #[test]
    fn v2_files() {
        let (_t, cg) = fake(
            Version::V2,
            &[
                ("memory.current", "1000\n"),
                ("memory.peak", "5000\n"),
                ("memory.max", "max\n"),
                ("memory.stat", "anon 10\n"),
            ],
        );
        assert_eq!(cg.current().unwrap(), 1000);
        assert_eq!(cg.peak().unwrap(), Some(5000));
        assert_eq!(cg.limit().unwrap(), None);
        assert_eq!(cg.stat().unwrap().get("anon"), Some(&10));
        assert_eq!(cg.peak_tracker().unwrap().unwrap().read().unwrap(), 5000);
        check_reset(&cg);
    }

    #[test]
    fn v1_files() {
        let (_t, cg) = fake(
            Version::V1,
            &[
                ("memory.usage_in_bytes", "2000\n"),
                ("memory.max_usage_in_bytes", "7000\n"),
                ("memory.limit_in_bytes", "268435456\n"),
            ],
        );
        assert_eq!(cg.current().unwrap(), 2000);
        assert_eq!(cg.peak().unwrap(), Some(7000));
        assert_eq!(cg.limit().unwrap(), Some(268_435_456));
        check_reset(&cg);
    }

    #[test]
    fn a_missing_peak_is_none_and_missing_files_are_named() {
        let (_t, cg) = fake(Version::V2, &[("memory.current", "oops\n")]);
        assert_eq!(cg.peak().unwrap(), None);
        assert!(cg.peak_tracker().unwrap().is_none());
        let err = cg.current().unwrap_err();
        assert!(
            err.to_string().contains("memory.current") && err.to_string().contains("oops"),
            "{err}"
        );
        let err = cg.limit().unwrap_err();
        assert!(
            matches!(&err, FileError::Read { path, .. } if path.ends_with("memory.max")),
            "{err}"
        );
        let err = cg.stat().unwrap_err();
        assert!(err.to_string().contains("memory.stat"), "{err}");
    }

    #[test]
    fn resettable_peaks() {
        // Opening resets once: the reset writes 0, which the check reads back.
        let (_t, cg) = fake(Version::V1, &[("memory.max_usage_in_bytes", "9\n")]);
        let tracker = cg.resettable_peak().unwrap();
        assert_eq!(fs::read_to_string(cg.peak_path()).unwrap(), "0\n");
        fs::write(tracker.path(), "4096\n").unwrap();
        assert_eq!(tracker.read().unwrap(), 4096);
        fs::write(tracker.path(), "max\n").unwrap();
        assert!(matches!(tracker.read(), Err(FileError::Parse { .. })));

        let (_t, cg) = fake(Version::V2, &[("memory.peak", "7\n")]);
        let tracker = cg.resettable_peak().unwrap();
        assert!(tracker.path().ends_with("memory.peak"));
        assert_eq!(tracker.read().unwrap(), 0);

        let (_t, cg) = fake(Version::V2, &[]);
        let err = cg.resettable_peak().unwrap_err();
        assert!(
            matches!(&err, FileError::Open { path, .. } if path.ends_with("memory.peak")),
            "{err}"
        );
    }
}

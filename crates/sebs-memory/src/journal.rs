//! The memory journal: what a measuring process writes as it samples, and its replay into [`Measurements`].
//!
//! The journal is the contract between two processes: the measurer (`start --measure-interval`
//! leaves it running) appends, `stop` reads. One JSON-lines file per container in a
//! [`MeasureDir`], appended to about once a second (a `start` line, then `samples` lines, then
//! an `end` line), so that a container that dies, or a measurer that is killed, loses at most
//! the last second. The same samples go to SeBS's measurement file ([`SebsLines`]), which
//! `out.json` names for SeBS's own `local stop`. [`replay`] is a pure function of the lines.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sebs_wire::EpochMicros;
use serde::{Deserialize, Serialize};

use crate::measurements::{End, Measurements, Recorder, Sample, Source};
use crate::output::{EndName, SourceName};
use crate::sampler::SamplerError;

/// Why writing or reading a journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("create memory journal directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write memory journal {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read memory journal {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse memory journal {path}, line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("sample the memory of container {container}")]
    Sampler {
        container: String,
        #[source]
        source: SamplerError,
    },
}

/// The files of one measurement, in one directory (next to `out.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureDir {
    pub path: PathBuf,
}

impl MeasureDir {
    pub fn new(path: impl Into<PathBuf>) -> MeasureDir {
        MeasureDir { path: path.into() }
    }

    /// The measurement directory of a deployment file: `<file>.memory` beside it. `file` is
    /// made absolute against the current directory, since the measurer outlives the command.
    pub fn beside(file: &Path) -> std::io::Result<MeasureDir> {
        let file = std::path::absolute(file)?;
        let mut name = file
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".memory");
        Ok(MeasureDir::new(file.with_file_name(name)))
    }

    /// Creates the directory (and its parents).
    pub fn create(&self) -> Result<(), JournalError> {
        std::fs::create_dir_all(&self.path).map_err(|source| JournalError::CreateDir {
            path: self.path.clone(),
            source,
        })
    }

    /// The journal of `container`.
    pub fn journal(&self, container: &str) -> PathBuf {
        self.path.join(format!("{container}.jsonl"))
    }

    /// The measurer's log (its stderr).
    pub fn log(&self) -> PathBuf {
        self.path.join("measure.log")
    }

    /// SeBS's measurement file, which out.json names for SeBS's `local stop` (see
    /// [`SebsLines`]).
    pub fn sebs_measurements(&self) -> PathBuf {
        self.path.join("sebs_measurements.txt")
    }

    /// Exists once every container's journal has its first line: sampling has begun.
    pub fn ready_marker(&self) -> PathBuf {
        self.path.join("ready")
    }

    /// Exists once the measurer has closed every journal and is about to exit.
    pub fn done_marker(&self) -> PathBuf {
        self.path.join("done")
    }

    /// Creates the ready marker.
    pub fn mark_ready(&self) -> Result<(), JournalError> {
        touch(&self.ready_marker())
    }

    /// Creates the done marker.
    pub fn mark_done(&self) -> Result<(), JournalError> {
        touch(&self.done_marker())
    }
}

fn touch(path: &Path) -> Result<(), JournalError> {
    std::fs::write(path, b"").map_err(|source| JournalError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// One line of a journal. The samples of a line are `[offset_us, bytes, late_us]`, the offset
/// counted from `started_at` of the `start` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JournalLine {
    Start {
        container: String,
        source: SourceName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<PathBuf>,
        interval_us: u64,
        /// Microseconds since the epoch.
        started_at: i64,
    },
    Samples {
        samples: Vec<(u64, u64, u32)>,
        /// Deadlines of this stretch that got no sample.
        precision_errors: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel_peak: Option<u64>,
    },
    End {
        end: EndName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Microseconds since the epoch.
        at: i64,
    },
}

impl JournalLine {
    /// The line that opens the journal of `container`.
    pub fn start(
        container: &str,
        source: Source,
        cgroup: Option<PathBuf>,
        interval: Duration,
        started_at: EpochMicros,
    ) -> JournalLine {
        JournalLine::Start {
            container: container.to_string(),
            source: source.into(),
            cgroup,
            interval_us: interval.as_micros() as u64,
            started_at: started_at.0,
        }
    }

    /// The line that closes a journal: sampling ended at `at` for reason `end`.
    pub fn end(end: &End, at: EpochMicros) -> JournalLine {
        let (end, error) = EndName::of(end);
        JournalLine::End {
            end,
            error,
            at: at.0,
        }
    }
}

/// SeBS's measurement file, shared by every container of a measurement: each sample is a line
/// `<container id> <bytes>` and each missed deadline a line `precision not met`, as SeBS's
/// measuring processes write it, so that SeBS's `local stop` (which kills the measurer, reads
/// this file into `memory_stats.json` and removes it) works on our deployments too. Written
/// with the journals, one whole batch of lines per write to a file opened for appending.
#[derive(Debug, Clone)]
pub struct SebsLines {
    path: PathBuf,
    file: Arc<File>,
}

/// Opens `path` for writing whole lines: appending to it, or truncated first.
fn open_for_lines(path: &Path, append: bool) -> Result<File, JournalError> {
    OpenOptions::new()
        .create(true)
        .append(append)
        .truncate(!append)
        .write(true)
        .open(path)
        .map_err(|source| JournalError::Write {
            path: path.to_path_buf(),
            source,
        })
}

impl SebsLines {
    pub fn open(path: PathBuf) -> Result<SebsLines, JournalError> {
        let file = open_for_lines(&path, true)?;
        Ok(SebsLines {
            path,
            file: Arc::new(file),
        })
    }

    /// Appends the lines of one stretch of `container`'s samples.
    pub fn append(
        &self,
        container: &str,
        bytes: impl IntoIterator<Item = u64>,
        precision_errors: u64,
    ) -> Result<(), JournalError> {
        let mut text = String::new();
        for b in bytes {
            text.push_str(&format!("{container} {b}\n"));
        }
        for _ in 0..precision_errors {
            text.push_str("precision not met\n");
        }
        if text.is_empty() {
            return Ok(());
        }
        (&*self.file)
            .write_all(text.as_bytes())
            .map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

/// An open journal, appended to one whole line per write; its samples also go to SeBS's
/// measurement file when it has one.
#[derive(Debug)]
pub struct Journal {
    /// The file's path, or the name of an in-memory journal, for errors.
    path: PathBuf,
    sink: Sink,
    sebs: Option<(String, SebsLines)>,
}

/// Where a journal's lines go.
#[derive(Debug)]
enum Sink {
    File(File),
    Memory(JournalBuffer),
}

/// The lines of an in-memory journal ([`Journal::in_memory`]), kept until taken: what the
/// agent keeps of its own cgroup, where it has no file to write (a read-only root, and a
/// `/tmp` that counts against the memory measured).
#[derive(Debug, Clone, Default)]
pub struct JournalBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl JournalBuffer {
    /// The lines written since the last take (whole lines, JSON text).
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Bytes held now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Journal {
    /// Creates (or empties) the journal at `path`.
    pub fn create(path: PathBuf) -> Result<Journal, JournalError> {
        let file = open_for_lines(&path, false)?;
        Ok(Journal {
            path,
            sink: Sink::File(file),
            sebs: None,
        })
    }

    /// A journal kept in memory (named `name` in errors), and the buffer its lines go to.
    pub fn in_memory(name: &str) -> (Journal, JournalBuffer) {
        let buffer = JournalBuffer::default();
        let journal = Journal {
            path: PathBuf::from(name),
            sink: Sink::Memory(buffer.clone()),
            sebs: None,
        };
        (journal, buffer)
    }

    /// Also writes `container`'s samples to SeBS's measurement file.
    pub fn with_sebs_lines(mut self, container: &str, lines: SebsLines) -> Journal {
        self.sebs = Some((container.to_string(), lines));
        self
    }

    pub fn append(&mut self, line: &JournalLine) -> Result<(), JournalError> {
        // Serialising plain data cannot fail.
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        match &mut self.sink {
            Sink::File(file) => {
                file.write_all(text.as_bytes())
                    .map_err(|source| JournalError::Write {
                        path: self.path.clone(),
                        source,
                    })?
            }
            Sink::Memory(buffer) => buffer
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(text.as_bytes()),
        }
        match (line, &self.sebs) {
            (
                JournalLine::Samples {
                    samples,
                    precision_errors,
                    ..
                },
                Some((container, lines)),
            ) => lines.append(
                container,
                samples.iter().map(|&(_, bytes, _)| bytes),
                *precision_errors,
            ),
            _ => Ok(()),
        }
    }
}

/// The journal of a container whose readings come from outside, one at a time, as the
/// engine's stats stream delivers them (source `engine-stats`).
#[derive(Debug)]
pub struct ReadingsJournal {
    journal: Journal,
    started_at: EpochMicros,
}

impl ReadingsJournal {
    /// Opens the journal of `container` with its `start` line, as of now.
    pub fn start(
        mut journal: Journal,
        container: &str,
        interval: Duration,
    ) -> Result<ReadingsJournal, JournalError> {
        let started_at = EpochMicros::now();
        journal.append(&JournalLine::start(
            container,
            Source::EngineStats,
            None,
            interval,
            started_at,
        ))?;
        Ok(ReadingsJournal {
            journal,
            started_at,
        })
    }

    /// Appends a reading taken now.
    pub fn record(&mut self, bytes: u64) -> Result<(), JournalError> {
        let offset = EpochMicros::now().micros_since(self.started_at).max(0) as u64;
        self.journal.append(&JournalLine::Samples {
            samples: vec![(offset, bytes, 0)],
            precision_errors: 0,
            kernel_peak: None,
        })
    }

    /// Closes the journal: the readings ended now, for reason `end`.
    pub fn finish(mut self, end: &End) -> Result<(), JournalError> {
        self.journal
            .append(&JournalLine::end(end, EpochMicros::now()))
    }
}

/// Rebuilds one container's [`Measurements`] from its journal's lines (a pure function).
///
/// A journal without an `end` line belongs to a measurer that was killed: its samples are
/// kept and the end says so.
pub fn replay(lines: &[JournalLine]) -> Result<Measurements, String> {
    let Some(JournalLine::Start {
        container,
        source,
        cgroup,
        interval_us,
        started_at,
    }) = lines.first()
    else {
        return Err("the first line is not a start line".into());
    };
    let interval = Duration::from_micros(*interval_us);
    let started_at = EpochMicros(*started_at);
    let source = Source::from(*source);
    let mut samples = Vec::new();
    let mut precision_errors = 0;
    let mut kernel_peak: Option<u64> = None;
    let mut end = None;
    for line in &lines[1..] {
        match line {
            JournalLine::Start { .. } => return Err("a second start line".into()),
            JournalLine::Samples {
                samples: s,
                precision_errors: e,
                kernel_peak: k,
            } => {
                samples.extend(s.iter().map(|&(offset_us, bytes, late_us)| Sample {
                    offset_us,
                    bytes,
                    late_us,
                }));
                precision_errors += e;
                kernel_peak = kernel_peak.max(*k);
            }
            JournalLine::End {
                end: name,
                error,
                at,
            } => end = Some((name.to_end(error.clone()), EpochMicros(*at))),
        }
    }
    let (end, at) = end.unwrap_or_else(|| {
        let last = samples.last().map_or(started_at, |s| {
            EpochMicros(started_at.0 + s.offset_us as i64)
        });
        (
            End::Failed(
                "finish measuring: the measuring process ended before closing its journal".into(),
            ),
            last,
        )
    });
    if source == Source::EngineStats {
        // The engine decides when samples come; asked is counted from the elapsed time.
        let mut recorder = Recorder::starting_at(container, source, interval, started_at);
        for s in &samples {
            recorder.record(EpochMicros(started_at.0 + s.offset_us as i64), s.bytes);
        }
        return Ok(recorder.finish(at, end));
    }
    Ok(Measurements {
        container: container.clone(),
        source,
        cgroup: cgroup.clone(),
        interval,
        started_at,
        samples_asked: samples.len() as u64 + precision_errors,
        samples,
        precision_errors,
        end,
        kernel_peak,
    })
}

/// Parses a journal's text; a torn last line (no newline: the writer was killed mid-write) is
/// dropped.
pub fn parse_journal(path: &Path, text: &str) -> Result<Vec<JournalLine>, JournalError> {
    let complete = text.ends_with('\n');
    let count = text.lines().count();
    let mut lines = Vec::with_capacity(count);
    for (i, raw) in text.lines().enumerate() {
        match serde_json::from_str(raw) {
            Ok(line) => lines.push(line),
            Err(_) if i + 1 == count && !complete => break,
            Err(e) => {
                return Err(JournalError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(lines)
}

/// Reads one journal back into [`Measurements`].
pub fn read_journal(path: &Path) -> Result<Measurements, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lines = parse_journal(path, &text)?;
    replay(&lines).map_err(|message| JournalError::Parse {
        path: path.to_path_buf(),
        line: 1,
        message,
    })
}

/// The measurements of `containers`, in that order; a container without a journal (the
/// measurer never got to it) is `None`.
pub fn read_journals(
    dir: &MeasureDir,
    containers: &[String],
) -> Result<Vec<Option<Measurements>>, JournalError> {
    containers
        .iter()
        .map(|id| {
            let path = dir.journal(id);
            match read_journal(&path) {
                Ok(m) => Ok(Some(m)),
                Err(JournalError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000;

    fn start(source: SourceName, interval_us: u64) -> JournalLine {
        JournalLine::Start {
            container: "abc".into(),
            source,
            cgroup: None,
            interval_us,
            started_at: T0,
        }
    }

    fn samples(s: &[(u64, u64)], precision_errors: u64) -> JournalLine {
        JournalLine::Samples {
            samples: s.iter().map(|&(o, b)| (o, b, 5)).collect(),
            precision_errors,
            kernel_peak: None,
        }
    }

    fn end(end: EndName, at_offset: i64) -> JournalLine {
        JournalLine::End {
            end,
            error: None,
            at: T0 + at_offset,
        }
    }

    /// (bytes, samples asked, precision errors, end) of the replayed journal.
    fn check(lines: &[JournalLine], expect: Result<(&[u64], u64, u64, End), &str>) {
        let got = replay(lines);
        match (got, expect) {
            (Ok(m), Ok((bytes, asked, errors, end))) => {
                let got_bytes: Vec<u64> = m.samples.iter().map(|s| s.bytes).collect();
                assert_eq!(
                    (
                        got_bytes.as_slice(),
                        m.samples_asked,
                        m.precision_errors,
                        m.end
                    ),
                    (bytes, asked, errors, end)
                );
            }
            (Err(e), Err(needle)) => assert!(e.contains(needle), "{e:?} lacks {needle:?}"),
            (got, expect) => panic!("replay gave {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn journals_replay_into_measurements() {
        use SourceName::*;
        let cg = start(CgroupV1, 10_000);
        // Segments concatenate; their precision errors add up.
        check(
            &[
                cg.clone(),
                samples(&[(0, 1), (10_000, 2)], 1),
                samples(&[(30_000, 3)], 0),
                end(EndName::Stopped, 40_000),
            ],
            Ok((&[1, 2, 3], 4, 1, End::Stopped)),
        );
        // A container that died mid-way keeps its samples.
        check(
            &[
                cg.clone(),
                samples(&[(0, 7)], 0),
                end(EndName::ContainerGone, 5_000),
            ],
            Ok((&[7], 1, 0, End::ContainerGone)),
        );
        // A killed measurer wrote no end line.
        let killed = replay(&[cg.clone(), samples(&[(0, 7)], 0)]).unwrap();
        assert!(
            matches!(&killed.end, End::Failed(why) if why.contains("before closing its journal")),
            "{:?}",
            killed.end
        );
        assert_eq!(killed.samples.len(), 1);
        // Engine stats: asked is counted from the time that passed at the interval asked for.
        check(
            &[
                start(EngineStats, 100_000),
                samples(&[(0, 5)], 0),
                samples(&[(1_000_000, 6)], 0),
                end(EndName::Stopped, 1_050_000),
            ],
            Ok((&[5, 6], 11, 9, End::Stopped)),
        );
        check(
            &[samples(&[(0, 1)], 0)],
            Err("first line is not a start line"),
        );
        check(&[cg.clone(), cg], Err("a second start line"));
        check(&[], Err("first line is not a start line"));
    }

    #[test]
    fn journal_text_survives_a_torn_last_line() {
        let path = Path::new("/x/abc.jsonl");
        let lines = [start(SourceName::CgroupV2, 1_000), samples(&[(0, 1)], 0)];
        let mut text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        assert_eq!(parse_journal(path, &text).unwrap(), lines);
        text.push_str("{\"kind\":\"samp");
        assert_eq!(
            parse_journal(path, &text).unwrap(),
            lines,
            "a torn last line is dropped"
        );
        text.push('\n');
        let err = parse_journal(path, &text).unwrap_err().to_string();
        assert!(err.contains("/x/abc.jsonl, line 3"), "{err}");
        let first = serde_json::to_string(&lines[0]).unwrap();
        assert!(first.starts_with("{\"kind\":\"start\""), "{first}");
        assert!(first.contains("\"source\":\"cgroup-v2\""), "{first}");
    }

    #[test]
    fn journals_are_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let measure_dir = MeasureDir::new(dir.path().join("m"));
        measure_dir.create().unwrap();
        let lines = SebsLines::open(measure_dir.sebs_measurements()).unwrap();
        let mut journal = Journal::create(measure_dir.journal("abc"))
            .unwrap()
            .with_sebs_lines("abc", lines.clone());
        journal.append(&start(SourceName::CgroupV1, 1_000)).unwrap();
        journal
            .append(&samples(&[(0, 10), (1_000, 20)], 0))
            .unwrap();
        let mut other = Journal::create(measure_dir.journal("def"))
            .unwrap()
            .with_sebs_lines("def", lines);
        other.append(&samples(&[(0, 7)], 2)).unwrap();
        journal.append(&samples(&[(2_000, 30)], 0)).unwrap();
        // SeBS's file: a line per sample, one per missed deadline, in the order written.
        assert_eq!(
            std::fs::read_to_string(measure_dir.sebs_measurements()).unwrap(),
            "abc 10\nabc 20\ndef 7\nprecision not met\nprecision not met\nabc 30\n"
        );
        let all = read_journals(&measure_dir, &["abc".to_string(), "missing".to_string()]).unwrap();
        assert_eq!(all[0].as_ref().map(|m| m.max_bytes()), Some(Some(30)));
        assert_eq!(all[1], None);
        let err = read_journal(&measure_dir.journal("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.jsonl"), "{err}");
    }

    #[test]
    fn readings_journal_replays_as_engine_stats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.jsonl");
        let journal = Journal::create(path.clone()).unwrap();
        let mut readings =
            ReadingsJournal::start(journal, "abc", Duration::from_millis(100)).unwrap();
        readings.record(5).unwrap();
        readings.record(6).unwrap();
        readings.finish(&End::ContainerGone).unwrap();
        let m = read_journal(&path).unwrap();
        assert_eq!(m.source, Source::EngineStats);
        assert_eq!(
            m.samples.iter().map(|s| s.bytes).collect::<Vec<_>>(),
            [5, 6]
        );
        assert_eq!(m.end, End::ContainerGone);
        assert!(m.samples_asked >= 2, "{m:?}");
    }

    #[test]
    fn the_directory_sits_beside_the_deployment_file() {
        let check = |output: &str, expect: &str| {
            assert_eq!(
                MeasureDir::beside(Path::new(output)).unwrap().path,
                PathBuf::from(expect),
                "{output}"
            );
        };
        check("/tmp/out.json", "/tmp/out.json.memory");
        check("/a/b/deploy", "/a/b/deploy.memory");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            MeasureDir::beside(Path::new("out.json")).unwrap().path,
            cwd.join("out.json.memory")
        );
    }
}

//! The memory series of the agent's own container: its cgroup sampled at the interval the platform asks (`SEBS_MEMORY_INTERVAL_MS`), kept for `GET /memory`.
//!
//! For engines whose cgroup files this host cannot read (a remote engine): there the
//! platform's measurer has nothing to sample, so the agent does it from inside with
//! sebs-memory's [`Sampler`] and [`Segmented`], the same code and the same journal lines
//! as the measurer's, kept in memory ([`Journal::in_memory`]) instead of a file. `stop`
//! takes them and writes them where the measurer's journals go.
//!
//! Every second the samples move into the journal's text (about 25 bytes a sample); that
//! text is memory of the container, counted in what is measured, so it is capped at
//! [`MAX_SERIES_BYTES`], past which sampling ends (and says so) until the next take.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sebs_memory::{
    End, Journal, JournalBuffer, JournalError, MemoryCgroup, Sampler, Segmented, Source,
};

/// How often samples move from the sampler into the journal's text.
pub const ROTATE_EVERY: Duration = Duration::from_secs(1);

/// The most journal text kept between two takes: 100 000 samples at 10 ms (about 17
/// minutes) take about 2.5 MiB.
pub const MAX_SERIES_BYTES: usize = 16 << 20;

/// Why the series could not start.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("start the memory sampler of the agent's own cgroup")]
    Sampler(#[source] sebs_memory::SamplerError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The agent's own cgroup, sampled into an in-memory journal.
pub struct MemorySeries {
    sampler: Sampler,
    segmented: Mutex<Segmented>,
    buffer: JournalBuffer,
    /// Whether sampling has ended (cap, or the cgroup file failed).
    ended: Mutex<Option<End>>,
}

impl MemorySeries {
    /// Starts sampling `cgroup` every `interval`; `container` names it in the journal.
    pub fn start(
        cgroup: MemoryCgroup,
        interval: Duration,
        container: &str,
    ) -> Result<MemorySeries, SeriesError> {
        let sampler = Sampler::start().map_err(SeriesError::Sampler)?;
        let (journal, buffer) = Journal::in_memory("the agent's memory series");
        let source = Source::Agent(cgroup.version);
        let segmented =
            Segmented::start_as(&sampler, container, cgroup, interval, journal, source)?;
        Ok(MemorySeries {
            sampler,
            segmented: Mutex::new(segmented),
            buffer,
            ended: Mutex::new(None),
        })
    }

    /// Moves the samples taken so far into the journal's text; ends sampling past
    /// [`MAX_SERIES_BYTES`]. Cheap: a few hundred samples at most, once a second.
    pub fn rotate(&self) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if ended.is_some() {
            return;
        }
        let go_on = self.buffer.len() < MAX_SERIES_BYTES;
        let mut segmented = self.segmented.lock().unwrap_or_else(|p| p.into_inner());
        match segmented.rotate(&self.sampler, go_on) {
            Ok(None) => {}
            Ok(Some(end)) => {
                if go_on {
                    eprintln!("sebs-agent: sampling its own memory ended: {end}");
                } else {
                    eprintln!(
                        "sebs-agent: stopped sampling its own memory: {} MiB of samples not \
                         taken yet",
                        MAX_SERIES_BYTES >> 20
                    );
                }
                *ended = Some(end);
            }
            Err(e) => {
                eprintln!("sebs-agent: failed to {}", sebs_wire::ErrorChain(&e));
                *ended = Some(End::Failed(sebs_wire::ErrorChain(&e).to_string()));
            }
        }
    }

    /// The journal lines since the last take (the first take starts with the `start`
    /// line), the samples of this moment included.
    pub fn take(&self) -> Vec<u8> {
        self.rotate();
        self.buffer.take()
    }
}

/// Moves the samples into the journal every [`ROTATE_EVERY`] for as long as the agent runs.
pub async fn rotate_forever(series: Arc<MemorySeries>) {
    let mut tick = tokio::time::interval(ROTATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        series.rotate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sebs_memory::{parse_journal, replay, JournalLine, Version};

    /// A fake cgroup of `version` whose usage file holds `bytes`.
    fn fake(version: Version, bytes: u64) -> (tempfile::TempDir, MemoryCgroup) {
        let dir = tempfile::tempdir().unwrap();
        let cgroup = MemoryCgroup {
            dir: dir.path().to_path_buf(),
            version,
        };
        std::fs::write(cgroup.current_path(), format!("{bytes}\n")).unwrap();
        (dir, cgroup)
    }

    fn lines(text: &[u8]) -> Vec<JournalLine> {
        parse_journal(
            std::path::Path::new("x"),
            std::str::from_utf8(text).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn takes_give_the_series_once_and_in_order_with_the_agent_as_source() {
        for version in [Version::V1, Version::V2] {
            let (_dir, cgroup) = fake(version, 7 << 20);
            let series = MemorySeries::start(cgroup, Duration::from_millis(2), "abc").unwrap();
            let mut all = Vec::new();
            // At least three takes, and samples in two, however slow the machine.
            let give_up = std::time::Instant::now() + Duration::from_secs(60);
            let mut takes = 0;
            loop {
                std::thread::sleep(Duration::from_millis(30));
                let text = series.take();
                takes += 1;
                all.extend(lines(&text));
                let filled = all
                    .iter()
                    .filter(|l| matches!(l, JournalLine::Samples { samples, .. } if !samples.is_empty()))
                    .count();
                if takes >= 3 && filled >= 2 {
                    break;
                }
                assert!(std::time::Instant::now() < give_up, "{all:?}");
            }
            let starts = all
                .iter()
                .filter(|l| matches!(l, JournalLine::Start { .. }))
                .count();
            assert_eq!(starts, 1, "{all:?}");
            let m = replay(&all).unwrap();
            assert_eq!(m.source, Source::Agent(version));
            assert_eq!(m.container, "abc");
            assert_eq!(m.interval, Duration::from_millis(2));
            assert!(m.samples.iter().all(|s| s.bytes == 7 << 20), "{m:?}");
            assert!(m
                .samples
                .windows(2)
                .all(|w| w[0].offset_us < w[1].offset_us));
            assert_eq!(m.samples_asked, m.samples.len() as u64 + m.precision_errors);
        }
    }

    #[test]
    fn a_cgroup_file_that_goes_ends_the_series_and_keeps_its_samples() {
        let (dir, cgroup) = fake(Version::V2, 4096);
        let path = cgroup.current_path();
        let series = MemorySeries::start(cgroup, Duration::from_millis(1), "gone").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::remove_file(&path).unwrap();
        // The sampler notices within its existence check (100 ms).
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let mut all = Vec::new();
        while !all.iter().any(|l| matches!(l, JournalLine::End { .. })) {
            assert!(std::time::Instant::now() < give_up, "{all:?}");
            std::thread::sleep(Duration::from_millis(50));
            all.extend(lines(&series.take()));
        }
        // Nothing after the end.
        assert!(series.take().is_empty());
        let m = replay(&all).unwrap();
        assert_eq!(m.end, End::ContainerGone);
        assert!(!m.samples.is_empty());
        drop(dir);
    }
}

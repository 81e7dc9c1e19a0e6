//! A container sampled from its cgroup for as long as it runs, its samples moved to its [`Journal`] about once a second.
//!
//! Why segments: a [`SampleHandle`] hands its samples over only when stopped. At every
//! [`Segmented::rotate`] the container is added to the sampler again and then the old handle
//! is stopped; both sit on the sampler's deadline grid, so the new handle serves every
//! deadline from the moment it was added and the old one every deadline before. Deadlines of
//! the old segment that it did not serve are counted as precision errors, so that samples
//! asked stay exact across segments.

use std::time::Duration;

use sebs_wire::EpochMicros;

use crate::cgroup::MemoryCgroup;
use crate::journal::{Journal, JournalError, JournalLine};
use crate::measurements::{End, Sample, Source};
use crate::sampler::{SampleHandle, Sampler};

/// A container sampled from its cgroup into its journal.
#[derive(Debug)]
pub struct Segmented {
    container: String,
    cgroup: MemoryCgroup,
    interval: Duration,
    journal: Journal,
    started_at: EpochMicros,
    handle: Option<SampleHandle>,
    /// Why sampling ended, once the journal is closed.
    ended: Option<End>,
}

impl Segmented {
    /// Starts sampling `container` every `interval` on `sampler` and opens its journal with
    /// the `start` line.
    pub fn start(
        sampler: &Sampler,
        container: &str,
        cgroup: MemoryCgroup,
        interval: Duration,
        journal: Journal,
    ) -> Result<Segmented, JournalError> {
        let source = Source::Cgroup(cgroup.version);
        Segmented::start_as(sampler, container, cgroup, interval, journal, source)
    }

    /// Like [`Segmented::start`], with the `start` line naming `source` (the agent samples
    /// its own cgroup as [`Source::Agent`]).
    pub fn start_as(
        sampler: &Sampler,
        container: &str,
        cgroup: MemoryCgroup,
        interval: Duration,
        mut journal: Journal,
        source: Source,
    ) -> Result<Segmented, JournalError> {
        let started_at = EpochMicros::now();
        let handle = sampler
            .add(container, &cgroup, interval)
            .map_err(|source| JournalError::Sampler {
                container: container.to_string(),
                source,
            })?;
        journal.append(&JournalLine::start(
            container,
            source,
            Some(cgroup.dir.clone()),
            interval,
            started_at,
        ))?;
        Ok(Segmented {
            container: container.to_string(),
            cgroup,
            interval,
            journal,
            started_at,
            handle: Some(handle),
            ended: None,
        })
    }

    pub fn container(&self) -> &str {
        &self.container
    }

    /// Moves what the current handle holds to the journal; with `go_on`, sampling continues
    /// on a fresh handle. `None` while sampling goes on; why it ended once this container is
    /// done and its journal closed.
    pub fn rotate(&mut self, sampler: &Sampler, go_on: bool) -> Result<Option<End>, JournalError> {
        let Some(old) = self.handle.take() else {
            return Ok(Some(self.ended.clone().unwrap_or(End::Stopped)));
        };
        let alive = old.ended().is_none();
        let cut = EpochMicros::now();
        let next = if go_on && alive {
            sampler
                .add(&self.container, &self.cgroup, self.interval)
                .ok()
        } else {
            None
        };
        let m = old.stop();
        let segment_start = m.started_at.micros_since(self.started_at);
        let to_journal = |s: &Sample| {
            (
                (segment_start + s.offset_us as i64).max(0) as u64,
                s.bytes,
                s.late_us,
            )
        };
        let step = self.interval.as_micros().max(1) as i64;
        let (samples, precision_errors) = if next.is_some() {
            // The new handle serves deadlines from `cut` on; this one those before it.
            let deadline = |s: &Sample| m.started_at.0 + s.offset_us as i64 - i64::from(s.late_us);
            let kept: Vec<_> = m
                .samples
                .iter()
                .filter(|s| deadline(s) < cut.0)
                .map(to_journal)
                .collect();
            let asked = if cut.0 > m.started_at.0 {
                (cut.0 - m.started_at.0 - 1) / step + 1
            } else {
                0
            };
            let errors = (asked as u64).saturating_sub(kept.len() as u64);
            (kept, errors)
        } else {
            (
                m.samples.iter().map(to_journal).collect(),
                m.precision_errors,
            )
        };
        self.journal.append(&JournalLine::Samples {
            samples,
            precision_errors,
            kernel_peak: m.kernel_peak,
        })?;
        match next {
            Some(handle) => {
                self.handle = Some(handle);
                Ok(None)
            }
            None => {
                let end = if alive && !go_on {
                    End::Stopped
                } else if alive {
                    End::ContainerGone
                } else {
                    m.end
                };
                self.journal
                    .append(&JournalLine::end(&end, EpochMicros::now()))?;
                self.ended = Some(end.clone());
                Ok(Some(end))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Version;
    use crate::journal::{parse_journal, read_journal, MeasureDir};
    use crate::testing::fake_cgroup;

    #[test]
    fn segments_of_a_real_sampler_neither_lose_nor_repeat_deadlines() {
        let (dir, cgroup) = fake_cgroup(Version::V1, &[("memory.usage_in_bytes", "4096\n")]);
        let measure_dir = MeasureDir::new(dir.path().join("m"));
        measure_dir.create().unwrap();
        let sampler = Sampler::start().unwrap();
        let interval = Duration::from_millis(2);
        let journal = Journal::create(measure_dir.journal("abc")).unwrap();
        let mut s = Segmented::start(&sampler, "abc", cgroup, interval, journal).unwrap();
        // At least five cuts, and samples in at least three segments, however long a loaded
        // machine takes to give the sampler those.
        let path = measure_dir.journal("abc");
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        for cuts in 1.. {
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(s.rotate(&sampler, true).unwrap(), None);
            let text = std::fs::read_to_string(&path).unwrap();
            let filled = parse_journal(&path, &text)
                .unwrap()
                .iter()
                .filter(
                    |l| matches!(l, JournalLine::Samples { samples, .. } if !samples.is_empty()),
                )
                .count();
            if cuts >= 5 && filled >= 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "{filled} segments with samples after {cuts} cuts"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(s.rotate(&sampler, false).unwrap(), Some(End::Stopped));
        let m = read_journal(&path).unwrap();
        assert_eq!(m.end, End::Stopped);
        // Every 2 ms, each deadline once: consecutive deadlines are a whole number of
        // intervals apart (give or take the µs of two clock readings), across the cuts too.
        let deadlines: Vec<i64> = m
            .samples
            .iter()
            .map(|x| x.offset_us as i64 - i64::from(x.late_us))
            .collect();
        for w in deadlines.windows(2) {
            let gap = w[1] - w[0];
            let off_grid = (gap + 1_000).rem_euclid(2_000) - 1_000;
            assert!(
                gap > 1_900 && off_grid.abs() < 100,
                "deadlines {} and {} in {deadlines:?}",
                w[0],
                w[1]
            );
        }
        assert_eq!(m.samples_asked, m.samples.len() as u64 + m.precision_errors);
    }
}

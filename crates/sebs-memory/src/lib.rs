//! Memory measurement of containers through their cgroup, at up to 1 kHz, on cgroup v1 and v2.
//!
//! This crate knows nothing about Docker beyond a container id, a PID and a cgroup root:
//!
//! - [`MemoryCgroup`] is a container's memory cgroup directory and its [`Version`], found by
//!   [`find_container_cgroup`] (well-known paths, then a bounded search) or from a PID by
//!   [`find_pid_cgroup`] / [`cgroup_from_proc_text`]. Its methods read the current usage, the
//!   peak, the limit and `memory.stat`; a [`PeakTracker`] resets the peak where the kernel allows.
//! - [`Sampler`] is one OS thread sampling many containers against absolute deadlines;
//!   [`Sampler::add`] gives a [`SampleHandle`] whose [`SampleHandle::stop`] returns the
//!   [`Measurements`] of that container (its [`Sample`]s, precision errors, why it [`End`]ed).
//! - [`Recorder`] builds the same [`Measurements`] from samples fed from outside, for hosts
//!   where cgroup files are not visible and the platform reads the engine's stats instead.
//! - [`journal`]: the journal a measuring process writes as it samples ([`MeasureDir`],
//!   [`JournalLine`], [`Journal`], SeBS's measurement file [`SebsLines`]) and its [`replay`]
//!   into [`Measurements`] ([`read_journals`]); [`Segmented`] samples a container into its
//!   journal in segments, [`ReadingsJournal`] journals readings fed from outside.
//! - [`SebsMemoryStats`] is SeBS's `memory_stats.json`, byte for byte; [`MemoryReport`] is our
//!   richer file with timestamps and percentiles. Both are serde types of their own.
//! - [`measure_precision`] samples one file for a while and returns a [`PrecisionReport`].

pub mod cgroup;
mod clock;
pub mod files;
pub mod journal;
pub mod measurements;
pub mod output;
pub mod precision;
pub mod sampler;
pub mod segments;
#[cfg(test)]
mod testing;

pub use cgroup::{
    cgroup_from_proc_text, detect_layout, find_container_cgroup, find_own_cgroup, find_pid_cgroup,
    own_memory_cgroup, CgroupError, Layout, MemoryCgroup, Version, DEFAULT_CGROUP_ROOT,
};
pub use clock::{thread_cpu_time, CpuTimeError};
pub use files::{FileError, PeakTracker};
pub use journal::{
    parse_journal, read_journal, read_journals, replay, Journal, JournalBuffer, JournalError,
    JournalLine, MeasureDir, ReadingsJournal, SebsLines,
};
pub use measurements::{End, Measurements, Recorder, Sample, Source};
pub use output::{
    ContainerReport, InvocationSpan, MemoryReport, OutputError, SebsContainerStats, SebsMemoryStats,
};
pub use precision::{measure_precision, PrecisionReport};
pub use sampler::{SampleHandle, Sampler, SamplerError};
pub use segments::Segmented;

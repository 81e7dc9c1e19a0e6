//! Which port to take: the pure choice, separate from how each port is checked on the host.

use std::collections::BTreeSet;
use std::fmt;

use crate::PortRange;

/// Why a port was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The caller said one of our live functions holds it.
    Held,
    /// Another allocation (in this or another process) holds its lock right now.
    Allocating,
    /// A lease persisted for a container owns it.
    Persisted,
    /// Something on the host is bound to it, or the host refuses it.
    InUse,
}

/// What checking one port found: take it (with whatever the check produced), or skip it.
#[derive(Debug)]
pub enum Verdict<T> {
    /// The port is free; the value is what the caller keeps for it (a lease, in the allocator).
    Take(T),
    /// The port is not available.
    Skip(SkipReason),
}

/// How many ports of a range were passed over, and why. Shown in the exhaustion error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Held by our live functions, as the caller said.
    pub held: usize,
    /// Locked by an allocation in progress.
    pub allocating: usize,
    /// Owned by a persisted lease.
    pub persisted: usize,
    /// Bound by something on the host, or refused by it.
    pub in_use: usize,
}

impl Skipped {
    fn count(&mut self, reason: SkipReason) {
        match reason {
            SkipReason::Held => self.held += 1,
            SkipReason::Allocating => self.allocating += 1,
            SkipReason::Persisted => self.persisted += 1,
            SkipReason::InUse => self.in_use += 1,
        }
    }

    /// Ports passed over in total.
    pub fn total(&self) -> usize {
        self.held + self.allocating + self.persisted + self.in_use
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} held by our functions, {} being allocated, {} persisted for containers, {} in use on the host",
            self.held, self.allocating, self.persisted, self.in_use
        )
    }
}

/// The result of a search through a range.
#[derive(Debug)]
pub enum Choice<T> {
    /// The first available port, with what its check produced.
    Found(u16, T),
    /// No port was available; why each was passed over.
    Exhausted(Skipped),
}

/// Walks `range` upwards and returns the first port that is not in `held` and that `check`
/// accepts. `check` is not called for held ports; an error from `check` ends the search.
///
/// Ascending order makes ports predictable (the first function gets 9000, as in SeBS); races
/// between concurrent allocations are settled by `check` (the allocator's lock), not by order.
pub fn first_available<T, E>(
    range: PortRange,
    held: &BTreeSet<u16>,
    mut check: impl FnMut(u16) -> Result<Verdict<T>, E>,
) -> Result<Choice<T>, E> {
    let mut skipped = Skipped::default();
    for port in range.ports() {
        let verdict = if held.contains(&port) {
            Verdict::Skip(SkipReason::Held)
        } else {
            check(port)?
        };
        match verdict {
            Verdict::Take(value) => return Ok(Choice::Found(port, value)),
            Verdict::Skip(reason) => skipped.count(reason),
        }
    }
    Ok(Choice::Exhausted(skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `host` says what checking each port finds; ports not listed are free.
    fn check(
        range: (u16, u16),
        held: &[u16],
        host: &[(u16, SkipReason)],
        expect: Result<u16, Skipped>,
    ) {
        let range = PortRange::new(range.0, range.1).unwrap();
        let held: BTreeSet<u16> = held.iter().copied().collect();
        let mut checked = Vec::new();
        let choice = first_available(range, &held, |port| {
            checked.push(port);
            Ok::<_, ()>(match host.iter().find(|(p, _)| *p == port) {
                Some((_, reason)) => Verdict::Skip(*reason),
                None => Verdict::Take(()),
            })
        })
        .unwrap();
        let got = match choice {
            Choice::Found(port, ()) => Ok(port),
            Choice::Exhausted(skipped) => Err(skipped),
        };
        assert_eq!(got, expect, "range {range}, held {held:?}, host {host:?}");
        assert!(
            checked.iter().all(|p| !held.contains(p)),
            "held ports were probed: {checked:?}"
        );
    }

    use SkipReason::*;

    #[test]
    fn choice() {
        check((9000, 9999), &[], &[], Ok(9000));
        check((9000, 9999), &[9000, 9001], &[], Ok(9002));
        check(
            (9000, 9999),
            &[9000],
            &[(9001, InUse), (9002, Allocating)],
            Ok(9003),
        );
        check((9000, 9999), &[8999, 10000], &[(9003, Persisted)], Ok(9000));
        check(
            (9000, 9003),
            &[9001],
            &[(9000, Persisted), (9003, InUse)],
            Ok(9002),
        );
        check((65535, 65535), &[], &[], Ok(65535));
    }

    #[test]
    fn exhaustion_counts_every_reason() {
        let s = |held, allocating, persisted, in_use| Skipped {
            held,
            allocating,
            persisted,
            in_use,
        };
        check((9000, 9000), &[9000], &[], Err(s(1, 0, 0, 0)));
        check(
            (9000, 9004),
            &[9000, 9004],
            &[(9001, InUse), (9002, Allocating), (9003, Persisted)],
            Err(s(2, 1, 1, 1)),
        );
        check(
            (9000, 9001),
            &[],
            &[(9000, InUse), (9001, InUse)],
            Err(s(0, 0, 0, 2)),
        );
    }

    #[test]
    fn an_error_from_the_check_stops_the_search() {
        let range = PortRange::new(9000, 9999).unwrap();
        let mut calls = 0;
        let got = first_available::<(), _>(range, &BTreeSet::new(), |port| {
            calls += 1;
            if port == 9002 {
                Err(port)
            } else {
                Ok(Verdict::Skip(InUse))
            }
        });
        assert!(matches!(got, Err(9002)));
        assert_eq!(calls, 3);
    }
}

//! The range of host ports functions may be published on, and its textual form `START-END`.

use std::fmt;
use std::str::FromStr;

/// Why a port range could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The start lies above the end.
    #[error("use port range {start}-{end}: the start lies above the end")]
    Reversed {
        /// First port of the range.
        start: u16,
        /// Last port of the range.
        end: u16,
    },
    /// Port 0 means "any port" to the kernel, so it cannot be part of a range.
    #[error("use port range {start}-{end}: port 0 is not a port")]
    Zero {
        /// First port of the range.
        start: u16,
        /// Last port of the range.
        end: u16,
    },
    /// The text is not `START-END` or `PORT`.
    #[error("parse port range {text:?}: expected START-END or PORT, with ports from 1 to 65535")]
    Syntax {
        /// The text given.
        text: String,
    },
}

/// An inclusive range of host ports, `start..=end`, never empty and never containing 0.
///
/// The fields are private because of that invariant; [`PortRange::new`] checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// The default range, 9000-9999: SeBS's agent port and the thousand above it.
    pub const DEFAULT: PortRange = PortRange {
        start: 9000,
        end: 9999,
    };

    /// The range `start..=end`.
    pub fn new(start: u16, end: u16) -> Result<PortRange, RangeError> {
        if start == 0 {
            return Err(RangeError::Zero { start, end });
        }
        if start > end {
            return Err(RangeError::Reversed { start, end });
        }
        Ok(PortRange { start, end })
    }

    /// First port.
    pub fn start(self) -> u16 {
        self.start
    }

    /// Last port (inclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// Number of ports in the range; at least 1.
    pub fn len(self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Always false: a range holds at least one port. Here because clippy expects it next to `len`.
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// The ports in ascending order.
    pub fn ports(self) -> std::ops::RangeInclusive<u16> {
        self.start..=self.end
    }
}

impl Default for PortRange {
    fn default() -> PortRange {
        PortRange::DEFAULT
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for PortRange {
    type Err = RangeError;

    /// Parses `START-END` (as printed) or a single `PORT`.
    fn from_str(text: &str) -> Result<PortRange, RangeError> {
        let syntax = || RangeError::Syntax {
            text: text.to_owned(),
        };
        let port = |s: &str| s.trim().parse::<u16>().map_err(|_| syntax());
        match text.split_once('-') {
            Some((start, end)) => PortRange::new(port(start)?, port(end)?),
            None => {
                let p = port(text)?;
                PortRange::new(p, p)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<(u16, u16), RangeError>) {
        let got = text.parse::<PortRange>().map(|r| (r.start(), r.end()));
        assert_eq!(got, expect, "{text:?}");
    }

    #[test]
    fn parse() {
        let syntax = |t: &str| Err(RangeError::Syntax { text: t.to_owned() });
        check("9000-9999", Ok((9000, 9999)));
        check(" 9000 - 9001 ", Ok((9000, 9001)));
        check("9000", Ok((9000, 9000)));
        check("1-65535", Ok((1, 65535)));
        check(
            "9001-9000",
            Err(RangeError::Reversed {
                start: 9001,
                end: 9000,
            }),
        );
        check("0-10", Err(RangeError::Zero { start: 0, end: 10 }));
        check("0", Err(RangeError::Zero { start: 0, end: 0 }));
        check("9000-65536", syntax("9000-65536"));
        check("9000-", syntax("9000-"));
        check("-1-5", syntax("-1-5"));
        check("", syntax(""));
        check("nine", syntax("nine"));
    }

    #[test]
    fn display_round_trips_and_default_is_sebs_port_and_up() {
        let r = PortRange::default();
        assert_eq!((r.to_string(), r.len()), ("9000-9999".to_owned(), 1000));
        assert_eq!(r.to_string().parse::<PortRange>(), Ok(r));
        assert!(r.contains(9000) && r.contains(9999) && !r.contains(10000) && !r.contains(8999));
    }

    #[test]
    fn error_messages_read_after_failed_to() {
        let err = PortRange::new(10, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "use port range 10-5: the start lies above the end"
        );
    }
}

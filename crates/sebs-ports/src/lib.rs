//! Host ports for functions published on the host, safe when several `sebs-local` run at once.
//!
//! When a function's container cannot be reached on its bridge IP, its agent port is published
//! on 127.0.0.1, on a host port this crate picks. The main types:
//!
//! - [`PortRange`]: the ports to choose from, 9000-9999 by default, parsed from `START-END`.
//! - [`first_available`]: the pure policy: the lowest port of the range that is not held by one
//!   of our functions and that a check accepts, or why each port was passed over ([`Skipped`]).
//! - [`Allocator`] (configured by [`AllocatorConfig`]): the IO edge. Its check locks a per-port
//!   file in a runtime directory with `flock` and binds the port once on the host address.
//! - [`PortLease`]: a port reserved while the lease lives (released on drop or by
//!   [`PortLease::release`]); [`PortLease::persist`] hands it to a container beyond the life
//!   of the process, and [`Allocator::reclaim_stale`] frees ports of containers that are gone,
//!   with liveness decided by the caller (this crate knows nothing of Docker).
//!
//! [`Allocator`]'s documentation describes the lock-file protocol and what a bind probe can
//! and cannot see.

mod allocator;
mod policy;
mod range;

pub use allocator::{
    default_lock_dir, Allocator, AllocatorConfig, PersistedPort, PortError, PortLease,
};
pub use policy::{first_available, Choice, SkipReason, Skipped, Verdict};
pub use range::{PortRange, RangeError};

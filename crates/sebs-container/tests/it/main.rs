//! Docker integration tests of sebs-container: real containers whose "agent" is a shell
//! script starting a tiny Python HTTP server that answers `/alive`.
//!
//! Every test runs only when an engine answers (see `sebs_container::testing`), labels its
//! containers with its own case label and removes them all afterwards, failed or not.

mod lifecycle;
mod support;

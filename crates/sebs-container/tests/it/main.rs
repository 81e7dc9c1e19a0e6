//! Docker integration tests of sebs-container: real containers whose "agent" is a shell
//! script starting a tiny Python HTTP server that answers `/alive`.
//!
//! Every test needs an engine (see `sebs_testkit`), labels its containers with its own case
//! label and removes them all afterwards, failed or not.

mod engine;
mod lifecycle;
mod remote;
mod support;

sebs_testkit::main!(lifecycle::trials(), engine::trials(), remote::trials());

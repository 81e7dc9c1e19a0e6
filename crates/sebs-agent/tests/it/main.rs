//! Integration tests of the agent binary: on the host with `python3` and `node`, and once in a container.

mod docker;
mod handoff;
mod host;
mod nodejs;
mod support;

sebs_testkit::main!(
    host::trials(),
    handoff::trials(),
    nodejs::trials(),
    docker::trials()
);

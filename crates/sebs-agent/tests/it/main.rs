//! Integration tests of the agent binary: on the host with `python3`, and once in a container.

mod docker;
mod host;
mod support;
